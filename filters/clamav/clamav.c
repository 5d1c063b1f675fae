/* clamav.c — virus scanning in process with libclamav: one engine shared by every worker, loaded
 * from `database` at start; each message (SMTP DATA, IMAP APPEND, POP3/IMAP retrieval) is scanned
 * whole on the threadpool as a long job, through an fmap over the sealed message (no copy), with
 * libclamav's mail, archive and document parsers and its size, recursion and time limits.
 *
 * Reload: a thread of the filter looks at the database directory every `reload_check`; when it
 * changed, a new engine is built there, off every loop, and swapped in atomically while scanning
 * goes on; the old one is freed when its last scan ends (so the memory peak of a reload is two
 * engines). A database that fails to load keeps the old engine serving, and says why. The engine's
 * generation is the filter's content version: verdicts cached for POP3/IMAP retrieval are keyed by
 * it, so a message read again after a signature update is scanned again.
 *
 * Options (filters/README.md): database (a directory, required), max_scan_size, max_file_size,
 * max_recursion, max_files, max_scan_time, on_limits (pass | tempfail | reject), on_scan_error
 * (tempfail | pass | reject), reload_check (a duration; 0 = never). */
#include <clamav.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "portcullis/filter.h"

enum { ACT_PASS, ACT_TEMPFAIL, ACT_REJECT };

typedef struct engine {
    struct cl_engine *e;
    atomic_uint refs; /* scans holding it, + 1 while it is the current one */
    unsigned sigs;
    unsigned dbversion;
} engine;

typedef struct clamav {
    const char *dir; /* borrowed from the configuration */
    size_t max_scan, max_file;
    unsigned max_recursion, max_files, max_time_ms, check_ms;
    int on_limits, on_error;
    pthread_mutex_t lock; /* cur */
    engine *cur;
    atomic_ullong generation; /* engines loaded so far */
    /* the reloader */
    pthread_t thread;
    int thread_started;
    pthread_cond_t wake;
    int stop;
    struct cl_stat st;
} clamav;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static cl_error_t init_rc = CL_SUCCESS;

static void quiet(enum cl_msg severity, const char *full, const char *msg, void *ctx)
{
    (void)full;
    (void)ctx;
    if (severity >= CL_MSG_ERROR)
        pc_filter_log(NULL, 4, "clamav-engine msg=\"%.200s\"", msg);
}

static void lib_init(void)
{
    cl_set_clcb_msg(quiet); /* libclamav's own messages go to our log, errors only */
    init_rc = cl_init(CL_INIT_DEFAULT);
}

static void engine_put(engine *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) {
        cl_engine_free(e->e);
        free(e);
    }
}

