/* pop3_parse.c — POP3 command table and argument checks, status lines, CAPA, multi-line bodies.
 * Defends against CR/NUL injection, number overflow, oversize input, <LF>.<LF> body smuggling. */
#include "pop3/pop3_parse.h"

#include <string.h>

#include "parse/data_out.h"

/* ---- character helpers ---------------------------------------------------------------------- */

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* ---- the command table (STYLE.md habit 3) --------------------------------------------------- */

typedef enum {
    A_NONE,      /* no argument */
    A_OPT_MSG,   /* [msg] */
    A_MSG,       /* msg */
    A_MSG_LINES, /* msg lines */
    A_REST,      /* the rest of the line, 8-bit allowed */
    A_TWO,       /* two words */
    A_AUTH,      /* mechanism [initial-response] */
} argkind;

typedef struct verbdef {
    const char *name;
    pc_pop3_verb verb;
    argkind args;
    int multi; /* 1: multi-line answer; 2: multi-line only without argument */
} verbdef;

static const verbdef verbs[] = {
    {"USER", PC_POP3_USER, A_REST, 0},    {"PASS", PC_POP3_PASS, A_REST, 0},
    {"APOP", PC_POP3_APOP, A_TWO, 0},     {"AUTH", PC_POP3_AUTH, A_AUTH, 0},
    {"STLS", PC_POP3_STLS, A_NONE, 0},    {"CAPA", PC_POP3_CAPA, A_NONE, 1},
    {"QUIT", PC_POP3_QUIT, A_NONE, 0},    {"STAT", PC_POP3_STAT, A_NONE, 0},
    {"LIST", PC_POP3_LIST, A_OPT_MSG, 2}, {"UIDL", PC_POP3_UIDL, A_OPT_MSG, 2},
    {"RETR", PC_POP3_RETR, A_MSG, 1},     {"TOP", PC_POP3_TOP, A_MSG_LINES, 1},
    {"DELE", PC_POP3_DELE, A_MSG, 0},     {"NOOP", PC_POP3_NOOP, A_NONE, 0},
    {"RSET", PC_POP3_RSET, A_NONE, 0},
};
#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

static const verbdef *verb_find(pc_pop3_verb v)
{
    for (size_t i = 0; i < NVERBS; i++)
        if (verbs[i].verb == v)
            return &verbs[i];
    return NULL;
}

const char *pc_pop3_verb_name(pc_pop3_verb verb)
{
    const verbdef *d = verb_find(verb);
    return d ? d->name : "UNKNOWN";
}

int pc_pop3_multiline(pc_pop3_verb verb, size_t nargs)
{
    const verbdef *d = verb_find(verb);
    if (!d)
        return 0;
    return d->multi == 1 || (d->multi == 2 && nargs == 0);
}

/* A decimal number without sign or leading zero, in min..PC_POP3_NUM_MAX. */
static int number(pc_slice s, uint32_t min, uint32_t *out)
{
    if (s.n == 0 || s.n > 10 || (s.p[0] == '0' && s.n > 1))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!is_digit((unsigned char)s.p[i]))
            return -1;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (v < min || v > PC_POP3_NUM_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* RFC 4422 §3.1 mechanism name: 1-20 of upper-case letters, digits, '-' and '_' (lower case is
 * accepted too, names compare case-insensitively). */
static int mech_valid(const char *p, size_t n)
{
    if (n == 0 || n > 20)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && c != '-' && c != '_')
            return 0;
    }
    return 1;
}

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' || c == '/';
}

int pc_pop3_base64_valid(const char *p, size_t n)
{
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (b64_char(c))
            continue;
        /* '=' only in the last two places, and "=x" never */
        if (c != '=' || i + 2 < n || (i + 2 == n && p[n - 1] != '='))
            return -1;
    }
    return 0;
}

pc_pop3_sasl_line pc_pop3_sasl_line_parse(const char *line, size_t len)
{
    if (len == 1 && line[0] == '*')
        return PC_POP3_SASL_CANCEL;
    return pc_pop3_base64_valid(line, len) == 0 ? PC_POP3_SASL_DATA : PC_POP3_SASL_INVALID;
}

