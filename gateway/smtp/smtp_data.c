/* smtp_data.c — DATA stream reader (unstuffing, end only at CRLF "." CRLF).
 * The stuffing writer is parse/stuff.c.
 * Defends against SMTP smuggling (<LF>.<LF>, <CR>.<CR>...), oversize messages and NUL bytes. */
#include "smtp/smtp_data.h"

#include <stdint.h>
#include <string.h>

#include "parse/data_out.h"
#include "parse/parse.h"

/* Reader states. "Soft" line starts follow a bare CR/LF in normalise mode: they allow unstuffing
 * but never the end of data. */
enum {
    S_BOL = 0, /* after a real CRLF, or at the start */
    S_SBOL,    /* after a bare CR/LF (normalise mode only) */
    S_MID,     /* inside a line */
    S_CR,      /* a CR inside a line, fate unknown */
    S_DOT,     /* '.' at a real line start */
    S_SDOT,    /* '.' at a soft line start */
    S_DOTCR,   /* '.' CR at a real line start */
    S_SDOTCR,  /* '.' CR at a soft line start */
    S_DONE,
};

static const char CRLF[] = "\r\n";
static const char DOT[] = ".";

void pc_smtp_data_init(pc_smtp_data *d, size_t max_line, size_t max_size, int normalize)
{
    memset(d, 0, sizeof(*d));
    d->state = S_BOL;
    d->normalize = normalize != 0;
    d->max_line = max_line;
    d->max_size = max_size;
    d->in_headers = 1;
}

/* Bookkeeping for one content byte of the current line (not CR/LF). */
static void content(pc_smtp_data *d, unsigned char c)
{
    if (c == 0)
        d->flags |= PC_DATA_NUL;
    if (c >= 0x80)
        d->flags |= PC_DATA_8BIT;
    d->line_len++;
    if (d->max_line && d->line_len + 2 > d->max_line)
        d->flags |= PC_DATA_LONG_LINE;
    if (d->in_headers && d->hdrlen < sizeof(d->hdrbuf)) {
        d->hdrbuf[d->hdrlen++] = (char)c;
        if (d->hdrlen == 9) {
            static const char rcv[] = "received:";
            size_t k = 0;
            while (k < 9 && pc_ascii_lower((unsigned char)d->hdrbuf[k]) == rcv[k])
                k++;
            if (k == 9)
                d->received++;
        }
    }
}

/* Bookkeeping for a run of content bytes (no CR/LF): the first bytes of a header line one at a
 * time (to recognise "Received:"), the rest in bulk. */
static void content_run(pc_smtp_data *d, const char *p, size_t n)
{
    size_t k = 0;
    while (k < n && d->in_headers && d->hdrlen < sizeof(d->hdrbuf))
        content(d, (unsigned char)p[k++]);
    if (k == n)
        return;
    p += k;
    n -= k;
    if (memchr(p, 0, n))
        d->flags |= PC_DATA_NUL;
    if (!(d->flags & PC_DATA_8BIT)) {
        /* Eight bytes at a time: this runs over every byte of every message. */
        uint64_t acc = 0;
        size_t j = 0;
        for (; j + 8 <= n; j += 8) {
            uint64_t w;
            memcpy(&w, p + j, 8);
            acc |= w;
        }
        for (; j < n; j++)
            acc |= (unsigned char)p[j];
        if (acc & 0x8080808080808080ull)
            d->flags |= PC_DATA_8BIT;
    }
    d->line_len += n;
    if (d->max_line && d->line_len + 2 > d->max_line)
        d->flags |= PC_DATA_LONG_LINE;
}

/* A line ended (its CRLF already put); real says whether it was a real CRLF. */
static void line_end(pc_smtp_data *d, int real)
{
    if (d->in_headers && d->hdrlen == 0)
        d->in_headers = 0;
    d->hdrlen = 0;
    d->line_len = 0;
    d->state = real ? S_BOL : (d->normalize ? S_SBOL : S_MID);
}

size_t pc_smtp_data_feed(pc_smtp_data *d, const char *in, size_t n, pc_data_emit_fn emit, void *ud,
                         int *done)
{
    pc_data_out o;
    pc_data_out_init(&o, emit, ud, &d->flags, &d->size, d->max_size);
    size_t i = 0;
    *done = 0;
    if (d->state == S_DONE) {
        *done = 1;
        return 0;
    }
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        int rc = 0;
        switch (d->state) {
        case S_BOL:
        case S_SBOL:
            if (c == '.') {
                d->state = d->state == S_BOL ? S_DOT : S_SDOT;
                i++;
                continue;
            }
            d->state = S_MID;
            continue; /* the byte as an ordinary one */
        case S_MID: {
            size_t run = pc_data_plain_run(in + i, n - i);
            if (run > 0) {
                content_run(d, in + i, run);
                rc = pc_data_out_put(&o, in + i, run);
                i += run;
                break;
            }
            if (c == '\r') {
                d->state = S_CR;
            } else if (c == '\n') {
                d->flags |= PC_DATA_BARE_LF;
                rc = pc_data_out_put(&o, CRLF, 2);
                line_end(d, 0);
            }
            i++;
            break;
        }
        case S_CR:
            if (c == '\n') {
                rc = i > 0 ? pc_data_out_put(&o, in + i - 1, 2) : pc_data_out_put(&o, CRLF, 2);
                line_end(d, 1);
                i++;
            } else {
                d->flags |= PC_DATA_BARE_CR;
                rc = pc_data_out_put(&o, CRLF, 2);
                line_end(d, 0); /* c is looked at again in the new state */
            }
            break;
        case S_DOT:
        case S_SDOT:
            if (c == '\r') {
                d->state = d->state == S_DOT ? S_DOTCR : S_SDOTCR;
                i++;
            } else if (c == '\n') {
                /* The line "." ended by a bare LF: kept as content, never an end. */
                content(d, '.');
                d->flags |= PC_DATA_BARE_LF;
                rc = pc_data_out_put(&o, DOT, 1);
                if (rc == 0)
                    rc = pc_data_out_put(&o, CRLF, 2);
                line_end(d, 0);
                i++;
            } else {
                d->line_len++; /* the stuffing dot, removed */
                d->state = S_MID;
            }
            break;
        case S_DOTCR:
        case S_SDOTCR:
            if (c == '\n' && d->state == S_DOTCR) {
                i++;
                d->state = S_DONE;
                if (pc_data_out_flush(&o) < 0)
                    return (size_t)-1;
                *done = 1;
                return i;
            }
            content(d, '.');
            rc = pc_data_out_put(&o, DOT, 1);
            if (c == '\n') {
                /* "." CRLF after a soft line start: the line ".", not the end. */
                if (rc == 0)
                    rc = pc_data_out_put(&o, CRLF, 2);
                line_end(d, 1);
                i++;
            } else {
                d->flags |= PC_DATA_BARE_CR;
                if (rc == 0)
                    rc = pc_data_out_put(&o, CRLF, 2);
                line_end(d, 0);
            }
            break;
        default: *done = 1; return i;
        }
        if (rc < 0)
            return (size_t)-1;
    }
    return pc_data_out_end(&o, i);
}
