/* chain.c — runs a listener's filters for one hook (order, timeouts, on-error actions, verdict
 * merging, monitor mode, logging) and implements the filter API: context, timers, offload. */
#include "core/chain.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "core/jobs.h"
#include "core/spool.h"
#include "net/conn.h"

#define DEFAULT_TIMEOUT_MS 30000u

typedef struct chain_filter {
    const pc_filter *f;
    void *self;
    pc_filter_use use; /* name copied; options borrowed from the configuration snapshot */
} chain_filter;

struct pc_chain {
    chain_filter *v;
    size_t n;
    unsigned hooks;
    pc_scores_cfg scores;
};

typedef struct ftimer ftimer;

/* One filter's answer to one hook. Referenced by the run (until answered or cancelled), by its
 * timeout timer and its user timers (until their close callbacks) and by each pending offload. */
struct pc_filter_ctx {
    pc_chain_run *run;   /* NULL once answered, timed out or cancelled */
    pc_session_view *sv; /* NULL once cancelled (the session may be gone) */
    const chain_filter *cf;
    size_t index; /* of cf in its chain: the slot of its per-worker state */
    uv_loop_t *loop;
    uint64_t sid;
    char name[64]; /* for pc_filter_log() after the chain may be gone */
    pc_hook hook;
    uint64_t started_ns;
    int answered;  /* done() or the timeout happened: later answers are ignored */
    int cancelled; /* timed out or the session ended */
    int refs;
    unsigned offloads;
    int timeout_open;
    uv_timer_t timeout;
    ftimer *timers; /* active user timers */
};

struct ftimer {
    uv_timer_t h;
    pc_filter_ctx *ctx;
    void (*cb)(pc_filter_ctx *ctx, void *arg);
    void *arg;
    ftimer *next;
};

struct pc_chain_run {
    const pc_chain *ch;
    pc_hook hook;
    pc_session_view *sv;
    pc_chain_cb cb;
    void *ud;
    size_t next;        /* index of the next filter to consider */
    pc_filter_ctx *cur; /* the filter being waited for */
    int driving;        /* drive() is on the stack */
    int finished;       /* a final verdict or the end of the chain was reached */
    int aborted;
    pc_verdict final; /* merged verdict, strings owned below */
    char *enhanced, *text, *symbol;
};

static const char *hook_name(pc_hook h)
{
    static const char *const names[] = {"connect", "helo",     "mail",  "rcpt",
                                        "message", "retrieve", "close", "deliver"};
    return (unsigned)h < PC_HOOK__COUNT ? names[h] : "unknown";
}

static const char *action_name(pc_action a)
{
    switch (a) {
    case PC_CONTINUE: return "continue";
    case PC_ACCEPT: return "accept";
    case PC_TAG: return "tag";
    case PC_QUARANTINE: return "quarantine";
    case PC_TEMPFAIL: return "tempfail";
    case PC_REJECT: return "reject";
    case PC_DISCARD: return "discard";
    case PC_REPLACE: return "replace";
    }
    return "invalid";
}

/* ---- results ---- */

void pc_results_reset(pc_results *r)
{
    for (size_t i = 0; i < r->nkv; i++) {
        free(r->keys[i]);
        free(r->values[i]);
    }
    for (size_t i = 0; i < r->nsymbols; i++)
        free(r->symbols[i]);
    for (size_t i = 0; i < r->nauthres; i++)
        free(r->authres[i]);
    free(r->authres);
    free(r->symscores);
    free(r->keys);
    free(r->values);
    free(r->symbols);
    memset(r, 0, sizeof(*r));
}

static int results_set(pc_results *r, const char *key, const char *value)
{
    char *v = strdup(value ? value : "");
    if (!v)
        return -1;
    for (size_t i = 0; i < r->nkv; i++) {
        if (strcmp(r->keys[i], key) == 0) {
            free(r->values[i]);
            r->values[i] = v;
            return 0;
        }
    }
    char *k = strdup(key);
    char **nk = realloc(r->keys, (r->nkv + 1) * sizeof(*nk));
    if (nk)
        r->keys = nk;
    char **nv = realloc(r->values, (r->nkv + 1) * sizeof(*nv));
    if (nv)
        r->values = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return -1;
    }
    r->keys[r->nkv] = k;
    r->values[r->nkv] = v;
    r->nkv++;
    return 0;
}