/* Splits p[0..n) into words separated by exactly one SP. Returns the count (up to max+1: more than
 * max means too many) or -1 for an empty word. */
static int words(const char *p, size_t n, pc_slice *w, int max)
{
    int k = 0;
    size_t i = 0;
    while (i < n) {
        const char *sp = memchr(p + i, ' ', n - i);
        size_t end = sp ? (size_t)(sp - p) : n;
        if (end == i)
            return -1;
        if (k == max)
            return max + 1;
        w[k].p = p + i;
        w[k].n = end - i;
        k++;
        i = end + 1;
        if (sp && i == n)
            return -1; /* a trailing separator with nothing after it */
    }
    return k;
}

static pc_pop3_err check_args(const verbdef *d, const char *p, size_t n, pc_pop3_cmd *cmd)
{
    pc_slice w[2];
    int k;
    if (d->args == A_REST) {
        if (n == 0)
            return PC_POP3_E_SYNTAX;
        cmd->arg[0].p = p;
        cmd->arg[0].n = n;
        cmd->nargs = 1;
        return PC_POP3_E_OK;
    }
    while (n > 0 && p[n - 1] == ' ')
        n--;
    k = words(p, n, w, 2);
    if (k < 0)
        return PC_POP3_E_SYNTAX;
    switch (d->args) {
    case A_NONE:
        if (k != 0)
            return PC_POP3_E_SYNTAX;
        break;
    case A_OPT_MSG:
        if (k > 1 || (k == 1 && number(w[0], 1, &cmd->num[0]) < 0))
            return PC_POP3_E_SYNTAX;
        break;
    case A_MSG:
        if (k != 1 || number(w[0], 1, &cmd->num[0]) < 0)
            return PC_POP3_E_SYNTAX;
        break;
    case A_MSG_LINES:
        if (k != 2 || number(w[0], 1, &cmd->num[0]) < 0 || number(w[1], 0, &cmd->num[1]) < 0)
            return PC_POP3_E_SYNTAX;
        break;
    case A_TWO:
        if (k != 2)
            return PC_POP3_E_SYNTAX;
        break;
    case A_AUTH:
        if (k < 1 || k > 2 || !mech_valid(w[0].p, w[0].n))
            return PC_POP3_E_SYNTAX;
        /* "=" is the empty initial response (RFC 5034 §4) */
        if (k == 2 && !(w[1].n == 1 && w[1].p[0] == '=') &&
            pc_pop3_base64_valid(w[1].p, w[1].n) < 0)
            return PC_POP3_E_SYNTAX;
        break;
    case A_REST: break;
    }
    cmd->nargs = (size_t)k;
    for (int i = 0; i < k; i++)
        cmd->arg[i] = w[i];
    return PC_POP3_E_OK;
}

pc_pop3_err pc_pop3_cmd_parse(const char *line, size_t len, pc_pop3_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->verb = PC_POP3_UNKNOWN;
    if (memchr(line, 0, len))
        return PC_POP3_E_NUL;
    int has8 = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (is_ctl(c))
            return PC_POP3_E_CTL;
        has8 |= c >= 0x80;
    }
    const char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    const verbdef *d = NULL;
    for (size_t i = 0; i < NVERBS && !d; i++)
        if (pc_ascii_ieq(line, vlen, verbs[i].name))
            d = &verbs[i];
    if (!d)
        return PC_POP3_E_UNKNOWN;
    cmd->verb = d->verb;
    if (has8 && d->args != A_REST)
        return PC_POP3_E_8BIT;
    const char *args = sp ? sp + 1 : line + len;
    size_t alen = sp ? len - vlen - 1 : 0;
    pc_pop3_err e = check_args(d, args, alen, cmd);
    if (e != PC_POP3_E_OK) {
        cmd->nargs = 0;
        memset(cmd->arg, 0, sizeof(cmd->arg));
        memset(cmd->num, 0, sizeof(cmd->num));
    }
    return e;
}

