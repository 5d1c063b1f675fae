/* pop3_client.c — POP3 client session towards the upstream (see pop3_client.h). Defends against a
 * hostile upstream: bounded status lines, strict multi-line framing, no STLS skip or injection. */
#include "pop3/pop3_client.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/upstream.h"
#include "net/conn.h"
#include "parse/sanitize.h"

enum phase {
    P_CONNECT,
    P_TLS,
    P_GREETING,
    P_CAPA,      /* CAPA sent, waiting for its status line */
    P_CAPA_BODY, /* reading the CAPA list */
    P_STLS,
    P_READY,
    P_CMD,  /* the answer to the oldest command in flight is awaited */
    P_BODY, /* its multi-line body */
    P_DEAD,
};

#define CAPA_MAX 8192
#define UP_IN_MAX (256 * 1024)
/* Commands in flight at once when the upstream announces PIPELINING (RFC 2449 §6.6). The answers
 * of a window of RETRs fit in the input buffer many times over; the commands are a few bytes. */
#define WINDOW 32

/* A command sent whose answer has not been read to its end. */
typedef struct pending {
    pc_pop3c_handler h;
    int multiline;
    size_t max_body;
} pending;

struct pc_pop3c {
    pc_conn *conn;
    enum phase phase;
    pc_pop3c_params p;
    const pc_upstream_cfg *cfg;
    pc_pop3c_ready_fn ready;
    void *ready_ud;
    pending q[WINDOW]; /* in flight, oldest at qhead: its answer is the one being read */
    unsigned qhead, qlen;
    int tls_done;
    int freed;
    int paused;
    int in_pump;
    unsigned cork; /* >0: command lines gather in wq and leave in one write when it drops to 0 */
    unsigned caps; /* this session's last CAPA (PC_POP3_CAP_* and PC_POP3C_CAPF_PLAIN) */
    pc_pop3_body body;
    pc_buf capa;
    pc_buf wq;
};

static void fail(pc_pop3c *c, pc_pop3c_status st, const char *why)
{
    if (c->phase == P_DEAD)
        return;
    enum phase was = c->phase;
    pc_log_info(c->p.sid, "upstream=failed proto=pop3 reason=\"%s\"", why);
    c->phase = P_DEAD;
    pc_conn_set_timeout(c->conn, 0);
    pc_conn_read_stop(c->conn);
    if (c->freed)
        return;
    if (was == P_CMD || was == P_BODY) {
        /* Every command in flight fails, oldest first, until the caller lets the session go. */
        while (c->qlen && !c->freed) {
            pending p = c->q[c->qhead];
            c->qhead = (c->qhead + 1) % WINDOW;
            c->qlen--;
            if (p.h.done)
                p.h.done(p.h.ud, st, 0);
        }
        c->qlen = 0;
    } else if (c->ready) {
        pc_pop3c_ready_fn r = c->ready;
        c->ready = NULL;
        r(c->ready_ud, st);
    }
}

static int flush_wq(pc_pop3c *c)
{
    if (pc_buf_used(&c->wq) == 0)
        return 0;
    int rc = pc_conn_write(c->conn, pc_buf_ptr(&c->wq), pc_buf_used(&c->wq));
    pc_buf_release(&c->wq);
    return rc;
}

static int send_line(pc_pop3c *c, const char *line, size_t len, int secret)
{
    char tmp[PC_POP3_AUTH_LINE_MAX + 2];
    if (len + 2 > sizeof(tmp))
        return -1;
    if (c->cork && !secret) {
        if (pc_buf_append(&c->wq, line, len) < 0 || pc_buf_append(&c->wq, "\r\n", 2) < 0)
            return -1;
        return 0;
    }
    if (flush_wq(c) < 0)
        return -1;
    memcpy(tmp, line, len);
    tmp[len] = '\r';
    tmp[len + 1] = '\n';
    int rc = pc_conn_write(c->conn, tmp, len + 2);
    if (secret)
        explicit_bzero(tmp, len + 2);
    return rc;
}

