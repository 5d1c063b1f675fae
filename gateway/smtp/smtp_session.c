/* smtp_session.c — what the SMTP session's commands and its input loop share (smtp_session.h):
 * replies, the error count, the transaction's reset and its recipients' outcome, the filter chain
 * at each hook, the upstream leg (opened, pooled, replayed after a loss, 421 handled) and the
 * message's hand-over and its one log line, and the session's end. It reports back to the session
 * through its ops (resume, step_done, auth_reply), never by calling up into the files above. */
#include "smtp/smtp_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/addrtable.h"
#include "parse/sanitize.h"
#include "policies/policy.h"
#include "quarantine/quarantine.h"

static void upstream_ready(void *ud, pc_smtpc_status st, const pc_smtp_reply *r);

static const char *step_name(enum step st)
{
    static const char *const names[] = {"none",    "connect", "helo", "mail", "rcpt",
                                        "message", "auth",    "auth", "mail", "deliver"};
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
    pc_smtp_txn_reset(&s->txn);
    pc_results_reset(&s->base.results);
    s->base.sv.sender = NULL;
    s->base.sv.rcpts = NULL;
    s->base.sv.nrcpts = 0;
    s->base.sv.rcpt = NULL;
    s->base.sv.msg = NULL;
    s->base.sv.scores = NULL;
    s->base.sv.scores_skip = 0;
}

/* The first accepted recipient's policy becomes the transaction's: its thresholds (each one it
 * gives replaces the listener's) and its allow lists, which turn the thresholds off. */
static void fix_policy(sess *s)
{
    const pc_policy *p = s->txn.cur_policy;
    s->txn.policy = p;
    if (!p)
        return;
    s->txn.scores = s->base.cfg->scores;
    if (p->set_at[PC_PSET_SCORES_TAG])
        s->txn.scores.tag = p->scores.tag;
    if (p->set_at[PC_PSET_SCORES_QUARANTINE])
        s->txn.scores.quarantine = p->scores.quarantine;
    if (p->set_at[PC_PSET_SCORES_REJECT])
        s->txn.scores.reject = p->scores.reject;
    s->base.sv.scores = &s->txn.scores;
    const char *allowed = NULL;
    if (pc_policy_addr_in(&p->allow_senders, s->txn.sender))
        allowed = "sender";
    else if (pc_cidr_match(&p->allow_networks, (const struct sockaddr *)&s->base.sv.client))
        allowed = "network";
    s->base.sv.scores_skip = allowed != NULL;
    pc_log_info(s->base.sid, "event=policy policy=%s allowed=%s tag=%g quarantine=%g reject=%g",
                p->name, allowed ? allowed : "no", s->txn.scores.tag, s->txn.scores.quarantine,
                s->txn.scores.reject);
}

/* Records the recipient just answered; an accepted one joins the filters' view. */
void ss_record_rcpt(sess *s, pc_rcpt_status st, int code, pc_action action)
{
    size_t before = s->txn.naccepted;
    if (pc_smtp_txn_record(&s->txn, st, code, action) < 0)
        pc_log_err(s->base.sid, "event=nomem where=rcpt");
    if (before == 0 && s->txn.naccepted == 1)
        fix_policy(s);
    s->base.sv.rcpts = s->txn.accepted;
    s->base.sv.nrcpts = s->txn.naccepted;
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
    int code = atoi(line);
    return code > 0 ? code : 1;
}

static void chain_cb(void *ud, const pc_verdict *v)
{
    sess *s = ud;
    s->base.run = NULL;
    pc_decision d;
    pc_decision_set(&d, v, s->base.sv.results);
    s->ops->step_done(s, &d);
}