/* ---- SASL mechanisms and CAPA --------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned bit;
} mechs[] = {
    {"PLAIN", PC_POP3_MECH_PLAIN},
    {"LOGIN", PC_POP3_MECH_LOGIN},
    {"CRAM-MD5", PC_POP3_MECH_CRAM_MD5},
    {"DIGEST-MD5", PC_POP3_MECH_DIGEST_MD5},
    {"SCRAM-SHA-1", PC_POP3_MECH_SCRAM_SHA_1},
    {"SCRAM-SHA-1-PLUS", PC_POP3_MECH_SCRAM_SHA_1_PLUS},
    {"SCRAM-SHA-256", PC_POP3_MECH_SCRAM_SHA_256},
    {"SCRAM-SHA-256-PLUS", PC_POP3_MECH_SCRAM_SHA_256_PLUS},
    {"XOAUTH2", PC_POP3_MECH_XOAUTH2},
    {"OAUTHBEARER", PC_POP3_MECH_OAUTHBEARER},
    {"EXTERNAL", PC_POP3_MECH_EXTERNAL},
    {"GSSAPI", PC_POP3_MECH_GSSAPI},
    {"NTLM", PC_POP3_MECH_NTLM},
    {"ANONYMOUS", PC_POP3_MECH_ANONYMOUS},
};

unsigned pc_pop3_mech_lookup(const char *p, size_t n)
{
    for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
        if (pc_ascii_ieq(p, n, mechs[i].name))
            return mechs[i].bit;
    return 0;
}

void pc_pop3_capa_init(pc_pop3_capa *c)
{
    memset(c, 0, sizeof(*c));
}

/* "EXPIRE policy [USER]" / "LOGIN-DELAY secs [USER]": a number (or NEVER for EXPIRE). */
static int capa_value(const pc_slice *w, int k, int never_ok, long *val, int *user)
{
    uint32_t v;
    if (k < 2 || k > 3 || (k == 3 && !pc_ascii_ieq(w[2].p, w[2].n, "USER")))
        return -1;
    if (never_ok && pc_ascii_ieq(w[1].p, w[1].n, "NEVER")) {
        *val = PC_POP3_EXPIRE_NEVER;
    } else {
        if (number(w[1], 0, &v) < 0)
            return -1;
        *val = (long)v;
    }
    *user = k == 3;
    return 0;
}

#define CAPA_WORDS 32

int pc_pop3_capa_line(pc_pop3_capa *c, const char *line, size_t len)
{
    pc_slice w[CAPA_WORDS];
    while (len > 0 && line[len - 1] == ' ')
        len--; /* some servers pad lines */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (is_ctl(ch) || ch >= 0x80)
            goto bad;
    }
    int k = words(line, len, w, CAPA_WORDS);
    if (k <= 0)
        goto bad;
    if (k > CAPA_WORDS)
        k = CAPA_WORDS; /* only a SASL list can be that long; the rest is ignored */
    const pc_slice *t = &w[0];
    if (pc_ascii_ieq(t->p, t->n, "TOP") && k == 1) {
        c->caps |= PC_POP3_CAP_TOP;
    } else if (pc_ascii_ieq(t->p, t->n, "UIDL") && k == 1) {
        c->caps |= PC_POP3_CAP_UIDL;
    } else if (pc_ascii_ieq(t->p, t->n, "USER") && k == 1) {
        c->caps |= PC_POP3_CAP_USER;
    } else if (pc_ascii_ieq(t->p, t->n, "STLS") && k == 1) {
        c->caps |= PC_POP3_CAP_STLS;
    } else if (pc_ascii_ieq(t->p, t->n, "PIPELINING") && k == 1) {
        c->caps |= PC_POP3_CAP_PIPELINING;
    } else if (pc_ascii_ieq(t->p, t->n, "RESP-CODES") && k == 1) {
        c->caps |= PC_POP3_CAP_RESP_CODES;
    } else if (pc_ascii_ieq(t->p, t->n, "AUTH-RESP-CODE") && k == 1) {
        c->caps |= PC_POP3_CAP_AUTH_RESP_CODE;
    } else if (pc_ascii_ieq(t->p, t->n, "IMPLEMENTATION")) {
        c->caps |= PC_POP3_CAP_IMPLEMENTATION;
    } else if (pc_ascii_ieq(t->p, t->n, "EXPIRE")) {
        if (capa_value(w, k, 1, &c->expire, &c->expire_user) < 0)
            goto bad;
        c->caps |= PC_POP3_CAP_EXPIRE;
    } else if (pc_ascii_ieq(t->p, t->n, "LOGIN-DELAY")) {
        if (capa_value(w, k, 0, &c->login_delay, &c->login_delay_user) < 0)
            goto bad;
        c->caps |= PC_POP3_CAP_LOGIN_DELAY;
    } else if (pc_ascii_ieq(t->p, t->n, "SASL")) {
        for (int i = 1; i < k; i++)
            if (!mech_valid(w[i].p, w[i].n))
                goto bad;
        for (int i = 1; i < k; i++) {
            unsigned bit = pc_pop3_mech_lookup(w[i].p, w[i].n);
            if (bit)
                c->mechs |= bit;
            else
                c->other_mechs++;
        }
        c->caps |= PC_POP3_CAP_SASL;
    } else {
        c->other_caps++;
    }
    return 0;
