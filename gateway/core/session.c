/* session.c — the life of a client-facing session where it does not depend on the protocol: start,
 * implicit TLS under the per-address handshake limit, the CONNECT and CLOSE hooks, the replies
 * batched for the client, the end. The log lines written here (event=tls, event=tls-failed,
 * event=timeout, event=limit limit=handshakes) are the same for every protocol; the lines that
 * differ (event=connect, event=disconnect, refusals) stay with the protocol. Defends against TLS
 * handshake floods from one address (the handshake is the expensive step a client can force). */
#include "core/session.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/addrtable.h"
#include "store/store.h"

void *pc_session_new(size_t size, const pc_session_proto *proto, pc_listener_rt *l, pc_conn *conn,
                     const struct sockaddr_storage *client)
{
    pc_session *b = calloc(1, size);
    if (!b) {
        /* The listener handed its count of this address over to the session. */
        pc_addr_conn_dec((const struct sockaddr *)client);
        pc_conn_close(conn);
        return NULL;
    }
    b->proto = proto;
    b->l = l;
    b->cfg = l->cfg;
    b->c = conn;
    b->sid = pc_session_id();
    b->start_ms = pc_now_ms();
    pc_buf_init(&b->out, 0);
    conn->cb = proto->on_conn;
    conn->ud = b; /* the protocol's session: b is its first member */
    pc_session_count(+1);
    b->sv.sid = b->sid;
    b->sv.loop = l->loop;
    b->sv.protocol = proto->name;
    b->sv.listener = b->cfg->name;
    b->sv.authserv_id = b->cfg->authserv_id;
    b->sv.client = *client;
    b->sv.trusted = pc_netlist_match(&b->cfg->trusted_networks, (const struct sockaddr *)client);
    b->sv.conn = conn;
    b->sv.results = &b->results;
    b->sv.fstate = l->fstate;
    pc_addr_str((const struct sockaddr *)client, b->client_ip, sizeof(b->client_ip));
    memcpy(b->sv.client_ip, b->client_ip, sizeof(b->client_ip));
    b->conn_counted = 1; /* the listener counted this address: released at the end */
    return b;
}

void pc_session_free(pc_session *b)
{
    /* A CLOSE hook still busy when the handles closed: its filter is cancelled now, before the
     * view it reads goes away. */
    pc_session_hook_abort(b);
    if (b->conn_counted)
        pc_addr_conn_dec((struct sockaddr *)&b->sv.client);
    pc_session_count(-1);
    pc_buf_release(&b->out);
    pc_results_reset(&b->results); /* what filters of the CLOSE hook may have added */
    free(b->sv.slots);             /* the filters emptied their slots at CLOSE */
    free(b);
}

/* ---- TLS ------------------------------------------------------------------------------------- */

int pc_session_handshake_allowed(pc_session *b)
{
    unsigned max = b->cfg->tls.handshakes_per_minute;
    if (!max || pc_addr_event((struct sockaddr *)&b->sv.client, PC_CNT_HANDSHAKES, 60) <= max)
        return 1;
    pc_log_notice(b->sid, "event=limit limit=handshakes client=%s", b->client_ip);
    return 0;
}

static int tls_begin(pc_session *b)
{
    pc_conn_set_timeout(b->c, b->cfg->tls.handshake_timeout_ms);
    return pc_conn_tls_server(b->c, b->l->server_tls) < 0 ? -1 : 0;
}

int pc_session_tls_implicit(pc_session *b)
{
    if (!pc_session_handshake_allowed(b) || tls_begin(b) < 0)
        return -1;
    pc_conn_read_start(b->c);
    return 0;
}

int pc_session_starttls(pc_session *b, const char *event, size_t line)
{
    size_t junk = pc_conn_pending(b->c) - line;
    if (junk)
        pc_log_notice(b->sid, "event=%s client=%s discarded_bytes=%zu", event, b->client_ip, junk);
    pc_session_flush(b); /* the go-ahead leaves in plaintext, before the handshake */
    return tls_begin(b);
}

int pc_session_tls_done(pc_session *b)
{
    b->tls = 1;
    b->sv.tls = 1;
    pc_log_info(b->sid, "event=tls client=%s version=%s cipher=%s", b->client_ip,
                pc_conn_tls_version(b->c), pc_conn_tls_cipher(b->c));
    return b->cfg->tls.mode == PC_TLS_IMPLICIT;
}

void pc_session_tls_failed(pc_session *b)
{
    pc_log_notice(b->sid, "event=tls-failed client=%s reason=\"%s\"", b->client_ip, b->c->errtext);
}

