/* filter.h — the filter plugin API. A filter declares the hooks it uses and answers each one,
 * now or later, through done(). The chain (gateway/core/chain.c) owns order, timeouts, on-error
 * actions, score totals, monitor mode and logging; a filter only decides.
 *
 * Threads: init/fini run on the main thread; init_worker/fini_worker on each worker's loop thread
 * (per-worker state: a resolver channel, a pool of connections); run() and every callback run on
 * the session's loop
 * thread and must never block. Blocking work (DNS libraries, scanners, disk) goes through
 * pc_filter_offload(), which runs it on the threadpool and calls back on the session's loop.
 * `self` (what init returned) is shared by all worker threads: treat it as read-only after init.
 *
 * A shared object plugin exports `const pc_filter *pc_filter_entry(void)` whose abi equals
 * PC_FILTER_ABI; it is loaded at start from the configuration's `plugins` list. */
#ifndef PORTCULLIS_FILTER_H
#define PORTCULLIS_FILTER_H

#include <stddef.h>

#include "portcullis/message.h"
#include "portcullis/options.h"
#include "portcullis/verdict.h"

#define PC_FILTER_ABI 2

typedef enum {
    PC_HOOK_CONNECT = 0, /* after accept (and PROXY), before the greeting */
    PC_HOOK_HELO,        /* HELO/EHLO argument known */
    PC_HOOK_MAIL,        /* sender known */
    PC_HOOK_RCPT,        /* once per recipient: pc_ctx_rcpt() */
    PC_HOOK_MESSAGE,     /* the whole message: SMTP DATA, IMAP APPEND */
    PC_HOOK_RETRIEVE,    /* a message read by POP3 RETR/TOP or IMAP FETCH */
    PC_HOOK_CLOSE,       /* the session ends; the verdict is ignored */
    PC_HOOK_DELIVER,     /* SMTP: the message passed, after the decision and every change to it
                            (the gateway's headers included): last steps such as a DKIM signature
                            or an ARC seal; only TEMPFAIL and REJECT stop it */
    PC_HOOK__COUNT
} pc_hook;

#define PC_HOOK_BIT(h) (1u << (h))

struct uv_loop_s; /* libuv's uv_loop_t */

typedef void (*pc_done_fn)(pc_filter_ctx *ctx, const pc_verdict *v);

typedef struct pc_filter {
    int abi; /* PC_FILTER_ABI */
    const char *name;
    unsigned hooks; /* PC_HOOK_BIT()s */
    /* Builds an instance from its options (may be NULL). Returns NULL with a reason in err. */
    void *(*init)(const pc_opt *options, char *err, size_t errlen);
    void (*fini)(void *self);
    /* Answers the hook by calling done(ctx, verdict) exactly once, now or later. */
    void (*run)(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done);
    /* Optional. The chain gave up waiting (timeout) or the session ended: drop what is held for
     * ctx. done() may still be called afterwards; it is then ignored. Timers made with
     * pc_filter_timer() are stopped by the chain itself. */
    void (*cancel)(void *self, pc_filter_ctx *ctx);
    /* Optional (ABI 2). Called on each worker's loop thread when the worker starts, before any
     * session: returns the filter's state for that loop (NULL is allowed and means none), which
     * run() gets back with pc_filter_worker_state(ctx). Owned by the filter. */
    void *(*init_worker)(void *self, struct uv_loop_s *loop);
    /* Optional. Called on the same thread when the worker stops, after its last session and before
     * fini: frees what init_worker returned. */
    void (*fini_worker)(void *self, void *worker_state);
    /* Optional. What this instance's verdicts on content depend on and may change while the
     * gateway runs (a signature database's generation): verdicts cached for POP3/IMAP retrieval
     * are keyed by it, so a message read again after it changed is checked again. Any thread. */
    unsigned long long (*content_version)(void *self);
} pc_filter;

/* What init_worker returned for the loop running ctx's session; NULL if none. Valid until the
 * worker stops. */
void *pc_filter_worker_state(pc_filter_ctx *ctx);

/* Runs work(arg) on the threadpool, then after(ctx, arg) on the session's loop thread. If the
 * session ended meanwhile, after() still runs (for cleanup) with pc_ctx_cancelled(ctx) true.
 * Returns 0 or -1. */
int pc_filter_offload(pc_filter_ctx *ctx, void (*work)(void *arg),
                      void (*after)(pc_filter_ctx *ctx, void *arg), void *arg);
/* The same for work that may hold a thread for long (a scan, a body hash or a regular expression
 * over a large message): at most threadpool_size - 1 such jobs run at once across all workers, so
 * one thread always stays for short work; the others wait in order. If the chain gives up on the
 * hook while the job waits, work() is skipped and after() runs at once (pc_ctx_cancelled true). */
int pc_filter_offload_long(pc_filter_ctx *ctx, void (*work)(void *arg),
                           void (*after)(pc_filter_ctx *ctx, void *arg), void *arg);
/* Calls cb(ctx, arg) once after ms on the session's loop, unless the hook was answered, timed out
 * or cancelled first. Returns 0 or -1. */
int pc_filter_timer(pc_filter_ctx *ctx, unsigned ms, void (*cb)(pc_filter_ctx *ctx, void *arg),
                    void *arg);
int pc_ctx_cancelled(const pc_filter_ctx *ctx);

/* Log a line for this session (key=value text; the session id and filter name are added). */
void pc_filter_log(pc_filter_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Built-in filters and plugins register here (the registry is filled before configuration). */
int pc_filter_register(const pc_filter *f);
const pc_filter *pc_filter_lookup(const char *name);

#endif
