/* smtp_reply.h — parses the upstream's SMTP replies (RFC 5321 §4.2), one whole (multi-line) reply
 * at a time, bounded in lines and bytes so that a hostile upstream cannot make the gateway buffer
 * without end. Pure; slices point into the caller's buffer. */
#ifndef PC_SMTP_REPLY_H
#define PC_SMTP_REPLY_H

#include "parse/parse.h"

#define PC_SMTP_REPLY_MAX_LINES 64
#define PC_SMTP_REPLY_MAX_BYTES 16384

typedef struct pc_smtp_reply {
    int code;          /* 200..599 */
    char enhanced[16]; /* "2.1.0" if the first line starts with an enhanced code, else "" */
    size_t nlines;
    pc_slice lines[PC_SMTP_REPLY_MAX_LINES]; /* text after "250-" / "250 ", enhanced code kept */
    size_t consumed;                         /* bytes of buf the whole reply took, CRLFs included */
} pc_smtp_reply;

/* Returns PC_OK with *r filled, PC_NEED_MORE, PC_INVALID (not "ddd[ -]", codes differing between
 * lines, bare LF, NUL) or PC_TOO_LONG (more than PC_SMTP_REPLY_MAX_LINES lines or
 * PC_SMTP_REPLY_MAX_BYTES bytes without the last line). */
int pc_smtp_reply_parse(const char *buf, size_t len, pc_smtp_reply *r);

#endif
