/* redis.c — the Redis backend of the state store: one hiredis asynchronous connection per worker
 * loop, pipelined, every operation one atomic command (a Lua script where it takes more than one
 * step).
 *
 * State (per worker): the connection (at most one redisAsyncContext: a context is freed by hiredis
 * after its disconnect and never reused; a new one is made for every attempt), its phase (DOWN:
 * waiting for the backoff timer; CONNECTING: TCP/UNIX connect, then AUTH and SELECT, or a PING
 * when there is neither, all within the connect timeout: READY only once the server has answered),
 * the requests in submission order (waiting while CONNECTING, sent to hiredis once READY), and the
 * requests to answer UNAVAILABLE on the next loop iteration.
 *
 * Invariants: a callback never runs inside submit() (requests refused at once are answered from a
 * uv_idle handle); every request is answered exactly once (pc_store_complete) or dropped when the
 * worker goes (pc_store_drop); no command is sent before AUTH and SELECT. The requests' deadlines
 * grow in submission order, and Redis answers a connection's commands in order, so one timer on
 * the oldest request is every request's timeout: when it fires on a READY connection, that
 * connection is stuck, so it is dropped (every request on it gets UNAVAILABLE) and made again.
 * Reconnects back off from 100 ms, doubling to 5 s. Losing and regaining the server is logged
 * once per transition, not per attempt; a connection closed while idle after serving a while (the
 * server's `timeout`) is made again at once, silently. An incr's value goes through a Lua number
 * (a double): exact up to 2^53.
 *
 * The process ignores SIGPIPE (main.c): hiredis writes with write(2). worker_free() is not to be
 * called from inside a store callback. The window script names its bucket keys itself (not in
 * KEYS): fine on one server, not for Redis Cluster, which hiredis does not speak anyway.
 *
 * Defends against: a blocking name lookup on the loop (the address must be an IP or a UNIX
 * socket's path), a server that accepts and never answers (connect and command timeouts), keys
 * and values with any byte (binary-safe %b arguments), a server's error text in the log (it goes
 * through pc_sanitize). */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "base/log.h"
#include "parse/sanitize.h"
#include "store/backend.h"
#include "store/redis_uv.h"

#define CONNECT_TIMEOUT_MS 1000 /* when the configuration says 0 */
#define COMMAND_TIMEOUT_MS 500
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000

/* add: SET NX (with EX when ttl > 0); when the key was there, its value, in the same step. */
static const char ADD_LUA[] = "local ok\n"
                              "if tonumber(ARGV[2]) > 0 then\n"
                              "  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])\n"
                              "else\n"
                              "  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')\n"
                              "end\n"
                              "if ok then return 1 end\n"
                              "return redis.call('GET', KEYS[1])\n";

/* incr: INCRBY; the expiry only on a key this call created. */
static const char INCR_LUA[] =
    "local new = redis.call('EXISTS', KEYS[1]) == 0\n"
    "local n = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "if new and tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end\n"
    "return n\n";

/* window: pc_store_window_at() by the server's clock; buckets KEY:NUMBER expire after two
 * windows. n = cur + (long long)(prev * weight), as in backend.h. */
static const char WINDOW_LUA[] = "local now = tonumber(redis.call('TIME')[1])\n"
                                 "local w = tonumber(ARGV[1])\n"
                                 "local by = tonumber(ARGV[2])\n"
                                 "local k = math.floor(now / w)\n"
                                 "local weight = 1.0 - (now - k * w) / w\n"
                                 "local ck = KEYS[1] .. ':' .. string.format('%d', k)\n"
                                 "local pk = KEYS[1] .. ':' .. string.format('%d', k - 1)\n"
                                 "local cur\n"
                                 "if by > 0 then\n"
                                 "  cur = redis.call('INCRBY', ck, by)\n"
                                 "  redis.call('EXPIRE', ck, 2 * w)\n"
                                 "else\n"
                                 "  cur = tonumber(redis.call('GET', ck) or '0') or 0\n"
                                 "end\n"
                                 "local prev = tonumber(redis.call('GET', pk) or '0') or 0\n"
                                 "return cur + math.floor(prev * weight)\n";

typedef struct rshared {
    char ip[INET6_ADDRSTRLEN]; /* "" for a UNIX socket */
    int port;
    char *path; /* UNIX socket */
    char *address;
    char *password; /* NULL: no AUTH */
    size_t password_len;
    unsigned db;
    char *prefix;
    size_t prefix_len;
    unsigned connect_timeout_ms, timeout_ms;
} rshared;

