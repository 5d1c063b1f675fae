/* smtp_cmd.c — the SMTP commands of the client-facing session: HELO/EHLO (what is advertised is
 * the gateway's support intersected with the upstream's EHLO), MAIL and RCPT (strict parsing, only
 * validated parameters go upstream, relay control by the gateway itself), DATA, STARTTLS (buffered
 * plaintext discarded), AUTH relayed to the upstream (never before TLS by default, never logged,
 * wiped after use), RSET, and the verb table. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "net/addrtable.h"
#include "parse/sanitize.h"
#include "policies/policy.h"
#include "smtp/smtp_session.h"

/* ---- AUTH -------------------------------------------------------------------------------------
 */

/* Learns the user name from the first SASL response (for logs, filters and XCLIENT LOGIN): PLAIN
 * carries authzid NUL authcid NUL password, LOGIN's first response is the name alone. Nothing else
 * of the exchange is decoded, and the decoded copy is wiped. */
static void auth_username(sess *s, const char *b64, size_t n)
{
    unsigned char out[600];
    if (!(s->auth_plain || s->auth_login) || n == 0 || n > 790 || n % 4 != 0)
        return;
    int k = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (k <= 0)
        return;
    /* EVP_DecodeBlock counts the bytes the padding stands for: take them off. */
    for (size_t i = n; i > 0 && b64[i - 1] == '=' && k > 0; i--)
        k--;
    const unsigned char *user = out, *end = out + k;
    if (s->auth_plain) {
        const unsigned char *nul = memchr(out, 0, (size_t)k);
        if (!nul) {
            explicit_bzero(out, sizeof(out));
            return;
        }
        user = nul + 1;
        const unsigned char *nul2 = memchr(user, 0, (size_t)(out + k - user));
        end = nul2 ? nul2 : user;
    }
    pc_sanitize(s->user, sizeof(s->user), (const char *)user, (size_t)(end - user), 0);
    explicit_bzero(out, sizeof(out));
}

void ss_auth_done(sess *s, const pc_smtp_reply *r)
{
    explicit_bzero(s->auth_line, sizeof(s->auth_line));
    if (r->code == 334) {
        ss_relay_reply(s, r);
        s->phase = PH_AUTH;
        s->step = ST_NONE;
        ss_resume(s);
        return;
    }
    s->phase = PH_CMD;
    if (r->code == 235) {
        s->authed = 1;
        if (!s->user[0])
            snprintf(s->user, sizeof(s->user), "%s", "(unknown)");
        s->base.sv.user = s->user;
        ss_relay_reply(s, r);
        pc_log_info(s->base.sid, "event=auth result=ok user=%s client=%s", s->user,
                    s->base.client_ip);
    } else if (ss_reply_class_ok(r) && s->auth_cancelled) {
        /* The client gave up the exchange itself ("*"): not a failed attempt. */
        ss_relay_reply(s, r);
        s->user[0] = '\0';
        pc_log_info(s->base.sid, "event=auth result=cancelled client=%s", s->base.client_ip);
    } else if (ss_reply_class_ok(r)) {
        ss_relay_reply(s, r);
        s->user[0] = '\0';
        s->auth_failures++;
        pc_session_auth_failed(&s->base);
        pc_log_notice(s->base.sid, "event=auth result=failed client=%s failures=%u",
                      s->base.client_ip, s->auth_failures);
        if (s->auth_failures >= s->base.cfg->limits.auth_failures) {
            ss_reply(s, "421 4.7.0 %s Error: too many failed authentications",
                     s->base.cfg->hostname);
            ss_close_session(s);
        }
    } else {
        ss_drop_upstream(s);
        ss_upstream_failed_reply(s, PC_SMTPC_PROTOCOL);
    }
    s->step = ST_NONE;
    ss_resume(s);
}

