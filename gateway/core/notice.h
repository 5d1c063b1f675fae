/* notice.h — the short message that stands in for a withheld one, served by POP3 RETR/TOP and IMAP
 * FETCH: a well-formed text/plain message with the original's From, Subject and Date (sanitised and
 * unfolded), what was found, the verdict, and a reference the administrator finds in the logs.
 *
 * Its fields travel as one "info" blob (NUL-separated strings) so that the per-worker verdict cache
 * (vcache.c) can keep them and serve the same notice, with the same reference, again. */
#ifndef PC_NOTICE_H
#define PC_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "portcullis/message.h"

#define PC_NOTICE_INFO_MAX 1600 /* room for every field at its longest */

/* The reference of a notice: the session id as the logs print it (16 hex digits), then n, with a
 * prefix letter for a section notice ("p"), e.g. "006b0454de000002-2". */
void pc_notice_ref(char *out, size_t outlen, uint64_t sid, const char *prefix, unsigned n);

/* The fields from message m (NULL: defaults; the gateway's postmaster as sender), the finding, the
 * verdict's action name and the reference into info. Returns the blob's length. */
size_t pc_notice_info(const pc_message *m, const char *hostname, const char *finding,
                      const char *action, const char *ref, char *info, size_t infolen);

typedef enum {
    PC_NOTICE_FULL,   /* header and body */
    PC_NOTICE_HEADER, /* the header, with the blank line that ends it */
    PC_NOTICE_BODY,   /* the body only */
} pc_notice_form;

/* Replaces b's contents with the notice built from info (as pc_notice_info made it). Lines end in
 * CRLF; nothing is dot-stuffed. Returns 0, or -1 when b could not hold it. */
int pc_notice_build(pc_buf *b, const char *info, size_t info_len, const char *hostname,
                    pc_notice_form form);

#endif
