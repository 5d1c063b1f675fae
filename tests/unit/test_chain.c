/* test_chain.c — the filter chain on a real libuv loop: sync/async answers, timeouts, on-error,
 * verdict merging, monitor mode, abort, offload threads, reentrancy and long chains. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/log.h"
#include "core/chain.h"
#include "core/plugin.h"

static uv_loop_t loop;
static pc_results results;
static pc_session_view sv;

static int ncb;
static pc_verdict got;
static char got_text[256], got_enh[16], got_sym[64];

static int ncancel;
static int nlate_ignored_checked;
static double seen_score;
static char seen_sym0[64], seen_sym1[64], seen_key[64];
static pthread_t work_thread, after_thread;
static int after_cancelled = -1;

static void on_chain(void *ud, const pc_verdict *v)
{
    (void)ud;
    ncb++;
    got = *v;
    snprintf(got_text, sizeof(got_text), "%s", v->text ? v->text : "");
    snprintf(got_enh, sizeof(got_enh), "%s", v->enhanced ? v->enhanced : "");
    snprintf(got_sym, sizeof(got_sym), "%s", v->symbol ? v->symbol : "");
    got.text = got.enhanced = got.symbol = NULL;
}

/* ---- test filters ---- */

static void run_cont(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    pc_verdict v = {.action = PC_CONTINUE};
    done(ctx, &v);
}

static void run_reject(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    pc_verdict v = {.action = PC_REJECT};
    done(ctx, &v);
}

static void run_reject_custom(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    char text[32], sym[32];
    snprintf(text, sizeof(text), "custom text");
    snprintf(sym, sizeof(sym), "CUSTOM_SYM");
    pc_verdict v = {
        .action = PC_REJECT, .code = 554, .enhanced = "5.7.0", .text = text, .symbol = sym};
    done(ctx, &v);
    /* the chain copied what it keeps: scribbling over our strings changes nothing */
    memset(text, 'x', sizeof(text) - 1);
    memset(sym, 'x', sizeof(sym) - 1);
}

static pc_done_fn async_done;

static void async_fire(pc_filter_ctx *ctx, void *arg)
{
    (void)arg;
    pc_verdict v = {.action = PC_TEMPFAIL};
    async_done(ctx, &v);
}

static void run_async(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    async_done = done;
    assert_int_equal(pc_filter_timer(ctx, 20, async_fire, NULL), 0);
}

static void never_fire(pc_filter_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    fail_msg("a timer of a cancelled filter fired");
}

static void run_never(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    (void)done;
    /* a timer longer than the chain's timeout: the chain must stop it */
    assert_int_equal(pc_filter_timer(ctx, 5000, never_fire, NULL), 0);
}

static void cancel_count(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    (void)ctx;
    ncancel++;
}

static void run_tag(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)hook;
    const char *name = self;
    char sym[32];
    snprintf(sym, sizeof(sym), "TAG_%s", name);
    assert_int_equal(pc_ctx_result_set(ctx, "tagger", name), 0);
    pc_verdict v = {.action = PC_TAG, .score = 1.5, .symbol = sym};
    done(ctx, &v);
}

static void *init_tag(const pc_opt *o, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    const char *name = o && o->value ? o->value : "A";
    return strdup(name);
}

static void run_check(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    seen_score = pc_ctx_score(ctx);
    snprintf(seen_sym0, sizeof(seen_sym0), "%s",
             pc_ctx_symbol_at(ctx, 0) ? pc_ctx_symbol_at(ctx, 0) : "");
    snprintf(seen_sym1, sizeof(seen_sym1), "%s",
             pc_ctx_symbol_at(ctx, 1) ? pc_ctx_symbol_at(ctx, 1) : "");
    assert_null(pc_ctx_symbol_at(ctx, 2));
    const char *k = pc_ctx_result_get(ctx, "tagger");
    snprintf(seen_key, sizeof(seen_key), "%s", k ? k : "");
    pc_verdict v = {.action = PC_CONTINUE};
    done(ctx, &v);
}

static void *init_fail(const pc_opt *o, char *err, size_t errlen)
{
    (void)o;
    snprintf(err, errlen, "bad option");
    return NULL;
}

static void work_fn(void *arg)
{
    (void)arg;
    work_thread = pthread_self();
    usleep(10000);
}

