/* fields.c — reading ARC header fields (see fields.h). */
#include "fields.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int pc_arc_aar_instance(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && wsp(v[i]))
        i++;
    if (i >= n || (v[i] != 'i' && v[i] != 'I'))
        return -1;
    i++;
    while (i < n && wsp(v[i]))
        i++;
    if (i >= n || v[i] != '=')
        return -1;
    i++;
    while (i < n && wsp(v[i]))
        i++;
    int k = 0, digits = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9' && digits < 3) {
        k = k * 10 + (v[i++] - '0');
        digits++;
    }
    while (i < n && wsp(v[i]))
        i++;
    if (!digits || i >= n || v[i] != ';' || k < 1 || k > PC_ARC_MAX_INSTANCE)
        return -1;
    return k;
}

size_t pc_arc_strip_b(const char *f, size_t n, char *out)
{
    const char *colon = memchr(f, ':', n);
    if (!colon)
        return (size_t)-1;
    size_t i = (size_t)(colon - f) + 1, o = 0;
    memcpy(out, f, i);
    o = i;
    int found = 0;
    while (i < n) {
        /* at the start of a tag: white space, then its name */
        size_t s = i;
        while (i < n && wsp(f[i]))
            i++;
        size_t name = i;
        while (i < n && f[i] != '=' && f[i] != ';' && !wsp(f[i]))
            i++;
        size_t nl = i - name;
        while (i < n && wsp(f[i]))
            i++;
        int is_b = !found && nl == 1 && (f[name] == 'b') && i < n && f[i] == '=';
        if (is_b) {
            memcpy(out + o, f + s, i + 1 - s); /* up to and with the '=' */
            o += i + 1 - s;
            i++;
            while (i < n && f[i] != ';')
                i++; /* the value goes */
            found = 1;
        } else {
            memcpy(out + o, f + s, i - s);
            o += i - s;
            while (i < n && f[i] != ';')
                out[o++] = f[i++];
        }
        if (i < n) /* the ';' */
            out[o++] = f[i++];
    }
    return found ? o : (size_t)-1;
}

size_t pc_arc_canon_relaxed(const char *f, size_t n, int crlf, char *out)
{
    const char *colon = memchr(f, ':', n);
    if (!colon)
        return (size_t)-1;
    size_t nl = (size_t)(colon - f), o = 0;
    while (nl && wsp(f[nl - 1]))
        nl--;
    for (size_t i = 0; i < nl; i++)
        out[o++] = (char)tolower((unsigned char)f[i]);
    out[o++] = ':';
    size_t i = (size_t)(colon - f) + 1;
    while (i < n && wsp(f[i]))
        i++;
    int pending = 0;
    for (; i < n; i++) {
        if (f[i] == '\r' || f[i] == '\n')
            continue; /* unfolding */
        if (f[i] == ' ' || f[i] == '\t') {
            pending = 1;
            continue;
        }
        if (pending)
            out[o++] = ' ';
        pending = 0;
        out[o++] = f[i];
    }
    if (crlf) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    return o;
}

static int domain_ok(const char *d, size_t n)
{
    if (!n || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)d[i]) && d[i] != '-' && d[i] != '_' && d[i] != '.')
            return 0;
    return 1;
}

/* The value of property prop ("header.d") among the tokens of one resinfo r[0..n). */
static int prop(const char *r, size_t n, const char *name, const char **v, size_t *vl)
{
    size_t pl = strlen(name), i = 0;
    while (i < n) {
        while (i < n && wsp(r[i]))
            i++;
        size_t s = i;
        while (i < n && !wsp(r[i]))
            i++;
        if (i - s > pl + 1 && strncasecmp(r + s, name, pl) == 0 && r[s + pl] == '=') {
            *v = r + s + pl + 1;
            *vl = i - s - pl - 1;
            return 0;
        }
    }
    return -1;
}

