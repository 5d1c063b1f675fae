/* dns.c — one c-ares channel per worker loop, driven by the loop: c-ares tells which sockets it
 * wants watched (ARES_OPT_SOCK_STATE_CB → one uv_poll each) and when it next needs the clock
 * (ares_timeout → one uv_timer); ares_process_fd does the rest, including retries, server
 * rotation and the TCP retry of a truncated answer. Queries are built here (ares_create_query
 * with EDNS0, then the AD bit set in the header) and sent with ares_send, so that the raw answer
 * reaches our own parser (dns_parse.c), which keeps every TTL and the AD bit.
 *
 * State: the channel, the poll handles, the pending questions (count bounded), a list of answers
 * ready to be delivered on the next loop turn (cache hits, immediate errors). Invariants: a
 * callback never runs inside pc_dns_query(); a cancelled question's callback never runs; a
 * question's memory is freed only once c-ares is done with it. Nothing here blocks: the shared
 * cache's mutex covers lookups only (dns_cache.c). */
#include "core/dns.h"

#include <ares.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pc_dns_req {
    pc_dns *r;
    pc_dns_cb cb;
    void *arg;
    int cancelled;
    int in_send; /* inside ares_send: an answer now must wait for the next loop turn */
    uint16_t type;
    pc_dns_msg *ready; /* set when queued for delivery */
    pc_dns_status ready_status;
    pc_dns_req *next; /* the ready list */
    char name[256];
};

typedef struct sockpoll {
    uv_poll_t h; /* first: a handle pointer is the sockpoll's */
    ares_socket_t fd;
    pc_dns *r;
    struct sockpoll *next;
} sockpoll;

struct pc_dns {
    uv_loop_t *loop;
    ares_channel ch;
    int have_ch;
    uv_timer_t timer;  /* c-ares' next timeout */
    uv_idle_t deliver; /* runs the ready list on the next loop turn */
    sockpoll *polls;
    pc_dns_cache *cache;
    pc_dns_req *ready_head, *ready_tail;
    pc_dns_stats stats;
    int closing;
    int handles; /* open uv handles; the struct is freed when the last one is closed */
};

static _Thread_local pc_dns *current;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status;

static void lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

pc_dns *pc_dns_current(void)
{
    return current;
}

pc_dns *pc_filter_dns(pc_filter_ctx *ctx)
{
    return ctx ? current : NULL; /* filters run on their session's loop thread */
}

void pc_dns_set_current(pc_dns *r)
{
    current = r;
}

const char *pc_dns_status_name(pc_dns_status st)
{
    switch (st) {
    case PC_DNS_NOERROR: return "NOERROR";
    case PC_DNS_NXDOMAIN: return "NXDOMAIN";
    case PC_DNS_NODATA: return "NODATA";
    case PC_DNS_SERVFAIL: return "SERVFAIL";
    case PC_DNS_TIMEOUT: return "TIMEOUT";
    default: return "ERROR";
    }
}

pc_dns_cache *pc_dns_cache_from_cfg(const pc_resolver_cfg *cfg)
{
    pc_dns_cache_cfg cc = {
        .entries = cfg->cache_size,
        .min_ttl = 0,
        .max_ttl = cfg->max_ttl_ms / 1000,
        .negative_ttl = cfg->negative_ttl_ms / 1000,
    };
    return pc_dns_cache_new(&cc);
}

