/* store_check.c — the state store's conformance driver: one backend, a real server (Redis) or
 * directory (LMDB), a fixed script of operations through the filter API
 * (include/portcullis/store.h) on a real libuv loop, one line per step ("ok STEP ..." or
 * "FAIL STEP ..."), exit 0 only when every expectation held. Run by
 * tests/integration/test_state.py.
 *
 *   store_check redis ADDRESS [PASSWORD_FILE] [options]
 *   store_check lmdb DIR [options]
 * options:
 *   --db N              state.redis.db
 *   --prefix P          the key prefix (default "pctest:PID:", so runs do not meet)
 *   --default-prefix    no prefix configured: the backend's own default
 *   --timeout-ms N      state.redis.timeout (default 500)
 *   --connect-timeout-ms N (default 500)
 *   --unavailable       the server cannot be reached (or never answers): every operation is
 *                       UNAVAILABLE, quickly, instead of the conformance script
 *   --recover           the server is stopped and started again meanwhile: "ok up" once it works,
 *                       "ok down" once operations fail UNAVAILABLE (the server is to be started
 *                       again then), "ok recovered" once they succeed again
 *   --idle MS           set, MS of nothing (the server closes idle connections), get and set
 *   --workers N         N more workers, each on a thread of its own, at once
 *   --window KEY W BY   one window operation, printing "n=N"
 *   --expect-open-error open() must fail (a bad password file, a bad address)
 *
 * Every callback checks that it does not run inside the call that started its operation. */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "portcullis/store.h"
#include "store/store.h"

static uv_loop_t loop;
static pc_store *store;
static int failures;
static int in_call;   /* set while a pc_store_* call runs */
static int cb_inside; /* a callback ran inside one: the contract is broken */

typedef struct result {
    int calls;
    pc_store_status status;
    long long n;
    char value[PC_STORE_VALUE_MAX + 1];
    int has_value;
    uint64_t at_ms; /* when the callback ran */
} result;

static void on_reply(void *arg, const pc_store_reply *r)
{
    result *res = arg;
    if (in_call)
        cb_inside++;
    res->calls++;
    res->status = r->status;
    res->n = r->n;
    res->has_value = r->value != NULL;
    res->at_ms = uv_now(&loop);
    if (r->value) {
        size_t n = r->len < PC_STORE_VALUE_MAX ? r->len : PC_STORE_VALUE_MAX;
        memcpy(res->value, r->value, n);
        res->value[n] = '\0';
    } else {
        res->value[0] = '\0';
    }
}