bad:
    c->bad_lines++;
    return -1;
}

int pc_pop3_capa_parse(pc_pop3_capa *c, const char *body, size_t len)
{
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        const char *lf = memchr(body + i, '\n', len - i);
        size_t end = lf ? (size_t)(lf - body) : len;
        size_t next = lf ? end + 1 : len;
        if (lf && (end == i || body[end - 1] != '\r')) {
            c->bad_lines++; /* bare LF */
            rc = -1;
        } else {
            if (lf)
                end--;
            if (pc_pop3_capa_line(c, body + i, end - i) < 0)
                rc = -1;
        }
        i = next;
    }
    return rc;
}

/* ---- status lines --------------------------------------------------------------------------- */

/* RFC 2449 §8: "[" resp-level *("/" resp-level) "]", resp-level = 1*(%x21-2E / %x30-5C / %x5E-7F).
 * Returns the length of the code with its brackets at p, or 0. */
static size_t resp_code(const char *p, size_t n)
{
    if (n < 3 || p[0] != '[')
        return 0;
    size_t i = 1, level = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == ']')
            break;
        if (c == '/') {
            if (level == 0)
                return 0;
            level = 0;
        } else if (c >= 0x21 && c <= 0x7e && c != '[') {
            level++;
        } else {
            return 0;
        }
    }
    if (i == n || level == 0)
        return 0;
    return i + 1;
}

int pc_pop3_resp_parse(const char *buf, size_t len, size_t max, pc_pop3_resp *r, size_t *consumed)
{
    size_t ll = 0, used = 0;
    memset(r, 0, sizeof(*r));
    switch (pc_line_find(buf, len, max, &ll, &used)) {
    case PC_LINE_NEED_MORE: return PC_NEED_MORE;
    case PC_LINE_TOO_LONG: return PC_TOO_LONG;
    case PC_LINE_BARE_LF: *consumed = used; return PC_INVALID;
    case PC_LINE_OK: break;
    }
    *consumed = used;
    if (memchr(buf, 0, ll) || memchr(buf, '\r', ll))
        return PC_INVALID;
    size_t skip;
    if (ll >= 3 && memcmp(buf, "+OK", 3) == 0) {
        r->status = PC_POP3_RESP_OK;
        skip = 3;
    } else if (ll >= 4 && memcmp(buf, "-ERR", 4) == 0) {
        r->status = PC_POP3_RESP_ERR;
        skip = 4;
    } else if (ll >= 1 && buf[0] == '+') {
        r->status = PC_POP3_RESP_CONT;
        skip = 1;
    } else {
        return PC_INVALID;
    }
    if (skip < ll) {
        if (buf[skip] != ' ')
            return PC_INVALID;
        skip++;
    }
    const char *t = buf + skip;
    size_t tn = ll - skip;
    if (r->status == PC_POP3_RESP_CONT) {
        if (pc_pop3_base64_valid(t, tn) < 0)
            return PC_INVALID;
    } else {
        size_t cn = resp_code(t, tn);
        if (cn && (cn == tn || t[cn] == ' ')) {
            r->code.p = t + 1;
            r->code.n = cn - 2;
            t += cn;
            tn -= cn;
            if (tn) {
                t++;
                tn--;
            }
        }
    }
    r->text.p = t;
    r->text.n = tn;
    r->line.p = buf;
    r->line.n = ll;
    return PC_OK;
}

