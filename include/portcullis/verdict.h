/* verdict.h — what a filter answers for a hook. Part of the stable plugin ABI (PC_FILTER_ABI). */
#ifndef PORTCULLIS_VERDICT_H
#define PORTCULLIS_VERDICT_H

typedef enum {
    PC_CONTINUE = 0, /* no objection; the next filter runs */
    PC_ACCEPT,       /* final: accept now, skip the remaining filters of this hook */
    PC_TAG,          /* not final: add the score/symbol (and any headers added), go on */
    PC_QUARANTINE, /* final: keep the message in quarantine (SMTP: 451 4.7.1 until the store exists)
                    */
    PC_TEMPFAIL,   /* final: 4xx */
    PC_REJECT,     /* final: 5xx */
    PC_DISCARD,    /* final: accept and drop; only by explicit admin policy, always logged */
    PC_REPLACE,    /* final: retrieval only, serve the replaced message */
} pc_action;

/* Strings are borrowed: the chain copies what it keeps before done() returns. */
typedef struct pc_verdict {
    pc_action action;
    int code;             /* SMTP reply code of the action's class; 0 = the protocol's default */
    const char *enhanced; /* "5.7.1"; NULL = default */
    const char *text;     /* reply text; NULL = default */
    double score;         /* added to the transaction's total */
    const char *symbol;   /* "ACCESS_DENY_SENDER"; NULL = none */
} pc_verdict;

#endif