/* A SASL response line from the client (PH_AUTH). */
void ss_auth_continue(sess *s, char *line, size_t len)
{
    if (len + 1 > sizeof(s->auth_line)) {
        explicit_bzero(line, len);
        ss_reply(s, "500 5.5.6 Authentication exchange line is too long");
        s->phase = PH_CMD;
        ss_drop_upstream(s); /* the upstream is mid-exchange: start afresh */
        return;
    }
    s->auth_cancelled = len == 1 && line[0] == '*';
    if (!s->auth_cancelled && s->auth_stage == 0)
        auth_username(s, line, len);
    s->auth_stage++;
    memcpy(s->auth_line, line, len);
    s->auth_line[len] = '\0';
    explicit_bzero(line, len);
    s->step = ST_AUTH;
    if (!s->up || !pc_smtpc_alive(s->up)) {
        explicit_bzero(s->auth_line, sizeof(s->auth_line));
        s->phase = PH_CMD;
        ss_upstream_failed_reply(s, PC_SMTPC_UNAVAILABLE);
        return;
    }
    ss_up_send(s, s->auth_line, 1);
}

/* ---- commands ---------------------------------------------------------------------------------
 */

/* The SIZE announced in EHLO, and the limit MAIL's SIZE= and the message itself (RFC 1870 §3: its
 * bytes with CRLF line ends, before dot-stuffing) are held to: the gateway's own limit, or the
 * upstream's SIZE less the headroom for the headers the gateway adds, whichever is smaller, so that
 * a message that fits the announcement also fits the upstream. */
static size_t announced_size(sess *s)
{
    size_t lim = s->base.cfg->limits.message_size, up = s->base.l->up.caps.size;
    size_t room = s->base.cfg->limits.size_headroom;
    if (up) {
        up = up > room ? up - room : 1;
        if (up < lim)
            lim = up;
    }
    return lim;
}

static unsigned upcaps(sess *s)
{
    /* Until a probe succeeded, assume the common set. */
    if (!s->base.l->up.caps.known)
        return PC_CAP_8BITMIME | PC_CAP_PIPELINING | PC_CAP_ENHANCED;
    return s->base.l->up.caps.flags;
}

static int auth_offered(sess *s)
{
    return (upcaps(s) & PC_CAP_AUTH) && (s->base.tls || s->base.cfg->plaintext_auth);
}

static int cmd_helo(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len)
{
    (void)line;
    (void)len;
    if (pc_smtp_helo_valid(cmd->arg.p, cmd->arg.n) < 0) {
        ss_reply(s, "501 5.5.4 Invalid domain name");
        ss_error_count(s);
        return 1;
    }
    ss_txn_reset(s);
    size_t n = cmd->arg.n < sizeof(s->helo) - 1 ? cmd->arg.n : sizeof(s->helo) - 1;
    memcpy(s->helo, cmd->arg.p, n);
    s->helo[n] = '\0';
    s->base.sv.helo = s->helo;
    s->esmtp = cmd->verb == PC_SMTP_EHLO;
    return 0;
}

static void helo_proceed(sess *s, const pc_decision *d)
{
    s->step = ST_NONE;
    if (ss_verdict_stops(s, d, PC_SMTP_AT_COMMAND)) {
        s->helo[0] = '\0';
        s->base.sv.helo = NULL;
        return;
    }
    const char *h = s->base.cfg->hostname;
    if (!s->esmtp) {
        ss_reply(s, "250 %s", h);
        return;
    }
    unsigned caps = upcaps(s);
    ss_reply(s, "250-%s", h);
    ss_reply(s, "250-PIPELINING");
    ss_reply(s, "250-SIZE %zu", announced_size(s));
    if (caps & PC_CAP_8BITMIME)
        ss_reply(s, "250-8BITMIME");
    if (caps & PC_CAP_SMTPUTF8)
        ss_reply(s, "250-SMTPUTF8");
    if (caps & PC_CAP_DSN)
        ss_reply(s, "250-DSN");
    if (s->base.cfg->tls.mode == PC_TLS_STARTTLS && !s->base.tls && s->base.l->server_tls)
        ss_reply(s, "250-STARTTLS");
    if (auth_offered(s) && !s->authed) {
        ss_reply(s, "250-AUTH %s", s->base.l->up.caps.auth);
        pc_session_auth_fetch(&s->base); /* what other gateways saw this address fail */
    }
    ss_reply(s, "250 ENHANCEDSTATUSCODES");
}