/* Parses the CAPA list just read into this session's flags. It becomes the listener's (what the
 * gateway offers its clients, which login to use) only when it was read over the connection as it
 * will be used: never the plaintext list read before STLS, which an attacker on the path could have
 * written (RFC 2595 §4). */
static void store_caps(pc_pop3c *c)
{
    pc_listener_rt *l = c->p.l;
    pc_pop3_capa cap;
    pc_pop3_capa_init(&cap);
    const char *b = pc_buf_used(&c->capa) ? pc_buf_ptr(&c->capa) : "";
    size_t n = pc_buf_used(&c->capa);
    pc_pop3_capa_parse(&cap, b, n);
    c->caps = cap.caps | ((cap.mechs & PC_POP3_MECH_PLAIN) ? PC_POP3C_CAPF_PLAIN : 0);
    if (c->cfg->tls == PC_TLS_STARTTLS && !c->tls_done) {
        pc_buf_release(&c->capa);
        return;
    }
    l->caps_flags = c->caps;
    /* The text (for logs): the lines joined by ", ", sanitised. */
    char tmp[sizeof(l->caps_text)];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < sizeof(tmp); i++) {
        if (b[i] == '\r')
            continue;
        if (b[i] == '\n') {
            if (i + 1 < n) {
                tmp[o++] = ',';
                tmp[o++] = ' ';
            }
            continue;
        }
        tmp[o++] = b[i];
    }
    pc_sanitize(l->caps_text, sizeof(l->caps_text), tmp, o, 0);
    l->caps_known = 1;
    pc_buf_release(&c->capa);
}

static void send_capa(pc_pop3c *c)
{
    c->phase = P_CAPA;
    c->caps = 0;
    pc_buf_release(&c->capa);
    send_line(c, "CAPA", 4, 0);
}

static void become_ready(pc_pop3c *c)
{
    c->phase = P_READY;
    pc_conn_set_timeout(c->conn, 0);
    if (c->ready && !c->freed) {
        pc_pop3c_ready_fn r = c->ready;
        c->ready = NULL;
        r(c->ready_ud, PC_POP3C_OK);
    }
}

static void after_capa(pc_pop3c *c)
{
    if (c->cfg->tls == PC_TLS_STARTTLS && !c->tls_done) {
        if (!(c->caps & PC_POP3_CAP_STLS)) {
            fail(c, PC_POP3C_PROTOCOL, "upstream does not offer STLS");
            return;
        }
        c->phase = P_STLS;
        send_line(c, "STLS", 4, 0);
        return;
    }
    become_ready(c);
}

static int capa_emit(void *ud, const char *p, size_t n)
{
    pc_pop3c *c = ud;
    pc_buf_append(&c->capa, p, n); /* past CAPA_MAX the rest is ignored */
    return 0;
}

static int content_emit(void *ud, const char *p, size_t n)
{
    pc_pop3c *c = ud;
    pending *hd = &c->q[c->qhead];
    if (hd->h.content && !c->freed)
        return hd->h.content(hd->h.ud, p, n);
    return 0;
}

static int start_tls(pc_pop3c *c)
{
    c->phase = P_TLS;
    return pc_upstream_tls_start(c->conn, c->cfg, c->p.l->upstream_tls);
}

/* POP3 has no unsolicited responses, so bytes already buffered when the answer to the last
 * command in flight is complete came before any next command was sent: taking them as its answer
 * would desynchronise the session (an injected reply). Fails and returns 1 when there are any. */
static int extra_bytes(pc_pop3c *c)
{
    if (pc_conn_pending(c->conn) == 0)
        return 0;
    pc_log_notice(c->p.sid, "event=upstream-unsolicited proto=pop3 bytes=%zu",
                  pc_conn_pending(c->conn));
    fail(c, PC_POP3C_PROTOCOL, "bytes after a complete answer");
    return 1;
}

static pending *head(pc_pop3c *c)
{
    return &c->q[c->qhead];
}

/* The oldest command in flight becomes the one whose answer is read. */
static void start_head(pc_pop3c *c)
{
    c->phase = P_CMD;
    pc_pop3_body_init(&c->body, 0, head(c)->max_body);
    pc_conn_set_timeout(c->conn, c->cfg->reply_timeout_ms);
}

