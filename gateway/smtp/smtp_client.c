/* smtp_client.c — SMTP client session towards the upstream (see smtp_client.h).
 * Defends against a hostile or broken upstream: bounded replies, expected codes only, no plaintext
 * continuation where TLS was asked for, no bytes accepted after the 220 to STARTTLS. */
#include "smtp/smtp_client.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "core/upstream.h"
#include "net/conn.h"
#include "parse/sanitize.h"
#include "parse/stuff.h"
#include "smtp/smtp_data.h"

enum phase {
    P_CONNECT,
    P_GREETING,
    P_EHLO,
    P_STARTTLS,
    P_TLS,
    P_XCLIENT,
    P_READY,    /* idle, usable */
    P_COMMAND,  /* a caller's command is in flight */
    P_DATA_CMD, /* DATA sent, waiting for 354 */
    P_DATA_BODY,
    P_DATA_END, /* message sent, waiting for the final reply */
    P_DEAD,
};

struct pc_smtpc {
    pc_conn *conn;
    enum phase phase;
    pc_smtpc_params p;
    char helo_name[256];
    char client_helo[256];
    char login[256];
    pc_smtpc_cb cb;
    void *ud;
    int tls_done; /* TLS is active on the upstream leg */
    int xclient_done;
    int secret;            /* the command in flight carried credentials */
    int freed;             /* owner gave up: no callbacks */
    const pc_message *msg; /* DATA body being streamed */
    size_t msg_off;
    pc_stuff stuff;
    pc_buf wbuf;
};

#define DATA_CHUNK 65536
#define DATA_HIGH_WATER (256 * 1024)

static int kw(const pc_slice *l, const char *name, const char **rest, size_t *restlen)
{
    size_t n = strlen(name);
    if (l->n < n || strncasecmp(l->p, name, n) != 0)
        return 0;
    if (l->n > n && l->p[n] != ' ' && l->p[n] != '=')
        return 0;
    *rest = l->n > n ? l->p + n + 1 : l->p + n;
    *restlen = l->n > n ? l->n - n - 1 : 0;
    return 1;
}

/* EHLO capability lines come from an untrusted server: each is bounded and sanitised before it is
 * kept. */
void pc_smtp_caps_parse(pc_upstream_caps *caps, const pc_smtp_reply *r)
{
    memset(caps, 0, sizeof(*caps));
    caps->known = 1;
    for (size_t i = 1; i < r->nlines; i++) {
        const pc_slice *l = &r->lines[i];
        const char *rest;
        size_t rl;
        if (kw(l, "SIZE", &rest, &rl)) {
            caps->flags |= PC_CAP_SIZE;
            char tmp[24];
            size_t k = rl < sizeof(tmp) - 1 ? rl : sizeof(tmp) - 1;
            memcpy(tmp, rest, k);
            tmp[k] = '\0';
            caps->size = (size_t)strtoull(tmp, NULL, 10);
        } else if (kw(l, "PIPELINING", &rest, &rl))
            caps->flags |= PC_CAP_PIPELINING;
        else if (kw(l, "8BITMIME", &rest, &rl))
            caps->flags |= PC_CAP_8BITMIME;
        else if (kw(l, "ENHANCEDSTATUSCODES", &rest, &rl))
            caps->flags |= PC_CAP_ENHANCED;
        else if (kw(l, "SMTPUTF8", &rest, &rl))
            caps->flags |= PC_CAP_SMTPUTF8;
        else if (kw(l, "DSN", &rest, &rl))
            caps->flags |= PC_CAP_DSN;
        else if (kw(l, "STARTTLS", &rest, &rl))
            caps->flags |= PC_CAP_STARTTLS;
        else if (kw(l, "CHUNKING", &rest, &rl))
            caps->flags |= PC_CAP_CHUNKING;
        else if (kw(l, "XCLIENT", &rest, &rl))
            caps->flags |= PC_CAP_XCLIENT;
        else if (kw(l, "AUTH", &rest, &rl) && rl > 0) {
            caps->flags |= PC_CAP_AUTH;
            pc_sanitize(caps->auth, sizeof(caps->auth), rest, rl, 0);
        }
    }
}

static void fail(pc_smtpc *c, pc_smtpc_status st, const char *why)
{
    if (c->phase == P_DEAD)
        return;
    pc_log_info(c->p.sid, "upstream=failed reason=\"%s\"", why);
    c->phase = P_DEAD;
    pc_conn_set_timeout(c->conn, 0);
    pc_conn_read_stop(c->conn);
    if (!c->freed && c->cb) {
        pc_smtpc_cb cb = c->cb;
        c->cb = NULL;
        cb(c->ud, st, NULL);
    }
}

