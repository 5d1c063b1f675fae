/* smtp_server.c — the client-facing SMTP session (RFC 5321, 3207, 2920, 1870, 6152, 2034, 6531,
 * 4954). It owns the session and its one transaction, answers every command itself from a table of
 * verbs and states, runs the filter chain at each hook, and relays the envelope and message through
 * the upstream client. Defends against: STARTTLS injection (buffered plaintext discarded at the
 * handshake), SMTP smuggling (only CRLF.CRLF ends DATA; bare CR/LF refused or normalised), open
 * relay (recipient domains checked here, whatever the upstream would accept), oversize input (every
 * line, message, recipient count and error count bounded), and never answers 250 to DATA unless the
 * upstream did. */
#include "smtp/smtp_server.h"
#include "smtp/smtp_render.h"
#include "smtp/smtp_session.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "core/chain.h"
#include "core/spool.h"
#include "net/addrtable.h"
#include "parse/proxy.h"
#include "parse/sanitize.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_reply.h"

static void process(sess *s);
static void upstream_ready(void *ud, pc_smtpc_status st, const pc_smtp_reply *r);

static const char *step_name(enum step st)
{
    static const char *const names[] = {"none",    "connect", "helo", "mail", "rcpt",
                                        "message", "auth",    "auth", "mail"};
    return (size_t)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* ---- replies ----------------------------------------------------------------------------------
 */

/* Relays an upstream reply to the client, sanitised line by line. */
void ss_relay_reply(sess *s, const pc_smtp_reply *r)
{
    for (size_t i = 0; i < r->nlines; i++) {
        char text[512];
        pc_sanitize(text, sizeof(text), r->lines[i].p, r->lines[i].n, 0);
        ss_reply(s, "%03d%c%s", r->code, i + 1 < r->nlines ? '-' : ' ', text);
    }
}

void ss_error_count(sess *s)
{
    if (++s->errors >= s->base.cfg->limits.errors) {
        ss_reply(s, "421 4.7.0 %s Error: too many errors", s->base.cfg->hostname);
        pc_log_notice(s->base.sid, "event=limit limit=errors client=%s", s->base.client_ip);
        ss_close_session(s);
    }
}

/* ---- transaction ------------------------------------------------------------------------------
 */

void ss_txn_reset(sess *s)
{
    for (size_t i = 0; i < s->nrcpts; i++) {
        free(s->rcpts[i].addr);
        free(s->rcpts[i].line);
    }
    free(s->rcpts);
    free(s->rcpt_addrs);
    s->rcpts = NULL;
    s->rcpt_addrs = NULL;
    s->nrcpts = 0;
    s->in_txn = 0;
    s->sender[0] = '\0';
    s->mail_line[0] = '\0';
    s->body8bit = s->smtputf8 = 0;
    if (s->msg)
        pc_message_unref(s->msg);
    else
        pc_spool_free(s->spool);
    s->msg = NULL;
    s->spool = NULL;
    s->spool_err = 0;
    pc_results_reset(&s->base.results);
    s->base.sv.sender = NULL;
    s->base.sv.rcpts = NULL;
    s->base.sv.nrcpts = 0;
    s->base.sv.rcpt = NULL;
    s->base.sv.msg = NULL;
}

static int add_rcpt(sess *s, const char *addr, const char *line)
{
    rcpt *nr = realloc(s->rcpts, (s->nrcpts + 1) * sizeof(*nr));
    if (!nr)
        return -1;
    s->rcpts = nr;
    char **na = realloc(s->rcpt_addrs, (s->nrcpts + 1) * sizeof(*na));
    if (!na)
        return -1;
    s->rcpt_addrs = na;
    nr[s->nrcpts].addr = strdup(addr);
    nr[s->nrcpts].line = strdup(line);
    if (!nr[s->nrcpts].addr || !nr[s->nrcpts].line) {
        free(nr[s->nrcpts].addr);
        free(nr[s->nrcpts].line);
        return -1;
    }
    na[s->nrcpts] = nr[s->nrcpts].addr;
    s->nrcpts++;
    s->base.sv.rcpts = s->rcpt_addrs;
    s->base.sv.nrcpts = s->nrcpts;
    return 0;
}

/* ---- the filter chain -------------------------------------------------------------------------
 */

/* Renders a refusing decision as the reply (smtp_render.c); returns 1 if the step must stop here.
 */
int ss_verdict_stops(sess *s, const pc_decision *d, pc_smtp_stage stage)
{
    char line[512];
    if (pc_smtp_render(d, stage, line, sizeof(line)) == PC_SMTP_GO_ON)
        return 0;
    ss_reply(s, "%s", line);
    return 1;
}

static void step_done(sess *s, const pc_decision *d);

static void chain_cb(void *ud, const pc_verdict *v)
{
    sess *s = ud;
    s->base.run = NULL;
    pc_decision d;
    pc_decision_set(&d, v, s->base.sv.results);
    step_done(s, &d);
}

/* Runs hook if a filter uses it; otherwise continues at once. */
void ss_run_hook(sess *s, pc_hook hook, enum step step)
{
    s->step = step;
    if (!pc_session_hook_used(&s->base, hook)) {
        pc_decision d;
        pc_decision_pass(&d);
        step_done(s, &d);
        return;
    }
    s->wait = W_CHAIN;
    pc_conn_set_timeout(s->base.c, 0);
    pc_session_hook_start(&s->base, hook, chain_cb);
}

/* ---- upstream ---------------------------------------------------------------------------------
 */

void ss_upstream_failed_reply(sess *s, pc_smtpc_status st)
{
    if (st == PC_SMTPC_PROTOCOL)
        ss_reply(s, "451 4.4.2 Upstream protocol error, try again later");
    else
        ss_reply(s, "451 4.4.1 Upstream not available, try again later");
}

void ss_drop_upstream(sess *s)
{
    s->up_txn = 0;
    s->up_reused = 0;
    pc_smtpc_free(s->up);
    s->up = NULL;
}

/* At the end of a session, an upstream session that carries nothing of this client (no identity
 * sent, no AUTH, no open transaction) goes back to the pool instead of being closed: the next
 * client skips connect, greeting and EHLO. */
static void release_upstream(sess *s)
{
    pc_listener_rt *l = s->base.l;
    if (s->up && pc_smtpc_alive(s->up) && !s->up_txn && !s->up_noreuse &&
        s->base.cfg->upstream.identity == PC_IDENT_NONE && l->npool < PC_UPSTREAM_POOL) {
        l->pool[l->npool] = s->up;
        l->pool_since[l->npool++] = pc_now_ms();
        s->up = NULL;
        return;
    }
    ss_drop_upstream(s);
}

/* A live pooled upstream session, or NULL. */
static pc_smtpc *take_pooled(sess *s)
{
    pc_listener_rt *l = s->base.l;
    uint64_t now = pc_now_ms();
    while (l->npool > 0) {
        pc_smtpc *c = l->pool[--l->npool];
        if (pc_smtpc_alive(c) && now - l->pool_since[l->npool] < PC_UPSTREAM_POOL_IDLE_MS) {
            pc_smtpc_adopt(c, s->base.sid);
            return c;
        }
        pc_smtpc_free(c);
    }
    return NULL;
}

void ss_open_upstream(sess *s)
{
    pc_smtpc_params p;
    memset(&p, 0, sizeof(p));
    p.loop = s->base.l->loop;
    p.sid = s->base.sid;
    p.up = &s->base.l->up;
    p.tls_ctx = s->base.l->upstream_tls;
    p.helo_name =
        s->base.cfg->upstream.helo_name ? s->base.cfg->upstream.helo_name : s->base.cfg->hostname;
    p.client = s->base.sv.client;
    p.local = s->base.c->local;
    p.client_helo = s->helo[0] ? s->helo : NULL;
    p.login = s->authed ? s->user : NULL;
    s->wait = W_UPSTREAM;
    s->up_opening = 1;
    pc_conn_set_timeout(s->base.c, 0);
    if (s->base.cfg->upstream.identity == PC_IDENT_NONE && s->step == ST_MAIL &&
        (s->up = take_pooled(s)) != NULL) {
        s->up_reused = 1;
        upstream_ready(s, PC_SMTPC_OK, NULL);
        return;
    }
    if (!s->base.l->up.resolved) {
        /* The lookup at start failed: never block the loop on DNS; try again in the background. */
        pc_upstream_resolve_async(&s->base.l->up, s->base.l->loop);
        s->up_opening = 0;
        upstream_ready(s, PC_SMTPC_UNAVAILABLE, NULL);
        return;
    }
    s->up = pc_smtpc_open(&p, upstream_ready, s);
    if (!s->up) {
        s->up_opening = 0;
        upstream_ready(s, PC_SMTPC_UNAVAILABLE, NULL);
    }
}

static void up_cmd_done(void *ud, pc_smtpc_status st, const pc_smtp_reply *r);

void ss_up_send(sess *s, const char *line, int secret)
{
    s->wait = W_UPSTREAM;
    pc_conn_set_timeout(s->base.c, 0); /* the upstream's own timeouts apply while it works */
    if (pc_smtpc_command(s->up, line, strlen(line), secret, up_cmd_done, s) < 0)
        up_cmd_done(s, PC_SMTPC_UNAVAILABLE, NULL);
}

static void send_message(sess *s);

void ss_up_start(sess *s)
{
    int auth = s->step == ST_AUTH;
    if (s->up && pc_smtpc_alive(s->up)) {
        if (s->up_txn) {
            /* An earlier transaction ended at the gateway (RSET, refused message) is still open
             * upstream: end it there too first. */
            s->step = auth ? ST_AUTH_RSET : ST_MAIL_RSET;
            ss_up_send(s, "RSET", 0);
            return;
        }
        ss_up_send(s, auth ? s->auth_line : s->mail_line, auth);
        return;
    }
    ss_drop_upstream(s);
    ss_open_upstream(s);
}

/* Continues the step that needed the upstream, once it is open. */
static void upstream_ready(void *ud, pc_smtpc_status st, const pc_smtp_reply *r)
{
    sess *s = ud;
    s->wait = W_NONE;
    (void)r;
    s->up_opening = 0;
    if (st != PC_SMTPC_OK) {
        ss_drop_upstream(s);
        pc_log_notice(s->base.sid, "event=upstream status=%s step=%s",
                      st == PC_SMTPC_PROTOCOL ? "protocol-error" : "unavailable",
                      step_name(s->step));
        ss_upstream_failed_reply(s, st);
        if (s->step == ST_MESSAGE)
            ss_txn_reset(s);
        else if (s->step == ST_MAIL)
            ss_txn_reset(s);
        s->step = ST_NONE;
        ss_resume(s);
        return;
    }
    switch (s->step) {
    case ST_MAIL: ss_up_send(s, s->mail_line, 0); return;
    case ST_AUTH: ss_up_send(s, s->auth_line, 1); return;
    case ST_MESSAGE:
        s->replay_idx = 0;
        ss_up_send(s, s->mail_line, 0);
        return;
    default: ss_resume(s); return;
    }
}

int ss_reply_class_ok(const pc_smtp_reply *r)
{
    int k = r->code / 100;
    return k == 2 || k == 4 || k == 5;
}

/* RFC 5321 §3.8: an upstream's 421 says that it is closing the connection. Relayed, it would tell
 * the client that the gateway closes, while the gateway goes on: so every 421 from the upstream
 * becomes 451 4.4.2 to the client, that upstream leg is dropped, and the client is still served
 * (its next command opens another leg). Returns 1 if r was such a reply and has been answered. */
int ss_upstream_closing(sess *s, const pc_smtp_reply *r)
{
    if (!r || r->code != 421)
        return 0;
    char text[300];
    pc_sanitize(text, sizeof(text), r->nlines ? r->lines[0].p : "", r->nlines ? r->lines[0].n : 0,
                0);
    pc_log_notice(s->base.sid, "event=upstream status=closing step=%s upstream=\"421 %s\"",
                  step_name(s->step), text);
    ss_drop_upstream(s);
    ss_reply(s, "451 4.4.2 Upstream closed the connection, try again later");
    return 1;
}

static void up_cmd_done(void *ud, pc_smtpc_status st, const pc_smtp_reply *r)
{
    sess *s = ud;
    s->wait = W_NONE;
    if ((st != PC_SMTPC_OK || (r && r->code == 421)) && s->up_reused && s->step == ST_MAIL) {
        /* A pooled session the upstream had closed (or is closing) meanwhile: open a fresh one. */
        ss_drop_upstream(s);
        ss_open_upstream(s);
        return;
    }
    s->up_reused = 0;
    if (st != PC_SMTPC_OK) {
        ss_drop_upstream(s);
        ss_upstream_failed_reply(s, st);
        if (s->step == ST_MAIL || s->step == ST_MESSAGE)
            ss_txn_reset(s);
        if (s->step == ST_AUTH || s->step == ST_AUTH_RSET) {
            explicit_bzero(s->auth_line, sizeof(s->auth_line));
            s->phase = PH_CMD;
        }
        s->step = ST_NONE;
        ss_resume(s);
        return;
    }
    if (s->step != ST_MAIL_RSET && s->step != ST_AUTH_RSET && ss_upstream_closing(s, r)) {
        /* An earlier RCPT's acceptance stays: DATA reconnects and replays the envelope. */
        if (s->step == ST_MAIL || s->step == ST_MESSAGE)
            ss_txn_reset(s);
        if (s->step == ST_AUTH) {
            explicit_bzero(s->auth_line, sizeof(s->auth_line));
            s->phase = PH_CMD;
        }
        s->step = ST_NONE;
        ss_resume(s);
        return;
    }
    switch (s->step) {
    case ST_MAIL:
        if (!ss_reply_class_ok(r)) {
            ss_drop_upstream(s);
            ss_upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
            ss_txn_reset(s);
        } else {
            ss_relay_reply(s, r);
            if (r->code / 100 == 2) {
                s->in_txn = 1;
                s->up_txn = 1;
                s->txn_start_ms = pc_now_ms();
            } else {
                ss_txn_reset(s);
            }
        }
        break;
    case ST_RCPT:
        if (!ss_reply_class_ok(r)) {
            ss_drop_upstream(s);
            ss_upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
            ss_txn_reset(s);
        } else {
            ss_relay_reply(s, r);
            if (r->code / 100 == 2 && add_rcpt(s, s->cur_rcpt, s->cur_line) < 0)
                pc_log_err(s->base.sid, "event=nomem where=rcpt");
        }
        break;
    case ST_MESSAGE:
        /* Replaying the envelope on a new upstream session. */
        if (r->code / 100 != 2) {
            char text[300];
            pc_sanitize(text, sizeof(text), r->nlines ? r->lines[0].p : "",
                        r->nlines ? r->lines[0].n : 0, 0);
            pc_log_notice(s->base.sid, "event=replay refused=\"%d %s\"", r->code, text);
            ss_reply(s, "451 4.4.1 Upstream refused the envelope on retry, try again later");
            ss_txn_reset(s);
            break;
        }
        s->up_txn = 1;
        if (s->replay_idx < s->nrcpts) {
            ss_up_send(s, s->rcpts[s->replay_idx++].line, 0);
            return;
        }
        send_message(s);
        return;
    case ST_AUTH: ss_auth_done(s, r); return;
    case ST_MAIL_RSET:
    case ST_AUTH_RSET: {
        int auth = s->step == ST_AUTH_RSET;
        s->step = auth ? ST_AUTH : ST_MAIL;
        if (r->code / 100 != 2) {
            ss_drop_upstream(s);
            ss_open_upstream(s);
            return;
        }
        s->up_txn = 0;
        ss_up_send(s, auth ? s->auth_line : s->mail_line, auth);
        return;
    }
    default:
        if (r)
            ss_relay_reply(s, r);
        break;
    }
    s->step = ST_NONE;
    ss_resume(s);
}

/* ---- message ----------------------------------------------------------------------------------
 */

/* The one log line of a transaction: who, what, how big, what the filters and the upstream said. */
static void log_message(sess *s, pc_log_level level, const char *result, const char *detail,
                        size_t size)
{
    char to[512];
    size_t n = 0;
    to[0] = '\0';
    for (size_t i = 0; i < s->nrcpts && n + 4 < sizeof(to); i++) {
        char a[300];
        pc_sanitize(a, sizeof(a), s->rcpts[i].addr, strlen(s->rcpts[i].addr), 1);
        int k = snprintf(to + n, sizeof(to) - n, "%s<%s>", i ? "," : "", a);
        if (k < 0 || (size_t)k >= sizeof(to) - n) {
            snprintf(to + (n < sizeof(to) - 4 ? n : sizeof(to) - 4), 4, "...");
            break;
        }
        n += (size_t)k;
    }
    char from[300];
    pc_sanitize(from, sizeof(from), s->sender, strlen(s->sender), 1);
    pc_log(level, s->base.sid,
           "event=message client=%s tls=%s from=<%s> to=%s rcpts=%zu size=%zu score=%.2f "
           "result=%s %s duration_ms=%llu",
           s->base.client_ip, s->base.tls ? pc_conn_tls_version(s->base.c) : "no", from,
           to[0] ? to : "-", s->nrcpts, size, s->base.results.score, result, detail,
           (unsigned long long)(pc_now_ms() - s->txn_start_ms));
}

static void data_final(void *ud, pc_smtpc_status st, const pc_smtp_reply *r)
{
    sess *s = ud;
    s->wait = W_NONE;
    s->up_txn = 0;
    char rtext[300] = "";
    int code = 451;
    if (st != PC_SMTPC_OK) {
        ss_drop_upstream(s);
        ss_upstream_failed_reply(s, st);
    } else if (ss_upstream_closing(s, r)) {
        code = r->code; /* logged as the upstream said it; the client heard 451 */
        pc_sanitize(rtext, sizeof(rtext), r->nlines ? r->lines[0].p : "",
                    r->nlines ? r->lines[0].n : 0, 0);
    } else if (!ss_reply_class_ok(r) || (r->code / 100 == 2 && r->code != 250)) {
        ss_drop_upstream(s);
        ss_upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
    } else {
        ss_relay_reply(s, r);
        code = r->code;
        pc_sanitize(rtext, sizeof(rtext), r->nlines ? r->lines[r->nlines - 1].p : "",
                    r->nlines ? r->lines[r->nlines - 1].n : 0, 0);
    }
    if (code == 250)
        s->messages++;
    char detail[400];
    snprintf(detail, sizeof(detail), "upstream=\"%d %s\"", code, rtext);
    log_message(s, code == 250 ? PC_LOG_INFO : PC_LOG_NOTICE,
                code == 250 ? "delivered" : (code / 100 == 5 ? "refused-upstream" : "tempfail"),
                detail, s->msg ? pc_message_size(s->msg) : 0);
    ss_txn_reset(s);
    s->step = ST_NONE;
    ss_resume(s);
}

static void send_message(sess *s)
{
    s->wait = W_UPSTREAM;
    pc_conn_set_timeout(s->base.c, 0);
    if (pc_smtpc_data(s->up, s->msg, data_final, s) < 0)
        data_final(s, PC_SMTPC_UNAVAILABLE, NULL);
}

static void add_received(sess *s)
{
    char helo[200], date[64], line[1024];
    pc_sanitize(helo, sizeof(helo), s->helo, strlen(s->helo), 0);
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    const char *with =
        s->base.tls ? (s->authed ? "ESMTPSA" : "ESMTPS") : (s->authed ? "ESMTPA" : "ESMTP");
    if (!s->esmtp)
        with = s->base.tls ? "SMTPS" : "SMTP";
    int n = snprintf(line, sizeof(line), "Received: from %s (%s [%s])\r\n\tby %s (Portcullis)",
                     helo, s->base.client_ip, s->base.client_ip, s->base.cfg->hostname);
    if (s->base.tls)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\t(using %s with cipher %s)",
                      pc_conn_tls_version(s->base.c), pc_conn_tls_cipher(s->base.c));
    n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\twith %s id %016llx", with,
                  (unsigned long long)s->base.sid);
    if (s->nrcpts == 1) {
        char r[300];
        pc_sanitize(r, sizeof(r), s->rcpts[0].addr, strlen(s->rcpts[0].addr), 1);
        n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\tfor <%s>", r);
    }
    n += snprintf(line + n, sizeof(line) - (size_t)n, "; %s\r\n", date);
    if (n > 0 && (size_t)n < sizeof(line))
        pc_message_prepend_raw(s->msg, line, (size_t)n);
}

