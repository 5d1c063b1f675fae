/* qmeta.c — the quarantine's metadata file, formatted and parsed (see qmeta.h). Pure: no I/O, no
 * logging; every field has a bound, a line longer than PC_QMETA_LINE_MAX or a file longer than
 * PC_QMETA_FILE_MAX is an error, never a truncation that changes a recipient. */
#include "quarantine/qmeta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/sanitize.h"

#define MAGIC "portcullis-quarantine 1"

int pc_qmeta_id_ok(const char *s)
{
    if (!s)
        return 0;
    size_t i = 0;
    for (; s[i]; i++)
        if (i >= PC_QMETA_ID_LEN || !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == PC_QMETA_ID_LEN;
}

void pc_qmeta_free(pc_qmeta *m)
{
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i].addr);
    free(m->rcpts);
    free(m->history);
    m->rcpts = NULL;
    m->nrcpts = 0;
    m->history = NULL;
    m->historylen = 0;
}

int pc_qmeta_add_rcpt(pc_qmeta *m, const char *addr)
{
    if (m->nrcpts >= PC_QMETA_RCPTS)
        return -1;
    pc_qrcpt *n = realloc(m->rcpts, (m->nrcpts + 1) * sizeof(*n));
    if (!n)
        return -1;
    m->rcpts = n;
    if (!(n[m->nrcpts].addr = strdup(addr)))
        return -1;
    n[m->nrcpts++].released = 0;
    return 0;
}

int pc_qmeta_all_released(const pc_qmeta *m)
{
    for (size_t i = 0; i < m->nrcpts; i++)
        if (!m->rcpts[i].released)
            return 0;
    return 1;
}

/* Copies the value (n bytes) into a field of size cap: -1 when it does not fit. */
static int put(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return 0;
}

