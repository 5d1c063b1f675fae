/* imap_server.c — the client-facing IMAP session (RFC 9051/3501, 2595, 4959, 2971, 7888): its life
 * (PROXY, TLS, the CONNECT hook before the greeting, timeouts, close and the CLOSE hook) and the
 * not-authenticated state, answered by the gateway itself. At most one "* BYE" per session. It
 * drives the relay (imap_server_relay.h) and hands the files below it its close and input loop as
 * ops (s->sops), so that none of them calls back into it by name.
 * Defends against: credentials before TLS (LOGINDISABLED, NO [PRIVACYREQUIRED]), STARTTLS injection
 * (buffered plaintext discarded, state reset), literal abuse (pre-login literals capped at 8 KiB,
 * no allocation sized by a claim), junk (errors counted, BAD, close at the limit). */
#include "imap/imap_server.h"
#include "imap/imap_render.h"
#include "imap/imap_server_relay.h"
#include "imap/imap_server_session.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "parse/proxy.h"
#include "parse/sanitize.h"

/* ---- replies --------------------------------------------------------------------------------- */

static int auth_allowed(const isess *s)
{
    return s->base.tls || s->base.cfg->mailbox.plaintext_auth;
}

static void caps_prelogin(isess *s, char *out, size_t outlen)
{
    snprintf(out, outlen, "IMAP4rev1 SASL-IR ID%s%s",
             s->base.cfg->tls.mode == PC_TLS_STARTTLS && !s->base.tls && s->base.l->server_tls
                 ? " STARTTLS"
                 : "",
             auth_allowed(s) ? " AUTH=PLAIN" : " LOGINDISABLED");
}

/* ---- pre-login commands ---------------------------------------------------------------------- */

static void args_reset(isess *s)
{
    if (pc_buf_used(&s->args))
        explicit_bzero(s->args.data + s->args.off, pc_buf_used(&s->args));
    pc_buf_release(&s->args);
    s->nargs = 0;
    s->args_bad = 0;
}

static void arg_begin(isess *s)
{
    if (s->nargs >= IMAP_MAX_ARGS) {
        s->args_bad = 1;
        return;
    }
    s->arg_off[s->nargs] = pc_buf_used(&s->args);
    s->arg_len[s->nargs++] = 0;
}

static void arg_add(isess *s, const char *p, size_t n)
{
    if (s->args_bad || !s->nargs)
        return;
    if (pc_buf_append(&s->args, p, n) < 0)
        s->args_bad = 1;
    else
        s->arg_len[s->nargs - 1] += n;
}

/* Splits a text segment into astrings (atoms, quoted strings); a trailing literal announcement is
 * skipped (the literal's content arrives as LITERAL_DATA). Parentheses mark the line as not
 * parsed here (only ID has them, and its arguments are not used). */
static void args_parse(isess *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && !s->args_bad) {
        char ch = p[i];
        if (ch == ' ') {
            i++;
        } else if (ch == '"') {
            arg_begin(s);
            for (i++; i < n && p[i] != '"'; i++) {
                if (p[i] == '\\' && i + 1 < n)
                    i++;
                arg_add(s, p + i, 1);
            }
            i++;
        } else if (ch == '{' || ch == '~' || ch == '\r') {
            return; /* an announcement ends the segment */
        } else if (ch == '(' || ch == ')') {
            s->args_bad = 2;
            return;
        } else {
            arg_begin(s);
            size_t st = i;
            while (i < n && p[i] != ' ' && p[i] != '(' && p[i] != ')')
                i++;
            arg_add(s, p + st, i - st);
        }
    }
}

static pc_slice arg(const isess *s, size_t i)
{
    pc_slice r = {s->args.data ? s->args.data + s->args.off + s->arg_off[i] : "", s->arg_len[i]};
    return r;
}

static void privacy_required(isess *s)
{
    is_reply(s,
             "%s NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
             "connections",
             s->tag);
    pc_log_notice(s->base.sid, "event=auth-refused reason=plaintext client=%s", s->base.client_ip);
}

