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
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "portcullis/filter.h"

enum { ACT_PASS, ACT_TEMPFAIL, ACT_REJECT };

typedef struct engine {
    struct cl_engine *e;
    atomic_uint refs; /* scans holding it, + 1 while it is the current one */
    unsigned sigs;
    unsigned dbversion;
} engine;

/* clamd mode: a connection of the pool, in an IDSESSION. */
typedef struct cconn {
    int fd;
    unsigned long long last_ms; /* when it last answered */
} cconn;

#define POOL_MAX 16

/* A worker's pool of clamd connections, used from the threadpool (hence the lock). */
typedef struct cpool {
    pthread_mutex_t lock;
    cconn idle[POOL_MAX];
    size_t nidle;
} cpool;

typedef struct clamav {
    const char *dir;             /* borrowed from the configuration */
    const char *tmpdir;          /* libclamav's scratch directory (temp_directory), or NULL */
    const char *clamd;           /* clamd mode: a socket path or host:port */
    unsigned pool_size;          /* idle connections kept per worker */
    size_t stream_max;           /* clamd's StreamMaxLength */
    unsigned io_ms;              /* clamd's answer within this */
    atomic_ullong clamd_version; /* the last VERSION seen, hashed */
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
    if (c->tmpdir)
        cl_engine_set_str(ce, CL_ENGINE_TMPDIR, c->tmpdir);
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

/* ---- clamd (threadpool: blocking sockets, bounded by the configured timeout) --------------- */

static unsigned long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One reply, up to its NUL (IDSESSION replies end with one). */
static int read_reply(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (buf[n] == '\0')
            return 0;
        n++;
    }
    return -1;
}

