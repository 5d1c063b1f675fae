/* spool.h — where a message's bytes live while the gateway holds it: memory up to a threshold, then
 * an anonymous temporary file (O_TMPFILE, mode 0600: nothing is left behind after a crash). Global
 * budgets in memory and on disk bound what all sessions together may hold; crossing one is reported
 * as PC_SPOOL_ENOSPC so that SMTP answers 452 4.3.1. The message object (pc_message, message.h) is
 * the one owner of a message's bytes and of the changes filters make to it. */
#ifndef PC_SPOOL_H
#define PC_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "portcullis/message.h"

enum { PC_SPOOL_OK = 0, PC_SPOOL_ENOSPC = -1, PC_SPOOL_EIO = -2 };

/* Sets the directory for temporary files and the global budgets. Call once before workers start.
 * Returns 0, or -1 if the directory does not support O_TMPFILE or is not writable (err says). */
int pc_spool_setup(const char *dir, size_t mem_total, size_t disk_total, char *err, size_t errlen);

typedef struct pc_spool pc_spool;

/* A new empty spool that keeps up to mem_threshold bytes in memory. NULL on no memory. */
pc_spool *pc_spool_new(size_t mem_threshold);
/* Appends; returns PC_SPOOL_OK, PC_SPOOL_ENOSPC (budget or disk full) or PC_SPOOL_EIO. After an
 * error the spool stays readable but further writes fail. */
int pc_spool_write(pc_spool *s, const void *p, size_t n);
size_t pc_spool_size(const pc_spool *s);
/* Reads from off; returns bytes read, 0 at the end, -1 on error. */
ssize_t pc_spool_read(const pc_spool *s, size_t off, void *buf, size_t len);
/* Releases memory, closes the file and returns the bytes to the budgets. NULL is fine. */
void pc_spool_free(pc_spool *s);

/* Bytes held by all spools now, against the memory and disk budgets (either may be NULL). */
void pc_spool_usage(size_t *mem, size_t *disk);

/* Message object (implements portcullis/message.h). Owns spool; starts with one reference, the
 * caller's, dropped with pc_message_unref(). */
pc_message *pc_message_new(pc_spool *spool);
/* Seals the message when it is handed to filters (the chain does, at MESSAGE and RETRIEVE): its
 * bytes never change again (header changes are layered on top, a replacement is a new spool), so
 * threadpool work can read them through pc_message_map/_fd without a copy. */
void pc_message_seal(pc_message *m);
/* Headers the gateway itself prepends (Received), same rules as pc_message_add_header but raw:
 * line must be a complete field with its CRLF (folded lines allowed). 0 or -1. */
int pc_message_prepend_raw(pc_message *m, const char *line, size_t n);

#endif
