/* redis.c — placeholder until the Redis backend lands. */
#include <stdio.h>

#include "store/backend.h"

static void *r_open(const pc_state_cfg *cfg, char *err, size_t errlen)
{
    (void)cfg;
    snprintf(err, errlen, "state.backend redis: not built");
    return NULL;
}

const pc_store_backend pc_store_redis = {.name = "redis", .open = r_open};
