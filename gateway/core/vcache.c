/* vcache.c — per-worker verdict cache of retrieved messages (see vcache.h). Thread-local: each
 * worker's loop is its only user; the pthread key frees it when the thread ends. */
#include "core/vcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct vcache {
    pc_vcache_ent *v;
    size_t n;
} vcache;

static pthread_key_t vc_key;
static pthread_once_t vc_once = PTHREAD_ONCE_INIT;
static _Thread_local vcache *tl_vc;

static void vc_destroy(void *p)
{
    vcache *c = p;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].key);
        free(c->v[i].info);
    }
    free(c->v);
    free(c);
}

static void vc_init_key(void)
{
    pthread_key_create(&vc_key, vc_destroy);
}

static vcache *vc_get(size_t n)
{
    if (tl_vc)
        return tl_vc;
    if (n == 0)
        n = 10000;
    pthread_once(&vc_once, vc_init_key);
    vcache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->v = calloc(n, sizeof(*c->v));
    if (!c->v) {
        free(c);
        return NULL;
    }
    c->n = n;
    pthread_setspecific(vc_key, c);
    tl_vc = c;
    return c;
}

static uint64_t fnv(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

const pc_vcache_ent *pc_vcache_lookup(size_t slots, const char *key)
{
    vcache *c = vc_get(slots);
    if (!c)
        return NULL;
    uint64_t h = fnv(key);
    const pc_vcache_ent *e = &c->v[h % c->n];
    return e->key && e->h == h && strcmp(e->key, key) == 0 ? e : NULL;
}

void pc_vcache_store(size_t slots, const char *key, int state, const void *info, size_t info_len)
{
    vcache *c = vc_get(slots);
    if (!c)
        return;
    uint64_t h = fnv(key);
    pc_vcache_ent *e = &c->v[h % c->n];
    free(e->key);
    free(e->info);
    memset(e, 0, sizeof(*e));
    e->key = strdup(key);
    if (!e->key)
        return;
    if (info) {
        e->info = malloc(info_len ? info_len : 1);
        if (!e->info) {
            free(e->key);
            e->key = NULL;
            return;
        }
        memcpy(e->info, info, info_len);
        e->info_len = info_len;
    }
    e->state = state;
    e->h = h;
}
