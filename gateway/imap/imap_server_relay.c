/* imap_server_relay.c — the IMAP session from the login on: the login relayed to the upstream, then
 * both directions relayed through the literal-aware tokenizer, CAPABILITY rewritten (imap_caps.c),
 * whole messages in FETCH responses and APPEND handed to the objects it drives (imap_retrieve.h,
 * imap_append.h), which report back through the ops below. Defends against
 * framing desync (both streams tokenized, sync literals held until the upstream answers), features
 * the gateway cannot inspect (COMPRESS, STARTTLS, literal8, UNAUTHENTICATE refused and not
 * advertised) and unbounded buffering (literal contents streamed, flow control on both sides). */
#include "imap/imap_server_relay.h"
#include "imap/imap_caps.h"
#include "imap/imap_server_session.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "net/addrtable.h"
#include "parse/sanitize.h"

static void drop_upstream(isess *s)
{
    pc_imapc_free(s->opening);
    s->opening = NULL;
    pc_imapc_close_conn(s->up);
    s->up = NULL;
    pc_buf_release(&s->uout);
}

/* ---- the ops the retrieve and append objects report back through (ud: the session) ---------- */

static void op_up_send(void *ud, const void *p, size_t n)
{
    is_up_send(ud, p, n);
}

static void op_up_flush(void *ud)
{
    is_up_flush(ud);
}

static pc_conn *op_upstream(void *ud)
{
    return ((isess *)ud)->up;
}

static void op_forwarded(void *ud, size_t line_fwd)
{
    isess *s = ud;
    if (line_fwd)
        s->line_fwd = line_fwd;
    s->outstanding++;
}

static void op_refuse(void *ud, const char *reply)
{
    isess *s = ud;
    s->swallow = 1;
    s->swallow_reply = reply;
}

static void op_error_count(void *ud)
{
    is_error_count(ud);
}

static void op_close(void *ud)
{
    is_close(ud);
}

static int op_closing(void *ud)
{
    return ((isess *)ud)->phase == IP_CLOSING;
}

static void op_again(void *ud)
{
    ((isess *)ud)->again = 1;
}

static void op_process(void *ud)
{
    is_process(ud);
}

static void op_ap_resume(void *ud)
{
    isess *s = ud;
    if (s->phase == IP_CLOSING)
        return;
    is_flush(s);
    is_relay_upstream(s);
    is_process(s);
}

static void op_ap_sent(void *ud)
{
    isess *s = ud;
    if (!s->c_paused)
        s->up->want_drain = 0;
    is_process(s);
}

static const is_append_ops append_ops = {
    .up_send = op_up_send,
    .up_flush = op_up_flush,
    .upstream = op_upstream,
    .forwarded = op_forwarded,
    .refuse = op_refuse,
    .error_count = op_error_count,
    .close = op_close,
    .closing = op_closing,
    .again = op_again,
    .process = op_process,
    .resume = op_ap_resume,
    .sent = op_ap_sent,
};

static void op_out_add(void *ud, const void *p, size_t n)
{
    is_out_add(ud, p, n);
}

static void op_rt_resume(void *ud)
{
    isess *s = ud;
    if (s->phase == IP_CLOSING)
        return;
    is_relay_upstream(s);
    is_process(s);
}

static const is_retrieve_ops retrieve_ops = {
    .out_add = op_out_add,
    .up_send = op_up_send,
    .up_flush = op_up_flush,
    .forwarded = op_forwarded,
    .close = op_close,
    .again = op_again,
    .resume = op_rt_resume,
};

void is_relay_init(isess *s)
{
    is_rt_init(&s->rt, &s->base, s->user, &s->ref_serial, &retrieve_ops, s);
    is_ap_init(&s->ap, &s->base, s->user, &s->ref_serial, &append_ops, s);
}

void is_relay_free(isess *s)
{
    is_retrieve_free(&s->rt);
    is_ap_free(&s->ap);
    pc_results_reset(&s->base.results);
    drop_upstream(s);
}

/* ---- login ----------------------------------------------------------------------------------- */

static void wipe_cred(isess *s)
{
    if (pc_buf_used(&s->cred))
        explicit_bzero(s->cred.data + s->cred.off, pc_buf_used(&s->cred));
    pc_buf_release(&s->cred);
}

