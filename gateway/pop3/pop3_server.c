/* pop3_server.c — client-facing POP3 session (RFC 1939, 2449, 2595, 5034): login here, then relay.
 * Defends against STLS injection, plaintext logins, APOP, smuggling, floods, a hostile upstream. */
#include "pop3/pop3_server.h"
#include "pop3/pop3_render.h"
#include "pop3/pop3_retr.h"
#include "pop3/pop3_session.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "net/addrtable.h"
#include "parse/proxy.h"
#include "parse/sanitize.h"

static void process(p3sess *s);

static void error_count(p3sess *s)
{
    if (++s->errors >= s->max_errors) {
        p3_reply(s, "-ERR Too many errors, closing connection.");
        pc_log_notice(s->base.sid, "event=limit limit=errors client=%s", s->base.client_ip);
        p3_close(s);
    }
}

static int plaintext_refused(p3sess *s)
{
    if (s->base.tls || s->base.cfg->mailbox.plaintext_auth)
        return 0;
    p3_reply(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) "
                "connections.");
    return 1;
}

/* ---- login ---------------------------------------------------------------------------------- */

static void wipe_cred(p3sess *s)
{
    explicit_bzero(s->cred, sizeof(s->cred));
}

static void login_unavailable(p3sess *s, pc_pop3c_status st)
{
    wipe_cred(s);
    pc_pop3c_free(s->up, 0);
    s->up = NULL;
    s->busy = 0;
    pc_log_notice(s->base.sid, "event=upstream status=%s step=login client=%s",
                  st == PC_POP3C_PROTOCOL ? "protocol-error" : "unavailable", s->base.client_ip);
    p3_reply(s, "-ERR [SYS/TEMP] Upstream server not available, try again later.");
    p3_close(s);
}

static void login_failed(p3sess *s)
{
    char u[128];
    pc_sanitize(u, sizeof(u), s->user, strlen(s->user), 0);
    wipe_cred(s);
    pc_pop3c_free(s->up, 0);
    s->up = NULL;
    s->busy = 0;
    s->auth_failures++;
    pc_session_auth_failed(&s->base);
    pc_log_notice(s->base.sid, "event=auth result=failed user=%s client=%s failures=%u", u,
                  s->base.client_ip, s->auth_failures);
    explicit_bzero(s->user, sizeof(s->user));
    if (s->auth_failures >= s->max_authfail) {
        p3_reply(s, "-ERR [AUTH] Too many failed logins, closing connection.");
        p3_close(s);
        return;
    }
    p3_resume(s);
}

static void login_status(void *ud, const pc_pop3_resp *r)
{
    p3sess *s = ud;
    char text[PC_POP3_RESP_MAX];
    pc_sanitize(text, sizeof(text), r->line.p, r->line.n, 0);
    s->status_sent = r->status == PC_POP3_RESP_OK ? 1 : 2;
    snprintf(s->okline, sizeof(s->okline), "%s", text);
}

static void pass_done(void *ud, pc_pop3c_status st, unsigned flags)
{
    p3sess *s = ud;
    (void)flags;
    wipe_cred(s);
    if (st != PC_POP3C_OK) {
        login_unavailable(s, st);
        return;
    }
    p3_reply(s, "%s", s->okline);
    if (s->status_sent != 1) {
        login_failed(s);
        return;
    }
    s->busy = 0;
    s->authed = 1;
    s->phase = P3_TRANS;
    s->base.sv.user = s->user;
    pc_sanitize(s->user_log, sizeof(s->user_log), s->user, strlen(s->user), 0);
    pc_log_info(s->base.sid, "event=auth result=ok user=%s client=%s mech=%s", s->user_log,
                s->base.client_ip, s->login_sasl ? "PLAIN" : "USER");
    p3_resume(s);
}

