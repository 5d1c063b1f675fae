/* listener.c — listening sockets (SO_REUSEPORT, one per worker and address) and the accept path:
 * the total connection cap, then the hand-off to the protocol session, which applies the
 * per-address cap and PROXY trust. */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "pop3/pop3_server.h"
#include "imap/imap_server.h"
#include "smtp/smtp_server.h"

#define CLIENT_IN_MAX (64 * 1024)

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

static void on_accept(uv_stream_t *server, int status)
{
    pc_listener_rt *l = server->data;
    if (status < 0)
        return;
    pc_conn *c = pc_conn_new(l->loop, CLIENT_IN_MAX, NULL, NULL);
    if (!c)
        return;
    if (pc_conn_accept(c, server) < 0) {
        pc_conn_close(c);
        return;
    }
    if (pc_sessions_alive() >= max_total) {
        static const char msg[] = "421 4.7.0 Server busy, try again later\r\n";
        if (l->cfg->tls.mode != PC_TLS_IMPLICIT)
            pc_conn_write(c, msg, sizeof(msg) - 1);
        pc_log_notice(0, "event=limit limit=max_connections listener=%s", l->cfg->name);
        pc_conn_close(c);
        return;
    }
    switch (l->cfg->proto) {
    case PC_PROTO_SMTP: pc_smtp_session_start(l, c); return;
    case PC_PROTO_IMAP: pc_imap_session_start(l, c); return;
    case PC_PROTO_POP3: pc_pop3_session_start(l, c); return;
    default: pc_conn_close(c); return;
    }
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
