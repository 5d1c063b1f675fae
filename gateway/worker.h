/* worker.h — event-loop threads. Each worker owns one uv_loop_t, its own listening sockets
 * (SO_REUSEPORT) and every session accepted on them; nothing of a session is touched by another
 * thread. The main thread talks to workers only through uv_async (stop, TLS reload). */
#ifndef PC_WORKER_H
#define PC_WORKER_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <uv.h>

#include "config/config.h"
#include "core/chain.h"
#include "core/listener.h"

/* What all workers share: the configuration and, per listener, TLS contexts and the filter chain.
 */
typedef struct pc_runtime {
    pc_config *cfg;
    SSL_CTX **server_tls;           /* per listener; NULL for tls none */
    SSL_CTX **upstream_tls;         /* per listener; NULL for upstream tls none */
    pc_chain **chains;              /* per listener */
    struct pc_dns_cache *dns_cache; /* the resolver's cache, shared by every worker */
    struct pc_store_shared *store;  /* the state store (state:), or NULL */
    struct pc_policy_set *policies; /* the policy files (policies:), or NULL */
} pc_runtime;

typedef struct pc_worker {
    int id;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t stop_timer;
    pc_runtime *rt;
    pc_listener_rt *ls;
    int **fds;            /* fds[listener][address] */
    atomic_int cmd;       /* bit 1 stop, bit 2 reload TLS */
    SSL_CTX **reload_tls; /* new server contexts, set by main before a reload */
    uint64_t stop_deadline;
    struct pc_dns *dns;     /* the filters' resolver on this loop; made and freed on the thread */
    struct pc_store *store; /* the filters' state store on this loop, likewise */
} pc_worker;

/* Creates the worker's loop and listener state and starts its thread. 0 or -1. */
int pc_worker_start(pc_worker *w);
/* Asks to stop accepting and to end once sessions are done or the deadline passed. */
void pc_worker_stop(pc_worker *w);
/* Asks to swap server TLS contexts for w->reload_tls (one reference each is taken). */
void pc_worker_reload_tls(pc_worker *w);
void pc_worker_join(pc_worker *w);
/* Probes the upstream of every listener once (EHLO) on the given loop; used by workers at start. */
void pc_worker_probe_upstreams(pc_worker *w);

#endif
