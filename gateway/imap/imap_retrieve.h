/* imap_retrieve.h — FETCH through the retrieve hook, as an object the relay embeds and drives
 * (imap_retrieve.c): the whole message of a FETCH response spooled, scanned and served (or a
 * notice), the pre-scan of section / partial FETCHes with its verdict map, the selected mailbox
 * for the per-worker verdict cache (imap_select.h), and the state of the upstream FETCH response
 * being relayed (its number, UID, depth, the segment held for the verdict, the RFC822.SIZE to
 * rewrite). It reaches the relay and the session only through the ops the session hands it at init
 * (ud: the session), never by calling their functions by name. */
#ifndef PC_IMAP_RETRIEVE_H
#define PC_IMAP_RETRIEVE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/chain.h"
#include "core/session.h"
#include "core/spool.h"
#include "imap/imap_select.h"
#include "imap/imap_token.h"

enum iwait { IW_NONE, IW_CHAIN, IW_PUMP };

/* Section / partial FETCH pre-scan. */
enum iprescan {
    PF_NONE,
    PF_HELD,  /* the client's FETCH is held until earlier commands are answered */
    PF_UIDS,  /* internal "FETCH set (UID RFC822.SIZE)" running */
    PF_SCAN,  /* internal "UID FETCH uids (UID BODY.PEEK[])" running */
    PF_RELAY, /* the client's FETCH relayed, its parts checked against the map */
};

/* One message of the FETCH being pre-scanned: sequence number, UID, size, verdict. */
typedef struct ipf_ent {
    uint32_t seq, uid;
    uint64_t size;
    int state;  /* 0 unknown, 1 pass, 2 withheld */
    char *info; /* withheld: "from\0subject\0date\0reason\0ref" */
    size_t info_len;
} ipf_ent;

/* What the object asks of the relay and the session; ud is the session. */
typedef struct is_retrieve_ops {
    void (*out_add)(void *ud, const void *p, size_t n); /* to the client, batched (copied) */
    void (*up_send)(void *ud, const void *p, size_t n); /* to the upstream, batched (copied) */
    void (*up_flush)(void *ud);
    /* A command went upstream (its tagged answer is due); line_fwd 0: the client's line as is. */
    void (*forwarded)(void *ud, size_t line_fwd);
    void (*close)(void *ud);
    void (*again)(void *ud); /* the session's input loop runs once more */
    /* After a verdict with nothing left waiting: unless the session is closing, relay what the
     * upstream sent meanwhile and process the client's input. */
    void (*resume)(void *ud);
} is_retrieve_ops;

typedef struct is_retrieve {
    /* the whole message of a FETCH response */
    enum iwait wait;
    int scan; /* 1: spooling the literal; 2: discarding it (oversize refused); 3: dropping it */
    uint64_t scan_size;
    pc_spool *spool;
    int spool_err;
    pc_message *msg;
    pc_chain_run *run;
    pc_buf notice;
    size_t emit_off;
    uint64_t t0;
    int scan_pre; /* the literal being scanned belongs to the pre-scan */

    /* the upstream FETCH response being relayed */
    int u_fetch;     /* the line is "* n FETCH" */
    uint32_t u_seq;  /* "* n FETCH": n */
    uint32_t u_uid;  /* UID seen in this FETCH response so far (0 none) */
    int u_pdepth;    /* parenthesis depth reached in this response's text */
    char u_item[64]; /* item name of the literal announced */
    pc_buf hold;     /* the FETCH segment before a whole-message literal, until its verdict */
    int hold_depth;  /* parenthesis depth at the start of that segment */
    /* RFC822.SIZE of a whole message served changed (tagged, replaced, withheld) */
    uint64_t size_fix; /* served size: RFC822.SIZE later in this response is rewritten */
    int size_fix_on;

    /* FETCH of sections / partials: pre-scan, verdict map, cache key */
    is_selected sel; /* the verdict cache's mailbox */
    enum iprescan pf;
    pc_buf pf_cmd;    /* the held FETCH command line (CRLF included) */
    char pf_tag[64];  /* its tag */
    char pf_itag[24]; /* tag of the internal command running */
    int pf_uidcmd;    /* the client's command is UID FETCH */
    int pf_failed;    /* the UID step failed: parts of unknown messages are withheld */
    ipf_ent *pmap;
    size_t pmap_n, pmap_cap;

    /* for the session's log line */
    unsigned fetched, scanned, passed, tagged, withheld, unscanned, cache_hits;

    pc_session *base; /* the session's base (borrowed, outlives the object) */
    const char *user; /* the session's user name buffer (borrowed) */
    unsigned *serial; /* the session's reference counter, shared with APPEND */
    const is_retrieve_ops *ops;
    void *ud;
} is_retrieve;

