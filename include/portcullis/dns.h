/* dns.h — the resolver for filters: asynchronous DNS on the worker's own loop (c-ares, one channel
 * per worker), answers shared by all workers through one bounded cache that honours TTLs and
 * caches negative answers. A filter never does DNS by itself on a loop thread: it asks here.
 *
 * Threads: every function runs on a worker's loop thread (a filter's run(), its callbacks); the
 * callback runs on the same thread, always later, never inside pc_dns_query().
 *
 * Answers carry the server's AD bit (`authenticated`): queries are sent with AD=1 (RFC 6840 §5.7)
 * and EDNS0, so a validating recursor says whether it validated the data. The flag is only as
 * trustworthy as the path to that recursor (use one on the same host, as DANE requires). */
#ifndef PORTCULLIS_DNS_H
#define PORTCULLIS_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "portcullis/filter.h"

typedef enum {
    PC_DNS_A = 1,
    PC_DNS_PTR = 12,
    PC_DNS_MX = 15,
    PC_DNS_TXT = 16,
    PC_DNS_AAAA = 28,
    PC_DNS_TLSA = 52,
} pc_dns_type;

typedef enum {
    PC_DNS_NOERROR = 0, /* records of the type asked for: n >= 1 */
    PC_DNS_NXDOMAIN,    /* the name does not exist */
    PC_DNS_NODATA,      /* the name exists, no record of that type */
    PC_DNS_SERVFAIL,    /* the servers failed or refused (SERVFAIL, REFUSED, ...) */
    PC_DNS_TIMEOUT,     /* no server answered within timeout x attempts (or none is reachable) */
    PC_DNS_ERROR,       /* a bad name, a malformed answer, out of memory */
} pc_dns_status;

/* One record. data/len by type:
 *   A, AAAA  the address, 4 or 16 bytes (network order)
 *   TXT      the record's character-strings concatenated (RFC 7208 §3.3, RFC 6376 §3.6.2.2)
 *   MX, PTR  the target name in presentation form, NUL-terminated, no trailing dot; bytes that
 *            are not printable ASCII, '.' inside a label and '\' are written \DDD; len excludes NUL
 *   TLSA     the certificate association data; usage, selector, mtype hold the first three fields
 */
typedef struct pc_dns_rr {
    uint16_t type;
    uint32_t ttl;                   /* seconds left */
    uint16_t pref;                  /* MX preference */
    uint8_t usage, selector, mtype; /* TLSA */
    const unsigned char *data;
    size_t len;
} pc_dns_rr;

/* Everything is borrowed: valid during the callback only. */
typedef struct pc_dns_answer {
    pc_dns_status status;
    int authenticated; /* the server set AD: it validated the data (DNSSEC) */
    int from_cache;
    uint32_t ttl; /* the smallest record TTL; for NXDOMAIN/NODATA the negative TTL */
    size_t n;     /* records of the type asked for (after CNAMEs, at most 256) */
    const pc_dns_rr *rr;
} pc_dns_answer;

typedef void (*pc_dns_cb)(void *arg, const pc_dns_answer *a);

typedef struct pc_dns pc_dns;         /* one resolver per worker loop */
typedef struct pc_dns_req pc_dns_req; /* one pending question */

/* The calling worker thread's resolver; NULL outside a worker or when it could not be made. */
pc_dns *pc_dns_current(void);
/* The resolver of the loop that runs ctx (the calling thread's: filters run on it). */
pc_dns *pc_filter_dns(pc_filter_ctx *ctx);

/* Asks for name's records of type. cb(arg, answer) is called exactly once, later, on this loop,
 * unless pc_dns_cancel() comes first. name is copied (at most 253 characters, a trailing dot is
 * optional). Returns NULL when nothing was started (bad name, too many pending, no resolver): cb
 * is then never called. */
pc_dns_req *pc_dns_query(pc_dns *r, const char *name, pc_dns_type type, pc_dns_cb cb, void *arg);
/* cb will not be called. req must be pending (its callback has not run). */
void pc_dns_cancel(pc_dns_req *req);

/* "NOERROR", "NXDOMAIN", ... for log lines. */
const char *pc_dns_status_name(pc_dns_status st);

#endif
