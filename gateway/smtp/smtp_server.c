/* smtp_server.c — the client-facing SMTP session (RFC 5321, 3207, 2920, 1870, 6152, 2034, 6531,
 * 4954). It owns the session and its one transaction, answers every command itself from a table of
 * verbs and states, runs the filter chain at each hook, and relays the envelope and message through
 * the upstream client. Defends against: STARTTLS injection (buffered plaintext discarded at the
 * handshake), SMTP smuggling (only CRLF.CRLF ends DATA; bare CR/LF refused or normalised), open
 * relay (recipient domains checked here, whatever the upstream would accept), oversize input (every
 * line, message, recipient count and error count bounded), and never answers 250 to DATA unless the
 * upstream did. */
#include "smtp/smtp_server.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addrtable.h"
#include "chain.h"
#include "log.h"
#include "proxy.h"
#include "sanitize.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_reply.h"
#include "spool.h"

#define PATH_MAX_LEN 512
#define AUTH_LINE_MAX 12288 /* RFC 4954 §4 */
#define PROXY_TIMEOUT_MS 10000

enum phase {
    PH_PROXY,   /* waiting for the PROXY header of a trusted load balancer */
    PH_CONNECT, /* connect hook running; no greeting yet */
    PH_CMD,     /* reading commands */
    PH_DATA,    /* reading the message */
    PH_AUTH,    /* reading SASL responses for the upstream */
    PH_TLS,     /* handshake in progress */
    PH_CLOSING,
};

/* What the session is waiting for (busy != W_NONE: input stays buffered). */
enum wait {
    W_NONE,
    W_CHAIN,
    W_UPSTREAM,
};

/* What to do when the current asynchronous step finishes. */
enum step {
    ST_NONE,
    ST_CONNECT,
    ST_HELO,
    ST_MAIL,
    ST_RCPT,
    ST_MESSAGE,
    ST_AUTH,
    ST_MAIL_RSET, /* RSET upstream left over from an earlier transaction, then MAIL */
};

typedef struct rcpt {
    char *addr; /* path as given */
    char *line; /* the RCPT line sent upstream, kept for replay */
} rcpt;

typedef struct sess {
    pc_listener_rt *l;
    const pc_listener_cfg *cfg;
    pc_conn *c;
    uint64_t sid;
    uint64_t start_ms;
    enum phase phase;
    enum wait wait;
    enum step step;
    int in_process;
    int again;
    int skip_line; /* discarding the rest of an over-long line */
    int first_cmd;
    size_t line_consumed; /* bytes of the command line being handled, CRLF included */
    pc_buf out;

    /* session */
    pc_session_view sv;
    char client_ip[INET6_ADDRSTRLEN];
    char helo[256];
    int esmtp;
    int tls;
    int authed;
    char user[256];
    unsigned errors;
    unsigned auth_failures;
    unsigned messages;
    unsigned conn_counted;

    /* transaction */
    int in_txn;
    char sender[PATH_MAX_LEN];
    char mail_line[1024];
    rcpt *rcpts;
    size_t nrcpts;
    char **rcpt_addrs; /* the addresses of rcpts, for the filters' view */
    char cur_rcpt[PATH_MAX_LEN];
    char cur_line[1024];
    int body8bit, smtputf8;
    pc_smtp_data data;
    pc_spool *spool;
    int spool_err;
    pc_message *msg;
    pc_results results;
    size_t replay_idx;
    uint64_t txn_start_ms;

    /* asynchronous work */
    pc_chain_run *run;
    pc_smtpc *up;
    int up_opening;
    int up_txn; /* the upstream accepted a MAIL whose transaction is not finished */
    char auth_line[1024];
    size_t auth_len;
} sess;

static void process(sess *s);
static void resume(sess *s);
static void close_session(sess *s);
static void upstream_ready(void *ud, pc_smtpc_status st, const pc_smtp_reply *r);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- replies ----------------------------------------------------------------------------------
 */

static void reply(sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(sess *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    pc_buf_append(&s->out, line, (size_t)n);
}

static void flush(sess *s)
{
    if (pc_buf_used(&s->out) == 0)
        return;
    pc_conn_write(s->c, pc_buf_ptr(&s->out), pc_buf_used(&s->out));
    pc_buf_release(&s->out);
}

/* Relays an upstream reply to the client, sanitised line by line. */
static void relay_reply(sess *s, const pc_smtp_reply *r)
{
    for (size_t i = 0; i < r->nlines; i++) {
        char text[512];
        pc_sanitize(text, sizeof(text), r->lines[i].p, r->lines[i].n, 0);
        reply(s, "%03d%c%s", r->code, i + 1 < r->nlines ? '-' : ' ', text);
    }
}

static void error_count(sess *s)
{
    if (++s->errors >= s->cfg->limits.errors) {
        reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
        pc_log_notice(s->sid, "event=limit limit=errors client=%s", s->client_ip);
        close_session(s);
    }
}

/* ---- transaction ------------------------------------------------------------------------------
 */

static void txn_reset(sess *s)
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
        pc_message_free(s->msg);
    else
        pc_spool_free(s->spool);
    s->msg = NULL;
    s->spool = NULL;
    s->spool_err = 0;
    pc_results_reset(&s->results);
    s->sv.sender = NULL;
    s->sv.rcpts = NULL;
    s->sv.nrcpts = 0;
    s->sv.rcpt = NULL;
    s->sv.msg = NULL;
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
    s->sv.rcpts = s->rcpt_addrs;
    s->sv.nrcpts = s->nrcpts;
    return 0;
}

/* ---- the filter chain -------------------------------------------------------------------------
 */

static void verdict_reply(sess *s, const pc_verdict *v, int defcode, const char *defenh,
                          const char *deftext)
{
    char text[400];
    const char *t = v->text ? v->text : deftext;
    pc_sanitize(text, sizeof(text), t, strlen(t), 0);
    reply(s, "%d %s %s", v->code ? v->code : defcode, v->enhanced ? v->enhanced : defenh, text);
}

/* Maps a final verdict to a reply; returns 1 if the step must stop here. */
static int verdict_stops(sess *s, const pc_verdict *v)
{
    switch (v->action) {
    case PC_REJECT: verdict_reply(s, v, 550, "5.7.1", "Rejected by policy"); return 1;
    case PC_TEMPFAIL: verdict_reply(s, v, 451, "4.7.1", "Try again later"); return 1;
    case PC_QUARANTINE:
        /* No quarantine store yet: never accept what cannot be kept. */
        reply(s, "451 4.7.1 Message held for review, try again later");
        return 1;
    default: return 0;
    }
}