/* The client sent the final dot: check, filter, then hand over to the upstream. */
static void end_of_data(sess *s)
{
    unsigned f = s->data.flags;
    pc_conn_set_timeout(s->base.c, 0);
    s->phase = PH_CMD;
    const char *why = NULL;
    if (f & PC_DATA_NUL) {
        ss_reply(s, "550 5.6.0 Message contains NUL characters");
        why = "nul";
    } else if ((f & (PC_DATA_BARE_LF | PC_DATA_BARE_CR)) && !s->base.cfg->bare_lf_normalize) {
        ss_reply(s, "550 5.6.0 Message contains bare CR or LF characters");
        why = "bare-cr-lf";
    } else if (f & PC_DATA_TOO_BIG) {
        ss_reply(s, "552 5.3.4 Message size exceeds fixed limit");
        why = "size";
    } else if (f & PC_DATA_LONG_LINE) {
        ss_reply(s, "500 5.5.2 Message line too long");
        why = "line-length";
    } else if (s->spool_err == PC_SPOOL_ENOSPC) {
        ss_reply(s, "452 4.3.1 Insufficient system storage");
        why = "spool-full";
    } else if (s->spool_err) {
        ss_reply(s, "451 4.3.0 Local error in processing");
        why = "spool-error";
    } else if (s->data.received >= s->base.cfg->limits.max_received) {
        ss_reply(s, "554 5.4.6 Too many hops (mail loop?)");
        why = "hops";
    }
    if (why) {
        char detail[64];
        snprintf(detail, sizeof(detail), "reason=%s", why);
        log_message(s, PC_LOG_NOTICE, "refused", detail, s->data.size);
        ss_txn_reset(s);
        ss_resume(s);
        return;
    }
    s->msg = pc_message_new(s->spool);
    if (!s->msg) {
        ss_reply(s, "451 4.3.0 Local error in processing");
        ss_txn_reset(s);
        ss_resume(s);
        return;
    }
    s->spool = NULL;
    add_received(s);
    s->base.sv.msg = s->msg;
    ss_run_hook(s, PC_HOOK_MESSAGE, ST_MESSAGE);
}

