/* spf.c — SPF (RFC 7208) with libspf2: the MAIL FROM identity, or the HELO identity for the null
 * sender, against the client's address (from PROXY where trusted).
 *
 * libspf2 gets a DNS layer of our own that answers from the answers this check has fetched so far,
 * and nothing else: a name it does not have yet is noted and answered "try again". The filter
 * then asks those names through the gateway's resolver, on the loop, and runs libspf2 again, until
 * an evaluation needs nothing new (bounded: each run can only ask for names the last one found, and
 * RFC 7208's 10-lookup limit bounds them). libspf2 never waits on DNS and never runs on a
 * threadpool thread; the evaluation itself is a few microseconds of CPU on the loop.
 *
 * The result goes into Received-SPF and the message's Authentication-Results (spf=RESULT
 * smtp.mailfrom=DOMAIN, or smtp.helo=NAME), becomes the symbol SPF_RESULT with the configured
 * score, and may be given an action: by default none rejects (DMARC decides); `temperror: tempfail`
 * answers 451 4.4.3. More than two void lookups (RFC 7208 §4.6.4) is a permerror. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spf2/spf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portcullis/dns.h"
#include "portcullis/filter.h"

#define MAX_NAMES 64 /* answers held per check */
#define MAX_RUNS 24
#define MAX_VOID 2

enum { R_PASS, R_FAIL, R_SOFTFAIL, R_NEUTRAL, R_NONE, R_TEMPERROR, R_PERMERROR, R__COUNT };
static const char *const rnames[R__COUNT] = {"pass", "fail",      "softfail", "neutral",
                                             "none", "temperror", "permerror"};

typedef struct spff {
    double score[R__COUNT];
    int reject_fail;   /* fail: reject 550 5.7.23 */
    int tempfail_temp; /* temperror: 451 4.4.3 */
} spff;

typedef struct ans {
    char name[256];
    int type;
    pc_dns_status status;
    unsigned ttl;
    size_t n;
    unsigned char (*data)[256]; /* each record's data (A/AAAA bytes, names, TXT text) */
    size_t *len;
    int fetched;
    pc_dns_req *req;
    struct check *c;
} ans;

typedef struct check {
    const spff *f;
    pc_filter_ctx *ctx;
    pc_done_fn done;
    ans a[MAX_NAMES];
    size_t na;
    size_t pending;
    int missing; /* the last run asked for names not fetched yet */
    int voids;   /* NXDOMAIN or no data answers given in the last run */
    int temps;   /* answers that failed (timeout, SERVFAIL) given in the last run */
    int runs;
    char identity[300];
    int helo_identity;
    SPF_dns_server_t dns;
} check;

/* ---- the DNS layer libspf2 sees ------------------------------------------------------------ */

static ans *find(check *c, const char *name, int type)
{
    for (size_t i = 0; i < c->na; i++)
        if (c->a[i].type == type && strcasecmp(c->a[i].name, name) == 0)
            return &c->a[i];
    return NULL;
}