static void step_done(sess *s, const pc_verdict *v);

static void chain_cb(void *ud, const pc_verdict *v)
{
    sess *s = ud;
    s->run = NULL;
    step_done(s, v);
}

/* Runs hook if a filter uses it; otherwise continues at once. */
static void run_hook(sess *s, pc_hook hook, enum step step)
{
    s->step = step;
    if (!(s->l->chain_hooks & PC_HOOK_BIT(hook)) || !s->l->chain) {
        pc_verdict v = {.action = PC_CONTINUE};
        step_done(s, &v);
        return;
    }
    s->wait = W_CHAIN;
    pc_conn_set_timeout(s->c, 0);
    pc_chain_run *r = pc_chain_start(s->l->chain, hook, &s->sv, chain_cb, s);
    if (r)
        s->run = r;
}

/* ---- upstream ---------------------------------------------------------------------------------
 */

static void upstream_failed_reply(sess *s, pc_smtpc_status st)
{
    if (st == PC_SMTPC_PROTOCOL)
        reply(s, "451 4.4.2 Upstream protocol error, try again later");
    else
        reply(s, "451 4.4.1 Upstream not available, try again later");
}

static void drop_upstream(sess *s)
{
    s->up_txn = 0;
    pc_smtpc_free(s->up);
    s->up = NULL;
}

static void open_upstream(sess *s)
{
    pc_smtpc_params p;
    memset(&p, 0, sizeof(p));
    p.loop = s->l->loop;
    p.sid = s->sid;
    p.up = &s->l->up;
    p.tls_ctx = s->l->upstream_tls;
    p.helo_name = s->cfg->upstream.helo_name ? s->cfg->upstream.helo_name : s->cfg->hostname;
    p.client = s->sv.client;
    p.local = s->c->local;
    p.client_helo = s->helo[0] ? s->helo : NULL;
    p.login = s->authed ? s->user : NULL;
    s->wait = W_UPSTREAM;
    s->up_opening = 1;
    pc_conn_set_timeout(s->c, 0);
    if (!s->l->up.resolved && pc_upstream_resolve(&s->l->up) < 0) {
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

static void up_send(sess *s, const char *line, int secret)
{
    s->wait = W_UPSTREAM;
    pc_conn_set_timeout(s->c, 0); /* the upstream's own timeouts apply while it works */
    if (pc_smtpc_command(s->up, line, strlen(line), secret, up_cmd_done, s) < 0)
        up_cmd_done(s, PC_SMTPC_UNAVAILABLE, NULL);
}

static void send_message(sess *s);

/* Continues the step that needed the upstream, once it is open. */
static void upstream_ready(void *ud, pc_smtpc_status st, const pc_smtp_reply *r)
{
    sess *s = ud;
    s->wait = W_NONE;
    (void)r;
    s->up_opening = 0;
    if (st != PC_SMTPC_OK) {
        drop_upstream(s);
        pc_log_notice(s->sid, "event=upstream status=%s step=%d",
                      st == PC_SMTPC_PROTOCOL ? "protocol-error" : "unavailable", (int)s->step);
        upstream_failed_reply(s, st);
        if (s->step == ST_MESSAGE)
            txn_reset(s);
        else if (s->step == ST_MAIL)
            txn_reset(s);
        s->step = ST_NONE;
        resume(s);
        return;
    }
    switch (s->step) {
    case ST_MAIL: up_send(s, s->mail_line, 0); return;
    case ST_AUTH: up_send(s, s->auth_line, 1); return;
    case ST_MESSAGE:
        s->replay_idx = 0;
        up_send(s, s->mail_line, 0);
        return;
    default: resume(s); return;
    }
}

static int reply_class_ok(const pc_smtp_reply *r)
{
    int k = r->code / 100;
    return k == 2 || k == 4 || k == 5;
}

static void auth_done(sess *s, const pc_smtp_reply *r);

static void up_cmd_done(void *ud, pc_smtpc_status st, const pc_smtp_reply *r)
{
    sess *s = ud;
    s->wait = W_NONE;
    if (st != PC_SMTPC_OK) {
        drop_upstream(s);
        upstream_failed_reply(s, st);
        if (s->step == ST_MAIL || s->step == ST_MESSAGE)
            txn_reset(s);
        if (s->step == ST_AUTH) {
            explicit_bzero(s->auth_line, sizeof(s->auth_line));
            s->phase = PH_CMD;
        }
        s->step = ST_NONE;
        resume(s);
        return;
    }
    switch (s->step) {
    case ST_MAIL:
        if (!reply_class_ok(r)) {
            drop_upstream(s);
            upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
            txn_reset(s);
        } else {
            relay_reply(s, r);
            if (r->code / 100 == 2) {
                s->in_txn = 1;
                s->up_txn = 1;
                s->txn_start_ms = now_ms();
            } else {
                txn_reset(s);
            }
        }
        break;
    case ST_RCPT:
        if (!reply_class_ok(r)) {
            drop_upstream(s);
            upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
            txn_reset(s);
        } else {
            relay_reply(s, r);
            if (r->code / 100 == 2 && add_rcpt(s, s->cur_rcpt, s->cur_line) < 0)
                pc_log_err(s->sid, "event=nomem where=rcpt");
        }
        break;
    case ST_MESSAGE:
        /* Replaying the envelope on a new upstream session. */
        if (r->code / 100 != 2) {
            char text[300];
            pc_sanitize(text, sizeof(text), r->nlines ? r->lines[0].p : "",
                        r->nlines ? r->lines[0].n : 0, 0);
            pc_log_notice(s->sid, "event=replay refused=\"%d %s\"", r->code, text);
            reply(s, "451 4.4.1 Upstream refused the envelope on retry, try again later");
            txn_reset(s);
            break;
        }
        s->up_txn = 1;
        if (s->replay_idx < s->nrcpts) {
            up_send(s, s->rcpts[s->replay_idx++].line, 0);
            return;
        }
        send_message(s);
        return;
    case ST_AUTH: auth_done(s, r); return;
    case ST_MAIL_RSET:
        s->step = ST_MAIL;
        if (r->code / 100 != 2) {
            drop_upstream(s);
            open_upstream(s);
            return;
        }
        s->up_txn = 0;
        up_send(s, s->mail_line, 0);
        return;
    default:
        if (r)
            relay_reply(s, r);
        break;
    }
    s->step = ST_NONE;
    resume(s);
}

/* ---- message ----------------------------------------------------------------------------------
 */

static void data_final(void *ud, pc_smtpc_status st, const pc_smtp_reply *r)
{
    sess *s = ud;
    s->wait = W_NONE;
    s->up_txn = 0;
    char rtext[300] = "";
    int code = 451;
    if (st != PC_SMTPC_OK) {
        drop_upstream(s);
        upstream_failed_reply(s, st);
    } else if (!reply_class_ok(r) || (r->code / 100 == 2 && r->code != 250)) {
        drop_upstream(s);
        upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
    } else {
        relay_reply(s, r);
        code = r->code;
        pc_sanitize(rtext, sizeof(rtext), r->nlines ? r->lines[r->nlines - 1].p : "",
                    r->nlines ? r->lines[r->nlines - 1].n : 0, 0);
    }
    if (code == 250)
        s->messages++;
    pc_log_info(s->sid,
                "event=message client=%s from=<%s> rcpts=%zu size=%zu score=%.2f result=%d "
                "upstream=\"%s\" duration_ms=%llu",
                s->client_ip, s->sender, s->nrcpts, s->msg ? pc_message_size(s->msg) : 0,
                s->results.score, code, rtext, (unsigned long long)(now_ms() - s->txn_start_ms));
    txn_reset(s);
    s->step = ST_NONE;
    resume(s);
}

static void send_message(sess *s)
{
    s->wait = W_UPSTREAM;
    pc_conn_set_timeout(s->c, 0);
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
        s->tls ? (s->authed ? "ESMTPSA" : "ESMTPS") : (s->authed ? "ESMTPA" : "ESMTP");
    if (!s->esmtp)
        with = s->tls ? "SMTPS" : "SMTP";
    int n = snprintf(line, sizeof(line), "Received: from %s (%s [%s])\r\n\tby %s (Portcullis)",
                     helo, s->client_ip, s->client_ip, s->cfg->hostname);
    if (s->tls)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\t(using %s with cipher %s)",
                      pc_conn_tls_version(s->c), pc_conn_tls_cipher(s->c));
    n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\twith %s id %016llx", with,
                  (unsigned long long)s->sid);
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
    pc_conn_set_timeout(s->c, 0);
    s->phase = PH_CMD;
    const char *why = NULL;
    if (f & PC_DATA_NUL) {
        reply(s, "550 5.6.0 Message contains NUL characters");
        why = "nul";
    } else if ((f & (PC_DATA_BARE_LF | PC_DATA_BARE_CR)) && !s->cfg->bare_lf_normalize) {
        reply(s, "550 5.6.0 Message contains bare CR or LF characters");
        why = "bare-cr-lf";
    } else if (f & PC_DATA_TOO_BIG) {
        reply(s, "552 5.3.4 Message size exceeds fixed limit");
        why = "size";
    } else if (f & PC_DATA_LONG_LINE) {
        reply(s, "500 5.5.2 Message line too long");
        why = "line-length";
    } else if (s->spool_err == PC_SPOOL_ENOSPC) {
        reply(s, "452 4.3.1 Insufficient system storage");
        why = "spool-full";
    } else if (s->spool_err) {
        reply(s, "451 4.3.0 Local error in processing");
        why = "spool-error";
    } else if (s->data.received >= s->cfg->limits.max_received) {
        reply(s, "554 5.4.6 Too many hops (mail loop?)");
        why = "hops";
    }
    if (why) {
        pc_log_notice(
            s->sid, "event=message client=%s from=<%s> rcpts=%zu size=%zu result=refused reason=%s",
            s->client_ip, s->sender, s->nrcpts, s->data.size, why);
        txn_reset(s);
        resume(s);
        return;
    }
    s->msg = pc_message_new(s->spool);
    if (!s->msg) {
        reply(s, "451 4.3.0 Local error in processing");
        txn_reset(s);
        resume(s);
        return;
    }
    s->spool = NULL;
    add_received(s);
    s->sv.msg = s->msg;
    run_hook(s, PC_HOOK_MESSAGE, ST_MESSAGE);
}

