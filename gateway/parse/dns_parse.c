/* dns_parse.c — DNS response parser (see dns_parse.h). Pure and bounded: every field is checked
 * against the message's end and its record's RDLENGTH; compression pointers must point strictly
 * backwards and at most 127 are followed per name; a name is at most 255 bytes on the wire; at
 * most PC_DNS_MAX_RR records and PC_DNS_MAX_CNAME CNAME hops are taken. Records whose owner is not
 * the question's name (or the CNAME chain's current target) are ignored, not trusted.
 *
 * Two passes over the same bytes: the first validates and measures, the second fills one
 * allocation of exactly that size, so the result can be copied (cache) with one memcpy. */
#include "parse/dns_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { T_CNAME = 5, T_SOA = 6, C_IN = 1 };

typedef struct rd {
    const unsigned char *b; /* the whole message (names inside RDATA may point anywhere) */
    size_t len;
} rd;

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Reads the name at *pos (expanding pointers) into out (PC_DNS_NAME_MAX bytes) in presentation
 * form; *pos moves past the name as it appears at *pos. Returns 0 or a pc_dns_parse_err. */
static int read_name(const rd *m, size_t *pos, char *out, size_t *outlen)
{
    size_t p = *pos, end = 0, o = 0, wire = 1;
    int jumped = 0;
    unsigned hops = 0;
    for (;;) {
        if (p >= m->len)
            return PC_DNS_PARSE_SHORT;
        unsigned c = m->b[p];
        if ((c & 0xC0) == 0xC0) {
            if (p + 1 >= m->len)
                return PC_DNS_PARSE_SHORT;
            size_t target = ((size_t)(c & 0x3F) << 8) | m->b[p + 1];
            if (!jumped)
                end = p + 2;
            jumped = 1;
            if (target >= p || ++hops > 127)
                return PC_DNS_PARSE_INVALID;
            p = target;
            continue;
        }
        if (c & 0xC0) /* 0x40 and 0x80: extended label types, never valid here */
            return PC_DNS_PARSE_INVALID;
        if (c == 0) {
            if (!jumped)
                end = p + 1;
            break;
        }
        if (p + 1 + c > m->len)
            return PC_DNS_PARSE_SHORT;
        wire += c + 1;
        if (wire > 255)
            return PC_DNS_PARSE_INVALID;
        if (o)
            out[o++] = '.';
        for (size_t i = 0; i < c; i++) {
            unsigned char ch = m->b[p + 1 + i];
            if (ch > 0x20 && ch < 0x7f && ch != '.' && ch != '\\') {
                out[o++] = (char)ch;
            } else {
                snprintf(out + o, 5, "\\%03u", ch);
                o += 4;
            }
        }
        p += 1 + c;
    }
    out[o] = '\0'; /* o <= 4 * 254: within PC_DNS_NAME_MAX */
    *outlen = o;
    *pos = end;
    return 0;
}

/* The question's name without its trailing dot, for comparisons. */
static size_t qlen_of(const char *q)
{
    size_t n = strlen(q);
    return n && q[n - 1] == '.' ? n - 1 : n;
}

