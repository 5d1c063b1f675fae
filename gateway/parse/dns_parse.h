/* dns_parse.h — the DNS answer parser (pure: bytes in, one owned pc_dns_msg out; no I/O, no
 * logging). It follows CNAMEs from the question's name, keeps the records of the type asked for,
 * reads the AD bit and, for negative answers, the SOA's negative TTL (RFC 2308 §5). */
#ifndef PC_DNS_PARSE_H
#define PC_DNS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/dns.h"

#define PC_DNS_MAX_RR 256    /* records kept from one answer; more is a malformed answer */
#define PC_DNS_MAX_CNAME 16  /* CNAME hops followed inside one answer */
#define PC_DNS_NAME_MAX 1024 /* a presentation name, \DDD escapes and NUL included */

/* One allocation: the struct, then the rr array, then the records' data. a.rr points inside it. */
typedef struct pc_dns_msg {
    size_t size;      /* bytes of the whole allocation */
    int truncated;    /* TC was still set (the answer may be partial) */
    uint32_t neg_ttl; /* NXDOMAIN/NODATA: min(SOA TTL, SOA MINIMUM); UINT32_MAX when no SOA */
    pc_dns_answer a;  /* status, authenticated, ttl, n, rr */
} pc_dns_msg;

typedef enum {
    PC_DNS_PARSE_OK = 0,
    PC_DNS_PARSE_SHORT = -1,    /* the message ends inside a field */
    PC_DNS_PARSE_INVALID = -2,  /* not a response, bad label, pointer loop, record too big */
    PC_DNS_PARSE_MISMATCH = -3, /* the question is not the one asked */
    PC_DNS_PARSE_NOMEM = -4,
} pc_dns_parse_err;

/* Parses a response to (qname, qtype). qname in presentation form, case-insensitive, trailing dot
 * optional; NULL skips the question check. Returns a msg the caller frees with free(), or NULL
 * with *err set. status is NOERROR (n >= 1), NXDOMAIN, NODATA or SERVFAIL (any other rcode). */
pc_dns_msg *pc_dns_parse(const unsigned char *buf, size_t len, const char *qname, uint16_t qtype,
                         int *err);
/* A copy whose rr pointers point into the copy. NULL when out of memory. */
pc_dns_msg *pc_dns_msg_dup(const pc_dns_msg *m);

#endif