static void on_wake(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until every res in the array has been answered, or ms pass. 1 when answered. */
static int wait_all(result *res, size_t n, unsigned ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(&loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_wake, ms, 0);
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += res[i].calls > 0;
        if (done == n || expired)
            break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    for (size_t i = 0; i < n; i++)
        if (!res[i].calls)
            return 0;
    return 1;
}

static void sleep_loop(unsigned ms)
{
    result never = {0};
    wait_all(&never, 1, ms);
}

static void report(int ok, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(int ok, const char *step, const char *fmt, ...)
{
    va_list ap;
    printf("%s %s", ok ? "ok" : "FAIL", step);
    if (fmt && *fmt) {
        putchar(' ');
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
    }
    putchar('\n');
    fflush(stdout);
    if (!ok)
        failures++;
}

/* A value for the one-line report: quoted, bytes outside printable ASCII as \xNN, long ones cut
 * and their length given. */
static void show(char *out, size_t outlen, const char *v)
{
    if (!v) {
        snprintf(out, outlen, "(none)");
        return;
    }
    size_t o = 0, len = strlen(v), i = 0;
    out[o++] = '"';
    for (; i < len && o + 24 < outlen; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch >= ' ' && ch < 0x7f && ch != '"' && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
    }
    if (i == len)
        snprintf(out + o, outlen - o, "\"");
    else
        snprintf(out + o, outlen - o, "...\" (%zu bytes)", len);
}

enum { OP_GET, OP_SET, OP_ADD, OP_INCR, OP_DEL, OP_WINDOW };

/* Starts one operation (in_call around it). */
static pc_store_req *start(int op, const char *key, const char *value, long long by, unsigned ttl,
                           result *res)
{
    pc_store_req *q = NULL;
    memset(res, 0, sizeof(*res));
    in_call = 1;
    switch (op) {
    case OP_GET: q = pc_store_get(store, key, on_reply, res); break;
    case OP_SET: q = pc_store_set(store, key, value, ttl, on_reply, res); break;
    case OP_ADD: q = pc_store_add(store, key, value, ttl, on_reply, res); break;
    case OP_INCR: q = pc_store_incr(store, key, by, ttl, on_reply, res); break;
    case OP_DEL: q = pc_store_del(store, key, on_reply, res); break;
    case OP_WINDOW: q = pc_store_window(store, key, ttl, (unsigned)by, on_reply, res); break;
    }
    in_call = 0;
    return q;
}

/* One operation, waited for: its status (and n, value) against what is expected. want_value NULL:
 * no value expected; want_n < LLONG_MIN + 1: n not checked. */
#define ANY_N (-0x7fffffffffffffffLL)
static int step(const char *name, int op, const char *key, const char *value, long long by,
                unsigned ttl, pc_store_status want, long long want_n, const char *want_value)
{
    result res;
    if (!start(op, key, value, by, ttl, &res)) {
        report(0, name, "not started");
        return 0;
    }
    if (!wait_all(&res, 1, 5000)) {
        report(0, name, "no answer in 5 s");
        return 0;
    }
    int ok = res.calls == 1 && res.status == want;
    if (want_n != ANY_N)
        ok = ok && res.n == want_n;
    if (want_value)
        ok = ok && res.has_value && !strcmp(res.value, want_value);
    else
        ok = ok && !res.has_value;
    char shown[80];
    show(shown, sizeof(shown), res.has_value ? res.value : NULL);
    report(ok, name, "status=%s n=%lld value=%s", pc_store_status_name(res.status), res.n, shown);
    return ok;
}

static void conformance(void)
{
    char big_key[PC_STORE_KEY_MAX + 2], big_value[PC_STORE_VALUE_MAX + 2];
    memset(big_key, 'k', PC_STORE_KEY_MAX);
    big_key[PC_STORE_KEY_MAX] = '\0';
    memset(big_value, 'v', PC_STORE_VALUE_MAX);
    big_value[PC_STORE_VALUE_MAX] = '\0';

    step("get-missing", OP_GET, "nosuch", NULL, 0, 0, PC_STORE_MISSING, ANY_N, NULL);
    step("set", OP_SET, "k1", "v1", 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("get", OP_GET, "k1", NULL, 0, 0, PC_STORE_OK, ANY_N, "v1");
    step("set-replace", OP_SET, "k1", "v2", 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("get-replaced", OP_GET, "k1", NULL, 0, 0, PC_STORE_OK, ANY_N, "v2");
    const char odd[] = "a b\tc\r\n%s%b \"q\" \x01\xc3\xa9";
    step("set-odd-bytes", OP_SET, "odd", odd, 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("get-odd-bytes", OP_GET, "odd", NULL, 0, 0, PC_STORE_OK, ANY_N, odd);
    step("set-empty", OP_SET, "empty", "", 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("get-empty", OP_GET, "empty", NULL, 0, 0, PC_STORE_OK, ANY_N, "");
    step("set-longest", OP_SET, big_key, big_value, 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("get-longest", OP_GET, big_key, NULL, 0, 0, PC_STORE_OK, ANY_N, big_value);
    {
        result res;
        big_key[PC_STORE_KEY_MAX] = 'k';
        big_key[PC_STORE_KEY_MAX + 1] = '\0';
        int refused = start(OP_GET, big_key, NULL, 0, 0, &res) == NULL;
        int bad = start(OP_GET, "with space", NULL, 0, 0, &res) == NULL;
        report(refused && bad, "bad-keys-refused", "too-long=%d space=%d", refused, bad);
    }

    step("add-new", OP_ADD, "a1", "first", 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("add-existing", OP_ADD, "a1", "second", 0, 0, PC_STORE_EXISTS, ANY_N, "first");
    step("get-after-add", OP_GET, "a1", NULL, 0, 0, PC_STORE_OK, ANY_N, "first");

    step("incr-new", OP_INCR, "c1", NULL, 5, 100, PC_STORE_OK, 5, NULL);
    step("incr-again", OP_INCR, "c1", NULL, 3, 100, PC_STORE_OK, 8, NULL);
    step("incr-negative", OP_INCR, "c1", NULL, -10, 100, PC_STORE_OK, -2, NULL);
    step("get-counter", OP_GET, "c1", NULL, 0, 0, PC_STORE_OK, ANY_N, "-2");
    step("set-not-number", OP_SET, "nan", "abc", 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("incr-not-number", OP_INCR, "nan", NULL, 1, 0, PC_STORE_ERROR, ANY_N, NULL);

    step("del", OP_DEL, "k1", NULL, 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("get-deleted", OP_GET, "k1", NULL, 0, 0, PC_STORE_MISSING, ANY_N, NULL);
    step("del-missing", OP_DEL, "k1", NULL, 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("add-after-del", OP_ADD, "k1", "back", 0, 0, PC_STORE_OK, ANY_N, NULL);

    /* a window of an hour: three events, then a read that records none */
    step("window-1", OP_WINDOW, "w1", NULL, 1, 3600, PC_STORE_OK, 1, NULL);
    step("window-2", OP_WINDOW, "w1", NULL, 1, 3600, PC_STORE_OK, 2, NULL);
    step("window-5", OP_WINDOW, "w1", NULL, 3, 3600, PC_STORE_OK, 5, NULL);
    step("window-read", OP_WINDOW, "w1", NULL, 0, 3600, PC_STORE_OK, 5, NULL);
    step("window-other-key", OP_WINDOW, "w2", NULL, 0, 3600, PC_STORE_OK, 0, NULL);

    /* pipelined: many at once, answered in order */
    {
        enum { N = 200 };
        static result res[N];
        int started = 1;
        for (int i = 0; i < N; i++)
            started &= start(OP_INCR, "burst", NULL, 1, 0, &res[i]) != NULL;
        int answered = started && wait_all(res, N, 10000), in_order = answered;
        for (int i = 0; answered && i < N; i++)
            in_order &= res[i].calls == 1 && res[i].status == PC_STORE_OK && res[i].n == i + 1;
        report(started && in_order, "pipelined", "n=%d answered=%d in-order=%d", N, answered,
               in_order);
    }

    /* cancelled: no callback, but what was asked still happens */
    {
        result a, b;
        pc_store_req *qa = start(OP_SET, "cancelled", "done", 0, 0, &a);
        pc_store_req *qb = start(OP_GET, "cancelled", NULL, 0, 0, &b);
        pc_store_cancel(qa);
        pc_store_cancel(qb);
        sleep_loop(300);
        report(qa && qb && !a.calls && !b.calls, "cancel", "callbacks=%d", a.calls + b.calls);
        step("cancelled-set-applied", OP_GET, "cancelled", NULL, 0, 0, PC_STORE_OK, ANY_N, "done");
    }

    /* expiry: ttl 1 s is gone after 2.2 s; an incr's ttl is set only on the key it creates */
    step("set-ttl", OP_SET, "e1", "x", 0, 1, PC_STORE_OK, ANY_N, NULL);
    step("add-ttl", OP_ADD, "e2", "x", 0, 1, PC_STORE_OK, ANY_N, NULL);
    step("incr-ttl", OP_INCR, "e3", NULL, 1, 1, PC_STORE_OK, 1, NULL);
    step("set-no-ttl", OP_SET, "e4", "10", 0, 0, PC_STORE_OK, ANY_N, NULL);
    step("incr-keeps-no-ttl", OP_INCR, "e4", NULL, 1, 1, PC_STORE_OK, 11, NULL);
    step("get-before-expiry", OP_GET, "e1", NULL, 0, 0, PC_STORE_OK, ANY_N, "x");
    sleep_loop(2200);
    step("get-expired-set", OP_GET, "e1", NULL, 0, 0, PC_STORE_MISSING, ANY_N, NULL);
    step("get-expired-add", OP_GET, "e2", NULL, 0, 0, PC_STORE_MISSING, ANY_N, NULL);
    step("get-expired-incr", OP_GET, "e3", NULL, 0, 0, PC_STORE_MISSING, ANY_N, NULL);
    step("get-not-expired", OP_GET, "e4", NULL, 0, 0, PC_STORE_OK, ANY_N, "11");
    step("add-after-expiry", OP_ADD, "e1", "y", 0, 0, PC_STORE_OK, ANY_N, NULL);
}

/* Every operation UNAVAILABLE, each within bound_ms, never inside the call; twice, the second
 * time after a pause (by then the backend knows it is down). */
static void unavailable(unsigned bound_ms)
{
    for (int round = 0; round < 2; round++) {
        static const char *names[] = {"get", "set", "add", "incr", "del", "window"};
        result res[6];
        uv_update_time(&loop);
        uint64_t t0 = uv_now(&loop);
        int started = start(OP_GET, "u", NULL, 0, 0, &res[0]) != NULL;
        started &= start(OP_SET, "u", "v", 0, 0, &res[1]) != NULL;
        started &= start(OP_ADD, "u", "v", 0, 0, &res[2]) != NULL;
        started &= start(OP_INCR, "u", NULL, 1, 0, &res[3]) != NULL;
        started &= start(OP_DEL, "u", NULL, 0, 0, &res[4]) != NULL;
        started &= start(OP_WINDOW, "u", NULL, 1, 60, &res[5]) != NULL;
        int all = started && wait_all(res, 6, bound_ms + 2000);
        for (int i = 0; i < 6; i++) {
            char nm[64];
            snprintf(nm, sizeof(nm), "unavailable-%s-%d", names[i], round + 1);
            unsigned ms = res[i].calls ? (unsigned)(res[i].at_ms - t0) : 0;
            report(all && res[i].calls == 1 && res[i].status == PC_STORE_UNAVAILABLE &&
                       ms <= bound_ms,
                   nm, "status=%s ms=%u", pc_store_status_name(res[i].status), ms);
        }
        sleep_loop(300);
    }
}

/* Every 100 ms, a set and a burst of increments (many in flight when the server goes), until the
 * set answers want (or limit_ms pass). Each answered within 3 s, OK or UNAVAILABLE. */
static int poll_until(pc_store_status want, unsigned limit_ms, unsigned *fails)
{
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + limit_ms;
    while (uv_now(&loop) < end) {
        enum { BURST = 20 };
        result res, burst[BURST];
        int started = start(OP_SET, "r", "v", 0, 0, &res) != NULL;
        for (int i = 0; i < BURST; i++)
            started &= start(OP_INCR, "rb", NULL, 1, 0, &burst[i]) != NULL;
        if (!started || !wait_all(&res, 1, 3000) || !wait_all(burst, BURST, 3000)) {
            report(0, "poll", "started=%d: an operation was not answered in 3 s", started);
            return 0;
        }
        for (int i = 0; i < BURST; i++)
            if (burst[i].status != PC_STORE_OK && burst[i].status != PC_STORE_UNAVAILABLE) {
                report(0, "poll", "incr status=%s", pc_store_status_name(burst[i].status));
                return 0;
            }
        if (res.status == want)
            return 1;
        if (res.status == PC_STORE_UNAVAILABLE)
            ++*fails;
        sleep_loop(100);
    }
    return 0;
}

static void recover(void)
{
    unsigned fails = 0;
    int up = poll_until(PC_STORE_OK, 10000, &fails);
    report(up, "up", "set=OK");
    if (!up)
        return;
    /* the test stops the server now */
    int down = poll_until(PC_STORE_UNAVAILABLE, 20000, &fails);
    report(down, "down", "set=UNAVAILABLE");
    if (!down)
        return;
    /* ... and starts it again */
    int back = poll_until(PC_STORE_OK, 30000, &fails);
    report(back, "recovered", "unavailable-answers=%u", fails);
    if (back) {
        step("after-recovery-set", OP_SET, "k", "again", 0, 0, PC_STORE_OK, ANY_N, NULL);
        step("after-recovery-get", OP_GET, "k", NULL, 0, 0, PC_STORE_OK, ANY_N, "again");
    }
}

/* The server closes the idle connection meanwhile (its `timeout`): the store reconnects by itself
 * and the next operations work. */
static void idle(unsigned ms)
{
    step("idle-before", OP_SET, "i", "v", 0, 0, PC_STORE_OK, ANY_N, NULL);
    sleep_loop(ms);
    step("idle-after-get", OP_GET, "i", NULL, 0, 0, PC_STORE_OK, ANY_N, "v");
    step("idle-after-set", OP_SET, "i", "w", 0, 0, PC_STORE_OK, ANY_N, NULL);
}

/* Several workers at once, as the gateway runs them: a loop and a store handle per thread (so one
 * connection each), a burst of increments on one key from each, issued before the connection is up;
 * every answer on its own thread, and the total right. */
typedef struct wthread {
    pc_store_shared *sh;
    uv_loop_t loop;
    uv_thread_t tid;
    int answered, ok, wrong_thread, created;
} wthread;

enum { WT_OPS = 500 };

static void wt_reply(void *arg, const pc_store_reply *r)
{
    wthread *t = arg;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &t->tid))
        t->wrong_thread++;
    t->answered++;
    t->ok += r->status == PC_STORE_OK;
}

static void wt_wake(uv_timer_t *h)
{
    *(int *)h->data = 1;
}

static void wt_main(void *arg)
{
    wthread *t = arg;
    char err[256];
    t->tid = uv_thread_self();
    uv_loop_init(&t->loop);
    pc_store *s = pc_store_worker_new(t->sh, &t->loop, err, sizeof(err));
    if (s) {
        t->created = 1;
        for (int i = 0; i < WT_OPS; i++)
            pc_store_incr(s, "workers", 1, 0, wt_reply, t);
        uv_timer_t tm;
        int expired = 0;
        uv_timer_init(&t->loop, &tm);
        tm.data = &expired;
        uv_timer_start(&tm, wt_wake, 10000, 0);
        while (t->answered < WT_OPS && !expired)
            uv_run(&t->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&tm, NULL);
        pc_store_worker_free(s);
        uv_run(&t->loop, UV_RUN_NOWAIT);
    }
    uv_loop_close(&t->loop);
}

static void workers(pc_store_shared *sh, int n)
{
    wthread *t = calloc((size_t)n, sizeof(*t));
    uv_thread_t *th = calloc((size_t)n, sizeof(*th));
    if (!t || !th) {
        report(0, "workers", "out of memory");
        free(t);
        free(th);
        return;
    }
    for (int i = 0; i < n; i++) {
        t[i].sh = sh;
        uv_thread_create(&th[i], wt_main, &t[i]);
    }
    for (int i = 0; i < n; i++)
        uv_thread_join(&th[i]);
    for (int i = 0; i < n; i++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "worker-%d", i + 1);
        report(t[i].created && t[i].answered == WT_OPS && t[i].ok == WT_OPS && !t[i].wrong_thread,
               nm, "answered=%d ok=%d wrong-thread=%d", t[i].answered, t[i].ok, t[i].wrong_thread);
    }
    char total[32];
    snprintf(total, sizeof(total), "%d", n * WT_OPS);
    step("workers-total", OP_GET, "workers", NULL, 0, 0, PC_STORE_OK, ANY_N, total);
    free(t);
    free(th);
}

static void usage(void)
{
    fprintf(stderr, "usage: store_check redis ADDRESS [PASSWORD_FILE] [options] | lmdb DIR "
                    "[options]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    pc_state_cfg cfg = {0};
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "pctest:%ld:", (long)getpid());
    cfg.prefix = prefix;
    cfg.timeout_ms = 500;
    cfg.connect_timeout_ms = 500;
    if (!strcmp(argv[1], "redis")) {
        cfg.backend = PC_STATE_REDIS;
        cfg.redis_address = argv[2];
    } else if (!strcmp(argv[1], "lmdb")) {
        cfg.backend = PC_STATE_LMDB;
        cfg.path = argv[2];
    } else {
        usage();
    }
    int mode_unavailable = 0, mode_recover = 0, expect_open_error = 0;
    unsigned idle_ms = 0;
    int nworkers = 0;
    const char *wkey = NULL;
    unsigned wlen = 0, wby = 0;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--db") && i + 1 < argc)
            cfg.redis_db = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--prefix") && i + 1 < argc)
            cfg.prefix = argv[++i];
        else if (!strcmp(a, "--default-prefix"))
            cfg.prefix = NULL;
        else if (!strcmp(a, "--timeout-ms") && i + 1 < argc)
            cfg.timeout_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--connect-timeout-ms") && i + 1 < argc)
            cfg.connect_timeout_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--unavailable"))
            mode_unavailable = 1;
        else if (!strcmp(a, "--idle") && i + 1 < argc)
            idle_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--workers") && i + 1 < argc)
            nworkers = atoi(argv[++i]);
        else if (!strcmp(a, "--recover"))
            mode_recover = 1;
        else if (!strcmp(a, "--expect-open-error"))
            expect_open_error = 1;
        else if (!strcmp(a, "--window") && i + 3 < argc) {
            wkey = argv[++i];
            wlen = (unsigned)atoi(argv[++i]);
            wby = (unsigned)atoi(argv[++i]);
        } else if (a[0] != '-' && i == 3 && cfg.backend == PC_STATE_REDIS)
            cfg.redis_password_file = argv[i];
        else
            usage();
    }
    signal(SIGPIPE, SIG_IGN); /* as the gateway does (main.c): a write to a closed socket fails */
    pc_log_open("stderr", PC_LOG_DEBUG);

    char err[256] = "";
    pc_store_shared *sh = pc_store_open(&cfg, err, sizeof(err));
    if (expect_open_error) {
        report(!sh, "open-error", "err=\"%s\"", err);
        pc_store_close(sh);
        printf("%s failures=%d\n", failures ? "FAILED" : "PASSED", failures);
        return failures ? 1 : 0;
    }
    if (!sh) {
        report(0, "open", "err=\"%s\"", err);
        return 1;
    }
    uv_loop_init(&loop);
    store = pc_store_worker_new(sh, &loop, err, sizeof(err));
    if (!store) {
        report(0, "worker", "err=\"%s\"", err);
        pc_store_close(sh);
        uv_loop_close(&loop);
        return 1;
    }
    pc_store_set_current(store);
    report(!strcmp(pc_store_backend_name(store), argv[1]), "backend", "name=%s",
           pc_store_backend_name(store));

    if (wkey) {
        result res;
        int ok = start(OP_WINDOW, wkey, NULL, wby, wlen, &res) && wait_all(&res, 1, 5000) &&
                 res.status == PC_STORE_OK;
        printf("n=%lld\n", res.n);
        report(ok, "window", "status=%s", pc_store_status_name(res.status));
    } else if (mode_unavailable) {
        unavailable(cfg.connect_timeout_ms + cfg.timeout_ms + 500);
    } else if (mode_recover) {
        recover();
    } else if (idle_ms) {
        idle(idle_ms);
    } else if (nworkers > 0) {
        workers(sh, nworkers);
    } else {
        conformance();
    }
    /* operations still pending at the worker's end are dropped without their callback */
    result late;
    start(OP_GET, "late", NULL, 0, 0, &late);
    pc_store_worker_free(store);
    uv_run(&loop, UV_RUN_NOWAIT);
    report(!late.calls, "dropped-at-free", "callbacks=%d", late.calls);
    report(!cb_inside, "never-inside-call", "violations=%d", cb_inside);
    pc_store_close(sh);
    int busy = uv_loop_close(&loop);
    report(busy == 0, "loop-closed", "rc=%d", busy);
    printf("%s failures=%d\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
