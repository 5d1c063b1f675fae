/* ratelimit.c — rate limits on the gateway's state store: connections, messages and recipients
 * per client address, per sender or per authenticated user, over sliding windows, so that several
 * gateways sharing Redis count together.
 *
 * Each limit is { count: connections|messages|recipients, per: client|sender|user, max, window }.
 * Connections are counted at CONNECT (refused `421 4.7.0`), messages at MAIL and recipients at
 * RCPT (`451 4.7.1`); a limit per sender or per user applies from MAIL on (the sender, the login).
 * Every attempt counts, refused ones too, as Postfix's anvil counts them. Trusted networks are
 * exempt from the limits per client unless `exempt_trusted: false`; `exempt_networks` from all.
 * When the store cannot answer, `on_unavailable` decides (continue, the default, or tempfail). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/filter.h"
#include "portcullis/store.h"

#define MAX_LIMITS 16

enum { C_CONNECTIONS, C_MESSAGES, C_RECIPIENTS };
enum { P_CLIENT, P_SENDER, P_USER };
static const char *const count_names[] = {"connections", "messages", "recipients", NULL};
static const char *const per_names[] = {"client", "sender", "user", NULL};
static const char *const unavail_names[] = {"continue", "tempfail", NULL};

typedef struct limit {
    int count, per;
    unsigned max, window_s;
} limit;

typedef struct ratef {
    limit l[MAX_LIMITS];
    size_t n;
    int exempt_trusted, unavail_tempfail;
    pc_cidr_list exempt;
} ratef;

typedef struct rjob {
    ratef *f;
    pc_filter_ctx *ctx;
    pc_done_fn done;
    pc_hook hook;
    size_t next; /* the next limit to look at */
    const limit *cur;
    pc_store_req *req;
} rjob;

static int hook_of(int count)
{
    return count == C_CONNECTIONS ? PC_HOOK_CONNECT
           : count == C_MESSAGES  ? PC_HOOK_MAIL
                                  : PC_HOOK_RCPT;
}

static void finish(rjob *j, const pc_verdict *v)
{
    void **slot = pc_ctx_session_state(j->ctx);
    if (slot && *slot == j)
        *slot = NULL;
    pc_filter_ctx *ctx = j->ctx;
    pc_done_fn done = j->done;
    free(j);
    done(ctx, v);
}

static void step(rjob *j);

static void counted(void *arg, const pc_store_reply *r)
{
    rjob *j = arg;
    j->req = NULL;
    const limit *l = j->cur;
    if (r->status != PC_STORE_OK) {
        pc_filter_log(j->ctx, 4, "ratelimit=unavailable store=%s status=%s action=%s",
                      pc_store_backend_name(pc_filter_store(j->ctx)),
                      pc_store_status_name(r->status),
                      j->f->unavail_tempfail ? "tempfail" : "continue");
        if (j->f->unavail_tempfail) {
            finish(j, &(pc_verdict){.action = PC_TEMPFAIL,
                                    .code = j->hook == PC_HOOK_CONNECT ? 421 : 451,
                                    .enhanced = "4.3.0",
                                    .text = "Temporary failure, please try again later"});
            return;
        }
        step(j);
        return;
    }
    if (r->n <= (long long)l->max) {
        step(j);
        return;
    }
    char text[200];
    snprintf(text, sizeof(text), "Too many %s per %s (%u in %u seconds), please try again later",
             count_names[l->count], per_names[l->per], l->max, l->window_s);
    pc_filter_log(j->ctx, 5, "ratelimit=exceeded count=%s per=%s max=%u window=%u seen=%lld",
                  count_names[l->count], per_names[l->per], l->max, l->window_s, r->n);
    finish(j, &(pc_verdict){.action = PC_TEMPFAIL,
                            .code = l->count == C_CONNECTIONS ? 421 : 451,
                            .enhanced = l->count == C_CONNECTIONS ? "4.7.0" : "4.7.1",
                            .text = text,
                            .symbol = "RATELIMIT"});
}

/* Starts the next limit of this hook that applies, or answers when there is none left. */
static void step(rjob *j)
{
    pc_filter_ctx *ctx = j->ctx;
    while (j->next < j->f->n) {
        const limit *l = &j->f->l[j->next++];
        if (hook_of(l->count) != (int)j->hook)
            continue;
        const char *who = NULL;
        if (l->per == P_CLIENT) {
            if (j->f->exempt_trusted && pc_ctx_trusted(ctx))
                continue;
            who = pc_ctx_client_ip(ctx);
        } else if (l->per == P_SENDER) {
            who = pc_ctx_sender(ctx);
            if (!who)
                continue; /* not known yet at CONNECT */
        } else {
            who = pc_ctx_user(ctx);
            if (!who)
                continue;
        }
        char lower[320] = "";
        for (size_t i = 0; who[i] && i + 1 < sizeof(lower); i++)
            lower[i] = (char)(who[i] >= 'A' && who[i] <= 'Z' ? who[i] + 32 : who[i]);
        char prefix[40], key[80];
        snprintf(prefix, sizeof(prefix), "rl:%c%c%u:", count_names[l->count][0],
                 per_names[l->per][0], l->window_s);
        const char *parts[] = {lower};
        pc_store_hash_key(key, sizeof(key), prefix, parts, 1);
        j->cur = l;
        pc_store *st = pc_filter_store(ctx);
        j->req = st ? pc_store_window(st, key, l->window_s, 1, counted, j) : NULL;
        if (!j->req) {
            if (!st)
                pc_filter_log(ctx, 3, "ratelimit: no state store (state: in the configuration)");
            counted(j, &(pc_store_reply){.status = PC_STORE_UNAVAILABLE});
            return;
        }
        void **slot = pc_ctx_session_state(ctx);
        if (slot)
            *slot = j; /* for cancel() */
        return;
    }
    finish(j, &(pc_verdict){.action = PC_CONTINUE});
}

