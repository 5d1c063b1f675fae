/* data_out.h — what the streaming content readers share: the SMTP DATA reader (smtp_data.c) and the
 * POP3 multi-line body reader (pop3_parse.c). Internal to the parse library (pc_parse).
 *
 * The output batcher hands content to the caller's emit function: slices that are adjacent in
 * memory go out in one emit call, and content past max_size is counted but never emitted (the
 * reader's PC_DATA_TOO_BIG flag is set instead), so a size limit holds however the input is split.
 * The run scanner finds stretches without CR or LF, so a reader handles ordinary bytes in bulk and
 * only line ends one at a time.
 *
 * Pure: no I/O, no allocation, no logging. Defends against oversize content (the limit is enforced
 * where bytes are emitted) and quadratic scans of input without line ends.
 *
 * The functions are static inline: they run for every line of every message, and calling them out
 * of line measurably slowed the DATA reader. */
#ifndef PC_DATA_OUT_H
#define PC_DATA_OUT_H

#include <stddef.h>
#include <string.h>

enum {
    PC_DATA_BARE_LF = 1u << 0,
    PC_DATA_BARE_CR = 1u << 1,
    PC_DATA_NUL = 1u << 2,
    PC_DATA_LONG_LINE = 1u << 3, /* a line longer than max_line (CRLF included) */
    PC_DATA_TOO_BIG = 1u << 4,   /* more than max_size content bytes: emitting stopped */
    PC_DATA_8BIT = 1u << 5,      /* informational: a byte >= 0x80 was seen */
};

/* Called with content bytes; borrowed, valid during the call only. Returns 0 or -1 to stop
 * (feed then returns what it consumed so far and sets PC_DATA_... nothing: caller knows why). */
typedef int (*pc_data_emit_fn)(void *ud, const char *p, size_t n);

/* The batcher of one feed call. flags and size point into the reader's state (borrowed for the
 * call). The pending slice borrows the feed's input (or a string constant): it must be flushed
 * before the feed returns. */
typedef struct pc_data_out {
    pc_data_emit_fn emit;
    void *ud;
    unsigned *flags; /* the reader's flags: PC_DATA_TOO_BIG is set here */
    size_t *size;    /* the reader's content byte count, also past max_size */
    size_t max_size; /* 0 = no limit */
    const char *rp;  /* pending slice, not emitted yet */
    size_t rn;
} pc_data_out;

static inline void pc_data_out_init(pc_data_out *o, pc_data_emit_fn emit, void *ud, unsigned *flags,
                                    size_t *size, size_t max_size)
{
    o->emit = emit;
    o->ud = ud;
    o->flags = flags;
    o->size = size;
    o->max_size = max_size;
    o->rp = NULL;
    o->rn = 0;
}

/* Emits the pending slice, if any. Returns 0, or -1 if emit failed. */
static inline int pc_data_out_flush(pc_data_out *o)
{
    if (o->rn) {
        size_t n = o->rn;
        o->rn = 0;
        if (o->emit(o->ud, o->rp, n) < 0)
            return -1;
    }
    return 0;
}

/* Content bytes p[0..n) (borrowed until the next flush): counted in *size; the part within max_size
 * joins the pending slice if adjacent to it, else the pending slice is flushed and p starts a new
 * one. Returns 0, or -1 if emit failed. */
static inline int pc_data_out_put(pc_data_out *o, const char *p, size_t n)
{
    size_t allowed = n;
    if (o->max_size) {
        size_t room = *o->size >= o->max_size ? 0 : o->max_size - *o->size;
        if (allowed > room) {
            allowed = room;
            *o->flags |= PC_DATA_TOO_BIG;
        }
    }
    *o->size += n;
    if (allowed == 0)
        return 0;
    if (o->rn && o->rp + o->rn == p) {
        o->rn += allowed;
        return 0;
    }
    if (pc_data_out_flush(o) < 0)
        return -1;
    o->rp = p;
    o->rn = allowed;
    return 0;
}

/* Flushes and gives what a feed function returns: consumed, or (size_t)-1 if emit failed. */
static inline size_t pc_data_out_end(pc_data_out *o, size_t consumed)
{
    return pc_data_out_flush(o) < 0 ? (size_t)-1 : consumed;
}

/* Length of the run of bytes at p[0..n) that are neither CR nor LF. The search window is bounded so
 * that input without line ends cannot make a reader's scan quadratic. */
static inline size_t pc_data_plain_run(const char *p, size_t n)
{
    size_t w = n < 4096 ? n : 4096;
    const char *lf = memchr(p, '\n', w);
    size_t lim = lf ? (size_t)(lf - p) : w;
    const char *cr = memchr(p, '\r', lim);
    return cr ? (size_t)(cr - p) : lim;
}

#endif