/* Builds an engine from the directory with the configured limits. NULL with a reason. */
static engine *engine_build(const clamav *c, char *err, size_t errlen)
{
    engine *e = calloc(1, sizeof(*e));
    if (!e || !(e->e = cl_engine_new())) {
        free(e);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct cl_engine *ce = e->e;
    cl_engine_set_num(ce, CL_ENGINE_MAX_SCANSIZE, (long long)c->max_scan);
    cl_engine_set_num(ce, CL_ENGINE_MAX_FILESIZE, (long long)c->max_file);
    cl_engine_set_num(ce, CL_ENGINE_MAX_RECURSION, c->max_recursion);
    cl_engine_set_num(ce, CL_ENGINE_MAX_FILES, c->max_files);
    cl_engine_set_num(ce, CL_ENGINE_MAX_SCANTIME, c->max_time_ms);
    cl_error_t rc = cl_load(c->dir, ce, &e->sigs, CL_DB_STDOPT);
    if (rc == CL_SUCCESS)
        rc = cl_engine_compile(ce);
    if (rc != CL_SUCCESS) {
        snprintf(err, errlen, "database %s: %s", c->dir, cl_strerror(rc));
        cl_engine_free(ce);
        free(e);
        return NULL;
    }
    int ok = 0;
    e->dbversion = (unsigned)cl_engine_get_num(ce, CL_ENGINE_DB_VERSION, &ok);
    atomic_init(&e->refs, 1);
    return e;
}

static engine *engine_get(clamav *c)
{
    pthread_mutex_lock(&c->lock);
    engine *e = c->cur;
    if (e)
        atomic_fetch_add(&e->refs, 1);
    pthread_mutex_unlock(&c->lock);
    return e;
}

/* ---- the reloader -------------------------------------------------------------------------- */

static void *reloader(void *arg)
{
    clamav *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += c->check_ms / 1000;
        ts.tv_nsec += (long)(c->check_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->wake, &c->lock, &ts);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->lock);
        if (cl_statchkdir(&c->st) == 1) {
            cl_statfree(&c->st);
            cl_statinidir(c->dir, &c->st); /* a failed load is retried at the next change */
            char err[300];
            engine *e = engine_build(c, err, sizeof(err));
            if (e) {
                pthread_mutex_lock(&c->lock);
                engine *old = c->cur;
                c->cur = e;
                pthread_mutex_unlock(&c->lock);
                unsigned long long g = atomic_fetch_add(&c->generation, 1) + 1;
                engine_put(old); /* freed here or by its last scan */
                pc_filter_log(NULL, 5,
                              "clamav-reload result=ok signatures=%u db_version=%u generation=%llu",
                              e->sigs, e->dbversion, g);
            } else {
                pc_filter_log(NULL, 3,
                              "clamav-reload result=failed error=\"%s\" (the old engine goes on)",
                              err);
            }
        }
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- options ------------------------------------------------------------------------------- */

static int action_of(const pc_opt *o, const char *key, int def, int *out, char *err, size_t errlen)
{
    static const char *const names[] = {"pass", "tempfail", "reject", NULL};
    int idx = def;
    if (pc_opt_enum(o, key, names, &idx, err, errlen) < 0)
        return -1;
    *out = idx;
    return 0;
}

static void clamav_fini(void *self);

static void *clamav_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "database",      "max_scan_size", "max_file_size", "max_recursion", "max_files",
        "max_scan_time", "on_limits",     "on_scan_error", "reload_check",  NULL};
    if (pc_opt_check_keys(o, keys, err, errlen) < 0)
        return NULL;
    pthread_once(&init_once, lib_init);
    if (init_rc != CL_SUCCESS) {
        snprintf(err, errlen, "libclamav: %s", cl_strerror(init_rc));
        return NULL;
    }
    clamav *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    c->max_scan = 100u << 20;
    c->max_file = 25u << 20;
    c->max_recursion = 16;
    c->max_files = 10000;
    c->max_time_ms = 120000;
    c->check_ms = 60000;
    double rec = c->max_recursion, files = c->max_files;
    if (pc_opt_path(o, "database", PC_OPT_READABLE, &c->dir, err, errlen) < 0 ||
        pc_opt_size(o, "max_scan_size", &c->max_scan, err, errlen) < 0 ||
        pc_opt_size(o, "max_file_size", &c->max_file, err, errlen) < 0 ||
        pc_opt_number(o, "max_recursion", 1, 100, &rec, err, errlen) < 0 ||
        pc_opt_number(o, "max_files", 1, 1000000, &files, err, errlen) < 0 ||
        pc_opt_duration(o, "max_scan_time", &c->max_time_ms, err, errlen) < 0 ||
        pc_opt_duration(o, "reload_check", &c->check_ms, err, errlen) < 0 ||
        action_of(o, "on_limits", ACT_PASS, &c->on_limits, err, errlen) < 0 ||
        action_of(o, "on_scan_error", ACT_TEMPFAIL, &c->on_error, err, errlen) < 0)
        goto fail;
    c->max_recursion = (unsigned)rec;
    c->max_files = (unsigned)files;
    if (!c->dir) {
        pc_opt_error(err, errlen, o, "database (a directory of signature files) is required");
        goto fail;
    }
    if (!(c->cur = engine_build(c, err, errlen)))
        goto fail;
    atomic_init(&c->generation, 1);
    pc_filter_log(NULL, 5, "clamav-load result=ok database=%s signatures=%u db_version=%u", c->dir,
                  c->cur->sigs, c->cur->dbversion);
    if (c->check_ms) {
        if (cl_statinidir(c->dir, &c->st) == CL_SUCCESS &&
            pthread_create(&c->thread, NULL, reloader, c) == 0)
            c->thread_started = 1;
    }
    return c;
fail:
    clamav_fini(c);
    return NULL;
}

static void clamav_fini(void *self)
{
    clamav *c = self;
    if (!c)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        cl_statfree(&c->st);
    }
    engine_put(c->cur);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static unsigned long long clamav_version(void *self)
{
    return atomic_load(&((clamav *)self)->generation);
}

/* ---- scanning ------------------------------------------------------------------------------ */

typedef struct scan {
    clamav *c;
    pc_message *msg;
    pc_done_fn done;
    cl_error_t rc;
    char virus[128];
    unsigned long scanned;
    struct timespec t0;
    double ms;
} scan;

