/* values.c — the value parsers of the configuration: durations, sizes, ports, host:port, listener
 * and upstream URLs, networks (CIDR) and their matching, and lookups in a pc_opt map. Strict: no
 * sign, no spaces, no overflow; each returns 0 or -1 and the loader words the error. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/loader.h"

/* Strict decimal: digits only, no sign, no spaces; *end gets the first non-digit. */
int pc_cfg_parse_u64(const char *s, unsigned long long *out, const char **end)
{
    unsigned long long v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return 0;
}

int pc_parse_duration_ms(const char *s, unsigned *ms)
{
    unsigned long long v, mul;
    const char *u;
    if (!s || pc_cfg_parse_u64(s, &v, &u) < 0)
        return -1;
    if (!strcmp(u, "ms"))
        mul = 1;
    else if (!strcmp(u, "s") || !*u)
        mul = 1000;
    else if (!strcmp(u, "m"))
        mul = 60000;
    else if (!strcmp(u, "h"))
        mul = 3600000;
    else if (!strcmp(u, "d"))
        mul = 86400000;
    else
        return -1;
    if (v > UINT_MAX / mul)
        return -1;
    *ms = (unsigned)(v * mul);
    return 0;
}

int pc_parse_size(const char *s, size_t *out)
{
    unsigned long long v;
    const char *u;
    unsigned shift = 0;
    if (!s || pc_cfg_parse_u64(s, &v, &u) < 0)
        return -1;
    switch (*u) {
    case '\0': break;
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    case 't':
    case 'T': shift = 40; break;
    default: return -1;
    }
    if (*u && u[1] && strcmp(u + 1, "B") && strcmp(u + 1, "iB"))
        return -1;
    if (v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

/* A port: 0..65535, decimal. */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long long v;
    const char *end;
    if (pc_cfg_parse_u64(s, &v, &end) < 0 || *end || v > 65535 || end - s > 5)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* Splits "host:port" or "[v6]:port" (port optional when allow_noport) into host and port. */
int pc_cfg_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port,
                          int allow_noport)
{
    const char *h = s, *colon;
    size_t n;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return -1;
        h = s + 1;
        n = (size_t)(close - h);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (!colon && close[1])
            return -1;
        if (!memchr(h, ':', n))
            return -1; /* brackets are for IPv6 only */
    } else {
        colon = strrchr(s, ':');
        if (colon && memchr(s, ':', (size_t)(colon - s)))
            return -1; /* a bare IPv6 address: needs brackets */
        n = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    if (!colon) {
        if (!allow_noport)
            return -1;
        *port = 0;
        return 0;
    }
    return parse_port(colon + 1, port);
}

int pc_parse_hostport(const char *s, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 1];
    uint16_t port;
    if (!s || pc_cfg_split_hostport(s, host, sizeof(host), &port, 0) < 0)
        return -1;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (*s != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return 0;
    }
    if (*s == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

static const struct scheme {
    const char *name;
    pc_proto proto;
    pc_tls_mode tls;
    uint16_t port;
} schemes[] = {
    {"smtp", PC_PROTO_SMTP, PC_TLS_NONE, 25},
    {"smtps", PC_PROTO_SMTP, PC_TLS_IMPLICIT, 465},
    {"smtp+starttls", PC_PROTO_SMTP, PC_TLS_STARTTLS, 25},
    {"pop3", PC_PROTO_POP3, PC_TLS_NONE, 110},
    {"pop3s", PC_PROTO_POP3, PC_TLS_IMPLICIT, 995},
    {"pop3+stls", PC_PROTO_POP3, PC_TLS_STARTTLS, 110},
    {"imap", PC_PROTO_IMAP, PC_TLS_NONE, 143},
    {"imaps", PC_PROTO_IMAP, PC_TLS_IMPLICIT, 993},
    {"imap+starttls", PC_PROTO_IMAP, PC_TLS_STARTTLS, 143},
};

uint16_t pc_cfg_default_port(pc_proto proto, pc_tls_mode tls)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (schemes[i].proto == proto && schemes[i].tls == tls)
            return schemes[i].port;
    return 0;
}

int pc_parse_url(const char *url, pc_proto *proto, pc_tls_mode *tls, char *hostbuf, size_t hostlen,
                 uint16_t *port)
{
    const char *sep = url ? strstr(url, "://") : NULL;
    if (!sep)
        return -1;
    const struct scheme *sc = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i].name) == (size_t)(sep - url) &&
            !strncmp(url, schemes[i].name, (size_t)(sep - url)))
            sc = &schemes[i];
    if (!sc)
        return -1;
    char rest[300];
    size_t n = strlen(sep + 3);
    if (n >= sizeof(rest))
        return -1;
    memcpy(rest, sep + 3, n + 1);
    if (n > 0 && rest[n - 1] == '/')
        rest[n - 1] = '\0';
    if (strpbrk(rest, "/?#@ \t\r\n"))
        return -1;
    uint16_t p;
    if (pc_cfg_split_hostport(rest, hostbuf, hostlen, &p, 1) < 0)
        return -1;
    *proto = sc->proto;
    *tls = sc->tls;
    *port = p ? p : sc->port;
    return 0;
}

