/* stuff.h — the dot-stuffing writer: canonical message content → the wire form of SMTP DATA and of
 * a POP3 multi-line response (RFC 5321 §4.5.2, RFC 1939 §3: the same byte-stuffing), ending in
 * CRLF "." CRLF. Whatever the content holds, the output re-parses to exactly that content: a bare
 * CR or LF is completed to CRLF and every line starting with "." gets a second one. Streaming: the
 * content may be fed in any split. Pure: no I/O, no allocation. */
#ifndef PC_STUFF_H
#define PC_STUFF_H

#include <stddef.h>

#include "parse/data_out.h" /* pc_data_emit_fn */

typedef struct pc_stuff {
    int at_bol;  /* at the beginning of a line */
    int last_cr; /* last byte written was CR */
} pc_stuff;

void pc_stuff_init(pc_stuff *s);
/* Writes the wire form of in[0..n) through emit (dots doubled at line starts). Returns 0 or -1. */
int pc_stuff_feed(pc_stuff *s, const char *in, size_t n, pc_data_emit_fn emit, void *ud);
/* Ends the message: a CRLF if the content did not end with one, then ".\r\n". Returns 0 or -1. */
int pc_stuff_end(pc_stuff *s, pc_data_emit_fn emit, void *ud);

#endif