static void send_cred(p3sess *s)
{
    pc_pop3c_handler h = {.status = login_status, .done = pass_done, .ud = s};
    s->busy = 1;
    s->status_sent = 0;
    if (pc_pop3c_command(s->up, s->cred, strlen(s->cred), 1, 0, 0, &h) < 0)
        login_unavailable(s, PC_POP3C_UNAVAILABLE);
    wipe_cred(s);
}

static void user_done(void *ud, pc_pop3c_status st, unsigned flags)
{
    p3sess *s = ud;
    (void)flags;
    if (st != PC_POP3C_OK) {
        login_unavailable(s, st);
        return;
    }
    if (s->status_sent != 1) {
        p3_reply(s, "%s", s->okline);
        login_failed(s);
        return;
    }
    send_cred(s);
}

static void login_ready(void *ud, pc_pop3c_status st)
{
    p3sess *s = ud;
    if (st != PC_POP3C_OK) {
        login_unavailable(s, st);
        return;
    }
    if (s->login_sasl) {
        if (s->base.l->caps_known && !(s->base.l->caps_flags & PC_POP3C_CAPF_PLAIN)) {
            wipe_cred(s);
            pc_pop3c_free(s->up, 1);
            s->up = NULL;
            s->busy = 0;
            p3_reply(s, "-ERR [AUTH] Unsupported authentication mechanism.");
            p3_resume(s);
            return;
        }
        send_cred(s);
        return;
    }
    char line[300];
    snprintf(line, sizeof(line), "USER %s", s->user);
    pc_pop3c_handler h = {.status = login_status, .done = user_done, .ud = s};
    s->status_sent = 0;
    if (pc_pop3c_command(s->up, line, strlen(line), 0, 0, 0, &h) < 0)
        login_unavailable(s, PC_POP3C_UNAVAILABLE);
}

/* s->cred holds the line for the upstream ("PASS ..." or "AUTH PLAIN ..."). */
static void login_start(p3sess *s)
{
    pc_pop3c_params p;
    memset(&p, 0, sizeof(p));
    p.loop = s->base.l->loop;
    p.sid = s->base.sid;
    p.l = s->base.l;
    p.client = s->base.sv.client;
    p.local = s->base.c->local;
    s->busy = 1;
    pc_conn_set_timeout(s->base.c, 0);
    s->up = pc_pop3c_open(&p, login_ready, s);
    if (!s->up)
        login_unavailable(s, PC_POP3C_UNAVAILABLE);
}

static int addr_blocked(p3sess *s)
{
    if (pc_addr_count((struct sockaddr *)&s->base.sv.client, PC_CNT_AUTHFAIL, 60) <
        3 * s->max_authfail)
        return 0;
    p3_reply(s, "-ERR [SYS/TEMP] Too many failed logins from your address, try again later.");
    pc_log_notice(s->base.sid, "event=limit limit=auth_failures_per_address client=%s",
                  s->base.client_ip);
    return 1;
}

/* The user name of a PLAIN response (authzid NUL authcid NUL passwd), for logs and the filters. */
static void plain_user(p3sess *s, const char *b64, size_t n)
{
    unsigned char dec[P3_CRED_MAX];
    s->user[0] = '\0';
    if (n == 0 || n > (sizeof(dec) / 3) * 4 || n % 4)
        return;
    int len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    if (len > 0) {
        const unsigned char *z = memchr(dec, 0, (size_t)len);
        if (z) {
            const unsigned char *a = z + 1;
            const unsigned char *z2 = memchr(a, 0, (size_t)len - (size_t)(a - dec));
            size_t ul = z2 ? (size_t)(z2 - a) : 0;
            if (ul >= sizeof(s->user))
                ul = sizeof(s->user) - 1;
            memcpy(s->user, a, ul);
            s->user[ul] = '\0';
        }
    }
    explicit_bzero(dec, sizeof(dec));
}

