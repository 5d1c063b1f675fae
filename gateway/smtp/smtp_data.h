/* smtp_data.h — the DATA stream in both directions.
 * Reader: client bytes after "354" → message content (dot-unstuffed, canonical CRLF), ending only
 * at CRLF "." CRLF. Bare CR and bare LF are flagged (policy: reject) or turned into CRLF (policy:
 * normalise); NUL is flagged. A "<LF>.<LF>" or "<CR>.<CR>" never ends the message.
 * Writer: message content → dot-stuffed wire form ending in CRLF "." CRLF.
 * Both are streaming state machines: input may be split anywhere. */
#ifndef PC_SMTP_DATA_H
#define PC_SMTP_DATA_H

#include <stddef.h>

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

/* Writer state: dot-stuffing of canonical content for the upstream. */
typedef struct pc_smtp_stuff {
    int at_bol;  /* at the beginning of a line */
    int last_cr; /* last byte written was CR */
} pc_smtp_stuff;

void pc_smtp_stuff_init(pc_smtp_stuff *s);
/* Writes the wire form of in[0..n) through emit (dots doubled at line starts). Returns 0 or -1. */
int pc_smtp_stuff_feed(pc_smtp_stuff *s, const char *in, size_t n, pc_data_emit_fn emit, void *ud);
/* Ends the message: a CRLF if the content did not end with one, then ".\r\n". Returns 0 or -1. */
int pc_smtp_stuff_end(pc_smtp_stuff *s, pc_data_emit_fn emit, void *ud);

#endif
