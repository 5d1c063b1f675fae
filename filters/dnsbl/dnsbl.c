/* dnsbl.c — DNS lists: the client's address against address lists (DNSBL, and allow-lists, DNSWL,
 * with negative weights), the HELO and MAIL FROM domains against domain lists (RHSBL), and the
 * host names of URLs in the message against URI lists (SURBL/URIBL style), all through the
 * gateway's resolver.
 *
 * Address lookups start at CONNECT and run while the session goes on (no round trip is added); the
 * domain lookups start at MAIL, the URI lookups at MESSAGE after the message was read on the
 * threadpool. A list whose zone has `action: reject` refuses at MAIL (waiting there for its answer
 * if need be); every other listing adds its weight and symbol to the message's findings at MESSAGE.
 * Answers outside 127.0.0.0/8, and a list's "query refused" answers (127.255.255.0/24), are errors
 * of that list, logged and never listings. State lives as long as the session (its slot), every
 * pending question is cancelled at CLOSE.
 *
 * Options (filters/README.md):
 *   zones:   [ { zone, weight, symbol?, codes?: [127.0.0.2, ...], mask?: N, action?: reject } ]
 *   domains: [ { zone, weight, symbol?, codes?, mask? } ]       (HELO and MAIL FROM domains)
 *   uris:    [ { zone, weight, symbol?, codes?, mask? } ]       (hosts of URLs in the message)
 *   uri_scan: size of the message read for URLs (default 1M); uri_max: hosts checked (default 20)
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "portcullis/dns.h"
#include "portcullis/filter.h"
#include "portcullis/urls.h"

#define MAX_LISTS 32
#define MAX_CODES 16
#define MAX_QUERIES 256 /* per session: lists × (address + two domains + URI hosts) */

enum kind { K_ADDR, K_DOMAIN, K_URI };

typedef struct list {
    enum kind kind;
    const char *zone; /* borrowed from the configuration */
    double weight;
    char symbol[80];
    uint32_t codes[MAX_CODES]; /* exact answers that count (network order); none: any 127/8 */
    size_t ncodes;
    unsigned mask; /* last octet & mask != 0 counts; 0: not used */
    int reject;    /* refuse at MAIL */
} list;

typedef struct dnsbl {
    list lists[MAX_LISTS];
    size_t n;
    size_t uri_scan;
    unsigned uri_max;
    int has[3];
} dnsbl;

typedef struct sess sess;

/* One question to one list. */
typedef struct query {
    sess *st;
    const list *l;
    pc_dns_req *req;
    char name[300]; /* what was checked: the address, the domain or the host */
    int done;
    int listed;
    int error;
    uint32_t answer;
} query;

/* Per session (its slot). */
struct sess {
    const dnsbl *d;
    query *q[MAX_QUERIES];
    size_t nq;
    size_t pending;
    int domains_started;
    /* the hook waiting for answers (MAIL with a reject list, MESSAGE) */
    pc_filter_ctx *wait_ctx;
    pc_done_fn wait_done;
    pc_hook wait_hook;
    /* MESSAGE: the hosts found on the threadpool */
    char (*hosts)[PC_URL_HOST_MAX + 1];
    size_t nhosts;
};

/* ---- options ------------------------------------------------------------------------------- */

