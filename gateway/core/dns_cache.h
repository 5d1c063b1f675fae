/* dns_cache.h — the one DNS answer cache shared by every worker: a fixed number of entries under
 * one mutex, least recently used evicted first, each entry kept for its TTL clamped to
 * [min_ttl, max_ttl] (negative answers: the SOA's negative TTL, RFC 2308 §5, or negative_ttl when
 * there is none, at most negative_ttl). Entries are immutable and reference-counted: a lookup holds
 * the mutex only to find the entry and take a reference; copying happens outside it. */
#ifndef PC_DNS_CACHE_H
#define PC_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "parse/dns_parse.h"

typedef struct pc_dns_cache pc_dns_cache;

typedef struct pc_dns_cache_cfg {
    size_t entries;        /* bound; 0 makes a cache that keeps nothing */
    uint32_t min_ttl;      /* seconds */
    uint32_t max_ttl;      /* seconds */
    uint32_t negative_ttl; /* seconds: without an SOA, and the cap with one */
} pc_dns_cache_cfg;

pc_dns_cache *pc_dns_cache_new(const pc_dns_cache_cfg *cfg);
void pc_dns_cache_free(pc_dns_cache *c);

/* A fresh copy of the answer for (name, type) with TTLs lowered by the time spent in the cache,
 * from_cache set; NULL when absent or expired. now_ms: a monotonic clock. The caller frees it. */
pc_dns_msg *pc_dns_cache_get(pc_dns_cache *c, const char *name, uint16_t type, uint64_t now_ms);
/* Stores a copy of m (NOERROR, NXDOMAIN and NODATA only; others are ignored), replacing an older
 * entry. Also sets m->a.ttl to the TTL the entry was given. */
void pc_dns_cache_put(pc_dns_cache *c, const char *name, uint16_t type, pc_dns_msg *m,
                      uint64_t now_ms);

typedef struct pc_dns_cache_stats {
    size_t entries;
    uint64_t hits, misses, evictions;
} pc_dns_cache_stats;
void pc_dns_cache_stats_get(pc_dns_cache *c, pc_dns_cache_stats *out);

#endif