static SPF_dns_rr_t *lookup(SPF_dns_server_t *d, const char *domain, ns_type type, int cache)
{
    (void)cache;
    check *c = d->hook;
    if (type == ns_t_spf) /* the SPF RR type is obsolete (RFC 7208 §3.1): never published */
        return SPF_dns_rr_new_init(d, domain, type, 0, NO_DATA);
    ans *a = find(c, domain, type);
    if (!a) {
        if (c->na < MAX_NAMES && strlen(domain) < sizeof(c->a[0].name)) {
            a = &c->a[c->na++];
            memset(a, 0, sizeof(*a));
            snprintf(a->name, sizeof(a->name), "%s", domain);
            a->type = type;
            a->c = c;
        }
        c->missing = 1;
        return SPF_dns_rr_new_init(d, domain, type, 0, TRY_AGAIN);
    }
    if (!a->fetched) {
        c->missing = 1;
        return SPF_dns_rr_new_init(d, domain, type, 0, TRY_AGAIN);
    }
    if (a->status == PC_DNS_NXDOMAIN || a->status == PC_DNS_NODATA || a->n == 0) {
        if (a->status == PC_DNS_NXDOMAIN || a->status == PC_DNS_NODATA)
            c->voids++;
        else
            c->temps++;
        return SPF_dns_rr_new_init(d, domain, type, (int)a->ttl,
                                   a->status == PC_DNS_NXDOMAIN ? HOST_NOT_FOUND
                                   : a->status == PC_DNS_NODATA ? NO_DATA
                                                                : TRY_AGAIN);
    }
    SPF_dns_rr_t *rr = SPF_dns_rr_new_init(d, domain, type, (int)a->ttl, NETDB_SUCCESS);
    if (!rr)
        return NULL;
    for (size_t i = 0; i < a->n; i++) {
        size_t need = type == ns_t_a      ? sizeof(struct in_addr)
                      : type == ns_t_aaaa ? sizeof(struct in6_addr)
                                          : a->len[i] + 1;
        if (SPF_dns_rr_buf_realloc(rr, (int)i, need) != SPF_E_SUCCESS)
            break;
        if (type == ns_t_a || type == ns_t_aaaa) {
            memcpy(rr->rr[i], a->data[i], type == ns_t_a ? 4 : 16);
        } else {
            memcpy(rr->rr[i]->txt, a->data[i], a->len[i]);
            rr->rr[i]->txt[a->len[i]] = '\0';
        }
        rr->num_rr = (int)i + 1;
    }
    return rr;
}

/* ---- running libspf2 ----------------------------------------------------------------------- */

static void free_check(check *c)
{
    for (size_t i = 0; i < c->na; i++) {
        if (c->a[i].req)
            pc_dns_cancel(c->a[i].req);
        free(c->a[i].data);
        free(c->a[i].len);
    }
    free(c);
}

static void on_answer(void *arg, const pc_dns_answer *ad);

