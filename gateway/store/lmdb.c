/* lmdb.c — the embedded state backend: LMDB in a directory of the gateway's own disk, so the state
 * survives restarts without a server.
 *
 * LMDB has one writer per environment and its transactions belong to one thread, so one thread of
 * this backend's runs every operation: workers queue requests to it (under a mutex), it takes what
 * is queued as one batch in one write transaction, commits, and hands each answer back to its
 * worker's loop with uv_async_send. The loop never waits on the disk or on a lock held across I/O.
 * Commits do not fsync (MDB_NOSYNC): the thread syncs the environment once a second, so a crash
 * of the process loses nothing and a crash of the machine at most the last second — state here is
 * greylisting and rate counters, not mail.
 *
 * LMDB has no expiry: each value is stored behind its expiry (8 bytes, big-endian seconds since
 * the epoch, 0 for none); an expired entry reads as missing and the thread sweeps expired entries
 * a thousand at a time when it is idle. A full map is doubled and the batch run again. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/log.h"
#include "store/backend.h"

#define BATCH_MAX 1024
#define SWEEP_EVERY_S 60
#define SWEEP_SCAN 10000
#define SWEEP_DELETE 1000

typedef struct lworker lworker;

typedef struct lshared {
    MDB_env *env;
    MDB_dbi dbi;
    size_t map_size;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;      /* work queued, or stop */
    pthread_cond_t idle_cond; /* a batch finished (worker_free waits for its requests) */
    pc_store_req *head, *tail;
    int stop;
    char sweep_key[PC_STORE_KEY_MAX + 1];
    size_t sweep_klen;
    char prefix[65]; /* before every key, as with Redis (state.prefix) */
    size_t plen;
} lshared;

struct lworker {
    lshared *sh;
    uv_async_t async;
    pc_store_req *done; /* answered, for this loop; under sh->mu */
    size_t in_batch;    /* this worker's requests the thread is running now; under sh->mu */
    int closing;
};

/* ---- values --------------------------------------------------------------------------------- */

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The live value of key, or MDB_NOTFOUND (absent or expired). */
static int read_live(MDB_txn *t, MDB_dbi dbi, const char *key, size_t klen, MDB_val *v)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    int rc = mdb_get(t, dbi, &k, v);
    if (rc)
        return rc;
    if (v->mv_size < 8)
        return MDB_NOTFOUND;
    uint64_t exp = get_be64(v->mv_data);
    if (exp && exp <= now_s())
        return MDB_NOTFOUND;
    v->mv_size -= 8;
    v->mv_data = (char *)v->mv_data + 8;
    return 0;
}

static int write_value(MDB_txn *t, MDB_dbi dbi, const char *key, size_t klen, const char *val,
                       size_t vlen, uint64_t exp)
{
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v = {.mv_size = vlen + 8};
    int rc = mdb_put(t, dbi, &k, &v, MDB_RESERVE);
    if (rc)
        return rc;
    put_be64(v.mv_data, exp);
    memcpy((char *)v.mv_data + 8, val, vlen);
    return 0;
}

static char *dup_val(const MDB_val *v)
{
    char *s = malloc(v->mv_size + 1);
    if (s) {
        memcpy(s, v->mv_data, v->mv_size);
        s[v->mv_size] = '\0';
    }
    return s;
}

static int parse_ll(const MDB_val *v, long long *out)
{
    char buf[32];
    if (v->mv_size == 0 || v->mv_size >= sizeof(buf))
        return -1;
    memcpy(buf, v->mv_data, v->mv_size);
    buf[v->mv_size] = '\0';
    char *e;
    errno = 0;
    long long x = strtoll(buf, &e, 10);
    if (errno || *e)
        return -1;
    *out = x;
    return 0;
}

