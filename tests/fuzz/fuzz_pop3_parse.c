/* fuzz_pop3_parse.c — libFuzzer target for POP3 command lines and the upstream response stream
 * (status lines + multi-line bodies). Whole and split reads must agree, slices stay in bounds, and
 * a clean body must survive pc_stuff -> reader unchanged; any breach aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sink.h"
#include "pop3/pop3_parse.h"

static void inside(pc_slice s, const char *base, size_t len)
{
    if (s.n == 0)
        return;
    if (!s.p || s.p < base || s.p + s.n > base + len)
        abort();
}

/* ---- commands ------------------------------------------------------------------------------- */

static void one_cmd(const char *line, size_t len)
{
    pc_pop3_cmd cmd;
    pc_pop3_err e = pc_pop3_cmd_parse(line, len, &cmd);
    if ((int)cmd.verb < 0 || cmd.verb >= PC_POP3_VERB_COUNT)
        abort();
    (void)pc_pop3_verb_name(cmd.verb);
    (void)pc_pop3_sasl_line_parse(line, len);
    pc_pop3_capa capa;
    pc_pop3_capa_init(&capa);
    (void)pc_pop3_capa_line(&capa, line, len);
    if (e != PC_POP3_E_OK) {
        if (cmd.nargs != 0)
            abort();
        return;
    }
    if (cmd.verb == PC_POP3_UNKNOWN || cmd.nargs > 2)
        abort();
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            abort();
    }
    for (size_t i = 0; i < cmd.nargs; i++) {
        inside(cmd.arg[i], line, len);
        if (cmd.arg[i].n == 0)
            abort();
        if (cmd.verb != PC_POP3_USER && cmd.verb != PC_POP3_PASS)
            for (size_t j = 0; j < cmd.arg[i].n; j++)
                if ((unsigned char)cmd.arg[i].p[j] >= 0x80 || cmd.arg[i].p[j] == ' ')
                    abort();
    }
    switch (cmd.verb) {
    case PC_POP3_RETR:
    case PC_POP3_DELE:
        if (cmd.nargs != 1 || cmd.num[0] == 0 || cmd.num[0] > PC_POP3_NUM_MAX)
            abort();
        break;
    case PC_POP3_TOP:
        if (cmd.nargs != 2 || cmd.num[0] == 0 || cmd.num[1] > PC_POP3_NUM_MAX)
            abort();
        break;
    case PC_POP3_LIST:
    case PC_POP3_UIDL:
        if (cmd.nargs > 1 || (cmd.nargs == 1 && cmd.num[0] == 0))
            abort();
        if (pc_pop3_multiline(cmd.verb, cmd.nargs) != (cmd.nargs == 0))
            abort();
        break;
    case PC_POP3_AUTH:
        if (cmd.nargs < 1)
            abort();
        (void)pc_pop3_mech_lookup(cmd.arg[0].p, cmd.arg[0].n);
        break;
    default: break;
    }
}

static void commands(const char *buf, size_t size, size_t max, size_t cut)
{
    size_t pos = 0;
    one_cmd(buf, size);
    while (pos < size) {
        size_t ll = 0, used = 0;
        pc_line_result r = pc_line_find(buf + pos, size - pos, max, &ll, &used);
        /* a prefix of the buffer gives the same answer, or asks for more */
        size_t part = cut < size - pos ? cut : size - pos;
        size_t ll2 = 0, used2 = 0;
        pc_line_result r2 = pc_line_find(buf + pos, part, max, &ll2, &used2);
        if (r2 != PC_LINE_NEED_MORE &&
            (r2 != r || (r != PC_LINE_TOO_LONG && (ll2 != ll || used2 != used))))
            abort();
        if (r == PC_LINE_NEED_MORE || r == PC_LINE_TOO_LONG)
            break;
        if (used == 0 || used > size - pos || ll >= used)
            abort();
        if (r == PC_LINE_OK)
            one_cmd(buf + pos, ll);
        pos += used;
    }
}

/* ---- the response stream -------------------------------------------------------------------- */

typedef struct drv {
    uint32_t shapes; /* PRNG: whether the next "+OK" opens a multi-line body */
    size_t max_size; /* body cap */
    int in_body, dead, check;
    pc_pop3_body body;
    char line[PC_POP3_RESP_MAX];
    size_t ln;
    sink log; /* everything seen, in order */
    sink cur; /* the current body's content */
} drv;

static void drv_init(drv *d, uint32_t shapes, size_t max_size, int check)
{
    memset(d, 0, sizeof(*d));
    d->shapes = shapes;
    d->max_size = max_size;
    d->check = check;
}

static void round_trip(const sink *content, const drv *d)
{
    sink wire = {0}, back = {0};
    pc_stuff w;
    pc_stuff_init(&w);
    if (content->n && pc_stuff_feed(&w, content->p, content->n, sink_emit, &wire) < 0)
        abort();
    if (pc_stuff_end(&w, sink_emit, &wire) < 0)
        abort();
    pc_pop3_body b;
    pc_pop3_body_init(&b, 0, 0);
    int done = 0;
    size_t k = pc_pop3_body_feed(&b, wire.p, wire.n, sink_emit, &back, &done);
    if (!done || k != wire.n || (b.flags & (PC_DATA_BARE_CR | PC_DATA_BARE_LF)))
        abort();
    /* the same content, plus a CRLF the writer adds to an unterminated last line */
    if (back.n < content->n || (content->n && memcmp(back.p, content->p, content->n) != 0))
        abort();
    (void)d;
    free(wire.p);
    free(back.p);
}