/* Sets the object up in zeroed memory; every pointer is borrowed for the object's life. */
void is_rt_init(is_retrieve *r, pc_session *base, const char *user, unsigned *serial,
                const is_retrieve_ops *ops, void *ud);
/* Frees what a retrieval or a pre-scan holds (the run aborted); the counters stay. */
void is_retrieve_free(is_retrieve *r);
/* Does a filter of the listener use the retrieve hook? */
int is_scannable(const is_retrieve *r);

/* The upstream FETCH response: the first TEXT of a line (returns 1 for "* n FETCH", whose
 * number, UID and depth are then tracked), the end of the line (or the next one's start), the
 * item named before a literal announcement (p, n: the segment up to it; returns its
 * pc_imap_fetch_item), the segment before a whole-message literal held for the verdict (1: held,
 * 0: it could not be and goes out now). */
int is_rt_fetch_begin(is_retrieve *r, const char *p, size_t n);
void is_rt_line_end(is_retrieve *r);
int is_rt_item(is_retrieve *r, const char *p, size_t n);
int is_rt_hold(is_retrieve *r, const char *p, size_t n, int depth);

/* A whole-message literal at depth 1 of a FETCH response (own: the response is the pre-scan's;
 * ann: its "{n}" announcement, relayed when the message passes unscanned). */
void is_scan_begin(is_retrieve *r, const pc_imap_ev *ev, int own, const char *ann, size_t ann_len);
/* Its last byte was spooled (or discarded): the verdict, then the message or the notice. */
void is_scan_done(is_retrieve *r);
/* A literal that is not relayed (the gateway's own response, a part replaced by a notice): its
 * content is dropped. */
void is_scan_drop(is_retrieve *r, const pc_imap_ev *ev);
/* Content of a literal being scanned or dropped (r->scan != 0); returns 1 after the last byte of
 * a scanned one (the caller then consumes and calls is_scan_done). */
int is_scan_data(is_retrieve *r, const pc_imap_ev *ev);
/* Streams the message served to the client; continues on the client's DRAIN. */
void is_pump(is_retrieve *r);

/* Client side: a FETCH command head (tag: the client's, copied); returns 1 if it was held for a
 * pre-scan. */
int is_pf_command(is_retrieve *r, const char *tag, const pc_imap_ev *ev, const pc_imap_cmd_head *h);
/* The held command's line end (copied). */
void is_pf_command_add(is_retrieve *r, const char *p, size_t n);
/* PF_HELD: starts the pre-scan unless blocked (earlier commands unanswered, an APPEND going on,
 * the client in mid-command). */
void is_pf_try_start(is_retrieve *r, int blocked);
/* Upstream side: a whole response line without literals (1: consumed), a first TEXT segment with
 * a literal (1: the line is the gateway's own), a literal of a FETCH response item. */
int is_pf_line(is_retrieve *r, const char *p, size_t n, const pc_imap_resp_head *h);
int is_pf_own_line(is_retrieve *r, const char *p, size_t n);
int is_pf_part_literal(is_retrieve *r, const pc_imap_ev *ev);
void is_pf_text(is_retrieve *r, const char *p, size_t n);
/* A FETCH response segment to the client: as it is, or with the value of RFC822.SIZE at depth 1
 * (depth: at the segment's start) replaced by r->size_fix when r->size_fix_on. */
void is_fetch_seg_out(is_retrieve *r, const char *p, size_t n, int depth);
/* The held segment before a whole-message literal goes out unchanged (the literal is relayed). */
void is_hold_release(is_retrieve *r);

#endif