/* The SASL PLAIN response for the credentials, base64, into out (wiped by the caller). */
static size_t plain_b64(isess *s, char *out, size_t outlen)
{
    size_t n = pc_buf_used(&s->cred);
    if (n == 0 || (n + 2) / 3 * 4 + 1 > outlen)
        return 0;
    return (size_t)EVP_EncodeBlock((unsigned char *)out,
                                   (const unsigned char *)pc_buf_ptr(&s->cred), (int)n);
}

static int quotable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            return 0;
    return 1;
}

static void add_quoted(pc_buf *b, const char *p, size_t n)
{
    pc_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"' || p[i] == '\\')
            pc_buf_append(b, "\\", 1);
        pc_buf_append(b, p + i, 1);
    }
    pc_buf_append(b, "\"", 1);
}

static void login_failed_here(isess *s, const char *why)
{
    is_reply(s, "%s NO [UNAVAILABLE] Upstream not available, try again later", s->login_tag);
    pc_log_notice(s->base.sid, "event=upstream status=%s step=login", why);
    wipe_cred(s);
    drop_upstream(s);
    s->phase = IP_PRE;
    is_tok_client_init(s, 0);
    is_process(s);
}

/* Sends the login command, rebuilt from the credentials: AUTHENTICATE PLAIN (with SASL-IR when
 * offered) if the upstream has AUTH=PLAIN, otherwise LOGIN with quoted strings. */
static void send_login(isess *s)
{
    unsigned f = s->base.l->caps_flags;
    const char *cred = pc_buf_ptr(&s->cred);
    size_t n = pc_buf_used(&s->cred);
    const char *user = (const char *)memchr(cred, 0, n) + 1;
    const char *pass = (const char *)memchr(user, 0, n - (size_t)(user - cred)) + 1;
    size_t ulen = (size_t)(pass - user) - 1, plen = n - (size_t)(pass - cred);
    size_t zlen = (size_t)(user - cred) - 1;
    char b64[4200];
    s->login_stage = 0;
    if (f & PC_IMAPCAP_AUTHPLAIN) {
        size_t k = plain_b64(s, b64, sizeof(b64));
        if (!k) {
            login_failed_here(s, "credentials-too-long");
            return;
        }
        is_up_send(s, s->login_tag, strlen(s->login_tag));
        if (f & PC_IMAPCAP_SASLIR) {
            is_up_send(s, " AUTHENTICATE PLAIN ", 20);
            is_up_send(s, b64, k);
        } else {
            is_up_send(s, " AUTHENTICATE PLAIN", 19);
            s->login_stage = 1;
        }
        is_up_send(s, "\r\n", 2);
        explicit_bzero(b64, sizeof(b64));
    } else if (!(f & PC_IMAPCAP_LOGINDISABLED) && zlen == 0 && quotable(user, ulen) &&
               quotable(pass, plen)) {
        is_up_send(s, s->login_tag, strlen(s->login_tag));
        is_up_send(s, " LOGIN ", 7);
        add_quoted(&s->uout, user, ulen);
        is_up_send(s, " ", 1);
        add_quoted(&s->uout, pass, plen);
        is_up_send(s, "\r\n", 2);
    } else {
        login_failed_here(s, "no-usable-login-method");
        return;
    }
    s->phase = IP_LOGIN;
    if (s->login_stage == 0)
        wipe_cred(s);
    is_up_flush(s);
    pc_conn_set_timeout(s->up, s->base.cfg->upstream.reply_timeout_ms);
    pc_conn_read_start(s->up);
}

static void up_opened(void *ud, pc_imapc_status st)
{
    isess *s = ud;
    if (st != PC_IMAPC_OK) {
        login_failed_here(s, st == PC_IMAPC_PROTOCOL ? "protocol-error" : "unavailable");
        return;
    }
    s->up = pc_imapc_take(s->opening, is_up_event, s);
    s->opening = NULL;
    pc_imap_tok_cfg tc;
    pc_imap_tok_cfg_default(&tc, 1);
    tc.max_line = PC_IMAPC_MAX_LINE;
    pc_imap_tok_init(&s->utok, &tc);
    s->u_skip_end = 0;
    send_login(s);
}