enum { DOWN, CONNECTING, READY };

typedef struct rworker rworker;

/* One request's place in the worker: r->bk. */
typedef struct rpend {
    pc_store_req *r;
    rworker *w;
    uint64_t deadline; /* uv_now() ms */
    struct rpend *prev, *next;
    int sent; /* handed to hiredis: its callback answers it */
} rpend;

struct rworker {
    const rshared *sh;
    uv_loop_t *loop;
    redisAsyncContext *ac; /* NULL when DOWN */
    int phase;
    int handshake_left;      /* AUTH, SELECT (or PING) replies still awaited */
    int drop_wanted;         /* drop ac from the idle handle (asked from inside hiredis) */
    const char *drop_reason; /* for the log line when we end the connection ourselves */
    unsigned backoff_ms;
    int logged_down;         /* "lost" logged, "re-established" not yet */
    int ever_ready;          /* for the first "connected" line */
    int auth_logged;         /* the AUTH/SELECT failure logged since the last success */
    int closing;             /* worker_free() runs: requests are dropped, not answered */
    rpend *head, *tail;      /* in submission order: waiting (CONNECTING) or sent (READY) */
    rpend *fail, *fail_tail; /* to answer UNAVAILABLE from the idle handle */
    uv_timer_t conn_timer;   /* connect timeout (CONNECTING), backoff (DOWN) */
    uv_timer_t cmd_timer;    /* the oldest request's deadline */
    uv_idle_t idle;          /* the fail list, drop_wanted */
    int open_handles;
    unsigned lost;     /* requests the current connection failed when it went */
    uint64_t ready_at; /* uv_now() when it became READY */
    char why[64];      /* drop_reason's text when it is made up */
};

static void start_connect(rworker *w);

/* ------------------------------------------------------------------------- open, close */

static void shared_free(rshared *sh)
{
    if (!sh)
        return;
    free(sh->path);
    free(sh->address);
    if (sh->password) {
        memset(sh->password, 0, sh->password_len);
        free(sh->password);
    }
    free(sh->prefix);
    free(sh);
}

static int parse_address(rshared *sh, const char *a, char *err, size_t errlen)
{
    if (!a || !*a) {
        snprintf(err, errlen, "state.redis.address is missing");
        return -1;
    }
    if (a[0] == '/') {
        if (strlen(a) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            snprintf(err, errlen, "state.redis.address: the socket path is too long");
            return -1;
        }
        return (sh->path = strdup(a)) ? 0 : -1;
    }
    struct sockaddr_storage ss;
    if (pc_parse_hostport(a, &ss) < 0) {
        snprintf(err, errlen,
                 "state.redis.address: %s is not ip:port, [ip6]:port or an absolute socket path",
                 a);
        return -1;
    }
    const void *addr;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        addr = &s4->sin_addr;
        sh->port = ntohs(s4->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        addr = &s6->sin6_addr;
        sh->port = ntohs(s6->sin6_port);
    } else {
        snprintf(err, errlen, "state.redis.address: %s: not an IP address", a);
        return -1;
    }
    if (sh->port == 0 || !inet_ntop(ss.ss_family, addr, sh->ip, sizeof(sh->ip))) {
        snprintf(err, errlen, "state.redis.address: %s: no port", a);
        return -1;
    }
    return 0;
}

/* The first line of the file, without its line end. Read here, at start-up, off the loop. */
static int read_password(rshared *sh, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "re");
    if (!f) {
        snprintf(err, errlen, "state.redis.password_file: %s: %s", file, strerror(errno));
        return -1;
    }
    char buf[1024];
    int ok = fgets(buf, sizeof(buf), f) != NULL;
    int rerr = ferror(f);
    fclose(f);
    size_t n = ok ? strcspn(buf, "\r\n") : 0;
    if (!ok || rerr || n == 0) {
        snprintf(err, errlen, "state.redis.password_file: %s: %s", file,
                 rerr ? "read error" : "no password on its first line");
        memset(buf, 0, sizeof(buf));
        return -1;
    }
    if (n == sizeof(buf) - 1) {
        snprintf(err, errlen, "state.redis.password_file: %s: the password is too long", file);
        memset(buf, 0, sizeof(buf));
        return -1;
    }
    sh->password = malloc(n + 1);
    if (sh->password) {
        memcpy(sh->password, buf, n);
        sh->password[n] = '\0';
        sh->password_len = n;
    }
    memset(buf, 0, sizeof(buf));
    if (!sh->password) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void *redis_open(const pc_state_cfg *cfg, char *err, size_t errlen)
{
    rshared *sh = calloc(1, sizeof(*sh));
    if (!sh) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *prefix = cfg->prefix ? cfg->prefix : "pc:";
    if (parse_address(sh, cfg->redis_address, err, errlen) < 0)
        goto fail;
    if (!(sh->address = strdup(cfg->redis_address)) || !(sh->prefix = strdup(prefix))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->redis_password_file && read_password(sh, cfg->redis_password_file, err, errlen) < 0)
        goto fail;
    sh->prefix_len = strlen(prefix);
    sh->db = cfg->redis_db;
    sh->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS;
    sh->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : COMMAND_TIMEOUT_MS;
    return sh;
fail:
    shared_free(sh);
    return NULL;
}

