/* urls.c — host names of http/https URLs in text (see urls.h). */
#include "portcullis/urls.h"

#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int host_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* Does p[i..] start with "http://" or "https://" (any case)? Returns the length of the scheme and
 * its "://", or 0. */
static size_t scheme(const char *p, size_t n, size_t i)
{
    static const char http[] = "http";
    if (n - i < 7)
        return 0;
    for (size_t k = 0; k < 4; k++)
        if (lower((unsigned char)p[i + k]) != http[k])
            return 0;
    size_t j = i + 4;
    if (lower((unsigned char)p[j]) == 's')
        j++;
    if (n - j < 3 || p[j] != ':' || p[j + 1] != '/' || p[j + 2] != '/')
        return 0;
    return j + 3 - i;
}

/* A plausible DNS name of at least two labels that is not all digits and dots. */
static int plausible(const char *h, size_t len)
{
    if (len < 3 || h[0] == '.' || h[0] == '-')
        return 0;
    int dots = 0, alpha = 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        if (h[i] == '.') {
            if (label == 0 || label > 63)
                return 0;
            dots++;
            label = 0;
        } else {
            label++;
            if (!(h[i] >= '0' && h[i] <= '9'))
                alpha = 1;
        }
    }
    return dots > 0 && label > 0 && label <= 63 && alpha;
}

size_t pc_url_hosts(const char *p, size_t n, size_t max,
                    void (*cb)(void *ud, const char *host, size_t len), void *ud)
{
    char seen[64][PC_URL_HOST_MAX + 1];
    size_t nseen = 0;
    if (max > 64)
        max = 64;
    for (size_t i = 0; i + 7 <= n && nseen < max; i++) {
        if (p[i] != 'h' && p[i] != 'H')
            continue;
        if (i > 0 && ((p[i - 1] >= 'a' && p[i - 1] <= 'z') || (p[i - 1] >= 'A' && p[i - 1] <= 'Z')))
            continue; /* "xhttp://" is not a URL */
        size_t s = scheme(p, n, i);
        if (!s)
            continue;
        size_t a = i + s, e = a;
        /* the authority: up to '/', '?', '#', white space, quotes or brackets */
        while (e < n && e - a < 512) {
            unsigned char c = (unsigned char)p[e];
            if (c == '/' || c == '?' || c == '#' || c <= ' ' || c == '"' || c == '\'' || c == '<' ||
                c == '>' || c == '(' || c == ')' || c == '[' || c == ']' || c >= 0x7f)
                break;
            e++;
        }
        i = e > i ? e - 1 : i;
        const char *at = NULL;
        for (const char *q = p + a; q < p + e; q++)
            if (*q == '@')
                at = q;
        if (at)
            a = (size_t)(at - p) + 1;
        char host[PC_URL_HOST_MAX + 1];
        size_t len = 0;
        int ok = 1;
        for (size_t k = a; k < e && p[k] != ':'; k++) {
            int c = lower((unsigned char)p[k]);
            if (!host_char(c) || len >= PC_URL_HOST_MAX) {
                ok = 0;
                break;
            }
            host[len++] = (char)c;
        }
        while (len && host[len - 1] == '.')
            len--;
        if (!ok || !plausible(host, len))
            continue;
        host[len] = '\0';
        int dup = 0;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = strcmp(seen[k], host) == 0;
        if (dup)
            continue;
        memcpy(seen[nseen++], host, len + 1);
        cb(ud, host, len);
    }
    return nseen;
}
