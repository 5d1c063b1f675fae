/* greylist.c — greylisting at RCPT (as postgrey does), on the gateway's state store, so that
 * several gateways sharing Redis see the same triplets.
 *
 * The triplet is (the client's network — its /24 or /64 — or, after an SPF pass, the SPF-validated
 * domain; the sender; the recipient). The first time a triplet is seen the recipient gets
 * `451 4.7.1` with the time to wait; a retry after `delay` and within `retry_window` passes, and
 * allow-lists the client's network (or SPF domain) for `lifetime`, so its later mail is not delayed
 * again. Keying on the SPF domain lets large senders that retry from another address through.
 * Exempt: authenticated users, trusted networks, `exempt_networks`, and clients listed on one of
 * the `dnswl` zones (asked through the gateway's resolver at the first RCPT, its cache answering
 * the next). When the store cannot answer, `on_unavailable` decides (continue, the default, or
 * tempfail).
 *
 * With `stage: data` the check moves to the end of DATA and the triplet's third part is a digest
 * of the message instead of the recipient — SHA-256 over its Message-ID field and its body (the
 * same bytes a retrying MTA sends again; the gateway's own header changes are not in them), taken
 * on the threadpool — so that `min_score` can spare messages the filters before it scored low:
 * only a message whose score is at least min_score is greylisted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/evp.h>

#include "portcullis/dns.h"
#include "portcullis/filter.h"
#include "portcullis/store.h"

#define MAX_DNSWL 8

typedef struct greyf {
    unsigned delay_s, window_s, lifetime_s;
    unsigned v4_bits, v6_bits;
    int spf_key, unavail_tempfail;
    int at_data;      /* stage: data */
    int has_min;      /* min_score given */
    double min_score; /* stage data: greylist only from this score on */
    pc_cidr_list exempt;
    pc_str_list dnswl;
} greyf;

typedef struct gjob gjob;

typedef struct wlq { /* one DNSWL question */
    gjob *j;
    pc_dns_req *req; /* NULL once answered */
} wlq;

struct gjob {
    greyf *g;
    pc_filter_ctx *ctx;
    pc_done_fn done;
    pc_store_req *req;
    wlq dns[MAX_DNSWL];
    size_t dns_pending;
    int listed;
    char client[300]; /* "n:192.0.2.0/24" or "d:example.com" */
    char triplet[80];
    /* stage data: the digest is taken on the threadpool */
    pc_message *msg; /* a reference while hashing */
    char msgid[512]; /* the Message-ID field's value */
    char digest[65]; /* hex SHA-256, "" when it could not be taken */
    int hashing;     /* offloaded: after() frees the job */
    int cancelled;   /* cancel() came while hashing */
};

static const char *const unavail_names[] = {"continue", "tempfail", NULL};
static const char *const stage_names[] = {"rcpt", "data", NULL};

/* The client's network as text: the address with its host bits cleared, and the prefix. */
static void network_of(const struct sockaddr *sa, unsigned v4, unsigned v6, char *out, size_t n)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (sa && sa->sa_family == AF_INET6) {
        struct in6_addr x = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&x)) {
            struct in_addr y;
            memcpy(&y, x.s6_addr + 12, 4);
            uint32_t m = v4 ? htonl(~0u << (32 - v4)) : 0;
            y.s_addr &= m;
            inet_ntop(AF_INET, &y, a, sizeof(a));
            snprintf(out, n, "n:%s/%u", a, v4);
            return;
        }
        for (unsigned i = 0; i < 16; i++) {
            unsigned keep = v6 > i * 8 ? (v6 - i * 8 >= 8 ? 8 : v6 - i * 8) : 0;
            x.s6_addr[i] &= (unsigned char)(0xff00u >> keep);
        }
        inet_ntop(AF_INET6, &x, a, sizeof(a));
        snprintf(out, n, "n:%s/%u", a, v6);
    } else if (sa && sa->sa_family == AF_INET) {
        struct in_addr y = ((const struct sockaddr_in *)sa)->sin_addr;
        y.s_addr &= v4 ? htonl(~0u << (32 - v4)) : 0;
        inet_ntop(AF_INET, &y, a, sizeof(a));
        snprintf(out, n, "n:%s/%u", a, v4);
    } else {
        snprintf(out, n, "n:unknown");
    }
}

