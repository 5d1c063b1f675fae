/* quarantine.h — a message put into quarantine from a worker's loop: the files written and fsync'd
 * on the threadpool (qstore.c), then, on the loop, one index record per recipient in the state
 * store when there is one (key "q:ID:N", value "owner=HOST id=ID time=T rcpt=ADDR", expiring with
 * the message), then the caller's callback with the ID. The directory is the source of truth; the
 * index only says which gateway owns a message (Redis may lose its last writes, so it never holds
 * the only copy of anything). */
#ifndef PC_QUARANTINE_H
#define PC_QUARANTINE_H

#include <uv.h>

#include "config/config.h"
#include "portcullis/message.h"
#include "quarantine/qmeta.h"

typedef struct pc_quar_job pc_quar_job;

/* rc 0: stored as id (borrowed, valid during the call); rc -1: nothing was stored, err says why. */
typedef void (*pc_quar_done_fn)(void *ud, int rc, const char *id, const char *err);

/* Starts storing msg (a reference is taken) with the metadata m (taken over: the job frees it) on
 * loop's threadpool; this thread's state store, when there is one, gets the index, with this
 * host's name (gethostname) as the owner. The caller must not change msg until done is called.
 * done is called exactly once, later, on loop, unless pc_quar_detach came first. NULL when nothing
 * was started (done not called; m is left to the caller). */
pc_quar_job *pc_quar_hold(uv_loop_t *loop, const pc_quarantine_cfg *cfg, pc_message *msg,
                          pc_qmeta *m, pc_quar_done_fn done, void *ud);
/* The caller is going away: done will not be called; the job finishes and frees itself. */
void pc_quar_detach(pc_quar_job *j);

/* Expiry: a sweep of the directory on the threadpool (pc_qstore_sweep: messages older than
 * max_age, leftovers of interrupted writes) at start and then every max_age / 4, at least every
 * second and at most every hour, run from loop (the main one). */
typedef struct pc_quar_sweeper pc_quar_sweeper;
pc_quar_sweeper *pc_quar_sweeper_start(uv_loop_t *loop, const pc_quarantine_cfg *cfg);
/* Stops the timer; a sweep under way finishes and frees what is left. NULL is fine. */
void pc_quar_sweeper_stop(pc_quar_sweeper *s);

#endif