static void scan_work(void *arg)
{
    scan *j = arg;
    clock_gettime(CLOCK_MONOTONIC, &j->t0);
    engine *e = engine_get(j->c);
    size_t len;
    const void *p = pc_message_map(j->msg, &len);
    j->rc = CL_EMEM;
    if (e && p) {
        cl_fmap_t *map = cl_fmap_open_memory(p, len);
        if (map) {
            struct cl_scan_options so = {.parse = ~0u};
            if (j->c->on_limits != ACT_PASS) {
                so.general = CL_SCAN_GENERAL_HEURISTICS;
                so.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX;
            }
            const char *vn = NULL;
            j->rc = cl_scanmap_callback(map, NULL, &vn, &j->scanned, e->e, &so, NULL);
            if (j->rc == CL_VIRUS)
                snprintf(j->virus, sizeof(j->virus), "%s", vn ? vn : "unknown");
            cl_fmap_close(map);
        }
    }
    engine_put(e);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    j->ms = (double)(t1.tv_sec - j->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - j->t0.tv_nsec) / 1e6;
}

static pc_verdict act(int action, const char *text, const char *symbol)
{
    switch (action) {
    case ACT_REJECT:
        return (pc_verdict){
            .action = PC_REJECT, .code = 554, .enhanced = "5.7.1", .text = text, .symbol = symbol};
    case ACT_TEMPFAIL:
        return (pc_verdict){.action = PC_TEMPFAIL,
                            .code = 451,
                            .enhanced = "4.3.0",
                            .text = text,
                            .symbol = symbol};
    default: return (pc_verdict){.action = PC_TAG, .symbol = symbol};
    }
}

static void scan_after(pc_filter_ctx *ctx, void *arg)
{
    scan *j = arg;
    if (pc_ctx_cancelled(ctx)) {
        free(j);
        return;
    }
    char text[200];
    pc_verdict v = {.action = PC_CONTINUE};
    if (j->rc == CL_VIRUS && strncmp(j->virus, "Heuristics.Limits.Exceeded", 26) == 0) {
        pc_filter_log(ctx, 5, "clamav=limits name=%s time_ms=%.1f", j->virus, j->ms);
        snprintf(text, sizeof(text), "Message could not be scanned completely (%s)", j->virus);
        v = act(j->c->on_limits, text, "CLAMAV_LIMITS");
    } else if (j->rc == CL_VIRUS) {
        pc_filter_log(ctx, 5, "clamav=virus name=%s time_ms=%.1f", j->virus, j->ms);
        snprintf(text, sizeof(text), "Virus found: %s", j->virus);
        v = (pc_verdict){.action = PC_REJECT,
                         .code = 554,
                         .enhanced = "5.7.1",
                         .text = text,
                         .symbol = "CLAMAV_VIRUS"};
    } else if (j->rc != CL_CLEAN) {
        pc_filter_log(ctx, 4, "clamav=error error=\"%s\" time_ms=%.1f", cl_strerror(j->rc), j->ms);
        v = act(j->c->on_error, "Message could not be scanned, try again later", "CLAMAV_ERROR");
    } else {
        pc_filter_log(ctx, 7, "clamav=clean time_ms=%.1f scanned=%lu", j->ms, j->scanned);
    }
    pc_done_fn done = j->done;
    free(j);
    done(ctx, &v);
}

static void clamav_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_verdict cont = {.action = PC_CONTINUE};
    pc_message *m = pc_ctx_message(ctx);
    if ((hook != PC_HOOK_MESSAGE && hook != PC_HOOK_RETRIEVE) || !m) {
        done(ctx, &cont);
        return;
    }
    scan *j = calloc(1, sizeof(*j));
    if (!j || (*j = (scan){.c = self, .msg = m, .done = done},
               pc_filter_offload_long(ctx, scan_work, scan_after, j) < 0)) {
        free(j);
        clamav *c = self;
        pc_verdict v =
            act(c->on_error, "Message could not be scanned, try again later", "CLAMAV_ERROR");
        done(ctx, &v);
    }
}

const pc_filter pcf_clamav_filter = {
    .abi = PC_FILTER_ABI,
    .name = "clamav",
    .hooks = PC_HOOK_BIT(PC_HOOK_MESSAGE) | PC_HOOK_BIT(PC_HOOK_RETRIEVE),
    .init = clamav_init,
    .fini = clamav_fini,
    .run = clamav_run,
    .content_version = clamav_version,
};