static void redis_close(void *shared)
{
    shared_free(shared);
}

/* ------------------------------------------------------------------------- the request lists */

static void on_cmd_timer(uv_timer_t *t);
static void on_conn_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *h);

static void list_unlink(rworker *w, rpend *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        w->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(rworker *w, rpend *c)
{
    c->next = NULL;
    c->prev = w->tail;
    if (w->tail)
        w->tail->next = c;
    else
        w->head = c;
    w->tail = c;
}

/* The timer follows the oldest request. */
static void arm_cmd_timer(rworker *w)
{
    if (w->closing)
        return;
    if (!w->head) {
        uv_timer_stop(&w->cmd_timer);
        return;
    }
    uint64_t now = uv_now(w->loop);
    uint64_t d = w->head->deadline;
    uv_timer_start(&w->cmd_timer, on_cmd_timer, d > now ? d - now : 0, 0);
}

/* Answers c's request with st (or drops it when the worker goes) and frees c. */
static void finish(rpend *c, pc_store_status st)
{
    rworker *w = c->w;
    pc_store_req *r = c->r;
    free(c);
    r->bk = NULL;
    if (w->closing) {
        pc_store_drop(r);
        return;
    }
    r->reply.status = st;
    pc_store_complete(r);
}

/* UNAVAILABLE, from the idle handle: never inside the call that submitted it. */
static void fail_later(rworker *w, rpend *c)
{
    c->prev = NULL;
    c->next = NULL;
    if (w->fail_tail)
        w->fail_tail->next = c;
    else
        w->fail = c;
    w->fail_tail = c;
    if (!w->closing)
        uv_idle_start(&w->idle, on_idle);
}

/* ------------------------------------------------------------------------- the connection */

static void log_down(rworker *w, const char *reason)
{
    if (w->logged_down || w->closing)
        return;
    w->logged_down = 1;
    pc_log_warn(0, "event=state-store-down backend=redis address=%s reason=\"%s\"", w->sh->address,
                reason);
}

/* The connection is gone (or was never made): its waiting requests fail, the next attempt is
 * scheduled. */
static void went_down(rworker *w, const char *reason, int quiet)
{
    w->ac = NULL;
    w->phase = DOWN;
    w->handshake_left = 0;
    w->drop_wanted = 0;
    w->drop_reason = NULL;
    while (w->head) { /* never sent: the sent ones had their NULL reply from hiredis */
        rpend *c = w->head;
        list_unlink(w, c);
        fail_later(w, c);
    }
    if (w->closing)
        return;
    uv_timer_stop(&w->cmd_timer);
    if (quiet) {
        pc_log_debug(0, "event=state-store-reconnect backend=redis address=%s reason=\"%s\"",
                     w->sh->address, reason);
        uv_timer_start(&w->conn_timer, on_conn_timer, 0, 0);
        return;
    }
    log_down(w, reason);
    uv_timer_start(&w->conn_timer, on_conn_timer, w->backoff_ms, 0);
    w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
}

/* hiredis lets go of ac (redis_uv.c's cleanup hook): after the NULL replies, before it is freed. */
static void on_gone(void *arg, redisAsyncContext *ac)
{
    rworker *w = arg;
    if (w->ac != ac)
        return;
    char why[256];
    if (w->drop_reason)
        snprintf(why, sizeof(why), "%s", w->drop_reason);
    else if (ac->err && ac->errstr)
        pc_sanitize(why, sizeof(why), ac->errstr, strlen(ac->errstr), 0);
    else
        snprintf(why, sizeof(why), "connection closed");
    /* A connection that served a while and is closed with nothing pending (the server's idle
     * timeout, CLIENT KILL) is made again at once, without a log line: that is no outage. */
    int quiet =
        w->phase == READY && !w->lost && !w->drop_reason && uv_now(w->loop) - w->ready_at >= 1000;
    went_down(w, why, quiet);
}

/* Ends the connection now; never from inside a hiredis callback (see drop_wanted). Every request
 * sent on it gets its NULL reply, hence UNAVAILABLE, before this returns. */
static void drop_conn(rworker *w, const char *reason)
{
    if (!w->ac)
        return;
    w->drop_reason = reason;
    redisAsyncFree(w->ac);
}

/* From inside hiredis: the idle handle ends the connection. */
static void want_drop(rworker *w, const char *reason)
{
    w->drop_wanted = 1;
    w->drop_reason = reason;
    uv_idle_start(&w->idle, on_idle);
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata);

/* Hands c's request to hiredis. 0, or -1 (the context refuses: it is going away). */
static int send_cmd(rworker *w, rpend *c)
{
    const pc_store_req *r = c->r;
    const char *p = w->sh->prefix;
    size_t pl = w->sh->prefix_len;
    redisAsyncContext *ac = w->ac;
    int rc = REDIS_ERR;
    switch (r->op) {
    case PC_OP_GET:
        rc = redisAsyncCommand(ac, reply_cb, c, "GET %b%b", p, pl, r->key, r->klen);
        break;
    case PC_OP_SET:
        if (r->ttl_s)
            rc = redisAsyncCommand(ac, reply_cb, c, "SET %b%b %b EX %u", p, pl, r->key, r->klen,
                                   r->value, r->vlen, r->ttl_s);
        else
            rc = redisAsyncCommand(ac, reply_cb, c, "SET %b%b %b", p, pl, r->key, r->klen, r->value,
                                   r->vlen);
        break;
    case PC_OP_ADD:
        rc = redisAsyncCommand(ac, reply_cb, c, "EVAL %s 1 %b%b %b %u", ADD_LUA, p, pl, r->key,
                               r->klen, r->value, r->vlen, r->ttl_s);
        break;
    case PC_OP_INCR:
        rc = redisAsyncCommand(ac, reply_cb, c, "EVAL %s 1 %b%b %lld %u", INCR_LUA, p, pl, r->key,
                               r->klen, r->by, r->ttl_s);
        break;
    case PC_OP_DEL:
        rc = redisAsyncCommand(ac, reply_cb, c, "DEL %b%b", p, pl, r->key, r->klen);
        break;
    case PC_OP_WINDOW:
        rc = redisAsyncCommand(ac, reply_cb, c, "EVAL %s 1 %b%b %u %lld", WINDOW_LUA, p, pl, r->key,
                               r->klen, r->window_s, r->by);
        break;
    }
    if (rc != REDIS_OK)
        return -1;
    c->sent = 1;
    return 0;
}

static void become_ready(rworker *w)
{
    uv_timer_stop(&w->conn_timer);
    w->phase = READY;
    w->backoff_ms = BACKOFF_FIRST_MS;
    w->auth_logged = 0;
    if (w->logged_down)
        pc_log_notice(0, "event=state-store-up backend=redis address=%s", w->sh->address);
    else if (!w->ever_ready)
        pc_log_info(0, "event=state-store-connected backend=redis address=%s", w->sh->address);
    w->logged_down = 0;
    w->ever_ready = 1;
    w->lost = 0;
    w->ready_at = uv_now(w->loop);
    for (rpend *c = w->head, *next; c; c = next) {
        next = c->next;
        if (!c->sent && send_cmd(w, c) < 0) {
            list_unlink(w, c);
            fail_later(w, c);
        }
    }
    arm_cmd_timer(w);
}

static void handshake_reply(redisAsyncContext *ac, void *reply, const char *what)
{
    rworker *w = ac->data;
    const redisReply *rep = reply;
    if (!rep || w->drop_wanted)
        return; /* the connection is going */
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!w->auth_logged) {
            char e[256];
            pc_sanitize(e, sizeof(e), rep->str, rep->len, 0);
            pc_log_warn(0, "event=state-store-%s-failed backend=redis address=%s error=\"%s\"",
                        what, w->sh->address, e);
            w->auth_logged = 1;
        }
        snprintf(w->why, sizeof(w->why), "%s refused", what);
        want_drop(w, w->why);
        return;
    }
    if (--w->handshake_left == 0)
        become_ready(w);
}