/* ---- driving c-ares from the loop ----------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void arm_timer(pc_dns *r)
{
    struct timeval tv, *tp;
    if (r->closing)
        return;
    tp = ares_timeout(r->ch, NULL, &tv);
    if (!tp) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tp->tv_sec * 1000 + ((uint64_t)tp->tv_usec + 999) / 1000;
    uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    pc_dns *r = t->data;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timer(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    pc_dns *r = h->data;
    if (h->type == UV_POLL)
        free((sockpoll *)(void *)h);
    if (--r->handles == 0)
        free(r);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sockpoll *sp = (sockpoll *)(void *)h;
    pc_dns *r = sp->r;
    ares_socket_t fd = sp->fd;
    if (status < 0) /* let c-ares see the error on the socket */
        ares_process_fd(r->ch, fd, fd);
    else
        ares_process_fd(r->ch, (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
                        (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
    arm_timer(r); /* sp may be closed by now: not touched again */
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    pc_dns *r = data;
    sockpoll **pp = &r->polls, *sp;
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    sp = *pp;
    if (!readable && !writable) {
        if (sp) {
            *pp = sp->next;
            uv_poll_stop(&sp->h);
            uv_close((uv_handle_t *)&sp->h, on_handle_closed);
        }
        return;
    }
    if (!sp) {
        if (!(sp = calloc(1, sizeof(*sp))))
            return; /* the query times out */
        if (uv_poll_init_socket(r->loop, &sp->h, fd) != 0) {
            free(sp);
            return;
        }
        sp->fd = fd;
        sp->r = r;
        sp->h.data = r;
        sp->next = r->polls;
        r->polls = sp;
        r->handles++;
    }
    uv_poll_start(&sp->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

/* ---- answers -------------------------------------------------------------------------------- */

static void answer_req(pc_dns_req *q, pc_dns_msg *m, pc_dns_status st)
{
    pc_dns *r = q->r;
    r->stats.pending--;
    if (!q->cancelled) {
        pc_dns_answer none = {.status = st};
        q->cb(q->arg, m ? &m->a : &none);
    }
    free(m);
    free(q);
}

static void on_deliver(uv_idle_t *t)
{
    pc_dns *r = t->data;
    uv_idle_stop(t);
    pc_dns_req *q = r->ready_head; /* answers queued by callbacks below wait for the next turn */
    r->ready_head = r->ready_tail = NULL;
    while (q) {
        pc_dns_req *next = q->next;
        answer_req(q, q->ready, q->ready_status);
        q = next;
    }
}

static void queue_ready(pc_dns_req *q, pc_dns_msg *m, pc_dns_status st)
{
    pc_dns *r = q->r;
    q->ready = m;
    q->ready_status = st;
    q->next = NULL;
    if (r->ready_tail)
        r->ready_tail->next = q;
    else
        r->ready_head = q;
    r->ready_tail = q;
    uv_idle_start(&r->deliver, on_deliver); /* no-op when already started */
}

static pc_dns_status map_status(int status)
{
    switch (status) {
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED: return PC_DNS_TIMEOUT;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ENOTIMP:
    case ARES_EFORMERR: return PC_DNS_SERVFAIL;
    case ARES_ENOTFOUND: return PC_DNS_NXDOMAIN;
    case ARES_ENODATA: return PC_DNS_NODATA;
    default: return PC_DNS_ERROR;
    }
}

static void send_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    pc_dns_req *q = arg;
    pc_dns *r = q->r;
    (void)timeouts;
    if (r->closing) { /* ares_destroy(): nobody waits any more */
        r->stats.pending--;
        free(q);
        return;
    }
    pc_dns_msg *m = NULL;
    pc_dns_status st = map_status(status);
    if (status == ARES_SUCCESS && abuf && alen > 0) {
        int e;
        m = pc_dns_parse(abuf, (size_t)alen, q->name, q->type, &e);
        if (m)
            pc_dns_cache_put(r->cache, q->name, q->type, m, now_ms());
        else
            st = PC_DNS_ERROR;
    }
    if (q->in_send)
        queue_ready(q, m, st);
    else
        answer_req(q, m, st);
}

/* ---- the API -------------------------------------------------------------------------------- */

/* Letters, digits, '-', '_', '*', labels of 1..63, at most 253 in all; the trailing dot dropped. */
static int name_ok(const char *name, char *out, size_t cap)
{
    size_t n = strlen(name), label = 0;
    if (n && name[n - 1] == '.')
        n--;
    if (n == 0 || n > 253 || n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '*') ||
            ++label > 63)
            return 0;
    }
    memcpy(out, name, n);
    out[n] = '\0';
    return 1;
}

pc_dns_req *pc_dns_query(pc_dns *r, const char *name, pc_dns_type type, pc_dns_cb cb, void *arg)
{
    if (!r || r->closing || !name || !cb || r->stats.pending >= PC_DNS_MAX_PENDING)
        return NULL;
    pc_dns_req *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    if (!name_ok(name, q->name, sizeof(q->name))) {
        free(q);
        return NULL;
    }
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->type = (uint16_t)type;
    r->stats.pending++;
    pc_dns_msg *hit = pc_dns_cache_get(r->cache, q->name, q->type, now_ms());
    if (hit) {
        r->stats.cache_hits++;
        queue_ready(q, hit, hit->a.status);
        return q;
    }
    unsigned char *qbuf = NULL;
    int qlen = 0;
    if (ares_create_query(q->name, 1 /* IN */, (int)type, 0, 1, &qbuf, &qlen, PC_DNS_EDNS_SIZE) !=
            ARES_SUCCESS ||
        qlen < 12) {
        if (qbuf)
            ares_free_string(qbuf);
        queue_ready(q, NULL, PC_DNS_ERROR);
        return q;
    }
    qbuf[3] |= 0x20; /* AD: tell us whether the data was validated (RFC 6840 §5.7) */
    r->stats.sent++;
    q->in_send = 1;
    ares_send(r->ch, qbuf, qlen, send_cb, q); /* copies qbuf; may call back at once on error */
    ares_free_string(qbuf);
    q->in_send = 0;
    arm_timer(r);
    return q;
}

void pc_dns_cancel(pc_dns_req *req)
{
    if (req)
        req->cancelled = 1; /* freed when c-ares or the ready list is done with it */
}

void pc_dns_stats_get(const pc_dns *r, pc_dns_stats *out)
{
    if (r)
        *out = r->stats;
    else
        memset(out, 0, sizeof(*out));
}

pc_dns *pc_dns_new(uv_loop_t *loop, const pc_resolver_cfg *cfg, pc_dns_cache *cache, char *err,
                   size_t errlen)
{
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(lib_status));
        return NULL;
    }
    pc_dns *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->loop = loop;
    r->cache = cache;
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = r;
    o.timeout = (int)cfg->timeout_ms;
    o.tries = (int)cfg->attempts;
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
    int st = ares_init_options(&r->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(st));
        free(r);
        return NULL;
    }
    if (cfg->servers.n) {
        char csv[2048];
        size_t used = 0;
        csv[0] = '\0';
        for (size_t i = 0; i < cfg->servers.n; i++) {
            int k =
                snprintf(csv + used, sizeof(csv) - used, "%s%s", i ? "," : "", cfg->servers.v[i]);
            if (k < 0 || (size_t)k >= sizeof(csv) - used) {
                snprintf(err, errlen, "resolver.servers: too many servers");
                ares_destroy(r->ch);
                free(r);
                return NULL;
            }
            used += (size_t)k;
        }
        if ((st = ares_set_servers_ports_csv(r->ch, csv)) != ARES_SUCCESS) {
            snprintf(err, errlen, "resolver.servers: %s", ares_strerror(st));
            ares_destroy(r->ch);
            free(r);
            return NULL;
        }
    }
    r->have_ch = 1;
    uv_timer_init(loop, &r->timer);
    uv_idle_init(loop, &r->deliver);
    r->timer.data = r->deliver.data = r;
    r->handles = 2;
    return r;
}

void pc_dns_free(pc_dns *r)
{
    if (!r)
        return;
    if (current == r)
        current = NULL;
    r->closing = 1;
    ares_destroy(r->ch); /* send_cb frees each pending question; sock_state_cb closes the polls */
    for (pc_dns_req *q = r->ready_head, *n; q; q = n) {
        n = q->next;
        free(q->ready);
        free(q);
    }
    r->ready_head = r->ready_tail = NULL;
    for (sockpoll *sp = r->polls, *n; sp; sp = n) { /* any c-ares did not announce */
        n = sp->next;
        uv_poll_stop(&sp->h);
        uv_close((uv_handle_t *)&sp->h, on_handle_closed);
    }
    r->polls = NULL;
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->deliver, on_handle_closed);
}
