/* imap_client.c — opens an IMAP session towards the upstream up to "ready for a login" (see
 * imap_client.h). Defends against a hostile upstream: PREAUTH, missing STARTTLS, bytes after the
 * STARTTLS OK (injection) and over-long lines all fail closed. */
#include "imap/imap_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/upstream.h"
#include "imap/imap_token.h"
#include "parse/sanitize.h"

enum cphase { C_CONNECT, C_TLS, C_GREETING, C_CAPA, C_STARTTLS, C_ID, C_READY, C_DEAD };

struct pc_imapc {
    pc_conn *conn;
    pc_imapc_params p;
    pc_imapc_cb cb;
    void *ud;
    enum cphase phase;
    pc_imap_tok tok;
    pc_buf line;
    int tls_done;
    int tagn;
    unsigned caps; /* PC_IMAPCAP_* of this session's last CAPABILITY answer */
    char caps_text[sizeof(((pc_listener_rt *)0)->caps_text)];
};

static void noop_cb(pc_conn *conn, pc_conn_event ev, void *ud)
{
    (void)conn;
    (void)ev;
    (void)ud;
}

void pc_imapc_close_conn(pc_conn *conn)
{
    if (!conn)
        return;
    conn->cb = noop_cb;
    conn->ud = NULL;
    pc_conn_close(conn);
}

/* Reports the outcome; the caller returns at once (cb may free c). */
static void finish(pc_imapc *c, pc_imapc_status st, const char *why)
{
    if (c->phase == C_DEAD)
        return;
    pc_imapc_cb cb = c->cb;
    c->cb = NULL;
    if (st != PC_IMAPC_OK) {
        pc_log_info(c->p.sid, "upstream=failed reason=\"%s\"", why);
        c->phase = C_DEAD;
        pc_conn_set_timeout(c->conn, 0);
        pc_conn_read_stop(c->conn);
    } else {
        c->phase = C_READY;
        pc_conn_set_timeout(c->conn, 0);
        pc_conn_read_stop(c->conn);
    }
    if (cb)
        cb(c->ud, st);
}

static void send_cmd(pc_imapc *c, const char *what, enum cphase next)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "pc%d %s\r\n", ++c->tagn, what);
    c->phase = next;
    pc_conn_set_timeout(c->conn, c->p.l->cfg->upstream.reply_timeout_ms);
    pc_conn_write(c->conn, line, (size_t)n);
}

/* Keeps this session's view; the listener's copy is updated only by commit_caps(). */
static void parse_caps(pc_imapc *c, pc_slice t)
{
    unsigned f = 0;
    pc_sanitize(c->caps_text, sizeof(c->caps_text), t.p, t.n, 0);
    size_t i = 0;
    while (i < t.n) {
        while (i < t.n && t.p[i] == ' ')
            i++;
        size_t st = i;
        while (i < t.n && t.p[i] != ' ')
            i++;
        pc_slice w = {t.p + st, i - st};
        if (pc_imap_word_is(w, "LITERAL+"))
            f |= PC_IMAPCAP_LITPLUS;
        else if (pc_imap_word_is(w, "LITERAL-"))
            f |= PC_IMAPCAP_LITMINUS;
        else if (pc_imap_word_is(w, "SASL-IR"))
            f |= PC_IMAPCAP_SASLIR;
        else if (pc_imap_word_is(w, "AUTH=PLAIN"))
            f |= PC_IMAPCAP_AUTHPLAIN;
        else if (pc_imap_word_is(w, "STARTTLS"))
            f |= PC_IMAPCAP_STARTTLS;
        else if (pc_imap_word_is(w, "LOGINDISABLED"))
            f |= PC_IMAPCAP_LOGINDISABLED;
        else if (pc_imap_word_is(w, "IDLE"))
            f |= PC_IMAPCAP_IDLE;
    }
    c->caps = f;
}

/* The capabilities become the listener's (used by every session of it: login method, LITERAL+/-)
 * only when they were read over the connection as it will be used: never the plaintext ones read
 * before STARTTLS, which an attacker on the path could have written (RFC 9051 §6.2.1). */
static void commit_caps(pc_imapc *c)
{
    pc_listener_rt *l = c->p.l;
    l->caps_flags = c->caps;
    memcpy(l->caps_text, c->caps_text, sizeof(l->caps_text));
    l->caps_known = 1;
}

static void ask_caps(pc_imapc *c)
{
    c->caps = 0;
    c->caps_text[0] = '\0';
    send_cmd(c, "CAPABILITY", C_CAPA);
}

static void tok_reset(pc_imapc *c)
{
    pc_imap_tok_cfg tc;
    pc_imap_tok_cfg_default(&tc, 1);
    tc.max_line = 16384;
    pc_imap_tok_init(&c->tok, &tc);
}

static void start_tls(pc_imapc *c)
{
    c->phase = C_TLS;
    tok_reset(c);
    if (pc_upstream_tls_start(c->conn, &c->p.l->cfg->upstream, c->p.l->upstream_tls) < 0)
        finish(c, PC_IMAPC_PROTOCOL, "TLS setup failed");
}

