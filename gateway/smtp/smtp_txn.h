/* smtp_txn.h — one SMTP transaction as an object: the envelope (sender, the MAIL line sent
 * upstream, its body and SMTPUTF8 parameters), every recipient tried with its status, the reply
 * code the client heard for it and the filters' action at RCPT, and the message being received
 * (the DATA reader, its spool, then the sealed message). The session holds one and resets it at
 * RSET, HELO, STARTTLS, the end of a message and any refusal that ends the transaction. The
 * policies and routing issues hang each recipient's policy, route and upstream leg here. */
#ifndef PC_SMTP_TXN_H
#define PC_SMTP_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/spool.h"
#include "portcullis/verdict.h"
#include "smtp/smtp_data.h"

#define PC_SMTP_PATH_MAX 512   /* a path as given, NUL included */
#define PC_SMTP_LINE_MAX 1024  /* a MAIL/RCPT line rebuilt for the upstream */
#define PC_SMTP_TXN_TRIED 1000 /* recipients recorded per transaction, accepted or refused */

typedef enum {
    PC_RCPT_ACCEPTED = 1, /* the upstream said 2xx and the client heard it */
    PC_RCPT_REFUSED,      /* refused by a filter or the upstream */
} pc_rcpt_status;

typedef struct pc_smtp_rcpt {
    char *addr; /* the path as given */
    char *line; /* the RCPT line sent upstream, replayed on a new upstream session */
    pc_rcpt_status status;
    int code;         /* the reply code the client heard */
    pc_action action; /* what the filters decided at RCPT (PC_CONTINUE: nothing) */
} pc_smtp_rcpt;

struct pc_policy;

typedef struct pc_smtp_txn {
    int open; /* the upstream accepted MAIL: RCPT and DATA are allowed */
    char sender[PC_SMTP_PATH_MAX];
    char mail_line[PC_SMTP_LINE_MAX];
    int body8bit, smtputf8; /* this MAIL's parameters */
    uint64_t start_ms;      /* when MAIL was accepted */

    pc_smtp_rcpt *rcpts; /* every recipient recorded, in the order given */
    size_t nrcpts, cap;
    char **accepted; /* the addresses of the accepted ones, for the filters' view */
    size_t naccepted;
    char cur_rcpt[PC_SMTP_PATH_MAX]; /* the recipient being checked (RCPT hook, upstream) */
    char cur_line[PC_SMTP_LINE_MAX];
    size_t replay; /* the next recipient to replay on a new upstream session */
    /* The policy (policies/): the first accepted recipient's is the transaction's; every other
     * recipient must have the same. NULL: no policy applies. */
    const struct pc_policy *policy, *cur_policy; /* the transaction's; cur_rcpt's */
    pc_scores_cfg scores;         /* the listener's thresholds with the policy's over them */
    unsigned long long size_said; /* MAIL's SIZE=, 0 when not given */

    pc_smtp_data data; /* DATA: the reader ... */
    pc_spool *spool;   /* ... its bytes ... */
    int spool_err;
    pc_message *msg; /* ... and the message after the dot (owns the spool) */
} pc_smtp_txn;

/* Frees what t holds and makes it empty (as a zeroed struct is). */
void pc_smtp_txn_reset(pc_smtp_txn *t);
/* Records the current recipient (cur_rcpt, cur_line) with its outcome. Refused ones past
 * PC_SMTP_TXN_TRIED are not recorded (the client was answered all the same). 0, or -1 on no
 * memory (an accepted recipient then is not kept: the caller logs it). */
int pc_smtp_txn_record(pc_smtp_txn *t, pc_rcpt_status st, int code, pc_action action);
/* The next accepted recipient from t->replay on (advancing it), or NULL at the end. */
const pc_smtp_rcpt *pc_smtp_txn_replay_next(pc_smtp_txn *t);

#endif
