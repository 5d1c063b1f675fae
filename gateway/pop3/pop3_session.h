/* pop3_session.h — the state of one client-facing POP3 session and the services its files share,
 * in layers that call only downwards: pop3_server.c (the session's life, input, commands, login)
 * calls pop3_retr.c (RETR/TOP through the retrieve hook, pop3_retr.h), and both call
 * pop3_session.c (output, the upstream leg, relaying), which reports back up through the session's
 * p3_ops. Internal to the POP3 server. */
#ifndef PC_POP3_SESSION_H
#define PC_POP3_SESSION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "core/chain.h"
#include "core/listener.h"
#include "core/session.h"
#include "core/spool.h"
#include "net/conn.h"
#include "pop3/pop3_client.h"
#include "pop3/pop3_parse.h"

#define P3_CRED_MAX 2048          /* the PASS / AUTH PLAIN line sent upstream */
#define P3_OUT_HIGH (1024 * 1024) /* client write queue above which the upstream is paused */
#define P3_OUT_BATCH (64 * 1024)  /* answers gather in s->base.out up to this, then go out */

typedef struct p3sess p3sess;
struct p3_retr;

/* How the files below the session's input loop report back to it (pop3_server.c fills them). */
typedef struct p3_ops {
    void (*resume)(p3sess *s); /* go on reading commands */
    void (*close)(p3sess *s);  /* end the session */
} p3_ops;

enum p3_phase {
    P3_TLS,     /* handshake in progress */
    P3_CONNECT, /* the CONNECT hook runs: no greeting yet, input stays buffered */
    P3_AUTHZ,   /* AUTHORIZATION state (RFC 1939 §4) */
    P3_SASL,    /* AUTH PLAIN without initial response: waiting for the client's line */
    P3_TRANS,   /* TRANSACTION state */
    P3_CLOSING,
};

struct p3sess {
    pc_session base; /* first: what every protocol's session has (session.h); base.run is the
                        hook running (CONNECT, RETRIEVE, CLOSE), one at a time */
    enum p3_phase phase;
    int busy;          /* waiting for the upstream or the chain: input stays buffered */
    unsigned inflight; /* relayed commands (p3_relay) whose answers are awaited */
    int pipe_ok;       /* all of them are plain relays: more may be pipelined behind them */
    int in_process, again, skip_line;
    size_t line_consumed;

    /* limits (0 in the configuration → defaults) */
    size_t line_max;
    size_t scan_max;
    unsigned max_errors, max_authfail, prelogin_ms, idle_ms, cache_size;

    /* session */
    int authed;
    char user[256];     /* USER argument, then the logged-in user */
    char user_log[128]; /* the user, sanitised for log lines */
    char cred[P3_CRED_MAX];
    int login_sasl; /* the login in flight is AUTH PLAIN */
    unsigned errors, auth_failures, commands;
    unsigned scanned, passed, tagged, replaced, unscanned, cache_hits;

    /* upstream */
    pc_pop3c *up;
    int up_paused;
    int status_sent; /* the status line of the relayed answer went to the client */
    int quitting;

    /* the command in flight after login */
    pc_pop3_cmd cmd;
    char upline[64];
    pc_buf capa; /* CAPA after login, filtered before it is relayed */

    char okline[PC_POP3_RESP_MAX]; /* an upstream +OK kept for later (login, retrieve) */
    struct p3_retr *r; /* a RETR/TOP through the retrieve hook (pop3_retr.c); NULL until one */
    const p3_ops *ops;
};

_Static_assert(offsetof(p3sess, base) == 0,
               "a p3sess is its pc_session (conn and chain callbacks)");

/* Replies and writes to the client (session.h). */
#define p3_reply(s, ...) pc_session_reply(&(s)->base, __VA_ARGS__)
static inline void p3_flush(p3sess *s)
{
    pc_session_flush(&s->base);
}
static inline int p3_write(p3sess *s, const void *p, size_t n)
{
    return pc_session_write(&s->base, p, n);
}

/* pop3_session.c */
/* Appends to s->base.out (status line and body leave in one write); flushes past P3_OUT_BATCH. The
 * rest goes out at p3_flush (end of input processing, close). */
int p3_queue(p3sess *s, const void *p, size_t n);
void p3_resume(p3sess *s);
void p3_close(p3sess *s);
void p3_upstream_lost(p3sess *s);
/* Is v a command relayed as it is, whose answer the gateway only passes on (so that more may be
 * pipelined upstream behind it)? */
int p3_plain_relay(const p3sess *s, pc_pop3_verb v);
/* Relays the command in s->upline (s->cmd) as it is: status line sanitised, body byte-exact. */
void p3_relay(p3sess *s);
/* Relays body bytes of an answer to the client (batched; pauses the upstream while the client is
 * slow). */
int p3_relay_bytes(p3sess *s, const char *p, size_t n);
/* Sends a command upstream with handler h; on failure answers -ERR [SYS/TEMP] and closes. */
void p3_up_send(p3sess *s, const char *line, int multiline, size_t max_body,
                const pc_pop3c_handler *h);

#endif