static void finish(check *c, int r, const char *comment)
{
    pc_filter_ctx *ctx = c->ctx;
    const spff *f = c->f;
    /* Received-SPF (RFC 7208 §9.1), written here so that it always says the result given */
    char rs[900], cm[240];
    size_t k = 0;
    for (const char *p = comment ? comment : ""; *p && k + 1 < sizeof(cm); p++)
        cm[k++] = (*p == '(' || *p == ')' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                      ? ' '
                      : *p;
    cm[k] = '\0';
    const char *ip = pc_ctx_client_ip(ctx), *helo = pc_ctx_helo(ctx), *from = pc_ctx_sender(ctx);
    if (snprintf(rs, sizeof(rs),
                 "%s (%.200s%s%s) client-ip=%s; envelope-from=\"%.200s\"; helo=%.100s; "
                 "identity=%s;",
                 rnames[r], c->identity, cm[0] ? ": " : "", cm, ip ? ip : "unknown",
                 from ? from : "", helo ? helo : "unknown",
                 c->helo_identity ? "helo" : "mailfrom") > 0)
        pc_ctx_result_set(ctx, "spf.received", rs);
    char ar[400];
    snprintf(ar, sizeof(ar), "spf=%s smtp.%s=%.300s", rnames[r],
             c->helo_identity ? "helo" : "mailfrom", c->identity);
    pc_ctx_authres(ctx, ar);
    pc_ctx_result_set(ctx, "spf.result", rnames[r]);
    pc_ctx_result_set(ctx, "spf.domain", c->identity);
    char sym[32];
    snprintf(sym, sizeof(sym), "SPF_%s", rnames[r]);
    for (char *p = sym; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    pc_ctx_symbol(ctx, sym, f->score[r]);
    pc_filter_log(ctx, 6, "spf=%s identity=%s runs=%d comment=\"%.200s\"", rnames[r], c->identity,
                  c->runs, comment ? comment : "");
    pc_verdict v = {.action = PC_CONTINUE};
    char text[300];
    if (r == R_FAIL && f->reject_fail) {
        snprintf(text, sizeof(text), "SPF check failed for %.200s", c->identity);
        v = (pc_verdict){.action = PC_REJECT, .code = 550, .enhanced = "5.7.23", .text = text};
    } else if (r == R_TEMPERROR && f->tempfail_temp) {
        v = (pc_verdict){.action = PC_TEMPFAIL,
                         .code = 451,
                         .enhanced = "4.4.3",
                         .text = "SPF check could not be completed, try again later"};
    }
    pc_done_fn done = c->done;
    void **slot = pc_ctx_session_state(ctx);
    if (slot && *slot == c)
        *slot = NULL;
    free_check(c);
    done(ctx, &v);
}

static int result_of(SPF_result_t r)
{
    switch (r) {
    case SPF_RESULT_PASS: return R_PASS;
    case SPF_RESULT_FAIL: return R_FAIL;
    case SPF_RESULT_SOFTFAIL: return R_SOFTFAIL;
    case SPF_RESULT_NEUTRAL: return R_NEUTRAL;
    case SPF_RESULT_NONE: return R_NONE;
    case SPF_RESULT_TEMPERROR: return R_TEMPERROR;
    default: return R_PERMERROR;
    }
}

static void evaluate(check *c)
{
    c->runs++;
    c->missing = 0;
    c->voids = 0;
    c->temps = 0;
    SPF_server_t *srv = SPF_server_new_dns(&c->dns, 0);
    SPF_request_t *req = srv ? SPF_request_new(srv) : NULL;
    SPF_response_t *resp = NULL;
    int r = R_TEMPERROR;
    char comment[300] = "";
    if (req) {
        const struct sockaddr *sa = pc_ctx_client_addr(c->ctx);
        if (sa && sa->sa_family == AF_INET)
            SPF_request_set_ipv4(req, ((const struct sockaddr_in *)sa)->sin_addr);
        else if (sa && sa->sa_family == AF_INET6)
            SPF_request_set_ipv6(req, ((const struct sockaddr_in6 *)sa)->sin6_addr);
        const char *helo = pc_ctx_helo(c->ctx);
        if (helo)
            SPF_request_set_helo_dom(req, helo);
        if (c->helo_identity) {
            char pm[320];
            snprintf(pm, sizeof(pm), "postmaster@%s", c->identity);
            SPF_request_set_env_from(req, pm);
        } else {
            SPF_request_set_env_from(req, pc_ctx_sender(c->ctx));
        }
        SPF_request_query_mailfrom(req, &resp);
        if (resp) {
            r = result_of(SPF_response_result(resp));
            const char *hc = SPF_response_get_header_comment(resp);
            snprintf(comment, sizeof(comment), "%s", hc ? hc : "");
        }
    }
    if (resp)
        SPF_response_free(resp);
    if (req)
        SPF_request_free(req);
    if (srv)
        SPF_server_free(srv);
    if (c->missing && c->runs < MAX_RUNS) {
        /* ask what it lacked, then run again */
        for (size_t i = 0; i < c->na; i++) {
            ans *a = &c->a[i];
            if (a->fetched || a->req)
                continue;
            a->req =
                pc_dns_query(pc_filter_dns(c->ctx), a->name, (pc_dns_type)a->type, on_answer, a);
            if (a->req)
                c->pending++;
            else {
                a->fetched = 1;
                a->status = PC_DNS_ERROR;
            }
        }
        if (c->pending)
            return;
        evaluate(c);
        return;
    }
    if (c->temps && r != R_PASS && r != R_FAIL) {
        r = R_TEMPERROR; /* a DNS error, not an answer (RFC 7208 §2.6.6) */
        snprintf(comment, sizeof(comment), "DNS lookups failed");
    } else if (c->voids > MAX_VOID && r != R_TEMPERROR && r != R_PERMERROR) {
        r = R_PERMERROR;
        snprintf(comment, sizeof(comment), "more than %d void lookups", MAX_VOID);
    }
    finish(c, r, comment);
}

static void on_answer(void *arg, const pc_dns_answer *ad)
{
    ans *a = arg;
    check *c = a->c;
    a->req = NULL;
    a->fetched = 1;
    a->status = ad->status;
    a->ttl = ad->ttl;
    if (ad->status == PC_DNS_NOERROR && ad->n) {
        a->data = calloc(ad->n, sizeof(*a->data));
        a->len = calloc(ad->n, sizeof(*a->len));
        for (size_t i = 0; a->data && a->len && i < ad->n; i++) {
            size_t l = ad->rr[i].len < 255 ? ad->rr[i].len : 255;
            memcpy(a->data[i], ad->rr[i].data, l);
            a->len[i] = l;
            a->n++;
        }
    }
    if (--c->pending == 0)
        evaluate(c);
}

/* ---- options and hooks --------------------------------------------------------------------- */

static void *spf_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"scores", "fail", "temperror", NULL};
    static const char *const fail_actions[] = {"score", "reject", NULL};
    static const char *const temp_actions[] = {"score", "tempfail", NULL};
    if (pc_opt_check_keys(o, keys, err, errlen) < 0)
        return NULL;
    spff *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    static const double defaults[R__COUNT] = {-0.5, 3, 1, 0, 0, 0, 0.5};
    memcpy(f->score, defaults, sizeof(defaults));
    const pc_opt *sc = pc_opt_get(o, "scores");
    static const char *const score_keys[] = {"pass", "fail",      "softfail",  "neutral",
                                             "none", "temperror", "permerror", NULL};
    if (pc_opt_check_keys(sc, score_keys, err, errlen) < 0)
        goto fail;
    for (int r = 0; r < R__COUNT; r++)
        if (pc_opt_number(sc, rnames[r], -1000, 1000, &f->score[r], err, errlen) < 0)
            goto fail;
    int fa = 0, ta = 0;
    if (pc_opt_enum(o, "fail", fail_actions, &fa, err, errlen) < 0 ||
        pc_opt_enum(o, "temperror", temp_actions, &ta, err, errlen) < 0)
        goto fail;
    f->reject_fail = fa == 1;
    f->tempfail_temp = ta == 1;
    return f;
fail:
    free(f);
    return NULL;
}