static void auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    handshake_reply(ac, reply, "auth");
}

static void select_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    handshake_reply(ac, reply, "select");
}

static void ping_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    handshake_reply(ac, reply, "ping");
}

/* The first write event: connected (AUTH, SELECT go first, or a PING: READY only once the server
 * has answered), or not (hiredis frees ac next, and on_gone follows). */
static void connect_cb(const redisAsyncContext *cac, int status)
{
    rworker *w = cac->data;
    if (status != REDIS_OK || w->ac != cac)
        return;
    redisAsyncContext *ac = w->ac;
    const rshared *sh = w->sh;
    w->handshake_left = 0;
    if (sh->password) {
        if (redisAsyncCommand(ac, auth_cb, NULL, "AUTH %b", sh->password, sh->password_len) !=
            REDIS_OK) {
            want_drop(w, "AUTH not sent");
            return;
        }
        w->handshake_left++;
    }
    if (sh->db) {
        if (redisAsyncCommand(ac, select_cb, NULL, "SELECT %u", sh->db) != REDIS_OK) {
            want_drop(w, "SELECT not sent");
            return;
        }
        w->handshake_left++;
    }
    if (!w->handshake_left) { /* a server that accepts and never answers is not up */
        if (redisAsyncCommand(ac, ping_cb, NULL, "PING") != REDIS_OK) {
            want_drop(w, "PING not sent");
            return;
        }
        w->handshake_left++;
    }
}

