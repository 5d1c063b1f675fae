/* upstream.h — what a listener knows about its upstream: the resolved address and the capabilities
 * its EHLO last announced (probed at start and refreshed by every new upstream session), kept per
 * worker so that no lock is needed. */
#ifndef PC_UPSTREAM_H
#define PC_UPSTREAM_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "config/config.h"
#include "net/conn.h"

enum {
    PC_CAP_SIZE = 1u << 0,
    PC_CAP_PIPELINING = 1u << 1,
    PC_CAP_8BITMIME = 1u << 2,
    PC_CAP_ENHANCED = 1u << 3,
    PC_CAP_SMTPUTF8 = 1u << 4,
    PC_CAP_DSN = 1u << 5,
    PC_CAP_STARTTLS = 1u << 6,
    PC_CAP_AUTH = 1u << 7,
    PC_CAP_XCLIENT = 1u << 8,
    PC_CAP_CHUNKING = 1u << 9,
};

typedef struct pc_upstream_caps {
    unsigned flags;
    size_t size;    /* SIZE limit announced; 0 = none announced */
    char auth[128]; /* "PLAIN LOGIN" as announced (sanitised) */
    int known;      /* 1 once a real EHLO was seen */
} pc_upstream_caps;

typedef struct pc_upstream {
    const pc_upstream_cfg *cfg;
    struct sockaddr_storage addr; /* resolved once; re-resolved on failure */
    int resolved;
    int resolving; /* an asynchronous lookup is under way */
    uv_getaddrinfo_t gai;
    pc_upstream_caps caps;
} pc_upstream;

/* Resolves cfg->host:port synchronously (getaddrinfo). Called by a worker before its loop runs
 * only. Returns 0 or -1. */
int pc_upstream_resolve(pc_upstream *u);
/* Starts an asynchronous lookup on loop (the threadpool does the blocking part) unless one is under
 * way; u->resolved becomes 1 when it succeeds. Used when the lookup at start failed. */
void pc_upstream_resolve_async(pc_upstream *u, uv_loop_t *loop);

/* The connection of a new upstream leg, to u's address: NULL when it cannot start (no event
 * follows). An address not resolved yet (the lookup at start failed) starts an asynchronous lookup
 * on loop and gives NULL: the next attempt can use it. */
pc_conn *pc_upstream_connect(pc_upstream *u, uv_loop_t *loop, size_t in_max, pc_conn_cb cb,
                             void *ud);

enum { PC_UPSTREAM_GREETING = 0, PC_UPSTREAM_TLS = 1 };

/* Once the leg's TCP connection is up: the outbound PROXY v2 header (client → local) when the
 * identity mode is proxy, the reply timeout, and for implicit TLS the handshake. Returns
 * PC_UPSTREAM_GREETING (reading started: the greeting comes next), PC_UPSTREAM_TLS (handshake under
 * way; pc_upstream_tls_done() at its end) or -1 with *why set. */
int pc_upstream_connected(pc_conn *conn, const pc_upstream_cfg *cfg, SSL_CTX *ctx,
                          const struct sockaddr_storage *client,
                          const struct sockaddr_storage *local, const char **why);

/* PC_CONN_EV_TLS_DONE on a leg: logs the protocol and cipher (debug) and starts reading. */
void pc_upstream_tls_done(pc_conn *conn, uint64_t sid);

/* The TLS client handshake of a leg (implicit TLS, or after STARTTLS/STLS): SNI is cfg->sni or the
 * host, and the same name is verified against the certificate when cfg->verify. 0 or -1. */
int pc_upstream_tls_start(pc_conn *conn, const pc_upstream_cfg *cfg, SSL_CTX *ctx);

#endif