static int results_add_symbol(pc_results *r, const char *sym, double score)
{
    char *s = strdup(sym);
    char **ns = realloc(r->symbols, (r->nsymbols + 1) * sizeof(*ns));
    if (ns)
        r->symbols = ns;
    double *nd = realloc(r->symscores, (r->nsymbols + 1) * sizeof(*nd));
    if (nd)
        r->symscores = nd;
    if (!s || !ns || !nd) {
        free(s);
        return -1;
    }
    r->symbols[r->nsymbols] = s;
    r->symscores[r->nsymbols++] = score;
    return 0;
}

/* ---- score thresholds ---- */

static int set_final(pc_chain_run *run, const pc_verdict *v);

unsigned long long pc_chain_content_version(const pc_chain *ch)
{
    unsigned long long v = 0;
    for (size_t i = 0; ch && i < ch->n; i++)
        if (ch->v[i].f->content_version)
            v = v * 1000003ULL + ch->v[i].f->content_version(ch->v[i].self) + i;
    return v;
}

void pc_chain_set_scores(pc_chain *ch, const pc_scores_cfg *sc)
{
    if (ch && sc)
        ch->scores = *sc;
}

/* A run that ended without a final verdict: the listener's thresholds decide from the total. */
static void apply_thresholds(pc_chain_run *run)
{
    const pc_scores_cfg *sc = run->sv && run->sv->scores ? run->sv->scores : &run->ch->scores;
    const pc_results *res = run->sv ? run->sv->results : NULL;
    if (!res || (!sc->tag && !sc->quarantine && !sc->reject))
        return;
    if (run->sv->scores_skip) {
        pc_log_info(run->sv->sid, "event=score hook=%s score=%.2f action=none reason=allowed",
                    hook_name(run->hook), res->score);
        return;
    }
    double score = res->score;
    pc_verdict v = {.action = PC_CONTINUE};
    double over = 0;
    if (sc->reject && score >= sc->reject) {
        v = (pc_verdict){.action = PC_REJECT,
                         .enhanced = "5.7.1",
                         .text = "Message refused as spam",
                         .symbol = "SCORE_REJECT"};
        over = sc->reject;
    } else if (sc->quarantine && score >= sc->quarantine) {
        v = (pc_verdict){.action = PC_QUARANTINE, .symbol = "SCORE_QUARANTINE"};
        over = sc->quarantine;
    } else if (sc->tag && score >= sc->tag) {
        v = (pc_verdict){.action = PC_TAG, .symbol = "SCORE_TAG"};
        over = sc->tag;
    }
    if (v.action == PC_CONTINUE)
        return;
    pc_log_info(run->sv->sid, "event=score hook=%s score=%.2f threshold=%.2f action=%s",
                hook_name(run->hook), score, over, action_name(v.action));
    if (v.action == PC_TAG) {
        run->final.action = PC_TAG;
        return;
    }
    set_final(run, &v);
}

/* ---- chain ---- */

pc_chain *pc_chain_build(const pc_filter_use *uses, size_t n, char *err, size_t errlen)
{
    pc_chain *ch = calloc(1, sizeof(*ch));
    if (!ch || (n && !(ch->v = calloc(n, sizeof(*ch->v))))) {
        free(ch);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = uses[i].name ? uses[i].name : "";
        const pc_filter *f = pc_filter_lookup(name);
        if (!f) {
            snprintf(err, errlen, "filter %s: unknown filter", name);
            goto fail;
        }
        chain_filter *cf = &ch->v[ch->n];
        cf->f = f;
        cf->use = uses[i];
        cf->use.name = strdup(name);
        if (!cf->use.name) {
            snprintf(err, errlen, "filter %s: out of memory", name);
            goto fail;
        }
        if (f->init) {
            char ferr[512] = "";
            cf->self = f->init(uses[i].options, ferr, sizeof(ferr));
            if (!cf->self) {
                snprintf(err, errlen, "filter %s: %s", name, ferr[0] ? ferr : "init failed");
                free(cf->use.name);
                goto fail;
            }
        }
        ch->n++;
        ch->hooks |= f->hooks;
    }
    return ch;
fail:
    pc_chain_free(ch);
    return NULL;
}

void pc_chain_free(pc_chain *ch)
{
    if (!ch)
        return;
    for (size_t i = 0; i < ch->n; i++) {
        if (ch->v[i].f->fini && ch->v[i].self)
            ch->v[i].f->fini(ch->v[i].self);
        free(ch->v[i].use.name);
    }
    free(ch->v);
    free(ch);
}