static void start_connect(rworker *w)
{
    const rshared *sh = w->sh;
    redisAsyncContext *ac =
        sh->path ? redisAsyncConnectUnix(sh->path) : redisAsyncConnect(sh->ip, sh->port);
    char why[256];
    if (!ac || ac->err) {
        if (ac && ac->errstr)
            pc_sanitize(why, sizeof(why), ac->errstr, strlen(ac->errstr), 0);
        else
            snprintf(why, sizeof(why), "out of memory");
        if (ac)
            redisAsyncFree(ac); /* no adapter yet: nothing is called back */
        went_down(w, why, 0);
        return;
    }
    if (pc_redis_uv_attach(ac, w->loop, on_gone, w) < 0) {
        redisAsyncFree(ac);
        went_down(w, "cannot poll the socket", 0);
        return;
    }
    if (!sh->path)
        redisEnableKeepAlive(&ac->c); /* an idle connection to a vanished host is noticed */
    ac->data = w;
    w->ac = ac;
    w->phase = CONNECTING;
    uv_timer_start(&w->conn_timer, on_conn_timer, sh->connect_timeout_ms, 0);
    redisAsyncSetConnectCallback(ac, connect_cb); /* watches for the first write event */
}

/* ------------------------------------------------------------------------- replies, timers */

static char *dup_str(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (o) {
        memcpy(o, s, n);
        o[n] = '\0';
    }
    return o;
}

static pc_store_status map_reply(pc_store_req *r, const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        char e[256];
        pc_sanitize(e, sizeof(e), rep->str, rep->len, 0);
        pc_log_debug(0, "event=state-store-error backend=redis error=\"%s\"", e);
        return PC_STORE_ERROR;
    }
    switch (r->op) {
    case PC_OP_GET:
        if (rep->type == REDIS_REPLY_NIL)
            return PC_STORE_MISSING;
        if (rep->type != REDIS_REPLY_STRING)
            return PC_STORE_ERROR;
        return (r->out = dup_str(rep->str, rep->len)) ? PC_STORE_OK : PC_STORE_ERROR;
    case PC_OP_SET: return rep->type == REDIS_REPLY_STATUS ? PC_STORE_OK : PC_STORE_ERROR;
    case PC_OP_ADD:
        if (rep->type == REDIS_REPLY_INTEGER)
            return PC_STORE_OK;
        if (rep->type == REDIS_REPLY_NIL) /* cannot happen in one script; an empty value then */
            return (r->out = dup_str("", 0)) ? PC_STORE_EXISTS : PC_STORE_ERROR;
        if (rep->type != REDIS_REPLY_STRING)
            return PC_STORE_ERROR;
        return (r->out = dup_str(rep->str, rep->len)) ? PC_STORE_EXISTS : PC_STORE_ERROR;
    case PC_OP_INCR:
    case PC_OP_WINDOW:
    case PC_OP_DEL:
        if (rep->type != REDIS_REPLY_INTEGER)
            return PC_STORE_ERROR;
        r->reply.n = rep->integer;
        return PC_STORE_OK;
    }
    return PC_STORE_ERROR;
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    rpend *c = privdata;
    rworker *w = c->w;
    list_unlink(w, c);
    arm_cmd_timer(w);
    if (!reply)
        w->lost++;
    finish(c, reply ? map_reply(c->r, reply) : PC_STORE_UNAVAILABLE);
}