static int read_list(dnsbl *d, enum kind k, const pc_opt *item, char *err, size_t errlen)
{
    static const char *const keys[] = {"zone", "weight", "symbol", "codes", "mask", "action", NULL};
    static const char *const kinds[] = {"DNSBL", "RHSBL", "URIBL"};
    if (d->n >= MAX_LISTS)
        return pc_opt_error(err, errlen, item, "at most %d lists", MAX_LISTS);
    if (!item || item->kind != PC_OPT_MAP)
        return pc_opt_error(err, errlen, item, "a list is a map: { zone, weight }");
    if (pc_opt_check_keys(item, keys, err, errlen) < 0)
        return -1;
    list *l = &d->lists[d->n];
    memset(l, 0, sizeof(*l));
    l->kind = k;
    l->weight = 1;
    pc_str_list zone = {0};
    if (pc_opt_domains(item, "zone", 0, &zone, err, errlen) < 0)
        return -1;
    if (zone.n != 1) {
        pc_str_list_free(&zone);
        return pc_opt_error(err, errlen, item, "zone: one DNS name is required");
    }
    pc_str_list_free(&zone);
    l->zone = pc_opt_str(item, "zone", NULL);
    if (pc_opt_number(item, "weight", -1000, 1000, &l->weight, err, errlen) < 0)
        return -1;
    const char *sym = pc_opt_str(item, "symbol", NULL);
    if (sym) {
        snprintf(l->symbol, sizeof(l->symbol), "%s", sym);
    } else {
        int w = snprintf(l->symbol, sizeof(l->symbol), "%s_", kinds[k]);
        for (const char *z = l->zone; *z && (size_t)w + 1 < sizeof(l->symbol); z++, w++)
            l->symbol[w] =
                *z == '.' || *z == '-' ? '_' : (char)(*z >= 'a' && *z <= 'z' ? *z - 32 : *z);
        l->symbol[w] = '\0';
    }
    const pc_opt *codes = pc_opt_get(item, "codes");
    for (const pc_opt *c = codes && codes->kind == PC_OPT_SEQ ? codes->child : NULL; c;
         c = c->next) {
        struct in_addr a;
        if (c->kind != PC_OPT_SCALAR || inet_pton(AF_INET, c->value, &a) != 1 ||
            (ntohl(a.s_addr) >> 24) != 127)
            return pc_opt_error(err, errlen, c, "codes: an address in 127.0.0.0/8");
        if (l->ncodes >= MAX_CODES)
            return pc_opt_error(err, errlen, c, "codes: at most %d", MAX_CODES);
        l->codes[l->ncodes++] = a.s_addr;
    }
    if (codes && codes->kind != PC_OPT_SEQ)
        return pc_opt_error(err, errlen, codes, "codes: a list of addresses");
    double mask = 0;
    if (pc_opt_number(item, "mask", 0, 255, &mask, err, errlen) < 0)
        return -1;
    l->mask = (unsigned)mask;
    const char *action = pc_opt_str(item, "action", NULL);
    if (action && strcmp(action, "reject") != 0 && strcmp(action, "score") != 0)
        return pc_opt_error(err, errlen, pc_opt_get(item, "action"),
                            "action: reject or score, got %.40s", action);
    l->reject = action && strcmp(action, "reject") == 0;
    if (l->reject && k != K_ADDR)
        return pc_opt_error(err, errlen, pc_opt_get(item, "action"),
                            "action: reject is for address lists (zones)");
    d->n++;
    d->has[k] = 1;
    return 0;
}

static void *dnsbl_init(const pc_opt *options, char *err, size_t errlen)
{
    static const char *const keys[] = {"zones", "domains", "uris", "uri_scan", "uri_max", NULL};
    static const char *const lists[] = {"zones", "domains", "uris"};
    if (pc_opt_check_keys(options, keys, err, errlen) < 0)
        return NULL;
    dnsbl *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->uri_scan = 1024 * 1024;
    double umax = 20;
    if (pc_opt_size(options, "uri_scan", &d->uri_scan, err, errlen) < 0 ||
        pc_opt_number(options, "uri_max", 0, 64, &umax, err, errlen) < 0)
        goto fail;
    d->uri_max = (unsigned)umax;
    for (int k = 0; k < 3; k++) {
        const pc_opt *seq = pc_opt_get(options, lists[k]);
        if (seq && seq->kind != PC_OPT_SEQ) {
            pc_opt_error(err, errlen, seq, "%s: a list of { zone, weight }", lists[k]);
            goto fail;
        }
        for (const pc_opt *it = seq ? seq->child : NULL; it; it = it->next)
            if (read_list(d, (enum kind)k, it, err, errlen) < 0)
                goto fail;
    }
    if (d->n == 0) {
        pc_opt_error(err, errlen, options, "no list given (zones, domains or uris)");
        goto fail;
    }
    return d;
fail:
    free(d);
    return NULL;
}

static void dnsbl_fini(void *self)
{
    free(self);
}

/* ---- questions ----------------------------------------------------------------------------- */

static void finish_wait(sess *st);

static int counts(const list *l, uint32_t a)
{
    uint32_t h = ntohl(a);
    if ((h >> 24) != 127 || (h >> 8) == 0x7fffff)
        return 0;
    if (l->ncodes) {
        for (size_t i = 0; i < l->ncodes; i++)
            if (l->codes[i] == a)
                return 1;
        return 0;
    }
    return l->mask ? (h & 0xff & l->mask) != 0 : 1;
}