static void message_after_filters(sess *s, const pc_decision *d)
{
    if (ss_verdict_stops(s, d, PC_SMTP_AT_MESSAGE)) {
        char detail[64];
        snprintf(detail, sizeof(detail), "action=%s", pc_action_name(d->action));
        if (d->outcome == PC_OUTCOME_DISCARD)
            log_message(s, PC_LOG_NOTICE, "discarded-by-policy", detail, pc_message_size(s->msg));
        else
            log_message(s, PC_LOG_NOTICE, "filtered", detail, pc_message_size(s->msg));
        ss_txn_reset(s);
        s->step = ST_NONE;
        ss_resume(s);
        return;
    }
    if (!pc_smtpc_alive(s->up)) {
        /* The upstream session was lost while the message was spooled: reconnect and replay. */
        ss_drop_upstream(s);
        pc_log_info(s->base.sid, "event=upstream action=reconnect-replay rcpts=%zu", s->nrcpts);
        ss_open_upstream(s);
        return;
    }
    send_message(s);
}

static int spool_emit(void *ud, const char *p, size_t n)
{
    sess *s = ud;
    if (s->spool_err)
        return 0;
    int rc = pc_spool_write(s->spool, p, n);
    if (rc != PC_SPOOL_OK)
        s->spool_err = rc;
    return 0;
}

