/* worker.c — one event loop per thread (see worker.h): start, upstream probe, stop with a deadline
 * for sessions in flight, and the swap of TLS contexts on reload. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "core/dns.h"
#include "core/jobs.h"
#include "imap/imap_client.h"
#include "imap/imap_server.h"
#include "net/conn.h"
#include "pop3/pop3_client.h"
#include "pop3/pop3_server.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_server.h"
#include "store/store.h"

enum { CMD_STOP = 1, CMD_RELOAD = 2 };

/* Each listener hands its connections to the session of its protocol. */
static const pc_protocol *const protocols[] = {
    [PC_PROTO_SMTP] = &pc_smtp_protocol,
    [PC_PROTO_POP3] = &pc_pop3_protocol,
    [PC_PROTO_IMAP] = &pc_imap_protocol,
};

typedef struct probe {
    pc_smtpc *c;
    pc_listener_rt *l;
} probe;

static void probe_done(void *ud, pc_smtpc_status st, const pc_smtp_reply *r)
{
    probe *p = ud;
    (void)r;
    if (st == PC_SMTPC_OK)
        pc_log_info(0, "event=upstream-probe listener=%s result=ok size=%zu auth=\"%s\"",
                    p->l->cfg->name, p->l->up.caps.size, p->l->up.caps.auth);
    else
        pc_log_warn(0, "event=upstream-probe listener=%s result=%s", p->l->cfg->name,
                    st == PC_SMTPC_PROTOCOL ? "protocol-error" : "unavailable");
    pc_smtpc_free(p->c);
    free(p);
}

void pc_worker_probe_upstreams(pc_worker *w)
{
    for (size_t i = 0; i < w->rt->cfg->nlisteners; i++) {
        pc_listener_rt *l = &w->ls[i];
        if (l->cfg->proto == PC_PROTO_POP3 && l->up.resolved) {
            pc_pop3_probe(l, &w->loop);
            continue;
        }
        if (l->cfg->proto == PC_PROTO_IMAP && l->up.resolved) {
            pc_imap_probe(l);
            continue;
        }
        if (l->cfg->proto != PC_PROTO_SMTP || !l->up.resolved)
            continue;
        probe *p = calloc(1, sizeof(*p));
        if (!p)
            return;
        p->l = l;
        pc_smtpc_params pp;
        memset(&pp, 0, sizeof(pp));
        pp.loop = &w->loop;
        pp.up = &l->up;
        pp.tls_ctx = l->upstream_tls;
        pp.helo_name = l->cfg->upstream.helo_name ? l->cfg->upstream.helo_name : l->cfg->hostname;
        struct sockaddr_in *lo = (struct sockaddr_in *)&pp.client;
        lo->sin_family = AF_INET;
        lo->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        memcpy(&pp.local, &pp.client, sizeof(pp.local));
        p->c = pc_smtpc_open(&pp, probe_done, p);
        if (!p->c) {
            pc_log_warn(0, "event=upstream-probe listener=%s result=unavailable", l->cfg->name);
            free(p);
        }
    }
}

static void on_stop_timer(uv_timer_t *t)
{
    pc_worker *w = t->data;
    if (pc_sessions_alive() == 0 || pc_now_ms() >= w->stop_deadline) {
        uv_timer_stop(t);
        uv_stop(&w->loop);
    }
}

static void on_async(uv_async_t *a)
{
    pc_worker *w = a->data;
    int cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & CMD_RELOAD) {
        for (size_t i = 0; i < w->rt->cfg->nlisteners; i++) {
            if (!w->reload_tls || !w->reload_tls[i])
                continue;
            SSL_CTX_up_ref(w->reload_tls[i]);
            if (w->ls[i].server_tls)
                SSL_CTX_free(w->ls[i].server_tls);
            w->ls[i].server_tls = w->reload_tls[i];
        }
        /* What the upstream offers may have changed too: ask it again. */
        pc_worker_probe_upstreams(w);
    }
    if (cmd & CMD_STOP) {
        for (size_t i = 0; i < w->rt->cfg->nlisteners; i++)
            pc_listener_stop(&w->ls[i]);
        w->stop_deadline = pc_now_ms() + w->rt->cfg->shutdown_timeout_ms;
        uv_timer_start(&w->stop_timer, on_stop_timer, 0, 100);
    }
}