static void message_after_filters(sess *s, const pc_verdict *v)
{
    if (verdict_stops(s, v)) {
        pc_log_notice(s->sid,
                      "event=message client=%s from=<%s> rcpts=%zu result=filtered action=%d",
                      s->client_ip, s->sender, s->nrcpts, (int)v->action);
        txn_reset(s);
        s->step = ST_NONE;
        resume(s);
        return;
    }
    if (v->action == PC_DISCARD) {
        pc_log_notice(s->sid,
                      "event=message client=%s from=<%s> rcpts=%zu result=discarded-by-policy",
                      s->client_ip, s->sender, s->nrcpts);
        reply(s, "250 2.0.0 Ok: discarded by policy");
        txn_reset(s);
        s->step = ST_NONE;
        resume(s);
        return;
    }
    if (!pc_smtpc_alive(s->up)) {
        /* The upstream session was lost while the message was spooled: reconnect and replay. */
        drop_upstream(s);
        pc_log_info(s->sid, "event=upstream action=reconnect-replay rcpts=%zu", s->nrcpts);
        open_upstream(s);
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

/* ---- AUTH -------------------------------------------------------------------------------------
 */

static void auth_username(sess *s, const char *b64, size_t n)
{
    unsigned char out[600];
    if (n == 0 || n > 790 || n % 4 != 0)
        return;
    int k = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (k <= 0)
        return;
    /* PLAIN: authzid NUL authcid NUL passwd; LOGIN's first response is the user name. */
    const unsigned char *p = memchr(out, 0, (size_t)k);
    const unsigned char *user = p ? p + 1 : out;
    const unsigned char *end = p ? memchr(user, 0, (size_t)(out + k - user)) : out + k;
    if (!end)
        end = out + k;
    pc_sanitize(s->user, sizeof(s->user), (const char *)user, (size_t)(end - user), 0);
    explicit_bzero(out, sizeof(out));
}

static void auth_done(sess *s, const pc_smtp_reply *r)
{
    explicit_bzero(s->auth_line, sizeof(s->auth_line));
    if (r->code == 334) {
        relay_reply(s, r);
        s->phase = PH_AUTH;
        s->step = ST_NONE;
        resume(s);
        return;
    }
    s->phase = PH_CMD;
    if (r->code == 235) {
        s->authed = 1;
        if (!s->user[0])
            snprintf(s->user, sizeof(s->user), "%s", "(unknown)");
        s->sv.user = s->user;
        relay_reply(s, r);
        pc_log_info(s->sid, "event=auth result=ok user=%s client=%s", s->user, s->client_ip);
    } else if (reply_class_ok(r)) {
        relay_reply(s, r);
        s->user[0] = '\0';
        s->auth_failures++;
        pc_addr_event((struct sockaddr *)&s->sv.client, PC_CNT_AUTHFAIL, 60);
        pc_log_notice(s->sid, "event=auth result=failed client=%s failures=%u", s->client_ip,
                      s->auth_failures);
        if (s->auth_failures >= s->cfg->limits.auth_failures) {
            reply(s, "421 4.7.0 %s Error: too many failed authentications", s->cfg->hostname);
            close_session(s);
        }
    } else {
        drop_upstream(s);
        upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
    }
    s->step = ST_NONE;
    resume(s);
}

/* A SASL response line from the client (PH_AUTH). */
static void auth_continue(sess *s, char *line, size_t len)
{
    if (len + 1 > sizeof(s->auth_line)) {
        explicit_bzero(line, len);
        reply(s, "500 5.5.6 Authentication exchange line is too long");
        s->phase = PH_CMD;
        drop_upstream(s); /* the upstream is mid-exchange: start afresh */
        return;
    }
    if (!s->user[0] && !(len == 1 && line[0] == '*'))
        auth_username(s, line, len);
    memcpy(s->auth_line, line, len);
    s->auth_line[len] = '\0';
    explicit_bzero(line, len);
    s->step = ST_AUTH;
    if (!s->up || !pc_smtpc_alive(s->up)) {
        explicit_bzero(s->auth_line, sizeof(s->auth_line));
        s->phase = PH_CMD;
        upstream_failed_reply(s, PC_SMTPC_UNAVAILABLE);
        return;
    }
    up_send(s, s->auth_line, 1);
}

/* ---- commands ---------------------------------------------------------------------------------
 */

static size_t announced_size(sess *s)
{
    size_t lim = s->cfg->limits.message_size;
    if (s->l->up.caps.size && s->l->up.caps.size < lim)
        lim = s->l->up.caps.size;
    return lim;
}

static unsigned upcaps(sess *s)
{
    /* Until a probe succeeded, assume the common set. */
    if (!s->l->up.caps.known)
        return PC_CAP_8BITMIME | PC_CAP_PIPELINING | PC_CAP_ENHANCED;
    return s->l->up.caps.flags;
}

static int auth_offered(sess *s)
{
    return (upcaps(s) & PC_CAP_AUTH) && (s->tls || s->cfg->plaintext_auth);
}

static void cmd_helo(sess *s, const pc_smtp_cmd *cmd, int ehlo)
{
    if (pc_smtp_helo_valid(cmd->arg.p, cmd->arg.n) < 0) {
        reply(s, "501 5.5.4 Invalid domain name");
        error_count(s);
        return;
    }
    txn_reset(s);
    size_t n = cmd->arg.n < sizeof(s->helo) - 1 ? cmd->arg.n : sizeof(s->helo) - 1;
    memcpy(s->helo, cmd->arg.p, n);
    s->helo[n] = '\0';
    s->sv.helo = s->helo;
    s->esmtp = ehlo;
    run_hook(s, PC_HOOK_HELO, ST_HELO);
}

static void helo_after_filters(sess *s, const pc_verdict *v)
{
    if (verdict_stops(s, v)) {
        s->helo[0] = '\0';
        s->sv.helo = NULL;
        return;
    }
    const char *h = s->cfg->hostname;
    if (!s->esmtp) {
        reply(s, "250 %s", h);
        return;
    }
    unsigned caps = upcaps(s);
    reply(s, "250-%s", h);
    reply(s, "250-PIPELINING");
    reply(s, "250-SIZE %zu", announced_size(s));
    if (caps & PC_CAP_8BITMIME)
        reply(s, "250-8BITMIME");
    if (caps & PC_CAP_SMTPUTF8)
        reply(s, "250-SMTPUTF8");
    if (caps & PC_CAP_DSN)
        reply(s, "250-DSN");
    if (s->cfg->tls.mode == PC_TLS_STARTTLS && !s->tls && s->l->server_tls)
        reply(s, "250-STARTTLS");
    if (auth_offered(s) && !s->authed)
        reply(s, "250-AUTH %s", s->l->up.caps.auth);
    reply(s, "250 ENHANCEDSTATUSCODES");
}

static int tls_required_refused(sess *s)
{
    if (s->cfg->require_tls && !s->tls) {
        reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        return 1;
    }
    return 0;
}

static int copy_path(char *out, size_t outlen, pc_slice p)
{
    if (p.n >= outlen)
        return -1;
    if (p.n)
        memcpy(out, p.p, p.n);
    out[p.n] = '\0';
    return 0;
}

/* Rebuilds the MAIL/RCPT line for the upstream from the parsed pieces (never the raw line). */
static int build_line(sess *s, char *out, size_t outlen, const char *verb, const char *path,
                      const pc_smtp_cmd *cmd)
{
    int n = snprintf(out, outlen, "%s:<%s>", verb, path);
    for (size_t i = 0; i < cmd->nparams; i++) {
        const pc_smtp_param *pm = &cmd->params[i];
        n += snprintf(out + n, outlen - (size_t)n, " %.*s", (int)pm->key.n, pm->key.p);
        if (pm->value.n)
            n += snprintf(out + n, outlen - (size_t)n, "=%.*s", (int)pm->value.n, pm->value.p);
        if ((size_t)n >= outlen)
            return -1;
    }
    (void)s;
    return (size_t)n < outlen ? 0 : -1;
}

static int keyis(const pc_smtp_param *pm, const char *name)
{
    return pm->key.n == strlen(name) && strncasecmp(pm->key.p, name, pm->key.n) == 0;
}

static int valis(const pc_smtp_param *pm, const char *v)
{
    return pm->value.n == strlen(v) && strncasecmp(pm->value.p, v, pm->value.n) == 0;
}

static void cmd_mail(sess *s, const char *line, size_t len)
{
    if (!s->helo[0]) {
        reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (tls_required_refused(s))
        return;
    if (s->in_txn) {
        reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    pc_smtp_cmd cmd;
    int utf8 = (upcaps(s) & PC_CAP_SMTPUTF8) != 0;
    pc_smtp_err e = pc_smtp_cmd_parse(line, len, utf8, &cmd);
    if (e == PC_SMTP_E_ADDRESS) {
        reply(s, "501 5.1.7 Bad sender address syntax");
        error_count(s);
        return;
    }
    if (e == PC_SMTP_E_PARAMS) {
        reply(s, "555 5.5.4 Unsupported or malformed parameters");
        error_count(s);
        return;
    }
    if (e != PC_SMTP_E_OK) {
        reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        error_count(s);
        return;
    }
    unsigned caps = upcaps(s);
    for (size_t i = 0; i < cmd.nparams; i++) {
        const pc_smtp_param *pm = &cmd.params[i];
        if (keyis(pm, "SIZE") && pm->value.n) {
            char tmp[24];
            if (pm->value.n >= sizeof(tmp)) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return;
            }
            memcpy(tmp, pm->value.p, pm->value.n);
            tmp[pm->value.n] = '\0';
            char *end;
            unsigned long long v = strtoull(tmp, &end, 10);
            if (*end || tmp[0] < '0' || tmp[0] > '9') {
                reply(s, "501 5.5.4 Bad SIZE value");
                error_count(s);
                return;
            }
            if (v > announced_size(s)) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return;
            }
        } else if (keyis(pm, "BODY") && (valis(pm, "8BITMIME") || valis(pm, "7BIT"))) {
            if (valis(pm, "8BITMIME") && !(caps & PC_CAP_8BITMIME)) {
                reply(s, "555 5.5.4 BODY=8BITMIME not supported");
                return;
            }
            s->body8bit = valis(pm, "8BITMIME");
        } else if (keyis(pm, "SMTPUTF8") && pm->value.n == 0 && (caps & PC_CAP_SMTPUTF8)) {
            s->smtputf8 = 1;
        } else if ((keyis(pm, "RET") || keyis(pm, "ENVID")) && (caps & PC_CAP_DSN)) {
            /* relayed as given (validated printable by the parser) */
        } else if (keyis(pm, "AUTH") && s->authed) {
            /* relayed */
        } else {
            reply(s, "555 5.5.4 Unsupported parameter %.*s", (int)(pm->key.n > 40 ? 40 : pm->key.n),
                  pm->key.p);
            error_count(s);
            return;
        }
    }
    if (copy_path(s->sender, sizeof(s->sender), cmd.path) < 0 ||
        build_line(s, s->mail_line, sizeof(s->mail_line), "MAIL FROM", s->sender, &cmd) < 0) {
        reply(s, "501 5.1.7 Sender address too long");
        return;
    }
    s->sv.sender = s->sender;
    run_hook(s, PC_HOOK_MAIL, ST_MAIL);
}

static void mail_after_filters(sess *s, const pc_verdict *v)
{
    if (verdict_stops(s, v)) {
        txn_reset(s);
        s->step = ST_NONE;
        return;
    }
    if (s->up && pc_smtpc_alive(s->up)) {
        if (s->up_txn) {
            /* An earlier transaction ended at the gateway (RSET, refused message): end it upstream
             * too before the new MAIL. */
            s->step = ST_MAIL_RSET;
            up_send(s, "RSET", 0);
            return;
        }
        up_send(s, s->mail_line, 0);
        return;
    }
    drop_upstream(s);
    open_upstream(s);
}

static int domain_accepted(sess *s, const char *dom)
{
    for (size_t i = 0; i < s->cfg->accepted_domains.n; i++)
        if (strcasecmp(s->cfg->accepted_domains.v[i], dom) == 0)
            return 1;
    return 0;
}

static void cmd_rcpt(sess *s, const char *line, size_t len)
{
    if (!s->in_txn) {
        reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    pc_smtp_cmd cmd;
    pc_smtp_err e = pc_smtp_cmd_parse(line, len, s->smtputf8, &cmd);
    if (e == PC_SMTP_E_ADDRESS) {
        reply(s, "501 5.1.3 Bad recipient address syntax");
        error_count(s);
        return;
    }
    if (e == PC_SMTP_E_PARAMS) {
        reply(s, "555 5.5.4 Unsupported or malformed parameters");
        error_count(s);
        return;
    }
    if (e != PC_SMTP_E_OK || cmd.path.n == 0) {
        reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        error_count(s);
        return;
    }
    unsigned caps = upcaps(s);
    for (size_t i = 0; i < cmd.nparams; i++) {
        const pc_smtp_param *pm = &cmd.params[i];
        if ((keyis(pm, "NOTIFY") || keyis(pm, "ORCPT")) && (caps & PC_CAP_DSN))
            continue;
        reply(s, "555 5.5.4 Unsupported parameter %.*s", (int)(pm->key.n > 40 ? 40 : pm->key.n),
              pm->key.p);
        error_count(s);
        return;
    }
    if (s->nrcpts >= s->cfg->limits.recipients) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (copy_path(s->cur_rcpt, sizeof(s->cur_rcpt), cmd.path) < 0 ||
        build_line(s, s->cur_line, sizeof(s->cur_line), "RCPT TO", s->cur_rcpt, &cmd) < 0) {
        reply(s, "501 5.1.3 Recipient address too long");
        return;
    }
    /* Relay control is the gateway's own: the upstream often trusts the gateway's address. */
    char dom[256];
    int local_postmaster = cmd.domain.n == 0 && strcasecmp(s->cur_rcpt, "postmaster") == 0;
    copy_path(dom, sizeof(dom), cmd.domain.n < sizeof(dom) ? cmd.domain : (pc_slice){"", 0});
    if (!local_postmaster && !domain_accepted(s, dom) && !s->authed &&
        !pc_netlist_match(&s->cfg->trusted_networks, (struct sockaddr *)&s->sv.client)) {
        char r[300];
        pc_sanitize(r, sizeof(r), s->cur_rcpt, strlen(s->cur_rcpt), 1);
        reply(s, "554 5.7.1 <%s>: Relay access denied", r);
        pc_log_notice(s->sid, "event=relay-denied client=%s from=<%s> to=<%s>", s->client_ip,
                      s->sender, r);
        return;
    }
    s->sv.rcpt = s->cur_rcpt;
    run_hook(s, PC_HOOK_RCPT, ST_RCPT);
}

static void rcpt_after_filters(sess *s, const pc_verdict *v)
{
    s->sv.rcpt = NULL;
    if (verdict_stops(s, v)) {
        s->step = ST_NONE;
        return;
    }
    if (!s->up || !pc_smtpc_alive(s->up)) {
        /* Lost since MAIL: the next DATA replays; this recipient cannot be verified now. */
        reply(s, "451 4.4.1 Upstream not available, try again later");
        s->step = ST_NONE;
        return;
    }
    up_send(s, s->cur_line, 0);
}

static void cmd_data(sess *s)
{
    if (!s->in_txn) {
        reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->nrcpts == 0) {
        reply(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    s->spool = pc_spool_new(s->l->spool_threshold);
    if (!s->spool) {
        reply(s, "451 4.3.0 Local error in processing");
        return;
    }
    pc_smtp_data_init(&s->data, s->cfg->limits.text_line_length, s->cfg->limits.message_size,
                      s->cfg->bare_lf_normalize);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
    s->phase = PH_DATA;
    pc_conn_set_timeout(s->c, s->cfg->timeouts.data_block_ms);
}

static void cmd_starttls(sess *s)
{
    if (s->cfg->tls.mode != PC_TLS_STARTTLS || !s->l->server_tls) {
        reply(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    if (s->tls) {
        reply(s, "503 5.5.1 Error: TLS already active");
        return;
    }
    if (s->cfg->tls.handshakes_per_minute &&
        pc_addr_event((struct sockaddr *)&s->sv.client, PC_CNT_HANDSHAKES, 60) >
            s->cfg->tls.handshakes_per_minute) {
        reply(s, "454 4.7.0 TLS not available: too many handshakes from your address");
        pc_log_notice(s->sid, "event=limit limit=handshakes client=%s", s->client_ip);
        return;
    }
    size_t junk = pc_conn_pending(s->c) - s->line_consumed;
    if (junk)
        pc_log_notice(s->sid, "event=starttls-injection client=%s discarded_bytes=%zu",
                      s->client_ip, junk);
    reply(s, "220 2.0.0 Ready to start TLS");
    flush(s);
    s->phase = PH_TLS;
    pc_conn_set_timeout(s->c, s->cfg->tls.handshake_timeout_ms);
    if (pc_conn_tls_server(s->c, s->l->server_tls) < 0)
        close_session(s);
}

static void cmd_auth(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len)
{
    if (!s->helo[0] || !s->esmtp) {
        reply(s, "503 5.5.1 Error: send EHLO first");
        return;
    }
    if (!s->tls && !s->cfg->plaintext_auth) {
        explicit_bzero(line, len);
        reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (!auth_offered(s)) {
        reply(s, "502 5.5.1 Error: authentication not enabled");
        return;
    }
    if (s->authed) {
        reply(s, "503 5.5.1 Error: already authenticated");
        return;
    }
    if (s->in_txn) {
        reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    if (len >= sizeof(s->auth_line)) {
        explicit_bzero(line, len);
        reply(s, "500 5.5.6 Authentication exchange line is too long");
        return;
    }
    /* The mechanism must be one the upstream announced. */
    size_t mlen = 0;
    while (mlen < cmd->arg.n && cmd->arg.p[mlen] != ' ')
        mlen++;
    int found = 0;
    const char *a = s->l->up.caps.auth;
    while (*a) {
        size_t k = strcspn(a, " ");
        if (k == mlen && strncasecmp(a, cmd->arg.p, k) == 0)
            found = 1;
        a += k;
        while (*a == ' ')
            a++;
    }
    if (!found || mlen == 0) {
        explicit_bzero(line, len);
        reply(s, "504 5.5.4 Unrecognized authentication type");
        error_count(s);
        return;
    }
    s->user[0] = '\0';
    if (cmd->arg.n > mlen + 1)
        auth_username(s, cmd->arg.p + mlen + 1, cmd->arg.n - mlen - 1);
    memcpy(s->auth_line, line, len);
    s->auth_line[len] = '\0';
    explicit_bzero(line, len);
    s->step = ST_AUTH;
    if (s->up && pc_smtpc_alive(s->up)) {
        up_send(s, s->auth_line, 1);
        return;
    }
    drop_upstream(s);
    open_upstream(s);
}

static void cmd_rset(sess *s)
{
    txn_reset(s);
    reply(s, "250 2.0.0 Ok");
}

/* The table of verbs: what is legal when is decided in each handler; the table names them. */
static void command(sess *s, char *line, size_t len)
{
    pc_smtp_cmd cmd;
    int utf8 = (upcaps(s) & PC_CAP_SMTPUTF8) != 0;
    pc_smtp_err e = pc_smtp_cmd_parse(line, len, utf8, &cmd);
    s->first_cmd = 1;
    if (e == PC_SMTP_E_NUL || e == PC_SMTP_E_8BIT) {
        reply(s, "500 5.5.2 Error: invalid characters in command");
        error_count(s);
        return;
    }
    if (e == PC_SMTP_E_UNKNOWN) {
        if (len >= 6 && strncmp(line, "PROXY ", 6) == 0) {
            reply(s, "421 4.7.0 %s PROXY protocol not accepted from your address",
                  s->cfg->hostname);
            close_session(s);
            return;
        }
        reply(s, "500 5.5.1 Error: command not recognized");
        error_count(s);
        return;
    }
    switch (cmd.verb) {
    case PC_SMTP_MAIL: cmd_mail(s, line, len); return;
    case PC_SMTP_RCPT: cmd_rcpt(s, line, len); return;
    default: break;
    }
    if (e != PC_SMTP_E_OK) {
        reply(s, "501 5.5.4 Syntax error in parameters or arguments");
        error_count(s);
        return;
    }
    switch (cmd.verb) {
    case PC_SMTP_EHLO: cmd_helo(s, &cmd, 1); return;
    case PC_SMTP_HELO: cmd_helo(s, &cmd, 0); return;
    case PC_SMTP_DATA: cmd_data(s); return;
    case PC_SMTP_RSET: cmd_rset(s); return;
    case PC_SMTP_NOOP: reply(s, "250 2.0.0 Ok"); return;
    case PC_SMTP_QUIT:
        reply(s, "221 2.0.0 Bye");
        close_session(s);
        return;
    case PC_SMTP_VRFY: reply(s, "252 2.5.2 Cannot VRFY user, but will accept message"); return;
    case PC_SMTP_EXPN: reply(s, "502 5.5.1 Error: command not implemented"); return;
    case PC_SMTP_HELP: reply(s, "214 2.0.0 See RFC 5321"); return;
    case PC_SMTP_STARTTLS: cmd_starttls(s); return;
    case PC_SMTP_AUTH: cmd_auth(s, &cmd, line, len); return;
    case PC_SMTP_BDAT:
    case PC_SMTP_XCLIENT:
    default:
        reply(s, "502 5.5.1 Error: command not implemented");
        error_count(s);
        return;
    }
}

static void step_done(sess *s, const pc_verdict *v)
{
    enum step st = s->step;
    s->wait = W_NONE;
    switch (st) {
    case ST_CONNECT: {
        s->step = ST_NONE;
        if (v->action == PC_REJECT || v->action == PC_TEMPFAIL || v->action == PC_QUARANTINE) {
            char text[300];
            const char *t = v->text ? v->text : "Service refused";
            pc_sanitize(text, sizeof(text), t, strlen(t), 0);
            int code = v->code ? v->code : (v->action == PC_REJECT ? 554 : 421);
            reply(s, "%d %s %s", code,
                  v->enhanced ? v->enhanced : (code / 100 == 5 ? "5.7.1" : "4.7.0"), text);
            pc_log_notice(s->sid, "event=connect-refused client=%s code=%d", s->client_ip, code);
            close_session(s);
            return;
        }
        if (pc_conn_pending(s->c) > s->cfg->limits.pregreet_bytes) {
            pc_addr_event((struct sockaddr *)&s->sv.client, PC_CNT_PREGREET, 60);
            reply(s, "554 5.5.1 Protocol error: talked before greeting");
            pc_log_notice(s->sid, "event=pregreet client=%s bytes=%zu", s->client_ip,
                          pc_conn_pending(s->c));
            close_session(s);
            return;
        }
        reply(s, "220 %s ESMTP Portcullis", s->cfg->hostname);
        s->phase = PH_CMD;
        break;
    }
    case ST_HELO:
        s->step = ST_NONE;
        helo_after_filters(s, v);
        break;
    case ST_MAIL:
        mail_after_filters(s, v);
        if (s->wait)
            return;
        break;
    case ST_RCPT:
        rcpt_after_filters(s, v);
        if (s->wait)
            return;
        break;
    case ST_MESSAGE: message_after_filters(s, v); return;
    default: break;
    }
    resume(s);
}

/* ---- input ------------------------------------------------------------------------------------
 */

static void process_data(sess *s)
{
    int done = 0;
    size_t n = pc_smtp_data_feed(&s->data, pc_buf_ptr(&s->c->in), pc_conn_pending(s->c), spool_emit,
                                 s, &done);
    if (n == (size_t)-1) {
        close_session(s);
        return;
    }
    pc_conn_consume(s->c, n);
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
               s->phase != PH_CONNECT && s->phase != PH_PROXY && pc_conn_pending(s->c) > 0) {
            if (s->phase == PH_DATA) {
                process_data(s);
                if (s->phase == PH_DATA)
                    break; /* need more */
                continue;
            }
            char *buf = (char *)pc_buf_ptr(&s->c->in);
            size_t avail = pc_conn_pending(s->c), linelen = 0, consumed = 0;
            size_t max = s->phase == PH_AUTH ? AUTH_LINE_MAX : s->cfg->limits.line_length;
            if (s->skip_line) {
                char *lf = memchr(buf, '\n', avail);
                pc_conn_consume(s->c, lf ? (size_t)(lf - buf) + 1 : avail);
                if (lf)
                    s->skip_line = 0;
                continue;
            }
            pc_line_result lr = pc_smtp_line_find(buf, avail, max, &linelen, &consumed);
            if (lr == PC_LINE_NEED_MORE)
                break;
            if (lr == PC_LINE_TOO_LONG) {
                reply(s, "500 5.5.2 Error: line too long");
                s->skip_line = 1;
                if (s->phase == PH_AUTH) {
                    s->phase = PH_CMD;
                    drop_upstream(s);
                }
                error_count(s);
                continue;
            }
            if (lr == PC_LINE_BARE_LF) {
                explicit_bzero(buf, consumed);
                pc_conn_consume(s->c, consumed);
                reply(s, "500 5.5.2 Error: bare LF received");
                error_count(s);
                continue;
            }
            if (s->phase == PH_AUTH) {
                s->phase = PH_CMD;
                auth_continue(s, buf, linelen);
                explicit_bzero(buf, consumed);
                pc_conn_consume(s->c, consumed);
                continue;
            }
            if (!s->first_cmd)
                pc_conn_set_timeout(s->c, s->cfg->timeouts.command_ms);
            s->line_consumed = consumed;
            command(s, buf, linelen);
            pc_conn_consume(s->c, consumed);
        }
    } while (s->again);
    s->in_process = 0;
    if (s->phase == PH_CLOSING)
        return;
    flush(s);
    if (s->wait == W_NONE && s->phase == PH_CMD)
        pc_conn_set_timeout(s->c, s->first_cmd ? s->cfg->timeouts.command_ms
                                               : s->cfg->timeouts.greeting_ms);
    else if (s->wait == W_NONE && s->phase == PH_AUTH)
        pc_conn_set_timeout(s->c, s->cfg->timeouts.command_ms);
}

static void resume(sess *s)
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
    pc_conn_read_start(s->c);
    run_hook(s, PC_HOOK_CONNECT, ST_CONNECT);
}

static void session_ready(sess *s)
{
    pc_addr_str((struct sockaddr *)&s->sv.client, s->client_ip, sizeof(s->client_ip));
    memcpy(s->sv.client_ip, s->client_ip, sizeof(s->client_ip));
    pc_log_info(s->sid, "event=connect client=%s listener=%s", s->client_ip, s->cfg->name);
    if (s->cfg->tls.mode == PC_TLS_IMPLICIT) {
        if (s->cfg->tls.handshakes_per_minute &&
            pc_addr_event((struct sockaddr *)&s->sv.client, PC_CNT_HANDSHAKES, 60) >
                s->cfg->tls.handshakes_per_minute) {
            pc_log_notice(s->sid, "event=limit limit=handshakes client=%s", s->client_ip);
            close_session(s);
            return;
        }
        s->phase = PH_TLS;
        pc_conn_set_timeout(s->c, s->cfg->tls.handshake_timeout_ms);
        if (pc_conn_tls_server(s->c, s->l->server_tls) < 0)
            close_session(s);
        pc_conn_read_start(s->c);
        return;
    }
    start_connect_hook(s);
}

static void process_proxy(sess *s)
{
    pc_proxy_info info;
    size_t used = 0;
    int rc = pc_proxy_parse((const unsigned char *)pc_buf_ptr(&s->c->in), pc_conn_pending(s->c),
                            &info, &used);
    if (rc == PC_NEED_MORE)
        return;
    if (rc != PC_OK) {
        char peer[INET6_ADDRSTRLEN];
        pc_addr_str((struct sockaddr *)&s->c->peer, peer, sizeof(peer));
        pc_log_notice(s->sid, "event=proxy-invalid peer=%s", peer);
        close_session(s);
        return;
    }
    pc_conn_consume(s->c, used);
    if (!info.local)
        s->sv.client = info.src;
    pc_conn_read_stop(s->c);
    session_ready(s);
}

static void on_conn(pc_conn *c, pc_conn_event ev, void *ud)
{
    sess *s = ud;
    switch (ev) {
    case PC_CONN_EV_READ:
        if (s->phase == PH_PROXY)
            process_proxy(s);
        else
            process(s);
        return;
    case PC_CONN_EV_TLS_DONE:
        s->tls = 1;
        s->sv.tls = 1;
        pc_log_info(s->sid, "event=tls client=%s version=%s cipher=%s", s->client_ip,
                    pc_conn_tls_version(c), pc_conn_tls_cipher(c));
        if (s->cfg->tls.mode == PC_TLS_IMPLICIT) {
            start_connect_hook(s);
            return;
        }
        /* RFC 3207 §4.2: forget everything learnt before TLS. */
        txn_reset(s);
        s->helo[0] = '\0';
        s->sv.helo = NULL;
        s->esmtp = 0;
        s->phase = PH_CMD;
        pc_conn_set_timeout(s->c, s->cfg->timeouts.command_ms);
        process(s);
        return;
    case PC_CONN_EV_TLS_FAILED:
        pc_log_notice(s->sid, "event=tls-failed client=%s reason=\"%s\"", s->client_ip, c->errtext);
        close_session(s);
        return;
    case PC_CONN_EV_TIMEOUT:
        if (s->phase != PH_TLS && s->phase != PH_PROXY) {
            reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
            flush(s);
        }
        pc_log_notice(s->sid, "event=timeout client=%s phase=%d", s->client_ip, (int)s->phase);
        close_session(s);
        return;
    case PC_CONN_EV_EOF:
        if (s->phase == PH_DATA)
            pc_log_notice(s->sid, "event=client-lost-in-data client=%s from=<%s> received=%zu",
                          s->client_ip, s->sender, s->data.size);
        close_session(s);
        return;
    case PC_CONN_EV_ERROR: close_session(s); return;
    case PC_CONN_EV_CONNECTED:
    case PC_CONN_EV_DRAIN: return;
    case PC_CONN_EV_CLOSED:
        if (s->conn_counted)
            pc_addr_conn_dec((struct sockaddr *)&s->c->peer);
        pc_session_count(-1);
        pc_buf_release(&s->out);
        free(s);
        return;
    }
}

static void close_session(sess *s)
{
    if (s->phase == PH_CLOSING)
        return;
    s->phase = PH_CLOSING;
    if (s->run) {
        pc_chain_abort(s->run);
        s->run = NULL;
    }
    if ((s->l->chain_hooks & PC_HOOK_BIT(PC_HOOK_CLOSE)) && s->l->chain) {
        /* Fire-and-forget: the verdict of the close hook is ignored. */
    }
    drop_upstream(s);
    txn_reset(s);
    flush(s);
    pc_log_info(
        s->sid,
        "event=disconnect client=%s helo=%s tls=%s user=%s messages=%u errors=%u duration_ms=%llu",
        s->client_ip, s->helo[0] ? s->helo : "-", s->tls ? pc_conn_tls_version(s->c) : "no",
        s->authed ? s->user : "-", s->messages, s->errors,
        (unsigned long long)(now_ms() - s->start_ms));
    explicit_bzero(s->user, sizeof(s->user));
    pc_conn_close(s->c);
}

void pc_smtp_session_start(pc_listener_rt *l, pc_conn *conn)
{
    sess *s = calloc(1, sizeof(*s));
    if (!s) {
        pc_conn_close(conn);
        return;
    }
    s->l = l;
    s->cfg = l->cfg;
    s->c = conn;
    s->sid = pc_session_id();
    s->start_ms = now_ms();
    pc_buf_init(&s->out, 0);
    conn->cb = on_conn;
    conn->ud = s;
    pc_session_count(+1);
    s->sv.sid = s->sid;
    s->sv.loop = l->loop;
    s->sv.protocol = "smtp";
    s->sv.listener = s->cfg->name;
    s->sv.client = conn->peer;
    s->sv.conn = conn;
    s->sv.results = &s->results;
    pc_addr_str((struct sockaddr *)&conn->peer, s->client_ip, sizeof(s->client_ip));

    /* Caps: connections per address and in total. */
    s->conn_counted = 1;
    unsigned n = pc_addr_conn_inc((struct sockaddr *)&conn->peer);
    /* Trusted networks and load balancers are exempt, as Postfix exempts $mynetworks. */
    if (s->cfg->max_connections_per_ip && n > s->cfg->max_connections_per_ip &&
        !pc_netlist_match(&s->cfg->proxy_trusted, (struct sockaddr *)&conn->peer) &&
        !pc_netlist_match(&s->cfg->trusted_networks, (struct sockaddr *)&conn->peer)) {
        reply(s, "421 4.7.0 %s Error: too many connections from your address", s->cfg->hostname);
        pc_log_notice(s->sid, "event=limit limit=connections_per_ip client=%s count=%u",
                      s->client_ip, n);
        close_session(s);
        return;
    }
    if (s->cfg->proxy_trusted.n &&
        pc_netlist_match(&s->cfg->proxy_trusted, (struct sockaddr *)&conn->peer)) {
        s->phase = PH_PROXY;
        pc_conn_set_timeout(conn, PROXY_TIMEOUT_MS);
        pc_conn_read_start(conn);
        return;
    }
    session_ready(s);
}