/* ---- multi-line body reader ----------------------------------------------------------------- */

enum {
    S_BOL = 0, /* after a real CRLF, or at the start */
    S_MID,     /* inside a line, or after a bare CR/LF */
    S_CR,      /* after a CR (already emitted) whose LF is not known yet */
    S_DOT,     /* '.' at a line start, held back */
    S_DOTCR,   /* '.' CR at a line start, held back */
    S_DONE,
};

void pc_pop3_body_init(pc_pop3_body *b, size_t max_line, size_t max_size)
{
    memset(b, 0, sizeof(*b));
    b->state = S_BOL;
    b->max_line = max_line;
    b->max_size = max_size;
}

/* Content bytes p[0..n): bookkeeping, then out (up to max_size). */
static int put(pc_pop3_body *b, pc_data_out *o, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') {
            b->line_len = 0;
            continue;
        }
        if (c == '\r')
            continue;
        if (c == 0)
            b->flags |= PC_DATA_NUL;
        else if (c >= 0x80)
            b->flags |= PC_DATA_8BIT;
        b->line_len++;
        if (b->max_line && b->line_len + 2 > b->max_line)
            b->flags |= PC_DATA_LONG_LINE;
    }
    return pc_data_out_put(o, p, n);
}

size_t pc_pop3_body_feed(pc_pop3_body *b, const char *in, size_t n, pc_data_emit_fn emit, void *ud,
                         int *done)
{
    pc_data_out o;
    pc_data_out_init(&o, emit, ud, &b->flags, &b->size, b->max_size);
    size_t i = 0;
    *done = 0;
    if (b->state == S_DONE) {
        *done = 1;
        return 0;
    }
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        int rc = 0;
        switch (b->state) {
        case S_BOL:
            if (c == '.') {
                b->state = S_DOT;
                i++;
            } else {
                b->state = S_MID; /* c is looked at again */
            }
            break;
        case S_MID: {
            size_t run = pc_data_plain_run(in + i, n - i);
            if (run == 0) {
                run = 1;
                if (c == '\r')
                    b->state = S_CR;
                else
                    b->flags |= PC_DATA_BARE_LF; /* passed as-is; no line start follows */
            }
            rc = put(b, &o, in + i, run);
            i += run;
            break;
        }
        case S_CR:
            if (c == '\n') {
                rc = put(b, &o, in + i, 1);
                b->state = S_BOL;
                i++;
            } else {
                b->flags |= PC_DATA_BARE_CR;
                b->state = S_MID;
            }
            break;
        case S_DOT:
            if (c == '\r') {
                b->state = S_DOTCR;
                i++;
            } else if (c == '\n') {
                /* the line "." ended by a bare LF: content, never the end */
                b->flags |= PC_DATA_BARE_LF;
                rc = put(b, &o, ".\n", 2);
                b->state = S_MID;
                i++;
            } else {
                b->state = S_MID; /* a stuffing dot: dropped */
            }
            break;
        case S_DOTCR:
            if (c == '\n') {
                i++;
                b->state = S_DONE;
                if (pc_data_out_flush(&o) < 0)
                    return (size_t)-1;
                *done = 1;
                return i;
            }
            /* the line "." then a bare CR: content, and c is looked at again */
            b->flags |= PC_DATA_BARE_CR;
            rc = put(b, &o, ".\r", 2);
            b->state = S_MID;
            break;
        default: *done = 1; return i;
        }
        if (rc < 0)
            return (size_t)-1;
    }
    return pc_data_out_end(&o, i);
}
