/* decision.h — the chain's outcome for one hook, protocol-neutral: what to do, why, and the score
 * so far. The merged verdict of a chain run becomes a pc_decision once; each protocol renders it
 * into its own reply in one place (smtp/smtp_render.c, pop3/pop3_render.c, imap/imap_render.c),
 * so no other code maps actions to reply codes.
 *
 * Everything a decision carries that came from a filter is sanitised here (CR, LF, NUL and other
 * controls mapped), so a renderer may put it into a reply or a log line as it is. */
#ifndef PC_DECISION_H
#define PC_DECISION_H

#include "portcullis/verdict.h"

struct pc_results;

/* What a decision means for the session, whatever the protocol. */
typedef enum {
    PC_OUTCOME_PASS = 0, /* CONTINUE, ACCEPT, TAG: the step goes on */
    PC_OUTCOME_REFUSE,   /* REJECT: permanent refusal */
    PC_OUTCOME_DEFER,    /* TEMPFAIL: temporary refusal */
    PC_OUTCOME_HOLD,     /* QUARANTINE: held for review (refused for now, never accepted) */
    PC_OUTCOME_DISCARD,  /* DISCARD: by explicit admin policy, always logged */
    PC_OUTCOME_REPLACE,  /* REPLACE: retrieval serves the filter's version */
} pc_outcome;

#define PC_DECISION_TEXT_MAX 300

typedef struct pc_decision {
    pc_action action;                  /* the merged verdict's action */
    pc_outcome outcome;                /* what it means (pc_decision_set derives it) */
    int code;                          /* the reply code a filter asked for; 0 = the default */
    char enhanced[16];                 /* the enhanced code a filter asked for; "" = the default */
    char reason[PC_DECISION_TEXT_MAX]; /* a filter's text, sanitised; "" = the default */
    char symbol[64];                   /* the deciding filter's symbol, sanitised; "" = none */
    double score;                      /* the transaction's total score so far */
} pc_decision;

/* Fills d from the chain's merged verdict v (borrowed, valid during the call) and the transaction's
 * results r (may be NULL). A filter's code outside 400–599 is ignored (the default applies), and an
 * enhanced code is kept only when it is well formed and its class matches the reply's. */
void pc_decision_set(pc_decision *d, const pc_verdict *v, const struct pc_results *r);

/* A decision that lets the step go on. */
void pc_decision_pass(pc_decision *d);

/* The reason for a reply or a notice: the filter's text, or dflt when it gave none. */
const char *pc_decision_reason(const pc_decision *d, const char *dflt);

/* The action's name in log lines: "pass", "tag", "reject", "tempfail", "quarantine", "discard",
 * "replace" ("accept" and "continue" are "pass"). */
const char *pc_action_name(pc_action a);

/* 1 when the outcome refuses (REFUSE, DEFER or HOLD). */
static inline int pc_decision_refuses(const pc_decision *d)
{
    return d->outcome == PC_OUTCOME_REFUSE || d->outcome == PC_OUTCOME_DEFER ||
           d->outcome == PC_OUTCOME_HOLD;
}

#endif