static void auth_plain(p3sess *s, const char *ir, size_t n)
{
    if (n + 12 >= sizeof(s->cred)) {
        p3_reply(s, "-ERR [AUTH] Authentication line too long.");
        error_count(s);
        return;
    }
    plain_user(s, ir, n);
    memcpy(s->cred, "AUTH PLAIN ", 11);
    memcpy(s->cred + 11, ir, n);
    s->cred[11 + n] = '\0';
    s->login_sasl = 1;
    login_start(s);
}

/* ---- commands ------------------------------------------------------------------------------- */

static int caps_have(p3sess *s, unsigned f)
{
    return !s->base.l->caps_known || (s->base.l->caps_flags & f);
}

static void capa_local(p3sess *s)
{
    int auth_ok = s->base.tls || s->base.cfg->mailbox.plaintext_auth;
    p3_reply(s, "+OK Capability list follows");
    if (caps_have(s, PC_POP3_CAP_TOP))
        p3_reply(s, "TOP");
    if (caps_have(s, PC_POP3_CAP_UIDL))
        p3_reply(s, "UIDL");
    p3_reply(s, "RESP-CODES");
    p3_reply(s, "AUTH-RESP-CODE");
    if (auth_ok)
        p3_reply(s, "USER");
    if (auth_ok && caps_have(s, PC_POP3C_CAPF_PLAIN))
        p3_reply(s, "SASL PLAIN");
    if (s->base.cfg->tls.mode == PC_TLS_STARTTLS && s->base.l->server_tls && !s->base.tls)
        p3_reply(s, "STLS");
    p3_reply(s, "PIPELINING");
    p3_reply(s, "IMPLEMENTATION Portcullis");
    p3_reply(s, ".");
}

static void cmd_stls(p3sess *s)
{
    if (s->base.cfg->tls.mode != PC_TLS_STARTTLS || !s->base.l->server_tls) {
        p3_reply(s, "-ERR STLS not available.");
        return;
    }
    if (s->base.tls) {
        p3_reply(s, "-ERR TLS already active.");
        return;
    }
    if (!pc_session_handshake_allowed(&s->base)) {
        p3_reply(s, "-ERR [SYS/TEMP] Too many TLS handshakes from your address.");
        return;
    }
    p3_reply(s, "+OK Begin TLS negotiation now.");
    s->phase = P3_TLS;
    if (pc_session_starttls(&s->base, "stls-injection", s->line_consumed) < 0)
        p3_close(s);
}