/* The answer to the oldest command is complete: the next one in flight (if any) is read next, and
 * the caller hears of it. Returns -1 when the session failed (unsolicited bytes). */
static int complete(pc_pop3c *c, unsigned body_flags)
{
    if (c->qlen == 1 && extra_bytes(c)) /* the command fails with the session */
        return -1;
    pending p = *head(c);
    c->qhead = (c->qhead + 1) % WINDOW;
    c->qlen--;
    if (c->qlen) {
        start_head(c);
    } else {
        c->phase = P_READY;
        pc_conn_set_timeout(c->conn, 0);
    }
    if (p.h.done && !c->freed)
        p.h.done(p.h.ud, PC_POP3C_OK, body_flags);
    return 0;
}

/* One status line in phase c->phase. Returns 0 to go on, -1 when the buffer must not be touched. */
static int on_status(pc_pop3c *c, const pc_pop3_resp *r, size_t consumed)
{
    switch (c->phase) {
    case P_GREETING:
        if (r->status != PC_POP3_RESP_OK) {
            fail(c, PC_POP3C_UNAVAILABLE, "bad greeting");
            return -1;
        }
        pc_conn_consume(c->conn, consumed);
        if (extra_bytes(c))
            return -1;
        send_capa(c);
        return 0;
    case P_CAPA:
        pc_conn_consume(c->conn, consumed);
        if (r->status == PC_POP3_RESP_OK) {
            c->phase = P_CAPA_BODY;
            pc_buf_init(&c->capa, CAPA_MAX);
            pc_pop3_body_init(&c->body, 0, CAPA_MAX);
            return 0;
        }
        if (r->status != PC_POP3_RESP_ERR) {
            fail(c, PC_POP3C_PROTOCOL, "bad answer to CAPA");
            return -1;
        }
        if (extra_bytes(c))
            return -1;
        store_caps(c); /* no CAPA: nothing known to be offered */
        after_capa(c);
        return 0;
    case P_STLS:
        if (r->status != PC_POP3_RESP_OK) {
            fail(c, PC_POP3C_PROTOCOL, "STLS refused");
            return -1;
        }
        if (pc_conn_pending(c->conn) > consumed) {
            fail(c, PC_POP3C_PROTOCOL, "bytes after +OK to STLS (injection)");
            return -1;
        }
        if (start_tls(c) < 0) {
            fail(c, PC_POP3C_PROTOCOL, "TLS setup failed");
            return -1;
        }
        return -1; /* the buffer was discarded */
    case P_CMD: {
        pending *hd = head(c);
        int multi = hd->multiline;
        if (r->status == PC_POP3_RESP_CONT) {
            fail(c, PC_POP3C_PROTOCOL, "unexpected SASL continuation");
            return -1;
        }
        if (hd->h.status && !c->freed)
            hd->h.status(hd->h.ud, r);
        if (c->phase != P_CMD)
            return -1;
        pc_conn_consume(c->conn, consumed);
        if (multi && r->status == PC_POP3_RESP_OK) {
            c->phase = P_BODY;
            return 0;
        }
        return complete(c, 0);
    }
    default:
        pc_log_notice(c->p.sid, "event=upstream-unsolicited proto=pop3 bytes=%zu",
                      pc_conn_pending(c->conn));
        fail(c, PC_POP3C_PROTOCOL, "unsolicited response");
        return -1;
    }
}

