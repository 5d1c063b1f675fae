/* smtp_server.c — the client-facing SMTP session (RFC 5321, 3207, 2920, 1870, 6152, 2034, 6531,
 * 4954): its life (connect hook, greeting, TLS, the end), its input loop (command lines to the verb
 * table of smtp_cmd.c, DATA into the transaction's spool) and the message after the dot (checks,
 * Received, the MESSAGE hook, the hand-over through smtp_session.c). Defends against: STARTTLS
 * injection (buffered plaintext discarded at the handshake), SMTP smuggling (only CRLF.CRLF ends
 * DATA; bare CR/LF refused or normalised), open relay (recipient domains checked here, whatever the
 * upstream would accept), oversize input (every line, message, recipient count and error count
 * bounded), and never answers 250 to DATA unless the upstream did. */
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
#include "core/report.h"
#include "core/spool.h"
#include "net/addrtable.h"
#include "parse/proxy.h"
#include "parse/sanitize.h"
#include "quarantine/qmeta.h"
#include "quarantine/quarantine.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_reply.h"

static void process(sess *s);

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
    if (s->txn.naccepted == 1) {
        char r[300];
        pc_sanitize(r, sizeof(r), s->txn.accepted[0], strlen(s->txn.accepted[0]), 1);
        n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n\tfor <%s>", r);
    }
    n += snprintf(line + n, sizeof(line) - (size_t)n, "; %s\r\n", date);
    if (n > 0 && (size_t)n < sizeof(line))
        pc_message_prepend_raw(s->txn.msg, line, (size_t)n);
}

/* The client sent the final dot: check, filter, then hand over to the upstream. */
static void end_of_data(sess *s)
{
    unsigned f = s->txn.data.flags;
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
    } else if (s->txn.spool_err == PC_SPOOL_ENOSPC) {
        ss_reply(s, "452 4.3.1 Insufficient system storage");
        why = "spool-full";
    } else if (s->txn.spool_err) {
        ss_reply(s, "451 4.3.0 Local error in processing");
        why = "spool-error";
    } else if (s->txn.data.received >= s->base.cfg->limits.max_received) {
        ss_reply(s, "554 5.4.6 Too many hops (mail loop?)");
        why = "hops";
    }
    if (why) {
        char detail[64];
        snprintf(detail, sizeof(detail), "reason=%s", why);
        ss_log_message(s, PC_LOG_NOTICE, "refused", detail, s->txn.data.size);
        ss_txn_reset(s);
        ss_resume(s);
        return;
    }
    s->txn.msg = pc_message_new(s->txn.spool);
    if (!s->txn.msg) {
        ss_reply(s, "451 4.3.0 Local error in processing");
        ss_txn_reset(s);
        ss_resume(s);
        return;
    }
    s->txn.spool = NULL;
    add_received(s);
    s->base.sv.msg = s->txn.msg;
    ss_run_hook(s, PC_HOOK_MESSAGE, ST_MESSAGE);
}

/* The message goes on: to the upstream session, or a new one with the envelope replayed. */
static void hand_over(sess *s)
{
    s->step = ST_MESSAGE; /* what the upstream's answers continue (a replay included) */
    if (!pc_smtpc_alive(s->up)) {
        /* The upstream session was lost while the message was spooled: reconnect and replay. */
        ss_drop_upstream(s);
        pc_log_info(s->base.sid, "event=upstream action=reconnect-replay rcpts=%zu",
                    s->txn.naccepted);
        ss_open_upstream(s);
        return;
    }
    ss_send_message(s);
}