static void cmd_authz(p3sess *s, const pc_pop3_cmd *cmd, char *line, size_t len)
{
    switch (cmd->verb) {
    case PC_POP3_CAPA: capa_local(s); return;
    case PC_POP3_STLS: cmd_stls(s); return;
    case PC_POP3_QUIT:
        p3_reply(s, "+OK Portcullis POP3 signing off.");
        p3_close(s);
        return;
    case PC_POP3_APOP:
        explicit_bzero(line, len);
        p3_reply(s, "-ERR [AUTH] APOP is not supported, use USER/PASS or AUTH PLAIN over TLS.");
        error_count(s);
        return;
    case PC_POP3_USER:
        if (plaintext_refused(s))
            return;
        if (cmd->arg[0].n >= sizeof(s->user)) {
            p3_reply(s, "-ERR [AUTH] User name too long.");
            error_count(s);
            return;
        }
        memcpy(s->user, cmd->arg[0].p, cmd->arg[0].n);
        s->user[cmd->arg[0].n] = '\0';
        p3_reply(s, "+OK");
        return;
    case PC_POP3_PASS:
        if (plaintext_refused(s)) {
            explicit_bzero(line, len);
            return;
        }
        if (!s->user[0]) {
            explicit_bzero(line, len);
            p3_reply(s, "-ERR No user name given.");
            error_count(s);
            return;
        }
        if (addr_blocked(s) || cmd->arg[0].n + 6 >= sizeof(s->cred)) {
            explicit_bzero(line, len);
            return;
        }
        memcpy(s->cred, "PASS ", 5);
        memcpy(s->cred + 5, cmd->arg[0].p, cmd->arg[0].n);
        s->cred[5 + cmd->arg[0].n] = '\0';
        explicit_bzero(line, len);
        s->login_sasl = 0;
        login_start(s);
        return;
    case PC_POP3_AUTH: {
        if (plaintext_refused(s)) {
            explicit_bzero(line, len);
            return;
        }
        int plain_ok = caps_have(s, PC_POP3C_CAPF_PLAIN);
        if (cmd->nargs == 0) { /* the mechanisms, as many servers answer a bare AUTH */
            p3_reply(s, "+OK");
            if (plain_ok)
                p3_reply(s, "PLAIN");
            p3_reply(s, ".");
            return;
        }
        if (!plain_ok || cmd->arg[0].n != 5 || strncasecmp(cmd->arg[0].p, "PLAIN", 5) != 0) {
            explicit_bzero(line, len);
            p3_reply(s, "-ERR [AUTH] Unsupported authentication mechanism.");
            error_count(s);
            return;
        }
        if (addr_blocked(s)) {
            explicit_bzero(line, len);
            return;
        }
        if (cmd->nargs == 2) {
            auth_plain(s, cmd->arg[1].p, cmd->arg[1].n);
            explicit_bzero(line, len);
            return;
        }
        p3_reply(s, "+ ");
        s->phase = P3_SASL;
        return;
    }
    case PC_POP3_STAT:
    case PC_POP3_LIST:
    case PC_POP3_UIDL:
    case PC_POP3_RETR:
    case PC_POP3_TOP:
    case PC_POP3_DELE:
    case PC_POP3_NOOP:
    case PC_POP3_RSET:
        p3_reply(s, "-ERR Not logged in.");
        error_count(s);
        return;
    default:
        p3_reply(s, "-ERR Unknown command.");
        error_count(s);
        return;
    }
}

static void cmd_trans(p3sess *s, const pc_pop3_cmd *cmd)
{
    const char *name = pc_pop3_verb_name(cmd->verb);
    switch (cmd->verb) {
    case PC_POP3_STAT:
    case PC_POP3_NOOP:
    case PC_POP3_RSET:
    case PC_POP3_QUIT:
    case PC_POP3_CAPA: snprintf(s->upline, sizeof(s->upline), "%s", name); break;
    case PC_POP3_LIST:
    case PC_POP3_UIDL:
        if (cmd->nargs)
            snprintf(s->upline, sizeof(s->upline), "%s %u", name, (unsigned)cmd->num[0]);
        else
            snprintf(s->upline, sizeof(s->upline), "%s", name);
        break;
    case PC_POP3_RETR:
    case PC_POP3_DELE:
        snprintf(s->upline, sizeof(s->upline), "%s %u", name, (unsigned)cmd->num[0]);
        break;
    case PC_POP3_TOP:
        snprintf(s->upline, sizeof(s->upline), "TOP %u %u", (unsigned)cmd->num[0],
                 (unsigned)cmd->num[1]);
        break;
    case PC_POP3_USER:
    case PC_POP3_PASS:
    case PC_POP3_AUTH:
    case PC_POP3_APOP:
    case PC_POP3_STLS:
        p3_reply(s, "-ERR Command not valid after login.");
        error_count(s);
        return;
    default:
        p3_reply(s, "-ERR Unknown command.");
        error_count(s);
        return;
    }
    s->cmd = *cmd;
    memset(s->cmd.arg, 0, sizeof(s->cmd.arg)); /* they point into the input buffer */
    if (!s->up) {
        p3_upstream_lost(s);
        return;
    }
    if (cmd->verb == PC_POP3_RETR || cmd->verb == PC_POP3_TOP) {
        p3_retrieve(s);
        return;
    }
    p3_relay(s);
}