static void on_cmd_timer(uv_timer_t *t)
{
    rworker *w = t->data;
    uint64_t now = uv_now(w->loop);
    if (w->phase == READY && w->head && w->head->deadline <= now) {
        snprintf(w->why, sizeof(w->why), "no answer in %u ms", w->sh->timeout_ms);
        drop_conn(w, w->why);
        return;
    }
    while (w->head && w->head->deadline <= now && !w->head->sent) {
        rpend *c = w->head;
        list_unlink(w, c);
        finish(c, PC_STORE_UNAVAILABLE);
    }
    arm_cmd_timer(w);
}

static void on_conn_timer(uv_timer_t *t)
{
    rworker *w = t->data;
    if (w->phase == DOWN)
        start_connect(w);
    else if (w->phase == CONNECTING)
        drop_conn(w, "connect timeout");
}

static void on_idle(uv_idle_t *h)
{
    rworker *w = h->data;
    if (w->drop_wanted) {
        w->drop_wanted = 0;
        drop_conn(w, w->drop_reason);
    }
    rpend *c = w->fail;
    w->fail = w->fail_tail = NULL;
    while (c) { /* answers submitted now wait for the next iteration */
        rpend *next = c->next;
        finish(c, PC_STORE_UNAVAILABLE);
        c = next;
    }
    if (!w->fail && !w->drop_wanted)
        uv_idle_stop(h);
}

/* ------------------------------------------------------------------------- the backend */

static void *redis_worker_new(void *shared, uv_loop_t *loop, char *err, size_t errlen)
{
    rworker *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->sh = shared;
    w->loop = loop;
    w->backoff_ms = BACKOFF_FIRST_MS;
    uv_timer_init(loop, &w->conn_timer);
    uv_timer_init(loop, &w->cmd_timer);
    uv_idle_init(loop, &w->idle);
    w->conn_timer.data = w->cmd_timer.data = w->idle.data = w;
    w->open_handles = 3;
    start_connect(w);
    return w;
}

static void on_handle_closed(uv_handle_t *h)
{
    rworker *w = h->data;
    if (--w->open_handles == 0)
        free(w);
}

/* Not from inside a store callback. Pending requests are dropped here, before it returns; the
 * handles are freed by the loop's next run. */
static void redis_worker_free(void *worker)
{
    rworker *w = worker;
    if (!w)
        return;
    w->closing = 1;
    if (w->ac)
        redisAsyncFree(w->ac); /* sent requests: their NULL reply drops them */
    while (w->head) {
        rpend *c = w->head;
        list_unlink(w, c);
        finish(c, PC_STORE_UNAVAILABLE);
    }
    while (w->fail) {
        rpend *c = w->fail;
        w->fail = c->next;
        finish(c, PC_STORE_UNAVAILABLE);
    }
    w->fail_tail = NULL;
    uv_timer_stop(&w->conn_timer);
    uv_timer_stop(&w->cmd_timer);
    uv_idle_stop(&w->idle);
    uv_close((uv_handle_t *)&w->conn_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->cmd_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->idle, on_handle_closed);
}

static int redis_submit(void *worker, pc_store_req *r)
{
    rworker *w = worker;
    if (w->closing)
        return -1;
    rpend *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->r = r;
    c->w = w;
    c->deadline = uv_now(w->loop) + w->sh->timeout_ms;
    r->bk = c;
    if (w->phase == DOWN || (w->phase == READY && send_cmd(w, c) < 0)) {
        fail_later(w, c);
        return 0;
    }
    list_append(w, c);
    if (w->head == c)
        arm_cmd_timer(w);
    return 0;
}

const pc_store_backend pc_store_redis = {
    .name = "redis",
    .open = redis_open,
    .close = redis_close,
    .worker_new = redis_worker_new,
    .worker_free = redis_worker_free,
    .submit = redis_submit,
};
