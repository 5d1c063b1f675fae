/* smtp_txn.c — the SMTP transaction object: envelope, recipients with their outcome, message. */
#include "smtp/smtp_txn.h"

#include <stdlib.h>
#include <string.h>

void pc_smtp_txn_reset(pc_smtp_txn *t)
{
    for (size_t i = 0; i < t->nrcpts; i++) {
        free(t->rcpts[i].addr);
        free(t->rcpts[i].line);
    }
    free(t->rcpts);
    free(t->accepted);
    if (t->msg)
        pc_message_unref(t->msg); /* owns the spool */
    else
        pc_spool_free(t->spool);
    memset(t, 0, sizeof(*t));
}

int pc_smtp_txn_record(pc_smtp_txn *t, pc_rcpt_status st, int code, pc_action action)
{
    if (st != PC_RCPT_ACCEPTED && t->nrcpts >= PC_SMTP_TXN_TRIED)
        return 0;
    if (t->nrcpts == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 4;
        pc_smtp_rcpt *nr = realloc(t->rcpts, nc * sizeof(*nr));
        if (!nr)
            return -1;
        t->rcpts = nr;
        t->cap = nc;
    }
    if (st == PC_RCPT_ACCEPTED) {
        char **na = realloc(t->accepted, (t->naccepted + 1) * sizeof(*na));
        if (!na)
            return -1;
        t->accepted = na;
    }
    pc_smtp_rcpt r = {.addr = strdup(t->cur_rcpt),
                      .line = strdup(t->cur_line),
                      .status = st,
                      .code = code,
                      .action = action};
    if (!r.addr || !r.line) {
        free(r.addr);
        free(r.line);
        return -1;
    }
    t->rcpts[t->nrcpts++] = r;
    if (st == PC_RCPT_ACCEPTED)
        t->accepted[t->naccepted++] = r.addr;
    return 0;
}

const pc_smtp_rcpt *pc_smtp_txn_replay_next(pc_smtp_txn *t)
{
    while (t->replay < t->nrcpts) {
        const pc_smtp_rcpt *r = &t->rcpts[t->replay++];
        if (r->status == PC_RCPT_ACCEPTED)
            return r;
    }
    return NULL;
}