int pc_arc_vouch(const char *aar, const char *sealer, char *out, size_t outlen)
{
    char clean[4096];
    size_t n = 0;
    int depth = 0, quoted = 0;
    /* comments and quoted strings out (RFC 8601 §2.2); nesting bounded by the buffer */
    for (const char *p = aar; *p && n + 1 < sizeof(clean); p++) {
        if (quoted) {
            if (*p == '"')
                quoted = 0;
            continue;
        }
        if (*p == '(' && depth < 32) {
            depth++;
            continue;
        }
        if (*p == ')' && depth) {
            depth--;
            continue;
        }
        if (depth)
            continue;
        if (*p == '"') {
            quoted = 1;
            continue;
        }
        clean[n++] = *p;
    }
    clean[n] = '\0';
    if (!domain_ok(sealer, strlen(sealer)))
        return 0;
    int added = 0, seg = 0;
    size_t used = outlen ? strlen(out) : 0;
    for (char *s = clean, *e; s && *s; s = e ? e + 1 : NULL, seg++) {
        e = strchr(s, ';');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (seg < 2)
            continue; /* i=N, then the authserv-id */
        while (len && wsp(*s)) {
            s++;
            len--;
        }
        static const struct {
            const char *method, *prop;
        } m[] = {{"dmarc=pass", "header.from"},
                 {"dkim=pass", "header.d"},
                 {"spf=pass", "smtp.mailfrom"}};
        for (size_t k = 0; k < 3; k++) {
            size_t ml = strlen(m[k].method);
            if (len <= ml || strncasecmp(s, m[k].method, ml) != 0 || !wsp(s[ml]))
                continue;
            const char *v = NULL;
            size_t vl = 0;
            if (prop(s + ml, len - ml, m[k].prop, &v, &vl) < 0 &&
                (k != 1 || prop(s + ml, len - ml, "header.i", &v, &vl) < 0))
                break;
            const char *at = memchr(v, '@', vl);
            while (at) { /* the domain of an address: after its last '@' */
                vl -= (size_t)(at + 1 - v);
                v = at + 1;
                at = memchr(v, '@', vl);
            }
            if (!domain_ok(v, vl))
                break;
            size_t need = strlen(m[k].method) - 5 + 1 + vl + 1 + strlen(sealer) + (used ? 1 : 0);
            if (used + need + 1 > outlen)
                break;
            if (used)
                out[used++] = ' ';
            size_t mk = strlen(m[k].method) - 5; /* without "=pass" */
            memcpy(out + used, m[k].method, mk);
            used += mk;
            out[used++] = ':';
            for (size_t c = 0; c < vl; c++)
                out[used++] = (char)tolower((unsigned char)v[c]);
            out[used++] = ':';
            memcpy(out + used, sealer, strlen(sealer));
            used += strlen(sealer);
            out[used] = '\0';
            added++;
            break;
        }
    }
    return added;
}

size_t pc_arc_next_field(const char *p, size_t n, size_t *flen)
{
    *flen = 0;
    if (n == 0 || p[0] == '\n' || (p[0] == '\r' && n > 1 && p[1] == '\n'))
        return 0;
    size_t i = 0;
    for (;;) {
        const char *lf = memchr(p + i, '\n', n - i);
        if (!lf) {
            *flen = n;
            return n;
        }
        i = (size_t)(lf - p) + 1;
        if (i >= n || (p[i] != ' ' && p[i] != '\t'))
            break;
    }
    size_t e = i - 1;
    if (e > 0 && p[e - 1] == '\r')
        e--;
    *flen = e;
    return i;
}

void pc_arc_body_init(pc_arc_body *b, int relaxed, void (*emit)(void *, const char *, size_t),
                      void *arg)
{
    *b = (pc_arc_body){.relaxed = relaxed, .emit = emit, .arg = arg};
}

static void flush_empty(pc_arc_body *b)
{
    static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
    while (b->empty) {
        size_t k = b->empty > 16 ? 16 : (size_t)b->empty;
        b->emit(b->arg, crlfs, 2 * k);
        b->empty -= k;
    }
}

/* Content is about to come out on the current line. */
static void content(pc_arc_body *b)
{
    if (!b->content) {
        flush_empty(b);
        b->content = 1;
    }
    if (b->wsp) {
        b->emit(b->arg, " ", 1);
        b->wsp = 0;
    }
}

static void line_end(pc_arc_body *b)
{
    if (b->content) {
        b->emit(b->arg, "\r\n", 2);
        b->any = 1;
    } else {
        b->empty++;
    }
    b->content = b->wsp = 0;
}

void pc_arc_body_feed(pc_arc_body *b, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (b->cr) {
            b->cr = 0;
            if (p[i] == '\n') {
                line_end(b);
                i++;
                continue;
            }
            content(b);
            b->emit(b->arg, "\r", 1);
        }
        /* a run of ordinary bytes in one piece */
        size_t s = i;
        while (i < n && p[i] != '\r' && p[i] != '\n' &&
               (!b->relaxed || (p[i] != ' ' && p[i] != '\t')))
            i++;
        if (i > s) {
            content(b);
            b->emit(b->arg, p + s, i - s);
        }
        if (i >= n)
            break;
        char c = p[i++];
        if (c == '\r')
            b->cr = 1;
        else if (c == '\n')
            line_end(b);
        else
            b->wsp = 1; /* relaxed: a run of WSP is one space, none at the end of a line */
    }
}

void pc_arc_body_end(pc_arc_body *b)
{
    if (b->cr) {
        b->cr = 0;
        content(b);
        b->emit(b->arg, "\r", 1);
    }
    if (b->content)
        line_end(b);
    if (!b->any && !b->relaxed)
        b->emit(b->arg, "\r\n", 2);
}