/* Returns 1 when the outcome was reported (c must not be touched). */
static int after_capa(pc_imapc *c)
{
    const pc_upstream_cfg *u = &c->p.l->cfg->upstream;
    if (u->tls == PC_TLS_STARTTLS && !c->tls_done) {
        if (!(c->caps & PC_IMAPCAP_STARTTLS)) {
            finish(c, PC_IMAPC_PROTOCOL, "upstream does not offer STARTTLS");
            return 1;
        }
        send_cmd(c, "STARTTLS", C_STARTTLS);
        return 0;
    }
    commit_caps(c);
    if (c->p.send_id) {
        char ip[INET6_ADDRSTRLEN], cmd[128];
        pc_addr_str((struct sockaddr *)&c->p.client, ip, sizeof(ip));
        snprintf(cmd, sizeof(cmd), "ID (\"x-originating-ip\" \"%s\")", ip);
        send_cmd(c, cmd, C_ID);
        return 0;
    }
    finish(c, PC_IMAPC_OK, NULL);
    return 1;
}

/* One whole response line (literal contents skipped). Returns -1 when c must not be touched,
 * 0 to go on, 1 after the STARTTLS OK, 2 after the CAPABILITY OK. */
static int on_line(pc_imapc *c, const char *p, size_t n)
{
    pc_imap_resp_head h;
    if (pc_imap_resp_split(p, n, &h) != PC_OK) {
        finish(c, PC_IMAPC_PROTOCOL, "malformed response");
        return -1;
    }
    if (h.kind == PC_IMAP_RESP_UNTAGGED && h.status == PC_IMAP_ST_BYE) {
        finish(c, PC_IMAPC_UNAVAILABLE, "upstream said BYE");
        return -1;
    }
    if (h.kind == PC_IMAP_RESP_UNTAGGED && h.status == PC_IMAP_ST_PREAUTH) {
        finish(c, PC_IMAPC_PROTOCOL, "upstream greeting is PREAUTH");
        return -1;
    }
    char tag[16];
    snprintf(tag, sizeof(tag), "pc%d", c->tagn);
    int mine = h.kind == PC_IMAP_RESP_TAGGED && h.tag.n == strlen(tag) &&
               memcmp(h.tag.p, tag, h.tag.n) == 0;
    switch (c->phase) {
    case C_GREETING:
        if (h.kind != PC_IMAP_RESP_UNTAGGED || h.status != PC_IMAP_ST_OK) {
            finish(c, PC_IMAPC_PROTOCOL, "bad greeting");
            return -1;
        }
        ask_caps(c);
        return 0;
    case C_CAPA:
        if (h.kind == PC_IMAP_RESP_UNTAGGED && pc_imap_word_is(h.name, "CAPABILITY")) {
            parse_caps(c, h.text);
            return 0;
        }
        if (!mine)
            return 0;
        if (h.status != PC_IMAP_ST_OK) {
            finish(c, PC_IMAPC_PROTOCOL, "CAPABILITY refused");
            return -1;
        }
        return 2;
    case C_STARTTLS:
        if (!mine)
            return 0;
        if (h.status != PC_IMAP_ST_OK) {
            finish(c, PC_IMAPC_PROTOCOL, "STARTTLS refused");
            return -1;
        }
        return 1; /* the caller checks for injected bytes, then starts TLS */
    case C_ID:
        if (mine)
            finish(c, PC_IMAPC_OK, NULL); /* a refused ID is not fatal */
        return mine ? -1 : 0;
    default: return 0;
    }
}

static void read_responses(pc_imapc *c)
{
    while (c->phase == C_GREETING || c->phase == C_CAPA || c->phase == C_STARTTLS ||
           c->phase == C_ID) {
        pc_imap_ev ev;
        size_t avail = pc_conn_pending(c->conn);
        int rc = pc_imap_tok_next(&c->tok, avail ? pc_buf_ptr(&c->conn->in) : "", avail, &ev);
        if (rc == PC_IMAP_EV_NEED_MORE)
            return;
        if (rc < 0) {
            finish(c, PC_IMAPC_PROTOCOL, "response framing error");
            return;
        }
        if (rc == PC_IMAP_EV_TEXT && pc_buf_append(&c->line, ev.data.p, ev.data.n) < 0) {
            finish(c, PC_IMAPC_PROTOCOL, "response line too long");
            return;
        }
        pc_conn_consume(c->conn, ev.consumed);
        if (rc != PC_IMAP_EV_LINE_END)
            continue;
        int r = on_line(c, pc_buf_ptr(&c->line), pc_buf_used(&c->line));
        if (r < 0)
            return;
        pc_buf_reset(&c->line);
        if (r == 2) {
            if (after_capa(c))
                return;
            continue;
        }
        if (r == 1) {
            if (pc_conn_pending(c->conn)) {
                pc_log_notice(c->p.sid, "event=upstream-starttls-injection bytes=%zu",
                              pc_conn_pending(c->conn));
                finish(c, PC_IMAPC_PROTOCOL, "bytes after STARTTLS OK");
                return;
            }
            start_tls(c);
            return;
        }
    }
}

