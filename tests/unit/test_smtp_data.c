/* test_smtp_data.c — the DATA reader and the dot-stuffing writer: end of data only at CRLF "." CRLF
 * (every smuggling variant is checked never to end the message), unstuffing, bare CR/LF in both
 * policies, Received counting, size and line limits, and reader -> writer -> reader round trips.
 * Every input is fed whole, byte by byte and split at every point; all must agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data_read.h"
#include "parse/stuff.h"
#include "smtp/smtp_data.h"

/* The DATA reader behind the shared driver (data_read.h). */
typedef struct smtp_reader {
    pc_smtp_data d;
    int normalize;
    size_t max_line, max_size;
} smtp_reader;

static void smtp_start(void *self)
{
    smtp_reader *s = self;
    pc_smtp_data_init(&s->d, s->max_line, s->max_size, s->normalize);
}

static size_t smtp_feed(void *self, const char *in, size_t n, pc_data_emit_fn emit, void *ud,
                        int *done)
{
    return pc_smtp_data_feed(&((smtp_reader *)self)->d, in, n, emit, ud, done);
}

static void smtp_finish(void *self, result *r)
{
    smtp_reader *s = self;
    r->flags = s->d.flags;
    r->received = s->d.received;
    r->size = s->d.size;
}

/* Feeds in[0..n) in pieces: cut[] lists the split offsets (ascending), ncut of them. */
static void read_split(const char *in, size_t n, const size_t *cut, size_t ncut, int normalize,
                       size_t max_line, size_t max_size, result *r)
{
    smtp_reader s = {.normalize = normalize, .max_line = max_line, .max_size = max_size};
    reader rd = {smtp_start, smtp_feed, smtp_finish, &s};
    reader_split(&rd, in, n, cut, ncut, r);
}

/* Reads in whole, then checks byte by byte and every two-piece split give the same result. */
static void read_all(const char *in, size_t n, int normalize, size_t max_line, size_t max_size,
                     result *r)
{
    smtp_reader s = {.normalize = normalize, .max_line = max_line, .max_size = max_size};
    reader rd = {smtp_start, smtp_feed, smtp_finish, &s};
    reader_all(&rd, in, n, r);
}

static void expect(const char *in, size_t n, int normalize, const char *want, size_t wn, int done,
                   size_t consumed)
{
    result r;
    read_all(in, n, normalize, 0, 0, &r);
    assert_int_equal(r.done, done);
    if (done)
        assert_int_equal(r.consumed, consumed);
    assert_int_equal(r.out.n, wn);
    if (wn)
        assert_memory_equal(r.out.p, want, wn);
    result_free(&r);
}

#define S(x) x, sizeof(x) - 1

/* Content is canonical: every CR is followed by LF and every LF preceded by CR. */
static void assert_canonical(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r')
            assert_true(i + 1 < n && p[i + 1] == '\n');
        if (p[i] == '\n')
            assert_true(i > 0 && p[i - 1] == '\r');
    }
}