static void step_done(sess *s, const pc_decision *d)
{
    enum step st = s->step;
    s->wait = W_NONE;
    switch (st) {
    case ST_CONNECT: {
        s->step = ST_NONE;
        char line[512];
        if (pc_smtp_render(d, PC_SMTP_AT_CONNECT, line, sizeof(line)) != PC_SMTP_GO_ON) {
            ss_reply(s, "%s", line);
            pc_log_notice(s->base.sid, "event=connect-refused client=%s code=%d", s->base.client_ip,
                          atoi(line));
            ss_close_session(s);
            return;
        }
        if (pc_conn_pending(s->base.c) > s->base.cfg->limits.pregreet_bytes) {
            pc_addr_event((struct sockaddr *)&s->base.sv.client, PC_CNT_PREGREET, 60);
            ss_reply(s, "554 5.5.1 Protocol error: talked before greeting");
            pc_log_notice(s->base.sid, "event=pregreet client=%s bytes=%zu", s->base.client_ip,
                          pc_conn_pending(s->base.c));
            ss_close_session(s);
            return;
        }
        ss_reply(s, "220 %s ESMTP Portcullis", s->base.cfg->hostname);
        s->phase = PH_CMD;
        break;
    }
    case ST_HELO:
        s->step = ST_NONE;
        ss_helo_after_filters(s, d);
        break;
    case ST_MAIL:
        ss_mail_after_filters(s, d);
        if (s->wait)
            return;
        break;
    case ST_RCPT:
        ss_rcpt_after_filters(s, d);
        if (s->wait)
            return;
        break;
    case ST_MESSAGE: message_after_filters(s, d); return;
    default: break;
    }
    ss_resume(s);
}

