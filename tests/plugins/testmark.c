/* testmark.c — a filter plugin used by the integration tests, loaded as a shared object through the
 * plugin ABI. It acts on a message according to its "X-Test-Verdict" header (reject, tempfail,
 * quarantine, discard, hang) and marks every message it lets through with "X-Test-Filter: passed",
 * so tests can prove plugin loading, header changes and every verdict path end to end. */
#include <string.h>

#include "portcullis/filter.h"

static int instance;

static void *init(const pc_opt *options, char *err, size_t errlen)
{
    (void)options;
    (void)err;
    (void)errlen;
    return &instance;
}

static void fini(void *self)
{
    (void)self;
}

static void run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
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

static const pc_filter testmark = {
    .abi = PC_FILTER_ABI,
    .name = "testmark",
    .hooks =
        PC_HOOK_BIT(PC_HOOK_MESSAGE) | PC_HOOK_BIT(PC_HOOK_RETRIEVE) | PC_HOOK_BIT(PC_HOOK_CLOSE),
    .init = init,
    .fini = fini,
    .run = run,
};

const pc_filter *pc_filter_entry(void);
const pc_filter *pc_filter_entry(void)
{
    return &testmark;
}
