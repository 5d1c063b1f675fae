/* sanitize.c — makes raw network bytes safe to echo (replies, headers, logs); XCLIENT xtext.
 * Defends against CR/LF/NUL injection into replies, header fields and log lines. */
#include "parse/sanitize.h"

#include <string.h>

char *pc_sanitize(char *out, size_t outlen, const char *src, size_t srclen, int keep8bit)
{
    if (!out || outlen == 0)
        return out;
    size_t room = outlen - 1, n = srclen, dots = 0;
    if (!src)
        n = 0;
    if (n > room) {
        dots = room < 3 ? room : 3;
        n = room - dots;
        /* do not cut a UTF-8 sequence in half */
        while (keep8bit && n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !keep8bit))
            c = '?';
        out[i] = (char)c;
    }
    memset(out + n, '.', dots);
    out[n + dots] = '\0';
    return out;
}

int pc_xtext_encode(char *out, size_t outlen, const char *src, size_t srclen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < srclen; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c <= 0x20 || c >= 0x7f || c == '+' || c == '=') {
            if (o + 3 >= outlen)
                return -1;
            out[o++] = '+';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)c;
        }
    }
    if (o >= outlen || o > 0x7fffffff)
        return -1;
    out[o] = '\0';
    return (int)o;
}
