/* report.h — what the gateway writes into a message it lets through about what its filters found:
 * one Authentication-Results header (RFC 8601) with the site's authserv-id and every method result
 * the filters recorded, after removing incoming ones that claim the site's ids (§5); and the spam
 * headers X-Spam-Score, X-Spam-Status (with the symbols and their scores) and X-Spam-Flag when the
 * total reached the listener's tag threshold, after removing any the message came with. */
#ifndef PC_REPORT_H
#define PC_REPORT_H

#include "config/config.h"
#include "core/chain.h"

typedef struct pc_report_cfg {
    const char *authserv_id; /* the site's id (authres.authserv_id or the listener's host name) */
    const pc_strlist *drop;  /* the site's other ids (authres.remove_ids) */
    const pc_scores_cfg *scores;
} pc_report_cfg;

/* Changes m as above. Returns the number of incoming headers removed, or -1 when a header could
 * not be added (no memory): the message then goes on without it. */
int pc_report_write(pc_message *m, const pc_results *r, const pc_report_cfg *cfg);

#endif
