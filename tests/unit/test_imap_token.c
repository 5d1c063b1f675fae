/* test_imap_token.c — IMAP tokenizer event transcripts fed whole, byte by byte, split anywhere:
 * literal abuse, non-sync floods, desync attempts, every limit; the line and FETCH helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap/imap_token.h"

/* ---- transcript ------------------------------------------------------------------------------
 * T'..' first text segment of a line, t'..' a later one, L(size,flags,depth) with flags s (sync),
 * n (non-sync), b (literal8) or -, D'..' literal content (consecutive events merged), E line end,
 * !NAME@k an error after k bytes of the segment (TOO_BIG carries (size)), +k bytes left pending.
 * In '..', CR and LF are written \r and \n, other control and 8-bit bytes \xHH. */

typedef struct str {
    char *p;
    size_t n, cap;
} str;

static void put(str *s, const char *p, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
        assert_non_null(s->p);
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = 0;
}

static void putf(str *s, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(k > 0 && (size_t)k < sizeof(tmp));
    put(s, tmp, (size_t)k);
}

static void put_esc(str *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            put(s, "\\r", 2);
        else if (c == '\n')
            put(s, "\\n", 2);
        else if (c < 0x20 || c >= 0x7f)
            putf(s, "\\x%02x", c);
        else
            put(s, (const char *)&c, 1);
    }
}

static const char *err_name(int e)
{
    switch (e) {
    case PC_IMAP_E_TOO_LONG: return "TOO_LONG";
    case PC_IMAP_E_LITERAL_TOO_BIG: return "TOO_BIG";
    case PC_IMAP_E_BAD_LITERAL: return "BAD_LITERAL";
    case PC_IMAP_E_BARE_LF: return "BARE_LF";
    case PC_IMAP_E_BARE_CR: return "BARE_CR";
    case PC_IMAP_E_NUL: return "NUL";
    case PC_IMAP_E_SYNTAX: return "SYNTAX";
    case PC_IMAP_E_TOO_DEEP: return "TOO_DEEP";
    default: return "?";
    }
}

/* Feeds in[0..n) in pieces ending at cut[0..ncut) and then n, as a caller would: a buffer that
 * keeps unconsumed bytes. Returns the transcript (caller frees). */
static char *drive(const pc_imap_tok_cfg *cfg, const char *in, size_t n, const size_t *cut,
                   size_t ncut)
{
    pc_imap_tok t;
    pc_imap_tok_init(&t, cfg);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t have = 0, pos = 0;
    str o = {0};
    put(&o, "", 0);
    int in_data = 0, stopped = 0;
    uint64_t lit_left = 0;
    for (size_t c = 0; c <= ncut && !stopped; c++) {
        size_t end = c < ncut ? cut[c] : n;
        if (end < pos)
            continue;
        memcpy(buf + have, in + pos, end - pos);
        have += end - pos;
        pos = end;
        for (;;) {
            pc_imap_ev ev;
            int r = pc_imap_tok_next(&t, buf, have, &ev);
            assert_int_equal(r, ev.type);
            assert_true(ev.consumed <= have);
            assert_true(ev.data.n <= have);
            if (ev.data.n)
                assert_ptr_equal(ev.data.p, buf);
            if (r == PC_IMAP_EV_NEED_MORE) {
                assert_int_equal(ev.consumed, 0);
                break;
            }
            if (r != PC_IMAP_EV_LITERAL_DATA && in_data) {
                put(&o, "'", 1);
                in_data = 0;
            }
            if (o.n && !in_data && r != PC_IMAP_EV_LITERAL_DATA)
                put(&o, " ", 1);
            switch (r) {
            case PC_IMAP_EV_TEXT:
                assert_true(ev.data.n > 0);
                assert_int_equal(ev.consumed, ev.data.n);
                put(&o, ev.first ? "T'" : "t'", 2);
                put_esc(&o, ev.data.p, ev.data.n);
                put(&o, "'", 1);
                break;
            case PC_IMAP_EV_LITERAL: {
                assert_int_equal(ev.consumed, 0);
                char f[4] = {0};
                size_t k = 0;
                if (ev.lit_flags & PC_IMAP_LIT_SYNC)
                    f[k++] = 's';
                if (ev.lit_flags & PC_IMAP_LIT_NONSYNC)
                    f[k++] = 'n';
                if (ev.lit_flags & PC_IMAP_LIT_BINARY)
                    f[k++] = 'b';
                if (!k)
                    f[0] = '-';
                putf(&o, "L(%llu,%s,%u)", (unsigned long long)ev.lit_size, f, ev.depth);
                lit_left = ev.lit_size;
                break;
            }
            case PC_IMAP_EV_LITERAL_DATA:
                assert_true(ev.data.n > 0);
                assert_int_equal(ev.consumed, ev.data.n);
                assert_true(ev.data.n <= lit_left);
                lit_left -= ev.data.n;
                assert_true(ev.lit_left == lit_left);
                if (!in_data) {
                    if (o.n)
                        put(&o, " ", 1);
                    put(&o, "D'", 2);
                    in_data = 1;
                }
                put_esc(&o, ev.data.p, ev.data.n);
                break;
            case PC_IMAP_EV_LINE_END:
                assert_int_equal(ev.consumed, 2);
                assert_int_equal(ev.data.n, 2);
                assert_memory_equal(ev.data.p, "\r\n", 2);
                put(&o, "E", 1);
                break;
            default: {
                assert_true(r < 0);
                assert_int_equal(ev.consumed, 0);
                put(&o, "!", 1);
                put(&o, err_name(r), strlen(err_name(r)));
                if (r == PC_IMAP_E_LITERAL_TOO_BIG) {
                    if (ev.lit_size == UINT64_MAX)
                        put(&o, "(max)", 5);
                    else
                        putf(&o, "(%llu)", (unsigned long long)ev.lit_size);
                }
                putf(&o, "@%zu", ev.data.n);
                /* sticky */
                pc_imap_ev again;
                assert_int_equal(pc_imap_tok_next(&t, buf, have, &again), r);
                stopped = 1;
                break;
            }
            }
            if (stopped)
                break;
            memmove(buf, buf + ev.consumed, have - ev.consumed);
            have -= ev.consumed;
        }
    }
    if (in_data)
        put(&o, "'", 1);
    if (!stopped && have)
        putf(&o, "%s+%zu", o.n ? " " : "", have);
    free(buf);
    return o.p;
}

