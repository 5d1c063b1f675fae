/* session.h — what every client-facing session (SMTP, POP3, IMAP) has in common: its identity
 * (session id, client address, listener), the view the filters get, the replies batched for the
 * client, and the steps of its life that do not depend on the protocol: the start, implicit TLS
 * under the per-address handshake limit, the CONNECT and CLOSE hooks, the end.
 *
 * A protocol embeds a pc_session as the first member `base` of its own session struct, allocates
 * it with pc_session_new() and keeps everything else — phases, greeting and refusal wording, what
 * STARTTLS forgets — to itself. The session lives on one loop thread from accept to
 * PC_CONN_EV_CLOSED; nothing here locks.
 *
 * Ownership: the session owns the conn from pc_session_new() on (closed with pc_conn_close(),
 * freed by conn.c after PC_CONN_EV_CLOSED) and the per-address connection count the listener
 * took for it, given back in pc_session_free(). */
#ifndef PC_SESSION_H
#define PC_SESSION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/chain.h"
#include "core/listener.h"
#include "net/conn.h"

/* What the common code needs of a protocol: one static table per protocol (STYLE habit 2). */
typedef struct pc_session_proto {
    const char *name;   /* "smtp", "pop3", "imap": the filters' view */
    size_t reply_max;   /* longest reply line pc_session_reply() builds, CRLF included */
    pc_conn_cb on_conn; /* the protocol's connection events; ud is its session */
} pc_session_proto;

typedef struct pc_session {
    const pc_session_proto *proto;
    pc_listener_rt *l;
    const pc_listener_cfg *cfg;
    pc_conn *c; /* the client connection */
    uint64_t sid;
    uint64_t start_ms;
    pc_buf out;         /* replies batched for the client, written by pc_session_flush */
    pc_session_view sv; /* what the filters see */
    pc_results results; /* sv.results */
    /* The hook run started through pc_session_hook_start (the CONNECT hook, the CLOSE hook; SMTP
     * and POP3 run every hook through it, one at a time). Its done callback clears it; whatever
     * still runs when the session ends is cancelled. */
    pc_chain_run *run;
    char client_ip[INET6_ADDRSTRLEN];
    int tls;               /* the client connection is encrypted (also sv.tls) */
    unsigned conn_counted; /* the listener counted this address: given back at the end */
    int auth_fetched;      /* pc_session_auth_fetch asked the store already */
} pc_session;

/* Takes over an accepted connection: allocates size bytes (a protocol session whose first member
 * is a pc_session) zeroed, and fills the base from the listener, the conn and the client address
 * (after PROXY). The conn's events go to proto->on_conn with the session as ud. Returns the
 * session, or NULL when memory ran out (the conn is closed then, the address count given back). */
void *pc_session_new(size_t size, const pc_session_proto *proto, pc_listener_rt *l, pc_conn *conn,
                     const struct sockaddr_storage *client);
/* At PC_CONN_EV_CLOSED, the session's last event, after the protocol has released its own parts:
 * cancels a hook still running, gives back the address's connection count and the session count,
 * and frees the output buffer, the results and the session itself. */
void pc_session_free(pc_session *b);

/* ---- TLS */

/* Counts a TLS handshake of this client against tls.handshakes_per_minute. Returns 1 if it may
 * start one, 0 over the limit (logged as event=limit limit=handshakes; the protocol answers). */
int pc_session_handshake_allowed(pc_session *b);
/* Implicit TLS at connect: the handshake limit, then the handshake under
 * tls.handshake_timeout_ms, with reading on; PC_CONN_EV_TLS_DONE or _TLS_FAILED follows. Returns
 * 0 when it runs, -1 when the caller must close (over the limit, or TLS could not start). The
 * caller sets its handshake phase first. */
int pc_session_tls_implicit(pc_session *b);
/* STARTTLS accepted: the protocol's go-ahead is in b->out and its handshake phase set. Bytes the
 * client sent after the command (the first `line` pending bytes are the command itself) are the
 * STARTTLS injection class: they are logged as event=<event> and discarded when the handshake
 * starts (conn.h). Writes the go-ahead, then starts the handshake as above. Returns 0, or -1 when
 * TLS could not start (the caller closes). */
int pc_session_starttls(pc_session *b, const char *event, size_t line);
/* PC_CONN_EV_TLS_DONE: marks the session encrypted and logs event=tls. Returns 1 when TLS was
 * implicit (the session starts now: CONNECT hook, greeting), 0 after STARTTLS (the protocol
 * forgets what it learnt in plaintext). */
int pc_session_tls_done(pc_session *b);
/* PC_CONN_EV_TLS_FAILED: logs event=tls-failed with the reason; the caller closes. */
void pc_session_tls_failed(pc_session *b);

/* ---- filter hooks */

/* 1 when a filter of the listener runs at hook. */
int pc_session_hook_used(const pc_session *b, pc_hook hook);
/* A failed login from the session's client: counted per address in this process, and, with a
 * state store, in the store too, whose count (what every gateway sharing it saw in the last
 * minute) raises this process's when it answers. The per-address limits read this process's. */
void pc_session_auth_failed(pc_session *b);
/* Once per session, where a login may come (SMTP when AUTH is offered, POP3 and IMAP at the
 * start): asks the store what the client's address failed in the last minute on every gateway,
 * and raises this process's count to it when the answer comes. */
void pc_session_auth_fetch(pc_session *b);
/* Runs hook over the listener's chain with the session's view. done (ud: the session) gets the
 * verdict exactly once, possibly before this returns, and sets b->run to NULL; until then b->run
 * holds the run. */
void pc_session_hook_start(pc_session *b, pc_hook hook, pc_chain_cb done);
/* Before the greeting: when a filter uses the CONNECT hook, reads the client (so that a hang-up
 * is seen; the bytes stay buffered, bounded by the conn's input limit) with idle timeout
 * timeout_ms (0: only the filters' own timeouts) and runs the hook; returns 1. Returns 0 when no
 * filter uses it: the caller greets at once. The caller sets its CONNECT phase first (done may be
 * called before this returns). */
int pc_session_connect_hook(pc_session *b, unsigned timeout_ms, pc_chain_cb done);
/* Cancels the hook run in b->run, if any: done is not called. */
void pc_session_hook_abort(pc_session *b);
/* At close, once the protocol has released its transaction: runs the CLOSE hook when a filter
 * uses it (its verdict is ignored; a filter still busy when the connection's handles are closed
 * is cancelled in pc_session_free), then writes the replies still batched. */
void pc_session_close_hook(pc_session *b);
/* The session's last line and the close: logs "event=disconnect <the protocol's fields, fmt>
 * bytes_in=… bytes_out=… duration_ms=…" (the connection's plaintext counts) and closes the client
 * connection; PC_CONN_EV_CLOSED follows. */
void pc_session_end(pc_session *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- events and replies */

/* PC_CONN_EV_TIMEOUT: logs event=timeout with the protocol's phase. */
void pc_session_log_timeout(pc_session *b, int phase);
/* Appends one reply line (cut to proto->reply_max, CRLF added) to b->out. */
void pc_session_reply(pc_session *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes what b->out holds and frees its memory (an idle session holds no buffer). */
void pc_session_flush(pc_session *b);
/* Writes n bytes (copied) after what b->out holds, keeping the order. 0, or -1 when the conn is
 * closing or memory ran out. */
int pc_session_write(pc_session *b, const void *p, size_t n);

#endif