void is_login_start(isess *s)
{
    /* Failures are counted per client address across sessions, not only in this one. */
    if (pc_addr_count((struct sockaddr *)&s->base.sv.client, PC_CNT_AUTHFAIL, 60) >=
        3 * s->base.cfg->mailbox.auth_failures) {
        is_reply(s, "%s NO [UNAVAILABLE] Too many failed logins from your address, try again later",
                 s->login_tag);
        pc_log_notice(s->base.sid, "event=limit limit=auth_failures_per_address client=%s",
                      s->base.client_ip);
        wipe_cred(s);
        s->phase = IP_PRE;
        is_tok_client_init(s, 0);
        is_process(s);
        return;
    }
    pc_imapc_params p;
    memset(&p, 0, sizeof(p));
    p.l = s->base.l;
    p.sid = s->base.sid;
    p.client = s->base.sv.client;
    p.local = s->base.c->local;
    p.send_id = s->base.cfg->upstream.identity == PC_IDENT_IMAP_ID;
    s->phase = IP_UPOPEN;
    pc_conn_set_timeout(s->base.c, 0);
    s->opening = pc_imapc_open(&p, up_opened, s);
    if (!s->opening)
        login_failed_here(s, "unavailable");
}

/* The upstream's tagged answer to the login (line without CRLF). */
static void login_result(isess *s, const char *p, size_t n, const pc_imap_resp_head *h)
{
    if (!is_caps_line(s, p, n, h)) {
        pc_buf_append(&s->base.out, p, n);
        pc_buf_append(&s->base.out, "\r\n", 2);
    }
    wipe_cred(s);
    if (h->status == PC_IMAP_ST_OK) {
        s->phase = IP_RELAY;
        s->base.sv.user = s->user;
        is_tok_client_init(s, 1);
        pc_conn_set_timeout(s->up, 0);
        pc_log_info(s->base.sid, "event=login client=%s user=%s result=ok", s->base.client_ip,
                    s->user);
        s->again = 1;
        return;
    }
    pc_log_notice(s->base.sid, "event=login client=%s user=%s result=failed", s->base.client_ip,
                  s->user);
    pc_session_auth_failed(&s->base);
    s->user[0] = '\0';
    drop_upstream(s);
    s->phase = IP_PRE;
    is_tok_client_init(s, 0);
    if (++s->auth_failures >= s->base.cfg->mailbox.auth_failures) {
        is_bye(s, "Too many authentication failures");
        pc_log_notice(s->base.sid, "event=limit limit=auth_failures client=%s", s->base.client_ip);
        is_close(s);
    }
}

/* ---- upstream to client ---------------------------------------------------------------------- */

/* The first TEXT of a line without literals is the whole line: status and CAPABILITY responses
 * are handled here. Returns 1 when the line was taken care of (consumed, LINE_END to be dropped),
 * -1 when the session left the relay (the caller stops). */
