/* line.h — framing of protocol command lines, shared by SMTP and POP3 (and the upstream replies).
 * A line ends at CRLF and nowhere else: a bare LF is reported, never silently taken as a line end
 * (the precondition of SMTP smuggling), and a line longer than the limit is reported before its end
 * arrives, so no caller buffers more than its limit. Pure: no I/O, no allocation. */
#ifndef PC_LINE_H
#define PC_LINE_H

#include <stddef.h>

/* Result of line framing. */
typedef enum {
    PC_LINE_NEED_MORE = 1, /* no CRLF yet, and fewer than max bytes */
    PC_LINE_OK = 0,        /* a line of *linelen bytes (without CRLF); consume *consumed bytes */
    PC_LINE_TOO_LONG = -2, /* max bytes without CRLF: the caller discards up to the next LF */
    PC_LINE_BARE_LF = -3,  /* an LF not preceded by CR ends the line at *consumed; answer 500 */
} pc_line_result;

/* Finds the first line in buf[0..len). max is the longest line allowed including CRLF (0: none).
 * On OK and BARE_LF, *consumed is the number of bytes up to and including the LF. */
pc_line_result pc_line_find(const char *buf, size_t len, size_t max, size_t *linelen,
                            size_t *consumed);

#endif