static void command(p3sess *s, char *line, size_t len)
{
    pc_pop3_cmd cmd;
    s->commands++;
    pc_pop3_err e = pc_pop3_cmd_parse(line, len, &cmd);
    if (e == PC_POP3_E_SYNTAX && cmd.verb == PC_POP3_AUTH && len == 4 && s->phase == P3_AUTHZ) {
        cmd.nargs = 0;
        e = PC_POP3_E_OK;
    }
    if (e != PC_POP3_E_OK) {
        if (cmd.verb == PC_POP3_PASS || cmd.verb == PC_POP3_AUTH || cmd.verb == PC_POP3_APOP)
            explicit_bzero(line, len);
        p3_reply(s, e == PC_POP3_E_UNKNOWN ? "-ERR Unknown command." : "-ERR Invalid arguments.");
        error_count(s);
        return;
    }
    if (s->phase == P3_TRANS)
        cmd_trans(s, &cmd);
    else
        cmd_authz(s, &cmd, line, len);
}

static void sasl_line(p3sess *s, char *line, size_t len)
{
    s->phase = P3_AUTHZ;
    switch (pc_pop3_sasl_line_parse(line, len)) {
    case PC_POP3_SASL_CANCEL: p3_reply(s, "-ERR [AUTH] Authentication cancelled."); return;
    case PC_POP3_SASL_INVALID:
        p3_reply(s, "-ERR [AUTH] Invalid base64 response.");
        error_count(s);
        return;
    case PC_POP3_SASL_DATA:
        if (len == 0)
            auth_plain(s, "=", 1);
        else
            auth_plain(s, line, len);
        return;
    }
}

/* ---- input ---------------------------------------------------------------------------------- */

/* A pipelining client: the answer just completed may wait in s->base.out (bounded by P3_OUT_BATCH)
 * for the next one when the command now in flight was already queued behind it, so a batch of
 * answers leaves in few writes. Nothing waits once the client has no complete command queued. */
static int batch_more(p3sess *s)
{
    if (!s->busy || s->phase != P3_TRANS || p3_retr_serving(s) || pc_buf_used(&s->base.out) == 0)
        return 0;
    size_t avail = pc_conn_pending(s->base.c);
    return avail > 0 && memchr(pc_buf_ptr(&s->base.c->in), '\n', avail) != NULL;
}

/* A pipelining client (RFC 2449 §6.6): while plain relays are in flight, the next complete command
 * goes upstream behind them when it is one too and the upstream pipelines; its answer follows
 * theirs in order. Anything else waits until they are answered. */
static int pipeline_next(p3sess *s)
{
    if (s->phase != P3_TRANS || !s->inflight || !s->pipe_ok || s->skip_line ||
        !pc_pop3c_can_queue(s->up))
        return 0;
    const char *buf = pc_buf_ptr(&s->base.c->in);
    size_t linelen = 0, consumed = 0;
    if (pc_line_find(buf, pc_conn_pending(s->base.c), s->line_max, &linelen, &consumed) !=
        PC_LINE_OK)
        return 0;
    pc_pop3_cmd cmd;
    return pc_pop3_cmd_parse(buf, linelen, &cmd) == PC_POP3_E_OK && p3_plain_relay(s, cmd.verb);
}

