/* store.h — the state store's life cycle (see include/portcullis/store.h for what filters use):
 * opened once per process from the `state:` section, then one handle per worker loop. */
#ifndef PC_STORE_STORE_H
#define PC_STORE_STORE_H

#include <uv.h>

#include "config/config.h"
#include "portcullis/store.h"

typedef struct pc_store_shared pc_store_shared;

/* Opens the backend the configuration names (LMDB: the environment and its writer thread;
 * Redis: what every worker's connection needs). NULL with why in err. */
pc_store_shared *pc_store_open(const pc_state_cfg *cfg, char *err, size_t errlen);
/* After every worker's handle is freed. */
void pc_store_close(pc_store_shared *sh);
/* The handle of the worker whose loop is loop (its thread calls this); NULL with why in err. */
pc_store *pc_store_worker_new(pc_store_shared *sh, uv_loop_t *loop, char *err, size_t errlen);
/* Once the loop's sessions have ended: operations still pending are dropped (no callback). */
void pc_store_worker_free(pc_store *s);
/* What pc_filter_store() answers on this thread. */
void pc_store_set_current(pc_store *s);

/* This thread's handle (the quarantine's index), or NULL. */
pc_store *pc_store_current(void);

#endif
