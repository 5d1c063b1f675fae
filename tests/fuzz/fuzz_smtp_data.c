/* fuzz_smtp_data.c — libFuzzer target for the DATA reader and writer. The first byte seeds the
 * split points and the policy: a split read must equal the whole read, the content must be
 * canonical CRLF, and reader -> writer -> reader must give the same content (abort otherwise). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sink.h"
#include "parse/stuff.h"
#include "smtp/smtp_data.h"

typedef struct res {
    sink out;
    size_t consumed;
    unsigned flags, received;
    int done;
} res;

/* Feeds in pieces whose lengths come from a small PRNG seeded with seed (0: one call). */
static void read_msg(const char *in, size_t n, int normalize, size_t max_size, uint32_t seed,
                     res *r)
{
    pc_smtp_data d;
    pc_smtp_data_init(&d, 80, max_size, normalize);
    memset(r, 0, sizeof(*r));
    size_t pos = 0;
    while (pos < n && !r->done) {
        size_t chunk = n - pos;
        if (seed) {
            seed = seed * 1664525u + 1013904223u;
            size_t c = (seed >> 24) % 9; /* 0..8 bytes, 0 included */
            if (c < chunk)
                chunk = c;
        }
        int done = 0;
        size_t k = pc_smtp_data_feed(&d, in + pos, chunk, sink_emit, &r->out, &done);
        if (k == (size_t)-1 || k > chunk || (!done && k != chunk))
            abort();
        pos += k;
        r->done = done;
    }
    r->consumed = pos;
    r->flags = d.flags;
    r->received = d.received;
}

static void same(const res *a, const res *b)
{
    if (a->done != b->done || a->consumed != b->consumed || a->flags != b->flags ||
        a->received != b->received || a->out.n != b->out.n ||
        (a->out.n && memcmp(a->out.p, b->out.p, a->out.n) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t seed = data[0] | 0x100u;
    int normalize = data[0] & 1;
    size_t max_size = (data[0] & 0x80) ? 64 : 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;

    res whole, split;
    read_msg(in, n, normalize, max_size, 0, &whole);
    read_msg(in, n, normalize, max_size, seed, &split);
    same(&whole, &split);

    if (!(whole.flags & PC_DATA_TOO_BIG)) {
        /* canonical: CR only before LF, LF only after CR (a trailing CR may still be pending) */
        for (size_t i = 0; i < whole.out.n; i++) {
            if (whole.out.p[i] == '\r' && (i + 1 >= whole.out.n || whole.out.p[i + 1] != '\n'))
                abort();
            if (whole.out.p[i] == '\n' && (i == 0 || whole.out.p[i - 1] != '\r'))
                abort();
        }
    }
    if (whole.done && !(whole.flags & PC_DATA_TOO_BIG)) {
        sink wire = {0};
        pc_stuff w;
        pc_stuff_init(&w);
        if (whole.out.n && pc_stuff_feed(&w, whole.out.p, whole.out.n, sink_emit, &wire) < 0)
            abort();
        if (pc_stuff_end(&w, sink_emit, &wire) < 0)
            abort();
        res back;
        read_msg(wire.p, wire.n, normalize, 0, seed, &back);
        if (!back.done || back.consumed != wire.n ||
            (back.flags & (PC_DATA_BARE_CR | PC_DATA_BARE_LF)) || back.out.n != whole.out.n ||
            (back.out.n && memcmp(back.out.p, whole.out.p, back.out.n) != 0) ||
            back.received != whole.received)
            abort();
        free(back.out.p);
        free(wire.p);
    }
    free(whole.out.p);
    free(split.out.p);
    return 0;
}