static void process(p3sess *s)
{
    if (s->in_process) {
        s->again = 1;
        return;
    }
    s->in_process = 1;
    /* Commands pipelined upstream in this pass leave in one write. */
    pc_pop3c *corked = s->phase == P3_TRANS ? s->up : NULL;
    pc_pop3c_cork(corked, 1);
    do {
        s->again = 0;
        while ((!s->busy || pipeline_next(s)) &&
               (s->phase == P3_AUTHZ || s->phase == P3_SASL || s->phase == P3_TRANS) &&
               pc_conn_pending(s->base.c) > 0) {
            char *buf = (char *)pc_buf_ptr(&s->base.c->in);
            size_t avail = pc_conn_pending(s->base.c), linelen = 0, consumed = 0;
            size_t max = s->phase == P3_SASL ? PC_POP3_AUTH_LINE_MAX : s->line_max;
            if (s->skip_line) {
                char *lf = memchr(buf, '\n', avail);
                size_t n = lf ? (size_t)(lf - buf) + 1 : avail;
                explicit_bzero(buf, n);
                pc_conn_consume(s->base.c, n);
                if (lf)
                    s->skip_line = 0;
                continue;
            }
            pc_line_result lr = pc_line_find(buf, avail, max, &linelen, &consumed);
            if (lr == PC_LINE_NEED_MORE)
                break;
            if (lr == PC_LINE_TOO_LONG) {
                p3_reply(s, "-ERR Line too long.");
                s->skip_line = 1;
                if (s->phase == P3_SASL)
                    s->phase = P3_AUTHZ;
                error_count(s);
                continue;
            }
            if (lr == PC_LINE_BARE_LF) {
                explicit_bzero(buf, consumed);
                pc_conn_consume(s->base.c, consumed);
                p3_reply(s, "-ERR Lines must end with CRLF.");
                error_count(s);
                continue;
            }
            s->line_consumed = consumed;
            if (s->phase == P3_SASL)
                sasl_line(s, buf, linelen);
            else
                command(s, buf, linelen);
            if (s->phase == P3_CLOSING)
                break;
            if (s->phase != P3_TLS)
                pc_conn_consume(s->base.c, consumed);
        }
    } while (s->again);
    s->in_process = 0;
    if (corked && s->up == corked)
        pc_pop3c_cork(corked, 0); /* else it was let go, and its queue with it */
    if (s->phase == P3_CLOSING)
        return;
    if (!batch_more(s))
        p3_flush(s);
    if (!s->busy && (s->phase == P3_AUTHZ || s->phase == P3_SASL))
        pc_conn_set_deadline(s->base.c, s->prelogin_ms);
    else if (!s->busy && s->phase == P3_TRANS)
        pc_conn_set_deadline(s->base.c, s->idle_ms);
}

/* ---- connection events ---------------------------------------------------------------------- */

static void greet(p3sess *s)
{
    s->phase = P3_AUTHZ;
    p3_reply(s, "+OK Portcullis POP3 ready.");
    pc_conn_read_start(s->base.c);
    process(s);
}

/* The CONNECT hook's verdict: a refusal is the greeting's -ERR, then the close (RFC 3206 codes). */
static void connect_done(void *ud, const pc_verdict *v)
{
    p3sess *s = ud;
    s->base.run = NULL;
    pc_decision d;
    pc_decision_set(&d, v, s->base.sv.results);
    char line[512];
    if (pc_pop3_render(&d, PC_POP3_AT_CONNECT, line, sizeof(line)) == PC_POP3_GO_ON) {
        greet(s);
        return;
    }
    pc_log_notice(
        s->base.sid, "event=connect-refused client=%s action=%s reason=\"%s\"", s->base.client_ip,
        pc_action_name(d.action),
        pc_decision_reason(&d, d.outcome == PC_OUTCOME_REFUSE || d.outcome == PC_OUTCOME_DISCARD
                                   ? "Service refused"
                                   : "Service not available, try again later"));
    p3_reply(s, "%s", line);
    p3_close(s);
}

/* Before the greeting: the CONNECT hook, when a filter of the listener uses it. The client's
 * input is read (so a hang-up is seen) but not processed until the verdict; the pre-login idle
 * timeout runs meanwhile. */
static void start_session(p3sess *s)
{
    s->phase = P3_CONNECT;
    pc_session_auth_fetch(&s->base); /* what other gateways saw this address fail */
    if (!pc_session_connect_hook(&s->base, s->prelogin_ms, connect_done))
        greet(s);
}