static void after_fn(pc_filter_ctx *ctx, void *arg)
{
    after_thread = pthread_self();
    after_cancelled = pc_ctx_cancelled(ctx);
    pc_verdict v = {.action = PC_ACCEPT};
    pc_done_fn *d = arg;
    (*d)(ctx, &v); /* ignored when the ctx is cancelled */
}

static pc_done_fn off_done;

static void run_offload(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    off_done = done;
    assert_int_equal(pc_filter_offload(ctx, work_fn, after_fn, &off_done), 0);
}

static void slow_work(void *arg)
{
    (void)arg;
    usleep(150000);
}

static void late_after(pc_filter_ctx *ctx, void *arg)
{
    pc_done_fn *d = arg;
    after_cancelled = pc_ctx_cancelled(ctx);
    /* the chain timed out long ago: this answer must be ignored */
    pc_verdict v = {.action = PC_REJECT};
    (*d)(ctx, &v);
    nlate_ignored_checked++;
}

static void run_late(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    off_done = done;
    assert_int_equal(pc_filter_offload(ctx, slow_work, late_after, &off_done), 0);
}

static const pc_filter f_cont = {
    .abi = PC_FILTER_ABI, .name = "t_cont", .hooks = 0x7f, .run = run_cont};
static const pc_filter f_reject = {.abi = PC_FILTER_ABI,
                                   .name = "t_reject",
                                   .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                   .run = run_reject};
static const pc_filter f_reject2 = {.abi = PC_FILTER_ABI,
                                    .name = "t_reject_custom",
                                    .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                    .run = run_reject_custom};
static const pc_filter f_async = {
    .abi = PC_FILTER_ABI, .name = "t_async", .hooks = PC_HOOK_BIT(PC_HOOK_MAIL), .run = run_async};
static const pc_filter f_never = {.abi = PC_FILTER_ABI,
                                  .name = "t_never",
                                  .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                  .run = run_never,
                                  .cancel = cancel_count};
static const pc_filter f_tag = {.abi = PC_FILTER_ABI,
                                .name = "t_tag",
                                .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                .init = init_tag,
                                .fini = free,
                                .run = run_tag};
static const pc_filter f_check = {
    .abi = PC_FILTER_ABI, .name = "t_check", .hooks = PC_HOOK_BIT(PC_HOOK_MAIL), .run = run_check};
static const pc_filter f_fail = {.abi = PC_FILTER_ABI,
                                 .name = "t_fail",
                                 .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                 .init = init_fail,
                                 .run = run_cont};
static const pc_filter f_off = {.abi = PC_FILTER_ABI,
                                .name = "t_offload",
                                .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                .run = run_offload};
static const pc_filter f_late = {.abi = PC_FILTER_ABI,
                                 .name = "t_late",
                                 .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                 .run = run_late,
                                 .cancel = cancel_count};

/* A filter with per-worker state: init_worker counts its loops, run() tags with the state's
 * value, fini_worker frees it. */
static int worker_inits, worker_finis;
static void *wk_init(void *self, struct uv_loop_s *loop)
{
    (void)self;
    assert_non_null(loop);
    int *v = malloc(sizeof(*v));
    *v = 40 + ++worker_inits;
    return v;
}
static void wk_fini(void *self, void *st)
{
    (void)self;
    worker_finis++;
    free(st);
}
static void run_worker(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    int *v = pc_filter_worker_state(ctx);
    pc_verdict r = {.action = PC_TAG, .score = v ? *v : -1, .symbol = "WORKER_STATE"};
    done(ctx, &r);
}
static const pc_filter f_worker = {.abi = PC_FILTER_ABI,
                                   .name = "t_worker",
                                   .hooks = PC_HOOK_BIT(PC_HOOK_MAIL),
                                   .run = run_worker,
                                   .init_worker = wk_init,
                                   .fini_worker = wk_fini};

/* ---- fixtures ---- */

static int setup(void **state)
{
    (void)state;
    ncb = ncancel = nlate_ignored_checked = 0;
    after_cancelled = -1;
    memset(&got, 0, sizeof(got));
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&sv, 0, sizeof(sv));
    sv.sid = 42;
    sv.loop = &loop;
    sv.protocol = "smtp";
    sv.listener = "test";
    sv.results = &results;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks free what is left */
    assert_int_equal(uv_loop_close(&loop), 0);
    pc_results_reset(&results);
    return 0;
}

static pc_filter_use use(const char *name)
{
    pc_filter_use u = {.name = (char *)name, .timeout_ms = 1000, .on_error = PC_ONERR_TEMPFAIL};
    return u;
}

