/* proxy.c — PROXY protocol v1/v2 header parsing and the v2 builder; pure.
 * Defends against lenient v1 addresses/ports, truncated or oversize v2 headers, bad families. */
#include "parse/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "parse/parse.h"

static const unsigned char V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char V1_SIG[] = "PROXY ";

/* Next space-separated token of line[*pos..end): exactly one space between tokens. */
static int token(const char *line, size_t end, size_t *pos, const char **t, size_t *tn)
{
    size_t s = *pos, i = s;
    while (i < end && line[i] != ' ')
        i++;
    if (i == s)
        return -1;
    *t = line + s;
    *tn = i - s;
    *pos = i < end ? i + 1 : i;
    if (i < end && *pos >= end)
        return -1; /* a trailing space */
    return 0;
}

static int port_parse(const char *t, size_t n, unsigned *port)
{
    unsigned v = 0;
    if (n == 0 || n > 5 || (n > 1 && t[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(t[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

static int addr_parse(int af, const char *t, size_t n, unsigned port, struct sockaddr_storage *ss)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, t, n);
    tmp[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, tmp, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        if (memchr(t, '%', n) || inet_pton(AF_INET6, tmp, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
    }
    return 0;
}

static int parse_v1(const char *b, size_t len, pc_proxy_info *info, size_t *consumed)
{
    size_t lim = len < PC_PROXY_V1_MAX ? len : PC_PROXY_V1_MAX;
    size_t i = 0;
    while (i < lim && b[i] != '\n') {
        if (b[i] == '\0' || (b[i] == '\r' && i + 1 < len && b[i + 1] != '\n'))
            return PC_INVALID;
        i++;
    }
    if (i >= lim)
        return len >= PC_PROXY_V1_MAX ? PC_INVALID : PC_NEED_MORE;
    if (i == 0 || b[i - 1] != '\r')
        return PC_INVALID;
    size_t end = i - 1, pos = 6;
    const char *t;
    size_t tn;
    if (token(b, end, &pos, &t, &tn) < 0)
        return PC_INVALID;
    memset(info, 0, sizeof(*info));
    info->version = 1;
    if (tn == 7 && memcmp(t, "UNKNOWN", 7) == 0) {
        info->local = 1; /* anything after UNKNOWN is ignored, as the spec says */
        *consumed = i + 1;
        return PC_OK;
    }
    int af;
    if (tn == 4 && memcmp(t, "TCP4", 4) == 0)
        af = AF_INET;
    else if (tn == 4 && memcmp(t, "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return PC_INVALID;
    const char *sa, *da, *sp, *dp;
    size_t san, dan, spn, dpn;
    unsigned sport, dport;
    if (token(b, end, &pos, &sa, &san) < 0 || token(b, end, &pos, &da, &dan) < 0 ||
        token(b, end, &pos, &sp, &spn) < 0 || token(b, end, &pos, &dp, &dpn) < 0 || pos != end)
        return PC_INVALID;
    if (port_parse(sp, spn, &sport) < 0 || port_parse(dp, dpn, &dport) < 0 ||
        addr_parse(af, sa, san, sport, &info->src) < 0 ||
        addr_parse(af, da, dan, dport, &info->dst) < 0)
        return PC_INVALID;
    *consumed = i + 1;
    return PC_OK;
}

static int parse_v2(const unsigned char *b, size_t len, pc_proxy_info *info, size_t *consumed)
{
    if (len > 12 && (b[12] >> 4) != 2)
        return PC_INVALID;
    int cmd = len > 12 ? (b[12] & 0x0F) : 0;
    if (cmd > 1)
        return PC_INVALID;
    if (len > 13 && cmd == 1 && b[13] != 0x11 && b[13] != 0x21)
        return PC_INVALID;
    if (len < 16)
        return PC_NEED_MORE;
    size_t alen = ((size_t)b[14] << 8) | b[15];
    if (16 + alen > PC_PROXY_V2_MAX)
        return PC_INVALID;
    if (cmd == 1 && ((b[13] == 0x11 && alen < 12) || (b[13] == 0x21 && alen < 36)))
        return PC_INVALID;
    if (len < 16 + alen)
        return PC_NEED_MORE;
    memset(info, 0, sizeof(*info));
    info->version = 2;
    const unsigned char *a = b + 16;
    if (cmd == 0) {
        info->local = 1;
    } else if (b[13] == 0x11) {
        struct sockaddr_in *s = (struct sockaddr_in *)&info->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&info->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&info->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    }
    *consumed = 16 + alen; /* TLVs after the addresses are skipped */
    return PC_OK;
}

int pc_proxy_parse(const unsigned char *buf, size_t len, pc_proxy_info *info, size_t *consumed)
{
    if (len == 0)
        return PC_NEED_MORE;
    size_t k1 = len < 6 ? len : 6, k2 = len < 12 ? len : 12;
    if (memcmp(buf, V1_SIG, k1) == 0)
        return len < 6 ? PC_NEED_MORE : parse_v1((const char *)buf, len, info, consumed);
    if (memcmp(buf, V2_SIG, k2) == 0)
        return len < 12 ? PC_NEED_MORE : parse_v2(buf, len, info, consumed);
    return PC_INVALID;
}

size_t pc_proxy_v2_build(unsigned char *out, size_t outlen, const struct sockaddr *src,
                         const struct sockaddr *dst)
{
    if (!src || !dst || src->sa_family != dst->sa_family)
        return 0;
    size_t alen;
    unsigned char fam;
    if (src->sa_family == AF_INET) {
        alen = 12;
        fam = 0x11;
    } else if (src->sa_family == AF_INET6) {
        alen = 36;
        fam = 0x21;
    } else {
        return 0;
    }
    if (outlen < 16 + alen)
        return 0;
    memcpy(out, V2_SIG, 12);
    out[12] = 0x21; /* version 2, PROXY */
    out[13] = fam;
    out[14] = 0;
    out[15] = (unsigned char)alen;
    unsigned char *a = out + 16;
    if (fam == 0x11) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src;
        const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
        memcpy(a, &s->sin_addr, 4);
        memcpy(a + 4, &d->sin_addr, 4);
        memcpy(a + 8, &s->sin_port, 2);
        memcpy(a + 10, &d->sin_port, 2);
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
        const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;
        memcpy(a, &s->sin6_addr, 16);
        memcpy(a + 16, &d->sin6_addr, 16);
        memcpy(a + 32, &s->sin6_port, 2);
        memcpy(a + 34, &d->sin6_port, 2);
    }
    return 16 + alen;
}