static void deliver(pc_smtpc *c, const pc_smtp_reply *r)
{
    pc_smtpc_cb cb = c->cb;
    c->cb = NULL;
    if (!c->freed && cb)
        cb(c->ud, PC_SMTPC_OK, r);
}

static int send_line(pc_smtpc *c, const char *line, size_t len)
{
    char tmp[1024];
    if (len + 2 > sizeof(tmp))
        return -1;
    memcpy(tmp, line, len);
    tmp[len] = '\r';
    tmp[len + 1] = '\n';
    int rc = pc_conn_write(c->conn, tmp, len + 2);
    if (c->secret)
        explicit_bzero(tmp, sizeof(tmp));
    return rc;
}

static void send_ehlo(pc_smtpc *c)
{
    char line[300];
    int n = snprintf(line, sizeof(line), "EHLO %s", c->helo_name);
    c->phase = P_EHLO;
    send_line(c, line, (size_t)n);
}

static void send_xclient(pc_smtpc *c)
{
    char ip[INET6_ADDRSTRLEN + 8], addr[INET6_ADDRSTRLEN];
    pc_addr_str((struct sockaddr *)&c->p.client, addr, sizeof(addr));
    if (c->p.client.ss_family == AF_INET6)
        snprintf(ip, sizeof(ip), "IPV6:%s", addr);
    else
        snprintf(ip, sizeof(ip), "%s", addr);
    unsigned port = 0;
    if (c->p.client.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *)&c->p.client)->sin_port);
    else if (c->p.client.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *)&c->p.client)->sin6_port);
    char line[900], helo[300], login[300];
    int n = snprintf(line, sizeof(line), "XCLIENT ADDR=%s PORT=%u NAME=[UNAVAILABLE]", ip, port);
    if (c->client_helo[0] &&
        pc_xtext_encode(helo, sizeof(helo), c->client_helo, strlen(c->client_helo)) >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " HELO=%s", helo);
    if (c->login[0] && pc_xtext_encode(login, sizeof(login), c->login, strlen(c->login)) >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " LOGIN=%s", login);
    n += snprintf(line + n, sizeof(line) - (size_t)n, " PROTO=ESMTP");
    c->phase = P_XCLIENT;
    send_line(c, line, (size_t)n);
}

static int data_emit(void *ud, const char *p, size_t n)
{
    pc_smtpc *c = ud;
    return pc_buf_append(&c->wbuf, p, n);
}

/* Streams the message until the write queue is high; continues on DRAIN. */
static void pump_body(pc_smtpc *c)
{
    char chunk[DATA_CHUNK];
    while (c->phase == P_DATA_BODY && c->conn->wpending < DATA_HIGH_WATER) {
        ssize_t n = pc_message_read(c->msg, c->msg_off, chunk, sizeof(chunk));
        if (n < 0) {
            fail(c, PC_SMTPC_UNAVAILABLE, "spool read error");
            return;
        }
        pc_buf_reset(&c->wbuf);
        int end = (n == 0);
        if (!end) {
            c->msg_off += (size_t)n;
            if (pc_stuff_feed(&c->stuff, chunk, (size_t)n, data_emit, c) < 0) {
                fail(c, PC_SMTPC_UNAVAILABLE, "out of memory");
                return;
            }
        } else if (pc_stuff_end(&c->stuff, data_emit, c) < 0) {
            fail(c, PC_SMTPC_UNAVAILABLE, "out of memory");
            return;
        }
        if (pc_buf_used(&c->wbuf) &&
            pc_conn_write(c->conn, pc_buf_ptr(&c->wbuf), pc_buf_used(&c->wbuf)) < 0) {
            fail(c, PC_SMTPC_UNAVAILABLE, "write failed");
            return;
        }
        if (end) {
            pc_buf_release(&c->wbuf);
            c->conn->want_drain = 0;
            c->phase = P_DATA_END;
            pc_conn_set_timeout(c->conn, c->p.up->cfg->data_timeout_ms);
            return;
        }
    }
    c->conn->want_drain = 1;
}