/* ---- input ------------------------------------------------------------------------------------
 */

static void process_data(sess *s)
{
    int done = 0;
    size_t n = pc_smtp_data_feed(&s->data, pc_buf_ptr(&s->base.c->in), pc_conn_pending(s->base.c),
                                 spool_emit, s, &done);
    if (n == (size_t)-1) {
        ss_close_session(s);
        return;
    }
    pc_conn_consume(s->base.c, n);
    if (done)
        end_of_data(s);
}

static void process(sess *s)
{
    if (s->in_process) {
        s->again = 1;
        return;
    }
    s->in_process = 1;
    do {
        s->again = 0;
        while (s->wait == W_NONE && s->phase != PH_CLOSING && s->phase != PH_TLS &&
               s->phase != PH_CONNECT && pc_conn_pending(s->base.c) > 0) {
            if (s->phase == PH_DATA) {
                process_data(s);
                if (s->phase == PH_DATA)
                    break; /* need more */
                continue;
            }
            char *buf = (char *)pc_buf_ptr(&s->base.c->in);
            size_t avail = pc_conn_pending(s->base.c), linelen = 0, consumed = 0;
            size_t max = s->phase == PH_AUTH ? AUTH_LINE_MAX : s->base.cfg->limits.line_length;
            if (s->skip_line) {
                char *lf = memchr(buf, '\n', avail);
                pc_conn_consume(s->base.c, lf ? (size_t)(lf - buf) + 1 : avail);
                if (lf)
                    s->skip_line = 0;
                continue;
            }
            pc_line_result lr = pc_line_find(buf, avail, max, &linelen, &consumed);
            if (lr == PC_LINE_NEED_MORE)
                break;
            if (lr == PC_LINE_TOO_LONG) {
                ss_reply(s, "500 5.5.2 Error: line too long");
                s->skip_line = 1;
                if (s->phase == PH_AUTH) {
                    s->phase = PH_CMD;
                    ss_drop_upstream(s);
                }
                ss_error_count(s);
                continue;
            }
            if (lr == PC_LINE_BARE_LF) {
                explicit_bzero(buf, consumed);
                pc_conn_consume(s->base.c, consumed);
                ss_reply(s, "500 5.5.2 Error: bare LF received");
                ss_error_count(s);
                continue;
            }
            if (s->phase == PH_AUTH) {
                s->phase = PH_CMD;
                ss_auth_continue(s, buf, linelen);
                explicit_bzero(buf, consumed);
                pc_conn_consume(s->base.c, consumed);
                continue;
            }
            if (!s->first_cmd)
                pc_conn_set_deadline(s->base.c, s->base.cfg->timeouts.command_ms);
            s->line_consumed = consumed;
            ss_command(s, buf, linelen);
            pc_conn_consume(s->base.c, consumed);
        }
    } while (s->again);
    s->in_process = 0;
    if (s->phase == PH_CLOSING)
        return;
    ss_flush(s);
    if (s->wait == W_NONE && s->phase == PH_CMD)
        pc_conn_set_deadline(s->base.c, s->first_cmd ? s->base.cfg->timeouts.command_ms
                                                     : s->base.cfg->timeouts.greeting_ms);
    else if (s->wait == W_NONE && s->phase == PH_AUTH)
        pc_conn_set_deadline(s->base.c, s->base.cfg->timeouts.command_ms);
}

