/* example.c — a small filter plugin that uses every service the core gives filters, loaded by the
 * integration tests (test_plugin_api.py) as a shared object and run there under the sanitizers:
 *
 *   per-worker state   init_worker/fini_worker keep a counter of messages and the jobs in flight on
 *                      each loop; fini_worker logs "example-worker-stop messages=N".
 *   the resolver       at MESSAGE it asks the TXT record of its `lookup` option through
 *                      pc_filter_dns(), adds "X-Example-Lookup: STATUS TEXT" to the message and
 *                      records "x-example=pass|fail" for its Authentication-Results.
 *   the sealed message then it hands the message to the threadpool as a long job
 *                      (pc_filter_offload_long), which waits `delay` and reads the sealed bytes
 *                      without a copy (pc_message_map) to log "example-offload bytes=N fnv=HEX
 *                      mapped=0|1 cancelled=0|1". With a delay longer than the filter's timeout
 *                      the chain gives up first, the session goes on and may end, and the read
 *                      still sees valid bytes: the offload holds a reference.
 *
 * Options: lookup (a domain name, required), delay (a duration, default 0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "portcullis/dns.h"
#include "portcullis/filter.h"

typedef struct example {
    const char *lookup; /* borrowed from the configuration snapshot */
    unsigned work_ms;
} example;

typedef struct job job;

/* One per worker loop: never shared between threads, so no lock. */
typedef struct worker {
    unsigned long messages;
    job *jobs; /* waiting for DNS, for cancel() to find */
} worker;

struct job {
    const example *ex;
    worker *w;
    pc_filter_ctx *ctx;
    pc_done_fn done;
    pc_dns_req *req;
    pc_message *msg; /* for the threadpool: the offload holds its reference */
    unsigned work_ms;
    size_t bytes;
    uint32_t fnv;
    int mapped;
    job *next;
};

static void *init(const pc_opt *options, char *err, size_t errlen)
{
    static const char *const known[] = {"lookup", "delay", NULL};
    if (pc_opt_check_keys(options, known, err, errlen) < 0)
        return NULL;
    example *ex = calloc(1, sizeof(*ex));
    if (!ex) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ex->lookup = pc_opt_str(options, "lookup", NULL);
    if (!ex->lookup || !*ex->lookup ||
        pc_opt_duration(options, "delay", &ex->work_ms, err, errlen) < 0) {
        if (!ex->lookup || !*ex->lookup)
            snprintf(err, errlen, "option lookup (a domain name) is required");
        free(ex);
        return NULL;
    }
    return ex;
}

static void fini(void *self)
{
    free(self);
}

static void *init_worker(void *self, struct uv_loop_s *loop)
{
    (void)self;
    (void)loop;
    return calloc(1, sizeof(worker));
}

static void fini_worker(void *self, void *state)
{
    (void)self;
    worker *w = state;
    if (!w)
        return;
    pc_filter_log(NULL, 6, "example-worker-stop messages=%lu", w->messages);
    free(w);
}

static void unlink_job(job *j)
{
    for (job **pp = &j->w->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            return;
        }
    }
}

/* Threadpool: waits, then reads the sealed bytes (the session may be gone by now). */
static void work(void *arg)
{
    job *j = arg;
    if (j->work_ms) {
        struct timespec ts = {(time_t)(j->work_ms / 1000), (long)(j->work_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    size_t len;
    const unsigned char *p = pc_message_map(j->msg, &len);
    if (!p)
        return;
    uint32_t h = 2166136261u; /* FNV-1a: touches every byte */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    j->bytes = len;
    j->fnv = h;
    j->mapped = 1;
}

/* Loop thread, after work(); ctx is cancelled if the chain gave up on us meanwhile. */
static void after(pc_filter_ctx *ctx, void *arg)
{
    job *j = arg;
    int cancelled = pc_ctx_cancelled(ctx);
    pc_filter_log(ctx, 6, "example-offload bytes=%zu fnv=%08x mapped=%d cancelled=%d", j->bytes,
                  j->fnv, j->mapped, cancelled);
    if (!cancelled) {
        pc_verdict v = {.action = PC_TAG, .score = 0.1, .symbol = "EXAMPLE_READ"};
        j->done(ctx, &v);
    }
    free(j);
}

static void on_answer(void *arg, const pc_dns_answer *a)
{
    job *j = arg;
    j->req = NULL;
    unlink_job(j);
    pc_filter_ctx *ctx = j->ctx;
    pc_message *m = pc_ctx_message(ctx);
    char value[300];
    int n = snprintf(value, sizeof(value), "%s", pc_dns_status_name(a->status));
    if (a->status == PC_DNS_NOERROR && a->n > 0) {
        size_t tl = a->rr[0].len;
        if (tl > 200)
            tl = 200;
        char txt[201];
        for (size_t i = 0; i < tl; i++) {
            unsigned char c = a->rr[0].data[i];
            txt[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        }
        txt[tl] = '\0';
        snprintf(value + n, sizeof(value) - (size_t)n, " %s", txt);
    }
    if (m)
        pc_message_add_header(m, "X-Example-Lookup", value);
    /* The finding goes into the gateway's one Authentication-Results header. */
    char ar[128];
    snprintf(ar, sizeof(ar), "x-example=%s policy.dns=%s",
             a->status == PC_DNS_NOERROR ? "pass" : "fail", pc_dns_status_name(a->status));
    pc_ctx_authres(ctx, ar);
    j->msg = m;
    if (!m || pc_filter_offload_long(ctx, work, after, j) < 0) {
        pc_verdict v = {.action = PC_CONTINUE};
        j->done(ctx, &v);
        free(j);
    }
}

static void run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    const example *ex = self;
    worker *w = pc_filter_worker_state(ctx);
    pc_verdict cont = {.action = PC_CONTINUE};
    if (hook != PC_HOOK_MESSAGE || !w) {
        done(ctx, &cont);
        return;
    }
    w->messages++;
    job *j = calloc(1, sizeof(*j));
    if (!j) {
        done(ctx, &cont);
        return;
    }
    *j = (job){.ex = ex, .w = w, .ctx = ctx, .done = done, .work_ms = ex->work_ms};
    j->req = pc_dns_query(pc_filter_dns(ctx), ex->lookup, PC_DNS_TXT, on_answer, j);
    if (!j->req) {
        free(j);
        done(ctx, &cont);
        return;
    }
    j->next = w->jobs;
    w->jobs = j;
}

/* The chain gave up (timeout) or the session ended: a DNS question still pending is dropped here;
 * work already on the threadpool finishes on its own and after() frees it. */
static void cancel(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    worker *w = pc_filter_worker_state(ctx);
    for (job *j = w ? w->jobs : NULL; j; j = j->next) {
        if (j->ctx == ctx) {
            pc_dns_cancel(j->req);
            unlink_job(j);
            free(j);
            return;
        }
    }
}

static const pc_filter example_filter = {
    .abi = PC_FILTER_ABI,
    .name = "example",
    .hooks = PC_HOOK_BIT(PC_HOOK_MESSAGE),
    .init = init,
    .fini = fini,
    .run = run,
    .cancel = cancel,
    .init_worker = init_worker,
    .fini_worker = fini_worker,
};

const pc_filter *pc_filter_entry(void);
const pc_filter *pc_filter_entry(void)
{
    return &example_filter;
}