static void finish(gjob *j, const pc_verdict *v)
{
    void **slot = pc_ctx_session_state(j->ctx);
    if (slot && *slot == j)
        *slot = NULL;
    pc_filter_ctx *ctx = j->ctx;
    pc_done_fn done = j->done;
    free(j);
    done(ctx, v);
}

static void unavailable(gjob *j, const pc_store_reply *r)
{
    pc_filter_log(j->ctx, 4, "greylist=unavailable store=%s status=%s action=%s",
                  pc_store_backend_name(pc_filter_store(j->ctx)), pc_store_status_name(r->status),
                  j->g->unavail_tempfail ? "tempfail" : "continue");
    if (j->g->unavail_tempfail)
        finish(j, &(pc_verdict){.action = PC_TEMPFAIL,
                                .code = 451,
                                .enhanced = "4.3.0",
                                .text = "Temporary failure, please try again later"});
    else
        finish(j, &(pc_verdict){.action = PC_CONTINUE});
}

static void delay_reply(gjob *j, long wait)
{
    char text[160];
    snprintf(text, sizeof(text), "Greylisted, please try again in %ld seconds", wait);
    if (j->g->at_data)
        pc_filter_log(j->ctx, 6, "greylist=delayed stage=data client=%s digest=%.16s retry_in=%ld",
                      j->client + 2, j->digest, wait);
    else
        pc_filter_log(j->ctx, 6, "greylist=delayed client=%s rcpt=<%s> retry_in=%ld", j->client + 2,
                      pc_ctx_rcpt(j->ctx) ? pc_ctx_rcpt(j->ctx) : "", wait);
    finish(j, &(pc_verdict){.action = PC_TEMPFAIL,
                            .code = 451,
                            .enhanced = "4.7.1",
                            .text = text,
                            .symbol = "GREYLIST"});
}

static void triplet_added(void *arg, const pc_store_reply *r)
{
    gjob *j = arg;
    j->req = NULL;
    long now = (long)time(NULL);
    if (r->status == PC_STORE_OK) { /* first seen */
        delay_reply(j, (long)j->g->delay_s);
        return;
    }
    if (r->status != PC_STORE_EXISTS) {
        unavailable(j, r);
        return;
    }
    long first = r->value ? strtol(r->value, NULL, 10) : now;
    long waited = now - first;
    if (waited < (long)j->g->delay_s) {
        delay_reply(j, (long)j->g->delay_s - waited);
        return;
    }
    /* a retry in time: the client is allow-listed; nobody waits for that write */
    char key[320];
    snprintf(key, sizeof(key), "grey:ok:%s", j->client);
    pc_store_set(pc_filter_store(j->ctx), key, "1", j->g->lifetime_s, NULL, NULL);
    pc_filter_log(j->ctx, 6, "greylist=passed client=%s waited=%ld", j->client + 2, waited);
    finish(j, &(pc_verdict){.action = PC_CONTINUE});
}

static void client_checked(void *arg, const pc_store_reply *r)
{
    gjob *j = arg;
    j->req = NULL;
    if (r->status == PC_STORE_OK) {
        pc_filter_log(j->ctx, 7, "greylist=allowed client=%s", j->client + 2);
        finish(j, &(pc_verdict){.action = PC_CONTINUE});
        return;
    }
    if (r->status != PC_STORE_MISSING) {
        unavailable(j, r);
        return;
    }
    char now[24];
    snprintf(now, sizeof(now), "%ld", (long)time(NULL));
    /* the triplet lives as long as a retry may come */
    j->req = pc_store_add(pc_filter_store(j->ctx), j->triplet, now, j->g->delay_s + j->g->window_s,
                          triplet_added, j);
    if (!j->req)
        unavailable(j, &(pc_store_reply){.status = PC_STORE_UNAVAILABLE});
}

