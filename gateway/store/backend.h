/* backend.h — what a state backend (lmdb.c, redis.c) implements, and the request it is given. */
#ifndef PC_STORE_BACKEND_H
#define PC_STORE_BACKEND_H

#include <stdatomic.h>
#include <uv.h>

#include "config/config.h"
#include "portcullis/store.h"

typedef enum { PC_OP_GET, PC_OP_SET, PC_OP_ADD, PC_OP_INCR, PC_OP_DEL, PC_OP_WINDOW } pc_store_op;

struct pc_store_req {
    pc_store *s;
    pc_store_op op;
    char key[PC_STORE_KEY_MAX + 1]; /* without the backend's prefix */
    size_t klen;
    char *value; /* set, add: owned, NUL-terminated */
    size_t vlen;
    long long by;      /* incr; window (as a count) */
    unsigned ttl_s;    /* set, add, incr */
    unsigned window_s; /* window */
    pc_store_cb cb;
    void *arg;
    atomic_int cancelled;
    /* the answer, filled by the backend */
    pc_store_reply reply;
    char *out; /* the answer's value, malloc'd by the backend (freed with the request) */
    /* the backend's */
    pc_store_req *next;
    void *bk;
};

typedef struct pc_store_backend {
    const char *name;
    void *(*open)(const pc_state_cfg *cfg, char *err, size_t errlen);
    void (*close)(void *shared);
    void *(*worker_new)(void *shared, uv_loop_t *loop, char *err, size_t errlen);
    /* drops what is pending: each request goes to pc_store_drop() */
    void (*worker_free)(void *worker);
    /* takes r: it will call pc_store_complete(r) later, on r's loop. 0, or -1 (not taken). */
    int (*submit)(void *worker, pc_store_req *r);
} pc_store_backend;

extern const pc_store_backend pc_store_lmdb, pc_store_redis;

/* On the request's loop, once r->reply (and r->out) are filled: the callback, then r is freed. */
void pc_store_complete(pc_store_req *r);
/* A request that will never be answered (the worker goes): freed without its callback. */
void pc_store_drop(pc_store_req *r);

/* The two fixed windows of a sliding-window counter at time now (seconds): the current window's
 * number, and the weight of the previous one (the part of it that is still inside the window). */
static inline unsigned long long pc_store_window_at(unsigned long long now, unsigned window_s,
                                                    double *prev_weight)
{
    unsigned long long k = now / window_s;
    *prev_weight = 1.0 - (double)(now - k * window_s) / (double)window_s;
    return k;
}

#endif
