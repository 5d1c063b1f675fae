/* upstream.c — upstream address resolution and the first steps of every upstream leg (see
 * upstream.h): connect, outbound PROXY v2, implicit TLS or STARTTLS with SNI and name checks. */
#include "core/upstream.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "parse/proxy.h"
#include "parse/sanitize.h"

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pc_upstream *u = req->data;
    u->resolving = 0;
    if (status == 0 && res) {
        memset(&u->addr, 0, sizeof(u->addr));
        memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
        u->resolved = 1;
        pc_log_notice(0, "event=upstream-resolve host=%s result=ok", u->cfg->host);
    }
    uv_freeaddrinfo(res);
}

void pc_upstream_resolve_async(pc_upstream *u, uv_loop_t *loop)
{
    if (u->resolving || u->resolved)
        return;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)u->cfg->port);
    u->gai.data = u;
    if (uv_getaddrinfo(loop, &u->gai, resolved_cb, u->cfg->host, port, &hints) == 0)
        u->resolving = 1;
}

int pc_upstream_resolve(pc_upstream *u)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)u->cfg->port);
    if (getaddrinfo(u->cfg->host, port, &hints, &res) != 0 || !res)
        return -1;
    memset(&u->addr, 0, sizeof(u->addr));
    memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    u->resolved = 1;
    return 0;
}

/* ---- the first steps of every upstream leg (SMTP, POP3, IMAP clients) ---------------------- */

static void quiet_cb(pc_conn *c, pc_conn_event ev, void *ud)
{
    (void)c;
    (void)ev;
    (void)ud;
}

pc_conn *pc_upstream_connect(pc_upstream *u, uv_loop_t *loop, size_t in_max, pc_conn_cb cb,
                             void *ud)
{
    if (!u->resolved) {
        pc_upstream_resolve_async(u, loop);
        return NULL;
    }
    pc_conn *conn = pc_conn_new(loop, in_max, cb, ud);
    if (!conn)
        return NULL;
    if (pc_conn_connect(conn, (struct sockaddr *)&u->addr, u->cfg->connect_timeout_ms) < 0) {
        conn->cb = quiet_cb; /* the caller hears nothing more of it */
        conn->ud = NULL;
        pc_conn_close(conn);
        return NULL;
    }
    return conn;
}

void pc_upstream_tls_done(pc_conn *conn, uint64_t sid)
{
    pc_log_debug(sid, "upstream_tls=%s cipher=%s", pc_conn_tls_version(conn),
                 pc_conn_tls_cipher(conn));
    pc_conn_read_start(conn);
}

int pc_upstream_tls_start(pc_conn *conn, const pc_upstream_cfg *cfg, SSL_CTX *ctx)
{
    const char *name = cfg->sni ? cfg->sni : cfg->host;
    return pc_conn_tls_client(conn, ctx, name, cfg->verify ? name : NULL);
}

int pc_upstream_connected(pc_conn *conn, const pc_upstream_cfg *cfg, SSL_CTX *ctx,
                          const struct sockaddr_storage *client,
                          const struct sockaddr_storage *local, const char **why)
{
    if (cfg->identity == PC_IDENT_PROXY) {
        unsigned char hdr[64];
        size_t n = pc_proxy_v2_build(hdr, sizeof(hdr), (const struct sockaddr *)client,
                                     (const struct sockaddr *)local);
        if (n == 0) {
            *why = "cannot build PROXY header";
            return -1;
        }
        pc_conn_write(conn, hdr, n);
    }
    pc_conn_set_timeout(conn, cfg->reply_timeout_ms);
    if (cfg->tls != PC_TLS_IMPLICIT) {
        pc_conn_read_start(conn);
        return PC_UPSTREAM_GREETING;
    }
    if (pc_upstream_tls_start(conn, cfg, ctx) < 0) {
        *why = "TLS setup failed";
        return -1;
    }
    return PC_UPSTREAM_TLS;
}
