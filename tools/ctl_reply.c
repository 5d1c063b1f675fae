/* ctl_reply.c — the admin socket's reply lines, read (see ctl_reply.h). Pure. */
#include "ctl_reply.h"

#include <string.h>

static int starts(const char *p, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n >= k && !memcmp(p, lit, k);
}

ctl_kind ctl_parse_line(ctl_line *l, const char *p, size_t n)
{
    memset(l, 0, sizeof(*l));
    l->kind = CTL_BAD;
    if (starts(p, n, "ok ") || (n == 2 && starts(p, n, "ok"))) {
        size_t v = 0, i = 3;
        if (n <= 3)
            return l->kind;
        for (; i < n && i < 3 + 12; i++) {
            if (p[i] < '0' || p[i] > '9')
                return l->kind;
            v = v * 10 + (size_t)(p[i] - '0');
        }
        if (i != n)
            return l->kind;
        l->n = v;
        return l->kind = CTL_OK;
    }
    if (starts(p, n, "error ")) {
        const char *c = p + 6;
        const char *sp = memchr(c, ' ', n - 6);
        l->type = (ctl_slice){c, sp ? (size_t)(sp - c) : n - 6};
        if (sp)
            l->text = (ctl_slice){sp + 1, n - (size_t)(sp + 1 - p)};
        return l->kind = l->type.n ? CTL_ERROR : CTL_BAD;
    }
    const char *tab = memchr(p, '\t', n);
    size_t tn = tab ? (size_t)(tab - p) : n;
    if (tn == 0)
        return l->kind;
    l->type = (ctl_slice){p, tn};
    size_t off = tn;
    while (off < n) {
        off++; /* the tab */
        const char *f = p + off;
        const char *e = memchr(f, '\t', n - off);
        size_t fn = e ? (size_t)(e - f) : n - off;
        const char *eq = memchr(f, '=', fn);
        if (!eq || eq == f || l->n == CTL_FIELDS)
            return l->kind;
        l->key[l->n] = (ctl_slice){f, (size_t)(eq - f)};
        l->value[l->n] = (ctl_slice){eq + 1, fn - (size_t)(eq - f) - 1};
        l->n++;
        off += fn;
    }
    return l->kind = CTL_RECORD;
}

const char *ctl_get(const ctl_line *l, const char *key, size_t *len)
{
    size_t k = strlen(key);
    for (size_t i = 0; l->kind == CTL_RECORD && i < l->n; i++)
        if (l->key[i].n == k && !memcmp(l->key[i].p, key, k)) {
            *len = l->value[i].n;
            return l->value[i].p;
        }
    *len = 0;
    return NULL;
}