static void run(void *arg)
{
    pc_worker *w = arg;
    char err[256];
    /* The resolver belongs to this thread's loop: made here, reached by filters through
     * pc_dns_current(), freed here once the loop has stopped. */
    w->dns = pc_dns_new(&w->loop, &w->rt->cfg->resolver, w->rt->dns_cache, err, sizeof(err));
    if (!w->dns)
        pc_log_err(0, "event=resolver worker=%d result=failed error=\"%s\"", w->id, err);
    pc_dns_set_current(w->dns);
    if (w->rt->store) {
        w->store = pc_store_worker_new(w->rt->store, &w->loop, err, sizeof(err));
        if (!w->store)
            pc_log_err(0, "event=state worker=%d result=failed error=\"%s\"", w->id, err);
        pc_store_set_current(w->store);
    }
    if (pc_jobs_worker_init(&w->loop) < 0)
        pc_log_err(0, "event=jobs worker=%d result=failed", w->id);
    /* Filters' per-worker state, before the first session of this loop. */
    for (size_t i = 0; i < w->rt->cfg->nlisteners; i++)
        w->ls[i].fstate = pc_chain_worker_init(w->ls[i].chain, &w->loop, (unsigned)w->id);
    pc_worker_probe_upstreams(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Every session of this loop has ended; long jobs still waiting get their after() now,
     * before the filters' per-worker state goes. */
    pc_jobs_worker_fini();
    for (size_t i = 0; i < w->rt->cfg->nlisteners; i++) {
        pc_chain_worker_fini(w->ls[i].chain, w->ls[i].fstate, (unsigned)w->id);
        w->ls[i].fstate = NULL;
    }
    pc_store_worker_free(w->store);
    w->store = NULL;
    pc_dns_free(w->dns);
    w->dns = NULL;
    uv_run(&w->loop, UV_RUN_NOWAIT); /* the resolver's and the job queue's close callbacks */
}

int pc_worker_start(pc_worker *w)
{
    pc_config *cfg = w->rt->cfg;
    if (uv_loop_init(&w->loop) < 0)
        return -1;
    w->ls = calloc(cfg->nlisteners, sizeof(*w->ls));
    if (!w->ls)
        return -1;
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    uv_timer_init(&w->loop, &w->stop_timer);
    w->stop_timer.data = w;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        pc_listener_rt *l = &w->ls[i];
        l->cfg = &cfg->listeners[i];
        if ((size_t)l->cfg->proto >= sizeof(protocols) / sizeof(protocols[0]))
            return -1;
        l->proto = protocols[l->cfg->proto];
        l->loop = &w->loop;
        l->worker = w;
        l->server_tls = w->rt->server_tls[i];
        if (l->server_tls)
            SSL_CTX_up_ref(l->server_tls);
        l->upstream_tls = w->rt->upstream_tls[i];
        l->chain = w->rt->chains[i];
        l->quarantine = cfg->quarantine.enabled ? &cfg->quarantine : NULL;
        l->policies = w->rt->policies;
        l->chain_hooks = l->chain ? pc_chain_hooks(l->chain) : 0;
        l->spool_threshold = cfg->spool_memory_threshold;
        l->up.cfg = &l->cfg->upstream;
        if (pc_upstream_resolve(&l->up) < 0)
            pc_log_warn(0, "event=upstream-resolve listener=%s host=%s result=failed", l->cfg->name,
                        l->cfg->upstream.host);
        if (pc_listener_start(l, w->fds[i], l->cfg->naddrs) < 0)
            return -1;
    }
    return uv_thread_create(&w->thread, run, w) == 0 ? 0 : -1;
}

void pc_worker_stop(pc_worker *w)
{
    atomic_fetch_or(&w->cmd, CMD_STOP);
    uv_async_send(&w->async);
}

void pc_worker_reload_tls(pc_worker *w)
{
    atomic_fetch_or(&w->cmd, CMD_RELOAD);
    uv_async_send(&w->async);
}

void pc_worker_join(pc_worker *w)
{
    uv_thread_join(&w->thread);
}
