/* vcache.h — the verdict cache of retrieved messages (POP3 RETR, IMAP FETCH): one per worker
 * thread, direct-mapped, so no lock is needed and memory is bounded by the number of slots. Keys
 * are built by the protocol (listener, user, message identity); a colliding key simply replaces the
 * slot. */
#ifndef PC_VCACHE_H
#define PC_VCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_vcache_ent {
    uint64_t h;
    char *key;
    int state;  /* the protocol's own verdict code */
    char *info; /* the protocol's notice fields, or NULL */
    size_t info_len;
} pc_vcache_ent;

/* This thread's entry for key, or NULL. The cache is created with `slots` slots on first use and
 * freed when the thread ends. The entry is valid until the next store on this thread. */
const pc_vcache_ent *pc_vcache_lookup(size_t slots, const char *key);
/* Stores (key → state, a copy of info[0..info_len) or NULL). Out of memory leaves the slot empty.
 */
void pc_vcache_store(size_t slots, const char *key, int state, const void *info, size_t info_len);

#endif
