/* dns_cache.c — the shared DNS answer cache (see dns_cache.h). State: a chained hash of
 * `entries` slots (twice as many buckets, power of two), an LRU list, counters; all under one
 * mutex. Invariants: count <= max; every entry is in exactly one bucket chain and in the LRU
 * list; an entry's message is never changed after it is stored, and is freed when the last
 * reference (the cache's or a reader's) is dropped. Keys are lowercased names without a trailing
 * dot, plus the type: answers to names that differ in case share one entry. */
#include "core/dns_cache.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct shared {
    atomic_int refs;
    pc_dns_msg *m;
} shared;

typedef struct entry {
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU: head is the most recently used */
    uint16_t type;
    uint64_t stored_ms, expire_ms;
    shared *val;
    char name[];
} entry;

struct pc_dns_cache {
    pthread_mutex_t mu;
    pc_dns_cache_cfg cfg;
    entry **buckets;
    size_t nbuckets, count;
    entry *head, *tail;
    uint64_t hits, misses, evictions;
};

static void shared_unref(shared *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->m);
        free(s);
    }
}

pc_dns_cache *pc_dns_cache_new(const pc_dns_cache_cfg *cfg)
{
    pc_dns_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->nbuckets = 16;
    while (c->nbuckets < cfg->entries * 2 && c->nbuckets < ((size_t)1 << 30))
        c->nbuckets <<= 1;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->buckets);
        free(c);
        return NULL;
    }
    return c;
}

static void entry_free(entry *e)
{
    shared_unref(e->val);
    free(e);
}

void pc_dns_cache_free(pc_dns_cache *c)
{
    if (!c)
        return;
    for (entry *e = c->head, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->buckets);
    free(c);
}

/* Lowercased, without the trailing dot; 0 when the name does not fit. */
static size_t norm(const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (n && name[n - 1] == '.')
        n--;
    if (n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[n] = '\0';
    return n + 1;
}

static size_t hash(const char *k, uint16_t type, size_t nbuckets)
{
    uint64_t h = 1469598103934665603ull ^ type; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29)) & (nbuckets - 1);
}

static void lru_unlink(pc_dns_cache *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(pc_dns_cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

/* Unlinks e from its chain and the LRU; the caller frees it after unlocking. */
static void remove_entry(pc_dns_cache *c, entry *e)
{
    entry **pp = &c->buckets[hash(e->name, e->type, c->nbuckets)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(c, e);
    c->count--;
}

static entry *find(pc_dns_cache *c, const char *key, uint16_t type)
{
    for (entry *e = c->buckets[hash(key, type, c->nbuckets)]; e; e = e->hnext)
        if (e->type == type && !strcmp(e->name, key))
            return e;
    return NULL;
}

pc_dns_msg *pc_dns_cache_get(pc_dns_cache *c, const char *name, uint16_t type, uint64_t now_ms)
{
    char key[256];
    if (!c || !norm(name, key, sizeof(key)))
        return NULL;
    entry *dead = NULL;
    shared *s = NULL;
    uint64_t stored = 0;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, key, type);
    if (e && e->expire_ms <= now_ms) {
        remove_entry(c, e);
        dead = e;
        e = NULL;
    }
    if (e) {
        lru_unlink(c, e);
        lru_push(c, e);
        s = e->val;
        atomic_fetch_add(&s->refs, 1);
        stored = e->stored_ms;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    if (dead)
        entry_free(dead);
    if (!s)
        return NULL;
    pc_dns_msg *m = pc_dns_msg_dup(s->m);
    shared_unref(s);
    if (!m)
        return NULL;
    uint32_t age = (uint32_t)((now_ms - stored) / 1000);
    m->a.from_cache = 1;
    m->a.ttl = m->a.ttl > age ? m->a.ttl - age : 0;
    pc_dns_rr *rr = (pc_dns_rr *)m->a.rr;
    for (size_t i = 0; i < m->a.n; i++)
        rr[i].ttl = rr[i].ttl > age ? rr[i].ttl - age : 0;
    return m;
}

/* The TTL an answer is kept for. */
static uint32_t keep_ttl(const pc_dns_cache_cfg *cfg, const pc_dns_msg *m)
{
    uint32_t t;
    if (m->a.status == PC_DNS_NOERROR) {
        t = m->a.ttl;
        if (t > cfg->max_ttl)
            t = cfg->max_ttl;
    } else {
        t = m->neg_ttl == UINT32_MAX || m->neg_ttl > cfg->negative_ttl ? cfg->negative_ttl
                                                                       : m->neg_ttl;
    }
    return t < cfg->min_ttl ? cfg->min_ttl : t;
}

void pc_dns_cache_put(pc_dns_cache *c, const char *name, uint16_t type, pc_dns_msg *m,
                      uint64_t now_ms)
{
    char key[256];
    size_t klen;
    if (!c || !m)
        return;
    if (m->a.status != PC_DNS_NOERROR && m->a.status != PC_DNS_NXDOMAIN &&
        m->a.status != PC_DNS_NODATA)
        return;
    uint32_t ttl = keep_ttl(&c->cfg, m);
    if (m->a.status != PC_DNS_NOERROR)
        m->a.ttl = ttl;
    if (m->truncated || ttl == 0 || c->cfg.entries == 0 || !(klen = norm(name, key, sizeof(key))))
        return;
    entry *e = malloc(sizeof(*e) + klen);
    shared *s = malloc(sizeof(*s));
    pc_dns_msg *copy = pc_dns_msg_dup(m);
    if (!e || !s || !copy) {
        free(e);
        free(s);
        free(copy);
        return;
    }
    atomic_init(&s->refs, 1);
    s->m = copy;
    memset(e, 0, sizeof(*e));
    memcpy(e->name, key, klen);
    e->type = type;
    e->stored_ms = now_ms;
    e->expire_ms = now_ms + (uint64_t)ttl * 1000;
    e->val = s;

    entry *old, *evicted = NULL;
    pthread_mutex_lock(&c->mu);
    if ((old = find(c, key, type)) != NULL)
        remove_entry(c, old);
    else if (c->count >= c->cfg.entries && (evicted = c->tail) != NULL) {
        remove_entry(c, evicted);
        c->evictions++;
    }
    size_t b = hash(key, type, c->nbuckets);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push(c, e);
    c->count++;
    pthread_mutex_unlock(&c->mu);
    if (old)
        entry_free(old);
    if (evicted)
        entry_free(evicted);
}

void pc_dns_cache_stats_get(pc_dns_cache *c, pc_dns_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    out->entries = c->count;
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    pthread_mutex_unlock(&c->mu);
}