static void pump(pc_pop3c *c)
{
    if (c->in_pump)
        return;
    c->in_pump = 1;
    c->cork++; /* commands sent by the callbacks leave together after this read */
    while (c->phase != P_DEAD && !c->paused && c->phase != P_TLS && pc_conn_pending(c->conn) > 0) {
        const char *buf = pc_buf_ptr(&c->conn->in);
        size_t avail = pc_conn_pending(c->conn);
        if (c->phase == P_BODY || c->phase == P_CAPA_BODY) {
            int done = 0, capa = c->phase == P_CAPA_BODY;
            size_t n =
                pc_pop3_body_feed(&c->body, buf, avail, capa ? capa_emit : content_emit, c, &done);
            if (n == (size_t)-1) {
                fail(c, PC_POP3C_PROTOCOL, "body aborted");
                break;
            }
            pending *hd = head(c);
            if (!capa && hd->h.raw && !c->freed && n > 0 && hd->h.raw(hd->h.ud, buf, n) < 0) {
                fail(c, PC_POP3C_PROTOCOL, "body aborted");
                break;
            }
            if (c->phase == P_DEAD)
                break;
            pc_conn_consume(c->conn, n);
            if (!done)
                continue;
            if (capa) {
                if (extra_bytes(c))
                    break;
                store_caps(c);
                after_capa(c);
                continue;
            }
            if (complete(c, c->body.flags) < 0)
                break;
            continue;
        }
        pc_pop3_resp r;
        size_t consumed = 0;
        int rc = pc_pop3_resp_parse(buf, avail, PC_POP3_RESP_MAX, &r, &consumed);
        if (rc == PC_NEED_MORE)
            break;
        if (rc != PC_OK) {
            fail(c, PC_POP3C_PROTOCOL, rc == PC_TOO_LONG ? "response too long" : "bad response");
            break;
        }
        if (on_status(c, &r, consumed) < 0)
            break;
    }
    c->in_pump = 0;
    pc_pop3c_cork(c, 0);
}

static void after_connect(pc_pop3c *c)
{
    const char *why = NULL;
    int r = pc_upstream_connected(c->conn, c->cfg, c->p.l->upstream_tls, &c->p.client, &c->p.local,
                                  &why);
    if (r < 0)
        fail(c, PC_POP3C_PROTOCOL, why);
    else
        c->phase = r == PC_UPSTREAM_TLS ? P_TLS : P_GREETING;
}

static void on_conn(pc_conn *conn, pc_conn_event ev, void *ud)
{
    pc_pop3c *c = ud;
    switch (ev) {
    case PC_CONN_EV_CONNECTED: after_connect(c); return;
    case PC_CONN_EV_READ: pump(c); return;
    case PC_CONN_EV_TLS_DONE:
        c->tls_done = 1;
        pc_upstream_tls_done(conn, c->p.sid);
        if (c->cfg->tls == PC_TLS_IMPLICIT) {
            c->phase = P_GREETING;
            pump(c);
        } else {
            send_capa(c); /* RFC 2595 §4: what was learnt before TLS is forgotten */
        }
        return;
    case PC_CONN_EV_TLS_FAILED:
        pc_log_warn(c->p.sid, "upstream_tls=failed reason=\"%s\"", conn->errtext);
        fail(c, PC_POP3C_PROTOCOL, "TLS handshake with upstream failed");
        return;
    case PC_CONN_EV_DRAIN: return;
    case PC_CONN_EV_EOF: fail(c, PC_POP3C_UNAVAILABLE, "upstream closed the connection"); return;
    case PC_CONN_EV_ERROR:
        fail(c, PC_POP3C_UNAVAILABLE,
             c->phase == P_CONNECT ? "connect failed" : "connection error");
        return;
    case PC_CONN_EV_TIMEOUT: fail(c, PC_POP3C_UNAVAILABLE, "upstream timeout"); return;
    case PC_CONN_EV_CLOSED:
        pc_buf_release(&c->capa);
        pc_buf_release(&c->wq);
        free(c);
        return;
    }
}

pc_pop3c *pc_pop3c_open(const pc_pop3c_params *p, pc_pop3c_ready_fn ready, void *ud)
{
    pc_listener_rt *l = p->l;
    pc_pop3c *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->p = *p;
    c->cfg = &l->cfg->upstream;
    c->ready = ready;
    c->ready_ud = ud;
    pc_buf_init(&c->capa, CAPA_MAX);
    pc_buf_init(&c->wq, 0);
    c->phase = P_CONNECT;
    c->conn = pc_upstream_connect(&l->up, p->loop, UP_IN_MAX, on_conn, c);
    if (!c->conn) {
        pc_buf_release(&c->capa);
        free(c);
        return NULL;
    }
    return c;
}