/* The client's address reversed for a DNS list: "4.3.2.1" or 32 nibbles. */
static int reversed(const struct sockaddr *sa, char *out, size_t n)
{
    if (sa && sa->sa_family == AF_INET) {
        const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        snprintf(out, n, "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
            snprintf(out, n, "%u.%u.%u.%u", b[15], b[14], b[13], b[12]);
            return 0;
        }
        size_t o = 0;
        for (int i = 15; i >= 0 && o + 4 < n; i--)
            o += (size_t)snprintf(out + o, n - o, "%x.%x.", b[i] & 15, b[i] >> 4);
        if (o)
            out[o - 1] = '\0';
        return 0;
    }
    return -1;
}

static void check_store(gjob *j)
{
    pc_filter_ctx *ctx = j->ctx;
    if (j->listed) {
        pc_filter_log(ctx, 6, "greylist=exempt reason=dnswl");
        finish(j, &(pc_verdict){.action = PC_CONTINUE});
        return;
    }
    char key[320];
    snprintf(key, sizeof(key), "grey:ok:%s", j->client);
    pc_store *st = pc_filter_store(ctx);
    if (st)
        j->req = pc_store_get(st, key, client_checked, j);
    if (!j->req) {
        if (!st)
            pc_filter_log(ctx, 3, "greylist: no state store (state: in the configuration)");
        unavailable(j, &(pc_store_reply){.status = PC_STORE_UNAVAILABLE});
    }
}

static void dnswl_answer(void *arg, const pc_dns_answer *a)
{
    wlq *q = arg;
    gjob *j = q->j;
    q->req = NULL;
    for (size_t i = 0; a->status == PC_DNS_NOERROR && i < a->n; i++)
        if (a->rr[i].len == 4 && a->rr[i].data[0] == 127)
            j->listed = 1;
    if (--j->dns_pending == 0)
        check_store(j);
}

/* Lower case, bounded. */
static void lower(char *out, size_t n, const char *in)
{
    size_t i = 0;
    for (; in && in[i] && i + 1 < n; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
    out[i] = '\0';
}

/* After the key is known: the DNSWL questions, then the store. */
static void lookup(gjob *j)
{
    pc_filter_ctx *ctx = j->ctx;
    void **slot = pc_ctx_session_state(ctx);
    if (slot)
        *slot = j; /* for cancel() */
    char rev[80];
    if (j->g->dnswl.n && reversed(pc_ctx_client_addr(ctx), rev, sizeof(rev)) == 0) {
        for (size_t i = 0; i < j->g->dnswl.n && i < MAX_DNSWL; i++) {
            char qn[400];
            snprintf(qn, sizeof(qn), "%s.%s", rev, j->g->dnswl.v[i]);
            j->dns[i].j = j;
            j->dns[i].req =
                pc_dns_query(pc_filter_dns(ctx), qn, PC_DNS_A, dnswl_answer, &j->dns[i]);
            if (j->dns[i].req)
                j->dns_pending++;
        }
        if (j->dns_pending)
            return;
    }
    check_store(j);
}

/* Threadpool: SHA-256 of the Message-ID and the body (from the first empty line on). */
static void digest_work(void *arg)
{
    gjob *j = arg;
    size_t n = 0;
    const unsigned char *p = pc_message_map(j->msg, &n);
    if (!p)
        return;
    size_t body = n;
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            body = i + 4;
            break;
        }
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(c, j->msgid, strlen(j->msgid) + 1) == 1 &&
        EVP_DigestUpdate(c, p + body, n - body) == 1 && EVP_DigestFinal_ex(c, md, &mdlen) == 1 &&
        mdlen == sizeof(md))
        for (size_t i = 0; i < sizeof(md); i++)
            snprintf(j->digest + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(c);
}

