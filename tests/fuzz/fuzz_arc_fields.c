/* fuzz_arc_fields.c — the ARC field readers (filters/arc/fields.c) over any bytes: every output
 * stays within the bounds fields.h promises, vouch entries hold no white space, header fields
 * split without overlap, and both body canonicalisations hold their invariants (output made of
 * lines that end in CRLF, fed whole or in two pieces with the same result). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"

typedef struct sink {
    char buf[3 * 8192 + 64];
    size_t n;
} sink;

static void take(void *arg, const char *p, size_t n)
{
    sink *k = arg;
    if (k->n + n > sizeof(k->buf))
        abort(); /* more out than 3 bytes per byte in (CR of a bare CR, a space, CRLF) */
    memcpy(k->buf + k->n, p, n);
    k->n += n;
}

static void canon(const char *p, size_t n, size_t cut, int relaxed, sink *k)
{
    pc_arc_body b;
    k->n = 0;
    pc_arc_body_init(&b, relaxed, take, k);
    pc_arc_body_feed(&b, p, cut);
    pc_arc_body_feed(&b, p + cut, n - cut);
    pc_arc_body_end(&b);
}

static void bodies(const char *p, size_t n, size_t cut)
{
    static sink whole, split;
    for (int relaxed = 0; relaxed < 2; relaxed++) {
        canon(p, n, n, relaxed, &whole);
        canon(p, n, cut, relaxed, &split);
        if (whole.n != split.n || memcmp(whole.buf, split.buf, whole.n) != 0)
            abort();
        if (whole.n && (whole.n < 2 || memcmp(whole.buf + whole.n - 2, "\r\n", 2) != 0))
            abort();
        if (!relaxed && whole.n == 0)
            abort(); /* simple: an empty body is CRLF */
        if (whole.n >= 4 && memcmp(whole.buf + whole.n - 4, "\r\n\r\n", 4) == 0)
            abort(); /* no empty line at the end */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *v = malloc(size + 1), *out = malloc(size + 3);
    if (!v || !out)
        goto done;
    memcpy(v, data, size);
    v[size] = '\0';
    int k = pc_arc_aar_instance(v, size);
    if (k != -1 && (k < 1 || k > PC_ARC_MAX_INSTANCE))
        abort();
    size_t n = pc_arc_strip_b(v, size, out);
    if (n != (size_t)-1 && n > size)
        abort();
    n = pc_arc_canon_relaxed(v, size, 1, out);
    if (n != (size_t)-1 && n > size + 3)
        abort();
    char vouch[256] = "";
    pc_arc_vouch(v, "lists.example.org", vouch, size ? (size_t)data[0] % sizeof(vouch) : 0);
    if (strlen(vouch) >= sizeof(vouch) || strpbrk(vouch, " \t\r\n;") == vouch)
        abort();
    for (size_t off = 0, fl; off < size;) {
        size_t used = pc_arc_next_field(v + off, size - off, &fl);
        if (!used)
            break;
        if (used > size - off || fl > used)
            abort();
        off += used;
    }
    bodies(v, size, size ? data[size - 1] % (size + 1) : 0);
done:
    free(out);
    free(v);
    return 0;
}