static void after_connect(pc_imapc *c)
{
    const char *why = NULL;
    int r = pc_upstream_connected(c->conn, &c->p.l->cfg->upstream, c->p.l->upstream_tls,
                                  &c->p.client, &c->p.local, &why);
    if (r < 0) {
        finish(c, PC_IMAPC_PROTOCOL, why);
        return;
    }
    c->phase = r == PC_UPSTREAM_TLS ? C_TLS : C_GREETING;
    if (r == PC_UPSTREAM_TLS)
        tok_reset(c);
}

static void on_conn(pc_conn *conn, pc_conn_event ev, void *ud)
{
    pc_imapc *c = ud;
    switch (ev) {
    case PC_CONN_EV_CONNECTED: after_connect(c); return;
    case PC_CONN_EV_READ: read_responses(c); return;
    case PC_CONN_EV_TLS_DONE:
        c->tls_done = 1;
        pc_upstream_tls_done(conn, c->p.sid);
        if (c->p.l->cfg->upstream.tls == PC_TLS_IMPLICIT) {
            c->phase = C_GREETING;
            read_responses(c);
        } else {
            ask_caps(c); /* RFC 9051 §6.2.1: ask again after TLS, forget the old answer */
        }
        return;
    case PC_CONN_EV_TLS_FAILED:
        pc_log_warn(c->p.sid, "upstream_tls=failed reason=\"%s\"", conn->errtext);
        finish(c, PC_IMAPC_PROTOCOL, "TLS handshake with upstream failed");
        return;
    case PC_CONN_EV_EOF: finish(c, PC_IMAPC_UNAVAILABLE, "upstream closed the connection"); return;
    case PC_CONN_EV_ERROR:
        finish(c, PC_IMAPC_UNAVAILABLE,
               c->phase == C_CONNECT ? "connect failed" : "connection error");
        return;
    case PC_CONN_EV_TIMEOUT: finish(c, PC_IMAPC_UNAVAILABLE, "upstream timeout"); return;
    case PC_CONN_EV_DRAIN: return;
    case PC_CONN_EV_CLOSED: c->conn = NULL; return;
    }
}

pc_imapc *pc_imapc_open(const pc_imapc_params *p, pc_imapc_cb cb, void *ud)
{
    pc_listener_rt *l = p->l;
    pc_imapc *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->p = *p;
    c->cb = cb;
    c->ud = ud;
    pc_buf_init(&c->line, 16384);
    tok_reset(c);
    c->phase = C_CONNECT;
    c->conn = pc_upstream_connect(&l->up, l->loop, PC_IMAPC_IN_MAX, on_conn, c);
    if (!c->conn) {
        free(c);
        return NULL;
    }
    return c;
}

pc_conn *pc_imapc_take(pc_imapc *c, pc_conn_cb cb, void *ud)
{
    pc_conn *conn = c->conn;
    conn->cb = cb;
    conn->ud = ud;
    pc_buf_release(&c->line);
    free(c);
    return conn;
}

void pc_imapc_free(pc_imapc *c)
{
    if (!c)
        return;
    if (c->conn) {
        if (c->phase == C_READY)
            pc_conn_write(c->conn, "pc0 LOGOUT\r\n", 12);
        pc_imapc_close_conn(c->conn);
    }
    pc_buf_release(&c->line);
    free(c);
}

/* ---- probe ------------------------------------------------------------------------------------
 */

typedef struct probe {
    pc_imapc *c;
    pc_listener_rt *l;
} probe;

static void probe_done(void *ud, pc_imapc_status st)
{
    probe *p = ud;
    if (st == PC_IMAPC_OK)
        pc_log_info(0, "event=upstream-probe listener=%s result=ok caps=\"%s\"", p->l->cfg->name,
                    p->l->caps_text);
    else
        pc_log_warn(0, "event=upstream-probe listener=%s result=%s", p->l->cfg->name,
                    st == PC_IMAPC_PROTOCOL ? "protocol-error" : "unavailable");
    pc_imapc_free(p->c);
    free(p);
}

void pc_imap_probe(pc_listener_rt *l)
{
    probe *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    p->l = l;
    pc_imapc_params pp;
    memset(&pp, 0, sizeof(pp));
    pp.l = l;
    struct sockaddr_in *lo = (struct sockaddr_in *)&pp.client;
    lo->sin_family = AF_INET;
    lo->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memcpy(&pp.local, &pp.client, sizeof(pp.local));
    p->c = pc_imapc_open(&pp, probe_done, p);
    if (!p->c) {
        pc_log_warn(0, "event=upstream-probe listener=%s result=unavailable", l->cfg->name);
        free(p);
    }
}