static void on_conn(pc_conn *c, pc_conn_event ev, void *ud)
{
    p3sess *s = ud;
    switch (ev) {
    case PC_CONN_EV_READ: process(s); return;
    case PC_CONN_EV_TLS_DONE:
        if (pc_session_tls_done(&s->base)) {
            start_session(s);
            return;
        }
        /* RFC 2595 §4: forget everything learnt before TLS. */
        explicit_bzero(s->user, sizeof(s->user));
        s->phase = P3_AUTHZ;
        process(s);
        return;
    case PC_CONN_EV_TLS_FAILED:
        pc_session_tls_failed(&s->base);
        p3_close(s);
        return;
    case PC_CONN_EV_TIMEOUT:
        if (s->phase != P3_TLS) {
            p3_reply(s, "-ERR Disconnected for inactivity.");
            p3_flush(s);
        }
        pc_session_log_timeout(&s->base, (int)s->phase);
        p3_close(s);
        return;
    case PC_CONN_EV_DRAIN:
        if (p3_retr_serving(s)) {
            p3_serve_pump(s);
        } else if (s->up_paused) {
            s->up_paused = 0;
            c->want_drain = 0;
            pc_pop3c_pause(s->up, 0);
        }
        return;
    case PC_CONN_EV_EOF:
    case PC_CONN_EV_ERROR: p3_close(s); return;
    case PC_CONN_EV_CONNECTED: return;
    case PC_CONN_EV_CLOSED:
        pc_buf_release(&s->capa);
        pc_session_free(&s->base);
        return;
    }
}

static void close_session(p3sess *s)
{
    if (s->phase == P3_CLOSING)
        return;
    s->phase = P3_CLOSING;
    wipe_cred(s);
    p3_retr_free(s);
    /* No QUIT upstream unless the client sent it: a lost client must not commit its DELEs. */
    pc_pop3c_free(s->up, 0);
    s->up = NULL;
    pc_session_close_hook(&s->base);
    char u[128];
    pc_sanitize(u, sizeof(u), s->user, strlen(s->user), 0);
    pc_session_end(&s->base,
                   "proto=pop3 client=%s user=%s tls=%s commands=%u scanned=%u passed=%u "
                   "tagged=%u replaced=%u unscanned=%u cache_hits=%u errors=%u auth_failures=%u",
                   s->base.client_ip, s->authed && u[0] ? u : "-",
                   s->base.tls ? pc_conn_tls_version(s->base.c) : "no", s->commands, s->scanned,
                   s->passed, s->tagged, s->replaced, s->unscanned, s->cache_hits, s->errors,
                   s->auth_failures);
    explicit_bzero(s->user, sizeof(s->user));
}

static const pc_session_proto pop3_proto = {"pop3", 1024, on_conn};

static const p3_ops pop3_ops = {process, close_session};

void pc_pop3_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client)
{
    p3sess *s = pc_session_new(sizeof(*s), &pop3_proto, l, conn, client);
    if (!s)
        return;
    s->ops = &pop3_ops;
    const pc_mbox_cfg *m = &l->cfg->mailbox;
    s->line_max = m->line_length ? m->line_length : PC_POP3_CMD_MAX;
    s->scan_max = m->scan_max ? m->scan_max : (size_t)50 * 1024 * 1024;
    s->max_errors = m->errors ? m->errors : 10;
    s->max_authfail = m->auth_failures ? m->auth_failures : 3;
    s->prelogin_ms = m->prelogin_timeout_ms ? m->prelogin_timeout_ms : 3 * 60 * 1000;
    s->idle_ms = m->idle_timeout_ms ? m->idle_timeout_ms : 10 * 60 * 1000;
    s->cache_size = m->verdict_cache ? m->verdict_cache : 10000;
    pc_buf_init(&s->capa, 8192);
    s->capa.max = 0;
    pc_log_info(s->base.sid, "event=connect proto=pop3 client=%s listener=%s", s->base.client_ip,
                s->base.cfg->name);
    if (s->base.cfg->tls.mode == PC_TLS_IMPLICIT) {
        s->phase = P3_TLS;
        if (pc_session_tls_implicit(&s->base) < 0)
            p3_close(s);
        return;
    }
    start_session(s);
}

const pc_protocol pc_pop3_protocol = {
    "pop3", "-ERR [SYS/TEMP] Too many connections, try again later.", pc_pop3_session_start};