static void test_basic(void **st)
{
    (void)st;
    expect(S("Subject: x\r\n\r\nbody\r\n.\r\n"), 0, S("Subject: x\r\n\r\nbody\r\n"), 1, 23);
    expect(S(".\r\n"), 0, S(""), 1, 3);
    expect(S(".\r\nQUIT\r\n"), 1, S(""), 1, 3);
    expect(S("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), 0, S("a\r\n"), 1, 6);
    expect(S("\r\n.\r\n"), 0, S("\r\n"), 1, 5);
    expect(S("a\r\n.\r"), 0, S("a\r\n"), 0, 0);
    expect(S("a\r\n."), 0, S("a\r\n"), 0, 0);
    expect(S("a\r"), 0, S("a"), 0, 0);
}

static void test_after_done(void **st)
{
    (void)st;
    pc_smtp_data d;
    sink s;
    sink_init(&s);
    pc_smtp_data_init(&d, 0, 0, 0);
    int done = 0;
    assert_int_equal(pc_smtp_data_feed(&d, S("x\r\n.\r\nRSET\r\n"), sink_emit, &s, &done), 6);
    assert_int_equal(done, 1);
    assert_int_equal(pc_smtp_data_feed(&d, S("RSET\r\n"), sink_emit, &s, &done), 0);
    assert_int_equal(done, 1);
    assert_int_equal(s.n, 3);
    free(s.p);
}

static void test_unstuff(void **st)
{
    (void)st;
    expect(S("..x\r\n.y\r\n..\r\n...\r\n.\r\n"), 0, S(".x\r\ny\r\n.\r\n..\r\n"), 1, 21);
    expect(S("a.\r\n.\r\n"), 0, S("a.\r\n"), 1, 7);
    expect(S("..\r\n.\r\n"), 1, S(".\r\n"), 1, 7);
    /* ".\r\n" only ends at a real line start */
    expect(S("x.\r\n.\r\n"), 0, S("x.\r\n"), 1, 7);
}

/* Each smuggling sequence must not end the message, in either policy, whatever the split. */
static void test_smuggling(void **st)
{
    (void)st;
    static const struct {
        const char *s;
        size_t n;
        unsigned flag;
    } seq[] = {
        {S("\n.\n"), PC_DATA_BARE_LF},
        {S("\n.\r\n"), PC_DATA_BARE_LF},
        {S("\r.\n"), PC_DATA_BARE_CR},
        {S("\r.\r"), PC_DATA_BARE_CR},
        {S("\r\n.\r"), PC_DATA_BARE_CR},
        {S("\r\n.\n"), PC_DATA_BARE_LF},
        {S("\r.\r\n"), PC_DATA_BARE_CR},
        {S("\n.\r"), PC_DATA_BARE_LF},
        {S("\r\n.\0\r\n"), PC_DATA_NUL},
        {S("\r\n\0.\r\n"), PC_DATA_NUL},
        {S("\r\0\n.\r\n"), PC_DATA_NUL | PC_DATA_BARE_CR | PC_DATA_BARE_LF},
        {S("\r\n.\r\0\n"), PC_DATA_NUL | PC_DATA_BARE_CR},
        {S("\0\r\n.\n"), PC_DATA_NUL | PC_DATA_BARE_LF},
        {S("\r\r\n.\n\n"), PC_DATA_BARE_CR | PC_DATA_BARE_LF},
        {S("\r\n\r.\r\n"), PC_DATA_BARE_CR},
    };
    static const char tail[] = "MAIL FROM:<evil@example.org>\r\nRCPT TO:<v@example.org>\r\n";
    char buf[256];
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        for (int norm = 0; norm <= 1; norm++) {
            size_t n = 0;
            memcpy(buf, "Subject: s\r\n\r\nbody", 18);
            n = 18;
            memcpy(buf + n, seq[i].s, seq[i].n);
            n += seq[i].n;
            memcpy(buf + n, tail, sizeof(tail) - 1);
            n += sizeof(tail) - 1;
            result r;
            read_all(buf, n, norm, 0, 0, &r);
            if (r.done)
                fail_msg("sequence %zu ended DATA (normalize=%d)", i, norm);
            assert_true((r.flags & seq[i].flag) == seq[i].flag);
            result_free(&r);
            /* and the real end afterwards is still found, with canonical content */
            memcpy(buf + n, ".\r\nQUIT\r\n", 9);
            read_all(buf, n + 9, norm, 0, 0, &r);
            assert_int_equal(r.done, 1);
            assert_int_equal(r.consumed, n + 3);
            assert_canonical(r.out.p, r.out.n);
            /* the evil MAIL line is content, and ends with the CRLF of the tail */
            assert_true(r.out.n >= sizeof(tail) - 1);
            assert_memory_equal(r.out.p + r.out.n - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
            result_free(&r);
        }
    }
}

static void test_bare_policies(void **st)
{
    (void)st;
    result r;
    /* both policies emit CRLF and set the flag */
    for (int norm = 0; norm <= 1; norm++) {
        read_all(S("a\nb\rc\r\n.\r\n"), norm, 0, 0, &r);
        assert_int_equal(r.done, 1);
        assert_int_equal(r.out.n, 9);
        assert_memory_equal(r.out.p, "a\r\nb\r\nc\r\n", 9);
        assert_int_equal(r.flags & (PC_DATA_BARE_LF | PC_DATA_BARE_CR),
                         PC_DATA_BARE_LF | PC_DATA_BARE_CR);
        result_free(&r);
    }
    /* unstuffing after a bare LF only when normalising */
    expect(S("a\n..x\r\n.\r\n"), 1, S("a\r\n.x\r\n"), 1, 10);
    expect(S("a\n..x\r\n.\r\n"), 0, S("a\r\n..x\r\n"), 1, 10);
    /* "." CRLF after a bare LF is a line ".", not the end, in both */
    expect(S("a\n.\r\nb\r\n.\r\n"), 1, S("a\r\n.\r\nb\r\n"), 1, 11);
    expect(S("a\n.\r\nb\r\n.\r\n"), 0, S("a\r\n.\r\nb\r\n"), 1, 11);
    expect(S("a\r.\r\n.\r\n"), 1, S("a\r\n.\r\n"), 1, 8);
    /* CR CR LF: one bare CR then a real line end */
    expect(S("a\r\r\n.\r\n"), 0, S("a\r\n\r\n"), 1, 7);
    expect(S("\n.\r\n.\r\n"), 1, S("\r\n.\r\n"), 1, 7);
}

static void test_flags(void **st)
{
    (void)st;
    result r;
    read_all(S("a\0b\r\n\xc3\xa9\r\n.\r\n"), 0, 0, 0, &r);
    assert_int_equal(r.flags, PC_DATA_NUL | PC_DATA_8BIT);
    assert_int_equal(r.out.n, 9);
    assert_memory_equal(r.out.p, "a\0b\r\n\xc3\xa9\r\n", 9);
    result_free(&r);
    read_all(S("plain\r\n.\r\n"), 0, 0, 0, &r);
    assert_int_equal(r.flags, 0);
    result_free(&r);
}

static void test_long_line(void **st)
{
    (void)st;
    result r;
    read_all(S("12345678\r\n.\r\n"), 0, 10, 0, &r);
    assert_int_equal(r.flags & PC_DATA_LONG_LINE, 0);
    result_free(&r);
    read_all(S("..2345678\r\n.\r\n"), 0, 10, 0, &r); /* the stuffing dot counts on the wire */
    assert_int_equal(r.flags & PC_DATA_LONG_LINE, PC_DATA_LONG_LINE);
    result_free(&r);
    read_all(S("123456789\r\nshort\r\n.\r\n"), 0, 10, 0, &r);
    assert_int_equal(r.flags & PC_DATA_LONG_LINE, PC_DATA_LONG_LINE);
    assert_int_equal(r.out.n, 18); /* still emitted */
    result_free(&r);
}

static void test_size_limit(void **st)
{
    (void)st;
    result r;
    read_all(S("0123456789abcdef\r\n.\r\nNOOP\r\n"), 0, 0, 10, &r);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.consumed, 21);
    assert_true(r.flags & PC_DATA_TOO_BIG);
    assert_int_equal(r.size, 18);
    assert_int_equal(r.out.n, 10);
    assert_memory_equal(r.out.p, "0123456789", 10);
    result_free(&r);
    read_all(S("0123456789\r\n.\r\n"), 0, 0, 12, &r);
    assert_int_equal(r.flags & PC_DATA_TOO_BIG, 0);
    assert_int_equal(r.out.n, 12);
    result_free(&r);
    read_all(S("0123456789\r\n.\r\n"), 0, 0, 11, &r);
    assert_true(r.flags & PC_DATA_TOO_BIG);
    assert_int_equal(r.out.n, 11);
    result_free(&r);
}

static void test_received(void **st)
{
    (void)st;
    result r;
    const char msg[] = "Received: from a\r\nreceived: from b\r\n\tby c\r\nRECEIVED:x\r\n"
                       "X-Received: no\r\n Received: no\r\nReceived : no\r\nReceive: no\r\n"
                       ".Received: stuffed\r\n"
                       "\r\nReceived: in the body\r\n.\r\n";
    read_all(msg, sizeof(msg) - 1, 0, 0, 0, &r);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.received, 4);
    result_free(&r);
    read_all(S("Subject: x\r\n\r\nReceived: a\r\n.\r\n"), 0, 0, 0, &r);
    assert_int_equal(r.received, 0);
    result_free(&r);
    read_all(S("Received:\r\n.\r\n"), 0, 0, 0, &r);
    assert_int_equal(r.received, 1);
    result_free(&r);
}