static void on_answer(void *arg, const pc_dns_answer *a)
{
    query *q = arg;
    q->req = NULL;
    q->done = 1;
    if (a->status == PC_DNS_NOERROR && a->n > 0 && a->rr[0].len == 4) {
        memcpy(&q->answer, a->rr[0].data, 4);
        uint32_t h = ntohl(q->answer);
        if ((h >> 24) != 127 || (h >> 8) == 0x7fffff)
            q->error = 1; /* not a listing: the list refused the query or answers nonsense */
        else
            q->listed = counts(q->l, q->answer);
    } else if (a->status != PC_DNS_NXDOMAIN && a->status != PC_DNS_NODATA) {
        q->error = 1;
    }
    sess *st = q->st;
    if (st->pending)
        st->pending--;
    finish_wait(st);
}

static void ask(sess *st, const list *l, const char *what, const char *qname, pc_filter_ctx *ctx)
{
    if (st->nq >= MAX_QUERIES)
        return;
    query *q = calloc(1, sizeof(*q));
    if (!q)
        return;
    q->st = st;
    q->l = l;
    snprintf(q->name, sizeof(q->name), "%s", what);
    q->req = pc_dns_query(pc_filter_dns(ctx), qname, PC_DNS_A, on_answer, q);
    if (!q->req) {
        q->done = 1;
        q->error = 1;
    } else {
        st->pending++;
    }
    st->q[st->nq++] = q;
}

