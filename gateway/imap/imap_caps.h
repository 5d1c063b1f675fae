/* imap_caps.h — CAPABILITY rewriting after login (imap_caps.c). */
#ifndef PC_IMAP_CAPS_H
#define PC_IMAP_CAPS_H

#include "imap/imap_server_session.h"

/* The capability list caps (n bytes, space separated) as the client may see it, appended to out:
 * what the gateway cannot proxy removed, LITERAL+ / LITERAL- as the gateway accepts them. */
void is_caps_rewrite(isess *s, const char *caps, size_t n, pc_buf *out);
/* Rewrites a whole status or CAPABILITY response line (no CRLF) into s->base.out, with CRLF.
 * Returns 1 if it did (the caller drops the original), 0 if the line needs no change. */
int is_caps_line(isess *s, const char *p, size_t n, const pc_imap_resp_head *h);

#endif