/* Keeps the credentials as authzid NUL user NUL password and starts the upstream login. */
static void login_with(isess *s, pc_slice authz, pc_slice user, pc_slice pass)
{
    pc_buf_init(&s->cred, 0);
    if (user.n == 0 || user.n >= sizeof(s->user) || memchr(user.p, 0, user.n) ||
        memchr(pass.p, 0, pass.n) || pc_buf_append(&s->cred, authz.p, authz.n) < 0 ||
        pc_buf_append(&s->cred, "", 1) < 0 || pc_buf_append(&s->cred, user.p, user.n) < 0 ||
        pc_buf_append(&s->cred, "", 1) < 0 || pc_buf_append(&s->cred, pass.p, pass.n) < 0) {
        is_reply(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed", s->tag);
        pc_buf_release(&s->cred);
        is_error_count(s);
        return;
    }
    pc_sanitize(s->user, sizeof(s->user), user.p, user.n, 1);
    snprintf(s->login_tag, sizeof(s->login_tag), "%s", s->tag);
    is_login_start(s);
}

static void auth_plain(isess *s, const char *b64, size_t n)
{
    if (n == 1 && b64[0] == '*') {
        is_reply(s, "%s BAD Authentication cancelled", s->tag);
        return;
    }
    unsigned char dec[3 * 1024];
    int k = -1;
    if (n > 0 && n % 4 == 0 && n / 4 * 3 <= sizeof(dec))
        k = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    if (k > 0)
        for (size_t i = n; i > 0 && b64[i - 1] == '=' && k > 0; i--)
            k--;
    const unsigned char *z1 = k > 0 ? memchr(dec, 0, (size_t)k) : NULL;
    const unsigned char *z2 = z1 ? memchr(z1 + 1, 0, (size_t)k - (size_t)(z1 + 1 - dec)) : NULL;
    if (!z2) {
        explicit_bzero(dec, sizeof(dec));
        is_reply(s, "%s BAD Invalid SASL response", s->tag);
        is_error_count(s);
        return;
    }
    pc_slice authz = {(const char *)dec, (size_t)(z1 - dec)};
    pc_slice user = {(const char *)z1 + 1, (size_t)(z2 - z1 - 1)};
    pc_slice pass = {(const char *)z2 + 1, (size_t)k - (size_t)(z2 + 1 - dec)};
    login_with(s, authz, user, pass);
    explicit_bzero(dec, sizeof(dec));
}

static void cmd_starttls(isess *s)
{
    if (s->base.cfg->tls.mode != PC_TLS_STARTTLS || !s->base.l->server_tls || s->base.tls) {
        is_reply(s, "%s BAD STARTTLS not available", s->tag);
        is_error_count(s);
        return;
    }
    if (!pc_session_handshake_allowed(&s->base)) {
        is_reply(s, "%s NO [UNAVAILABLE] Too many TLS handshakes from your address", s->tag);
        return;
    }
    is_reply(s, "%s OK Begin TLS negotiation now", s->tag);
    s->phase = IP_TLS;
    /* The command was consumed as it was read: whatever is pending came after it. */
    if (pc_session_starttls(&s->base, "starttls-injection", 0) < 0)
        is_close(s);
}

/* A whole pre-login command has been read (arguments in s->args). */
static void command(isess *s)
{
    const char *n = s->name;
    s->commands++;
    char caps[256];
    if (strcmp(n, "CAPABILITY") == 0) {
        caps_prelogin(s, caps, sizeof(caps));
        is_reply(s, "* CAPABILITY %s", caps);
        is_reply(s, "%s OK CAPABILITY completed", s->tag);
    } else if (strcmp(n, "NOOP") == 0) {
        is_reply(s, "%s OK NOOP completed", s->tag);
    } else if (strcmp(n, "LOGOUT") == 0) {
        is_bye(s, "Logging out");
        is_reply(s, "%s OK LOGOUT completed", s->tag);
        is_close(s);
    } else if (strcmp(n, "ID") == 0) {
        is_reply(s, "* ID NIL");
        is_reply(s, "%s OK ID completed", s->tag);
    } else if (strcmp(n, "STARTTLS") == 0) {
        cmd_starttls(s);
    } else if (strcmp(n, "LOGIN") == 0) {
        if (!auth_allowed(s)) {
            privacy_required(s);
        } else if (s->args_bad || s->nargs != 2) {
            is_reply(s, "%s BAD Invalid arguments", s->tag);
            is_error_count(s);
        } else {
            pc_slice none = {"", 0};
            login_with(s, none, arg(s, 0), arg(s, 1));
        }
    } else if (strcmp(n, "AUTHENTICATE") == 0) {
        if (!auth_allowed(s)) {
            privacy_required(s);
        } else if (s->args_bad || s->nargs < 1 || s->nargs > 2) {
            is_reply(s, "%s BAD Invalid arguments", s->tag);
            is_error_count(s);
        } else if (!pc_imap_word_is(arg(s, 0), "PLAIN")) {
            is_reply(s, "%s NO Unsupported authentication mechanism", s->tag);
        } else if (s->nargs == 2) {
            pc_slice ir = arg(s, 1);
            if (ir.n == 1 && ir.p[0] == '=')
                ir.n = 0; /* RFC 4959: "=" is an empty initial response */
            auth_plain(s, ir.p, ir.n);
        } else {
            s->auth_wait = 1;
            is_reply(s, "+ ");
        }
    } else {
        is_reply(s, "%s BAD Command unknown or not valid before login", s->tag);
        is_error_count(s);
    }
}

/* Reads pre-login input through the tokenizer. */
static void prelogin_input(isess *s)
{
    while (s->phase == IP_PRE) {
        pc_imap_ev ev;
        char *buf = (char *)in_ptr(s->base.c);
        int rc = pc_imap_tok_next(&s->ctok, buf, pc_conn_pending(s->base.c), &ev);
        if (rc == PC_IMAP_EV_NEED_MORE)
            return;
        if (rc < 0) {
            if (rc == PC_IMAP_E_LITERAL_TOO_BIG && pc_imap_tok_resume(&s->ctok) == 0) {
                pc_imap_cmd_head h;
                if (s->c_first && pc_imap_cmd_split(ev.data.p, ev.data.n, &h) == PC_OK &&
                    h.tag.n < sizeof(s->tag))
                    snprintf(s->tag, sizeof(s->tag), "%.*s", (int)h.tag.n, h.tag.p);
                else if (s->c_first)
                    snprintf(s->tag, sizeof(s->tag), "*");
                explicit_bzero(buf, ev.data.n);
                pc_conn_consume(s->base.c, ev.data.n);
                is_reply(s, "%s BAD Literal too big", s->tag);
                args_reset(s);
                s->auth_wait = 0;
                s->c_first = 1;
                is_error_count(s);
                continue;
            }
            char why[80];
            pc_sanitize(why, sizeof(why), ev.data.p, ev.data.n, 0);
            pc_log_notice(s->base.sid, "event=protocol-error client=%s code=%d near=\"%s\"",
                          s->base.client_ip, rc, why);
            is_reply(s, "* BAD %s", rc == PC_IMAP_E_TOO_LONG ? "Line too long" : "Syntax error");
            is_bye(s, "Protocol error");
            is_close(s);
            return;
        }
        switch (rc) {
        case PC_IMAP_EV_TEXT:
            if (s->auth_wait) {
                arg_begin(s);
                arg_add(s, ev.data.p, ev.data.n);
            } else if (s->c_first) {
                pc_imap_cmd_head h;
                args_reset(s);
                if (pc_imap_cmd_split(ev.data.p, ev.data.n, &h) != PC_OK ||
                    h.tag.n >= sizeof(s->tag) || h.name.n >= sizeof(s->name)) {
                    snprintf(s->tag, sizeof(s->tag), "*");
                    s->name[0] = '\0';
                    s->args_bad = 1;
                } else {
                    snprintf(s->tag, sizeof(s->tag), "%.*s", (int)h.tag.n, h.tag.p);
                    for (size_t i = 0; i < h.name.n; i++)
                        s->name[i] =
                            (char)((h.name.p[i] >= 'a' && h.name.p[i] <= 'z') ? h.name.p[i] - 32
                                                                              : h.name.p[i]);
                    s->name[h.name.n] = '\0';
                    if (h.sub.n)
                        s->args_bad = 1;
                    args_parse(s, h.args.p, h.args.n);
                }
            } else {
                args_parse(s, ev.data.p, ev.data.n);
            }
            s->c_first = 0;
            break;
        case PC_IMAP_EV_LITERAL:
            arg_begin(s);
            if (ev.lit_flags & PC_IMAP_LIT_SYNC) {
                is_reply(s, "+ Ready for literal data");
                is_flush(s);
            }
            break;
        case PC_IMAP_EV_LITERAL_DATA: arg_add(s, ev.data.p, ev.data.n); break;
        default: break;
        }
        explicit_bzero(buf, ev.consumed); /* credentials may pass here */
        pc_conn_consume(s->base.c, ev.consumed);
        if (rc != PC_IMAP_EV_LINE_END)
            continue;
        s->c_first = 1;
        if (s->auth_wait) {
            s->auth_wait = 0;
            pc_slice r = s->nargs ? arg(s, 0) : (pc_slice){"", 0};
            auth_plain(s, r.p, r.n);
        } else if (!s->name[0]) {
            is_reply(s, "%s BAD Invalid command", s->tag);
            is_error_count(s);
        } else {
            command(s);
        }
        args_reset(s);
    }
}

static void process(isess *s)
{
    if (s->in_process) {
        s->again = 1;
        return;
    }
    s->in_process = 1;
    do {
        s->again = 0;
        if (s->phase == IP_PRE)
            prelogin_input(s);
        else if (s->phase == IP_RELAY)
            is_relay_client(s);
    } while (s->again && s->phase != IP_CLOSING);
    s->in_process = 0;
    if (s->phase == IP_CLOSING)
        return;
    is_flush(s);
    if (s->phase == IP_PRE)
        pc_conn_set_deadline(s->base.c, s->base.cfg->mailbox.prelogin_timeout_ms);
}

/* ---- session life ---------------------------------------------------------------------------- */

static void greet(isess *s)
{
    char caps[256];
    caps_prelogin(s, caps, sizeof(caps));
    s->phase = IP_PRE;
    is_tok_client_init(s, 0);
    is_reply(s, "* OK [CAPABILITY %s] Portcullis IMAP ready", caps);
    is_flush(s);
    pc_conn_set_deadline(s->base.c, s->base.cfg->mailbox.prelogin_timeout_ms);
    pc_conn_read_start(s->base.c);
    is_process(s);
}

/* The CONNECT hook's verdict: REJECT closes with "* BYE reason", TEMPFAIL and QUARANTINE with
 * "* BYE [UNAVAILABLE] reason" (as SMTP answers 554 / 421); anything else greets. */
static void connect_done(void *ud, const pc_verdict *v)
{
    isess *s = ud;
    s->base.run = NULL;
    if (s->phase != IP_CONNECT)
        return;
    pc_decision d;
    pc_decision_set(&d, v, s->base.sv.results);
    char line[512];
    if (pc_imap_render(&d, PC_IMAP_AT_CONNECT, line, sizeof(line)) == PC_IMAP_GO_ON) {
        greet(s);
        return;
    }
    is_bye(s, line);
    pc_log_notice(s->base.sid, "event=connect-refused client=%s action=%s reason=\"%s\"",
                  s->base.client_ip, pc_action_name(d.action),
                  pc_decision_reason(&d, "Service refused"));
    is_close(s);
}

/* Runs the CONNECT hook if a filter uses it, else greets at once. Meanwhile the client's bytes are
 * read and buffered (bounded by the conn's input limit) but not processed; each filter has its
 * own timeout. */
static void start_connect(isess *s)
{
    s->phase = IP_CONNECT;
    pc_session_auth_fetch(&s->base); /* what other gateways saw this address fail */
    if (!pc_session_connect_hook(&s->base, 0, connect_done))
        greet(s);
}

static void on_conn(pc_conn *c, pc_conn_event ev, void *ud)
{
    isess *s = ud;
    (void)c; /* s->base.c */
    switch (ev) {
    case PC_CONN_EV_READ: is_process(s); return;
    case PC_CONN_EV_TLS_DONE: {
        int implicit = pc_session_tls_done(&s->base);
        /* RFC 9051 §6.2.1: forget everything from before TLS; greet only on implicit TLS. */
        args_reset(s);
        s->auth_wait = 0;
        if (implicit) {
            start_connect(s);
            return;
        }
        s->phase = IP_PRE;
        is_tok_client_init(s, 0);
        pc_conn_set_deadline(s->base.c, s->base.cfg->mailbox.prelogin_timeout_ms);
        is_process(s);
        return;
    }
    case PC_CONN_EV_TLS_FAILED:
        pc_session_tls_failed(&s->base);
        is_close(s);
        return;
    case PC_CONN_EV_TIMEOUT:
        if (s->phase != IP_TLS) {
            is_bye(s, "Autologout; idle for too long");
            is_flush(s);
        }
        pc_session_log_timeout(&s->base, (int)s->phase);
        is_close(s);
        return;
    case PC_CONN_EV_EOF:
    case PC_CONN_EV_ERROR: is_close(s); return;
    case PC_CONN_EV_DRAIN: is_client_drained(s); return;
    case PC_CONN_EV_CONNECTED: return;
    case PC_CONN_EV_CLOSED:
        pc_buf_release(&s->rt.hold);
        pc_session_free(&s->base);
        return;
    }
}

static void close_session(isess *s)
{
    if (s->phase == IP_CLOSING)
        return;
    s->phase = IP_CLOSING;
    pc_session_hook_abort(&s->base); /* the CONNECT hook had not answered */
    is_relay_free(s);
    args_reset(s);
    if (pc_buf_used(&s->cred))
        explicit_bzero(s->cred.data + s->cred.off, pc_buf_used(&s->cred));
    pc_buf_release(&s->cred);
    s->base.sv.msg = NULL;
    pc_session_close_hook(&s->base);
    pc_session_end(&s->base,
                   "proto=imap client=%s tls=%s user=%s commands=%u fetched=%u scanned=%u "
                   "passed=%u tagged=%u withheld=%u unscanned=%u cache_hits=%u appended=%u "
                   "append_refused=%u errors=%u auth_failures=%u",
                   s->base.client_ip, s->base.tls ? pc_conn_tls_version(s->base.c) : "no",
                   s->user[0] ? s->user : "-", s->commands, s->rt.fetched, s->rt.scanned,
                   s->rt.passed, s->rt.tagged, s->rt.withheld, s->rt.unscanned + s->ap.unscanned,
                   s->rt.cache_hits, s->ap.appended, s->ap.refused, s->errors, s->auth_failures);
    explicit_bzero(s->user, sizeof(s->user));
}

static const is_session_ops session_ops = {process, close_session};

static const pc_session_proto imap_proto = {"imap", 1200, on_conn};

void pc_imap_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client)
{
    isess *s = pc_session_new(sizeof(*s), &imap_proto, l, conn, client);
    if (!s)
        return;
    s->sops = &session_ops;
    pc_buf_init(&s->uout, 0);
    pc_buf_init(&s->args, 0);
    pc_buf_init(&s->cred, 0);
    is_relay_init(s);
    pc_log_info(s->base.sid, "event=connect client=%s listener=%s proto=imap", s->base.client_ip,
                s->base.cfg->name);
    if (s->base.cfg->tls.mode == PC_TLS_IMPLICIT) {
        s->phase = IP_TLS;
        if (pc_session_tls_implicit(&s->base) < 0)
            is_close(s);
        return;
    }
    start_connect(s);
}

const pc_protocol pc_imap_protocol = {
    "imap", "* BYE [UNAVAILABLE] Too many connections, try again later", pc_imap_session_start};