int pc_net_parse(const char *s, pc_net *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = s ? strchr(s, '/') : NULL;
    size_t n = slash ? (size_t)(slash - s) : (s ? strlen(s) : 0);
    if (n == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->prefix = max;
    if (slash) {
        unsigned long long v;
        const char *end;
        if (pc_cfg_parse_u64(slash + 1, &v, &end) < 0 || *end || v > max)
            return -1;
        out->prefix = (unsigned)v;
    }
    /* A v4-mapped block is stored as IPv4 so that one comparison rule serves both. */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (out->family == AF_INET6 && out->prefix >= 96 && !memcmp(out->addr, mapped, 12)) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= 96;
    }
    /* Host bits are cleared: "192.168.1.1/24" means 192.168.1.0/24. */
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = out->prefix > i * 8 ? out->prefix - i * 8 : 0;
        if (bits < 8)
            out->addr[i] &= (unsigned char)(0xff00u >> bits);
    }
    return 0;
}

int pc_netlist_match(const pc_netlist *l, const struct sockaddr *addr)
{
    unsigned char a[16];
    int family;
    if (!l || !addr)
        return 0;
    if (addr->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
        family = AF_INET;
    } else if (addr->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(a, in6->s6_addr + 12, 4);
            family = AF_INET;
        } else {
            memcpy(a, in6->s6_addr, 16);
            family = AF_INET6;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        const pc_net *net = &l->v[i];
        if (net->family != family)
            continue;
        unsigned full = net->prefix / 8, rest = net->prefix % 8;
        if (memcmp(a, net->addr, full))
            continue;
        if (rest && ((a[full] ^ net->addr[full]) & (0xff00u >> rest) & 0xff))
            continue;
        return 1;
    }
    return 0;
}

const pc_opt *pc_opt_get(const pc_opt *map, const char *key)
{
    if (!map || map->kind != PC_OPT_MAP || !key)
        return NULL;
    for (const pc_opt *c = map->child; c; c = c->next)
        if (c->key && !strcmp(c->key, key))
            return c;
    return NULL;
}

const char *pc_opt_str(const pc_opt *map, const char *key, const char *def)
{
    const pc_opt *n = pc_opt_get(map, key);
    return n && n->kind == PC_OPT_SCALAR ? n->value : def;
}

int pc_cfg_valid_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || *s == '.' || *s == '-' || strstr(s, ".."))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

/* "user@domain", "@domain" or "domain": a local part of RFC 5322 atext, dots and UTF-8 (at most
 * 64 bytes), and a DNS name. */
int pc_cfg_valid_mailaddr(const char *s)
{
    const char *at = strrchr(s, '@');
    if (!at)
        return pc_cfg_valid_hostname(s);
    if (at - s > 64 || !pc_cfg_valid_hostname(at + 1))
        return 0;
    for (const char *p = s; p < at; p++)
        if (!((unsigned char)*p >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~.", *p) ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}