static int line_head(isess *s, const pc_imap_ev *ev)
{
    pc_imap_resp_head h;
    if (pc_imap_resp_split(ev->data.p, ev->data.n, &h) != PC_OK)
        return 0;
    if (h.kind == PC_IMAP_RESP_CONTINUE) {
        if (s->phase == IP_LOGIN) {
            char b64[4200];
            size_t k = s->login_stage == 1 ? plain_b64(s, b64, sizeof(b64)) : 0;
            is_up_send(s, b64, k);
            is_up_send(s, "\r\n", 2); /* an empty line (or "*") ends anything unexpected */
            explicit_bzero(b64, sizeof(b64));
            s->login_stage = 0;
            wipe_cred(s);
            is_up_flush(s);
            pc_conn_consume(s->up, ev->consumed);
            return 1;
        }
        if (is_ap_upstream_line(&s->ap, &h)) {
            pc_conn_consume(s->up, ev->consumed);
            return 1;
        }
        s->sync_wait = 0; /* the client goes on with its literal (or IDLE) */
        s->again = 1;
        return 0;
    }
    if (h.kind == PC_IMAP_RESP_UNTAGGED && h.status == PC_IMAP_ST_BYE) {
        if (s->phase == IP_LOGIN) {
            /* The upstream leaves during the login: the client's session is not over (the login
             * gets NO [UNAVAILABLE] when the connection closes); its BYE is not the client's. */
            pc_log_info(s->base.sid, "event=upstream-bye step=login");
            s->u_skip_end = 1;
            pc_conn_consume(s->up, ev->consumed);
            return 1;
        }
        s->bye_sent = 1; /* relayed: the only BYE the client gets */
    }
    if (s->phase == IP_RELAY && is_pf_line(&s->rt, ev->data.p, ev->data.n, &h)) {
        s->u_skip_end = 1;
        pc_conn_consume(s->up, ev->consumed);
        return 1;
    }
    if (h.kind == PC_IMAP_RESP_TAGGED && s->phase == IP_RELAY) {
        if (s->outstanding)
            s->outstanding--;
        is_ap_upstream_line(&s->ap, &h);
    }
    if (h.kind == PC_IMAP_RESP_TAGGED) {
        if (s->phase == IP_LOGIN && h.tag.n == strlen(s->login_tag) &&
            memcmp(h.tag.p, s->login_tag, h.tag.n) == 0) {
            s->u_skip_end = 1;
            login_result(s, ev->data.p, ev->data.n, &h);
            if (s->phase != IP_RELAY)
                return -1;
            pc_conn_consume(s->up, ev->consumed);
            return 1;
        }
        if (s->sync_wait) {
            /* Refused instead of "+": the client will not send that literal. */
            s->sync_wait = 0;
            is_tok_client_init(s, 1);
            s->line_fwd = 0;
            s->again = 1;
        }
    }
    if (is_caps_line(s, ev->data.p, ev->data.n, &h)) {
        s->u_skip_end = 1;
        pc_conn_consume(s->up, ev->consumed);
        return 1;
    }
    return 0;
}

static void up_text(isess *s, const pc_imap_ev *ev)
{
    const char *p = ev->data.p;
    size_t n = ev->data.n;
    int ann = n >= 2 && p[n - 1] == '\n';
    if (ev->first && is_scannable(&s->rt) && s->phase == IP_RELAY &&
        is_rt_fetch_begin(&s->rt, p, n))
        s->u_own = ann && is_pf_own_line(&s->rt, p, n);
    int depth0 = s->rt.u_pdepth;
    is_pf_text(&s->rt, p, n);
    if (!ann) {
        if (!s->u_own)
            is_fetch_seg_out(&s->rt, p, n, depth0);
        return;
    }
    size_t k = n;
    while (k > 0 && p[k - 1] != '{')
        k--;
    if (k > 1 && p[k - 2] == '~')
        k--;
    if (k == 0 || n - (k - 1) > sizeof(s->ann)) {
        if (!s->u_own)
            is_fetch_seg_out(&s->rt, p, n, depth0);
        s->ann_len = 0;
        s->u_kind = PC_IMAP_ITEM_NONE;
        return;
    }
    k--;
    s->ann_len = n - k;
    memcpy(s->ann, p + k, s->ann_len);
    s->u_kind = is_rt_item(&s->rt, p, k);
    if (s->u_own)
        return;
    /* Held until the verdict: an RFC822.SIZE in it must describe what is served. */
    if (s->rt.u_fetch && s->u_kind == PC_IMAP_ITEM_MESSAGE && is_rt_hold(&s->rt, p, k, depth0))
        return;
    is_fetch_seg_out(&s->rt, p, k, depth0);
}

static void up_closed(isess *s);