/* The quarantine has the message on disk (or could not store it). */
static void quarantined(void *ud, int rc, const char *id, const char *err)
{
    sess *s = ud;
    s->quar = NULL;
    s->wait = W_NONE;
    char detail[400];
    if (rc == 0) {
        /* Only now, with both files and the directory fsync'd, may the client hear 250. */
        ss_reply(s, "250 2.0.0 Quarantined as %s", id);
        snprintf(detail, sizeof(detail), "action=quarantine id=%s", id);
        s->messages++;
        ss_log_message(s, PC_LOG_NOTICE, "quarantined", detail, pc_message_size(s->txn.msg));
    } else {
        ss_reply(s, "451 4.3.0 Local error in processing, try again later");
        char e[256];
        pc_sanitize(e, sizeof(e), err, strlen(err), 0);
        snprintf(detail, sizeof(detail), "action=quarantine error=\"%s\"", e);
        ss_log_message(s, PC_LOG_ERR, "quarantine-failed", detail, pc_message_size(s->txn.msg));
    }
    ss_txn_reset(s);
    s->step = ST_NONE;
    ss_resume(s);
}

/* The envelope, the verdict and what the filters found, for the quarantine's metadata file. */
static int fill_meta(sess *s, const pc_decision *d, pc_qmeta *m)
{
    memset(m, 0, sizeof(*m));
    m->time = (long long)time(NULL);
    snprintf(m->listener, sizeof(m->listener), "%s", s->base.cfg->name);
    snprintf(m->client, sizeof(m->client), "%s", s->base.client_ip);
    snprintf(m->helo, sizeof(m->helo), "%s", s->helo);
    snprintf(m->from, sizeof(m->from), "%s", s->txn.sender);
    snprintf(m->action, sizeof(m->action), "%s", pc_action_name(d->action));
    m->score = s->base.results.score;
    size_t k = 0;
    for (size_t i = 0; i < s->base.results.nsymbols && k + 2 < sizeof(m->symbols); i++) {
        int w = snprintf(m->symbols + k, sizeof(m->symbols) - k, "%s%s", i ? "," : "",
                         s->base.results.symbols[i]);
        if (w < 0 || (size_t)w >= sizeof(m->symbols) - k) {
            m->symbols[k] = '\0';
            break;
        }
        k += (size_t)w;
    }
    snprintf(m->reason, sizeof(m->reason), "%s", pc_decision_reason(d, ""));
    m->size = pc_message_size(s->txn.msg);
    m->body8bit = s->txn.body8bit;
    m->smtputf8 = s->txn.smtputf8;
    for (size_t i = 0; i < s->txn.naccepted; i++)
        if (pc_qmeta_add_rcpt(m, s->txn.accepted[i]) < 0)
            return -1;
    return m->nrcpts ? 0 : -1;
}

/* A held message with a quarantine configured: stored on disk, then 250 with its ID (never before
 * the files are durable); the upstream, which has the envelope, never gets DATA (its transaction
 * is reset before the next MAIL, as after any refusal). */
static void quarantine_message(sess *s, const pc_decision *d)
{
    pc_qmeta m;
    if (fill_meta(s, d, &m) < 0 || !(s->quar = pc_quar_hold(s->base.l->loop, s->base.l->quarantine,
                                                            s->txn.msg, &m, quarantined, s))) {
        pc_qmeta_free(&m);
        quarantined(s, -1, "", "out of memory");
        return;
    }
    s->wait = W_QUARANTINE;
    pc_conn_set_timeout(s->base.c, 0);
}

static int refused_at_message(sess *s, const pc_decision *d)
{
    if (d->outcome == PC_OUTCOME_HOLD && s->base.l->quarantine) {
        quarantine_message(s, d);
        return 1;
    }
    if (!ss_verdict_stops(s, d, PC_SMTP_AT_MESSAGE))
        return 0;
    char detail[64];
    snprintf(detail, sizeof(detail), "action=%s", pc_action_name(d->action));
    if (d->outcome == PC_OUTCOME_DISCARD)
        ss_log_message(s, PC_LOG_NOTICE, "discarded-by-policy", detail,
                       pc_message_size(s->txn.msg));
    else
        ss_log_message(s, PC_LOG_NOTICE, "filtered", detail, pc_message_size(s->txn.msg));
    ss_txn_reset(s);
    s->step = ST_NONE;
    ss_resume(s);
    return 1;
}