static void on_reply(pc_smtpc *c, const pc_smtp_reply *r)
{
    int code = r->code;
    switch (c->phase) {
    case P_GREETING:
        if (code != 220) {
            fail(c, code / 100 == 4 || code / 100 == 5 ? PC_SMTPC_UNAVAILABLE : PC_SMTPC_PROTOCOL,
                 "bad greeting");
            return;
        }
        send_ehlo(c);
        return;
    case P_EHLO:
        if (code != 250) {
            fail(c, PC_SMTPC_PROTOCOL, "EHLO refused");
            return;
        }
        pc_smtp_caps_parse(&c->p.up->caps, r);
        if (c->p.up->cfg->tls == PC_TLS_STARTTLS && !c->tls_done) {
            if (!(c->p.up->caps.flags & PC_CAP_STARTTLS)) {
                fail(c, PC_SMTPC_PROTOCOL, "upstream does not offer STARTTLS");
                return;
            }
            c->phase = P_STARTTLS;
            send_line(c, "STARTTLS", 8);
            return;
        }
        if (c->p.up->cfg->identity == PC_IDENT_XCLIENT && !c->xclient_done &&
            (c->p.up->caps.flags & PC_CAP_XCLIENT)) {
            send_xclient(c);
            return;
        }
        c->phase = P_READY;
        pc_conn_set_timeout(c->conn, 0);
        deliver(c, r);
        return;
    case P_STARTTLS:
        if (code != 220) {
            fail(c, PC_SMTPC_PROTOCOL, "STARTTLS refused");
            return;
        }
        if (pc_conn_pending(c->conn) > r->consumed) {
            fail(c, PC_SMTPC_PROTOCOL, "bytes after 220 to STARTTLS (injection)");
            return;
        }
        c->phase = P_TLS;
        if (pc_upstream_tls_start(c->conn, c->p.up->cfg, c->p.tls_ctx) < 0)
            fail(c, PC_SMTPC_PROTOCOL, "TLS setup failed");
        return;
    case P_XCLIENT:
        c->xclient_done = 1;
        if (code != 220) {
            fail(c, PC_SMTPC_PROTOCOL, "XCLIENT refused");
            return;
        }
        send_ehlo(c);
        return;
    case P_COMMAND:
        c->phase = P_READY;
        pc_conn_set_timeout(c->conn, 0);
        deliver(c, r);
        return;
    case P_DATA_CMD:
        if (code == 354) {
            c->phase = P_DATA_BODY;
            c->msg_off = 0;
            pc_stuff_init(&c->stuff);
            pump_body(c);
            return;
        }
        if (code / 100 == 4 || code / 100 == 5) {
            c->phase = P_READY;
            pc_conn_set_timeout(c->conn, 0);
            deliver(c, r);
            return;
        }
        {
            fail(c, PC_SMTPC_PROTOCOL, "unexpected reply to DATA");
            return;
        }
    case P_DATA_END:
        c->phase = P_READY;
        pc_conn_set_timeout(c->conn, 0);
        deliver(c, r);
        return;
    default: {
        fail(c, PC_SMTPC_PROTOCOL, "unexpected reply");
        return;
    }
    }
}

static void read_replies(pc_smtpc *c)
{
    while (c->phase != P_DEAD && pc_conn_pending(c->conn) > 0) {
        pc_smtp_reply r;
        int rc = pc_smtp_reply_parse(pc_buf_ptr(&c->conn->in), pc_conn_pending(c->conn), &r);
        if (rc == PC_NEED_MORE)
            return;
        if (rc != PC_OK) {
            fail(c, PC_SMTPC_PROTOCOL, rc == PC_TOO_LONG ? "reply too long" : "bad reply");
            return;
        }
        if (c->phase == P_READY || c->phase == P_DATA_BODY || c->phase == P_TLS ||
            c->phase == P_CONNECT) {
            fail(c, PC_SMTPC_PROTOCOL, "unsolicited reply");
            return;
        }
        /* The reply's slices point into the input buffer: deliver before consuming. */
        on_reply(c, &r);
        if (c->phase == P_TLS)
            return; /* the buffer was discarded when TLS started */
        if (!c->conn || c->conn->closing)
            return;
        pc_conn_consume(c->conn, r.consumed);
    }
}

static void after_connect(pc_smtpc *c)
{
    const char *why = NULL;
    int r =
        pc_upstream_connected(c->conn, c->p.up->cfg, c->p.tls_ctx, &c->p.client, &c->p.local, &why);
    if (r < 0)
        fail(c, PC_SMTPC_PROTOCOL, why);
    else
        c->phase = r == PC_UPSTREAM_TLS ? P_TLS : P_GREETING;
}

