/* pregreet.c — the pregreet filter: at CONNECT, waits `delay` before the greeting and refuses a
 * client that has already talked (spam bots that do not wait for the banner). */
#include <stdio.h>
#include <stdlib.h>

#include "portcullis/filter.h"

/* The default delay; gateway/config.c (filter_waits) holds the same value for its timeout check. */
#define PCF_PREGREET_DELAY_MS 6000

typedef struct pregreet {
    unsigned delay_ms;
    pc_action action; /* PC_REJECT, PC_TEMPFAIL or PC_TAG (action: continue) */
} pregreet;

static const char *const keys[] = {"delay", "action", NULL};
static const char *const actions[] = {"reject", "tempfail", "continue", NULL};
static const pc_action action_of[] = {PC_REJECT, PC_TEMPFAIL, PC_TAG};

/* Options read with the loader's parsers (options.h). The filter's own `timeout` must outlast
 * `delay`: the configuration loader checks that (gateway/config.c, finish_filter). */
static void *pregreet_init(const pc_opt *options, char *err, size_t errlen)
{
    pregreet *p = calloc(1, sizeof(*p));
    int action = 0;
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->delay_ms = PCF_PREGREET_DELAY_MS;
    if (pc_opt_check_keys(options, keys, err, errlen) < 0 ||
        pc_opt_duration(options, "delay", &p->delay_ms, err, errlen) < 0 ||
        pc_opt_enum(options, "action", actions, &action, err, errlen) < 0) {
        free(p);
        return NULL;
    }
    p->action = action_of[action];
    return p;
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