void **pc_chain_worker_init(const pc_chain *ch, uv_loop_t *loop, unsigned worker)
{
    if (!ch || ch->n == 0)
        return NULL;
    void **st = calloc(ch->n, sizeof(*st));
    if (!st)
        return NULL;
    for (size_t i = 0; i < ch->n; i++) {
        if (!ch->v[i].f->init_worker)
            continue;
        st[i] = ch->v[i].f->init_worker(ch->v[i].self, loop);
        pc_log_info(0, "event=filter-worker-init filter=%s worker=%u state=%s", ch->v[i].use.name,
                    worker, st[i] ? "yes" : "none");
    }
    return st;
}

void pc_chain_worker_fini(const pc_chain *ch, void **states, unsigned worker)
{
    if (!ch || !states)
        return;
    for (size_t i = 0; i < ch->n; i++)
        if (ch->v[i].f->fini_worker) {
            ch->v[i].f->fini_worker(ch->v[i].self, states[i]);
            pc_log_info(0, "event=filter-worker-fini filter=%s worker=%u", ch->v[i].use.name,
                        worker);
        }
    free(states);
}

void *pc_filter_worker_state(pc_filter_ctx *ctx)
{
    if (!ctx || !ctx->sv || !ctx->sv->fstate)
        return NULL;
    return ctx->sv->fstate[ctx->index];
}

unsigned pc_chain_hooks(const pc_chain *ch)
{
    return ch ? ch->hooks : 0;
}

/* ---- context lifetime ---- */

static void ctx_unref(pc_filter_ctx *ctx)
{
    if (--ctx->refs == 0)
        free(ctx);
}

static void on_handle_closed(uv_handle_t *h)
{
    ctx_unref(h->data);
}

static void on_ftimer_closed(uv_handle_t *h)
{
    ftimer *t = (ftimer *)h;
    pc_filter_ctx *ctx = t->ctx;
    free(t);
    ctx_unref(ctx);
}

/* Stops the timeout and every user timer; handles are freed in their close callbacks. */
static void ctx_stop_timers(pc_filter_ctx *ctx)
{
    if (ctx->timeout_open) {
        ctx->timeout_open = 0;
        uv_timer_stop(&ctx->timeout);
        uv_close((uv_handle_t *)&ctx->timeout, on_handle_closed);
    }
    while (ctx->timers) {
        ftimer *t = ctx->timers;
        ctx->timers = t->next;
        uv_timer_stop(&t->h);
        uv_close((uv_handle_t *)&t->h, on_ftimer_closed);
    }
}

/* The ctx leaves its run: no more answers, timers stopped, the run's reference dropped. */
static void ctx_detach(pc_filter_ctx *ctx)
{
    ctx->answered = 1;
    ctx_stop_timers(ctx);
    if (ctx->run && ctx->run->cur == ctx)
        ctx->run->cur = NULL;
    ctx->run = NULL;
    ctx->sv = NULL;
    ctx_unref(ctx);
}

/* ---- verdicts ---- */

static int is_final(pc_action a)
{
    return a == PC_ACCEPT || a == PC_QUARANTINE || a == PC_TEMPFAIL || a == PC_REJECT ||
           a == PC_DISCARD || a == PC_REPLACE;
}

static int set_final(pc_chain_run *run, const pc_verdict *v)
{
    /* Kept as the filter said it: each protocol fills in its own defaults when it renders the
     * decision (core/decision.h). */
    run->final = *v;
    run->enhanced = run->final.enhanced ? strdup(run->final.enhanced) : NULL;
    run->text = run->final.text ? strdup(run->final.text) : NULL;
    run->symbol = run->final.symbol ? strdup(run->final.symbol) : NULL;
    run->final.enhanced = run->enhanced;
    run->final.text = run->text;
    run->final.symbol = run->symbol;
    run->finished = 1;
    return 0;
}

