/* tags.c — one value of a DKIM tag-list (see tags.h). */
#include "tags.h"

#include <string.h>

static int wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

long pc_dkim_tag(const char *v, const char *tag, char *out, size_t outlen)
{
    size_t tl = strlen(tag);
    long found = -1;
    const char *p = v;
    while (*p) {
        while (wsp(*p) || *p == ';')
            p++;
        if (!*p)
            break;
        const char *name = p;
        while (*p && *p != '=' && *p != ';' && !wsp(*p))
            p++;
        size_t nl = (size_t)(p - name);
        while (wsp(*p))
            p++;
        if (*p != '=') { /* not a tag=value: skip to the next ';' */
            while (*p && *p != ';')
                p++;
            continue;
        }
        p++;
        const char *val = p;
        while (*p && *p != ';')
            p++;
        const char *end = p;
        if (nl == tl && memcmp(name, tag, tl) == 0) {
            if (found >= 0)
                return -1; /* a tag may appear once (RFC 6376 §3.2) */
            size_t n = 0;
            for (const char *q = val; q < end; q++) {
                if (wsp(*q))
                    continue; /* FWS inside values is not part of them (b=, bh=, p=) */
                if (n + 1 >= outlen)
                    return -1;
                out[n++] = *q;
            }
            if (outlen)
                out[n] = '\0';
            found = (long)n;
        }
    }
    return found;
}
