/* listener.c — listening sockets (SO_REUSEPORT, one per worker and address) and the accept path:
 * the total connection cap, then the hand-off to the protocol session, which applies the
 * per-address cap and PROXY trust. */
#include "core/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "net/addrtable.h"
#include "net/conn.h"
#include "parse/parse.h"
#include "parse/proxy.h"

#define CLIENT_IN_MAX (64 * 1024)
#define PROXY_TIMEOUT_MS 10000 /* a trusted load balancer sends its header at once */

static atomic_uint sessions_alive;
static atomic_uint_fast64_t sid_counter;
static unsigned max_total = 10000;

unsigned pc_sessions_alive(void)
{
    return atomic_load(&sessions_alive);
}

void pc_session_count(int delta)
{
    if (delta > 0)
        atomic_fetch_add(&sessions_alive, (unsigned)delta);
    else
        atomic_fetch_sub(&sessions_alive, (unsigned)-delta);
}

void pc_listener_set_max_total(unsigned n)
{
    max_total = n;
}

uint64_t pc_session_id(void)
{
    static uint64_t base;
    if (!base)
        base = ((uint64_t)time(NULL) & 0xffffffffu) << 24;
    return base + atomic_fetch_add(&sid_counter, 1) + 1;
}

int pc_listener_bind(const struct sockaddr_storage *ss, char *err, size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
        char a[INET6_ADDRSTRLEN];
        snprintf(err, errlen, "bind %s: %s", pc_addr_str((const struct sockaddr *)ss, a, sizeof(a)),
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 1024) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* A connection between accept and its session: waiting for the PROXY header of a trusted load
 * balancer, or refused. Owns the per-address count of `client` until a session takes it over. */
typedef struct gate {
    pc_listener_rt *l;
    struct sockaddr_storage client;
    int counted;
} gate;

static void refuse(pc_listener_rt *l, pc_conn *c)
{
    const char *busy = l->proto->busy;
    /* On an implicit-TLS port a plaintext line would be noise inside the handshake. */
    if (busy && l->cfg->tls.mode != PC_TLS_IMPLICIT) {
        pc_conn_write(c, busy, strlen(busy));
        pc_conn_write(c, "\r\n", 2);
    }
    pc_conn_close(c);
}

/* Counts the client's connection and hands it to the protocol, or refuses it over the cap.
 * Trusted networks are exempt, as Postfix exempts $mynetworks. */
static void admit(gate *g, pc_conn *c)
{
    pc_listener_rt *l = g->l;
    unsigned n = pc_addr_conn_inc((struct sockaddr *)&g->client);
    g->counted = 1;
    if (l->cfg->max_connections_per_ip && n > l->cfg->max_connections_per_ip &&
        !pc_netlist_match(&l->cfg->trusted_networks, (struct sockaddr *)&g->client)) {
        char a[INET6_ADDRSTRLEN];
        pc_log_notice(0, "event=limit limit=connections_per_ip listener=%s client=%s count=%u",
                      l->cfg->name, pc_addr_str((struct sockaddr *)&g->client, a, sizeof(a)), n);
        refuse(l, c); /* the gate keeps the count until CLOSED */
        return;
    }
    g->counted = 0; /* the session releases it now */
    c->cb = NULL;
    c->ud = NULL;
    struct sockaddr_storage client = g->client;
    free(g);
    l->proto->start(l, c, &client);
}

static void on_gate(pc_conn *c, pc_conn_event ev, void *ud)
{
    gate *g = ud;
    switch (ev) {
    case PC_CONN_EV_READ: {
        pc_proxy_info info;
        size_t used = 0;
        int rc = pc_proxy_parse((const unsigned char *)pc_buf_ptr(&c->in), pc_conn_pending(c),
                                &info, &used);
        if (rc == PC_NEED_MORE)
            return;
        if (rc != PC_OK) {
            char a[INET6_ADDRSTRLEN];
            pc_log_notice(0, "event=proxy-invalid listener=%s peer=%s", g->l->cfg->name,
                          pc_addr_str((struct sockaddr *)&c->peer, a, sizeof(a)));
            pc_conn_close(c);
            return;
        }
        pc_conn_consume(c, used);
        if (!info.local)
            g->client = info.src;
        pc_conn_read_stop(c);
        pc_conn_set_timeout(c, 0);
        admit(g, c);
        return;
    }
    case PC_CONN_EV_CLOSED:
        if (g->counted)
            pc_addr_conn_dec((struct sockaddr *)&g->client);
        free(g);
        return;
    case PC_CONN_EV_TIMEOUT:
    case PC_CONN_EV_EOF:
    case PC_CONN_EV_ERROR: pc_conn_close(c); return;
    default: return;
    }
}

static void on_accept(uv_stream_t *server, int status)
{
    pc_listener_rt *l = server->data;
    if (status < 0)
        return;
    gate *g = calloc(1, sizeof(*g));
    pc_conn *c = g ? pc_conn_new(l->loop, CLIENT_IN_MAX, on_gate, g) : NULL;
    if (!c) {
        free(g);
        return;
    }
    g->l = l;
    if (pc_conn_accept(c, server) < 0) {
        pc_conn_close(c);
        return;
    }
    g->client = c->peer;
    if (pc_sessions_alive() >= max_total) {
        pc_log_notice(0, "event=limit limit=max_connections listener=%s", l->cfg->name);
        refuse(l, c);
        return;
    }
    if (l->cfg->proxy_trusted.n &&
        pc_netlist_match(&l->cfg->proxy_trusted, (struct sockaddr *)&c->peer)) {
        /* Only a configured load balancer may say who the client is. */
        pc_conn_set_timeout(c, PROXY_TIMEOUT_MS);
        pc_conn_read_start(c);
        return;
    }
    admit(g, c);
}

static void on_server_close(uv_handle_t *h)
{
    (void)h;
}

int pc_listener_start(pc_listener_rt *l, const int *fds, size_t nfds)
{
    l->servers = calloc(nfds, sizeof(uv_tcp_t));
    if (!l->servers)
        return -1;
    for (size_t i = 0; i < nfds; i++) {
        uv_tcp_t *t = &l->servers[i];
        if (uv_tcp_init(l->loop, t) < 0 || uv_tcp_open(t, fds[i]) < 0)
            return -1;
        t->data = l;
        l->nservers++;
        if (uv_listen((uv_stream_t *)t, 1024, on_accept) < 0)
            return -1;
    }
    return 0;
}

void pc_listener_stop(pc_listener_rt *l)
{
    for (size_t i = 0; i < l->nservers; i++)
        if (!uv_is_closing((uv_handle_t *)&l->servers[i]))
            uv_close((uv_handle_t *)&l->servers[i], on_server_close);
}
