/* stuff.c — the dot-stuffing writer (see stuff.h). */
#include "parse/stuff.h"

#include "parse/data_out.h"

void pc_stuff_init(pc_stuff *s)
{
    s->at_bol = 1;
    s->last_cr = 0;
}

int pc_stuff_feed(pc_stuff *s, const char *in, size_t n, pc_data_emit_fn emit, void *ud)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        /* Fast path: from a line start without a leading dot, or inside a line, a stretch that
         * ends in CRLF (or holds no CR/LF at all) needs no change. */
        if (!s->last_cr && !(s->at_bol && in[i] == '.')) {
            size_t run = pc_data_plain_run(in + i, n - i);
            if (run + 1 < n - i && in[i + run] == '\r' && in[i + run + 1] == '\n') {
                i += run + 1; /* at the LF */
                s->at_bol = 1;
                s->last_cr = 0;
                continue;
            }
            if (run > 0) {
                i += run - 1; /* at the last plain byte */
                s->at_bol = 0;
                s->last_cr = 0;
                continue;
            }
        }
        char c = in[i];
        if (s->last_cr && c != '\n') {
            /* A bare CR in the content: complete it so the upstream only ever sees CRLF. */
            if ((i > start && emit(ud, in + start, i - start) < 0) || emit(ud, "\n", 1) < 0)
                return -1;
            start = i;
            s->at_bol = 1;
            s->last_cr = 0;
        }
        if (c == '\n' && !s->last_cr) {
            /* A bare LF: written as CRLF. */
            if ((i > start && emit(ud, in + start, i - start) < 0) || emit(ud, "\r", 1) < 0)
                return -1;
            start = i;
        }
        if (s->at_bol && c == '.') {
            if ((i > start && emit(ud, in + start, i - start) < 0) || emit(ud, ".", 1) < 0)
                return -1;
            start = i;
        }
        s->at_bol = c == '\n';
        s->last_cr = c == '\r';
    }
    if (n > start && emit(ud, in + start, n - start) < 0)
        return -1;
    return 0;
}

int pc_stuff_end(pc_stuff *s, pc_data_emit_fn emit, void *ud)
{
    if (s->last_cr) {
        if (emit(ud, "\n", 1) < 0)
            return -1;
        s->at_bol = 1;
    }
    if (!s->at_bol && emit(ud, "\r\n", 2) < 0)
        return -1;
    s->at_bol = 1;
    s->last_cr = 0;
    return emit(ud, ".\r\n", 3);
}