static void write_report(sess *s)
{
    /* The thresholds are the transaction's policy's; none when its allow list let it through. */
    pc_report_cfg rc = {.authserv_id = s->base.cfg->authserv_id,
                        .drop = s->base.cfg->authres_drop,
                        .scores = s->base.sv.scores_skip ? NULL
                                  : s->base.sv.scores    ? s->base.sv.scores
                                                         : &s->base.cfg->scores};
    if (s->base.l->chain_hooks && pc_report_write(s->txn.msg, &s->base.results, &rc) < 0)
        pc_log_err(s->base.sid, "event=nomem where=report-headers");
}

static void message_after_filters(sess *s, const pc_decision *d)
{
    /* A quarantined message is kept as it would have been delivered: with the report. */
    if (d->outcome == PC_OUTCOME_HOLD && s->base.l->quarantine)
        write_report(s);
    if (refused_at_message(s, d))
        return;
    /* What the filters found, written into the message before it goes on (a listener without
     * filters has nothing to report: no header is read or written for it). */
    write_report(s);
    /* Then the last steps over the message as it will be sent (a signature, a seal). */
    if (pc_session_hook_used(&s->base, PC_HOOK_DELIVER)) {
        ss_run_hook(s, PC_HOOK_DELIVER, ST_DELIVER);
        return;
    }
    hand_over(s);
}

static void deliver_after_filters(sess *s, const pc_decision *d)
{
    /* Only a refusal stops the message here: a tag or an accept changes nothing any more. */
    if (pc_decision_refuses(d) && refused_at_message(s, d))
        return;
    hand_over(s);
}

static int spool_emit(void *ud, const char *p, size_t n)
{
    sess *s = ud;
    if (s->txn.spool_err)
        return 0;
    int rc = pc_spool_write(s->txn.spool, p, n);
    if (rc != PC_SPOOL_OK)
        s->txn.spool_err = rc;
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
    case ST_MAIL:
    case ST_RCPT:
        ss_cmd_proceed(s, d); /* the command table's next step for the command that ran it */
        if (s->wait)
            return;
        break;
    case ST_MESSAGE: message_after_filters(s, d); return;
    case ST_DELIVER: deliver_after_filters(s, d); return;
    default: break;
    }
    ss_resume(s);
}

/* ---- input ------------------------------------------------------------------------------------
 */

static void process_data(sess *s)
{
    int done = 0;
    size_t n = pc_smtp_data_feed(&s->txn.data, pc_buf_ptr(&s->base.c->in),
                                 pc_conn_pending(s->base.c), spool_emit, s, &done);
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
                          s->base.client_ip, s->txn.sender, s->txn.data.size);
        ss_close_session(s);
        return;
    case PC_CONN_EV_ERROR: ss_close_session(s); return;
    case PC_CONN_EV_CONNECTED:
    case PC_CONN_EV_DRAIN: return;
    case PC_CONN_EV_CLOSED: pc_session_free(&s->base); return;
    }
}

static const pc_session_proto smtp_proto = {"smtp", 1024, on_conn};

static void resume(sess *s)
{
    process(s);
}

static const ss_ops smtp_ops = {resume, step_done, ss_auth_done};

void pc_smtp_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client)
{
    sess *s = pc_session_new(sizeof(*s), &smtp_proto, l, conn, client);
    if (!s)
        return;
    s->ops = &smtp_ops;
    pc_log_info(s->base.sid, "event=connect client=%s listener=%s", s->base.client_ip,
                s->base.cfg->name);
    /* Where AUTH can come, what other gateways saw this address fail arrives before it does. */
    if (l->up.caps.auth[0])
        pc_session_auth_fetch(&s->base);
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
