/* qstore.h — the quarantine directory: each quarantined message is two files, ID.eml (the message
 * as it would have been delivered) and ID.meta (qmeta.h), under a random ID. Every function here
 * blocks on the disk: call them on the threadpool (uv_queue_work) or on a thread that serves no
 * client, never on a worker's loop.
 *
 * Durability: each file is written under a temporary name (ID.eml.tmp, ID.meta.tmp), fsync'd,
 * renamed, and the directory fsync'd; the .meta file is renamed last, so a message is visible (is
 * listed) only once both files are complete on disk. A crash leaves at most .tmp files or an .eml
 * without its .meta, which the sweep removes. */
#ifndef PC_QSTORE_H
#define PC_QSTORE_H

#include <stddef.h>

#include "portcullis/message.h"
#include "quarantine/qmeta.h"

/* Makes the directory (one level, mode 0750) if absent and checks that files can be made in it. 0
 * or -1 with why in err. */
int pc_qstore_setup(const char *dir, char *err, size_t errlen);
/* A fresh ID from the kernel's CSPRNG into id (PC_QMETA_ID_LEN + 1 bytes). 0 or -1. */
int pc_qstore_new_id(char *id);
/* Writes msg (pc_message_read: with the gateway's header changes; the caller guarantees nobody
 * changes it meanwhile) and m (m->id is filled in here) durably. 0, or -1 with errno-based reason
 * in err; on error nothing is left under the final names. */
int pc_qstore_write(const char *dir, pc_message *msg, pc_qmeta *m, char *err, size_t errlen);
/* Reads ID.meta into m (pc_qmeta_free it). 0, -1 (no such message), -2 (unreadable or corrupt). */
int pc_qstore_load(const char *dir, const char *id, pc_qmeta *m, char *err, size_t errlen);
/* Rewrites ID.meta from m, its history included (atomically: temporary file, fsync, rename,
 * directory fsync): how a release is recorded. 0 or -1. */
int pc_qstore_rewrite(const char *dir, const pc_qmeta *m, char *err, size_t errlen);
/* ID.eml's bytes into a new buffer (*out, free()), at most max bytes. 0, -1 (absent), -2 (error or
 * larger than max). */
int pc_qstore_read_message(const char *dir, const char *id, size_t max, char **out, size_t *len);
/* The first bytes of ID.eml, at most max, into a new buffer (*out, free()). 0 or -1. */
int pc_qstore_read_head(const char *dir, const char *id, size_t max, char **out, size_t *len);
/* Removes ID.eml only (a message released to every recipient: its .meta stays, as the record of
 * who released it, until it expires), then fsyncs the directory. 0 or -1. */
int pc_qstore_delete_message(const char *dir, const char *id);
/* Removes ID.meta, then ID.eml, then fsyncs the directory. 0, -1 (absent), -2 (error). */
int pc_qstore_delete(const char *dir, const char *id);

/* Calls fn for every listed message (a complete .meta), in no particular order; fn's m is valid
 * during the call. Stops when fn returns non-zero. Returns the number seen, or -1 (directory). */
typedef int (*pc_qstore_each_fn)(void *ud, const pc_qmeta *m);
long pc_qstore_each(const char *dir, pc_qstore_each_fn fn, void *ud);

/* Deletes messages quarantined before now - max_age_s, and leftovers of interrupted writes (.tmp
 * files and .eml files without a .meta) older than an hour. Returns the messages expired, or -1. */
long pc_qstore_sweep(const char *dir, unsigned long long max_age_s, long long now, char *err,
                     size_t errlen);

#endif
