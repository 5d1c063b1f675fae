/* fuzz_dns_answer.c — libFuzzer target for the DNS answer parser (dns_parse.c). The first byte
 * picks the type asked for; the rest is the response. A parsed answer must keep every record's
 * data inside its own allocation, within the bounds the header promises, and survive a copy. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse/dns_parse.h"

static const uint16_t types[] = {PC_DNS_A,   PC_DNS_AAAA, PC_DNS_TXT,    PC_DNS_MX,
                                 PC_DNS_PTR, PC_DNS_TLSA, 5 /* CNAME */, 6 /* SOA */};

static void check(const pc_dns_msg *m)
{
    const unsigned char *lo = (const unsigned char *)m, *hi = lo + m->size;
    if (m->a.n > PC_DNS_MAX_RR || (m->a.n && !m->a.rr))
        abort();
    for (size_t i = 0; i < m->a.n; i++) {
        const pc_dns_rr *r = &m->a.rr[i];
        if (r->len && (r->data < lo || r->data + r->len > hi))
            abort();
        if ((r->type == PC_DNS_MX || r->type == PC_DNS_PTR) &&
            (r->len >= PC_DNS_NAME_MAX || r->data[r->len] != '\0' ||
             strlen((const char *)r->data) != r->len))
            abort();
        if ((r->type == PC_DNS_A && r->len != 4) || (r->type == PC_DNS_AAAA && r->len != 16))
            abort();
        if (r->ttl & 0x80000000u)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint16_t t = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    int err = 0;
    pc_dns_msg *m = pc_dns_parse(data + 1, size - 1, NULL, t, &err);
    if (!m) {
        if (err >= 0)
            abort();
        return 0;
    }
    check(m);
    pc_dns_msg *c = pc_dns_msg_dup(m);
    if (c) {
        check(c);
        if (c->a.n != m->a.n || c->size != m->size)
            abort();
        for (size_t i = 0; i < c->a.n; i++)
            if (c->a.rr[i].len != m->a.rr[i].len ||
                (c->a.rr[i].len && memcmp(c->a.rr[i].data, m->a.rr[i].data, c->a.rr[i].len)))
                abort();
        free(c);
    }
    free(m);
    return 0;
}
