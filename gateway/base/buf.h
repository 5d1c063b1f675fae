/* buf.h — a bounded, growable byte buffer with a read offset.
 * Used for every input and output queue: it never grows past `max`, and it frees its memory when
 * emptied with pc_buf_release() so that idle connections hold no buffers. */
#ifndef PC_BUF_H
#define PC_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct pc_buf {
    char *data; /* owned; NULL while empty and released */
    size_t off; /* first unread byte */
    size_t len; /* one past the last byte written */
    size_t cap;
    size_t max; /* hard limit on len - off; 0 = unlimited */
} pc_buf;

void pc_buf_init(pc_buf *b, size_t max);
/* Appends n bytes. Returns 0, or -1 when the result would exceed max or memory runs out
 * (nothing is appended then). */
int pc_buf_append(pc_buf *b, const void *p, size_t n);
int pc_buf_printf(pc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline const char *pc_buf_ptr(const pc_buf *b)
{
    return b->data + b->off;
}
static inline size_t pc_buf_used(const pc_buf *b)
{
    return b->len - b->off;
}
/* Appends one protocol line: the formatted text cut to max - 2 bytes, then CRLF. 0 or -1. */
int pc_buf_vline(pc_buf *b, size_t max, const char *fmt, va_list ap);
/* Drops n bytes from the front. */
void pc_buf_consume(pc_buf *b, size_t n);
/* Empties the buffer and frees its memory. */
void pc_buf_release(pc_buf *b);
/* Empties the buffer, keeps memory. */
void pc_buf_reset(pc_buf *b);

#endif