static int clamd_connect(const clamav *c)
{
    int fd = -1;
    if (c->clamd[0] == '/') {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->clamd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            close(fd);
            fd = -1;
        }
    } else {
        char host[256];
        snprintf(host, sizeof(host), "%s", c->clamd);
        char *colon = strrchr(host, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        const char *h = host;
        if (*h == '[') { /* [IPv6]:port */
            h++;
            char *rb = strchr(host, ']');
            if (rb)
                *rb = '\0';
        }
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (getaddrinfo(h, colon + 1, &hints, &ai) != 0)
            return -1;
        for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(ai);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (fd < 0)
        return -1;
    struct timeval tv = {(time_t)(c->io_ms / 1000), (suseconds_t)(c->io_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (send_all(fd, "zIDSESSION", 11) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A connection in a session: an idle one of the pool (a PING first when it has idled a while,
 * since clamd ends sessions idle for its IdleTimeout), or a new one. */
static int clamd_get(const clamav *c, cpool *pool, cconn *out)
{
    for (;;) {
        cconn k = {.fd = -1};
        if (pool) {
            pthread_mutex_lock(&pool->lock);
            if (pool->nidle)
                k = pool->idle[--pool->nidle];
            pthread_mutex_unlock(&pool->lock);
        }
        if (k.fd < 0)
            break;
        unsigned long long idle = now_ms() - k.last_ms;
        if (idle < 5000) {
            *out = k;
            return 0;
        }
        char r[64];
        if (idle < 25000 && send_all(k.fd, "zPING", 6) == 0 &&
            read_reply(k.fd, r, sizeof(r)) == 0 && strstr(r, "PONG")) {
            *out = k;
            return 0;
        }
        close(k.fd);
    }
    out->fd = clamd_connect(c);
    pc_filter_log(NULL, out->fd >= 0 ? 7 : 4, "clamav-clamd connect address=%s result=%s", c->clamd,
                  out->fd >= 0 ? "ok" : "failed");
    return out->fd >= 0 ? 0 : -1;
}

static void clamd_put(const clamav *c, cpool *pool, cconn *k, int ok)
{
    if (ok && pool) {
        k->last_ms = now_ms();
        pthread_mutex_lock(&pool->lock);
        int kept = pool->nidle < c->pool_size && pool->nidle < POOL_MAX;
        if (kept)
            pool->idle[pool->nidle++] = *k;
        pthread_mutex_unlock(&pool->lock);
        if (kept)
            return;
    }
    if (k->fd >= 0) {
        send_all(k->fd, "zEND", 5);
        close(k->fd);
    }
    k->fd = -1;
}

/* INSTREAM of p[0..len) (at most stream_max bytes of it). Returns CL_CLEAN, CL_VIRUS (name in
 * virus), CL_EMAXSIZE (the stream limit), or CL_EOPEN / CL_EREAD on a failure. */
static cl_error_t clamd_scan(clamav *c, cpool *pool, const char *p, size_t len, char *virus,
                             size_t vlen)
{
    cconn k;
    if (clamd_get(c, pool, &k) < 0)
        return CL_EOPEN;
    int ok = send_all(k.fd, "zINSTREAM", 10) == 0;
    size_t n = len < c->stream_max ? len : c->stream_max;
    for (size_t off = 0; ok && off < n; off += 65536) {
        uint32_t chunk = (uint32_t)(n - off < 65536 ? n - off : 65536), be = htonl(chunk);
        ok = send_all(k.fd, &be, 4) == 0 && send_all(k.fd, p + off, chunk) == 0;
    }
    uint32_t zero = 0;
    char r[512];
    ok = ok && send_all(k.fd, &zero, 4) == 0 && read_reply(k.fd, r, sizeof(r)) == 0;
    cl_error_t rc = CL_EREAD;
    if (ok) {
        const char *body = strstr(r, ": ");
        body = body ? body + 2 : r; /* "N: stream: ..." */
        if (strncmp(body, "stream: ", 8) == 0)
            body += 8;
        size_t bl = strlen(body);
        if (bl >= 2 && strcmp(body + bl - 2, "OK") == 0) {
            rc = CL_CLEAN;
        } else if (bl > 6 && strcmp(body + bl - 6, " FOUND") == 0) {
            snprintf(virus, vlen, "%.*s", (int)(bl - 6), body);
            rc = CL_VIRUS;
        } else if (strstr(body, "size limit exceeded")) {
            rc = CL_EMAXSIZE;
        }
        /* what clamd's database is now: verdicts cached for retrieval are keyed by it */
        char v[256];
        if (send_all(k.fd, "zVERSION", 9) == 0 && read_reply(k.fd, v, sizeof(v)) == 0) {
            unsigned long long hsh = 1469598103934665603ULL;
            for (const char *q = strchr(v, ' ') ? strchr(v, ' ') : v; *q; q++)
                hsh = (hsh ^ (unsigned char)*q) * 1099511628211ULL;
            atomic_store(&c->clamd_version, hsh);
        } else {
            ok = 0;
        }
    }
    if (rc == CL_CLEAN && len > c->stream_max)
        rc = CL_EMAXSIZE; /* the rest was not scanned */
    clamd_put(c, pool, &k, ok && rc != CL_EREAD);
    return rc;
}

static void *clamav_init_worker(void *self, struct uv_loop_s *loop)
{
    (void)loop;
    clamav *c = self;
    if (!c->clamd)
        return NULL;
    cpool *pool = calloc(1, sizeof(*pool));
    if (pool)
        pthread_mutex_init(&pool->lock, NULL);
    return pool;
}

static void clamav_fini_worker(void *self, void *state)
{
    (void)self;
    cpool *pool = state;
    if (!pool)
        return;
    for (size_t i = 0; i < pool->nidle; i++) {
        send_all(pool->idle[i].fd, "zEND", 5);
        close(pool->idle[i].fd);
    }
    pthread_mutex_destroy(&pool->lock);
    free(pool);
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
        "database",      "clamd",         "pool_size",     "stream_max",     "clamd_timeout",
        "max_scan_size", "max_file_size", "max_recursion", "max_files",      "max_scan_time",
        "on_limits",     "on_scan_error", "reload_check",  "temp_directory", NULL};
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
    double rec = c->max_recursion, files = c->max_files, psize = 4;
    c->stream_max = 25u << 20; /* clamd's default StreamMaxLength */
    c->io_ms = 60000;
    c->clamd = pc_opt_str(o, "clamd", NULL);
    if (c->clamd && pc_opt_get(o, "database")) {
        pc_opt_error(err, errlen, pc_opt_get(o, "clamd"),
                     "clamd: give database or clamd, not both");
        goto fail;
    }
    if (c->clamd && (!*c->clamd || (c->clamd[0] != '/' && !strrchr(c->clamd, ':')))) {
        pc_opt_error(err, errlen, pc_opt_get(o, "clamd"),
                     "clamd: a socket path (/run/clamav/clamd.ctl) or host:port");
        goto fail;
    }
    if (pc_opt_number(o, "pool_size", 0, POOL_MAX, &psize, err, errlen) < 0 ||
        pc_opt_size(o, "stream_max", &c->stream_max, err, errlen) < 0 ||
        pc_opt_duration(o, "clamd_timeout", &c->io_ms, err, errlen) < 0)
        goto fail;
    c->pool_size = (unsigned)psize;
    if (pc_opt_path(o, "temp_directory", PC_OPT_ABSOLUTE, &c->tmpdir, err, errlen) < 0)
        goto fail;
    if (c->tmpdir && access(c->tmpdir, W_OK | X_OK) < 0) {
        pc_opt_error(err, errlen, pc_opt_get(o, "temp_directory"),
                     "temp_directory: %s is not a writable directory", c->tmpdir);
        goto fail;
    }
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
    if (c->clamd) {
        c->check_ms = 0;
        atomic_init(&c->generation, 1);
        pc_filter_log(NULL, 5, "clamav-clamd address=%s pool=%u stream_max=%zu", c->clamd,
                      c->pool_size, c->stream_max);
        return c;
    }
    if (!c->dir) {
        pc_opt_error(err, errlen, o,
                     "database (a directory of signature files) or clamd is required");
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
    clamav *c = self;
    return c->clamd ? atomic_load(&c->clamd_version) : atomic_load(&c->generation);
}

/* ---- scanning ------------------------------------------------------------------------------ */

typedef struct scan {
    clamav *c;
    cpool *pool;
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
    size_t len;
    const void *p = pc_message_map(j->msg, &len);
    if (j->c->clamd) {
        j->rc = p ? clamd_scan(j->c, j->pool, p, len, j->virus, sizeof(j->virus)) : CL_EMEM;
        if (j->rc == CL_EMAXSIZE) {
            j->rc = CL_VIRUS; /* as libclamav's heuristic names it */
            snprintf(j->virus, sizeof(j->virus), "Heuristics.Limits.Exceeded.StreamMaxLength");
        }
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        j->ms =
            (double)(t1.tv_sec - j->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - j->t0.tv_nsec) / 1e6;
        return;
    }
    engine *e = engine_get(j->c);
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
    if (!j || (*j = (scan){.c = self, .pool = pc_filter_worker_state(ctx), .msg = m, .done = done},
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
    .init_worker = clamav_init_worker,
    .fini_worker = clamav_fini_worker,
};