static void rate_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    ratef *f = self;
    rjob *j = NULL;
    if (!pc_cidr_match(&f->exempt, pc_ctx_client_addr(ctx)))
        j = calloc(1, sizeof(*j));
    if (!j) {
        done(ctx, &(pc_verdict){.action = PC_CONTINUE});
        return;
    }
    *j = (rjob){.f = f, .ctx = ctx, .done = done, .hook = hook};
    step(j);
}

static void rate_cancel(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    void **slot = pc_ctx_session_state(ctx);
    rjob *j = slot ? *slot : NULL;
    if (!j || j->ctx != ctx)
        return;
    if (j->req)
        pc_store_cancel(j->req);
    *slot = NULL;
    free(j);
}

static void rate_fini(void *self)
{
    ratef *f = self;
    if (f)
        pc_cidr_list_free(&f->exempt);
    free(f);
}

static int read_limit(ratef *f, const pc_opt *it, char *err, size_t errlen)
{
    static const char *const keys[] = {"count", "per", "max", "window", NULL};
    if (!it || it->kind != PC_OPT_MAP)
        return pc_opt_error(err, errlen, it, "limits: a list of { count, per, max, window }");
    if (pc_opt_check_keys(it, keys, err, errlen) < 0)
        return -1;
    if (f->n >= MAX_LIMITS)
        return pc_opt_error(err, errlen, it, "limits: at most %d", MAX_LIMITS);
    limit *l = &f->l[f->n];
    double max = -1;
    unsigned window = 0;
    if (!pc_opt_get(it, "count") || !pc_opt_get(it, "max") || !pc_opt_get(it, "window"))
        return pc_opt_error(err, errlen, it, "limits: count, max and window are required");
    if (pc_opt_enum(it, "count", count_names, &l->count, err, errlen) < 0 ||
        pc_opt_enum(it, "per", per_names, &l->per, err, errlen) < 0 ||
        pc_opt_number(it, "max", 0, 1e9, &max, err, errlen) < 0 ||
        pc_opt_duration(it, "window", &window, err, errlen) < 0)
        return -1;
    if (window < 1000)
        return pc_opt_error(err, errlen, pc_opt_get(it, "window"), "window: at least 1s");
    if (l->count == C_CONNECTIONS && l->per != P_CLIENT)
        return pc_opt_error(err, errlen, it,
                            "limits: connections are counted per client (no sender or user yet)");
    l->max = (unsigned)max;
    l->window_s = window / 1000;
    f->n++;
    return 0;
}

static void *rate_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const known[] = {"limits", "exempt_trusted", "exempt_networks",
                                        "on_unavailable", NULL};
    if (pc_opt_check_keys(o, known, err, errlen) < 0)
        return NULL;
    ratef *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->exempt_trusted = 1;
    int unavail = 0;
    const pc_opt *ls = pc_opt_get(o, "limits");
    if (!ls || ls->kind != PC_OPT_SEQ || !ls->child) {
        pc_opt_error(err, errlen, ls ? ls : o, "limits: a list of { count, per, max, window }");
        goto fail;
    }
    for (const pc_opt *it = ls->child; it; it = it->next)
        if (read_limit(f, it, err, errlen) < 0)
            goto fail;
    if (pc_opt_bool(o, "exempt_trusted", &f->exempt_trusted, err, errlen) < 0 ||
        pc_opt_cidrs(o, "exempt_networks", &f->exempt, err, errlen) < 0 ||
        pc_opt_enum(o, "on_unavailable", unavail_names, &unavail, err, errlen) < 0)
        goto fail;
    f->unavail_tempfail = unavail == 1;
    return f;
fail:
    rate_fini(f);
    return NULL;
}

const pc_filter pcf_ratelimit_filter = {
    .abi = PC_FILTER_ABI,
    .name = "ratelimit",
    .hooks = PC_HOOK_BIT(PC_HOOK_CONNECT) | PC_HOOK_BIT(PC_HOOK_MAIL) | PC_HOOK_BIT(PC_HOOK_RCPT),
    .init = rate_init,
    .fini = rate_fini,
    .run = rate_run,
    .cancel = rate_cancel,
};