static void test_emit_failure(void **st)
{
    (void)st;
    pc_smtp_data d;
    sink s;
    sink_init(&s);
    s.fail_after = 0;
    pc_smtp_data_init(&d, 0, 0, 0);
    int done = 0;
    assert_int_equal(pc_smtp_data_feed(&d, S("abc\r\n.\r\n"), sink_emit, &s, &done), (size_t)-1);
    assert_int_equal(done, 0);
    free(s.p);
}

/* ---- writer ------------------------------------------------------------------------------------
 */

static void write_all(const char *in, size_t n, sink *out)
{
    pc_stuff w;
    pc_stuff_init(&w);
    sink_init(out);
    /* one byte at a time, to exercise state across calls */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pc_stuff_feed(&w, in + i, 1, sink_emit, out), 0);
    assert_int_equal(pc_stuff_end(&w, sink_emit, out), 0);
    /* and whole: same bytes */
    pc_stuff w2;
    sink o2;
    pc_stuff_init(&w2);
    sink_init(&o2);
    assert_int_equal(pc_stuff_feed(&w2, in, n, sink_emit, &o2), 0);
    assert_int_equal(pc_stuff_end(&w2, sink_emit, &o2), 0);
    assert_int_equal(o2.n, out->n);
    if (o2.n)
        assert_memory_equal(o2.p, out->p, o2.n);
    free(o2.p);
}