/* ---- filter hooks ---------------------------------------------------------------------------- */

typedef struct authfail {
    struct sockaddr_storage client;
} authfail;

static void authfail_counted(void *arg, const pc_store_reply *r)
{
    authfail *a = arg;
    long long n = r->n;
    if (r->status == PC_STORE_OK && r->value) /* a fetch: the count as text */
        n = strtoll(r->value, NULL, 10);
    if (r->status == PC_STORE_OK && n > 0)
        pc_addr_raise((const struct sockaddr *)&a->client, PC_CNT_AUTHFAIL, 60,
                      n > 65535 ? 65535u : (unsigned)n);
    free(a);
}

/* The shared count is a plain counter that lives 60 s from the first failure it holds (a window
 * that does not slide: no estimate at its edges, as the per-address limit needs). */
static void authfail_store(pc_session *b, int failed)
{
    pc_store *st = pc_store_current();
    authfail *a = st ? malloc(sizeof(*a)) : NULL;
    if (!a)
        return;
    a->client = b->sv.client;
    char key[80];
    const char *parts[] = {b->client_ip};
    if (!pc_store_hash_key(key, sizeof(key), "af:", parts, 1) ||
        !(failed ? pc_store_incr(st, key, 1, 60, authfail_counted, a)
                 : pc_store_get(st, key, authfail_counted, a)))
        free(a); /* the store is busy or down: this process's count stands alone */
}

void pc_session_auth_failed(pc_session *b)
{
    pc_addr_event((struct sockaddr *)&b->sv.client, PC_CNT_AUTHFAIL, 60);
    authfail_store(b, 1);
}

void pc_session_auth_fetch(pc_session *b)
{
    if (b->auth_fetched)
        return;
    b->auth_fetched = 1;
    authfail_store(b, 0);
}

int pc_session_hook_used(const pc_session *b, pc_hook hook)
{
    return (b->l->chain_hooks & PC_HOOK_BIT(hook)) && b->l->chain;
}

void pc_session_hook_start(pc_session *b, pc_hook hook, pc_chain_cb done)
{
    pc_chain_run *r = pc_chain_start(b->l->chain, hook, &b->sv, done, b);
    /* NULL: done has run already, and may have started the next hook: b->run is its. */
    if (r)
        b->run = r;
}

int pc_session_connect_hook(pc_session *b, unsigned timeout_ms, pc_chain_cb done)
{
    if (!pc_session_hook_used(b, PC_HOOK_CONNECT))
        return 0;
    pc_conn_set_timeout(b->c, timeout_ms);
    pc_conn_read_start(b->c);
    pc_session_hook_start(b, PC_HOOK_CONNECT, done);
    return 1;
}

void pc_session_hook_abort(pc_session *b)
{
    if (b->run) {
        pc_chain_abort(b->run);
        b->run = NULL;
    }
}

static void close_done(void *ud, const pc_verdict *v)
{
    pc_session *b = ud;
    (void)v;
    b->run = NULL;
}

void pc_session_close_hook(pc_session *b)
{
    if (pc_session_hook_used(b, PC_HOOK_CLOSE))
        pc_session_hook_start(b, PC_HOOK_CLOSE, close_done);
    pc_session_flush(b);
}

void pc_session_end(pc_session *b, const char *fmt, ...)
{
    char fields[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof(fields), fmt, ap);
    va_end(ap);
    pc_log_info(b->sid, "event=disconnect %s bytes_in=%llu bytes_out=%llu duration_ms=%llu", fields,
                (unsigned long long)b->c->bytes_in, (unsigned long long)b->c->bytes_out,
                (unsigned long long)(pc_now_ms() - b->start_ms));
    pc_conn_close(b->c);
}

/* ---- events and replies ---------------------------------------------------------------------- */

void pc_session_log_timeout(pc_session *b, int phase)
{
    pc_log_notice(b->sid, "event=timeout client=%s phase=%d", b->client_ip, phase);
}

void pc_session_reply(pc_session *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_buf_vline(&b->out, b->proto->reply_max, fmt, ap);
    va_end(ap);
}

void pc_session_flush(pc_session *b)
{
    if (pc_buf_used(&b->out) == 0)
        return;
    pc_conn_write(b->c, pc_buf_ptr(&b->out), pc_buf_used(&b->out));
    pc_buf_release(&b->out);
}

int pc_session_write(pc_session *b, const void *p, size_t n)
{
    pc_session_flush(b);
    return pc_conn_write(b->c, p, n);
}
