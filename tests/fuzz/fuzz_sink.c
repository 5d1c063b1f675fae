/* fuzz_sink.c — the fuzz targets' growable byte sink. See fuzz_sink.h. */
#include "fuzz_sink.h"

#include <stdlib.h>
#include <string.h>

void sink_put(sink *s, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (s->n + n > s->cap) {
        size_t cap = (s->n + n) * 2 + 64;
        char *q = realloc(s->p, cap);
        if (!q)
            abort();
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
}

int sink_emit(void *ud, const char *p, size_t n)
{
    if (n == 0)
        abort(); /* the reader never emits nothing */
    sink_put(ud, p, n);
    return 0;
}
