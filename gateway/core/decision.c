/* decision.c — the protocol-neutral decision (see decision.h). */
#include "core/decision.h"

#include <stdio.h>
#include <string.h>

#include "core/chain.h"
#include "parse/sanitize.h"

static pc_outcome outcome_of(pc_action a)
{
    switch (a) {
    case PC_REJECT: return PC_OUTCOME_REFUSE;
    case PC_TEMPFAIL: return PC_OUTCOME_DEFER;
    case PC_QUARANTINE: return PC_OUTCOME_HOLD;
    case PC_DISCARD: return PC_OUTCOME_DISCARD;
    case PC_REPLACE: return PC_OUTCOME_REPLACE;
    default: return PC_OUTCOME_PASS;
    }
}

/* "X.Y.Z" with X the class digit, Y 1–3 digits, Z 1–3 digits (RFC 3463). */
static int enhanced_ok(const char *e, int cls)
{
    if (!e || (e[0] != '4' && e[0] != '5') || (cls && e[0] - '0' != cls) || e[1] != '.')
        return 0;
    const char *p = e + 2;
    for (int part = 0; part < 2; part++) {
        int n = 0;
        while (*p >= '0' && *p <= '9' && n < 4) {
            p++;
            n++;
        }
        if (n < 1 || n > 3)
            return 0;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

void pc_decision_pass(pc_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->action = PC_CONTINUE;
    d->outcome = PC_OUTCOME_PASS;
}

void pc_decision_set(pc_decision *d, const pc_verdict *v, const struct pc_results *r)
{
    pc_decision_pass(d);
    d->action = v->action;
    d->outcome = outcome_of(v->action);
    if (v->code >= 400 && v->code <= 599)
        d->code = v->code;
    if (enhanced_ok(v->enhanced, d->code ? d->code / 100 : 0))
        snprintf(d->enhanced, sizeof(d->enhanced), "%s", v->enhanced);
    if (v->text)
        pc_sanitize(d->reason, sizeof(d->reason), v->text, strlen(v->text), 0);
    if (v->symbol)
        pc_sanitize(d->symbol, sizeof(d->symbol), v->symbol, strlen(v->symbol), 0);
    d->score = r ? r->score : 0;
}

const char *pc_decision_reason(const pc_decision *d, const char *dflt)
{
    return d->reason[0] ? d->reason : dflt;
}

const char *pc_action_name(pc_action a)
{
    switch (a) {
    case PC_TAG: return "tag";
    case PC_REJECT: return "reject";
    case PC_TEMPFAIL: return "tempfail";
    case PC_QUARANTINE: return "quarantine";
    case PC_DISCARD: return "discard";
    case PC_REPLACE: return "replace";
    default: return "pass";
    }
}
