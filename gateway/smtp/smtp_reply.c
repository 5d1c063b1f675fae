/* smtp_reply.c — parses one whole (multi-line) SMTP reply from the upstream, bounded and pure.
 * Defends against endless or huge replies, bare LF/CR, NUL and mismatched codes. */
#include "smtp/smtp_reply.h"

#include <string.h>

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Checks that p[0..n) (n may be short of a full prefix) can start "ddd[ -]" or "ddd" CRLF. */
static int prefix_ok(const unsigned char *p, size_t n)
{
    if (n > 0 && (p[0] < '2' || p[0] > '5'))
        return 0;
    if (n > 1 && (p[1] < '0' || p[1] > '5'))
        return 0;
    if (n > 2 && !is_digit(p[2]))
        return 0;
    if (n > 3 && p[3] != ' ' && p[3] != '-' && p[3] != '\r')
        return 0;
    return 1;
}

/* "d.ddd.ddd" at the start of t[0..n), followed by a space or the end; class must match. */
static void enhanced_code(const char *t, size_t n, int code, char *out)
{
    const unsigned char *p = (const unsigned char *)t;
    size_t i = 0;
    out[0] = '\0';
    if (n < 5 || p[0] != '0' + code / 100 || p[1] != '.')
        return;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t s = i;
        while (i < n && is_digit(p[i]) && i - s < 4)
            i++;
        if (i == s || i - s > 3)
            return;
        if (part == 0) {
            if (i >= n || p[i] != '.')
                return;
            i++;
        }
    }
    if (i < n && p[i] != ' ')
        return;
    memcpy(out, t, i);
    out[i] = '\0';
}

int pc_smtp_reply_parse(const char *buf, size_t len, pc_smtp_reply *r)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t pos = 0;
    r->code = 0;
    r->enhanced[0] = '\0';
    r->nlines = 0;
    r->consumed = 0;
    for (;;) {
        if (r->nlines >= PC_SMTP_REPLY_MAX_LINES)
            return PC_TOO_LONG;
        size_t avail = len - pos;
        /* Scan this line up to its LF, within what the byte limit still allows. */
        size_t room = PC_SMTP_REPLY_MAX_BYTES - pos;
        size_t scan = avail < room ? avail : room;
        const unsigned char *l = p + pos;
        size_t i = 0;
        while (i < scan && l[i] != '\n') {
            if (l[i] == '\0')
                return PC_INVALID;
            if (l[i] == '\r' && i + 1 < avail && l[i + 1] != '\n')
                return PC_INVALID;
            i++;
        }
        if (!prefix_ok(l, i < 4 ? i : 4))
            return PC_INVALID;
        if (i >= scan)
            return avail >= room ? PC_TOO_LONG : PC_NEED_MORE;
        /* l[i] == '\n' */
        if (i == 0 || l[i - 1] != '\r')
            return PC_INVALID;
        size_t ll = i - 1; /* line length without CRLF */
        if (ll < 3 || (ll > 3 && l[3] != ' ' && l[3] != '-'))
            return PC_INVALID;
        int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
        if (r->nlines == 0)
            r->code = code;
        else if (code != r->code)
            return PC_INVALID;
        int last = ll == 3 || l[3] == ' ';
        const char *text = (const char *)l + (ll > 3 ? 4 : 3);
        size_t tn = ll > 3 ? ll - 4 : 0;
        if (r->nlines == 0)
            enhanced_code(text, tn, code, r->enhanced);
        r->lines[r->nlines++] = (pc_slice){text, tn};
        pos += i + 1;
        if (last) {
            r->consumed = pos;
            return PC_OK;
        }
        if (pos > PC_SMTP_REPLY_MAX_BYTES)
            return PC_TOO_LONG;
    }
}
