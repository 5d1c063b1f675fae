/* smtp_parse.c — SMTP line framing (CRLF only) and command parsing with strict RFC 5321 paths.
 * Defends against bare-LF smuggling, NUL/control/8-bit bytes, hostile addresses, param floods. */
#include "smtp/smtp_parse.h"

#include <arpa/inet.h>
#include <string.h>

#define PATH_MAX_BYTES 256 /* RFC 5321 §4.5.3.1.3, '<' and '>' included */
#define LOCAL_MAX 64
#define DOMAIN_MAX 255
#define LABEL_MAX 63

static const char *const verb_names[PC_SMTP_VERB_COUNT] = {
    [PC_SMTP_UNKNOWN] = "UNKNOWN",   [PC_SMTP_HELO] = "HELO", [PC_SMTP_EHLO] = "EHLO",
    [PC_SMTP_MAIL] = "MAIL",         [PC_SMTP_RCPT] = "RCPT", [PC_SMTP_DATA] = "DATA",
    [PC_SMTP_RSET] = "RSET",         [PC_SMTP_NOOP] = "NOOP", [PC_SMTP_QUIT] = "QUIT",
    [PC_SMTP_VRFY] = "VRFY",         [PC_SMTP_EXPN] = "EXPN", [PC_SMTP_HELP] = "HELP",
    [PC_SMTP_STARTTLS] = "STARTTLS", [PC_SMTP_AUTH] = "AUTH", [PC_SMTP_BDAT] = "BDAT",
    [PC_SMTP_XCLIENT] = "XCLIENT",
};

const char *pc_smtp_verb_name(pc_smtp_verb v)
{
    if ((int)v < 0 || v >= PC_SMTP_VERB_COUNT)
        return "UNKNOWN";
    return verb_names[v];
}

/* ---- character classes ---------------------------------------------------------------------- */

static int is_alpha(unsigned char c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static int is_letdig(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

static int is_atext(unsigned char c)
{
    return is_letdig(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of a valid UTF-8 multi-byte sequence at p (at most n bytes), or 0. No overlongs, no
 * surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need + 1)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i <= need; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return need + 1;
}

/* ---- domains and address literals ----------------------------------------------------------- */

/* Parses a domain (LDH labels) at p[0..n). Returns bytes used (stops at the first byte that cannot
 * continue it), or 0 if no valid domain starts there. *bad8 is set for 8-bit bytes that are not
 * allowed (not utf8, or an invalid sequence). */
static size_t domain_span(const char *s, size_t n, int utf8, int *bad8)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (;;) {
        size_t start = i;
        int last_hyphen = 0;
        while (i < n) {
            if (is_letdig(p[i])) {
                last_hyphen = 0;
                i++;
            } else if (p[i] == '-' && i > start) {
                last_hyphen = 1;
                i++;
            } else if (p[i] >= 0x80) {
                size_t k = utf8 ? utf8_seq(p + i, n - i) : 0;
                if (!k) {
                    *bad8 = 1;
                    return 0;
                }
                last_hyphen = 0;
                i += k;
            } else {
                break;
            }
        }
        if (i == start || last_hyphen || i - start > LABEL_MAX)
            return 0;
        if (i + 1 < n && p[i] == '.' && (is_letdig(p[i + 1]) || p[i + 1] >= 0x80)) {
            i++;
            continue;
        }
        break;
    }
    return i > DOMAIN_MAX ? 0 : i;
}

/* Validates the inside of "[...]": a dotted quad or "IPv6:" and an IPv6 address. */
static int literal_valid(const char *p, size_t n)
{
    char tmp[64];
    int af = AF_INET;
    if (n > 5 && pc_ascii_ieq(p, 5, "IPv6:")) {
        af = AF_INET6;
        p += 5;
        n -= 5;
    }
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)p[i]) && p[i] != '.' &&
            (af == AF_INET || (!is_alpha((unsigned char)p[i]) && p[i] != ':')))
            return 0;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    unsigned char bin[16];
    return inet_pton(af, tmp, bin) == 1;
}

/* A domain or an address literal at p[0..n); returns bytes used or 0. */
static size_t host_span(const char *p, size_t n, int utf8, int *bad8)
{
    if (n > 0 && p[0] == '[') {
        const char *end = memchr(p, ']', n);
        if (!end || !literal_valid(p + 1, (size_t)(end - p) - 1))
            return 0;
        return (size_t)(end - p) + 1;
    }
    return domain_span(p, n, utf8, bad8);
}