static void spf_fini(void *self)
{
    free(self);
}

static void spf_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_verdict cont = {.action = PC_CONTINUE};
    if (hook == PC_HOOK_MESSAGE) {
        /* the result of MAIL, as Received-SPF on top of the message */
        const char *rv = pc_ctx_result_get(ctx, "spf.received");
        pc_message *m = pc_ctx_message(ctx);
        if (rv && m)
            pc_message_add_header(m, "Received-SPF", rv);
        done(ctx, &cont);
        return;
    }
    if (hook != PC_HOOK_MAIL) {
        done(ctx, &cont);
        return;
    }
    check *c = calloc(1, sizeof(*c));
    if (!c) {
        done(ctx, &cont);
        return;
    }
    c->f = self;
    c->ctx = ctx;
    c->done = done;
    c->dns.lookup = lookup;
    c->dns.name = "portcullis";
    c->dns.hook = c;
    const char *from = pc_ctx_sender(ctx), *helo = pc_ctx_helo(ctx);
    const char *at = from ? strrchr(from, '@') : NULL;
    if (at && at[1]) {
        snprintf(c->identity, sizeof(c->identity), "%s", at + 1);
    } else if (helo && *helo) {
        c->helo_identity = 1; /* the null sender: the HELO identity (RFC 7208 §2.3) */
        snprintf(c->identity, sizeof(c->identity), "%s", helo);
    } else {
        free(c);
        done(ctx, &cont);
        return;
    }
    void **slot = pc_ctx_session_state(ctx);
    if (slot)
        *slot = c; /* for cancel() while names are being fetched */
    evaluate(c);
}

static void spf_cancel(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    void **slot = pc_ctx_session_state(ctx);
    check *c = slot ? *slot : NULL;
    if (c && c->ctx == ctx) {
        *slot = NULL;
        free_check(c);
    }
}

const pc_filter pcf_spf_filter = {
    .abi = PC_FILTER_ABI,
    .name = "spf",
    .hooks = PC_HOOK_BIT(PC_HOOK_MAIL) | PC_HOOK_BIT(PC_HOOK_MESSAGE),
    .init = spf_init,
    .fini = spf_fini,
    .run = spf_run,
    .cancel = spf_cancel,
};
