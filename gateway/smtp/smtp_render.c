/* smtp_render.c — decisions as SMTP replies (see smtp_render.h). Never renders a 2xx for a refusal
 * nor a 4xx/5xx for a pass: the class comes from the outcome, a filter chooses only within it. */
#include "smtp/smtp_render.h"

#include <stdio.h>

typedef struct rendering {
    int code;         /* 0: no reply, the step goes on */
    const char *enh;  /* default enhanced code */
    const char *text; /* default text */
    int fixed;        /* 1: the filter's code and text are not used */
    int end;          /* 1: the session ends after the reply */
} rendering;

/* stage × outcome. PASS and REPLACE (retrieval only) never answer. */
static const rendering table[PC_SMTP_STAGES][PC_OUTCOME_REPLACE + 1] =
    {
        [PC_SMTP_AT_CONNECT] =
            {
                [PC_OUTCOME_REFUSE] = {554, "5.7.1", "Service refused", 0, 1},
                [PC_OUTCOME_DEFER] = {421, "4.7.0", "Service refused", 0, 1},
                [PC_OUTCOME_HOLD] = {421, "4.7.0", "Service refused", 0, 1},
                /* Nothing to drop before a message: a client an admin wants gone is refused. */
                [PC_OUTCOME_DISCARD] = {554, "5.7.1", "Service refused", 0, 1},
            },
        [PC_SMTP_AT_COMMAND] =
            {
                [PC_OUTCOME_REFUSE] = {550, "5.7.1", "Rejected by policy", 0, 0},
                [PC_OUTCOME_DEFER] = {451, "4.7.1", "Try again later", 0, 0},
                /* No quarantine store yet: never accept what cannot be kept. */
                [PC_OUTCOME_HOLD] = {451, "4.7.1", "Message held for review, try again later", 1,
                                     0},
                /* DISCARD applies to the message: the envelope goes on. */
            },
        [PC_SMTP_AT_MESSAGE] =
            {
                [PC_OUTCOME_REFUSE] = {550, "5.7.1", "Rejected by policy", 0, 0},
                [PC_OUTCOME_DEFER] = {451, "4.7.1", "Try again later", 0, 0},
                [PC_OUTCOME_HOLD] = {451, "4.7.1", "Message held for review, try again later", 1,
                                     0},
                /* Only by explicit admin policy, and logged by the caller. */
                [PC_OUTCOME_DISCARD] = {250, "2.0.0", "Ok: discarded by policy", 1, 0},
            },
};

pc_smtp_rendered pc_smtp_render(const pc_decision *d, pc_smtp_stage stage, char *out, size_t outlen)
{
    if ((unsigned)stage >= PC_SMTP_STAGES || (unsigned)d->outcome > PC_OUTCOME_REPLACE)
        return PC_SMTP_GO_ON;
    const rendering *r = &table[stage][d->outcome];
    if (r->code == 0)
        return PC_SMTP_GO_ON;
    int code = r->code;
    const char *enh = r->enh;
    const char *text = r->text;
    if (!r->fixed) {
        if (d->code && d->code / 100 == r->code / 100)
            code = d->code;
        if (d->enhanced[0] && d->enhanced[0] - '0' == code / 100)
            enh = d->enhanced;
        text = pc_decision_reason(d, r->text);
    }
    snprintf(out, outlen, "%d %s %s", code, enh, text);
    return r->end ? PC_SMTP_ANSWER_END : PC_SMTP_ANSWERED;
}