/* The client's address, reversed for the lists: 2.0.0.192.zone, or 32 nibbles for IPv6. */
static int reversed(const struct sockaddr *sa, char *out, size_t outlen)
{
    if (!sa)
        return -1;
    const unsigned char *b;
    if (sa->sa_family == AF_INET6) {
        b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) != 0) {
            size_t n = 0;
            for (int i = 15; i >= 0 && n + 4 < outlen; i--)
                n += (size_t)snprintf(out + n, outlen - n, "%x.%x.", b[i] & 15, b[i] >> 4);
            if (n)
                out[n - 1] = '\0';
            return 0;
        }
        b += 12;
    } else if (sa->sa_family == AF_INET) {
        b = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else {
        return -1;
    }
    snprintf(out, outlen, "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
    return 0;
}

static void ask_domain(sess *st, enum kind k, const char *dom, pc_filter_ctx *ctx)
{
    if (!dom || !*dom || strlen(dom) > 200)
        return;
    for (size_t i = 0; i < st->d->n; i++) {
        const list *l = &st->d->lists[i];
        if (l->kind != k)
            continue;
        char qn[300];
        snprintf(qn, sizeof(qn), "%s.%s", dom, l->zone);
        ask(st, l, dom, qn, ctx);
    }
}

/* ---- the session's state ------------------------------------------------------------------- */

static sess *state(const dnsbl *d, pc_filter_ctx *ctx, int make)
{
    void **slot = pc_ctx_session_state(ctx);
    if (!slot)
        return NULL;
    if (!*slot && make) {
        sess *st = calloc(1, sizeof(*st));
        if (st)
            st->d = d;
        *slot = st;
    }
    return *slot;
}

static void free_state(pc_filter_ctx *ctx)
{
    void **slot = pc_ctx_session_state(ctx);
    sess *st = slot ? *slot : NULL;
    if (!st)
        return;
    for (size_t i = 0; i < st->nq; i++) {
        if (st->q[i]->req)
            pc_dns_cancel(st->q[i]->req);
        free(st->q[i]);
    }
    free(st->hosts);
    free(st);
    *slot = NULL;
}

/* ---- verdicts ------------------------------------------------------------------------------ */

static const query *reject_listing(const sess *st)
{
    for (size_t i = 0; i < st->nq; i++)
        if (st->q[i]->done && st->q[i]->listed && st->q[i]->l->reject)
            return st->q[i];
    return NULL;
}

static int reject_pending(const sess *st)
{
    for (size_t i = 0; i < st->nq; i++)
        if (!st->q[i]->done && st->q[i]->l->reject)
            return 1;
    return 0;
}

static void answer_mail(sess *st, pc_filter_ctx *ctx, pc_done_fn done)
{
    const query *q = reject_listing(st);
    pc_verdict v = {.action = PC_CONTINUE};
    char text[400];
    if (q) {
        char a[20];
        struct in_addr in = {.s_addr = q->answer};
        inet_ntop(AF_INET, &in, a, sizeof(a));
        snprintf(text, sizeof(text), "Service unavailable; client [%s] blocked using %s (%s)",
                 pc_ctx_client_ip(ctx) ? pc_ctx_client_ip(ctx) : "?", q->l->zone, a);
        v = (pc_verdict){.action = PC_REJECT,
                         .code = 554,
                         .enhanced = "5.7.1",
                         .text = text,
                         .symbol = q->l->symbol};
        pc_filter_log(ctx, 5, "dnsbl=listed zone=%s answer=%s action=reject", q->l->zone, a);
    }
    done(ctx, &v);
}

static void answer_message(sess *st, pc_filter_ctx *ctx, pc_done_fn done)
{
    int listed = 0;
    for (size_t i = 0; i < st->nq; i++) {
        const query *q = st->q[i];
        if (!q->done) {
            pc_filter_log(ctx, 6, "dnsbl=pending zone=%s name=%s", q->l->zone, q->name);
            continue;
        }
        if (q->error) {
            char a[20] = "-";
            if (q->answer) {
                struct in_addr in = {.s_addr = q->answer};
                inet_ntop(AF_INET, &in, a, sizeof(a));
            }
            pc_filter_log(ctx, 4, "dnsbl=error zone=%s name=%s answer=%s", q->l->zone, q->name, a);
            continue;
        }
        if (!q->listed)
            continue;
        /* one symbol per list, whatever number of its names were listed */
        int first = 1;
        for (size_t k = 0; k < i; k++)
            if (st->q[k]->l == q->l && st->q[k]->listed && !st->q[k]->error)
                first = 0;
        char a[20];
        struct in_addr in = {.s_addr = q->answer};
        inet_ntop(AF_INET, &in, a, sizeof(a));
        pc_filter_log(ctx, 6, "dnsbl=listed zone=%s name=%s answer=%s weight=%.2f", q->l->zone,
                      q->name, a, q->l->weight);
        if (first) {
            pc_ctx_symbol(ctx, q->l->symbol, q->l->weight);
            listed++;
        }
    }
    pc_verdict v = {.action = listed ? PC_TAG : PC_CONTINUE};
    done(ctx, &v);
}

/* An answer came: the hook waiting for it may go on now. */
static void finish_wait(sess *st)
{
    if (!st->wait_ctx)
        return;
    if (st->wait_hook == PC_HOOK_MAIL ? reject_pending(st) && !reject_listing(st) : st->pending > 0)
        return;
    pc_filter_ctx *ctx = st->wait_ctx;
    pc_done_fn done = st->wait_done;
    st->wait_ctx = NULL;
    if (st->wait_hook == PC_HOOK_MAIL)
        answer_mail(st, ctx, done);
    else
        answer_message(st, ctx, done);
}

/* ---- URI hosts, read on the threadpool ----------------------------------------------------- */

typedef struct uri_job {
    sess *st;
    pc_message *msg;
    pc_done_fn done;
    size_t scan, max;
    char (*hosts)[PC_URL_HOST_MAX + 1];
    size_t n;
} uri_job;

/* The name a URI list is asked for: the host's registered domain, approximated without the public
 * suffix list as its last two labels, or three when the last is a two-letter country code and the
 * one before it is short (co.uk, com.au). */
static const char *registered(const char *host)
{
    const char *d[3] = {NULL, NULL, NULL}; /* the last dot, the one before, the one before that */
    size_t nd = 0;
    for (const char *p = host + strlen(host); p > host && nd < 3; p--)
        if (p[-1] == '.')
            d[nd++] = p - 1;
    if (nd < 2)
        return host; /* two labels or fewer: the host itself */
    const char *sld = d[1] + 1;
    if (strlen(d[0] + 1) == 2 && (size_t)(d[0] - sld) <= 3)
        return nd == 3 ? d[2] + 1 : host;
    return sld;
}

static void add_host(void *ud, const char *host, size_t len)
{
    uri_job *j = ud;
    (void)len;
    const char *r = registered(host);
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->hosts[i], r) == 0)
            return;
    if (j->n < j->max)
        snprintf(j->hosts[j->n++], sizeof(j->hosts[0]), "%s", r);
}

static void uri_work(void *arg)
{
    uri_job *j = arg;
    size_t len;
    const char *p = pc_message_map(j->msg, &len);
    if (!p)
        return;
    if (len > j->scan)
        len = j->scan;
    pc_url_hosts(p, len, j->max, add_host, j);
}