void is_relay_upstream(isess *s)
{
    while (s->up && s->rt.wait == IW_NONE && !s->u_paused && s->ap.st != AP_CHAIN &&
           (s->phase == IP_LOGIN || s->phase == IP_RELAY)) {
        pc_imap_ev ev;
        int rc = pc_imap_tok_next(&s->utok, in_ptr(s->up), pc_conn_pending(s->up), &ev);
        if (rc == PC_IMAP_EV_NEED_MORE)
            break;
        if (rc < 0) {
            char near[80];
            pc_sanitize(near, sizeof(near), ev.data.p, ev.data.n, 0);
            pc_log_notice(s->base.sid, "event=upstream-protocol-error code=%d near=\"%s\"", rc,
                          near);
            is_bye(s, "Upstream protocol error");
            is_close(s);
            return;
        }
        switch (rc) {
        case PC_IMAP_EV_TEXT:
            if (ev.first) {
                is_rt_line_end(&s->rt);
                s->u_own = 0;
                s->u_skip_end = 0;
                if (ev.data.n < 2 || ev.data.p[ev.data.n - 1] != '\n') {
                    int r = line_head(s, &ev);
                    if (r < 0)
                        return;
                    if (r > 0)
                        continue;
                }
            }
            up_text(s, &ev);
            break;
        case PC_IMAP_EV_LITERAL:
            if (s->rt.u_fetch && ev.depth == 1 && s->u_kind == PC_IMAP_ITEM_MESSAGE &&
                ev.lit_size > 0 && s->ann_len) {
                is_scan_begin(&s->rt, &ev, s->u_own, s->ann, s->ann_len);
                s->ann_len = 0;
                break;
            }
            is_hold_release(&s->rt); /* a message literal not scanned (nested, empty) */
            if (s->u_own) {
                is_scan_drop(&s->rt, &ev); /* the gateway's own response: dropped */
            } else if (s->rt.u_fetch && ev.depth == 1 && s->u_kind == PC_IMAP_ITEM_PART &&
                       s->ann_len && is_pf_part_literal(&s->rt, &ev)) {
                is_scan_drop(&s->rt, &ev); /* replaced by a notice part */
            } else {
                is_out_add(s, s->ann, s->ann_len);
            }
            s->ann_len = 0;
            break;
        case PC_IMAP_EV_LITERAL_DATA:
            if (!s->rt.scan) {
                if (!s->u_own)
                    is_out_add(s, ev.data.p, ev.data.n);
            } else if (is_scan_data(&s->rt, &ev)) {
                pc_conn_consume(s->up, ev.consumed);
                is_scan_done(&s->rt);
                continue;
            }
            break;
        case PC_IMAP_EV_LINE_END:
            if (!s->u_skip_end && !s->u_own)
                is_out_add(s, ev.data.p, ev.data.n);
            s->u_skip_end = 0;
            s->u_own = 0;
            is_rt_line_end(&s->rt);
            break;
        default: break;
        }
        pc_conn_consume(s->up, ev.consumed);
        if (s->base.c->wpending > IMAP_HIGH_WATER) {
            s->u_paused = 1;
            s->base.c->want_drain = 1;
            pc_conn_read_stop(s->up);
        }
    }
    if (s->phase == IP_CLOSING)
        return;
    is_flush(s);
    /* The upstream closed: once nothing it sent waits any more (a verdict, the pump, a full
     * client queue, the message hook), the session ends. */
    if (s->up_eof && s->phase == IP_RELAY && s->rt.wait == IW_NONE && !s->u_paused &&
        s->ap.st != AP_CHAIN)
        up_closed(s);
}

/* The upstream is gone and everything it sent has been relayed (or cannot be). */
static void up_closed(isess *s)
{
    /* A line of our own only between two of the upstream's: inside a literal or a line it would
     * become part of what the client parses. After the upstream's own BYE (LOGOUT, shutdown),
     * none (is_bye). */
    if (!s->logout && pc_imap_tok_between_lines(&s->utok))
        is_bye(s, "Upstream connection lost");
    pc_log_info(s->base.sid, "event=upstream-closed logout=%d bye=%d", s->logout, s->bye_sent);
    is_close(s);
}

void is_client_drained(isess *s)
{
    if (s->phase == IP_CLOSING)
        return;
    if (s->rt.wait == IW_PUMP) {
        is_pump(&s->rt);
        if (s->rt.wait != IW_NONE)
            return;
    }
    s->base.c->want_drain = 0;
    if (s->u_paused && s->up) {
        s->u_paused = 0;
        pc_conn_read_start(s->up);
    }
    is_relay_upstream(s);
    is_process(s);
}

