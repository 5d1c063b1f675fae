/* imap_render.c — decisions as IMAP answers (see imap_render.h). */
#include "imap/imap_render.h"

#include <stdio.h>

pc_imap_rendered pc_imap_render(const pc_decision *d, pc_imap_stage stage, char *out, size_t outlen)
{
    int temp = d->outcome == PC_OUTCOME_DEFER || d->outcome == PC_OUTCOME_HOLD;
    int refuses = pc_decision_refuses(d) || d->outcome == PC_OUTCOME_DISCARD;
    switch (stage) {
    case PC_IMAP_AT_CONNECT:
        if (!refuses)
            return PC_IMAP_GO_ON;
        snprintf(out, outlen, "%s%s", temp ? "[UNAVAILABLE] " : "",
                 pc_decision_reason(d, "Service refused"));
        return PC_IMAP_ANSWER_END;
    case PC_IMAP_AT_APPEND:
        if (!refuses)
            return PC_IMAP_GO_ON;
        snprintf(out, outlen, "NO [%s] %s", temp ? "UNAVAILABLE" : "CANNOT",
                 pc_decision_reason(d, "Message refused by policy"));
        return PC_IMAP_ANSWERED;
    case PC_IMAP_AT_RETRIEVE:
        if (refuses) {
            snprintf(out, outlen, "%s", pc_decision_reason(d, "rejected by policy"));
            return PC_IMAP_NOTICE;
        }
        if (d->outcome == PC_OUTCOME_REPLACE)
            return PC_IMAP_REPLACED;
        return PC_IMAP_GO_ON;
    }
    return PC_IMAP_GO_ON;
}
