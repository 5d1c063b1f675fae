/* parse.h — what every pure parser shares: result codes and (pointer, length) slices into the
 * caller's buffer. Parsers do no I/O, no logging and allocate nothing (STYLE.md habit 1). */
#ifndef PC_PARSE_H
#define PC_PARSE_H

#include <stddef.h>
#include <string.h>

enum {
    PC_OK = 0,
    PC_NEED_MORE = 1, /* a complete unit is not in the buffer yet */
    PC_INVALID = -1,  /* malformed: the caller answers with a protocol error */
    PC_TOO_LONG = -2, /* a limit was crossed */
};

/* A view into a buffer owned by someone else; valid as long as that buffer is unchanged. */
typedef struct pc_slice {
    const char *p;
    size_t n;
} pc_slice;

/* ASCII case folding for protocol keywords (verbs, capabilities, parameter names); locale-free. */
static inline int pc_ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Whether a[0..an) equals the NUL-terminated keyword b, ASCII case-insensitively. */
static inline int pc_ascii_ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (pc_ascii_lower((unsigned char)a[i]) != pc_ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

#endif
