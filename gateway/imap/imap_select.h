/* imap_select.h — the selected mailbox and the verdict cache keyed by it (imap_select.c). */
#ifndef PC_IMAP_SELECT_H
#define PC_IMAP_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/vcache.h"
#include "imap/imap_token.h"

/* Verdict states: the cache's (PASS, WITHHELD) and the pre-scan map's. */
enum { VS_UNKNOWN = 0, VS_PASS = 1, VS_WITHHELD = 2, VS_ASKED = 3 };

typedef struct is_selected {
    char mbox[256]; /* selected mailbox as the client named it ("" unknown) */
    uint32_t uidv;  /* its UIDVALIDITY (0 unknown) */
} is_selected;

/* A decimal number of at most 10 digits that fits 32 bits; 0 otherwise. */
uint32_t is_parse_u32(pc_slice t);
/* A client command relayed: SELECT / EXAMINE set the mailbox (atom or quoted; a literal: unknown),
 * CLOSE / UNSELECT forget it. */
void is_sel_command(is_selected *m, const pc_imap_cmd_head *h);
/* An upstream line: "* OK [UIDVALIDITY n]" sets the UIDVALIDITY (returns 1), anything else 0. */
int is_sel_uidvalidity(is_selected *m, const pc_imap_resp_head *h);

/* The cache entry for uid in the selected mailbox, NULL when none or nothing may be cached. */
const pc_vcache_ent *is_vc_lookup(const is_selected *m, const pc_listener_cfg *cfg,
                                  const char *user, uint32_t uid, unsigned long long version);
/* state VS_PASS or VS_WITHHELD (with the notice fields, copied). */
void is_vc_store(const is_selected *m, const pc_listener_cfg *cfg, const char *user, uint32_t uid,
                 unsigned long long version, int state, const char *info, size_t info_len);

#endif
