/* smtp_session.h — the state of one client-facing SMTP session and the services its files share,
 * in three layers that call only downwards: smtp_server.c (the session's life, its input loop, the
 * message after the dot) calls smtp_cmd.c (the command table and the AUTH exchange), which calls
 * smtp_session.c (replies, the transaction, the chain, the upstream leg, the end); smtp_session.c
 * reports back up through the session's ss_ops. Internal to the SMTP server. */
#ifndef PC_SMTP_SESSION_H
#define PC_SMTP_SESSION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
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
#include "smtp/smtp_txn.h"

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
    W_QUARANTINE, /* the held message is being written to the quarantine (threadpool) */
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
    ST_DELIVER,   /* the DELIVER hook: signing, sealing */
};

typedef struct sess sess;

/* How the files below the session's input loop report back to it (smtp_server.c fills them). */
typedef struct ss_ops {
    void (*resume)(sess *s);                             /* go on reading commands */
    void (*step_done)(sess *s, const pc_decision *d);    /* a hook's decision arrived */
    void (*auth_reply)(sess *s, const pc_smtp_reply *r); /* the upstream answered AUTH */
} ss_ops;

struct sess {
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

    pc_smtp_txn txn;       /* the transaction (smtp_txn.h): empty outside one */
    pc_smtp_verb pending;  /* the command whose hook is running (its proceed comes next) */
    pc_smtp_err parse_err; /* the command line's parse result, for MAIL and RCPT's own checks */
    const ss_ops *ops;

    /* asynchronous work */
    struct pc_quar_job *quar; /* the message being quarantined, or NULL */
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
};

_Static_assert(offsetof(sess, base) == 0, "a sess is its pc_session (conn and chain callbacks)");

/* Replies (batched in s->base.out, written by ss_flush). */
#define ss_reply(s, ...) pc_session_reply(&(s)->base, __VA_ARGS__)
static inline void ss_flush(sess *s)
{
    pc_session_flush(&s->base);
}
/* smtp_session.c */
void ss_relay_reply(sess *s, const pc_smtp_reply *r);
void ss_error_count(sess *s);
void ss_txn_reset(sess *s);
/* Records the transaction's current recipient with its outcome (and the filters' view). */
void ss_record_rcpt(sess *s, pc_rcpt_status st, int code, pc_action action);
/* Renders a refusing decision as the reply (smtp_render.c): returns its code if the step must stop
 * there, 0 if it goes on. */
int ss_verdict_stops(sess *s, const pc_decision *d, pc_smtp_stage stage);
/* Runs hook if a filter uses it, then ops->step_done; without one, ops->step_done at once. */
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
/* Hands the filtered message to the upstream; its reply is the client's. */
void ss_send_message(sess *s);
/* The one log line of a transaction. */
void ss_log_message(sess *s, pc_log_level level, const char *result, const char *detail,
                    size_t size);
void ss_resume(sess *s);
void ss_close_session(sess *s);

/* smtp_cmd.c */
/* One command line (PH_CMD): the verb table decides whether it is allowed now, its check answers
 * or runs its hook; the hook's decision comes back through ss_cmd_proceed. */
void ss_command(sess *s, char *line, size_t len);
void ss_cmd_proceed(sess *s, const pc_decision *d);
/* A SASL response line (PH_AUTH), and the upstream's answer to the exchange. */
void ss_auth_continue(sess *s, char *line, size_t len);
void ss_auth_done(sess *s, const pc_smtp_reply *r);

#endif
