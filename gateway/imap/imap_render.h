/* imap_render.h — the one place a decision becomes an IMAP answer: a BYE instead of the greeting,
 * a tagged NO with its RFC 5530 response code for APPEND, or the notice that stands in for a
 * withheld message in a FETCH response. */
#ifndef PC_IMAP_RENDER_H
#define PC_IMAP_RENDER_H

#include <stddef.h>

#include "core/decision.h"

typedef enum { PC_IMAP_AT_CONNECT = 0, PC_IMAP_AT_APPEND, PC_IMAP_AT_RETRIEVE } pc_imap_stage;

typedef enum {
    PC_IMAP_GO_ON = 0, /* greet / store / serve as usual */
    PC_IMAP_ANSWERED, /* APPEND: out holds "NO [CODE] reason" (the caller adds tag and reference) */
    PC_IMAP_ANSWER_END, /* CONNECT: out holds the text of the BYE; then the session ends */
    PC_IMAP_NOTICE,     /* RETRIEVE: serve the notice; out holds its finding */
    PC_IMAP_REPLACED,   /* RETRIEVE: serve the filter's replacement */
} pc_imap_rendered;

pc_imap_rendered pc_imap_render(const pc_decision *d, pc_imap_stage stage, char *out,
                                size_t outlen);

#endif
