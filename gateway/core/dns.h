/* dns.h — the gateway's side of the resolver (include/portcullis/dns.h is the filters' side):
 * making one resolver per worker loop, destroying it, the thread-local current resolver, and the
 * shared cache built from the configuration. */
#ifndef PC_DNS_H
#define PC_DNS_H

#include <uv.h>

#include "config/config.h"
#include "core/dns_cache.h"
#include "portcullis/dns.h"

#define PC_DNS_MAX_PENDING 4096 /* questions in flight per worker; more are refused at once */
#define PC_DNS_EDNS_SIZE 1232   /* advertised UDP payload (DNS flag day 2020); larger: TCP */

/* The cache all workers share, sized and clamped by the `resolver:` section. NULL: no memory. */
pc_dns_cache *pc_dns_cache_from_cfg(const pc_resolver_cfg *cfg);

/* A resolver on loop (called on the loop's thread). cfg must outlive it; cache may be shared.
 * Returns NULL with a reason in err. */
pc_dns *pc_dns_new(uv_loop_t *loop, const pc_resolver_cfg *cfg, pc_dns_cache *cache, char *err,
                   size_t errlen);
/* Drops every pending question without calling back and closes the handles; the memory goes
 * when the loop has run their close callbacks (one more uv_run). */
void pc_dns_free(pc_dns *r);
/* Makes r what pc_dns_current() returns on the calling thread. */
void pc_dns_set_current(pc_dns *r);

typedef struct pc_dns_stats {
    uint64_t sent;       /* questions sent to a server */
    uint64_t cache_hits; /* answered from the cache */
    size_t pending;
} pc_dns_stats;
void pc_dns_stats_get(const pc_dns *r, pc_dns_stats *out);

#endif
