/* smtp_render.h — the one place a decision becomes an SMTP reply (RFC 5321 codes, RFC 3463
 * enhanced codes). The table in smtp_render.c is the whole mapping: stage × outcome → default code,
 * enhanced code and text, and whether the session ends. */
#ifndef PC_SMTP_RENDER_H
#define PC_SMTP_RENDER_H

#include <stddef.h>

#include "core/decision.h"

typedef enum {
    PC_SMTP_AT_CONNECT = 0, /* instead of the greeting */
    PC_SMTP_AT_COMMAND,     /* HELO/EHLO, MAIL, RCPT, AUTH */
    PC_SMTP_AT_MESSAGE,     /* after the final dot */
    PC_SMTP_STAGES
} pc_smtp_stage;

typedef enum {
    PC_SMTP_GO_ON = 0,  /* no reply: the step goes on */
    PC_SMTP_ANSWERED,   /* out holds the reply; the step (or the transaction) ends here */
    PC_SMTP_ANSWER_END, /* out holds the reply; then the session ends (421 and 5xx at connect) */
} pc_smtp_rendered;

/* Renders d for stage into out (one reply line without CRLF). A filter's code is used only when its
 * class fits the outcome (5xx to refuse, 4xx to defer or hold); its enhanced code only with such a
 * code, or when it fits the default's class. */
pc_smtp_rendered pc_smtp_render(const pc_decision *d, pc_smtp_stage stage, char *out,
                                size_t outlen);

#endif