/* Runs hook if a filter uses it; otherwise continues at once. */
void ss_run_hook(sess *s, pc_hook hook, enum step step)
{
    s->step = step;
    if (!pc_session_hook_used(&s->base, hook)) {
        pc_decision d;
        pc_decision_pass(&d);
        s->ops->step_done(s, &d);
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
        ss_up_send(s, auth ? s->auth_line : s->txn.mail_line, auth);
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
    case ST_MAIL: ss_up_send(s, s->txn.mail_line, 0); return;
    case ST_AUTH: ss_up_send(s, s->auth_line, 1); return;
    case ST_MESSAGE:
        s->txn.replay = 0;
        ss_up_send(s, s->txn.mail_line, 0);
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
    if ((s->step == ST_MAIL || s->step == ST_RCPT) && !ss_reply_class_ok(r)) {
        /* not a reply an upstream may give here: that leg is of no use any more */
        ss_drop_upstream(s);
        ss_upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
        ss_txn_reset(s);
        s->step = ST_NONE;
        ss_resume(s);
        return;
    }
    switch (s->step) {
    case ST_MAIL:
        ss_relay_reply(s, r);
        if (r->code / 100 == 2) {
            s->txn.open = 1;
            s->up_txn = 1;
            s->txn.start_ms = pc_now_ms();
        } else {
            ss_txn_reset(s);
        }
        break;
    case ST_RCPT:
        ss_relay_reply(s, r);
        ss_record_rcpt(s, r->code / 100 == 2 ? PC_RCPT_ACCEPTED : PC_RCPT_REFUSED, r->code,
                       PC_CONTINUE);
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
        const pc_smtp_rcpt *next = pc_smtp_txn_replay_next(&s->txn);
        if (next) {
            ss_up_send(s, next->line, 0);
            return;
        }
        ss_send_message(s);
        return;
    case ST_AUTH: s->ops->auth_reply(s, r); return;
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
        ss_up_send(s, auth ? s->auth_line : s->txn.mail_line, auth);
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
void ss_log_message(sess *s, pc_log_level level, const char *result, const char *detail,
                    size_t size)
{
    char to[512];
    size_t n = 0;
    to[0] = '\0';
    for (size_t i = 0; i < s->txn.naccepted && n + 4 < sizeof(to); i++) {
        char a[300];
        pc_sanitize(a, sizeof(a), s->txn.accepted[i], strlen(s->txn.accepted[i]), 1);
        int k = snprintf(to + n, sizeof(to) - n, "%s<%s>", i ? "," : "", a);
        if (k < 0 || (size_t)k >= sizeof(to) - n) {
            snprintf(to + (n < sizeof(to) - 4 ? n : sizeof(to) - 4), 4, "...");
            break;
        }
        n += (size_t)k;
    }
    char from[300], syms[512];
    pc_sanitize(from, sizeof(from), s->txn.sender, strlen(s->txn.sender), 1);
    size_t k = 0;
    syms[0] = '\0';
    for (size_t i = 0; i < s->base.results.nsymbols && k + 2 < sizeof(syms); i++) {
        int w =
            snprintf(syms + k, sizeof(syms) - k, "%s%s", i ? "," : "", s->base.results.symbols[i]);
        if (w < 0 || (size_t)w >= sizeof(syms) - k) {
            syms[k] = '\0';
            break;
        }
        k += (size_t)w;
    }
    pc_log(level, s->base.sid,
           "event=message client=%s tls=%s from=<%s> to=%s rcpts=%zu size=%zu score=%.2f "
           "symbols=%s result=%s %s duration_ms=%llu",
           s->base.client_ip, s->base.tls ? pc_conn_tls_version(s->base.c) : "no", from,
           to[0] ? to : "-", s->txn.naccepted, size, s->base.results.score, syms[0] ? syms : "-",
           result, detail, (unsigned long long)(pc_now_ms() - s->txn.start_ms));
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
    ss_log_message(s, code == 250 ? PC_LOG_INFO : PC_LOG_NOTICE,
                   code == 250 ? "delivered" : (code / 100 == 5 ? "refused-upstream" : "tempfail"),
                   detail, s->txn.msg ? pc_message_size(s->txn.msg) : 0);
    ss_txn_reset(s);
    s->step = ST_NONE;
    ss_resume(s);
}

void ss_send_message(sess *s)
{
    s->wait = W_UPSTREAM;
    pc_conn_set_timeout(s->base.c, 0);
    if (pc_smtpc_data(s->up, s->txn.msg, data_final, s) < 0)
        data_final(s, PC_SMTPC_UNAVAILABLE, NULL);
}

void ss_close_session(sess *s)
{
    if (s->phase == PH_CLOSING)
        return;
    s->phase = PH_CLOSING;
    pc_session_hook_abort(&s->base);
    if (s->quar) {
        /* The files may still be written: the client never heard 250, so it will send again. */
        pc_quar_detach(s->quar);
        s->quar = NULL;
    }
    release_upstream(s);
    ss_txn_reset(s);
    pc_session_close_hook(&s->base);
    pc_session_end(&s->base, "client=%s helo=%s tls=%s user=%s messages=%u errors=%u",
                   s->base.client_ip, s->helo[0] ? s->helo : "-",
                   s->base.tls ? pc_conn_tls_version(s->base.c) : "no", s->authed ? s->user : "-",
                   s->messages, s->errors);
    explicit_bzero(s->user, sizeof(s->user));
}

void ss_resume(sess *s)
{
    if (s->phase == PH_CLOSING)
        return;
    s->ops->resume(s);
}