static pc_chain *build(pc_filter_use *u, size_t n)
{
    char err[256] = "";
    pc_chain *ch = pc_chain_build(u, n, err, sizeof(err));
    assert_non_null(ch);
    return ch;
}

/* use(name) with its own timeout and on-error action. */
static pc_filter_use use_timeout(const char *name, unsigned timeout_ms, pc_onerr on_error)
{
    pc_filter_use u = use(name);
    u.timeout_ms = timeout_ms;
    u.on_error = on_error;
    return u;
}

/* Starts ch at MAIL (the run must be pending: an asynchronous answer is due) and runs the loop
 * until nothing is left on it. */
static void run_pending(pc_chain *ch)
{
    assert_non_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* ---- tests ---- */

static void test_build_errors(void **state)
{
    (void)state;
    char err[256];
    pc_filter_use u[2] = {use("t_cont"), use("nosuch")};
    assert_null(pc_chain_build(u, 2, err, sizeof(err)));
    assert_string_equal(err, "filter nosuch: unknown filter");
    u[1] = use("t_fail");
    assert_null(pc_chain_build(u, 2, err, sizeof(err)));
    assert_string_equal(err, "filter t_fail: bad option");

    char *paths[1] = {"/nonexistent/plugin.so"};
    pc_strlist pl = {paths, 1};
    assert_int_equal(pc_plugins_load(&pl, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/plugin.so: cannot load plugin"));
    assert_int_equal(pc_filter_register(&f_cont), 0); /* the same filter again: no-op */
    pc_filter dup = f_cont;
    assert_int_equal(pc_filter_register(&dup), -1); /* another filter with a taken name */
    dup.abi = PC_FILTER_ABI + 1;
    dup.name = "t_other_abi";
    assert_int_equal(pc_filter_register(&dup), -1);
}

static void test_sync_continue_and_empty(void **state)
{
    (void)state;
    pc_filter_use u[2] = {use("t_cont"), use("t_cont")};
    pc_chain *ch = build(u, 2);
    assert_int_equal(pc_chain_hooks(ch), 0x7fu);
    assert_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    assert_int_equal(ncb, 1);
    assert_int_equal(got.action, PC_CONTINUE);
    pc_chain_free(ch);

    pc_chain *empty = build(NULL, 0);
    assert_null(pc_chain_start(empty, PC_HOOK_RCPT, &sv, on_chain, NULL));
    assert_int_equal(ncb, 2);
    assert_int_equal(got.action, PC_CONTINUE);
    pc_chain_free(empty);
}

static void test_sync_reject_defaults(void **state)
{
    (void)state;
    pc_filter_use u[3] = {use("t_cont"), use("t_reject"), use("t_never")};
    pc_chain *ch = build(u, 3);
    assert_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    assert_int_equal(ncb, 1);
    assert_int_equal(got.action, PC_REJECT);
    /* no protocol's defaults in the chain: the renderers add them (test_render.c) */
    assert_int_equal(got.code, 0);
    assert_string_equal(got_enh, "");
    assert_string_equal(got_text, "");
    assert_int_equal(ncancel, 0); /* t_never never ran */
    pc_chain_free(ch);

    pc_filter_use u2[1] = {use("t_reject_custom")};
    ch = build(u2, 1);
    assert_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    assert_int_equal(got.code, 554);
    assert_string_equal(got_enh, "5.7.0");
    assert_string_equal(got_text, "custom text");
    assert_string_equal(got_sym, "CUSTOM_SYM");
    assert_string_equal(results.symbols[0], "CUSTOM_SYM");
    pc_chain_free(ch);
}

static void test_worker_state(void **state)
{
    (void)state;
    pc_filter_use u[2] = {use("t_cont"), use("t_worker")};
    pc_chain *ch = build(u, 2);
    void **w0 = pc_chain_worker_init(ch, &loop, 0);
    void **w1 = pc_chain_worker_init(ch, &loop, 1);
    assert_non_null(w0);
    assert_null(w0[0]); /* t_cont has no per-worker state */
    assert_int_equal(worker_inits, 2);
    sv.fstate = (void *const *)w1;
    assert_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    assert_true(results.score == 42.0); /* the second loop's state */
    sv.fstate = NULL;
    pc_results_reset(&results);
    assert_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    assert_true(results.score == -1.0); /* a session without worker state sees NULL */
    pc_chain_worker_fini(ch, w0, 0);
    pc_chain_worker_fini(ch, w1, 1);
    assert_int_equal(worker_finis, 2);
    pc_chain_free(ch);
}

static void test_hook_filtering(void **state)
{
    (void)state;
    pc_filter_use u[2] = {use("t_reject"), use("t_cont")};
    pc_chain *ch = build(u, 2);
    /* t_reject only runs at MAIL */
    assert_null(pc_chain_start(ch, PC_HOOK_RCPT, &sv, on_chain, NULL));
    assert_int_equal(got.action, PC_CONTINUE);
    pc_chain_free(ch);
}

static void test_async_timer(void **state)
{
    (void)state;
    pc_filter_use u[2] = {use("t_async"), use("t_cont")};
    pc_chain *ch = build(u, 2);
    pc_chain_run *run = pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL);
    assert_non_null(run);
    assert_int_equal(ncb, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ncb, 1);
    assert_int_equal(got.action, PC_TEMPFAIL);
    assert_int_equal(got.code, 0);
    assert_string_equal(got_text, "");
    pc_chain_free(ch);
}

static void test_timeout_tempfail(void **state)
{
    (void)state;
    pc_filter_use u[2] = {use_timeout("t_never", 30, PC_ONERR_TEMPFAIL), use("t_cont")};
    pc_chain *ch = build(u, 2);
    uint64_t t0 = uv_hrtime();
    run_pending(ch); /* returns: every timer was stopped and closed */
    assert_true((uv_hrtime() - t0) / 1000000u < 2000);
    assert_int_equal(ncb, 1);
    assert_int_equal(ncancel, 1);
    assert_int_equal(got.action, PC_TEMPFAIL);
    assert_int_equal(got.code, 0); /* the protocol's default code; the enhanced code is a hint */
    assert_string_equal(got_enh, "4.3.0");
    assert_string_equal(got_text, "Temporary filter failure");
    pc_chain_free(ch);
}

static void test_timeout_continue_and_reject(void **state)
{
    (void)state;
    pc_filter_use u[2] = {use_timeout("t_never", 20, PC_ONERR_CONTINUE), use("t_reject_custom")};
    pc_chain *ch = build(u, 2);
    run_pending(ch);
    assert_int_equal(ncb, 1);
    assert_int_equal(got.action, PC_REJECT); /* the next filter ran */
    assert_string_equal(got_text, "custom text");
    pc_chain_free(ch);

    pc_filter_use u2[1] = {use_timeout("t_never", 20, PC_ONERR_REJECT)};
    ch = build(u2, 1);
    run_pending(ch);
    assert_int_equal(ncb, 2);
    assert_int_equal(got.action, PC_REJECT);
    assert_int_equal(got.code, 0);
    assert_string_equal(got_enh, "5.7.1");
    pc_chain_free(ch);
}

static void test_late_done_ignored(void **state)
{
    (void)state;
    pc_filter_use u[2] = {use_timeout("t_late", 20, PC_ONERR_CONTINUE), use("t_cont")};
    pc_chain *ch = build(u, 2);
    run_pending(ch);
    assert_int_equal(ncb, 1);
    assert_int_equal(got.action, PC_CONTINUE);
    assert_int_equal(nlate_ignored_checked, 1);
    assert_int_equal(after_cancelled, 1);
    assert_int_equal(ncancel, 1);
    pc_chain_free(ch);
}

static void test_tags_and_results(void **state)
{
    (void)state;
    pc_opt a = {.kind = PC_OPT_SCALAR, .value = "A"}, b = {.kind = PC_OPT_SCALAR, .value = "B"};
    pc_filter_use u[3] = {use("t_tag"), use("t_tag"), use("t_check")};
    u[0].options = &a;
    u[1].options = &b;
    pc_chain *ch = build(u, 3);
    assert_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    assert_int_equal(got.action, PC_CONTINUE);
    assert_true(seen_score > 2.99 && seen_score < 3.01);
    assert_string_equal(seen_sym0, "TAG_A");
    assert_string_equal(seen_sym1, "TAG_B");
    assert_string_equal(seen_key, "B"); /* set twice: the later value wins */
    assert_int_equal(results.nkv, 1);
    pc_chain_free(ch);
}

static void test_monitor(void **state)
{
    (void)state;
    pc_opt a = {.kind = PC_OPT_SCALAR, .value = "M"};
    pc_filter_use u[3] = {use("t_reject"), use("t_tag"), use("t_cont")};
    u[0].monitor = 1;
    u[1].monitor = 1;
    u[1].options = &a;
    pc_chain *ch = build(u, 3);
    assert_null(pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL));
    assert_int_equal(got.action, PC_CONTINUE);
    assert_int_equal(results.nsymbols, 0); /* monitor: logged only */
    assert_true(results.score == 0);
    pc_chain_free(ch);
}

static void test_abort_pending(void **state)
{
    (void)state;
    pc_filter_use u[1] = {use("t_async")};
    pc_chain *ch = build(u, 1);
    pc_chain_run *run = pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL);
    assert_non_null(run);
    pc_chain_abort(run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ncb, 0);

    pc_filter_use u2[1] = {use("t_never")};
    pc_chain *ch2 = build(u2, 1);
    run = pc_chain_start(ch2, PC_HOOK_MAIL, &sv, on_chain, NULL);
    assert_non_null(run);
    pc_chain_abort(run);
    assert_int_equal(ncancel, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ncb, 0);
    pc_chain_free(ch);
    pc_chain_free(ch2);
}