static int same_name(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

typedef struct out {
    pc_dns_msg *m;       /* NULL in the measuring pass */
    unsigned char *data; /* next free byte (filling pass) */
    size_t nrr, ndata;
} out;

/* Measures (and in the filling pass copies) one record of the type asked for. */
static int take(const rd *m, out *o, uint16_t type, uint32_t ttl, size_t rp, size_t rdlen)
{
    const size_t rend = rp + rdlen;
    pc_dns_rr rr = {.type = type, .ttl = ttl};
    char name[PC_DNS_NAME_MAX];
    size_t nlen = 0, pos;
    const unsigned char *src = m->b + rp;
    size_t n = rdlen;
    int r;

    if (o->nrr >= PC_DNS_MAX_RR)
        return PC_DNS_PARSE_INVALID;
    switch (type) {
    case PC_DNS_A:
    case PC_DNS_AAAA:
        if (rdlen != (type == PC_DNS_A ? 4u : 16u))
            return PC_DNS_PARSE_INVALID;
        break;
    case PC_DNS_TXT:
        n = 0;
        for (size_t p = rp; p < rend; p += 1 + m->b[p]) {
            if (p + 1 + m->b[p] > rend)
                return PC_DNS_PARSE_INVALID;
            n += m->b[p];
        }
        if (rdlen == 0)
            return PC_DNS_PARSE_INVALID; /* at least one character-string */
        break;
    case PC_DNS_MX:
    case PC_DNS_PTR:
        pos = rp;
        if (type == PC_DNS_MX) {
            if (rdlen < 3)
                return PC_DNS_PARSE_INVALID;
            rr.pref = get16(m->b + rp);
            pos += 2;
        }
        if ((r = read_name(m, &pos, name, &nlen)) < 0)
            return r;
        if (pos != rend)
            return PC_DNS_PARSE_INVALID;
        n = nlen + 1;
        break;
    case PC_DNS_TLSA:
        if (rdlen < 3)
            return PC_DNS_PARSE_INVALID;
        rr.usage = src[0];
        rr.selector = src[1];
        rr.mtype = src[2];
        src += 3;
        n = rdlen - 3;
        break;
    default: break; /* any other type: the raw RDATA */
    }
    if (o->m) {
        unsigned char *d = o->data;
        if (type == PC_DNS_TXT) {
            size_t k = 0;
            for (size_t p = rp; p < rend; p += 1 + m->b[p]) {
                memcpy(d + k, m->b + p + 1, m->b[p]);
                k += m->b[p];
            }
        } else if (type == PC_DNS_MX || type == PC_DNS_PTR) {
            memcpy(d, name, nlen + 1);
        } else if (n) {
            memcpy(d, src, n);
        }
        rr.data = d;
        rr.len = (type == PC_DNS_MX || type == PC_DNS_PTR) ? nlen : n;
        ((pc_dns_rr *)o->m->a.rr)[o->nrr] = rr;
        o->data += n;
    }
    o->nrr++;
    o->ndata += n;
    return 0;
}

/* Both passes. qname may be NULL (no question check; the chain then starts at the question). */
static int walk(const rd *m, const char *qname, uint16_t qtype, out *o, int *rcode, int *ad,
                int *tc, uint32_t *minttl, uint32_t *negttl)
{
    if (m->len < 12)
        return PC_DNS_PARSE_SHORT;
    const unsigned char *b = m->b;
    uint16_t flags = get16(b + 2), qd = get16(b + 4), an = get16(b + 6), ns = get16(b + 8);
    if (!(flags & 0x8000) || ((flags >> 11) & 0xF) != 0)
        return PC_DNS_PARSE_INVALID; /* not a response, or not a standard query's */
    *rcode = flags & 0xF;
    *ad = (flags & 0x0020) != 0;
    *tc = (flags & 0x0200) != 0;
    *minttl = UINT32_MAX;
    *negttl = UINT32_MAX;
    if (qd != 1)
        return PC_DNS_PARSE_MISMATCH;

    char cur[PC_DNS_NAME_MAX], owner[PC_DNS_NAME_MAX];
    size_t curlen, olen, pos = 12;
    int r = read_name(m, &pos, cur, &curlen);
    if (r < 0)
        return r;
    if (pos + 4 > m->len)
        return PC_DNS_PARSE_SHORT;
    if (get16(b + pos) != qtype || get16(b + pos + 2) != C_IN)
        return PC_DNS_PARSE_MISMATCH;
    if (qname && !same_name(cur, curlen, qname, qlen_of(qname)))
        return PC_DNS_PARSE_MISMATCH;
    pos += 4;

    unsigned hops = 0;
    for (unsigned i = 0; i < (unsigned)an + ns; i++) {
        if ((r = read_name(m, &pos, owner, &olen)) < 0)
            return r;
        if (pos + 10 > m->len)
            return PC_DNS_PARSE_SHORT;
        uint16_t type = get16(b + pos), cls = get16(b + pos + 2);
        uint32_t ttl = get32(b + pos + 4);
        size_t rdlen = get16(b + pos + 8), rp = pos + 10;
        if (ttl & 0x80000000u) /* RFC 2181 §8: treated as zero */
            ttl = 0;
        if (rp + rdlen > m->len)
            return PC_DNS_PARSE_SHORT;
        pos = rp + rdlen;
        if (cls != C_IN)
            continue;
        if (i >= an) { /* authority: the first SOA gives the negative TTL (RFC 2308 §5) */
            if (type != T_SOA || *negttl != UINT32_MAX)
                continue;
            size_t p = rp;
            char tmp[PC_DNS_NAME_MAX];
            size_t tl;
            if ((r = read_name(m, &p, tmp, &tl)) < 0 || (r = read_name(m, &p, tmp, &tl)) < 0)
                return r;
            if (p + 20 != pos)
                return PC_DNS_PARSE_INVALID;
            uint32_t minimum = get32(b + p + 16);
            *negttl = ttl < minimum ? ttl : minimum;
            continue;
        }
        if (!same_name(owner, olen, cur, curlen))
            continue;
        if (type == T_CNAME && qtype != T_CNAME) {
            size_t p = rp;
            if (++hops > PC_DNS_MAX_CNAME)
                return PC_DNS_PARSE_INVALID;
            if ((r = read_name(m, &p, cur, &curlen)) < 0)
                return r;
            if (p != pos)
                return PC_DNS_PARSE_INVALID;
            if (ttl < *minttl)
                *minttl = ttl;
            continue;
        }
        if (type != qtype)
            continue;
        if ((r = take(m, o, type, ttl, rp, rdlen)) < 0)
            return r;
        if (ttl < *minttl)
            *minttl = ttl;
    }
    return 0;
}

pc_dns_msg *pc_dns_parse(const unsigned char *buf, size_t len, const char *qname, uint16_t qtype,
                         int *err)
{
    rd m = {buf, len > 65535 ? 65535 : len};
    out o = {0};
    int rcode, ad, tc, e;
    uint32_t minttl, negttl;
    if (!buf) {
        *err = PC_DNS_PARSE_SHORT;
        return NULL;
    }
    if ((e = walk(&m, qname, qtype, &o, &rcode, &ad, &tc, &minttl, &negttl)) < 0) {
        *err = e;
        return NULL;
    }
    size_t size = sizeof(pc_dns_msg) + o.nrr * sizeof(pc_dns_rr) + o.ndata;
    pc_dns_msg *msg = calloc(1, size);
    if (!msg) {
        *err = PC_DNS_PARSE_NOMEM;
        return NULL;
    }
    msg->size = size;
    msg->a.rr = (const pc_dns_rr *)(msg + 1);
    out fill = {.m = msg, .data = (unsigned char *)(msg + 1) + o.nrr * sizeof(pc_dns_rr)};
    if ((e = walk(&m, qname, qtype, &fill, &rcode, &ad, &tc, &minttl, &negttl)) < 0 ||
        fill.nrr != o.nrr || fill.ndata != o.ndata) { /* cannot happen: the same bytes twice */
        free(msg);
        *err = e < 0 ? e : PC_DNS_PARSE_INVALID;
        return NULL;
    }
    msg->truncated = tc;
    msg->neg_ttl = negttl;
    msg->a.authenticated = ad;
    msg->a.n = o.nrr;
    if (o.nrr == 0)
        msg->a.rr = NULL;
    if (rcode == 0 && o.nrr > 0) {
        msg->a.status = PC_DNS_NOERROR;
        msg->a.ttl = minttl;
    } else if (rcode == 0 || rcode == 3) {
        msg->a.status = rcode == 0 ? PC_DNS_NODATA : PC_DNS_NXDOMAIN;
        msg->a.n = 0;
        msg->a.rr = NULL;
        msg->a.ttl = negttl == UINT32_MAX ? 0 : negttl;
    } else {
        msg->a.status = PC_DNS_SERVFAIL;
        msg->a.n = 0;
        msg->a.rr = NULL;
    }
    *err = 0;
    return msg;
}

pc_dns_msg *pc_dns_msg_dup(const pc_dns_msg *m)
{
    pc_dns_msg *c = malloc(m->size);
    if (!c)
        return NULL;
    memcpy(c, m, m->size);
    if (!m->a.n)
        return c;
    const unsigned char *ob = (const unsigned char *)m;
    unsigned char *nb = (unsigned char *)c;
    pc_dns_rr *rr = (pc_dns_rr *)(c + 1);
    c->a.rr = rr;
    for (size_t i = 0; i < c->a.n; i++) /* same offsets, new base */
        rr[i].data = nb + (size_t)(m->a.rr[i].data - ob);
    return c;
}