int pc_pop3c_pipelines(const pc_pop3c *c)
{
    return c && (c->caps & PC_POP3_CAP_PIPELINING);
}

int pc_pop3c_can_queue(const pc_pop3c *c)
{
    if (!c || c->freed)
        return 0;
    if (c->phase == P_READY)
        return 1;
    return (c->phase == P_CMD || c->phase == P_BODY) && (c->caps & PC_POP3_CAP_PIPELINING) &&
           c->qlen < WINDOW;
}

int pc_pop3c_command(pc_pop3c *c, const char *line, size_t len, int secret, int multiline,
                     size_t max_body, const pc_pop3c_handler *h)
{
    if (!pc_pop3c_can_queue(c) || (secret && c->phase != P_READY))
        return -1;
    int first = c->phase == P_READY;
    unsigned slot = (c->qhead + c->qlen) % WINDOW;
    c->q[slot] = (pending){.h = *h, .multiline = multiline, .max_body = max_body};
    c->qlen++;
    if (first)
        start_head(c);
    if (send_line(c, line, len, secret) < 0) {
        c->qlen--;
        if (first) {
            c->phase = P_READY;
            pc_conn_set_timeout(c->conn, 0);
        }
        return -1;
    }
    if (first)
        pump(c); /* bytes may already be buffered (they would be unsolicited: fail) */
    return 0;
}

void pc_pop3c_cork(pc_pop3c *c, int on)
{
    if (!c)
        return;
    if (on) {
        c->cork++;
        return;
    }
    if (c->cork && --c->cork == 0) {
        if (c->freed || c->phase == P_DEAD)
            pc_buf_release(&c->wq);
        else if (flush_wq(c) < 0)
            fail(c, PC_POP3C_UNAVAILABLE, "write failed");
    }
}

void pc_pop3c_pause(pc_pop3c *c, int paused)
{
    if (!c || c->phase == P_DEAD)
        return;
    c->paused = paused;
    if (paused) {
        pc_conn_read_stop(c->conn);
        return;
    }
    pc_conn_read_start(c->conn);
    pump(c);
}

int pc_pop3c_alive(const pc_pop3c *c)
{
    return c && c->phase == P_READY;
}

void pc_pop3c_free(pc_pop3c *c, int quit)
{
    if (!c)
        return;
    c->freed = 1;
    c->ready = NULL;
    c->qlen = 0;
    if (quit && c->phase == P_READY) {
        c->cork = 0;
        send_line(c, "QUIT", 4, 0);
    }
    c->phase = P_DEAD;
    pc_conn_close(c->conn);
}

/* ---- start-up probe -------------------------------------------------------------------------- */

typedef struct probe {
    pc_pop3c *c;
    pc_listener_rt *l;
} probe;

static void probe_ready(void *ud, pc_pop3c_status st)
{
    probe *p = ud;
    if (st == PC_POP3C_OK)
        pc_log_info(0, "event=upstream-probe listener=%s result=ok capa=\"%s\"", p->l->cfg->name,
                    p->l->caps_text);
    else
        pc_log_warn(0, "event=upstream-probe listener=%s result=%s", p->l->cfg->name,
                    st == PC_POP3C_PROTOCOL ? "protocol-error" : "unavailable");
    pc_pop3c_free(p->c, 1);
    free(p);
}

void pc_pop3_probe(pc_listener_rt *l, uv_loop_t *loop)
{
    probe *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    p->l = l;
    pc_pop3c_params pp;
    memset(&pp, 0, sizeof(pp));
    pp.loop = loop;
    pp.l = l;
    struct sockaddr_in *lo = (struct sockaddr_in *)&pp.client;
    lo->sin_family = AF_INET;
    lo->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memcpy(&pp.local, &pp.client, sizeof(pp.local));
    p->c = pc_pop3c_open(&pp, probe_ready, p);
    if (!p->c) {
        pc_log_warn(0, "event=upstream-probe listener=%s result=unavailable", l->cfg->name);
        free(p);
    }
}