static void on_conn(pc_conn *conn, pc_conn_event ev, void *ud)
{
    pc_smtpc *c = ud;
    switch (ev) {
    case PC_CONN_EV_CONNECTED: after_connect(c); return;
    case PC_CONN_EV_READ: read_replies(c); return;
    case PC_CONN_EV_TLS_DONE:
        c->tls_done = 1;
        pc_upstream_tls_done(conn, c->p.sid);
        if (c->p.up->cfg->tls == PC_TLS_IMPLICIT) {
            c->phase = P_GREETING;
            read_replies(c);
        } else {
            send_ehlo(c);
        }
        return;
    case PC_CONN_EV_TLS_FAILED:
        pc_log_warn(c->p.sid, "upstream_tls=failed reason=\"%s\"", conn->errtext);
        fail(c, PC_SMTPC_PROTOCOL, "TLS handshake with upstream failed");
        return;
    case PC_CONN_EV_DRAIN:
        if (c->phase == P_DATA_BODY)
            pump_body(c);
        return;
    case PC_CONN_EV_EOF: fail(c, PC_SMTPC_UNAVAILABLE, "upstream closed the connection"); return;
    case PC_CONN_EV_ERROR:
        fail(c, PC_SMTPC_UNAVAILABLE,
             c->phase == P_CONNECT ? "connect failed" : "connection error");
        return;
    case PC_CONN_EV_TIMEOUT: fail(c, PC_SMTPC_UNAVAILABLE, "upstream timeout"); return;
    case PC_CONN_EV_CLOSED:
        pc_buf_release(&c->wbuf);
        free(c);
        return;
    }
}

pc_smtpc *pc_smtpc_open(const pc_smtpc_params *p, pc_smtpc_cb cb, void *ud)
{
    pc_smtpc *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->p = *p;
    snprintf(c->helo_name, sizeof(c->helo_name), "%s", p->helo_name ? p->helo_name : "localhost");
    if (p->client_helo)
        pc_sanitize(c->client_helo, sizeof(c->client_helo), p->client_helo, strlen(p->client_helo),
                    0);
    if (p->login)
        pc_sanitize(c->login, sizeof(c->login), p->login, strlen(p->login), 0);
    c->p.client_helo = NULL;
    c->p.login = NULL;
    c->cb = cb;
    c->ud = ud;
    pc_buf_init(&c->wbuf, 0);
    c->phase = P_CONNECT;
    /* No event follows a failed start: the caller treats NULL as "unavailable". */
    c->conn = pc_upstream_connect(p->up, p->loop, PC_SMTP_REPLY_MAX_BYTES + 4096, on_conn, c);
    if (!c->conn) {
        pc_buf_release(&c->wbuf);
        free(c);
        return NULL;
    }
    return c;
}

int pc_smtpc_command(pc_smtpc *c, const char *line, size_t len, int secret, pc_smtpc_cb cb,
                     void *ud)
{
    if (c->phase != P_READY)
        return -1;
    c->cb = cb;
    c->ud = ud;
    c->secret = secret;
    c->phase = P_COMMAND;
    pc_conn_set_timeout(c->conn, c->p.up->cfg->reply_timeout_ms);
    int rc = send_line(c, line, len);
    c->secret = 0;
    if (rc < 0) {
        c->phase = P_READY;
        c->cb = NULL;
        return -1;
    }
    return 0;
}

int pc_smtpc_data(pc_smtpc *c, const pc_message *m, pc_smtpc_cb cb, void *ud)
{
    if (c->phase != P_READY)
        return -1;
    c->cb = cb;
    c->ud = ud;
    c->msg = m;
    c->phase = P_DATA_CMD;
    pc_conn_set_timeout(c->conn, c->p.up->cfg->reply_timeout_ms);
    return send_line(c, "DATA", 4);
}

void pc_smtpc_adopt(pc_smtpc *c, uint64_t sid)
{
    c->p.sid = sid;
}

int pc_smtpc_alive(const pc_smtpc *c)
{
    return c && c->phase == P_READY;
}

void pc_smtpc_free(pc_smtpc *c)
{
    if (!c)
        return;
    c->freed = 1;
    c->cb = NULL;
    if (c->phase == P_READY)
        send_line(c, "QUIT", 4);
    c->phase = P_DEAD;
    pc_conn_close(c->conn);
}