static void digest_after(pc_filter_ctx *ctx, void *arg)
{
    gjob *j = arg;
    j->hashing = 0;
    pc_message_unref(j->msg);
    j->msg = NULL;
    if (j->cancelled || pc_ctx_cancelled(ctx)) {
        void **slot = pc_ctx_session_state(ctx);
        if (slot && *slot == j)
            *slot = NULL;
        free(j);
        return;
    }
    if (!j->digest[0]) {
        pc_filter_log(ctx, 4, "greylist=unavailable reason=\"no digest of the message\"");
        unavailable(j, &(pc_store_reply){.status = PC_STORE_UNAVAILABLE});
        return;
    }
    char s_low[256];
    lower(s_low, sizeof(s_low), pc_ctx_sender(ctx));
    const char *parts[] = {j->client, s_low, j->digest};
    pc_store_hash_key(j->triplet, sizeof(j->triplet), "grey:m:", parts, 3);
    lookup(j);
}

static void grey_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    greyf *g = self;
    pc_verdict cont = {.action = PC_CONTINUE};
    if (hook != (g->at_data ? PC_HOOK_MESSAGE : PC_HOOK_RCPT) || pc_ctx_user(ctx) ||
        pc_ctx_trusted(ctx) || pc_cidr_match(&g->exempt, pc_ctx_client_addr(ctx))) {
        done(ctx, &cont);
        return;
    }
    if (g->at_data && g->has_min && pc_ctx_score(ctx) < g->min_score) {
        pc_filter_log(ctx, 7, "greylist=exempt reason=score score=%.2f min_score=%.2f",
                      pc_ctx_score(ctx), g->min_score);
        done(ctx, &cont);
        return;
    }
    gjob *j = calloc(1, sizeof(*j));
    if (!j) {
        done(ctx, &cont);
        return;
    }
    *j = (gjob){.g = g, .ctx = ctx, .done = done};
    const char *spf = pc_ctx_result_get(ctx, "spf.result");
    const char *dom = pc_ctx_result_get(ctx, "spf.domain");
    if (g->spf_key && spf && strcmp(spf, "pass") == 0 && dom && *dom && strlen(dom) < 250) {
        snprintf(j->client, sizeof(j->client), "d:%s", dom);
        for (char *p = j->client; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    } else {
        network_of(pc_ctx_client_addr(ctx), g->v4_bits, g->v6_bits, j->client, sizeof(j->client));
    }
    if (g->at_data) {
        pc_message *m = pc_ctx_message(ctx);
        if (m && pc_message_header(m, "Message-ID", 0, j->msgid, sizeof(j->msgid)) < 0)
            j->msgid[0] = '\0';
        j->msg = m ? pc_message_ref(m) : NULL;
        void **slot = pc_ctx_session_state(ctx);
        if (slot)
            *slot = j;
        j->hashing = 1;
        if (!m || pc_filter_offload_long(ctx, digest_work, digest_after, j) < 0) {
            j->hashing = 0;
            if (j->msg)
                pc_message_unref(j->msg);
            j->msg = NULL;
            unavailable(j, &(pc_store_reply){.status = PC_STORE_UNAVAILABLE});
        }
        return;
    }
    char s_low[256], r_low[256];
    lower(s_low, sizeof(s_low), pc_ctx_sender(ctx));
    lower(r_low, sizeof(r_low), pc_ctx_rcpt(ctx));
    const char *parts[] = {j->client, s_low, r_low};
    pc_store_hash_key(j->triplet, sizeof(j->triplet), "grey:t:", parts, 3);
    lookup(j);
}

