/* pop3_render.c — decisions as POP3 answers (see pop3_render.h). */
#include "pop3/pop3_render.h"

#include <stdio.h>

pc_pop3_rendered pc_pop3_render(const pc_decision *d, pc_pop3_stage stage, char *out, size_t outlen)
{
    if (stage == PC_POP3_AT_CONNECT) {
        switch (d->outcome) {
        case PC_OUTCOME_REFUSE:
        case PC_OUTCOME_DISCARD:
            snprintf(out, outlen, "-ERR [SYS/PERM] %s", pc_decision_reason(d, "Service refused"));
            return PC_POP3_ANSWER_END;
        case PC_OUTCOME_DEFER:
        case PC_OUTCOME_HOLD:
            snprintf(out, outlen, "-ERR [SYS/TEMP] %s",
                     pc_decision_reason(d, "Service not available, try again later"));
            return PC_POP3_ANSWER_END;
        default: return PC_POP3_GO_ON;
        }
    }
    switch (d->outcome) {
    case PC_OUTCOME_DEFER:
        snprintf(out, outlen, "-ERR [SYS/TEMP] %s, try again later.",
                 pc_decision_reason(d, "Message cannot be checked now"));
        return PC_POP3_ANSWERED;
    case PC_OUTCOME_REFUSE:
    case PC_OUTCOME_HOLD:
    case PC_OUTCOME_DISCARD:
        if (d->symbol[0])
            snprintf(out, outlen, "%s (%s)", pc_decision_reason(d, "withheld by policy"),
                     d->symbol);
        else
            snprintf(out, outlen, "%s", pc_decision_reason(d, "withheld by policy"));
        return PC_POP3_NOTICE;
    case PC_OUTCOME_REPLACE: return PC_POP3_REPLACED;
    default: return PC_POP3_GO_ON;
    }
}