void is_up_event(pc_conn *c, pc_conn_event ev, void *ud)
{
    isess *s = ud;
    (void)c;
    switch (ev) {
    case PC_CONN_EV_READ:
        is_relay_upstream(s);
        if (s->phase == IP_PRE || s->phase == IP_RELAY)
            is_process(s);
        return;
    case PC_CONN_EV_DRAIN:
        if (s->ap.st == AP_SEND)
            is_ap_pump(&s->ap);
        if (s->c_paused && s->ap.st != AP_SEND) {
            s->c_paused = 0;
            s->up->want_drain = 0;
            pc_conn_read_start(s->base.c);
            is_process(s);
        }
        return;
    case PC_CONN_EV_EOF:
        if (s->phase == IP_RELAY) {
            /* What the upstream sent before it left (a FETCH response held for the retrieve
             * hook, its BYE) is relayed first: is_relay_upstream() ends the session when it has
             * nothing left to relay. */
            s->up_eof = 1;
            is_relay_upstream(s);
            return;
        }
        /* fall through */
    case PC_CONN_EV_ERROR:
    case PC_CONN_EV_TIMEOUT:
        is_relay_upstream(s);
        if (s->phase == IP_CLOSING)
            return;
        if (s->phase == IP_LOGIN) {
            login_failed_here(s, "lost");
            return;
        }
        up_closed(s);
        return;
    default: return;
    }
}

/* ---- client to upstream ---------------------------------------------------------------------- */

/* Commands answered by the gateway after login instead of being relayed. */
static const char *intercepted(pc_slice name)
{
    if (pc_imap_word_is(name, "STARTTLS"))
        return "BAD TLS is already handled by the gateway";
    if (pc_imap_word_is(name, "COMPRESS"))
        return "NO [CANNOT] Compression is not available";
    if (pc_imap_word_is(name, "UNAUTHENTICATE"))
        return "BAD Command not available";
    if (pc_imap_word_is(name, "LOGIN") || pc_imap_word_is(name, "AUTHENTICATE"))
        return "BAD Already logged in";
    return NULL;
}

static void set_tag(isess *s, const pc_imap_ev *ev)
{
    pc_imap_cmd_head h;
    if (pc_imap_cmd_split(ev->data.p, ev->data.n, &h) == PC_OK && h.tag.n < sizeof(s->tag))
        snprintf(s->tag, sizeof(s->tag), "%.*s", (int)h.tag.n, h.tag.p);
    else
        snprintf(s->tag, sizeof(s->tag), "*");
}

/* The client waits: a held APPEND or a pre-scanned FETCH is in progress. */
static int client_blocked(const isess *s)
{
    return s->ap.st >= AP_READY || (s->rt.pf != PF_NONE && s->c_first);
}

/* The pre-scan waits for every earlier command's answer, an APPEND, a command's end. */
static int pf_blocked(const isess *s)
{
    return s->outstanding || s->ap.st != AP_NONE || !s->c_first;
}