/* Runs whole, byte by byte, at every two-piece split and in a few pseudo-random pieces; all must
 * give the same transcript, which is returned. */
static char *run_all(const pc_imap_tok_cfg *cfg, const char *in, size_t n)
{
    char *whole = drive(cfg, in, n, NULL, 0);
    size_t *cuts = malloc((n + 1) * sizeof(size_t));
    assert_non_null(cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    char *b = drive(cfg, in, n, cuts, n);
    assert_string_equal(b, whole);
    free(b);
    for (size_t k = 0; k <= n; k++) {
        b = drive(cfg, in, n, &k, 1);
        assert_string_equal(b, whole);
        free(b);
    }
    uint32_t seed = (uint32_t)n * 2654435761u + 1;
    for (int r = 0; r < 4; r++) {
        size_t m = 0, at = 0;
        while (at < n) {
            seed = seed * 1103515245u + 12345u;
            at += 1 + (seed >> 16) % 7;
            cuts[m++] = at < n ? at : n;
        }
        b = drive(cfg, in, n, cuts, m);
        assert_string_equal(b, whole);
        free(b);
    }
    free(cuts);
    return whole;
}

static void check_n(const pc_imap_tok_cfg *cfg, const char *in, size_t n, const char *want)
{
    char *got = run_all(cfg, in, n);
    assert_string_equal(got, want);
    free(got);
}

#define CHECK(cfg, lit, want) check_n(cfg, lit, sizeof(lit) - 1, want)

static pc_imap_tok_cfg cli(void)
{
    pc_imap_tok_cfg c;
    pc_imap_tok_cfg_default(&c, 0);
    return c;
}

static pc_imap_tok_cfg srv(void)
{
    pc_imap_tok_cfg c;
    pc_imap_tok_cfg_default(&c, 1);
    return c;
}

/* ---- tokenizer ------------------------------------------------------------------------------ */

/* The proxy may insert its own line only where the stream stands between two lines. */
static void test_between_lines(void **st)
{
    (void)st;
    pc_imap_tok_cfg cfg;
    pc_imap_tok_cfg_default(&cfg, 1);
    pc_imap_tok t;
    pc_imap_tok_init(&t, &cfg);
    assert_true(pc_imap_tok_between_lines(&t));
    static const char in[] = "* 1 FETCH (BODY[] {5}\r\nabcde)\r\n";
    size_t off = 0, n = sizeof(in) - 1;
    int seen_literal_data = 0;
    while (off < n) {
        pc_imap_ev ev;
        /* Feed the stream up to the middle of the literal first, then the rest. */
        size_t avail = seen_literal_data ? n - off : (off < 26 ? 26 - off : n - off);
        int rc = pc_imap_tok_next(&t, in + off, avail, &ev);
        assert_true(rc >= 0);
        if (rc == PC_IMAP_EV_NEED_MORE) {
            seen_literal_data = 1;
            continue;
        }
        off += ev.consumed;
        if (rc == PC_IMAP_EV_LITERAL_DATA && ev.lit_left > 0)
            assert_false(pc_imap_tok_between_lines(&t)); /* inside the literal */
        if (rc == PC_IMAP_EV_TEXT && ev.data.p[ev.data.n - 1] != '\n')
            assert_false(pc_imap_tok_between_lines(&t)); /* inside the line */
        if (rc == PC_IMAP_EV_LINE_END)
            assert_true(pc_imap_tok_between_lines(&t));
    }
    assert_true(pc_imap_tok_between_lines(&t));
}

static void test_defaults(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli(), s = srv();
    assert_int_equal(c.server, 0);
    assert_int_equal(c.max_line, 8192);
    assert_true(c.max_literal == 50u * 1024 * 1024);
    assert_true(c.max_nonsync == PC_IMAP_LITERAL_MINUS_MAX);
    assert_int_equal(c.max_depth, 64);
    assert_int_equal(c.literal8, 0);
    assert_int_equal(s.server, 1);
    assert_int_equal(s.max_line, 65536);
    assert_true(s.max_nonsync == 0);
}

static void test_client_lines(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    CHECK(&c, "A1 NOOP\r\nA2 CAPABILITY\r\n", "T'A1 NOOP' E T'A2 CAPABILITY' E");
    CHECK(&c, "\r\n", "E");
    CHECK(&c, "A1 NOOP\r\nA2 NO", "T'A1 NOOP' E +5");
    CHECK(&c, "A1 NOOP\r", "+8");
    CHECK(&c, "", "");
    CHECK(&c, "A1 SELECT INBOX\r\nA2 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM)])\r\n",
          "T'A1 SELECT INBOX' E T'A2 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM)])' E");
    /* a status word means nothing in a command: "{1}" is a literal */
    CHECK(&c, "A1 OK {1}\r\nx\r\n", "T'A1 OK {1}\\r\\n' L(1,s,0) D'x' E");
}

static void test_login_literals(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    CHECK(&c, "A1 LOGIN {4}\r\nuser {4}\r\npass\r\n",
          "T'A1 LOGIN {4}\\r\\n' L(4,s,0) D'user' t' {4}\\r\\n' L(4,s,0) D'pass' E");
    /* literal content is opaque: quotes, braces, CRLF, NUL and backslashes pass untouched */
    CHECK(&c, "A1 LOGIN \"fred\" {9}\r\na\"{5}\r\n\\\0\r\nA2 NOOP\r\n",
          "T'A1 LOGIN \"fred\" {9}\\r\\n' L(9,s,0) D'a\"{5}\\r\\n\\\\x00' E T'A2 NOOP' E");
    CHECK(&c, "A1 LOGIN {0}\r\n {0}\r\n\r\n",
          "T'A1 LOGIN {0}\\r\\n' L(0,s,0) t' {0}\\r\\n' L(0,s,0) E");
    CHECK(&c, "A1 LOGIN {4}\r\nus", "T'A1 LOGIN {4}\\r\\n' L(4,s,0) D'us'");
    CHECK(&c, "A1 LOGIN {4}\r\nuser {4}\r", "T'A1 LOGIN {4}\\r\\n' L(4,s,0) D'user' +5");
    /* leading zeros are digits, not an overflow */
    CHECK(&c, "A1 LOGIN {000000000000000000000000000003}\r\nabc x\r\n",
          "T'A1 LOGIN {000000000000000000000000000003}\\r\\n' L(3,s,0) D'abc' t' x' E");
    /* inside parentheses, and followed by ')' */
    CHECK(&c, "A1 X ({3}\r\nfoo)\r\n", "T'A1 X ({3}\\r\\n' L(3,s,1) D'foo' t')' E");
}

static void test_nonsync(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli(); /* LITERAL-: up to 4096 */
    CHECK(&c, "A1 LOGIN {4+}\r\nuser {4+}\r\npass\r\n",
          "T'A1 LOGIN {4+}\\r\\n' L(4,n,0) D'user' t' {4+}\\r\\n' L(4,n,0) D'pass' E");
    CHECK(&c, "A1 APPEND INBOX {4097+}\r\n", "!TOO_BIG(4097)@25");
    CHECK(&c, "A1 APPEND INBOX {4096+}\r\n", "T'A1 APPEND INBOX {4096+}\\r\\n' L(4096,n,0)");
    /* the same sizes synchronising: fine */
    CHECK(&c, "A1 APPEND INBOX {4097}\r\n", "T'A1 APPEND INBOX {4097}\\r\\n' L(4097,s,0)");
    c.max_nonsync = 0; /* neither LITERAL+ nor LITERAL- */
    CHECK(&c, "A1 LOGIN {5+}\r\nhello\r\n", "!BAD_LITERAL@15");
    c.max_nonsync = c.max_literal; /* LITERAL+ */
    c.max_nonsync_total = 0;
    CHECK(&c, "A1 APPEND INBOX {100000+}\r\n", "T'A1 APPEND INBOX {100000+}\\r\\n' L(100000,n,0)");
    /* flood: the sum of non-sync literals in one command is limited; it resets per line */
    c.max_nonsync = 4;
    c.max_nonsync_total = 10;
    CHECK(&c, "A1 X {4+}\r\naaaa {4+}\r\nbbbb {4+}\r\ncccc\r\n",
          "T'A1 X {4+}\\r\\n' L(4,n,0) D'aaaa' t' {4+}\\r\\n' L(4,n,0) D'bbbb' !TOO_BIG(4)@7");
    CHECK(&c, "A1 X {4+}\r\naaaa {4+}\r\nbbbb\r\nA2 X {4+}\r\ncccc\r\n",
          "T'A1 X {4+}\\r\\n' L(4,n,0) D'aaaa' t' {4+}\\r\\n' L(4,n,0) D'bbbb' E "
          "T'A2 X {4+}\\r\\n' L(4,n,0) D'cccc' E");
    CHECK(&c, "A1 X {4+}\r\naaaa {3+}\r\nbbb {3+}\r\nccc\r\n",
          "T'A1 X {4+}\\r\\n' L(4,n,0) D'aaaa' t' {3+}\\r\\n' L(3,n,0) D'bbb' t' {3+}\\r\\n' "
          "L(3,n,0) D'ccc' E");
    /* a server never sends non-synchronising literals */
    pc_imap_tok_cfg s = srv();
    s.max_nonsync = 100;
    CHECK(&s, "* 1 FETCH (BODY[] {5+}\r\nhello)\r\n", "!BAD_LITERAL@24");
}

static void test_append_2k(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    static const char head[] = "A2 APPEND INBOX (\\Seen) {2048}\r\n";
    static const char tail[] = "\r\nA3 NOOP\r\n";
    char in[sizeof(head) + 2048 + sizeof(tail)];
    size_t n = 0;
    memcpy(in, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    for (size_t i = 0; i < 2048; i++)
        in[n++] = (char)(i * 7 + (i >> 8)); /* every byte value, CR LF NUL included */
    memcpy(in + n, tail, sizeof(tail) - 1);
    n += sizeof(tail) - 1;
    str want = {0};
    put(&want, "T'", 2);
    put_esc(&want, head, sizeof(head) - 1);
    put(&want, "' L(2048,s,0) D'", 16);
    put_esc(&want, in + sizeof(head) - 1, 2048);
    put(&want, "' E T'A3 NOOP' E", 16);
    check_n(&c, in, n, want.p);
    free(want.p);
}

static void test_server_literals(void **st)
{
    (void)st;
    pc_imap_tok_cfg s = srv();
    CHECK(&s, "* 1 FETCH (UID 5 BODY[] {12}\r\nHello world!)\r\n",
          "T'* 1 FETCH (UID 5 BODY[] {12}\\r\\n' L(12,-,1) D'Hello world!' t')' E");
    CHECK(&s, "* LIST (\\Noselect) \"/\" {3}\r\nfoo\r\n",
          "T'* LIST (\\Noselect) \"/\" {3}\\r\\n' L(3,-,0) D'foo' E");
    CHECK(&s,
          "* 3 FETCH (ENVELOPE (NIL {5}\r\nhello NIL) BODY[HEADER.FIELDS (SUBJECT)] {0}\r\n"
          " FLAGS (\\Seen))\r\n",
          "T'* 3 FETCH (ENVELOPE (NIL {5}\\r\\n' L(5,-,2) D'hello' t' NIL) BODY[HEADER.FIELDS "
          "(SUBJECT)] {0}\\r\\n' L(0,-,1) t' FLAGS (\\Seen))' E");
    CHECK(&s, "* 1 FETCH (BODY[] {2}\r\nab)\r\n* 2 FETCH (FLAGS ())\r\nA5 OK done\r\n",
          "T'* 1 FETCH (BODY[] {2}\\r\\n' L(2,-,1) D'ab' t')' E T'* 2 FETCH (FLAGS ())' E "
          "T'A5 OK done' E");
    /* a message whose content looks like IMAP responses does not desynchronise */
    CHECK(&s, "* 1 FETCH (RFC822 {19}\r\n)\r\nA1 OK {3}\r\n* BYE)\r\n",
          "T'* 1 FETCH (RFC822 {19}\\r\\n' L(19,-,1) D')\\r\\nA1 OK {3}\\r\\n* BYE' t')' E");
    /* the server's literal is not synchronising */
    CHECK(&s, "* 2 OKAY {1}\r\nx\r\n", "T'* 2 OKAY {1}\\r\\n' L(1,-,0) D'x' E");
}

static void test_server_free_text(void **st)
{
    (void)st;
    pc_imap_tok_cfg s = srv();
    CHECK(&s, "* OK [ALERT] use {5}\r\n", "T'* OK [ALERT] use {5}' E");
    CHECK(&s, "A1 NO \"unbalanced ( {3}\r\n", "T'A1 NO \"unbalanced ( {3}' E");
    CHECK(&s, "a1 bad ) :(\r\n", "T'a1 bad ) :(' E");
    CHECK(&s, "+ {5}\r\n", "T'+ {5}' E");
    CHECK(&s, "+\r\n", "T'+' E");
    CHECK(&s, "+ \"\r\n", "T'+ \"' E");
    CHECK(&s, "* BYE\r\n* PREAUTH x (\r\n", "T'* BYE' E T'* PREAUTH x (' E");
    CHECK(&s, "* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\n",
          "T'* OK [PERMANENTFLAGS (\\Seen \\*)] Limited' E");
    CHECK(&s, "* CAPABILITY IMAP4rev1 LITERAL+\r\n", "T'* CAPABILITY IMAP4rev1 LITERAL+' E");
    /* not a status response: the rules apply */
    CHECK(&s, "* SEARCH (\r\n", "!SYNTAX@12");
    CHECK(&s, "* OKAY (\r\n", "!SYNTAX@10");
    /* still framed by CRLF only */
    CHECK(&s, "* OK hi\n", "!BARE_LF@8");
    CHECK(&s, "* OK a\0", "!NUL@7");
    CHECK(&s, "+ \0", "!NUL@3");
    CHECK(&s, "* OK a\rb", "!BARE_CR@8");
}

static void test_literal8(void **st)
{
    (void)st;
    pc_imap_tok_cfg s = srv();
    CHECK(&s, "* 1 FETCH (BINARY[] ~{3}\r\na\0b)\r\n", "!BAD_LITERAL@26");
    s.literal8 = 1;
    CHECK(&s, "* 1 FETCH (BINARY[] ~{3}\r\na\0b)\r\n",
          "T'* 1 FETCH (BINARY[] ~{3}\\r\\n' L(3,b,1) D'a\\x00b' t')' E");
    pc_imap_tok_cfg c = cli();
    CHECK(&c, "A1 APPEND INBOX ~{3}\r\nabc\r\n", "!BAD_LITERAL@22");
    c.literal8 = 1;
    CHECK(&c, "A1 APPEND INBOX ~{3}\r\nabc\r\n",
          "T'A1 APPEND INBOX ~{3}\\r\\n' L(3,sb,0) D'abc' E");
    CHECK(&c, "A1 APPEND INBOX ~{3+}\r\nabc\r\n",
          "T'A1 APPEND INBOX ~{3+}\\r\\n' L(3,nb,0) D'abc' E");
    /* '~' is an atom character elsewhere */
    CHECK(&c, "A1 SELECT ~foo\r\n", "T'A1 SELECT ~foo' E");
    CHECK(&c, "A1 SELECT ~\r\n", "T'A1 SELECT ~' E");
    CHECK(&c, "A1 SELECT ~ {1}\r\nx\r\n", "T'A1 SELECT ~ {1}\\r\\n' L(1,s,0) D'x' E");
    CHECK(&c, "A1 SELECT a~{3}\r\nabc\r\n", "!SYNTAX@13");
    CHECK(&c, "A1 SELECT ~~{3}\r\nabc\r\n", "!SYNTAX@13");
}

static void test_quoted(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    CHECK(&c, "A1 LOGIN \"us{5}er\" \"p\\\"a\\\\ss\"\r\n",
          "T'A1 LOGIN \"us{5}er\" \"p\\\"a\\\\ss\"' E");
    CHECK(&c, "A1 LOGIN \"\" \"(\"\r\n", "T'A1 LOGIN \"\" \"(\"' E");
    CHECK(&c, "A1 LOGIN \"a{5}\r\nhello\"\r\n", "!SYNTAX@15");
    CHECK(&c, "A1 LOGIN \"a\nb\"\r\n", "!SYNTAX@12");
    CHECK(&c, "A1 LOGIN \"a\\x\"\r\n", "!SYNTAX@13");
    CHECK(&c, "A1 LOGIN a\"b\" c\r\n", "!SYNTAX@11");
    CHECK(&c, "A1 LOGIN \"x\0\"\r\n", "!NUL@12");
    CHECK(&c, "A1 LOGIN \"x\\\0\"\r\n", "!NUL@13");
    /* an unterminated quote waits for more */
    CHECK(&c, "A1 LOGIN \"abc", "+13");
    /* a quoted string, then a literal */
    CHECK(&c, "A1 LOGIN \"a\\\"{1}\" {1}\r\nx\r\n",
          "T'A1 LOGIN \"a\\\"{1}\" {1}\\r\\n' L(1,s,0) D'x' E");
}

static void test_literal_syntax(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    CHECK(&c, "A1 LOGIN {3}\r\nfooX {3}\r\nbar\r\n",
          "T'A1 LOGIN {3}\\r\\n' L(3,s,0) D'foo' !SYNTAX@1");
    CHECK(&c, "A1 LOGIN {3}\r\nfoo{3}\r\nbar\r\n",
          "T'A1 LOGIN {3}\\r\\n' L(3,s,0) D'foo' !SYNTAX@1");
    CHECK(&c, "A1 LOGIN {3}\r\nfoo)\r\n", "T'A1 LOGIN {3}\\r\\n' L(3,s,0) D'foo' !SYNTAX@1");
    CHECK(&c, "A1 LOGIN {3}\r\nfoo\n", "T'A1 LOGIN {3}\\r\\n' L(3,s,0) D'foo' !SYNTAX@1");
    CHECK(&c, "A1 LOGIN {3}x\r\n", "!BAD_LITERAL@13");
    CHECK(&c, "A1 LOGIN {3} \r\n", "!BAD_LITERAL@13");
    CHECK(&c, "A1 LOGIN x{3}\r\n", "!SYNTAX@11");
    CHECK(&c, "{3}\r\nabc\r\n", "!SYNTAX@1");
    CHECK(&c, "A1 X {}\r\n", "!BAD_LITERAL@7");
    CHECK(&c, "A1 X {a}\r\n", "!BAD_LITERAL@7");
    CHECK(&c, "A1 X {5a}\r\n", "!BAD_LITERAL@8");
    CHECK(&c, "A1 X {+}\r\n", "!BAD_LITERAL@7");
    CHECK(&c, "A1 X {-1}\r\n", "!BAD_LITERAL@7");
    CHECK(&c, "A1 X { 5}\r\n", "!BAD_LITERAL@7");
    CHECK(&c, "A1 X {5++}\r\n", "!BAD_LITERAL@9");
    CHECK(&c, "A1 X {5}\n", "!BARE_LF@9");
    CHECK(&c, "A1 X {5}\rx", "!BARE_CR@10");
    CHECK(&c, "A1 X {5", "+7");
}

static void test_huge_sizes(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    CHECK(&c, "A1 APPEND INBOX {99999999999999999999}\r\n", "!TOO_BIG(max)@40");
    CHECK(&c, "A1 APPEND INBOX {4294967296}\r\n", "!TOO_BIG(4294967296)@30");
    CHECK(&c, "A1 APPEND INBOX {18446744073709551616}\r\n", "!TOO_BIG(max)@40");
    CHECK(&c, "A1 APPEND INBOX {18446744073709551615}\r\n", "!TOO_BIG(max)@40");
    CHECK(&c, "A1 APPEND INBOX {52428801}\r\n", "!TOO_BIG(52428801)@28");
    CHECK(&c, "A1 APPEND INBOX {52428800}\r\n",
          "T'A1 APPEND INBOX {52428800}\\r\\n' L(52428800,s,0)");
    /* with no effective limit, 2^64 - 1 is a size and 2^64 still is not */
    c.max_literal = UINT64_MAX;
    CHECK(&c, "A1 APPEND INBOX {18446744073709551615}\r\n",
          "T'A1 APPEND INBOX {18446744073709551615}\\r\\n' L(18446744073709551615,s,0)");
    CHECK(&c, "A1 APPEND INBOX {18446744073709551616}\r\n", "!TOO_BIG(max)@40");
    CHECK(&c, "A1 APPEND INBOX {4294967296}\r\n",
          "T'A1 APPEND INBOX {4294967296}\\r\\n' L(4294967296,s,0)");
    c.max_literal = 10;
    CHECK(&c, "A1 X {10}\r\n", "T'A1 X {10}\\r\\n' L(10,s,0)");
    CHECK(&c, "A1 X {11}\r\n", "!TOO_BIG(11)@11");
    pc_imap_tok_cfg s = srv();
    CHECK(&s, "* 1 FETCH (BODY[] {99999999999999999999}\r\n", "!TOO_BIG(max)@42");
}

static void test_line_limit(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    c.max_line = 16;
    CHECK(&c, "A1 NOOP 123456\r\n", "T'A1 NOOP 123456' E");
    CHECK(&c, "A1 NOOP 1234567\r\n", "!TOO_LONG@17");
    /* reported as soon as crossed, without waiting for a CRLF */
    CHECK(&c, "A1 NOOP 1234567890123456789", "!TOO_LONG@17");
    /* literal content does not count; the segments of one line add up */
    CHECK(&c, "A1 X {20}\r\n01234567890123456789\r\n",
          "T'A1 X {20}\\r\\n' L(20,s,0) D'01234567890123456789' E");
    CHECK(&c, "A1 X {2}\r\nab {2}\r\ncd\r\n",
          "T'A1 X {2}\\r\\n' L(2,s,0) D'ab' t' {2}\\r\\n' L(2,s,0) D'cd' !TOO_LONG@1");
    /* per line */
    CHECK(&c, "A1 NOOP 123456\r\nA2 NOOP 123456\r\n", "T'A1 NOOP 123456' E T'A2 NOOP 123456' E");
    pc_imap_tok_cfg s = srv();
    s.max_line = 10;
    CHECK(&s, "* OK 12345\r\n", "!TOO_LONG@11");
    CHECK(&s, "* OK 123\r\n", "T'* OK 123' E");
}

static void test_nul_bare(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    CHECK(&c, "A1 NO\0OP\r\n", "!NUL@6");
    CHECK(&c, "A1 NOOP\n", "!BARE_LF@8");
    CHECK(&c, "A1 NOOP\nA2 NOOP\r\n", "!BARE_LF@8");
    CHECK(&c, "A1 NOOP\rX", "!BARE_CR@9");
    CHECK(&c, "A1 NOOP\r\r\n", "!BARE_CR@9");
    CHECK(&c, "\n", "!BARE_LF@1");
    CHECK(&c, "A1 NOOP\r\n\n", "T'A1 NOOP' E !BARE_LF@1");
}

static void test_nesting(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    c.max_depth = 3;
    CHECK(&c, "A1 X (((a)))\r\n", "T'A1 X (((a)))' E");
    CHECK(&c, "A1 X ((((a))))\r\n", "!TOO_DEEP@9");
    CHECK(&c, "A1 X ((a)) ((b))\r\n", "T'A1 X ((a)) ((b))' E");
    CHECK(&c, "A1 X a)\r\n", "!SYNTAX@7");
    CHECK(&c, "A1 X (a\r\n", "!SYNTAX@9");
    CHECK(&c, "A1 X ({1}\r\n(\r\n", "T'A1 X ({1}\\r\\n' L(1,s,1) D'(' !SYNTAX@2");
    c.max_depth = 0;
    CHECK(&c, "A1 X (\r\n", "!TOO_DEEP@6");
    /* the default depth, 64, exactly and one over */
    pc_imap_tok_cfg s = srv();
    for (int depth = 64; depth <= 65; depth++) {
        char deep[200];
        size_t n = 0;
        memcpy(deep, "* X ", 4);
        n = 4;
        for (int i = 0; i < depth; i++)
            deep[n++] = '(';
        for (int i = 0; i < depth; i++)
            deep[n++] = ')';
        deep[n++] = '\r';
        deep[n++] = '\n';
        char *got = run_all(&s, deep, n);
        if (depth == 64) {
            assert_memory_equal(got, "T'* X ((", 8);
            assert_string_equal(got + strlen(got) - 5, "))' E");
        } else {
            assert_string_equal(got, "!TOO_DEEP@69");
        }
        free(got);
    }
}

static void test_resume(void **st)
{
    (void)st;
    pc_imap_tok_cfg c = cli();
    c.max_literal = 100;
    static const char in[] = "A1 APPEND INBOX {101}\r\nA2 NOOP\r\n";
    pc_imap_tok t;
    pc_imap_ev ev;
    pc_imap_tok_init(&t, &c);
    assert_int_equal(pc_imap_tok_resume(&t), -1); /* no error */
    assert_int_equal(pc_imap_tok_next(&t, in, sizeof(in) - 1, &ev), PC_IMAP_E_LITERAL_TOO_BIG);
    assert_int_equal(ev.data.n, 23);
    assert_true(ev.lit_size == 101);
    assert_int_equal(ev.lit_flags, 0);
    assert_int_equal(pc_imap_tok_next(&t, in, sizeof(in) - 1, &ev), PC_IMAP_E_LITERAL_TOO_BIG);
    assert_int_equal(pc_imap_tok_resume(&t), 0);
    const char *p = in + 23;
    assert_int_equal(pc_imap_tok_next(&t, p, 9, &ev), PC_IMAP_EV_TEXT);
    assert_int_equal(ev.first, 1);
    assert_int_equal(ev.data.n, 7);
    assert_memory_equal(ev.data.p, "A2 NOOP", 7);
    assert_int_equal(pc_imap_tok_next(&t, p + 7, 2, &ev), PC_IMAP_EV_LINE_END);
    assert_int_equal(pc_imap_tok_resume(&t), -1);

    /* a non-sync literal's content is on its way: no resuming */
    c.max_nonsync = 10;
    pc_imap_tok_init(&t, &c);
    assert_int_equal(pc_imap_tok_next(&t, "A1 X {11+}\r\n", 12, &ev), PC_IMAP_E_LITERAL_TOO_BIG);
    assert_int_equal(ev.lit_flags, PC_IMAP_LIT_NONSYNC);
    assert_int_equal(pc_imap_tok_resume(&t), -1);
    assert_int_equal(pc_imap_tok_next(&t, "A2 NOOP\r\n", 9, &ev), PC_IMAP_E_LITERAL_TOO_BIG);
    pc_imap_tok_init(&t, &c);
    assert_int_equal(pc_imap_tok_next(&t, "A1 X {1a}\r\n", 11, &ev), PC_IMAP_E_BAD_LITERAL);
    assert_int_equal(pc_imap_tok_resume(&t), -1);
    pc_imap_tok_cfg s = srv();
    s.max_literal = 1;
    pc_imap_tok_init(&t, &s);
    assert_int_equal(pc_imap_tok_next(&t, "* X {2}\r\n", 9, &ev), PC_IMAP_E_LITERAL_TOO_BIG);
    assert_int_equal(pc_imap_tok_resume(&t), -1);
}

/* Pseudo-random streams over a hostile alphabet, in every configuration: only the agreement of
 * whole / split / byte-by-byte feeding and the bounds checks in drive() are asserted. */
static void test_random_agreement(void **st)
{
    (void)st;
    static const char alpha[] = "A1 {}~+\"\\()[]\r\n0235*OKx";
    uint32_t seed = 99;
    char buf[48];
    for (int iter = 0; iter < 1500; iter++) {
        size_t len = (size_t)(iter % 47);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
        }
        pc_imap_tok_cfg c;
        pc_imap_tok_cfg_default(&c, iter & 1);
        c.literal8 = (iter >> 1) & 1;
        c.max_nonsync = (iter >> 2) & 1 ? 3 : 0;
        c.max_line = 24;
        c.max_literal = 6;
        c.max_depth = 2;
        free(run_all(&c, buf, len));
    }
}

/* ---- line heads ----------------------------------------------------------------------------- */

static void assert_slice(pc_slice s, const char *want)
{
    size_t n = strlen(want);
    if (s.n != n || (n && memcmp(s.p, want, n) != 0))
        fail_msg("slice '%.*s' != '%s'", (int)s.n, s.p ? s.p : "", want);
}

static void test_word_is(void **st)
{
    (void)st;
    assert_true(pc_imap_word_is((pc_slice){"uid", 3}, "UID"));
    assert_true(pc_imap_word_is((pc_slice){"UiD", 3}, "uid"));
    assert_false(pc_imap_word_is((pc_slice){"UI", 2}, "UID"));
    assert_false(pc_imap_word_is((pc_slice){"UIDS", 4}, "UID"));
    assert_false(pc_imap_word_is((pc_slice){"U\0D", 3}, "UID"));
    assert_true(pc_imap_word_is((pc_slice){"", 0}, ""));
}

static void test_cmd_split(void **st)
{
    (void)st;
    pc_imap_cmd_head h;
#define CMD(s) pc_imap_cmd_split(s, sizeof(s) - 1, &h)
    assert_int_equal(CMD("A1 UID FETCH 1:* (FLAGS)\r\n"), PC_OK);
    assert_slice(h.tag, "A1");
    assert_slice(h.name, "UID");
    assert_slice(h.sub, "FETCH");
    assert_slice(h.args, "1:* (FLAGS)");
    assert_int_equal(CMD("a.b] noop"), PC_OK);
    assert_slice(h.tag, "a.b]");
    assert_slice(h.name, "noop");
    assert_slice(h.sub, "");
    assert_slice(h.args, "");
    assert_int_equal(CMD("A1 LOGIN {4}\r\n"), PC_OK);
    assert_slice(h.name, "LOGIN");
    assert_slice(h.args, "{4}");
    assert_int_equal(CMD("x uid expunge"), PC_OK);
    assert_slice(h.sub, "expunge");
    assert_slice(h.args, "");
    assert_int_equal(CMD("A1 SELECT  INBOX"), PC_OK);
    assert_slice(h.args, " INBOX");
    assert_int_equal(CMD("A+1 NOOP"), PC_INVALID);
    assert_int_equal(CMD("* NOOP"), PC_INVALID);
    assert_int_equal(CMD(" NOOP"), PC_INVALID);
    assert_int_equal(CMD("A1"), PC_INVALID);
    assert_int_equal(CMD("A1 "), PC_INVALID);
    assert_int_equal(CMD("A1 UID"), PC_INVALID);
    assert_int_equal(CMD("A1 UID "), PC_INVALID);
    assert_int_equal(CMD("A1 UID FETCH(1)"), PC_INVALID);
    assert_int_equal(CMD("A1 FETCH(1)"), PC_INVALID);
    assert_int_equal(CMD("A1 \"LOGIN\""), PC_INVALID);
    assert_int_equal(CMD(""), PC_INVALID);
#undef CMD
}

static void test_resp_split(void **st)
{
    (void)st;
    pc_imap_resp_head h;
#define RESP(s) pc_imap_resp_split(s, sizeof(s) - 1, &h)
    assert_int_equal(RESP("* OK [CAPABILITY IMAP4rev1 LITERAL+] Ready\r\n"), PC_OK);
    assert_int_equal(h.kind, PC_IMAP_RESP_UNTAGGED);
    assert_int_equal(h.status, PC_IMAP_ST_OK);
    assert_slice(h.tag, "*");
    assert_slice(h.name, "OK");
    assert_slice(h.code, "CAPABILITY IMAP4rev1 LITERAL+");
    assert_slice(h.code_name, "CAPABILITY");
    assert_slice(h.text, "Ready");
    assert_int_equal(RESP("* 12 EXISTS"), PC_OK);
    assert_int_equal(h.status, PC_IMAP_ST_NONE);
    assert_slice(h.number, "12");
    assert_slice(h.name, "EXISTS");
    assert_slice(h.text, "");
    assert_int_equal(RESP("* 1 FETCH (UID 5 BODY[] {12}\r\n"), PC_OK);
    assert_slice(h.number, "1");
    assert_slice(h.name, "FETCH");
    assert_slice(h.text, "(UID 5 BODY[] {12}");
    assert_int_equal(RESP("A1 ok LOGIN done"), PC_OK);
    assert_int_equal(h.kind, PC_IMAP_RESP_TAGGED);
    assert_int_equal(h.status, PC_IMAP_ST_OK);
    assert_slice(h.tag, "A1");
    assert_slice(h.code, "");
    assert_slice(h.text, "LOGIN done");
    assert_int_equal(RESP("A2 NO [TOOBIG] too big"), PC_OK);
    assert_int_equal(h.status, PC_IMAP_ST_NO);
    assert_slice(h.code, "TOOBIG");
    assert_slice(h.code_name, "TOOBIG");
    assert_slice(h.text, "too big");
    assert_int_equal(RESP("A3 BAD [PARSE]"), PC_OK);
    assert_int_equal(h.status, PC_IMAP_ST_BAD);
    assert_slice(h.text, "");
    assert_int_equal(RESP("* BYE"), PC_OK);
    assert_int_equal(h.status, PC_IMAP_ST_BYE);
    assert_int_equal(RESP("* PREAUTH [X] y"), PC_OK);
    assert_int_equal(h.status, PC_IMAP_ST_PREAUTH);
    assert_slice(h.code_name, "X");
    assert_slice(h.text, "y");
    assert_int_equal(RESP("* CAPABILITY IMAP4rev1 IDLE"), PC_OK);
    assert_int_equal(h.status, PC_IMAP_ST_NONE);
    assert_slice(h.name, "CAPABILITY");
    assert_slice(h.text, "IMAP4rev1 IDLE");
    assert_int_equal(RESP("+ idling\r\n"), PC_OK);
    assert_int_equal(h.kind, PC_IMAP_RESP_CONTINUE);
    assert_slice(h.tag, "+");
    assert_slice(h.text, "idling");
    assert_int_equal(RESP("+"), PC_OK);
    assert_slice(h.text, "");
    assert_int_equal(RESP("+ [ALERT] x"), PC_OK);
    assert_slice(h.code, "ALERT");
    assert_slice(h.text, "x");
    assert_int_equal(RESP("+x"), PC_INVALID);
    assert_int_equal(RESP("A1 BYE x"), PC_INVALID);
    assert_int_equal(RESP("A1 MAYBE x"), PC_INVALID);
    assert_int_equal(RESP("A1 FETCH x"), PC_INVALID);
    assert_int_equal(RESP("* OK [ALERT"), PC_INVALID);
    assert_int_equal(RESP("* 5"), PC_INVALID);
    assert_int_equal(RESP("* 5 "), PC_INVALID);
    assert_int_equal(RESP("*OK"), PC_INVALID);
    assert_int_equal(RESP("A1"), PC_INVALID);
    assert_int_equal(RESP(""), PC_INVALID);
    assert_int_equal(RESP("\r\n"), PC_INVALID);
    /* a number makes it a data response, even with a status-like name */
    assert_int_equal(RESP("* 3 OK x"), PC_OK);
    assert_int_equal(h.status, PC_IMAP_ST_NONE);
#undef RESP
}

static void test_fetch_item(void **st)
{
    (void)st;
    static const struct {
        const char *text;
        int kind;
        const char *item;
    } cases[] = {
        {"* 1 FETCH (UID 5 BODY[] {12}\r\n", PC_IMAP_ITEM_MESSAGE, "BODY[]"},
        {"* 1 FETCH (BODY.PEEK[] {3}\r\n", PC_IMAP_ITEM_MESSAGE, "BODY.PEEK[]"},
        {" RFC822 {3}\r\n", PC_IMAP_ITEM_MESSAGE, "RFC822"},
        {"* 9 FETCH (rfc822 {3}\r\n", PC_IMAP_ITEM_MESSAGE, "rfc822"},
        {"* 1 FETCH (BINARY[] ~{3}\r\n", PC_IMAP_ITEM_MESSAGE, "BINARY[]"},
        {"* 1 FETCH (FLAGS (\\Seen) body[] ", PC_IMAP_ITEM_MESSAGE, "body[]"},
        {"* 1 FETCH (BODY[2] {3}\r\n", PC_IMAP_ITEM_PART, "BODY[2]"},
        {"* 1 FETCH (BODY[]<0> {3}\r\n", PC_IMAP_ITEM_PART, "BODY[]<0>"},
        {"* 1 FETCH (BODY[]<0.10> {3}\r\n", PC_IMAP_ITEM_PART, "BODY[]<0.10>"},
        {"* 1 FETCH (BODY[HEADER] {3}\r\n", PC_IMAP_ITEM_PART, "BODY[HEADER]"},
        {"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (FROM TO)] {3}\r\n", PC_IMAP_ITEM_PART,
         "BODY[HEADER.FIELDS (FROM TO)]"},
        {"* 1 FETCH (BODY[HEADER.FIELDS (\"A]B\" C)] {3}\r\n", PC_IMAP_ITEM_PART,
         "BODY[HEADER.FIELDS (\"A]B\" C)]"},
        {" RFC822.HEADER {3}\r\n", PC_IMAP_ITEM_PART, "RFC822.HEADER"},
        {" rfc822.text {3}\r\n", PC_IMAP_ITEM_PART, "rfc822.text"},
        {" BINARY[1] ~{3}\r\n", PC_IMAP_ITEM_PART, "BINARY[1]"},
        {" X-GM-MSGID {3}\r\n", PC_IMAP_ITEM_OTHER, "X-GM-MSGID"},
        {" BINARY.SIZE[] {3}\r\n", PC_IMAP_ITEM_OTHER, "BINARY.SIZE[]"},
        {" BODY[]<x> {3}\r\n", PC_IMAP_ITEM_OTHER, "BODY[]<x>"},
        {" BODY[]<1 {3}\r\n", PC_IMAP_ITEM_OTHER, "BODY[]<1"},
        {" BODY[]<1.> {3}\r\n", PC_IMAP_ITEM_OTHER, "BODY[]<1.>"},
        {" BODY[]x {3}\r\n", PC_IMAP_ITEM_OTHER, "BODY[]x"},
        {" BODY[ {3}\r\n", PC_IMAP_ITEM_OTHER, "BODY["},
        {" RFC822.SIZE {3}\r\n", PC_IMAP_ITEM_OTHER, "RFC822.SIZE"},
        {"* 1 FETCH (ENVELOPE (NIL {5}\r\n", PC_IMAP_ITEM_OTHER, "NIL"},
        {"* 1 FETCH (ENVELOPE ({5}\r\n", PC_IMAP_ITEM_NONE, ""},
        {"* 1 FETCH (ENVELOPE (\"x\" {5}\r\n", PC_IMAP_ITEM_NONE, ""},
        {"* 1 FETCH (BODY[] \"x\" {5}\r\n", PC_IMAP_ITEM_NONE, ""},
        {"* 1 FETCH (BODY[]{3}\r\n", PC_IMAP_ITEM_NONE, ""},
        {"{5}\r\n", PC_IMAP_ITEM_NONE, ""},
        {"", PC_IMAP_ITEM_NONE, ""},
        {"BODY[] {x}\r\n", PC_IMAP_ITEM_NONE, ""},
        {"BODY[] 5}\r\n", PC_IMAP_ITEM_NONE, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pc_slice it;
        int k = pc_imap_fetch_item(cases[i].text, strlen(cases[i].text), &it);
        if (k != cases[i].kind)
            fail_msg("case %zu '%s': kind %d, want %d", i, cases[i].text, k, cases[i].kind);
        assert_slice(it, cases[i].item);
    }
}

/* UID and RFC822.SIZE at depth 1 only, not inside quotes, sections or nested lists; the depth
 * carried across segments; where the size's digits are, for rewriting. */
static void test_fetch_scan(void **st)
{
    (void)st;
    static const struct {
        const char *text;
        int depth0; /* depth before the segment */
        uint32_t uid;
        uint64_t size;
        int others;
        const char *size_digits; /* what p[at..at+len) holds; "" = none */
    } cases[] = {
        {"* 1 FETCH (UID 12 RFC822.SIZE 3456 FLAGS (\\Seen))\r\n", 0, 12, 3456, 1, "3456"},
        {"* 1 FETCH (RFC822.SIZE 77 BODY[] {77}\r\n", 0, 0, 77, 1, "77"},
        {"* 1 FETCH (ENVELOPE (\"UID 5\" (UID 6)) UID 7)\r\n", 0, 7, 0, 1, ""},
        {"* 1 FETCH (BODY[HEADER.FIELDS (UID RFC822.SIZE)] {10}\r\n", 0, 0, 0, 1, ""},
        {" RFC822.SIZE 99 UID 3)\r\n", 1, 3, 99, 0, "99"},     /* after a literal, depth 1 */
        {"* 1 FETCH (UID x RFC822.SIZE)\r\n", 0, 0, 0, 1, ""}, /* "x" is an other */
        {"* 1 FETCH (RFC822.SIZE 123456789012345678901234)\r\n", 0, 0, 1234567890123456789ull, 0,
         "123456789012345678901234"},
        {"* 1 FETCH (\"unclosed RFC822.SIZE 5", 0, 0, 0, 0, ""},
        {"* 1 FETCH (BODY[unclosed RFC822.SIZE 5", 0, 0, 0, 1, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = cases[i].text;
        int depth = cases[i].depth0, others = 0;
        uint32_t uid = 0;
        uint64_t size = 0;
        size_t at = 0, len = 0;
        pc_imap_fetch_scan(p, strlen(p), &depth, &uid, &size, &others, &at, &len);
        if (uid != cases[i].uid || size != cases[i].size || others != cases[i].others)
            fail_msg("case %zu: uid %u size %llu others %d", i, (unsigned)uid,
                     (unsigned long long)size, others);
        assert_int_equal(len, strlen(cases[i].size_digits));
        assert_memory_equal(p + at, cases[i].size_digits, len);
    }
}

/* The helpers on the TEXT events of a real FETCH response. */
static void test_fetch_flow(void **st)
{
    (void)st;
    static const char in[] = "* 7 FETCH (UID 9 ENVELOPE (NIL {2}\r\nhi) BODY[] {3}\r\nabc)\r\n";
    pc_imap_tok_cfg s = srv();
    pc_imap_tok t;
    pc_imap_tok_init(&t, &s);
    pc_imap_ev ev;
    size_t pos = 0, n = sizeof(in) - 1;
    int is_fetch = 0, messages = 0;
    pc_slice last = {0};
    while (pc_imap_tok_next(&t, in + pos, n - pos, &ev) > 0) {
        if (ev.type == PC_IMAP_EV_TEXT) {
            if (ev.first) {
                pc_imap_resp_head h;
                assert_int_equal(pc_imap_resp_split(ev.data.p, ev.data.n, &h), PC_OK);
                is_fetch = pc_imap_word_is(h.name, "FETCH");
            }
            last = ev.data;
        } else if (ev.type == PC_IMAP_EV_LITERAL && is_fetch) {
            pc_slice it;
            int k = pc_imap_fetch_item(last.p, last.n, &it);
            if (ev.depth == 1 && k == PC_IMAP_ITEM_MESSAGE) {
                messages++;
                assert_true(ev.lit_size == 3);
            } else {
                assert_int_equal(ev.depth, 2);
            }
        }
        pos += ev.consumed;
    }
    assert_int_equal(is_fetch, 1);
    assert_int_equal(messages, 1);
    assert_int_equal(pos, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_between_lines),    cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_client_lines),     cmocka_unit_test(test_login_literals),
        cmocka_unit_test(test_nonsync),          cmocka_unit_test(test_append_2k),
        cmocka_unit_test(test_server_literals),  cmocka_unit_test(test_server_free_text),
        cmocka_unit_test(test_literal8),         cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_literal_syntax),   cmocka_unit_test(test_huge_sizes),
        cmocka_unit_test(test_line_limit),       cmocka_unit_test(test_nul_bare),
        cmocka_unit_test(test_nesting),          cmocka_unit_test(test_resume),
        cmocka_unit_test(test_random_agreement), cmocka_unit_test(test_word_is),
        cmocka_unit_test(test_cmd_split),        cmocka_unit_test(test_resp_split),
        cmocka_unit_test(test_fetch_item),       cmocka_unit_test(test_fetch_flow),
        cmocka_unit_test(test_fetch_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