void ss_resume(sess *s)
{
    if (s->phase == PH_CLOSING)
        return;
    process(s);
}

/* ---- connection events ------------------------------------------------------------------------
 */

static void start_connect_hook(sess *s)
{
    s->phase = PH_CONNECT;
    /* Keep reading so that a client talking before the greeting is seen. */
    pc_conn_read_start(s->base.c);
    ss_run_hook(s, PC_HOOK_CONNECT, ST_CONNECT);
}

static void on_conn(pc_conn *c, pc_conn_event ev, void *ud)
{
    sess *s = ud;
    (void)c; /* s->base.c */
    switch (ev) {
    case PC_CONN_EV_READ: process(s); return;
    case PC_CONN_EV_TLS_DONE:
        if (pc_session_tls_done(&s->base)) {
            start_connect_hook(s);
            return;
        }
        /* RFC 3207 §4.2: forget everything learnt before TLS. */
        ss_txn_reset(s);
        s->helo[0] = '\0';
        s->base.sv.helo = NULL;
        s->esmtp = 0;
        s->phase = PH_CMD;
        pc_conn_set_deadline(s->base.c, s->base.cfg->timeouts.command_ms);
        process(s);
        return;
    case PC_CONN_EV_TLS_FAILED:
        pc_session_tls_failed(&s->base);
        ss_close_session(s);
        return;
    case PC_CONN_EV_TIMEOUT:
        if (s->phase != PH_TLS) {
            ss_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->base.cfg->hostname);
            ss_flush(s);
        }
        pc_session_log_timeout(&s->base, (int)s->phase);
        ss_close_session(s);
        return;
    case PC_CONN_EV_EOF:
        if (s->phase == PH_DATA)
            pc_log_notice(s->base.sid, "event=client-lost-in-data client=%s from=<%s> received=%zu",
                          s->base.client_ip, s->sender, s->data.size);
        ss_close_session(s);
        return;
    case PC_CONN_EV_ERROR: ss_close_session(s); return;
    case PC_CONN_EV_CONNECTED:
    case PC_CONN_EV_DRAIN: return;
    case PC_CONN_EV_CLOSED: pc_session_free(&s->base); return;
    }
}

