/* oldabi.c — a plugin built for filter ABI 1 (before the per-worker hooks): the gateway must refuse
 * to load it, naming the file and both versions, rather than read past the end of its descriptor.
 * Loaded only by tests/integration/test_cli.py. */
#include "portcullis/filter.h"

static void run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    (void)self;
    (void)hook;
    pc_verdict v = {.action = PC_CONTINUE};
    done(ctx, &v);
}

/* The ABI 1 descriptor: the fields before init_worker. */
static const struct {
    int abi;
    const char *name;
    unsigned hooks;
    void *(*init)(const pc_opt *, char *, size_t);
    void (*fini)(void *);
    void (*run)(void *, pc_hook, pc_filter_ctx *, pc_done_fn);
    void (*cancel)(void *, pc_filter_ctx *);
} oldabi_filter = {1, "oldabi", PC_HOOK_BIT(PC_HOOK_MAIL), NULL, NULL, run, NULL};

const pc_filter *pc_filter_entry(void);
const pc_filter *pc_filter_entry(void)
{
    return (const pc_filter *)(const void *)&oldabi_filter;
}
