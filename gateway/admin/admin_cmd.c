/* admin_cmd.c — the admin socket's request line parser (see admin_cmd.h). Pure. */
#include "admin/admin_cmd.h"

#include <stdio.h>
#include <string.h>

#include "quarantine/qmeta.h"

typedef struct word {
    const char *p;
    size_t n;
} word;

static int is(word w, const char *lit)
{
    return w.n == strlen(lit) && !memcmp(w.p, lit, w.n);
}

/* key=value with key exactly k: the value into out (bounded, printable, no space). */
static int option(word w, const char *k, char *out, size_t cap)
{
    size_t kn = strlen(k);
    if (w.n <= kn + 1 || memcmp(w.p, k, kn) || w.p[kn] != '=' || w.n - kn - 1 >= cap)
        return 0;
    for (size_t i = kn + 1; i < w.n; i++)
        if ((unsigned char)w.p[i] <= ' ' || w.p[i] == 0x7f)
            return 0;
    memcpy(out, w.p + kn + 1, w.n - kn - 1);
    out[w.n - kn - 1] = '\0';
    return 1;
}

static int id_word(word w, char *id)
{
    if (w.n != 32)
        return -1;
    memcpy(id, w.p, 32);
    id[32] = '\0';
    return pc_qmeta_id_ok(id) ? 0 : -1;
}

int pc_admin_cmd_parse(pc_admin_cmd *c, const char *line, size_t len, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    word w[6];
    size_t nw = 0, i = 0;
    if (len > PC_ADMIN_LINE_MAX) {
        snprintf(err, errlen, "line too long");
        return -1;
    }
    while (i < len) {
        size_t j = i;
        while (j < len && line[j] != ' ')
            j++;
        if (j == i || nw == sizeof(w) / sizeof(w[0])) {
            snprintf(err, errlen, "bad request: words are separated by one space, at most 5");
            return -1;
        }
        w[nw++] = (word){line + i, j - i};
        i = j + (j < len);
        if (j < len && j + 1 == len) {
            snprintf(err, errlen, "bad request: trailing space");
            return -1;
        }
    }
    if (nw < 2 || !is(w[0], "quarantine")) {
        snprintf(err, errlen, "unknown command");
        return -1;
    }
    if (is(w[1], "list")) {
        c->verb = PC_ADMIN_LIST;
        for (size_t k = 2; k < nw; k++) {
            char num[24];
            if (option(w[k], "rcpt", c->rcpt, sizeof(c->rcpt)))
                continue;
            if (option(w[k], "since", num, 20)) {
                long long v = 0;
                for (const char *p = num; *p; p++) {
                    if (*p < '0' || *p > '9') {
                        snprintf(err, errlen, "since: a Unix time");
                        return -1;
                    }
                    v = v * 10 + (*p - '0');
                }
                c->since = v;
                continue;
            }
            snprintf(err, errlen, "list: unknown argument");
            return -1;
        }
        return 0;
    }
    pc_admin_verb v = is(w[1], "show")      ? PC_ADMIN_SHOW
                      : is(w[1], "release") ? PC_ADMIN_RELEASE
                      : is(w[1], "delete")  ? PC_ADMIN_DELETE
                                            : 0;
    if (!v) {
        snprintf(err, errlen, "unknown command");
        return -1;
    }
    c->verb = v;
    if (nw < 3 || id_word(w[2], c->id) < 0) {
        snprintf(err, errlen, "an ID (32 hex digits) is needed");
        return -1;
    }
    if (nw == 4 && v == PC_ADMIN_RELEASE && option(w[3], "rcpt", c->rcpt, sizeof(c->rcpt)))
        return 0;
    if (nw > 3) {
        snprintf(err, errlen, "too many arguments");
        return -1;
    }
    return 0;
}