static void test_offload_threads(void **state)
{
    (void)state;
    pc_filter_use u[1] = {use("t_offload")};
    pc_chain *ch = build(u, 1);
    run_pending(ch);
    assert_int_equal(ncb, 1);
    assert_int_equal(got.action, PC_ACCEPT);
    assert_false(pthread_equal(work_thread, pthread_self()));
    assert_true(pthread_equal(after_thread, pthread_self()));
    assert_int_equal(after_cancelled, 0);
    pc_chain_free(ch);
}

static void test_offload_after_abort(void **state)
{
    (void)state;
    pc_filter_use u[1] = {use("t_offload")};
    pc_chain *ch = build(u, 1);
    pc_chain_run *run = pc_chain_start(ch, PC_HOOK_MAIL, &sv, on_chain, NULL);
    assert_non_null(run);
    pc_chain_abort(run);
    uv_run(&loop, UV_RUN_DEFAULT); /* after() still runs, for cleanup */
    assert_int_equal(ncb, 0);
    assert_int_equal(after_cancelled, 1);
    pc_chain_free(ch);
}

static void test_long_sync_chain(void **state)
{
    (void)state;
    enum { N = 10000 };
    pc_filter_use *u = calloc(N, sizeof(*u));
    assert_non_null(u);
    for (size_t i = 0; i < N; i++)
        u[i] = use("t_cont");
    pc_chain *ch = build(u, N);
    assert_null(pc_chain_start(ch, PC_HOOK_HELO, &sv, on_chain, NULL));
    assert_int_equal(ncb, 1);
    assert_int_equal(got.action, PC_CONTINUE);
    pc_chain_free(ch);
    free(u);
}