static void log_verdict(const pc_filter_ctx *ctx, const pc_verdict *v, const char *note)
{
    uint64_t ms = (uv_hrtime() - ctx->started_ns) / 1000000u;
    const pc_filter_use *use = &ctx->cf->use;
    char extra[160] = "";
    size_t n = 0;
    if (v->code && n < sizeof(extra))
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, " code=%d", v->code);
    if (v->symbol && n < sizeof(extra))
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, " symbol=%.64s", v->symbol);
    if (v->score != 0 && n < sizeof(extra))
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, " score=%.2f", v->score);
    if (use->monitor && n < sizeof(extra))
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, " monitor=1");
    if (note && n < sizeof(extra))
        snprintf(extra + n, sizeof(extra) - n, " error=%s", note);
    pc_log(v->action == PC_CONTINUE && !note ? PC_LOG_DEBUG : PC_LOG_INFO, ctx->sid,
           "filter=%s hook=%s action=%s time_ms=%llu%s", use->name, hook_name(ctx->hook),
           action_name(v->action), (unsigned long long)ms, extra);
}

/* Applies one filter's verdict to its run (which it leaves). The caller holds a ctx reference. */
static void apply(pc_filter_ctx *ctx, const pc_verdict *v, const char *note)
{
    pc_chain_run *run = ctx->run;
    int monitor = ctx->cf->use.monitor;
    log_verdict(ctx, v, note);
    ctx_detach(ctx);
    if (!run || run->aborted || monitor)
        return;
    pc_results *res = run->sv->results;
    if (res && v->action != PC_CONTINUE) {
        res->score += v->score;
        if (v->symbol && *v->symbol)
            results_add_symbol(res, v->symbol, v->score);
    }
    if (run->hook != PC_HOOK_CLOSE && is_final(v->action))
        set_final(run, v);
}

static void onerr_verdict(const pc_filter_ctx *ctx, pc_verdict *v)
{
    memset(v, 0, sizeof(*v));
    switch (ctx->cf->use.on_error) {
    case PC_ONERR_CONTINUE: v->action = PC_CONTINUE; break;
    case PC_ONERR_REJECT:
        *v = (pc_verdict){.action = PC_REJECT,
                          .enhanced = "5.7.1",
                          .text = "Rejected by policy (filter failure)"};
        break;
    default:
        *v = (pc_verdict){
            .action = PC_TEMPFAIL, .enhanced = "4.3.0", .text = "Temporary filter failure"};
        break;
    }
}

/* ---- running ---- */

static void free_run(pc_chain_run *run)
{
    free(run->enhanced);
    free(run->text);
    free(run->symbol);
    free(run);
}

static void done_cb(pc_filter_ctx *ctx, const pc_verdict *v);
static void on_timeout(uv_timer_t *t);

/* Runs filters until one answers later, a final verdict, or the end. Answers given inside run()
 * are applied by done_cb and picked up here, so a long synchronous chain is a loop, not recursion.
 * Returns 1 when the run is over (callback made or aborted) and freed. */
static int drive(pc_chain_run *run)
{
    run->driving = 1;
    while (!run->finished && !run->aborted) {
        const pc_chain *ch = run->ch;
        while (run->next < ch->n && !(ch->v[run->next].f->hooks & PC_HOOK_BIT(run->hook)))
            run->next++;
        if (run->next >= ch->n) {
            run->finished = 1;
            break;
        }
        const chain_filter *cf = &ch->v[run->next++];
        pc_filter_ctx *ctx = calloc(1, sizeof(*ctx));
        if (!ctx) {
            pc_verdict v = {.action = PC_TEMPFAIL,
                            .code = 451,
                            .enhanced = "4.3.0",
                            .text = "Temporary filter failure"};
            set_final(run, &v);
            break;
        }
        ctx->run = run;
        ctx->sv = run->sv;
        ctx->cf = cf;
        ctx->index = (size_t)(cf - run->ch->v);
        ctx->loop = run->sv->loop;
        ctx->sid = run->sv->sid;
        snprintf(ctx->name, sizeof(ctx->name), "%s", cf->use.name);
        ctx->hook = run->hook;
        ctx->started_ns = uv_hrtime();
        ctx->refs = 2; /* the run's, and ours while run() is on the stack */
        run->cur = ctx;
        cf->f->run(cf->self, run->hook, ctx, done_cb);
        int pending = !ctx->answered;
        if (pending && !run->aborted) {
            /* Armed only now: most filters answer inside run() and need no timer handle. */
            unsigned tmo = cf->use.timeout_ms ? cf->use.timeout_ms : DEFAULT_TIMEOUT_MS;
            uint64_t spent = (uv_hrtime() - ctx->started_ns) / 1000000u;
            if (uv_timer_init(ctx->loop, &ctx->timeout) == 0) {
                ctx->timeout.data = ctx;
                ctx->timeout_open = 1;
                ctx->refs++;
                uv_timer_start(&ctx->timeout, on_timeout, spent < tmo ? tmo - spent : 0, 0);
            }
            ctx_unref(ctx);
            run->driving = 0;
            return 0;
        }
        ctx_unref(ctx);
    }
    run->driving = 0;
    if (run->aborted) {
        free_run(run);
        return 1;
    }
    if ((run->hook == PC_HOOK_MESSAGE || run->hook == PC_HOOK_RETRIEVE) &&
        !is_final(run->final.action))
        apply_thresholds(run);
    /* finished stays set: an abort from inside cb is ignored, and the run is freed here */
    run->cb(run->ud, &run->final);
    free_run(run);
    return 1;
}

