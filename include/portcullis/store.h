/* store.h — the gateway's shared state for filters: a small key-value interface with expiry, for
 * greylisting, rate limits and the like. Backed by LMDB on the gateway's own disk (one gateway; the
 * state survives restarts) or by Redis (several gateways behind a load balancer see the same
 * state), as the `state:` section of the configuration says.
 *
 * Threads: every function runs on a worker's loop thread (a filter's run(), its callbacks); the
 * callback runs on the same thread, always later, never inside the call that started it. Neither
 * backend blocks the loop: LMDB runs on a thread of its own, Redis is spoken asynchronously.
 *
 * Keys are at most PC_STORE_KEY_MAX bytes of printable ASCII without spaces; values at most
 * PC_STORE_VALUE_MAX bytes of anything but NUL. Expiry is in whole seconds (0: never). The backend
 * adds its own prefix to every key (`state.redis.prefix`). */
#ifndef PORTCULLIS_STORE_H
#define PORTCULLIS_STORE_H

#include <stddef.h>

#include "portcullis/filter.h"

#define PC_STORE_KEY_MAX 400
#define PC_STORE_VALUE_MAX 4096

typedef enum {
    PC_STORE_OK = 0,      /* done: n and value as the operation says */
    PC_STORE_MISSING,     /* get: no such key, or it expired */
    PC_STORE_EXISTS,      /* add: the key was there already; value is what it holds */
    PC_STORE_UNAVAILABLE, /* the backend could not be reached or did not answer in time */
    PC_STORE_ERROR, /* the backend refused the operation (a value that is not a number, ...) */
} pc_store_status;

/* Borrowed: valid during the callback only. */
typedef struct pc_store_reply {
    pc_store_status status;
    long long n; /* incr: the new value; window: the events in the window, this one included */
    const char *value; /* get (OK), add (EXISTS): the value, NUL-terminated; else NULL */
    size_t len;
} pc_store_reply;

typedef void (*pc_store_cb)(void *arg, const pc_store_reply *r);
typedef struct pc_store pc_store;         /* one per worker loop */
typedef struct pc_store_req pc_store_req; /* one pending operation */

/* The store of the loop that runs ctx; NULL when the configuration has no `state:`. */
pc_store *pc_filter_store(pc_filter_ctx *ctx);
/* "lmdb" or "redis", for log lines. */
const char *pc_store_backend_name(const pc_store *s);

/* Each starts one operation; cb(arg, reply) is called exactly once, later, on this loop, unless
 * pc_store_cancel() comes first (cb may be NULL: nobody waits for the answer). They return NULL
 * when nothing was started (no store, a bad key or value, too many operations pending): cb is then
 * never called. */
pc_store_req *pc_store_get(pc_store *s, const char *key, pc_store_cb cb, void *arg);
/* Sets key to value (replacing it) with an expiry of ttl_s seconds. */
pc_store_req *pc_store_set(pc_store *s, const char *key, const char *value, unsigned ttl_s,
                           pc_store_cb cb, void *arg);
/* Sets key only if it is absent (or expired): OK when set, EXISTS with the current value if not. */
pc_store_req *pc_store_add(pc_store *s, const char *key, const char *value, unsigned ttl_s,
                           pc_store_cb cb, void *arg);
/* Adds by to the number in key (a missing key counts as 0, and gets the expiry ttl_s; an existing
 * one keeps its own): n is the new value. ERROR when key holds something that is not a number. */
pc_store_req *pc_store_incr(pc_store *s, const char *key, long long by, unsigned ttl_s,
                            pc_store_cb cb, void *arg);
pc_store_req *pc_store_del(pc_store *s, const char *key, pc_store_cb cb, void *arg);
/* A sliding-window counter: records by events (0: only reads) now, by the store's own clock (so
 * gateways with skewed clocks agree), and n is the number of events in the last window_s seconds,
 * estimated from two fixed windows weighted by their overlap (as rate limiters commonly do). */
pc_store_req *pc_store_window(pc_store *s, const char *key, unsigned window_s, unsigned by,
                              pc_store_cb cb, void *arg);
/* cb will not be called. req must be pending (its callback has not run). */
void pc_store_cancel(pc_store_req *req);
/* A key made of prefix and a hash of parts[0..n) (each taken whole, case as given): prefix followed
 * by 32 hex digits of their SHA-256, so that addresses of any length and bytes make short, safe
 * keys. out holds at least strlen(prefix) + 33 bytes. Returns the key's length, or 0 when it does
 * not fit. */
size_t pc_store_hash_key(char *out, size_t outlen, const char *prefix, const char *const *parts,
                         size_t n);
/* "OK", "MISSING", ... for log lines. */
const char *pc_store_status_name(pc_store_status st);

#endif
