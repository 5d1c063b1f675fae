/* lmdb.c — STUB, to be replaced by the LMDB backend: it only lets the store link where the real
 * one is not yet merged. open() always fails. */
#include <stdio.h>

#include "store/backend.h"

static void *stub_open(const pc_state_cfg *cfg, char *err, size_t errlen)
{
    (void)cfg;
    snprintf(err, errlen, "lmdb backend not built here");
    return NULL;
}

static void stub_close(void *shared)
{
    (void)shared;
}

static void *stub_worker_new(void *shared, uv_loop_t *loop, char *err, size_t errlen)
{
    (void)shared;
    (void)loop;
    snprintf(err, errlen, "lmdb backend not built here");
    return NULL;
}

static void stub_worker_free(void *worker)
{
    (void)worker;
}

static int stub_submit(void *worker, pc_store_req *r)
{
    (void)worker;
    (void)r;
    return -1;
}

const pc_store_backend pc_store_lmdb = {
    .name = "lmdb",
    .open = stub_open,
    .close = stub_close,
    .worker_new = stub_worker_new,
    .worker_free = stub_worker_free,
    .submit = stub_submit,
};