static int tls_required_refused(sess *s)
{
    if (s->base.cfg->require_tls && !s->base.tls) {
        ss_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
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

/* RFC 6531 §3.4: an address with 8-bit bytes needs the SMTPUTF8 parameter of its transaction. */
static int has_8bit(pc_slice p)
{
    for (size_t i = 0; i < p.n; i++)
        if ((unsigned char)p.p[i] >= 0x80)
            return 1;
    return 0;
}

/* MAIL: the verb table has checked that HELO came first and no transaction is open. UTF-8 is parsed
 * in the address whatever the client or the upstream offers; whether it may be there is decided
 * below from this command's own SMTPUTF8 parameter. */
static int cmd_mail(sess *s, const pc_smtp_cmd *c, char *line, size_t len)
{
    (void)line;
    (void)len;
    if (tls_required_refused(s))
        return 1;
    const pc_smtp_cmd cmd = *c;
    pc_smtp_err e = s->parse_err;
    if (e == PC_SMTP_E_ADDRESS) {
        ss_reply(s, "501 5.1.7 Bad sender address syntax");
        ss_error_count(s);
        return 1;
    }
    if (e == PC_SMTP_E_PARAMS) {
        ss_reply(s, "555 5.5.4 Unsupported or malformed parameters");
        ss_error_count(s);
        return 1;
    }
    if (e != PC_SMTP_E_OK) {
        ss_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        ss_error_count(s);
        return 1;
    }
    unsigned caps = upcaps(s);
    s->txn.body8bit = s->txn.smtputf8 = 0; /* this MAIL's parameters only, not a refused one's */
    for (size_t i = 0; i < cmd.nparams; i++) {
        const pc_smtp_param *pm = &cmd.params[i];
        if (keyis(pm, "SIZE") && pm->value.n) {
            char tmp[24];
            if (pm->value.n >= sizeof(tmp)) {
                ss_reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return 1;
            }
            memcpy(tmp, pm->value.p, pm->value.n);
            tmp[pm->value.n] = '\0';
            char *end;
            unsigned long long v = strtoull(tmp, &end, 10);
            if (*end || tmp[0] < '0' || tmp[0] > '9') {
                ss_reply(s, "501 5.5.4 Bad SIZE value");
                ss_error_count(s);
                return 1;
            }
            if (v > announced_size(s)) {
                ss_reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return 1;
            }
            s->txn.size_said = v; /* a recipient's policy may have a smaller limit (RCPT) */
        } else if (keyis(pm, "BODY") && (valis(pm, "8BITMIME") || valis(pm, "7BIT"))) {
            if (valis(pm, "8BITMIME") && !(caps & PC_CAP_8BITMIME)) {
                ss_reply(s, "555 5.5.4 BODY=8BITMIME not supported");
                return 1;
            }
            s->txn.body8bit = valis(pm, "8BITMIME");
        } else if (keyis(pm, "SMTPUTF8") && pm->value.n == 0 && (caps & PC_CAP_SMTPUTF8)) {
            s->txn.smtputf8 = 1;
        } else if ((keyis(pm, "RET") || keyis(pm, "ENVID")) && (caps & PC_CAP_DSN)) {
            /* relayed as given (validated printable by the parser) */
        } else if (keyis(pm, "AUTH") && s->authed) {
            /* relayed */
        } else {
            ss_reply(s, "555 5.5.4 Unsupported parameter %.*s",
                     (int)(pm->key.n > 40 ? 40 : pm->key.n), pm->key.p);
            ss_error_count(s);
            return 1;
        }
    }
    if (!s->txn.smtputf8 && has_8bit(cmd.path)) {
        s->txn.body8bit = 0;
        ss_reply(s, "553 5.6.7 Non-ASCII sender address requires SMTPUTF8");
        return 1;
    }
    if (copy_path(s->txn.sender, sizeof(s->txn.sender), cmd.path) < 0 ||
        build_line(s, s->txn.mail_line, sizeof(s->txn.mail_line), "MAIL FROM", s->txn.sender,
                   &cmd) < 0) {
        ss_reply(s, "501 5.1.7 Sender address too long");
        return 1;
    }
    s->base.sv.sender = s->txn.sender;
    return 0;
}

static void mail_proceed(sess *s, const pc_decision *d)
{
    if (ss_verdict_stops(s, d, PC_SMTP_AT_COMMAND)) {
        ss_txn_reset(s);
        s->step = ST_NONE;
        return;
    }
    ss_up_start(s);
}

static int domain_accepted(sess *s, const char *dom)
{
    for (size_t i = 0; i < s->base.cfg->accepted_domains.n; i++)
        if (strcasecmp(s->base.cfg->accepted_domains.v[i], dom) == 0)
            return 1;
    return 0;
}

/* The recipient's policy (policies/), before the RCPT hook. A transaction has one policy, its
 * first accepted recipient's: a recipient under another is sent back for a new transaction (452
 * 4.5.3, RFC 5321 §4.5.3.1.10, which every client retries). Then the policy's own refusals: a
 * denied sender, and a SIZE= larger than its message_size (RFC 1870 §6.1 allows 552 at RCPT).
 * Returns 1 when the recipient was answered here. */
static int rcpt_policy(sess *s)
{
    const pc_policy_set *set = s->base.l->policies;
    s->txn.cur_policy = NULL;
    if (!set)
        return 0;
    pc_policy_case pc = {.listener = s->base.cfg->name,
                         .direction =
                             s->authed || s->base.sv.trusted ? PC_DIR_SUBMISSION : PC_DIR_INBOUND,
                         .sender = s->txn.sender,
                         .rcpt = s->txn.cur_rcpt,
                         .user = s->authed ? s->user : NULL,
                         .ip = (const struct sockaddr *)&s->base.sv.client};
    const pc_policy *p = pc_policy_match(set, &pc);
    const char *name = p ? p->name : "(none)";
    char r[300], f[300];
    pc_sanitize(r, sizeof(r), s->txn.cur_rcpt, strlen(s->txn.cur_rcpt), 1);
    pc_sanitize(f, sizeof(f), s->txn.sender, strlen(s->txn.sender), 1);
    if (s->txn.naccepted && p != s->txn.policy) {
        ss_reply(s,
                 "452 4.5.3 <%s>: another policy applies to this recipient, send it in a new "
                 "transaction",
                 r);
        pc_log_info(s->base.sid, "event=policy-split to=<%s> policy=%s transaction_policy=%s", r,
                    name, s->txn.policy ? s->txn.policy->name : "(none)");
        return 1;
    }
    if (p && pc_policy_addr_in(&p->deny_senders, s->txn.sender)) {
        ss_reply(s, "550 5.7.1 <%s>: Sender refused by policy", r);
        pc_log_notice(s->base.sid, "event=policy-deny client=%s from=<%s> to=<%s> policy=%s",
                      s->base.client_ip, f, r, name);
        return 1;
    }
    if (p && p->message_size && s->txn.size_said > p->message_size) {
        ss_reply(s, "552 5.3.4 <%s>: Message size exceeds the limit for this recipient", r);
        pc_log_info(s->base.sid, "event=policy-size to=<%s> policy=%s size=%llu limit=%zu", r, name,
                    s->txn.size_said, p->message_size);
        return 1;
    }
    s->txn.cur_policy = p;
    return 0;
}

static int cmd_rcpt(sess *s, const pc_smtp_cmd *c, char *line, size_t len)
{
    (void)line;
    (void)len;
    const pc_smtp_cmd cmd = *c;
    pc_smtp_err e = s->parse_err;
    if (e == PC_SMTP_E_ADDRESS) {
        ss_reply(s, "501 5.1.3 Bad recipient address syntax");
        ss_error_count(s);
        return 1;
    }
    if (e == PC_SMTP_E_PARAMS) {
        ss_reply(s, "555 5.5.4 Unsupported or malformed parameters");
        ss_error_count(s);
        return 1;
    }
    if (e != PC_SMTP_E_OK || cmd.path.n == 0) {
        ss_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        ss_error_count(s);
        return 1;
    }
    unsigned caps = upcaps(s);
    for (size_t i = 0; i < cmd.nparams; i++) {
        const pc_smtp_param *pm = &cmd.params[i];
        if ((keyis(pm, "NOTIFY") || keyis(pm, "ORCPT")) && (caps & PC_CAP_DSN))
            continue;
        ss_reply(s, "555 5.5.4 Unsupported parameter %.*s", (int)(pm->key.n > 40 ? 40 : pm->key.n),
                 pm->key.p);
        ss_error_count(s);
        return 1;
    }
    if (!s->txn.smtputf8 && has_8bit(cmd.path)) {
        ss_reply(s, "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8");
        return 1;
    }
    if (s->txn.naccepted >= s->base.cfg->limits.recipients) {
        ss_reply(s, "452 4.5.3 Error: too many recipients");
        return 1;
    }
    if (copy_path(s->txn.cur_rcpt, sizeof(s->txn.cur_rcpt), cmd.path) < 0 ||
        build_line(s, s->txn.cur_line, sizeof(s->txn.cur_line), "RCPT TO", s->txn.cur_rcpt, &cmd) <
            0) {
        ss_reply(s, "501 5.1.3 Recipient address too long");
        return 1;
    }
    /* Relay control is the gateway's own: the upstream often trusts the gateway's address. */
    char dom[256];
    int local_postmaster = cmd.domain.n == 0 && strcasecmp(s->txn.cur_rcpt, "postmaster") == 0;
    copy_path(dom, sizeof(dom), cmd.domain.n < sizeof(dom) ? cmd.domain : (pc_slice){"", 0});
    if (!local_postmaster && !domain_accepted(s, dom) && !s->authed &&
        !pc_netlist_match(&s->base.cfg->trusted_networks, (struct sockaddr *)&s->base.sv.client)) {
        char r[300];
        pc_sanitize(r, sizeof(r), s->txn.cur_rcpt, strlen(s->txn.cur_rcpt), 1);
        ss_reply(s, "554 5.7.1 <%s>: Relay access denied", r);
        pc_log_notice(s->base.sid, "event=relay-denied client=%s from=<%s> to=<%s>",
                      s->base.client_ip, s->txn.sender, r);
        return 1;
    }
    if (rcpt_policy(s))
        return 1;
    s->base.sv.rcpt = s->txn.cur_rcpt;
    return 0;
}

static void rcpt_proceed(sess *s, const pc_decision *d)
{
    s->base.sv.rcpt = NULL;
    int code = ss_verdict_stops(s, d, PC_SMTP_AT_COMMAND);
    if (code) {
        ss_record_rcpt(s, PC_RCPT_REFUSED, code, d->action);
        s->step = ST_NONE;
        return;
    }
    if (!s->up || !pc_smtpc_alive(s->up)) {
        /* Lost since MAIL: the next DATA replays; this recipient cannot be verified now. */
        ss_reply(s, "451 4.4.1 Upstream not available, try again later");
        s->step = ST_NONE;
        return;
    }
    ss_up_send(s, s->txn.cur_line, 0);
}

static int cmd_data(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len)
{
    (void)cmd;
    (void)line;
    (void)len;
    if (s->txn.naccepted == 0) {
        ss_reply(s, "554 5.5.1 Error: no valid recipients");
        return 1;
    }
    s->txn.spool = pc_spool_new(s->base.l->spool_threshold);
    if (!s->txn.spool) {
        ss_reply(s, "451 4.3.0 Local error in processing");
        return 1;
    }
    size_t limit = announced_size(s);
    if (s->txn.policy && s->txn.policy->message_size && s->txn.policy->message_size < limit)
        limit = s->txn.policy->message_size; /* the transaction's policy's: 552 5.3.4 past it */
    pc_smtp_data_init(&s->txn.data, s->base.cfg->limits.text_line_length, limit,
                      s->base.cfg->bare_lf_normalize);
    ss_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    s->phase = PH_DATA;
    pc_conn_set_timeout(s->base.c, s->base.cfg->timeouts.data_block_ms);
    return 1;
}

static int cmd_starttls(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len)
{
    (void)cmd;
    (void)line;
    (void)len;
    if (s->base.cfg->tls.mode != PC_TLS_STARTTLS || !s->base.l->server_tls) {
        ss_reply(s, "502 5.5.1 Error: command not implemented");
        return 1;
    }
    if (s->base.tls) {
        ss_reply(s, "503 5.5.1 Error: TLS already active");
        return 1;
    }
    if (!pc_session_handshake_allowed(&s->base)) {
        ss_reply(s, "454 4.7.0 TLS not available: too many handshakes from your address");
        return 1;
    }
    ss_reply(s, "220 2.0.0 Ready to start TLS");
    s->phase = PH_TLS;
    if (pc_session_starttls(&s->base, "starttls-injection", s->line_consumed) < 0)
        ss_close_session(s);
    return 1;
}

static int cmd_auth(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len)
{
    if (!s->esmtp) {
        ss_reply(s, "503 5.5.1 Error: send EHLO first");
        return 1;
    }
    if (!s->base.tls && !s->base.cfg->plaintext_auth) {
        explicit_bzero(line, len);
        ss_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        return 1;
    }
    if (!auth_offered(s)) {
        ss_reply(s, "502 5.5.1 Error: authentication not enabled");
        return 1;
    }
    /* Failures are counted per client address across sessions, not only in this one. */
    if (pc_addr_count((struct sockaddr *)&s->base.sv.client, PC_CNT_AUTHFAIL, 60) >=
        3 * s->base.cfg->limits.auth_failures) {
        explicit_bzero(line, len);
        ss_reply(s, "454 4.7.0 Too many failed authentications from your address, try again later");
        pc_log_notice(s->base.sid, "event=limit limit=auth_failures_per_address client=%s",
                      s->base.client_ip);
        return 1;
    }
    if (s->authed) {
        ss_reply(s, "503 5.5.1 Error: already authenticated");
        return 1;
    }
    if (s->txn.open) {
        ss_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return 1;
    }
    if (len >= sizeof(s->auth_line)) {
        explicit_bzero(line, len);
        ss_reply(s, "500 5.5.6 Authentication exchange line is too long");
        return 1;
    }
    /* The mechanism must be one the upstream announced. */
    size_t mlen = 0;
    while (mlen < cmd->arg.n && cmd->arg.p[mlen] != ' ')
        mlen++;
    int found = 0;
    const char *a = s->base.l->up.caps.auth;
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
        ss_reply(s, "504 5.5.4 Unrecognized authentication type");
        ss_error_count(s);
        return 1;
    }
    s->user[0] = '\0';
    s->auth_plain = mlen == 5 && strncasecmp(cmd->arg.p, "PLAIN", 5) == 0;
    s->auth_login = mlen == 5 && strncasecmp(cmd->arg.p, "LOGIN", 5) == 0;
    s->auth_stage = 0;
    s->auth_cancelled = 0;
    if (cmd->arg.n > mlen + 1) {
        auth_username(s, cmd->arg.p + mlen + 1, cmd->arg.n - mlen - 1);
        s->auth_stage = 1;
    }
    memcpy(s->auth_line, line, len);
    s->auth_line[len] = '\0';
    explicit_bzero(line, len);
    s->step = ST_AUTH;
    s->up_noreuse = 1;
    ss_up_start(s);
    return 1;
}

static int cmd_rset(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len)
{
    (void)cmd;
    (void)line;
    (void)len;
    ss_txn_reset(s);
    ss_reply(s, "250 2.0.0 Ok");
    return 1;
}

static int cmd_quit(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len)
{
    (void)cmd;
    (void)line;
    (void)len;
    ss_reply(s, "221 2.0.0 Bye");
    ss_close_session(s);
    return 1;
}

/* ---- the verb table ---------------------------------------------------------------------------
 */

/* Where the session is, as far as what a command may do (RFC 5321 §4.1.4). */
enum cmd_state {
    CS_FRESH, /* no HELO/EHLO yet (or none since STARTTLS) */
    CS_READY, /* greeted, no transaction */
    CS_TXN,   /* a MAIL was accepted */
    CS__COUNT
};

typedef struct smtp_verb {
    /* MAIL and RCPT parse 8-bit addresses and answer their own syntax errors; for every other verb
     * a malformed line is answered 501 before anything else. */
    int own_syntax;
    const char *refuse[CS__COUNT]; /* the reply where the verb is not allowed; NULL: allowed */
    /* Checks the command and answers it (1), or returns 0 to run hook, then proceed. */
    int (*check)(sess *s, const pc_smtp_cmd *cmd, char *line, size_t len);
    pc_hook hook;
    enum step step;
    void (*proceed)(sess *s, const pc_decision *d);
    const char *reply; /* verbs without check: the fixed answer */
    int error;         /* that answer counts as an error */
} smtp_verb;

#define NEED_MAIL "503 5.5.1 Error: need MAIL command"
/* The reply to a verb the gateway does not offer (RFC 5321 §4.2.4: 502). */
#define NOT_OFFERED "502 5.5.1 Error: command not implemented"

static const smtp_verb verbs[PC_SMTP_VERB_COUNT] = {
    [PC_SMTP_HELO] = {.check = cmd_helo,
                      .hook = PC_HOOK_HELO,
                      .step = ST_HELO,
                      .proceed = helo_proceed},
    [PC_SMTP_EHLO] = {.check = cmd_helo,
                      .hook = PC_HOOK_HELO,
                      .step = ST_HELO,
                      .proceed = helo_proceed},
    [PC_SMTP_MAIL] = {.own_syntax = 1,
                      .refuse = {[CS_FRESH] = "503 5.5.1 Error: send HELO/EHLO first",
                                 [CS_TXN] = "503 5.5.1 Error: nested MAIL command"},
                      .check = cmd_mail,
                      .hook = PC_HOOK_MAIL,
                      .step = ST_MAIL,
                      .proceed = mail_proceed},
    [PC_SMTP_RCPT] = {.own_syntax = 1,
                      .refuse = {[CS_FRESH] = NEED_MAIL, [CS_READY] = NEED_MAIL},
                      .check = cmd_rcpt,
                      .hook = PC_HOOK_RCPT,
                      .step = ST_RCPT,
                      .proceed = rcpt_proceed},
    [PC_SMTP_DATA] = {.refuse = {[CS_FRESH] = NEED_MAIL, [CS_READY] = NEED_MAIL},
                      .check = cmd_data},
    [PC_SMTP_RSET] = {.check = cmd_rset},
    [PC_SMTP_NOOP] = {.reply = "250 2.0.0 Ok"},
    [PC_SMTP_QUIT] = {.check = cmd_quit},
    [PC_SMTP_VRFY] = {.reply = "252 2.5.2 Cannot VRFY user, but will accept message"},
    [PC_SMTP_EXPN] = {.reply = NOT_OFFERED},
    [PC_SMTP_HELP] = {.reply = "214 2.0.0 See RFC 5321"},
    [PC_SMTP_STARTTLS] = {.check = cmd_starttls},
    [PC_SMTP_AUTH] = {.refuse = {[CS_FRESH] = "503 5.5.1 Error: send EHLO first"},
                      .check = cmd_auth},
    [PC_SMTP_BDAT] = {.reply = NOT_OFFERED, .error = 1},
    [PC_SMTP_XCLIENT] = {.reply = NOT_OFFERED, .error = 1},
};

static enum cmd_state cmd_state(const sess *s)
{
    if (!s->helo[0])
        return CS_FRESH;
    return s->txn.open ? CS_TXN : CS_READY;
}

void ss_command(sess *s, char *line, size_t len)
{
    pc_smtp_cmd cmd;
    /* 8-bit is allowed only in MAIL and RCPT addresses (the parser refuses it elsewhere); their
     * checks decide whether the transaction may carry it. */
    pc_smtp_err e = pc_smtp_cmd_parse(line, len, 1, &cmd);
    s->first_cmd = 1;
    if (e == PC_SMTP_E_NUL || e == PC_SMTP_E_8BIT) {
        ss_reply(s, "500 5.5.2 Error: invalid characters in command");
        ss_error_count(s);
        return;
    }
    if (e == PC_SMTP_E_UNKNOWN || (unsigned)cmd.verb >= PC_SMTP_VERB_COUNT ||
        cmd.verb == PC_SMTP_UNKNOWN) {
        if (len >= 6 && strncmp(line, "PROXY ", 6) == 0) {
            ss_reply(s, "421 4.7.0 %s PROXY protocol not accepted from your address",
                     s->base.cfg->hostname);
            ss_close_session(s);
            return;
        }
        ss_reply(s, "500 5.5.1 Error: command not recognized");
        ss_error_count(s);
        return;
    }
    const smtp_verb *v = &verbs[cmd.verb];
    if (!v->own_syntax && e != PC_SMTP_E_OK) {
        ss_reply(s, "501 5.5.4 Syntax error in parameters or arguments");
        ss_error_count(s);
        return;
    }
    const char *refusal = v->refuse[cmd_state(s)];
    if (refusal) {
        ss_reply(s, "%s", refusal);
        return;
    }
    if (!v->check) {
        ss_reply(s, "%s", v->reply ? v->reply : NOT_OFFERED);
        if (v->error || !v->reply)
            ss_error_count(s);
        return;
    }
    s->parse_err = e;
    if (v->check(s, &cmd, line, len) != 0)
        return;
    s->pending = cmd.verb;
    ss_run_hook(s, v->hook, v->step);
}

void ss_cmd_proceed(sess *s, const pc_decision *d)
{
    verbs[s->pending].proceed(s, d);
}