static void done_cb(pc_filter_ctx *ctx, const pc_verdict *v)
{
    if (!ctx || ctx->answered || ctx->cancelled || !ctx->run)
        return; /* late (after a timeout) or repeated */
    pc_chain_run *run = ctx->run;
    pc_verdict bad;
    const char *note = NULL;
    if (!v || (unsigned)v->action > PC_REPLACE) {
        onerr_verdict(ctx, &bad);
        v = &bad;
        note = "invalid-verdict";
    }
    ctx->refs++;
    apply(ctx, v, note);
    ctx_unref(ctx);
    if (!run->driving)
        drive(run);
}

static void on_timeout(uv_timer_t *t)
{
    pc_filter_ctx *ctx = t->data;
    if (ctx->answered || !ctx->run)
        return;
    pc_chain_run *run = ctx->run;
    ctx->answered = 1; /* done() from here on is ignored */
    ctx->cancelled = 1;
    ctx->refs++;
    run->driving = 1; /* the run survives an abort from inside cancel() */
    if (ctx->cf->f->cancel)
        ctx->cf->f->cancel(ctx->cf->self, ctx);
    run->driving = 0;
    if (run->aborted) { /* the abort detached ctx already */
        ctx_unref(ctx);
        free_run(run);
        return;
    }
    pc_verdict v;
    onerr_verdict(ctx, &v);
    apply(ctx, &v, "timeout");
    ctx_unref(ctx);
    drive(run);
}

pc_chain_run *pc_chain_start(const pc_chain *ch, pc_hook hook, pc_session_view *sv, pc_chain_cb cb,
                             void *ud)
{
    pc_chain_run *run = calloc(1, sizeof(*run));
    if (!run) {
        pc_verdict v = {.action = PC_TEMPFAIL,
                        .code = 451,
                        .enhanced = "4.3.0",
                        .text = "Temporary filter failure"};
        cb(ud, &v);
        return NULL;
    }
    run->ch = ch;
    run->hook = hook;
    run->sv = sv;
    run->cb = cb;
    run->ud = ud;
    if ((hook == PC_HOOK_MESSAGE || hook == PC_HOOK_RETRIEVE || hook == PC_HOOK_DELIVER) && sv &&
        sv->msg)
        pc_message_seal(sv->msg); /* from here on threadpool work may read its bytes */
    if (!ch || !(ch->hooks & PC_HOOK_BIT(hook)))
        run->finished = 1;
    return drive(run) ? NULL : run;
}

void pc_chain_abort(pc_chain_run *run)
{
    if (!run || run->finished || run->aborted)
        return;
    run->aborted = 1;
    pc_filter_ctx *ctx = run->cur;
    if (ctx) {
        int was_cancelled = ctx->cancelled;
        ctx->cancelled = 1;
        ctx->answered = 1;
        ctx->refs++;
        if (!was_cancelled && ctx->cf->f->cancel)
            ctx->cf->f->cancel(ctx->cf->self, ctx);
        ctx_detach(ctx);
        ctx_unref(ctx);
    }
    if (!run->driving)
        free_run(run);
}

/* ---- filter API ---- */

static void on_ftimer(uv_timer_t *h)
{
    ftimer *t = (ftimer *)h;
    pc_filter_ctx *ctx = t->ctx;
    for (ftimer **pp = &ctx->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&t->h, on_ftimer_closed); /* ctx lives until the close callback */
    if (!ctx->answered && !ctx->cancelled)
        t->cb(ctx, t->arg);
}