/* incr of key by by within t: the new value in *n; 1 when the value is not a number. */
static int do_incr(MDB_txn *t, MDB_dbi dbi, const char *key, size_t klen, long long by,
                   unsigned ttl, long long *n)
{
    MDB_val v;
    int rc = read_live(t, dbi, key, klen, &v);
    uint64_t exp = ttl ? now_s() + ttl : 0;
    long long cur = 0;
    if (rc == 0) {
        if (parse_ll(&v, &cur) < 0)
            return 1;
        exp = get_be64((const unsigned char *)v.mv_data - 8);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    cur += by;
    char num[32];
    int l = snprintf(num, sizeof(num), "%lld", cur);
    if ((rc = write_value(t, dbi, key, klen, num, (size_t)l, exp)))
        return rc;
    *n = cur;
    return 0;
}

/* Runs r inside t. An LMDB error (a full map) is returned for the whole batch to be run again. */
static int run_one(lshared *sh, MDB_txn *t, pc_store_req *r)
{
    MDB_val v;
    int rc;
    char key[sizeof(sh->prefix) + PC_STORE_KEY_MAX + 1];
    memcpy(key, sh->prefix, sh->plen);
    memcpy(key + sh->plen, r->key, r->klen + 1);
    size_t klen = sh->plen + r->klen;
    r->reply = (pc_store_reply){.status = PC_STORE_OK};
    free(r->out);
    r->out = NULL;
    switch (r->op) {
    case PC_OP_GET:
        rc = read_live(t, sh->dbi, key, klen, &v);
        if (rc == MDB_NOTFOUND) {
            r->reply.status = PC_STORE_MISSING;
            return 0;
        }
        if (rc)
            return rc;
        if (!(r->out = dup_val(&v)))
            r->reply.status = PC_STORE_ERROR;
        return 0;
    case PC_OP_SET:
        return write_value(t, sh->dbi, key, klen, r->value, r->vlen,
                           r->ttl_s ? now_s() + r->ttl_s : 0);
    case PC_OP_ADD:
        rc = read_live(t, sh->dbi, key, klen, &v);
        if (rc == 0) {
            r->reply.status = PC_STORE_EXISTS;
            if (!(r->out = dup_val(&v)))
                r->reply.status = PC_STORE_ERROR;
            return 0;
        }
        if (rc != MDB_NOTFOUND)
            return rc;
        return write_value(t, sh->dbi, key, klen, r->value, r->vlen,
                           r->ttl_s ? now_s() + r->ttl_s : 0);
    case PC_OP_INCR:
        rc = do_incr(t, sh->dbi, key, klen, r->by, r->ttl_s, &r->reply.n);
        if (rc == 1) {
            r->reply.status = PC_STORE_ERROR;
            return 0;
        }
        return rc;
    case PC_OP_DEL: {
        MDB_val k = {.mv_size = klen, .mv_data = key};
        rc = mdb_del(t, sh->dbi, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    case PC_OP_WINDOW: {
        double w;
        unsigned long long b = pc_store_window_at(now_s(), r->window_s, &w);
        char k[sizeof(key) + 32];
        long long cur = 0, prev = 0;
        int kl = snprintf(k, sizeof(k), "%s:%llu", key, b);
        if (r->by > 0) {
            rc = do_incr(t, sh->dbi, k, (size_t)kl, r->by, 2 * r->window_s, &cur);
            if (rc == 1) {
                r->reply.status = PC_STORE_ERROR;
                return 0;
            }
            if (rc)
                return rc;
        } else if ((rc = read_live(t, sh->dbi, k, (size_t)kl, &v)) == 0) {
            parse_ll(&v, &cur);
        } else if (rc != MDB_NOTFOUND) {
            return rc;
        }
        kl = snprintf(k, sizeof(k), "%s:%llu", key, b - 1);
        if ((rc = read_live(t, sh->dbi, k, (size_t)kl, &v)) == 0)
            parse_ll(&v, &prev);
        else if (rc != MDB_NOTFOUND)
            return rc;
        r->reply.n = cur + (long long)((double)prev * w);
        return 0;
    }
    }
    return 0;
}

/* Runs a batch in one transaction; a full map is doubled and the batch run again. */
static void run_batch(lshared *sh, pc_store_req *batch)
{
    int reads_only = 1; /* a batch of reads needs no write transaction (nothing to commit) */
    for (pc_store_req *r = batch; r && reads_only; r = r->next)
        reads_only = r->op == PC_OP_GET;
    for (int attempt = 0; attempt < 8; attempt++) {
        MDB_txn *t;
        int rc = mdb_txn_begin(sh->env, NULL, reads_only ? MDB_RDONLY : 0, &t);
        for (pc_store_req *r = batch; rc == 0 && r; r = r->next)
            rc = run_one(sh, t, r);
        if (rc == 0) {
            rc = mdb_txn_commit(t);
        } else {
            mdb_txn_abort(t);
        }
        if (rc == MDB_MAP_FULL && sh->map_size < (size_t)1 << 40) {
            sh->map_size *= 2;
            if (mdb_env_set_mapsize(sh->env, sh->map_size) == 0) {
                pc_log_notice(0, "event=state backend=lmdb map_size=%zu", sh->map_size);
                continue;
            }
        }
        if (rc) {
            pc_log_err(0, "event=state backend=lmdb result=failed error=\"%s\"", mdb_strerror(rc));
            for (pc_store_req *r = batch; r; r = r->next) {
                free(r->out);
                r->out = NULL;
                r->reply = (pc_store_reply){.status = PC_STORE_ERROR};
            }
        }
        return;
    }
}

/* Deletes expired entries, a bounded number, from where the last sweep stopped. */
static void sweep(lshared *sh)
{
    MDB_txn *t;
    MDB_cursor *c;
    if (mdb_txn_begin(sh->env, NULL, 0, &t))
        return;
    if (mdb_cursor_open(t, sh->dbi, &c)) {
        mdb_txn_abort(t);
        return;
    }
    MDB_val k = {.mv_size = sh->sweep_klen, .mv_data = sh->sweep_key}, v;
    int rc = sh->sweep_klen ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)
                            : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    uint64_t now = now_s();
    size_t scanned = 0, deleted = 0;
    while (rc == 0 && scanned < SWEEP_SCAN && deleted < SWEEP_DELETE) {
        scanned++;
        if (v.mv_size >= 8) {
            uint64_t exp = get_be64(v.mv_data);
            if (exp && exp <= now && mdb_cursor_del(c, 0) == 0) {
                deleted++;
                rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
                if (rc == 0)
                    continue;
                rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
                continue;
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && k.mv_size <= PC_STORE_KEY_MAX) {
        memcpy(sh->sweep_key, k.mv_data, k.mv_size);
        sh->sweep_klen = k.mv_size;
    } else {
        sh->sweep_klen = 0; /* at the end: start again from the first key next time */
    }
    mdb_cursor_close(c);
    if (mdb_txn_commit(t) == 0 && deleted)
        pc_log_debug(0, "event=state backend=lmdb swept=%zu", deleted);
}

static void *thread_main(void *arg)
{
    lshared *sh = arg;
    uint64_t last_sync = now_s(), last_sweep = now_s();
    int dirty = 0;
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        while (!sh->head && !sh->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            if (pthread_cond_timedwait(&sh->cond, &sh->mu, &ts) == ETIMEDOUT)
                break;
        }
        if (!sh->head && sh->stop)
            break;
        /* a batch: the queue's first BATCH_MAX requests */
        pc_store_req *batch = sh->head, *last = NULL;
        size_t n = 0;
        for (pc_store_req *r = sh->head; r && n < BATCH_MAX; r = r->next, n++) {
            ((lworker *)r->bk)->in_batch++;
            last = r;
        }
        if (last) {
            sh->head = last->next;
            if (!sh->head)
                sh->tail = NULL;
            last->next = NULL;
        }
        pthread_mutex_unlock(&sh->mu);
        if (batch) {
            run_batch(sh, batch);
            dirty = 1;
        }
        uint64_t now = now_s();
        if (dirty && now != last_sync) {
            mdb_env_sync(sh->env, 1);
            last_sync = now;
            dirty = 0;
        }
        if (!batch && now - last_sweep >= SWEEP_EVERY_S) {
            sweep(sh);
            last_sweep = now;
            dirty = 1;
        }
        pthread_mutex_lock(&sh->mu);
        /* the answers to their loops */
        for (pc_store_req *r = batch, *next; r; r = next) {
            next = r->next;
            lworker *w = r->bk;
            w->in_batch--;
            r->next = w->done;
            w->done = r;
            if (!w->closing)
                uv_async_send(&w->async);
        }
        if (batch)
            pthread_cond_broadcast(&sh->idle_cond);
    }
    pthread_mutex_unlock(&sh->mu);
    mdb_env_sync(sh->env, 1);
    return NULL;
}

/* ---- the backend ---------------------------------------------------------------------------- */

static void *l_open(const pc_state_cfg *cfg, char *err, size_t errlen)
{
    const char *path = cfg->path ? cfg->path : "/var/lib/portcullis/state";
    if (mkdir(path, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state.path %s: %s", path, strerror(errno));
        return NULL;
    }
    lshared *sh = calloc(1, sizeof(*sh));
    if (!sh) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sh->map_size = cfg->map_size ? cfg->map_size : (size_t)64 << 20;
    const char *prefix = cfg->prefix ? cfg->prefix : "pc:";
    if (strlen(prefix) >= sizeof(sh->prefix)) {
        snprintf(err, errlen, "state.prefix: at most %zu characters", sizeof(sh->prefix) - 1);
        free(sh);
        return NULL;
    }
    sh->plen = strlen(prefix);
    memcpy(sh->prefix, prefix, sh->plen + 1);
    int rc = mdb_env_create(&sh->env);
    MDB_txn *t = NULL;
    if (!rc)
        rc = mdb_env_set_mapsize(sh->env, sh->map_size);
    if (!rc)
        rc = mdb_env_open(sh->env, path, MDB_NOSYNC | MDB_NOTLS, 0640);
    if (!rc) {
        int dead = 0;
        mdb_reader_check(sh->env, &dead);
        rc = mdb_txn_begin(sh->env, NULL, 0, &t);
    }
    if (!rc)
        rc = mdb_dbi_open(t, NULL, 0, &sh->dbi);
    if (!rc) {
        rc = mdb_txn_commit(t);
        t = NULL;
    }
    if (rc) {
        if (t)
            mdb_txn_abort(t);
        snprintf(err, errlen, "state.path %s: %s", path, mdb_strerror(rc));
        if (sh->env)
            mdb_env_close(sh->env);
        free(sh);
        return NULL;
    }
    MDB_envinfo info;
    if (mdb_env_info(sh->env, &info) == 0 && info.me_mapsize > sh->map_size)
        sh->map_size = info.me_mapsize; /* a map grown by an earlier run */
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->cond, NULL);
    pthread_cond_init(&sh->idle_cond, NULL);
    if (pthread_create(&sh->thread, NULL, thread_main, sh) != 0) {
        snprintf(err, errlen, "state: cannot start the LMDB thread");
        mdb_env_close(sh->env);
        free(sh);
        return NULL;
    }
    return sh;
}

static void l_close(void *p)
{
    lshared *sh = p;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->mu);
    sh->stop = 1;
    pthread_cond_signal(&sh->cond);
    pthread_mutex_unlock(&sh->mu);
    pthread_join(sh->thread, NULL);
    mdb_env_close(sh->env);
    pthread_cond_destroy(&sh->cond);
    pthread_cond_destroy(&sh->idle_cond);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

static void on_async(uv_async_t *a)
{
    lworker *w = a->data;
    pthread_mutex_lock(&w->sh->mu);
    pc_store_req *list = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->sh->mu);
    /* in the order they were asked */
    pc_store_req *rev = NULL;
    while (list) {
        pc_store_req *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        pc_store_req *next = rev->next;
        pc_store_complete(rev);
        rev = next;
    }
}

static void *l_worker_new(void *shared, uv_loop_t *loop, char *err, size_t errlen)
{
    lworker *w = calloc(1, sizeof(*w));
    if (!w || uv_async_init(loop, &w->async, on_async) < 0) {
        free(w);
        snprintf(err, errlen, "state: cannot make the worker's wake-up handle");
        return NULL;
    }
    w->sh = shared;
    w->async.data = w;
    return w;
}

static void free_on_close(uv_handle_t *h)
{
    free(h->data);
}

static void l_worker_free(void *p)
{
    lworker *w = p;
    lshared *sh = w->sh;
    pthread_mutex_lock(&sh->mu);
    w->closing = 1;
    /* what is still queued goes; what the thread is running now is waited for */
    pc_store_req **pp = &sh->head, *dropped = NULL;
    sh->tail = NULL;
    while (*pp) {
        pc_store_req *r = *pp;
        if (r->bk == w) {
            *pp = r->next;
            r->next = dropped;
            dropped = r;
        } else {
            sh->tail = r;
            pp = &r->next;
        }
    }
    while (w->in_batch)
        pthread_cond_wait(&sh->idle_cond, &sh->mu);
    pc_store_req *done = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&sh->mu);
    for (pc_store_req *lists[2] = {dropped, done}, **l = lists; l < lists + 2; l++)
        for (pc_store_req *r = *l, *next; r; r = next) {
            next = r->next;
            pc_store_drop(r);
        }
    uv_close((uv_handle_t *)&w->async, free_on_close);
}

static int l_submit(void *p, pc_store_req *r)
{
    lworker *w = p;
    lshared *sh = w->sh;
    r->bk = w;
    r->next = NULL;
    pthread_mutex_lock(&sh->mu);
    if (sh->tail)
        sh->tail->next = r;
    else
        sh->head = r;
    sh->tail = r;
    pthread_cond_signal(&sh->cond);
    pthread_mutex_unlock(&sh->mu);
    return 0;
}

const pc_store_backend pc_store_lmdb = {
    .name = "lmdb",
    .open = l_open,
    .close = l_close,
    .worker_new = l_worker_new,
    .worker_free = l_worker_free,
    .submit = l_submit,
};
