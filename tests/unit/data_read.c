/* data_read.c — the content readers' shared test driver and sink. See data_read.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data_read.h"

void sink_init(sink *s)
{
    memset(s, 0, sizeof(*s));
    s->fail_after = -1;
}

int sink_emit(void *ud, const char *p, size_t n)
{
    sink *s = ud;
    if (s->fail_after >= 0 && s->calls >= s->fail_after)
        return -1;
    s->calls++;
    assert_true(n > 0);
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2 + 64;
        s->p = realloc(s->p, s->cap);
        assert_non_null(s->p);
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
    return 0;
}

void reader_split(const reader *rd, const char *in, size_t n, const size_t *cut, size_t ncut,
                  result *r)
{
    rd->start(rd->self);
    sink_init(&r->out);
    r->done = 0;
    r->consumed = 0;
    r->received = 0;
    size_t pos = 0;
    for (size_t c = 0; c <= ncut && !r->done; c++) {
        size_t end = c < ncut ? cut[c] : n;
        if (end < pos)
            continue;
        int done = 0;
        size_t k = rd->feed(rd->self, in + pos, end - pos, sink_emit, &r->out, &done);
        assert_true(k != (size_t)-1);
        assert_true(k <= end - pos);
        if (!done)
            assert_int_equal(k, end - pos);
        r->consumed += k;
        pos = end;
        r->done = done;
    }
    rd->finish(rd->self, r);
}

void result_free(result *r)
{
    free(r->out.p);
}

void assert_same(const result *a, const result *b)
{
    assert_int_equal(a->done, b->done);
    assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->received, b->received);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->out.n, b->out.n);
    if (a->out.n)
        assert_memory_equal(a->out.p, b->out.p, a->out.n);
}

void reader_all(const reader *rd, const char *in, size_t n, result *r)
{
    reader_split(rd, in, n, NULL, 0, r);
    size_t *cuts = malloc((n + 1) * sizeof(size_t));
    assert_non_null(cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    result b;
    reader_split(rd, in, n, cuts, n, &b);
    assert_same(r, &b);
    result_free(&b);
    for (size_t k = 0; k <= n; k++) {
        reader_split(rd, in, n, &k, 1, &b);
        assert_same(r, &b);
        result_free(&b);
    }
    free(cuts);
}