int pc_filter_timer(pc_filter_ctx *ctx, unsigned ms, void (*cb)(pc_filter_ctx *ctx, void *arg),
                    void *arg)
{
    if (!ctx || !cb || ctx->answered || ctx->cancelled)
        return -1;
    ftimer *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    if (uv_timer_init(ctx->loop, &t->h) != 0) {
        free(t);
        return -1;
    }
    t->ctx = ctx;
    t->cb = cb;
    t->arg = arg;
    ctx->refs++;
    if (uv_timer_start(&t->h, on_ftimer, ms, 0) != 0) {
        uv_close((uv_handle_t *)&t->h, on_ftimer_closed);
        return -1;
    }
    t->next = ctx->timers;
    ctx->timers = t;
    return 0;
}

typedef struct offload {
    uv_work_t req;
    pc_job job; /* long ones (pc_filter_offload_long) */
    pc_filter_ctx *ctx;
    void (*work)(void *arg);
    void (*after)(pc_filter_ctx *ctx, void *arg);
    void *arg;
    pc_message *msg; /* the hook's message, held until after() returned */
} offload;

static void offload_work(uv_work_t *req)
{
    offload *o = req->data;
    o->work(o->arg);
}

static void offload_after(uv_work_t *req, int status)
{
    (void)status; /* never uv_cancel()ed: status is 0 */
    offload *o = req->data;
    pc_filter_ctx *ctx = o->ctx;
    if (o->after)
        o->after(ctx, o->arg);
    pc_message_unref(o->msg);
    ctx->offloads--;
    free(o);
    ctx_unref(ctx);
}

static void long_work(pc_job *j)
{
    offload *o = (offload *)((char *)j - offsetof(offload, job));
    o->work(o->arg);
}

static int long_wanted(pc_job *j)
{
    offload *o = (offload *)((char *)j - offsetof(offload, job));
    return !o->ctx->cancelled; /* the chain gave up while it waited: after() alone, at once */
}

static void long_after(pc_job *j, int ran)
{
    (void)ran;
    offload *o = (offload *)((char *)j - offsetof(offload, job));
    offload_after(&o->req, 0);
}

/* Both kinds of offload: the work holds ctx and the hook's message until after() returned. */
static int offload_start(pc_filter_ctx *ctx, void (*work)(void *arg),
                         void (*after)(pc_filter_ctx *ctx, void *arg), void *arg, int is_long)
{
    if (!ctx || !work || ctx->cancelled)
        return -1;
    offload *o = calloc(1, sizeof(*o));
    if (!o)
        return -1;
    o->req.data = o;
    o->ctx = ctx;
    o->work = work;
    o->after = after;
    o->arg = arg;
    o->msg = pc_message_ref(pc_ctx_message(ctx));
    o->job = (pc_job){.work = long_work, .after = long_after, .wanted = long_wanted};
    int rc = is_long ? pc_job_start_long(&o->job)
                     : uv_queue_work(ctx->loop, &o->req, offload_work, offload_after);
    if (rc != 0) {
        pc_message_unref(o->msg);
        free(o);
        return -1;
    }
    ctx->refs++;
    ctx->offloads++;
    return 0;
}

int pc_filter_offload(pc_filter_ctx *ctx, void (*work)(void *arg),
                      void (*after)(pc_filter_ctx *ctx, void *arg), void *arg)
{
    return offload_start(ctx, work, after, arg, 0);
}

int pc_filter_offload_long(pc_filter_ctx *ctx, void (*work)(void *arg),
                           void (*after)(pc_filter_ctx *ctx, void *arg), void *arg)
{
    return offload_start(ctx, work, after, arg, 1);
}

int pc_ctx_cancelled(const pc_filter_ctx *ctx)
{
    return !ctx || ctx->cancelled;
}

void pc_filter_log(pc_filter_ctx *ctx, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pc_log((pc_log_level)level, ctx ? ctx->sid : 0, "filter=%s %s", ctx ? ctx->name : "?", line);
}

/* ---- session accessors: NULL / 0 once the session may be gone ---- */

#define SV(ctx) ((ctx) ? (ctx)->sv : NULL)

uint64_t pc_ctx_session_id(const pc_filter_ctx *ctx)
{
    return ctx ? ctx->sid : 0;
}

const char *pc_ctx_protocol(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->protocol : NULL;
}

const char *pc_ctx_listener(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->listener : NULL;
}

const struct sockaddr *pc_ctx_client_addr(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? (const struct sockaddr *)&ctx->sv->client : NULL;
}

