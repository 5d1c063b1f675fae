/* testmark.c — a filter plugin used by the integration tests, loaded as a shared object through the
 * plugin ABI. It acts on a message according to its "X-Test-Verdict" header (reject, tempfail,
 * quarantine, discard, hang) and marks every message it lets through with "X-Test-Filter: passed",
 * so tests can prove plugin loading, header changes and every verdict path end to end.
 *
 * At the CONNECT hook, for any protocol, it answers by client address when its options say so
 * (each a scalar or a sequence of exact addresses as pc_ctx_client_ip() gives them):
 *   reject_connect_from:   REJECT   "Connection refused by testmark"
 *   tempfail_connect_from: TEMPFAIL "Connection deferred by testmark"
 *   hang_connect_from:     never answers (the chain's timeout, or the session's end, decides)
 * Other clients, and every client without these options, get CONTINUE. At the CLOSE hook it logs
 * "testmark-close protocol=... client=... user=..." (info), so tests can see that the hook ran with
 * the session's view filled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/filter.h"

enum { L_REJECT, L_TEMPFAIL, L_HANG, L__COUNT };

static const char *const list_keys[L__COUNT] = {"reject_connect_from", "tempfail_connect_from",
                                                "hang_connect_from"};

typedef struct testmark {
    const pc_opt *lists[L__COUNT]; /* borrowed from the configuration snapshot */
} testmark;

/* Options: a map of the keys above, each a scalar or a sequence of scalars; anything else is
 * refused (naming the key and its line), as the filter contract asks. */
static void *init(const pc_opt *options, char *err, size_t errlen)
{
    if (options && options->kind != PC_OPT_MAP) {
        snprintf(err, errlen, "line %d: options must be a map", options->line);
        return NULL;
    }
    for (const pc_opt *o = options ? options->child : NULL; o; o = o->next) {
        int k = 0;
        while (k < L__COUNT && (!o->key || strcmp(o->key, list_keys[k]) != 0))
            k++;
        int ok = k < L__COUNT && (o->kind == PC_OPT_SCALAR || o->kind == PC_OPT_SEQ);
        for (const pc_opt *c = o->kind == PC_OPT_SEQ ? o->child : NULL; c && ok; c = c->next)
            ok = c->kind == PC_OPT_SCALAR;
        if (!ok) {
            snprintf(err, errlen, "line %d: %s option %s", o->line,
                     k < L__COUNT ? "invalid value for" : "unknown", o->key ? o->key : "(none)");
            return NULL;
        }
    }
    testmark *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < L__COUNT; i++)
        t->lists[i] = options ? pc_opt_get(options, list_keys[i]) : NULL;
    return t;
}

static void fini(void *self)
{
    free(self);
}

/* Is ip the scalar, or one of the scalars of the sequence, o? */
static int listed(const pc_opt *o, const char *ip)
{
    if (!o || !ip)
        return 0;
    if (o->kind == PC_OPT_SCALAR)
        return o->value && strcmp(o->value, ip) == 0;
    if (o->kind != PC_OPT_SEQ)
        return 0;
    for (const pc_opt *c = o->child; c; c = c->next)
        if (c->kind == PC_OPT_SCALAR && c->value && strcmp(c->value, ip) == 0)
            return 1;
    return 0;
}

static void on_connect(const testmark *t, pc_filter_ctx *ctx, pc_done_fn done)
{
    const char *ip = pc_ctx_client_ip(ctx);
    pc_verdict r = {.action = PC_CONTINUE};
    if (listed(t->lists[L_HANG], ip))
        return; /* never answers */
    if (listed(t->lists[L_REJECT], ip))
        r = (pc_verdict){.action = PC_REJECT,
                         .text = "Connection refused by testmark",
                         .symbol = "TESTMARK_CONNECT_REJECT"};
    else if (listed(t->lists[L_TEMPFAIL], ip))
        r = (pc_verdict){.action = PC_TEMPFAIL, .text = "Connection deferred by testmark"};
    done(ctx, &r);
}

static void run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    if (hook == PC_HOOK_CONNECT) {
        on_connect(self, ctx, done);
        return;
    }
    if (hook == PC_HOOK_CLOSE) {
        const char *user = pc_ctx_user(ctx);
        pc_filter_log(ctx, 6, "testmark-close protocol=%s client=%s user=%s",
                      pc_ctx_protocol(ctx) ? pc_ctx_protocol(ctx) : "-",
                      pc_ctx_client_ip(ctx) ? pc_ctx_client_ip(ctx) : "-",
                      user && *user ? user : "-");
    }
    pc_message *m = pc_ctx_message(ctx);
    char v[64] = "";
    if (m)
        pc_message_header(m, "X-Test-Verdict", 0, v, sizeof(v));
    pc_verdict r = {.action = PC_CONTINUE};
    if (strcmp(v, "reject") == 0) {
        r = (pc_verdict){.action = PC_REJECT,
                         .code = 550,
                         .enhanced = "5.7.1",
                         .text = "Marked for rejection by testmark",
                         .symbol = "TESTMARK_REJECT"};
    } else if (strcmp(v, "tempfail") == 0) {
        r = (pc_verdict){.action = PC_TEMPFAIL,
                         .code = 451,
                         .enhanced = "4.7.1",
                         .text = "Marked for tempfail by testmark"};
    } else if (strcmp(v, "quarantine") == 0) {
        r = (pc_verdict){.action = PC_QUARANTINE};
    } else if (strcmp(v, "discard") == 0) {
        r = (pc_verdict){.action = PC_DISCARD};
    } else if (strcmp(v, "hang") == 0) {
        return; /* never answers: the chain's timeout must decide */
    } else if (m) {
        pc_message_add_header(m, "X-Test-Filter", "passed");
        r = (pc_verdict){.action = PC_TAG, .score = 1.5, .symbol = "TESTMARK_SEEN"};
    }
    done(ctx, &r);
}

static const pc_filter testmark_filter = {
    .abi = PC_FILTER_ABI,
    .name = "testmark",
    .hooks = PC_HOOK_BIT(PC_HOOK_CONNECT) | PC_HOOK_BIT(PC_HOOK_MESSAGE) |
             PC_HOOK_BIT(PC_HOOK_RETRIEVE) | PC_HOOK_BIT(PC_HOOK_CLOSE),
    .init = init,
    .fini = fini,
    .run = run,
};

const pc_filter *pc_filter_entry(void);
const pc_filter *pc_filter_entry(void)
{
    return &testmark_filter;
}
