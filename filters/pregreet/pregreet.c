/* pregreet.c — the pregreet filter: at CONNECT, waits `delay` before the greeting and refuses a
 * client that has already talked (spam bots that do not wait for the banner). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/filter.h"

typedef struct pregreet {
    unsigned delay_ms;
    pc_action action; /* PC_REJECT, PC_TEMPFAIL or PC_TAG (action: continue) */
} pregreet;

static void where(char *err, size_t errlen, const pc_opt *o, const char *msg, const char *what)
{
    if (o->line)
        snprintf(err, errlen, "%s:%d: %s%s", o->file ? o->file : "config", o->line, msg, what);
    else
        snprintf(err, errlen, "%s%s", msg, what);
}

/* "6s", "500ms", "1m", "0", a bare number = seconds. Kept here so that the filter library does not
 * depend on the configuration library (same grammar as pc_parse_duration_ms). */
static int parse_duration(const char *s, unsigned *ms)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return -1;
    if (v > 0xffffffffull / mul)
        return -1;
    *ms = (unsigned)(v * mul);
    return 0;
}

static void *pregreet_init(const pc_opt *options, char *err, size_t errlen)
{
    pregreet *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->delay_ms = 6000;
    p->action = PC_REJECT;
    if (!options)
        return p;
    if (options->kind != PC_OPT_MAP) {
        where(err, errlen, options, "options must be a map", "");
        goto fail;
    }
    for (const pc_opt *o = options->child; o; o = o->next) {
        const char *key = o->key ? o->key : "(none)";
        int scalar = o->kind == PC_OPT_SCALAR && o->value;
        if (strcmp(key, "delay") == 0) {
            if (!scalar || parse_duration(o->value, &p->delay_ms) < 0) {
                where(err, errlen, o, "delay: expected a duration such as 6s or 500ms, got ",
                      scalar ? o->value : "a non-scalar");
                goto fail;
            }
        } else if (strcmp(key, "action") == 0) {
            if (scalar && strcmp(o->value, "reject") == 0)
                p->action = PC_REJECT;
            else if (scalar && strcmp(o->value, "tempfail") == 0)
                p->action = PC_TEMPFAIL;
            else if (scalar && strcmp(o->value, "continue") == 0)
                p->action = PC_TAG;
            else {
                where(err, errlen, o, "action: expected reject, tempfail or continue, got ",
                      scalar ? o->value : "a non-scalar");
                goto fail;
            }
        } else {
            where(err, errlen, o, "unknown option ", key);
            goto fail;
        }
    }
    return p;
fail:
    free(p);
    return NULL;
}

static void pregreet_fini(void *self)
{
    free(self);
}

/* The chain's done function: the same for every run, but a timer callback does not receive it. */
static _Atomic(pc_done_fn) chain_done;

static void check(pc_filter_ctx *ctx, void *arg)
{
    const pregreet *p = arg;
    size_t pending = pc_ctx_pending_input(ctx);
    pc_verdict v = {.action = PC_CONTINUE};
    if (pending > 0) {
        v.action = p->action;
        v.symbol = "PREGREET";
        if (p->action == PC_REJECT) {
            v.code = 554;
            v.enhanced = "5.5.1";
            v.text = "Protocol error: talked before greeting";
        } else if (p->action == PC_TEMPFAIL) {
            v.code = 421; /* the session closes after a 421 */
            v.enhanced = "4.7.0";
            v.text = "Protocol error: talked before greeting";
        }
        pc_filter_log(ctx, 6, "pregreet=1 bytes=%zu", pending);
    }
    pc_done_fn done = chain_done;
    done(ctx, &v);
}

static void pregreet_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    const pregreet *p = self;
    chain_done = done;
    if (hook != PC_HOOK_CONNECT || p->delay_ms == 0 ||
        pc_filter_timer(ctx, p->delay_ms, check, self) < 0)
        check(ctx, self);
}

const pc_filter pcf_pregreet_filter = {
    .abi = PC_FILTER_ABI,
    .name = "pregreet",
    .hooks = PC_HOOK_BIT(PC_HOOK_CONNECT),
    .init = pregreet_init,
    .fini = pregreet_fini,
    .run = pregreet_run,
    .cancel = NULL,
};
