/* listener.h — a listener as one worker thread runs it: its configuration, TLS contexts, filter
 * chain and upstream state, and the accept path (connection caps, PROXY trust, hand-off to the
 * protocol). Everything here belongs to one loop thread; the config, TLS contexts and chain it
 * points to are shared, immutable, and kept alive by the snapshot. */
#ifndef PC_LISTENER_H
#define PC_LISTENER_H

#include <openssl/ssl.h>
#include <uv.h>

#include "config/config.h"
#include "core/chain.h"
#include "core/upstream.h"

struct pc_worker;
struct pc_smtpc;

/* Idle upstream sessions kept for reuse per listener and worker (identity none only). */
#define PC_UPSTREAM_POOL 32
#define PC_UPSTREAM_POOL_IDLE_MS 30000

struct pc_listener_rt;
struct pc_conn;
struct pc_policy_set;

/* What the accept path needs of a protocol (STYLE habit 2): its name, the refusal it writes when a
 * cap is hit (without CRLF), and where a session starts (it owns the connection from then on). Each
 * protocol exports one; the worker gives every listener the one of its protocol. */
typedef struct pc_protocol {
    const char *name;
    const char *busy;
    void (*start)(struct pc_listener_rt *l, struct pc_conn *c,
                  const struct sockaddr_storage *client);
} pc_protocol;

typedef struct pc_listener_rt {
    const pc_listener_cfg *cfg;
    const pc_protocol *proto;
    SSL_CTX *server_tls;   /* NULL when tls.mode is none */
    SSL_CTX *upstream_tls; /* NULL when the upstream's tls is none */
    const pc_chain *chain;
    const pc_quarantine_cfg *quarantine;  /* NULL: no quarantine (a hold is answered 451) */
    const struct pc_policy_set *policies; /* the policy files (policies/), shared; NULL = none */
    void **fstate; /* the chain's per-worker filter states on this loop (pc_chain_worker_init) */
    pc_upstream up;
    uv_loop_t *loop;
    struct pc_worker *worker;
    uv_tcp_t *servers; /* one per bind address */
    size_t nservers;
    unsigned chain_hooks;
    size_t spool_threshold;                  /* bytes of a message kept in memory */
    struct pc_smtpc *pool[PC_UPSTREAM_POOL]; /* idle, unauthenticated, no transaction */
    uint64_t pool_since[PC_UPSTREAM_POOL];
    unsigned npool;
    /* POP3/IMAP: the upstream's capabilities as last seen (CAPA / CAPABILITY), kept by that
     * protocol's code: the text (sanitised) and protocol-defined flags. */
    char caps_text[1024];
    unsigned caps_flags;
    int caps_known;
} pc_listener_rt;

/* Binds a listening socket with SO_REUSEPORT (and IPV6_V6ONLY for v6). Returns the fd or -1 with a
 * reason in err. */
int pc_listener_bind(const struct sockaddr_storage *ss, char *err, size_t errlen);
/* Starts accepting on the fds (one per cfg address) on l->loop. Returns 0 or -1. */
int pc_listener_start(pc_listener_rt *l, const int *fds, size_t nfds);
void pc_listener_stop(pc_listener_rt *l);

/* A fresh session id, unique in the process. */
uint64_t pc_session_id(void);

/* Sessions alive (all workers); used for the shutdown deadline. */
/* Total sessions allowed at once (all workers). */
void pc_listener_set_max_total(unsigned n);
unsigned pc_sessions_alive(void);
void pc_session_count(int delta);

#endif