int pc_smtp_helo_valid(const char *p, size_t n)
{
    int bad8 = 0;
    if (!p || n == 0 || n > DOMAIN_MAX)
        return -1;
    return host_span(p, n, 0, &bad8) == n ? 0 : -1;
}

/* ---- paths ------------------------------------------------------------------------------------
 */

/* Local part at p[0..n): dot-string or quoted-string. Returns bytes used or 0. */
static size_t local_span(const char *s, size_t n, int utf8, int *bad8)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    if (n > 0 && p[0] == '"') {
        i = 1;
        while (i < n && p[i] != '"') {
            if (p[i] == '\\') {
                if (i + 1 >= n || p[i + 1] < 32 || p[i + 1] > 126)
                    return 0;
                i += 2;
            } else if (p[i] >= 0x80) {
                size_t k = utf8 ? utf8_seq(p + i, n - i) : 0;
                if (!k) {
                    *bad8 = 1;
                    return 0;
                }
                i += k;
            } else if (p[i] >= 32 && p[i] <= 126) {
                i++;
            } else {
                return 0;
            }
        }
        if (i >= n)
            return 0;
        return i + 1;
    }
    for (;;) {
        size_t start = i;
        while (i < n) {
            if (is_atext(p[i])) {
                i++;
            } else if (p[i] >= 0x80) {
                size_t k = utf8 ? utf8_seq(p + i, n - i) : 0;
                if (!k) {
                    *bad8 = 1;
                    return 0;
                }
                i += k;
            } else {
                break;
            }
        }
        if (i == start)
            return 0;
        if (i < n && p[i] == '.') {
            i++;
            continue;
        }
        return i;
    }
}

/* Parses "<...>" at a[0..n) into cmd->path/domain. Returns bytes used (through '>') or 0 with *err.
 */
static size_t path_parse(const char *a, size_t n, pc_smtp_verb verb, int utf8, pc_smtp_cmd *cmd,
                         pc_smtp_err *err)
{
    int bad8 = 0;
    size_t i = 1;
    *err = PC_SMTP_E_ADDRESS;
    if (n == 0 || a[0] != '<')
        return 0;
    /* Source route: "@dom,@dom:" is skipped. */
    if (i < n && a[i] == '@') {
        for (;;) {
            i++;
            size_t k = host_span(a + i, n - i, 0, &bad8);
            if (!k)
                goto fail;
            i += k;
            if (i < n && a[i] == ',') {
                i++;
                if (i >= n || a[i] != '@')
                    goto fail;
                continue;
            }
            if (i < n && a[i] == ':') {
                i++;
                break;
            }
            goto fail;
        }
    }
    size_t pstart = i;
    if (i < n && a[i] == '>') {
        if (verb != PC_SMTP_MAIL || pstart != 1)
            goto fail;
        cmd->path = (pc_slice){a + i, 0};
        cmd->domain = (pc_slice){a + i, 0};
        return i + 1;
    }
    size_t k = local_span(a + i, n - i, utf8, &bad8);
    if (!k)
        goto fail;
    if (k > LOCAL_MAX)
        goto fail;
    i += k;
    if (i < n && a[i] == '>' && verb == PC_SMTP_RCPT && pstart == 1 &&
        pc_ascii_ieq(a + pstart, k, "postmaster")) {
        cmd->path = (pc_slice){a + pstart, k};
        cmd->domain = (pc_slice){a + i, 0};
        return i + 1;
    }
    if (i >= n || a[i] != '@')
        goto fail;
    i++;
    size_t dstart = i;
    k = host_span(a + i, n - i, utf8, &bad8);
    if (!k)
        goto fail;
    i += k;
    if (i >= n || a[i] != '>' || i + 1 > PATH_MAX_BYTES)
        goto fail;
    cmd->path = (pc_slice){a + pstart, i - pstart};
    cmd->domain = (pc_slice){a + dstart, i - dstart};
    return i + 1;
fail:
    if (bad8)
        *err = PC_SMTP_E_8BIT;
    return 0;
}