void is_relay_client(isess *s)
{
    if (s->phase == IP_RELAY && s->ap.st == AP_READY)
        is_ap_try_start(&s->ap, s->rt.wait != IW_NONE);
    if (s->phase == IP_RELAY && s->rt.pf == PF_HELD)
        is_pf_try_start(&s->rt, pf_blocked(s));
    while (s->phase == IP_RELAY && s->up && !s->sync_wait && !s->c_paused && !client_blocked(s)) {
        /* At a command boundary, a client far enough ahead of its answers waits: too many
         * commands in flight (each tagged answer lets one more in), or answers it does not read
         * (their write queue drains first: DRAIN resumes, is_client_drained). */
        if (s->c_first && s->base.c->wpending > IMAP_CHUNK) {
            s->base.c->want_drain = 1;
            break;
        }
        if (s->c_first && s->outstanding >= IMAP_PIPELINE_MAX)
            break;
        pc_imap_ev ev;
        int rc = pc_imap_tok_next(&s->ctok, in_ptr(s->base.c), pc_conn_pending(s->base.c), &ev);
        if (rc == PC_IMAP_EV_NEED_MORE)
            break;
        if (rc < 0) {
            if (s->c_first)
                set_tag(s, &ev);
            if (rc == PC_IMAP_E_LITERAL_TOO_BIG && s->line_fwd == 0 &&
                pc_imap_tok_resume(&s->ctok) == 0) {
                pc_conn_consume(s->base.c, ev.data.n);
                is_reply(s, "%s %s", s->tag, "NO [TOOBIG] Literal too big");
                s->c_first = 1;
                s->swallow = 0;
                is_ap_free(&s->ap);
                is_error_count(s);
                continue;
            }
            char near[80];
            pc_sanitize(near, sizeof(near), ev.data.p, ev.data.n, 0);
            pc_log_notice(s->base.sid, "event=protocol-error client=%s code=%d near=\"%s\"",
                          s->base.client_ip, rc, near);
            if (rc == PC_IMAP_E_LITERAL_TOO_BIG && (ev.lit_flags & PC_IMAP_LIT_NONSYNC) &&
                s->line_fwd == 0) /* RFC 7888 section 4: its bytes follow, unframeable */
                is_reply(s, "%s BAD [TOOBIG] Non-synchronizing literal too big", s->tag);
            is_bye(s, "Protocol error");
            is_close(s);
            return;
        }
        if (s->ap.st != AP_NONE) {
            if (rc == PC_IMAP_EV_LINE_END) {
                s->c_first = 1;
                s->line_fwd = 0;
            }
            int r = is_ap_event(&s->ap, rc, &ev);
            if (r < 0)
                return;
            if (r > 0) {
                pc_conn_consume(s->base.c, ev.consumed);
                continue;
            }
        }
        switch (rc) {
        case PC_IMAP_EV_TEXT:
            if (s->c_first) {
                pc_imap_cmd_head h;
                set_tag(s, &ev);
                s->swallow = 0;
                s->c_first = 0;
                s->commands++;
                if (pc_imap_cmd_split(ev.data.p, ev.data.n, &h) == PC_OK) {
                    s->swallow_reply = intercepted(h.name);
                    s->swallow = s->swallow_reply != NULL;
                    if (pc_imap_word_is(h.name, "LOGOUT"))
                        s->logout = 1;
                    if (!s->swallow && is_ap_wanted(&s->ap, &h)) {
                        is_ap_begin(&s->ap, s->tag, &ev);
                        break;
                    }
                    if (!s->swallow && is_pf_command(&s->rt, s->tag, &ev, &h))
                        break;
                    if (!s->swallow) {
                        is_sel_command(&s->rt.sel, &h);
                        s->outstanding++;
                    }
                }
            }
            if (!s->swallow) {
                is_up_send(s, ev.data.p, ev.data.n);
                s->line_fwd += ev.data.n;
            }
            break;
        case PC_IMAP_EV_LITERAL:
            if (s->swallow && (ev.lit_flags & PC_IMAP_LIT_SYNC)) {
                /* Answered now: the client will not send the literal. */
                is_reply(s, "%s %s", s->tag, s->swallow_reply);
                is_tok_client_init(s, 1);
                s->swallow = 0;
                continue;
            }
            if (!s->swallow && (ev.lit_flags & PC_IMAP_LIT_SYNC))
                s->sync_wait = 1;
            break;
        case PC_IMAP_EV_LITERAL_DATA:
            if (!s->swallow)
                is_up_send(s, ev.data.p, ev.data.n);
            break;
        case PC_IMAP_EV_LINE_END:
            if (s->swallow)
                is_reply(s, "%s %s", s->tag, s->swallow_reply);
            else if (s->rt.pf == PF_HELD)
                is_pf_command_add(&s->rt, ev.data.p, ev.data.n);
            else
                is_up_send(s, ev.data.p, ev.data.n);
            s->swallow = 0;
            s->c_first = 1;
            s->line_fwd = 0;
            break;
        default: break;
        }
        pc_conn_consume(s->base.c, ev.consumed);
        if (pc_buf_used(&s->uout) >= IMAP_CHUNK)
            is_up_flush(s);
        if (s->up->wpending > IMAP_HIGH_WATER) {
            s->c_paused = 1;
            s->up->want_drain = 1;
            pc_conn_read_stop(s->base.c);
        }
    }
    is_up_flush(s);
    if (s->phase == IP_RELAY && s->ap.st == AP_READY)
        is_ap_try_start(&s->ap, s->rt.wait != IW_NONE);
    if (s->phase == IP_RELAY && s->rt.pf == PF_HELD)
        is_pf_try_start(&s->rt, pf_blocked(s));
    if (s->phase == IP_RELAY)
        pc_conn_set_deadline(s->base.c, s->base.cfg->mailbox.idle_timeout_ms);
}