static void uri_after(pc_filter_ctx *ctx, void *arg)
{
    uri_job *j = arg;
    if (pc_ctx_cancelled(ctx)) {
        free(j->hosts);
        free(j);
        return;
    }
    sess *st = j->st;
    for (size_t i = 0; i < j->n; i++)
        ask_domain(st, K_URI, j->hosts[i], ctx);
    free(j->hosts);
    st->wait_ctx = ctx;
    st->wait_done = j->done;
    st->wait_hook = PC_HOOK_MESSAGE;
    free(j);
    finish_wait(st);
}

/* ---- hooks --------------------------------------------------------------------------------- */

static void dnsbl_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    const dnsbl *d = self;
    pc_verdict cont = {.action = PC_CONTINUE};
    if (hook == PC_HOOK_CLOSE) {
        free_state(ctx);
        done(ctx, &cont);
        return;
    }
    sess *st = state(d, ctx, 1);
    if (!st) {
        done(ctx, &cont);
        return;
    }
    if (hook == PC_HOOK_CONNECT) {
        char rev[80];
        if (d->has[K_ADDR] && reversed(pc_ctx_client_addr(ctx), rev, sizeof(rev)) == 0) {
            for (size_t i = 0; i < d->n; i++) {
                if (d->lists[i].kind != K_ADDR)
                    continue;
                char qn[400];
                snprintf(qn, sizeof(qn), "%s.%s", rev, d->lists[i].zone);
                ask(st, &d->lists[i], pc_ctx_client_ip(ctx) ? pc_ctx_client_ip(ctx) : "?", qn, ctx);
            }
        }
        done(ctx, &cont); /* the answers come while the session goes on */
        return;
    }
    if (hook == PC_HOOK_MAIL) {
        if (d->has[K_DOMAIN] && !st->domains_started) {
            st->domains_started = 1; /* once per session: the HELO and the first sender */
            const char *helo = pc_ctx_helo(ctx), *from = pc_ctx_sender(ctx);
            const char *at = from ? strrchr(from, '@') : NULL;
            if (at && at[1])
                ask_domain(st, K_DOMAIN, at + 1, ctx);
            if (helo && (!at || strcasecmp(helo, at + 1) != 0))
                ask_domain(st, K_DOMAIN, helo, ctx);
        }
        if (reject_listing(st) || !reject_pending(st)) {
            answer_mail(st, ctx, done);
            return;
        }
        st->wait_ctx = ctx;
        st->wait_done = done;
        st->wait_hook = PC_HOOK_MAIL;
        return;
    }
    if (hook == PC_HOOK_MESSAGE) {
        pc_message *m = pc_ctx_message(ctx);
        if (d->has[K_URI] && m && d->uri_max) {
            uri_job *j = calloc(1, sizeof(*j));
            if (j && (j->hosts = calloc(d->uri_max, sizeof(*j->hosts)))) {
                *j = (uri_job){.st = st,
                               .msg = m,
                               .done = done,
                               .scan = d->uri_scan,
                               .max = d->uri_max,
                               .hosts = j->hosts};
                if (pc_filter_offload_long(ctx, uri_work, uri_after, j) == 0)
                    return;
                free(j->hosts);
            }
            free(j);
        }
        st->wait_ctx = ctx;
        st->wait_done = done;
        st->wait_hook = PC_HOOK_MESSAGE;
        finish_wait(st);
        return;
    }
    done(ctx, &cont);
}

/* The chain gave up waiting, or the session ended: stop waiting (the questions stay for later
 * hooks); at CLOSE everything goes. */
static void dnsbl_cancel(void *self, pc_filter_ctx *ctx)
{
    sess *st = state(self, ctx, 0);
    if (st && st->wait_ctx == ctx)
        st->wait_ctx = NULL;
}

const pc_filter pcf_dnsbl_filter = {
    .abi = PC_FILTER_ABI,
    .name = "dnsbl",
    .hooks = PC_HOOK_BIT(PC_HOOK_CONNECT) | PC_HOOK_BIT(PC_HOOK_MAIL) |
             PC_HOOK_BIT(PC_HOOK_MESSAGE) | PC_HOOK_BIT(PC_HOOK_CLOSE),
    .init = dnsbl_init,
    .fini = dnsbl_fini,
    .run = dnsbl_run,
    .cancel = dnsbl_cancel,
};