static int parse_ll(const char *v, size_t n, long long *out)
{
    long long x = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Keeps a history line (key, space, value) as it was. */
static int keep(pc_qmeta *m, const char *k, size_t kn, const char *v, size_t vn)
{
    size_t add = kn + 1 + vn + 1;
    if (m->historylen + add > PC_QMETA_FILE_MAX)
        return -1;
    char *h = realloc(m->history, m->historylen + add + 1);
    if (!h)
        return -1;
    m->history = h;
    memcpy(h + m->historylen, k, kn);
    h[m->historylen + kn] = ' ';
    memcpy(h + m->historylen + kn + 1, v, vn);
    h[m->historylen + kn + 1 + vn] = '\n';
    m->historylen += add;
    h[m->historylen] = '\0';
    return 0;
}

/* "TIME ... rcpt=ADDR": marks ADDR released or not ("*": all). */
static int apply_release(pc_qmeta *m, const char *v, size_t n, int mark)
{
    const char *r = NULL;
    for (size_t i = 0; i + 5 <= n; i++)
        if ((i == 0 || v[i - 1] == ' ') && !memcmp(v + i, "rcpt=", 5)) {
            r = v + i + 5;
            break;
        }
    if (!r)
        return -1;
    size_t rn = n - (size_t)(r - v);
    for (size_t i = 0; i < m->nrcpts; i++)
        if ((rn == 1 && *r == '*') ||
            (strlen(m->rcpts[i].addr) == rn && !memcmp(m->rcpts[i].addr, r, rn)))
            m->rcpts[i].released = mark;
    if (mark)
        m->nreleases++;
    return 0;
}

static int field(pc_qmeta *m, const char *k, size_t kn, const char *v, size_t vn, int *seen_id)
{
#define IS(lit) (kn == sizeof(lit) - 1 && !memcmp(k, lit, kn))
    long long x;
    if (IS("id")) {
        char id[PC_QMETA_ID_LEN + 1];
        if (put(id, sizeof(id), v, vn) < 0 || !pc_qmeta_id_ok(id))
            return -1;
        memcpy(m->id, id, sizeof(id));
        *seen_id = 1;
        return 0;
    }
    if (IS("time"))
        return parse_ll(v, vn, &m->time);
    if (IS("size")) {
        if (parse_ll(v, vn, &x) < 0)
            return -1;
        m->size = (unsigned long long)x;
        return 0;
    }
    if (IS("score")) {
        char b[32];
        char *e;
        if (put(b, sizeof(b), v, vn) < 0)
            return -1;
        m->score = strtod(b, &e);
        /* a score the gateway could have written: finite, and short in "%.2f" */
        if (e == b || *e || !(m->score >= -1e9 && m->score <= 1e9))
            return -1;
        return 0;
    }
    if (IS("body")) {
        if (vn == 4 && !memcmp(v, "7bit", 4))
            m->body8bit = 0;
        else if (vn == 8 && !memcmp(v, "8bitmime", 8))
            m->body8bit = 1;
        else
            return -1;
        return 0;
    }
    if (IS("smtputf8")) {
        if (vn == 3 && !memcmp(v, "yes", 3))
            m->smtputf8 = 1;
        else if (vn == 2 && !memcmp(v, "no", 2))
            m->smtputf8 = 0;
        else
            return -1;
        return 0;
    }
    if (IS("listener"))
        return put(m->listener, sizeof(m->listener), v, vn);
    if (IS("client"))
        return put(m->client, sizeof(m->client), v, vn);
    if (IS("helo"))
        return put(m->helo, sizeof(m->helo), v, vn);
    if (IS("from"))
        return put(m->from, sizeof(m->from), v, vn);
    if (IS("action"))
        return put(m->action, sizeof(m->action), v, vn);
    if (IS("symbols"))
        return put(m->symbols, sizeof(m->symbols), v, vn);
    if (IS("reason"))
        return put(m->reason, sizeof(m->reason), v, vn);
    if (IS("rcpt")) {
        char a[PC_QMETA_LINE_MAX];
        if (vn == 0 || put(a, sizeof(a), v, vn) < 0)
            return -1;
        return pc_qmeta_add_rcpt(m, a);
    }
    if (IS("released") || IS("unreleased")) {
        int mark = IS("released");
        return apply_release(m, v, vn, mark) < 0 || keep(m, k, kn, v, vn) < 0 ? -1 : 0;
    }
    return 0; /* a key of a later version: ignored */
#undef IS
}

int pc_qmeta_parse(pc_qmeta *m, const char *p, size_t n, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    if (n > PC_QMETA_FILE_MAX) {
        snprintf(err, errlen, "file too large");
        return -1;
    }
    size_t off = 0, lineno = 0;
    int seen_id = 0;
    while (off < n) {
        const char *line = p + off;
        const char *nl = memchr(line, '\n', n - off);
        if (!nl) {
            snprintf(err, errlen, "line %zu: not terminated", lineno + 1);
            return -1;
        }
        size_t len = (size_t)(nl - line);
        off += len + 1;
        lineno++;
        int ctl = 0;
        for (size_t i = 0; i < len && !ctl && len <= PC_QMETA_LINE_MAX; i++)
            ctl = (unsigned char)line[i] < 0x20 || line[i] == 0x7f;
        if (len > PC_QMETA_LINE_MAX || ctl) {
            /* The writer sanitises every value: a control byte means the file is not its own. */
            snprintf(err, errlen, "line %zu: too long or with a control character", lineno);
            return -1;
        }
        if (lineno == 1) {
            if (len != sizeof(MAGIC) - 1 || memcmp(line, MAGIC, len)) {
                snprintf(err, errlen, "not a quarantine metadata file");
                return -1;
            }
            continue;
        }
        const char *sp = memchr(line, ' ', len);
        size_t kn = sp ? (size_t)(sp - line) : len;
        const char *v = sp ? sp + 1 : line + len;
        size_t vn = sp ? len - kn - 1 : 0;
        if (kn == 0 || field(m, line, kn, v, vn, &seen_id) < 0) {
            snprintf(err, errlen, "line %zu: bad value", lineno);
            return -1;
        }
    }
    if (lineno == 0 || !seen_id || m->nrcpts == 0) {
        snprintf(err, errlen, "incomplete (no id or no recipient)");
        return -1;
    }
    return 0;
}

/* ---- writing ----------------------------------------------------------------------------------
 */

typedef struct out {
    char *p;
    size_t len, cap;
    int failed;
} out;

static void add(out *o, const char *key, const char *val)
{
    char clean[PC_QMETA_LINE_MAX];
    size_t need = strlen(key) + 2 + sizeof(clean);
    if (o->failed)
        return;
    if (o->len + need > o->cap) {
        size_t nc = (o->cap ? o->cap * 2 : 4096) + need;
        char *np = nc <= PC_QMETA_FILE_MAX + need ? realloc(o->p, nc) : NULL;
        if (!np) {
            o->failed = 1;
            return;
        }
        o->p = np;
        o->cap = nc;
    }
    size_t room = sizeof(clean) - strlen(key) - 2;
    pc_sanitize(clean, room, val, strlen(val), 1);
    o->len +=
        (size_t)snprintf(o->p + o->len, o->cap - o->len, "%s%s%s\n", key, *key ? " " : "", clean);
}

int pc_qmeta_format(const pc_qmeta *m, char **res, size_t *reslen)
{
    out o = {0};
    char num[64];
    add(&o, "", MAGIC);
    add(&o, "id", m->id);
    snprintf(num, sizeof(num), "%lld", m->time);
    add(&o, "time", num);
    add(&o, "listener", m->listener);
    add(&o, "client", m->client);
    add(&o, "helo", m->helo);
    add(&o, "from", m->from);
    for (size_t i = 0; i < m->nrcpts; i++)
        add(&o, "rcpt", m->rcpts[i].addr);
    add(&o, "action", m->action);
    snprintf(num, sizeof(num), "%.2f", m->score);
    add(&o, "score", num);
    add(&o, "symbols", m->symbols);
    add(&o, "reason", m->reason);
    snprintf(num, sizeof(num), "%llu", m->size);
    add(&o, "size", num);
    if (m->body8bit)
        add(&o, "body", "8bitmime");
    if (m->smtputf8)
        add(&o, "smtputf8", "yes");
    if (!o.failed && m->historylen) {
        char *np = realloc(o.p, o.len + m->historylen + 1);
        if (!np)
            o.failed = 1;
        else {
            o.p = np;
            memcpy(o.p + o.len, m->history, m->historylen);
            o.len += m->historylen;
        }
    }
    if (o.failed || o.len > PC_QMETA_FILE_MAX) {
        free(o.p);
        return -1;
    }
    *res = o.p;
    *reslen = o.len;
    return 0;
}

void pc_qmeta_release_line(char *out, size_t outlen, long long now, unsigned uid, const char *user,
                           const char *rcpt)
{
    char u[64], r[600];
    if (user) {
        pc_sanitize(u, sizeof(u), user, strlen(user), 0);
        for (char *c = u; *c; c++)
            if (*c == ' ')
                *c = '?';
    }
    pc_sanitize(r, sizeof(r), rcpt ? rcpt : "*", strlen(rcpt ? rcpt : "*"), 1);
    if (user)
        snprintf(out, outlen, "released %lld uid=%u user=%s rcpt=%s\n", now, uid, u, r);
    else
        snprintf(out, outlen, "unreleased %lld rcpt=%s\n", now, r);
}

int pc_qmeta_add_history(pc_qmeta *m, const char *line)
{
    size_t n = strlen(line);
    if (n < 2 || line[n - 1] != '\n')
        return -1;
    const char *sp = memchr(line, ' ', n);
    if (!sp)
        return -1;
    size_t kn = (size_t)(sp - line);
    const char *v = sp + 1;
    size_t vn = n - kn - 2;
    int mark = kn == 8 && !memcmp(line, "released", 8);
    if (!mark && !(kn == 10 && !memcmp(line, "unreleased", 10)))
        return -1;
    return apply_release(m, v, vn, mark) < 0 || keep(m, line, kn, v, vn) < 0 ? -1 : 0;
}
