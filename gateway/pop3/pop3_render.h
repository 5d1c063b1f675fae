/* pop3_render.h — the one place a decision becomes a POP3 answer: an -ERR with its RFC 3206
 * response code, or the notice that stands in for a withheld message. */
#ifndef PC_POP3_RENDER_H
#define PC_POP3_RENDER_H

#include <stddef.h>

#include "core/decision.h"

typedef enum { PC_POP3_AT_CONNECT = 0, PC_POP3_AT_RETRIEVE, PC_POP3_STAGES } pc_pop3_stage;

typedef enum {
    PC_POP3_GO_ON = 0,  /* serve / greet as usual */
    PC_POP3_ANSWERED,   /* out holds an -ERR line: the command ends there */
    PC_POP3_ANSWER_END, /* out holds an -ERR line: then the session ends */
    PC_POP3_NOTICE,     /* serve the notice; out holds its finding (reason and symbol) */
    PC_POP3_REPLACED,   /* serve the filter's replacement */
} pc_pop3_rendered;

pc_pop3_rendered pc_pop3_render(const pc_decision *d, pc_pop3_stage stage, char *out,
                                size_t outlen);

#endif
