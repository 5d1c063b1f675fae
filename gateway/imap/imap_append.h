/* imap_append.h — APPEND through the message hook, as an object the relay embeds and drives
 * (imap_append.c). It owns the command being rebuilt, the spooled message literal, the message
 * hook's run and its own counters; it reaches the relay and the session only through the ops the
 * session hands it at init (ud: the session), never by calling their functions by name. */
#ifndef PC_IMAP_APPEND_H
#define PC_IMAP_APPEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/chain.h"
#include "core/session.h"
#include "core/spool.h"
#include "imap/imap_token.h"
#include "net/conn.h"

enum iappend {
    AP_NONE,
    AP_ARGS,   /* reading the arguments before the message literal */
    AP_BODY,   /* spooling the message literal */
    AP_END,    /* the literal is in, waiting for the line end */
    AP_READY,  /* complete, waiting for the retrieve hook to be idle */
    AP_CHAIN,  /* the message hook runs */
    AP_UPWAIT, /* "{n}" sent upstream, waiting for its "+" */
    AP_SEND,   /* streaming the message upstream */
};

/* What the object asks of the relay and the session; ud is the session. */
typedef struct is_append_ops {
    void (*up_send)(void *ud, const void *p, size_t n); /* batched to the upstream (copied) */
    void (*up_flush)(void *ud);
    pc_conn *(*upstream)(void *ud); /* the upstream connection, NULL when there is none */
    /* A command went upstream (its tagged answer is due); line_fwd: bytes of the client's
     * current command now forwarded. */
    void (*forwarded)(void *ud, size_t line_fwd);
    /* The rest of the client's command is answered with reply (static text) instead of being
     * relayed. */
    void (*refuse)(void *ud, const char *reply);
    void (*error_count)(void *ud);
    void (*close)(void *ud);
    int (*closing)(void *ud);
    void (*again)(void *ud); /* the session's input loop runs once more */
    void (*process)(void *ud);
    /* After the message hook's verdict: unless the session is closing, flush, relay what the
     * upstream sent meanwhile, process the client's input. */
    void (*resume)(void *ud);
    /* The whole message went upstream: the upstream's drain interest may end, input goes on. */
    void (*sent)(void *ud);
} is_append_ops;

typedef struct is_append {
    enum iappend st;
    int have_mbox; /* the mailbox argument was seen */
    int err;       /* spool error while reading the literal */
    uint64_t size;
    pc_buf cmd; /* "APPEND mailbox [flags] [date] " as it goes upstream (no tag) */
    pc_spool *spool;
    pc_message *msg;
    pc_chain_run *run;
    size_t off;
    char tag[64];
    uint64_t t0;
    /* for the session's log line */
    unsigned appended, refused, unscanned;

    pc_session *base; /* the session's base (borrowed, outlives the object) */
    const char *user; /* the session's user name buffer (borrowed) */
    unsigned *serial; /* the session's reference counter, shared with the pre-scan */
    const is_append_ops *ops;
    void *ud;
} is_append;

/* Sets the object up in zeroed memory; every pointer is borrowed for the object's life. */
void is_ap_init(is_append *a, pc_session *base, const char *user, unsigned *serial,
                const is_append_ops *ops, void *ud);
/* Does this command go through the message hook? */
int is_ap_wanted(const is_append *a, const pc_imap_cmd_head *h);
/* The command's first TEXT segment (tag: the client's, copied). */
void is_ap_begin(is_append *a, const char *tag, const pc_imap_ev *ev);
/* Client events while a->st != AP_NONE; returns 1 when the event was consumed (the caller drops
 * ev->consumed bytes), 0 to let the relay handle it, -1 when the session closed. The relay
 * itself marks the line end (next command, nothing forwarded) before passing LINE_END. */
int is_ap_event(is_append *a, int rc, const pc_imap_ev *ev);
/* AP_READY: runs the message hook unless retrieve_busy (the retrieve hook holds the stream). */
void is_ap_try_start(is_append *a, int retrieve_busy);
/* The upstream's answer while the APPEND is on its way: its "+" (consumed, the message follows)
 * or a tagged refusal (relayed by the caller). Returns 1 when the line was consumed. */
int is_ap_upstream_line(is_append *a, const pc_imap_resp_head *h);
void is_ap_pump(is_append *a);
/* Back to AP_NONE: the run aborted, the message and the command freed. Counters stay. */
void is_ap_free(is_append *a);

#endif