static void expect_wire(const char *in, size_t n, const char *want, size_t wn)
{
    sink o;
    write_all(in, n, &o);
    assert_int_equal(o.n, wn);
    assert_memory_equal(o.p, want, wn);
    free(o.p);
}

static void test_writer(void **st)
{
    (void)st;
    expect_wire(S(""), S(".\r\n"));
    expect_wire(S("abc"), S("abc\r\n.\r\n"));
    expect_wire(S("abc\r\n"), S("abc\r\n.\r\n"));
    expect_wire(S("."), S("..\r\n.\r\n"));
    expect_wire(S(".\r\n"), S("..\r\n.\r\n"));
    expect_wire(S("a\r\n.b\r\n..\r\nc.\r\n"), S("a\r\n..b\r\n...\r\nc.\r\n.\r\n"));
    /* not canonical: bare LF / CR are written as CRLF and still get their dots doubled */
    expect_wire(S("a\n.\nb"), S("a\r\n..\r\nb\r\n.\r\n"));
    expect_wire(S("a\r.\r"), S("a\r\n..\r\n.\r\n"));
}

static void test_writer_failure(void **st)
{
    (void)st;
    pc_stuff w;
    sink o;
    pc_stuff_init(&w);
    sink_init(&o);
    o.fail_after = 0;
    assert_int_equal(pc_stuff_feed(&w, S("a"), sink_emit, &o), -1);
    assert_int_equal(pc_stuff_end(&w, sink_emit, &o), -1);
    free(o.p);
}

/* reader -> writer -> reader: the second read gives exactly the first content, and the wire form
 * has a single end marker, at its end. */
static void round_trip(const char *in, size_t n, int normalize)
{
    result a, b;
    read_split(in, n, NULL, 0, normalize, 0, 0, &a);
    sink w;
    write_all(a.out.p, a.out.n, &w);
    read_all(w.p, w.n, normalize, 0, 0, &b);
    assert_int_equal(b.done, 1);
    assert_int_equal(b.consumed, w.n);
    assert_int_equal(b.flags & (PC_DATA_BARE_CR | PC_DATA_BARE_LF), 0);
    assert_int_equal(a.out.n, b.out.n);
    if (a.out.n)
        assert_memory_equal(a.out.p, b.out.p, a.out.n);
    free(w.p);
    result_free(&a);
    result_free(&b);
}

static void test_round_trip(void **st)
{
    (void)st;
    static const char *fixed[] = {
        "Subject: x\r\n\r\n..dot\r\n.\r\n",
        "\n.\n.\r\n.\r\n.\r\n",
        "\r.\r\n..\n.\r\r\n.\r\n",
        ".x\r\n.\r\n",
        "a\n.\r\nb\r\n.\r\n",
        "\r\n.\n\r\n.\r\n",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        for (int norm = 0; norm <= 1; norm++)
            round_trip(fixed[i], strlen(fixed[i]), norm);
    /* random messages over a hostile alphabet, always terminated */
    static const char alpha[] = ".\r\nxR\0";
    uint32_t seed = 12345;
    char buf[80];
    for (int iter = 0; iter < 400; iter++) {
        size_t n = 0, len = (size_t)(iter % 60);
        for (; n < len; n++) {
            seed = seed * 1103515245u + 12345u;
            buf[n] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
        }
        memcpy(buf + n, "\r\n.\r\n", 5);
        round_trip(buf, n + 5, iter & 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),         cmocka_unit_test(test_after_done),
        cmocka_unit_test(test_unstuff),       cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_bare_policies), cmocka_unit_test(test_flags),
        cmocka_unit_test(test_long_line),     cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_received),      cmocka_unit_test(test_emit_failure),
        cmocka_unit_test(test_writer),        cmocka_unit_test(test_writer_failure),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