const char *pc_ctx_client_ip(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->client_ip : NULL;
}

int pc_ctx_tls(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->tls : 0;
}

const char *pc_ctx_user(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->user : NULL;
}

size_t pc_ctx_pending_input(const pc_filter_ctx *ctx)
{
    return SV(ctx) && ctx->sv->conn ? pc_conn_pending(ctx->sv->conn) : 0;
}

const char *pc_ctx_helo(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->helo : NULL;
}

const char *pc_ctx_sender(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->sender : NULL;
}

const char *pc_ctx_rcpt(const pc_filter_ctx *ctx)
{
    return SV(ctx) && ctx->hook == PC_HOOK_RCPT ? ctx->sv->rcpt : NULL;
}

size_t pc_ctx_rcpt_count(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->nrcpts : 0;
}

const char *pc_ctx_rcpt_at(const pc_filter_ctx *ctx, size_t i)
{
    return SV(ctx) && i < ctx->sv->nrcpts ? ctx->sv->rcpts[i] : NULL;
}

int pc_ctx_result_set(pc_filter_ctx *ctx, const char *key, const char *value)
{
    if (!SV(ctx) || !ctx->sv->results || !key)
        return -1;
    return results_set(ctx->sv->results, key, value);
}

const char *pc_ctx_result_get(const pc_filter_ctx *ctx, const char *key)
{
    if (!SV(ctx) || !ctx->sv->results || !key)
        return NULL;
    const pc_results *r = ctx->sv->results;
    for (size_t i = 0; i < r->nkv; i++)
        if (strcmp(r->keys[i], key) == 0)
            return r->values[i];
    return NULL;
}

void **pc_ctx_session_state(pc_filter_ctx *ctx)
{
    if (!SV(ctx) || !ctx->run)
        return NULL;
    if (!ctx->sv->slots && !(ctx->sv->slots = calloc(ctx->run->ch->n, sizeof(void *))))
        return NULL;
    return &ctx->sv->slots[ctx->index];
}

int pc_ctx_symbol(pc_filter_ctx *ctx, const char *symbol, double score)
{
    if (!SV(ctx) || !ctx->sv->results || !symbol || !*symbol)
        return -1;
    if (ctx->cf->use.monitor) {
        pc_log_info(ctx->sid, "filter=%s hook=%s mode=monitor symbol=%s score=%.2f", ctx->name,
                    hook_name(ctx->hook), symbol, score);
        return 0;
    }
    if (results_add_symbol(ctx->sv->results, symbol, score) < 0)
        return -1;
    ctx->sv->results->score += score;
    return 0;
}

int pc_ctx_authres(pc_filter_ctx *ctx, const char *resinfo)
{
    if (!SV(ctx) || !ctx->sv->results || !resinfo || !*resinfo)
        return -1;
    size_t n = strlen(resinfo);
    if (n > 900)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)resinfo[i] < 0x20 || (unsigned char)resinfo[i] > 0x7e ||
            resinfo[i] == ';')
            return -1; /* one resinfo, printable US-ASCII, no folding (the gateway folds) */
    pc_results *r = ctx->sv->results;
    if (r->nauthres >= 64)
        return -1;
    char **na = realloc(r->authres, (r->nauthres + 1) * sizeof(*na));
    if (!na)
        return -1;
    r->authres = na;
    if (!(na[r->nauthres] = strdup(resinfo)))
        return -1;
    r->nauthres++;
    return 0;
}

double pc_ctx_score(const pc_filter_ctx *ctx)
{
    return SV(ctx) && ctx->sv->results ? ctx->sv->results->score : 0;
}

const char *pc_ctx_symbol_at(const pc_filter_ctx *ctx, size_t i)
{
    if (!SV(ctx) || !ctx->sv->results || i >= ctx->sv->results->nsymbols)
        return NULL;
    return ctx->sv->results->symbols[i];
}

int pc_ctx_trusted(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->trusted : 0;
}

const char *pc_ctx_authserv_id(const pc_filter_ctx *ctx)
{
    return SV(ctx) ? ctx->sv->authserv_id : NULL;
}

pc_message *pc_ctx_message(pc_filter_ctx *ctx)
{
    if (!SV(ctx) || (ctx->hook != PC_HOOK_MESSAGE && ctx->hook != PC_HOOK_RETRIEVE &&
                     ctx->hook != PC_HOOK_DELIVER))
        return NULL;
    return ctx->sv->msg;
}