static void body_end(drv *d)
{
    unsigned char tag[1 + sizeof(unsigned) + sizeof(size_t)];
    tag[0] = 'E';
    memcpy(tag + 1, &d->body.flags, sizeof(unsigned));
    memcpy(tag + 1 + sizeof(unsigned), &d->body.size, sizeof(size_t));
    sink_put(&d->log, tag, sizeof(tag));
    if (d->check) {
        pc_pop3_capa c;
        pc_pop3_capa_init(&c);
        (void)pc_pop3_capa_parse(&c, d->cur.p, d->cur.n);
        if (!(d->body.flags & (PC_DATA_BARE_CR | PC_DATA_BARE_LF | PC_DATA_TOO_BIG)))
            round_trip(&d->cur, d);
    }
    d->cur.n = 0;
}

static int body_emit(void *ud, const char *p, size_t n)
{
    drv *d = ud;
    if (n == 0)
        abort();
    sink_put(&d->log, p, n);
    if (d->check)
        sink_put(&d->cur, p, n);
    return 0;
}

static void drv_feed(drv *d, const char *p, size_t n)
{
    while (n > 0 && !d->dead) {
        if (d->in_body) {
            int done = 0;
            size_t k = pc_pop3_body_feed(&d->body, p, n, body_emit, d, &done);
            if (k == (size_t)-1 || k > n || (!done && k != n))
                abort();
            if (d->body.max_size && d->body.size <= d->body.max_size &&
                (d->body.flags & PC_DATA_TOO_BIG))
                abort();
            p += k;
            n -= k;
            if (done) {
                body_end(d);
                d->in_body = 0;
            }
            continue;
        }
        size_t old = d->ln, take = sizeof(d->line) - d->ln;
        if (take > n)
            take = n;
        memcpy(d->line + d->ln, p, take);
        d->ln += take;
        pc_pop3_resp r;
        size_t used = 0;
        int rc = pc_pop3_resp_parse(d->line, d->ln, sizeof(d->line), &r, &used);
        if (rc == PC_NEED_MORE) {
            if (d->ln >= sizeof(d->line))
                abort();
            p += take;
            n -= take;
            continue;
        }
        unsigned char tag[2] = {'S', (unsigned char)(rc & 0xff)};
        if (rc != PC_OK) {
            if (rc != PC_TOO_LONG && rc != PC_INVALID)
                abort();
            sink_put(&d->log, tag, 2);
            d->dead = 1;
            break;
        }
        if (used <= old || used > d->ln)
            abort();
        inside(r.line, d->line, used);
        inside(r.code, r.line.p, r.line.n);
        inside(r.text, r.line.p, r.line.n);
        if (r.line.n + 2 != used || r.status < PC_POP3_RESP_OK || r.status > PC_POP3_RESP_CONT)
            abort();
        tag[1] = (unsigned char)r.status;
        sink_put(&d->log, tag, 2);
        sink_put(&d->log, &r.code.n, sizeof(size_t));
        sink_put(&d->log, r.code.p, r.code.n);
        sink_put(&d->log, &r.text.n, sizeof(size_t));
        sink_put(&d->log, r.text.p, r.text.n);
        p += used - old;
        n -= used - old;
        d->ln = 0;
        d->shapes = d->shapes * 1664525u + 1013904223u;
        if (r.status == PC_POP3_RESP_OK && (d->shapes >> 31)) {
            pc_pop3_body_init(&d->body, 80, d->max_size);
            d->in_body = 1;
            sink_put(&d->log, "B", 1);
        }
    }
}

static void drv_finish(drv *d)
{
    unsigned char tail[2] = {(unsigned char)d->dead, (unsigned char)d->in_body};
    sink_put(&d->log, tail, 2);
    if (!d->dead) /* a dead stream's buffer holds whatever the last read brought */
        sink_put(&d->log, &d->ln, sizeof(size_t));
    if (d->in_body) {
        sink_put(&d->log, &d->body.flags, sizeof(unsigned));
        sink_put(&d->log, &d->body.size, sizeof(size_t));
    }
}

static void drv_free(drv *d)
{
    free(d->log.p);
    free(d->cur.p);
}

static void responses(const char *in, size_t n, uint8_t mode, size_t cut)
{
    uint32_t shapes = mode | 0x5a00u;
    size_t max_size = (mode & 0x80) ? 64 : 0;
    drv whole, split, bytes;
    drv_init(&whole, shapes, max_size, 1);
    drv_feed(&whole, in, n);
    drv_finish(&whole);

    drv_init(&split, shapes, max_size, 0);
    drv_feed(&split, in, cut);
    drv_feed(&split, in + cut, n - cut);
    drv_finish(&split);

    /* small pieces from a PRNG, empty ones included */
    drv_init(&bytes, shapes, max_size, 0);
    uint32_t seed = mode | 0x100u;
    size_t pos = 0;
    while (pos < n) {
        seed = seed * 1664525u + 1013904223u;
        size_t c = (seed >> 24) % 9;
        if (c > n - pos)
            c = n - pos;
        drv_feed(&bytes, in + pos, c);
        pos += c;
    }
    drv_finish(&bytes);

    if (whole.log.n != split.log.n || whole.log.n != bytes.log.n ||
        (whole.log.n && (memcmp(whole.log.p, split.log.p, whole.log.n) != 0 ||
                         memcmp(whole.log.p, bytes.log.p, whole.log.n) != 0)))
        abort();
    drv_free(&whole);
    drv_free(&split);
    drv_free(&bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    size_t cut = n ? data[1] % (n + 1) : 0;
    commands(in, n, (mode & 1) ? PC_POP3_CMD_MAX : PC_POP3_AUTH_LINE_MAX, cut);
    responses(in, n, mode, cut);
    return 0;
}