/* ESMTP parameters at a[0..n) (after the path). */
static pc_smtp_err params_parse(const char *s, size_t n, pc_smtp_cmd *cmd)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (size_t k = 0; k < n; k++)
        if (p[k] >= 0x80)
            return PC_SMTP_E_8BIT;
    while (i < n) {
        if (p[i] != ' ')
            return PC_SMTP_E_PARAMS;
        while (i < n && p[i] == ' ')
            i++;
        if (i >= n)
            break;
        size_t ks = i;
        if (!is_letdig(p[i]))
            return PC_SMTP_E_PARAMS;
        while (i < n && (is_letdig(p[i]) || p[i] == '-'))
            i++;
        pc_slice key = {s + ks, i - ks};
        pc_slice val = {NULL, 0};
        if (i < n && p[i] == '=') {
            size_t vs = ++i;
            while (i < n && p[i] >= 33 && p[i] <= 126 && p[i] != '=')
                i++;
            if (i == vs)
                return PC_SMTP_E_PARAMS;
            val = (pc_slice){s + vs, i - vs};
        }
        if (i < n && p[i] != ' ')
            return PC_SMTP_E_PARAMS;
        if (cmd->nparams >= PC_SMTP_MAX_PARAMS)
            return PC_SMTP_E_PARAMS;
        cmd->params[cmd->nparams].key = key;
        cmd->params[cmd->nparams].value = val;
        cmd->nparams++;
    }
    return PC_SMTP_E_OK;
}

static pc_smtp_err mailrcpt_parse(const char *a, size_t n, int utf8, pc_smtp_cmd *cmd)
{
    const char *kw = cmd->verb == PC_SMTP_MAIL ? "FROM:" : "TO:";
    size_t kl = strlen(kw);
    if (n < kl || !pc_ascii_ieq(a, kl, kw))
        return PC_SMTP_E_SYNTAX;
    a += kl;
    n -= kl;
    if (n > 0 && a[0] == ' ')
        a++, n--;
    if (n == 0 || a[0] != '<')
        return n == 0 ? PC_SMTP_E_SYNTAX : PC_SMTP_E_ADDRESS;
    pc_smtp_err err;
    size_t used = path_parse(a, n, cmd->verb, utf8, cmd, &err);
    if (!used)
        return err;
    return params_parse(a + used, n - used, cmd);
}

pc_smtp_err pc_smtp_cmd_parse(const char *line, size_t len, int utf8, pc_smtp_cmd *cmd)
{
    const unsigned char *p = (const unsigned char *)line;
    cmd->verb = PC_SMTP_UNKNOWN;
    cmd->arg = (pc_slice){line, 0};
    cmd->path = (pc_slice){NULL, 0};
    cmd->domain = (pc_slice){NULL, 0};
    cmd->nparams = 0;
    if (len > 0 && memchr(line, '\0', len))
        return PC_SMTP_E_NUL;

    size_t vl = 0;
    while (vl < len && p[vl] != ' ')
        vl++;
    for (int v = PC_SMTP_HELO; v < PC_SMTP_VERB_COUNT; v++)
        if (pc_ascii_ieq(line, vl, verb_names[v]))
            cmd->verb = (pc_smtp_verb)v;

    int addr8 = utf8 && (cmd->verb == PC_SMTP_MAIL || cmd->verb == PC_SMTP_RCPT);
    for (size_t i = 0; i < len; i++)
        if (p[i] >= 0x80 && !addr8)
            return PC_SMTP_E_8BIT;
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return PC_SMTP_E_SYNTAX;
    if (cmd->verb == PC_SMTP_UNKNOWN)
        return PC_SMTP_E_UNKNOWN;

    size_t as = vl < len ? vl + 1 : len, ae = len;
    while (ae > as && line[ae - 1] == ' ')
        ae--;
    cmd->arg = (pc_slice){line + as, ae - as};
    const char *a = cmd->arg.p;
    size_t an = cmd->arg.n;

    switch (cmd->verb) {
    case PC_SMTP_DATA:
    case PC_SMTP_RSET:
    case PC_SMTP_QUIT:
    case PC_SMTP_STARTTLS: return an ? PC_SMTP_E_SYNTAX : PC_SMTP_E_OK;
    case PC_SMTP_NOOP:
    case PC_SMTP_HELP: return PC_SMTP_E_OK;
    case PC_SMTP_MAIL:
    case PC_SMTP_RCPT: return mailrcpt_parse(a, an, utf8, cmd);
    default: return an ? PC_SMTP_E_OK : PC_SMTP_E_SYNTAX;
    }
}

int pc_smtp_param_find(const pc_smtp_cmd *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->nparams; i++)
        if (pc_ascii_ieq(cmd->params[i].key.p, cmd->params[i].key.n, name))
            return (int)i;
    return -1;
}