/* The session's callback starts the next hook's run and aborts the finished one. */
static pc_chain *re_chain;
static pc_chain_run *re_run;
static int re_calls;

static void on_chain_reenter(void *ud, const pc_verdict *v)
{
    (void)ud;
    (void)v;
    re_calls++;
    pc_chain_abort(re_run); /* the finished run: ignored */
    if (re_calls == 1)
        re_run = pc_chain_start(re_chain, PC_HOOK_MAIL, &sv, on_chain_reenter, NULL);
    else
        re_run = NULL;
}

static void test_reentrant_cb(void **state)
{
    (void)state;
    pc_filter_use u[1] = {use("t_async")};
    re_chain = build(u, 1);
    re_calls = 0;
    re_run = pc_chain_start(re_chain, PC_HOOK_MAIL, &sv, on_chain_reenter, NULL);
    assert_non_null(re_run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(re_calls, 2);
    pc_chain_free(re_chain);

    /* synchronous: the callback starts another synchronous run from inside pc_chain_start */
    pc_filter_use u2[1] = {use("t_cont")};
    re_chain = build(u2, 1);
    re_calls = 0;
    re_run = NULL;
    assert_null(pc_chain_start(re_chain, PC_HOOK_MAIL, &sv, on_chain_reenter, NULL));
    assert_int_equal(re_calls, 2);
    pc_chain_free(re_chain);
}

int main(void)
{
    pc_log_open("stderr", PC_LOG_WARN);
    const pc_filter *all[] = {&f_cont,  &f_reject, &f_reject2, &f_async, &f_never, &f_tag,
                              &f_check, &f_fail,   &f_off,     &f_late,  &f_worker};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (pc_filter_register(all[i]) != 0)
            return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_continue_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_reject_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_tempfail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_continue_and_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_done_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags_and_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offload_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offload_after_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_sync_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_cb, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
