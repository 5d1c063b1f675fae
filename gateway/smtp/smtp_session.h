/* smtp_session.h — the state of one client-facing SMTP session and the functions its two files
 * share: smtp_server.c (session life, input, replies, filters, upstream, the message) and
 * smtp_cmd.c (the commands and the AUTH exchange). Internal to the SMTP server; nothing outside
 * includes it. */
#ifndef PC_SMTP_SESSION_H
#define PC_SMTP_SESSION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "core/chain.h"
#include "core/listener.h"
#include "core/session.h"
#include "core/spool.h"
#include "net/conn.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_render.h"
#include "smtp/smtp_reply.h"

#define PATH_MAX_LEN 512
#define AUTH_LINE_MAX 12288 /* RFC 4954 §4 */

enum phase {
    PH_CONNECT, /* connect hook running; no greeting yet */
    PH_CMD,     /* reading commands */
    PH_DATA,    /* reading the message */
    PH_AUTH,    /* reading SASL responses for the upstream */
    PH_TLS,     /* handshake in progress */
    PH_CLOSING,
};

/* What the session is waiting for (busy != W_NONE: input stays buffered). */
enum wait {
    W_NONE,
    W_CHAIN,
    W_UPSTREAM,
};

/* What to do when the current asynchronous step finishes. */
enum step {
    ST_NONE,
    ST_CONNECT,
    ST_HELO,
    ST_MAIL,
    ST_RCPT,
    ST_MESSAGE,
    ST_AUTH,
    ST_AUTH_RSET, /* RSET upstream left over from an earlier transaction, then AUTH */
    ST_MAIL_RSET, /* RSET upstream left over from an earlier transaction, then MAIL */
};

typedef struct rcpt {
    char *addr; /* path as given */
    char *line; /* the RCPT line sent upstream, kept for replay */
} rcpt;

typedef struct sess {
    pc_session base; /* first: what every protocol's session has (session.h); base.run is the
                        hook running, one at a time */
    enum phase phase;
    enum wait wait;
    enum step step;
    int in_process;
    int again;
    int skip_line; /* discarding the rest of an over-long line */
    int first_cmd;
    size_t line_consumed; /* bytes of the command line being handled, CRLF included */

    /* session */
    char helo[256];
    int esmtp;
    int authed;
    char user[256];
    unsigned errors;
    unsigned auth_failures;
    unsigned messages;

    /* transaction */
    int in_txn;
    char sender[PATH_MAX_LEN];
    char mail_line[1024];
    rcpt *rcpts;
    size_t nrcpts;
    char **rcpt_addrs; /* the addresses of rcpts, for the filters' view */
    char cur_rcpt[PATH_MAX_LEN];
    char cur_line[1024];
    int body8bit, smtputf8;
    pc_smtp_data data;
    pc_spool *spool;
    int spool_err;
    pc_message *msg;
    size_t replay_idx;
    uint64_t txn_start_ms;

    /* asynchronous work */
    pc_smtpc *up;
    int up_opening;
    int up_txn;     /* the upstream accepted a MAIL whose transaction is not finished */
    int up_reused;  /* s->up came from the pool and has not answered yet */
    int up_noreuse; /* this session sent AUTH upstream: its upstream sessions are never pooled */
    char auth_line[1024];
    int auth_plain;     /* the mechanism is PLAIN (user name in the first response) */
    int auth_login;     /* the mechanism is LOGIN (first response is the user name) */
    int auth_stage;     /* client responses seen in this exchange */
    int auth_cancelled; /* the client answered "*" */
} sess;

_Static_assert(offsetof(sess, base) == 0, "a sess is its pc_session (conn and chain callbacks)");

/* Replies (batched in s->base.out, written by ss_flush). */
#define ss_reply(s, ...) pc_session_reply(&(s)->base, __VA_ARGS__)
static inline void ss_flush(sess *s)
{
    pc_session_flush(&s->base);
}
void ss_relay_reply(sess *s, const pc_smtp_reply *r);
void ss_error_count(sess *s);
void ss_txn_reset(sess *s);
int ss_verdict_stops(sess *s, const pc_decision *d, pc_smtp_stage stage);
void ss_run_hook(sess *s, pc_hook hook, enum step step);
void ss_upstream_failed_reply(sess *s, pc_smtpc_status st);
void ss_drop_upstream(sess *s);
/* An upstream 421: answers the client 451 4.4.2 and drops the upstream leg; returns 1 if r was one.
 */
int ss_upstream_closing(sess *s, const pc_smtp_reply *r);
void ss_open_upstream(sess *s);
void ss_up_send(sess *s, const char *line, int secret);
/* Sends the MAIL (step ST_MAIL) or AUTH (step ST_AUTH) line upstream: on the live session, after an
 * RSET if an earlier transaction is still open there, or on a new session. */
void ss_up_start(sess *s);
int ss_reply_class_ok(const pc_smtp_reply *r);
void ss_resume(sess *s);
void ss_close_session(sess *s);
void ss_auth_done(sess *s, const pc_smtp_reply *r);
void ss_auth_continue(sess *s, char *line, size_t len);
void ss_helo_after_filters(sess *s, const pc_decision *d);
void ss_mail_after_filters(sess *s, const pc_decision *d);
void ss_rcpt_after_filters(sess *s, const pc_decision *d);
void ss_command(sess *s, char *line, size_t len);

#endif
