/* buf.c — bounded growable buffer (see buf.h). */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pc_buf_init(pc_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

static int reserve(pc_buf *b, size_t n)
{
    size_t used = b->len - b->off;
    if (b->max && used + n > b->max)
        return -1;
    if (b->len + n <= b->cap)
        return 0;
    if (b->off > 0 && used + n <= b->cap) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < used + n)
        cap *= 2;
    if (b->max && cap > b->max && used + n <= b->max)
        cap = b->max;
    char *d = malloc(cap);
    if (!d)
        return -1;
    if (used)
        memcpy(d, b->data + b->off, used);
    free(b->data);
    b->data = d;
    b->cap = cap;
    b->off = 0;
    b->len = used;
    return 0;
}

int pc_buf_append(pc_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int pc_buf_printf(pc_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(tmp))
        return pc_buf_append(b, tmp, (size_t)n);
    if (reserve(b, (size_t)n + 1) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int pc_buf_vline(pc_buf *b, size_t max, const char *fmt, va_list ap)
{
    char line[2048];
    if (max > sizeof(line))
        max = sizeof(line);
    int n = vsnprintf(line, max - 2, fmt, ap);
    if (n < 0)
        return -1;
    if ((size_t)n > max - 3)
        n = (int)(max - 3);
    line[n++] = '\r';
    line[n++] = '\n';
    return pc_buf_append(b, line, (size_t)n);
}

void pc_buf_consume(pc_buf *b, size_t n)
{
    if (n >= b->len - b->off) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
}

void pc_buf_release(pc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void pc_buf_reset(pc_buf *b)
{
    b->off = b->len = 0;
}
