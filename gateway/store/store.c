/* store.c — the state store's front: requests checked and made here, handed to the backend the
 * configuration names, answered on the loop that asked (see include/portcullis/store.h). */
#include "store/store.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"

struct pc_store_shared {
    const pc_store_backend *b;
    void *shared;
    unsigned max_pending;
};

struct pc_store {
    pc_store_shared *sh;
    void *worker;
    size_t pending;
};

static _Thread_local pc_store *current;

pc_store_shared *pc_store_open(const pc_state_cfg *cfg, char *err, size_t errlen)
{
    const pc_store_backend *b = cfg->backend == PC_STATE_REDIS  ? &pc_store_redis
                                : cfg->backend == PC_STATE_LMDB ? &pc_store_lmdb
                                                                : NULL;
    if (!b) {
        snprintf(err, errlen, "no state backend configured");
        return NULL;
    }
    pc_store_shared *sh = calloc(1, sizeof(*sh));
    if (!sh) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sh->b = b;
    sh->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
    if (!(sh->shared = b->open(cfg, err, errlen))) {
        free(sh);
        return NULL;
    }
    return sh;
}

void pc_store_close(pc_store_shared *sh)
{
    if (!sh)
        return;
    sh->b->close(sh->shared);
    free(sh);
}

pc_store *pc_store_worker_new(pc_store_shared *sh, uv_loop_t *loop, char *err, size_t errlen)
{
    pc_store *s = sh ? calloc(1, sizeof(*s)) : NULL;
    if (!s) {
        snprintf(err, errlen, sh ? "out of memory" : "no state store");
        return NULL;
    }
    s->sh = sh;
    if (!(s->worker = sh->b->worker_new(sh->shared, loop, err, errlen))) {
        free(s);
        return NULL;
    }
    return s;
}

void pc_store_worker_free(pc_store *s)
{
    if (!s)
        return;
    s->sh->b->worker_free(s->worker);
    if (current == s)
        current = NULL;
    free(s);
}

void pc_store_set_current(pc_store *s)
{
    current = s;
}

pc_store *pc_store_current(void)
{
    return current;
}

pc_store *pc_filter_store(pc_filter_ctx *ctx)
{
    return ctx ? current : NULL; /* filters run on their session's loop thread */
}

const char *pc_store_backend_name(const pc_store *s)
{
    return s ? s->sh->b->name : "none";
}

const char *pc_store_status_name(pc_store_status st)
{
    switch (st) {
    case PC_STORE_OK: return "OK";
    case PC_STORE_MISSING: return "MISSING";
    case PC_STORE_EXISTS: return "EXISTS";
    case PC_STORE_UNAVAILABLE: return "UNAVAILABLE";
    case PC_STORE_ERROR: return "ERROR";
    }
    return "?";
}

size_t pc_store_hash_key(char *out, size_t outlen, const char *prefix, const char *const *parts,
                         size_t n)
{
    size_t pl = strlen(prefix);
    if (pl + 33 > outlen)
        return 0;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < n;
         i++) /* each part with its NUL: "a","bc" differs from "ab","c" */
        ok = EVP_DigestUpdate(md, parts[i] ? parts[i] : "", strlen(parts[i] ? parts[i] : "") + 1);
    ok = ok && EVP_DigestFinal_ex(md, d, &dl) && dl >= 16;
    EVP_MD_CTX_free(md);
    if (!ok)
        return 0;
    memcpy(out, prefix, pl);
    for (unsigned i = 0; i < 16; i++)
        snprintf(out + pl + 2 * i, 3, "%02x", d[i]);
    return pl + 32;
}

static int key_ok(const char *k, size_t *len)
{
    size_t n = 0;
    for (; k[n]; n++)
        if (n >= PC_STORE_KEY_MAX || (unsigned char)k[n] <= ' ' || (unsigned char)k[n] > '~')
            return 0;
    *len = n;
    return n > 0;
}

static pc_store_req *start(pc_store *s, pc_store_op op, const char *key, const char *value,
                           pc_store_cb cb, void *arg)
{
    size_t kl;
    if (!s || !key || !key_ok(key, &kl) || s->pending >= s->sh->max_pending)
        return NULL;
    size_t vl = value ? strlen(value) : 0;
    if (vl > PC_STORE_VALUE_MAX)
        return NULL;
    pc_store_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->s = s;
    r->op = op;
    memcpy(r->key, key, kl + 1);
    r->klen = kl;
    r->cb = cb;
    r->arg = arg;
    atomic_init(&r->cancelled, 0);
    if (value) {
        if (!(r->value = malloc(vl + 1))) {
            free(r);
            return NULL;
        }
        memcpy(r->value, value, vl + 1);
        r->vlen = vl;
    }
    return r;
}

static pc_store_req *submit(pc_store_req *r)
{
    if (!r)
        return NULL;
    pc_store *s = r->s;
    if (s->sh->b->submit(s->worker, r) < 0) {
        free(r->value);
        free(r);
        return NULL;
    }
    s->pending++;
    return r;
}

pc_store_req *pc_store_get(pc_store *s, const char *key, pc_store_cb cb, void *arg)
{
    return submit(start(s, PC_OP_GET, key, NULL, cb, arg));
}

pc_store_req *pc_store_set(pc_store *s, const char *key, const char *value, unsigned ttl_s,
                           pc_store_cb cb, void *arg)
{
    if (!value)
        return NULL;
    pc_store_req *r = start(s, PC_OP_SET, key, value, cb, arg);
    if (r)
        r->ttl_s = ttl_s;
    return submit(r);
}

pc_store_req *pc_store_add(pc_store *s, const char *key, const char *value, unsigned ttl_s,
                           pc_store_cb cb, void *arg)
{
    if (!value)
        return NULL;
    pc_store_req *r = start(s, PC_OP_ADD, key, value, cb, arg);
    if (r)
        r->ttl_s = ttl_s;
    return submit(r);
}

pc_store_req *pc_store_incr(pc_store *s, const char *key, long long by, unsigned ttl_s,
                            pc_store_cb cb, void *arg)
{
    pc_store_req *r = start(s, PC_OP_INCR, key, NULL, cb, arg);
    if (r) {
        r->by = by;
        r->ttl_s = ttl_s;
    }
    return submit(r);
}

pc_store_req *pc_store_del(pc_store *s, const char *key, pc_store_cb cb, void *arg)
{
    return submit(start(s, PC_OP_DEL, key, NULL, cb, arg));
}

pc_store_req *pc_store_window(pc_store *s, const char *key, unsigned window_s, unsigned by,
                              pc_store_cb cb, void *arg)
{
    if (window_s == 0)
        return NULL;
    pc_store_req *r = start(s, PC_OP_WINDOW, key, NULL, cb, arg);
    if (r) {
        r->window_s = window_s;
        r->by = by;
    }
    return submit(r);
}

void pc_store_cancel(pc_store_req *req)
{
    if (req)
        atomic_store(&req->cancelled, 1);
}

static void release(pc_store_req *r)
{
    if (r->s && r->s->pending)
        r->s->pending--;
    free(r->value);
    free(r->out);
    free(r);
}

void pc_store_complete(pc_store_req *r)
{
    if (!atomic_load(&r->cancelled) && r->cb) {
        if (r->out && !r->reply.value) {
            r->reply.value = r->out;
            r->reply.len = strlen(r->out);
        }
        r->cb(r->arg, &r->reply);
    }
    release(r);
}

void pc_store_drop(pc_store_req *r)
{
    release(r);
}