static void grey_cancel(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    void **slot = pc_ctx_session_state(ctx);
    gjob *j = slot ? *slot : NULL;
    if (!j || j->ctx != ctx)
        return;
    *slot = NULL;
    if (j->hashing) { /* the threadpool has it: digest_after() frees it */
        j->cancelled = 1;
        return;
    }
    if (j->req)
        pc_store_cancel(j->req);
    for (size_t i = 0; i < MAX_DNSWL; i++)
        if (j->dns[i].req)
            pc_dns_cancel(j->dns[i].req);
    free(j);
}

static void grey_fini(void *self)
{
    greyf *g = self;
    if (g) {
        pc_cidr_list_free(&g->exempt);
        pc_str_list_free(&g->dnswl);
    }
    free(g);
}

static void *grey_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const known[] = {"delay",           "retry_window", "lifetime",
                                        "ipv4_prefix",     "ipv6_prefix",  "spf_domain",
                                        "exempt_networks", "dnswl",        "on_unavailable",
                                        "stage",           "min_score",    NULL};
    if (pc_opt_check_keys(o, known, err, errlen) < 0)
        return NULL;
    greyf *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    unsigned delay = 300000, window = 2 * 86400000u, life = 35u * 86400u * 1000u;
    double v4 = 24, v6 = 64;
    int unavail = 0, stage = 0;
    g->spf_key = 1;
    if (pc_opt_duration(o, "delay", &delay, err, errlen) < 0 ||
        pc_opt_duration(o, "retry_window", &window, err, errlen) < 0 ||
        pc_opt_duration(o, "lifetime", &life, err, errlen) < 0 ||
        pc_opt_number(o, "ipv4_prefix", 8, 32, &v4, err, errlen) < 0 ||
        pc_opt_number(o, "ipv6_prefix", 16, 128, &v6, err, errlen) < 0 ||
        pc_opt_bool(o, "spf_domain", &g->spf_key, err, errlen) < 0 ||
        pc_opt_cidrs(o, "exempt_networks", &g->exempt, err, errlen) < 0 ||
        pc_opt_enum(o, "on_unavailable", unavail_names, &unavail, err, errlen) < 0 ||
        pc_opt_enum(o, "stage", stage_names, &stage, err, errlen) < 0)
        goto fail;
    g->at_data = stage == 1;
    if (pc_opt_get(o, "min_score")) {
        if (!g->at_data) {
            pc_opt_error(err, errlen, pc_opt_get(o, "min_score"),
                         "min_score: only with stage: data (the score is known after DATA)");
            goto fail;
        }
        if (pc_opt_number(o, "min_score", -1e6, 1e6, &g->min_score, err, errlen) < 0)
            goto fail;
        g->has_min = 1;
    }
    if (pc_opt_domains(o, "dnswl", 0, &g->dnswl, err, errlen) < 0)
        goto fail;
    if (g->dnswl.n > MAX_DNSWL) {
        pc_opt_error(err, errlen, pc_opt_get(o, "dnswl"), "dnswl: at most %d zones", MAX_DNSWL);
        goto fail;
    }
    if (delay < 1000 || window < 1000 || life < 1000) {
        pc_opt_error(err, errlen, o, "delay, retry_window and lifetime: at least 1s");
        goto fail;
    }
    g->delay_s = delay / 1000;
    g->window_s = window / 1000;
    g->lifetime_s = life / 1000;
    g->v4_bits = (unsigned)v4;
    g->v6_bits = (unsigned)v6;
    g->unavail_tempfail = unavail == 1;
    return g;
fail:
    grey_fini(g);
    return NULL;
}

const pc_filter pcf_greylist_filter = {
    .abi = PC_FILTER_ABI,
    .name = "greylist",
    .hooks = PC_HOOK_BIT(PC_HOOK_RCPT) | PC_HOOK_BIT(PC_HOOK_MESSAGE),
    .init = grey_init,
    .fini = grey_fini,
    .run = grey_run,
    .cancel = grey_cancel,
};
