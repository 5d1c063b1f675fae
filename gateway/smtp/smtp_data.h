/* smtp_data.h — the DATA stream in both directions.
 * Reader: client bytes after "354" → message content (dot-unstuffed, canonical CRLF), ending only
 * at CRLF "." CRLF. Bare CR and bare LF are flagged (policy: reject) or turned into CRLF (policy:
 * normalise); NUL is flagged. A "<LF>.<LF>" or "<CR>.<CR>" never ends the message.
 * The writer (content → dot-stuffed wire form) is parse/stuff.h, shared with POP3.
 * Both are streaming state machines: input may be split anywhere. */
#ifndef PC_SMTP_DATA_H
#define PC_SMTP_DATA_H

#include <stddef.h>

#include "parse/data_out.h" /* pc_data_emit_fn, PC_DATA_* flags */

typedef struct pc_smtp_data {
    int state;
    unsigned flags;
    int normalize;     /* 1: bare CR / bare LF become CRLF; 0: flagged only, passed as CRLF */
    size_t max_line;   /* 0 = no limit */
    size_t max_size;   /* 0 = no limit */
    size_t line_len;   /* bytes of the current line so far */
    size_t size;       /* content bytes counted (also past max_size) */
    int in_headers;    /* still in the header section */
    unsigned received; /* "Received:" header fields seen in the header section */
    char hdrbuf[10];   /* start of the current header line, to recognise "Received:" */
    size_t hdrlen;
} pc_smtp_data;

void pc_smtp_data_init(pc_smtp_data *d, size_t max_line, size_t max_size, int normalize);

/* Feeds n bytes. Content goes to emit in as few calls as it can. Returns the number of input bytes
 * consumed; *done becomes 1 when CRLF "." CRLF was consumed (the bytes after it are the next
 * commands and are not consumed). Returns (size_t)-1 if emit failed. */
size_t pc_smtp_data_feed(pc_smtp_data *d, const char *in, size_t n, pc_data_emit_fn emit, void *ud,
                         int *done);

#endif