void ss_close_session(sess *s)
{
    if (s->phase == PH_CLOSING)
        return;
    s->phase = PH_CLOSING;
    pc_session_hook_abort(&s->base);
    release_upstream(s);
    ss_txn_reset(s);
    pc_session_close_hook(&s->base);
    pc_session_end(&s->base, "client=%s helo=%s tls=%s user=%s messages=%u errors=%u",
                   s->base.client_ip, s->helo[0] ? s->helo : "-",
                   s->base.tls ? pc_conn_tls_version(s->base.c) : "no", s->authed ? s->user : "-",
                   s->messages, s->errors);
    explicit_bzero(s->user, sizeof(s->user));
}

static const pc_session_proto smtp_proto = {"smtp", 1024, on_conn};

void pc_smtp_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client)
{
    sess *s = pc_session_new(sizeof(*s), &smtp_proto, l, conn, client);
    if (!s)
        return;
    pc_log_info(s->base.sid, "event=connect client=%s listener=%s", s->base.client_ip,
                s->base.cfg->name);
    if (s->base.cfg->tls.mode == PC_TLS_IMPLICIT) {
        s->phase = PH_TLS;
        if (pc_session_tls_implicit(&s->base) < 0)
            ss_close_session(s);
        return;
    }
    start_connect_hook(s);
}

const pc_protocol pc_smtp_protocol = {
    "smtp", "421 4.7.0 Error: too many connections, try again later", pc_smtp_session_start};
