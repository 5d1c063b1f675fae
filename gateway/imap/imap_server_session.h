/* imap_server_session.h — the state of one client-facing IMAP session and what its files share:
 * imap_server.c (session life, pre-login commands, login) and imap_server_relay.c (the relay after
 * login, CAPABILITY rewriting, the retrieve hook). Internal; nothing else includes it. */
#ifndef PC_IMAP_SERVER_SESSION_H
#define PC_IMAP_SERVER_SESSION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/chain.h"
#include "core/listener.h"
#include "core/session.h"
#include "core/spool.h"
#include "imap/imap_append.h"
#include "imap/imap_client.h"
#include "imap/imap_flow.h"
#include "imap/imap_token.h"
#include "net/conn.h"

#define IMAP_PRELOGIN_LITERAL_MAX 8192
#define IMAP_MAX_ARGS 4

enum iphase {
    IP_TLS,     /* handshake in progress */
    IP_CONNECT, /* the CONNECT hook runs; input is buffered, not processed, no greeting yet */
    IP_PRE,     /* not authenticated: the gateway answers */
    IP_UPOPEN,  /* opening the upstream for a login */
    IP_LOGIN,   /* login sent upstream, waiting for its tagged answer */
    IP_RELAY,   /* authenticated: relaying */
    IP_CLOSING,
};

enum iwait { IW_NONE, IW_CHAIN, IW_PUMP };

/* Section / partial FETCH pre-scan (imap_retrieve.c). */
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

typedef struct isess {
    pc_session base; /* first: what every protocol's session has (session.h); base.run is the
                        CONNECT hook, later the CLOSE hook (the retrieve hook is `run` below) */
    pc_conn *up;
    pc_imapc *opening;
    enum iphase phase;
    int in_process;
    int again;
    pc_buf uout; /* to the upstream, batched (to the client: base.out) */

    int bye_sent; /* a "* BYE" reached the client output (ours or the upstream's) */
    int up_eof;   /* the upstream closed; what it sent before is still being relayed */
    char user[256];
    unsigned errors;
    unsigned auth_failures;
    unsigned fetched;
    /* for the session's log line */
    unsigned commands;
    unsigned scanned, passed, tagged, withheld, unscanned, cache_hits; /* retrieval */

    /* client stream */
    pc_imap_tok ctok;
    int c_first;     /* next TEXT begins a command */
    char tag[64];    /* of the command being read */
    char name[32];   /* its name (upper case) */
    size_t line_fwd; /* bytes of the current command forwarded upstream */
    int swallow;     /* relay: the current command is answered here, not forwarded */
    const char *swallow_reply;
    int sync_wait; /* relay: a synchronising literal was forwarded, the answer is due */
    int logout;
    /* pre-login command arguments (astrings; literal contents included) */
    pc_buf args;
    size_t arg_off[IMAP_MAX_ARGS], arg_len[IMAP_MAX_ARGS];
    size_t nargs;
    int args_bad;
    int auth_wait; /* AUTHENTICATE PLAIN: the next line is the SASL response */
    /* login */
    char login_tag[64];
    pc_buf cred;     /* authzid NUL user NUL password (wiped) */
    int login_stage; /* 0: command sent; 1: waiting for "+" to send the SASL response */

    /* upstream stream */
    pc_imap_tok utok;
    int u_skip_end; /* the line was rewritten: drop its LINE_END */
    int u_fetch;    /* the line is "* n FETCH" */
    int u_kind;     /* pc_imap_fetch_item of the last TEXT */
    char ann[32];   /* literal announcement held until its LITERAL event */
    size_t ann_len;
    int u_paused; /* upstream reading paused until the client drains */
    int c_paused;
    /* retrieve hook */
    enum iwait wait;
    int scan; /* 1: spooling the literal; 2: discarding it (oversize refused) */
    uint64_t scan_size;
    pc_spool *spool;
    int spool_err;
    pc_message *msg;
    pc_chain_run *run;
    pc_buf notice;
    size_t emit_off;
    uint64_t t0;

    /* APPEND through the message hook (imap_append.h), driven by the relay */
    is_append ap;

    /* FETCH of sections / partials: pre-scan, verdict map, cache key */
    unsigned outstanding; /* client commands sent upstream whose tagged answer is due */
    char sel_mbox[256];   /* selected mailbox as the client named it ("" unknown) */
    uint32_t sel_uidv;    /* its UIDVALIDITY (0 unknown) */
    enum iprescan pf;
    pc_buf pf_cmd;    /* the held FETCH command line (CRLF included) */
    char pf_tag[64];  /* its tag */
    char pf_itag[24]; /* tag of the internal command running */
    int pf_uidcmd;    /* the client's command is UID FETCH */
    int pf_failed;    /* the UID step failed: parts of unknown messages are withheld */
    ipf_ent *pmap;
    size_t pmap_n, pmap_cap;
    unsigned pf_serial;
    int scan_pre;    /* the literal being scanned belongs to the pre-scan */
    uint32_t u_seq;  /* "* n FETCH": n */
    uint32_t u_uid;  /* UID seen in this FETCH response so far (0 none) */
    int u_pdepth;    /* parenthesis depth reached in this response's text */
    int u_own;       /* the upstream line is the gateway's (internal command): not relayed */
    char u_item[64]; /* item name of the literal held in ann */
    /* RFC822.SIZE of a whole message served changed (tagged, replaced, withheld) */
    pc_buf hold;       /* the FETCH segment before a whole-message literal, until its verdict */
    int hold_depth;    /* parenthesis depth at the start of that segment */
    uint64_t size_fix; /* served size: RFC822.SIZE later in this response is rewritten */
    int size_fix_on;
} isess;

_Static_assert(offsetof(isess, base) == 0, "an isess is its pc_session (conn and chain callbacks)");

/* The conn's pending input, never a null pointer (the tokenizer may be called with 0 bytes to
 * collect an event it owes: LITERAL after its announcement). */
static inline const char *in_ptr(const pc_conn *c)
{
    return pc_conn_pending(c) ? pc_buf_ptr(&c->in) : "";
}

/* Replies to the client, batched in s->base.out and written by is_flush (session.h). */
#define is_reply(s, ...) pc_session_reply(&(s)->base, __VA_ARGS__)
static inline void is_flush(isess *s)
{
    pc_session_flush(&s->base);
}

/* imap_server.c */
/* "* BYE text", at most once per session: after the upstream's own BYE was relayed, nothing. */
void is_bye(isess *s, const char *text);
void is_close(isess *s);
void is_error_count(isess *s);
void is_process(isess *s);

/* imap_server_relay.c */
void is_login_start(isess *s);
void is_relay_client(isess *s);
void is_relay_upstream(isess *s);
void is_up_event(pc_conn *c, pc_conn_event ev, void *ud);
void is_client_drained(isess *s);
void is_relay_free(isess *s);
/* Sets up the objects the relay drives (at session start). */
void is_relay_init(isess *s);
void is_caps_rewrite(isess *s, const char *caps, size_t n, pc_buf *out);
void is_tok_client_init(isess *s, int relay);
void is_up_send(isess *s, const void *p, size_t n);
void is_up_flush(isess *s);
void is_out_add(isess *s, const void *p, size_t n);

/* imap_retrieve.c: whole-message FETCH through the retrieve hook, the section pre-scan and the
 * per-worker verdict cache */
int is_scannable(const isess *s);
void is_scan_begin(isess *s, const pc_imap_ev *ev);
void is_scan_done(isess *s);
void is_pump(isess *s);
void is_retrieve_free(isess *s);
/* Client side: a FETCH command head; returns 1 if it was held for a pre-scan. */
int is_pf_command(isess *s, const pc_imap_ev *ev, const pc_imap_cmd_head *h);
void is_pf_try_start(isess *s);
/* Upstream side: a whole response line without literals (1: consumed), a first TEXT segment with
 * a literal (1: the line is the gateway's own), a literal of a FETCH response item. */
int is_pf_line(isess *s, const char *p, size_t n, const pc_imap_resp_head *h);
int is_pf_own_line(isess *s, const char *p, size_t n);
int is_pf_part_literal(isess *s, const pc_imap_ev *ev);
void is_pf_text(isess *s, const char *p, size_t n);
/* A FETCH response segment to the client: as it is, or with the value of RFC822.SIZE at depth 1
 * (depth: at the segment's start) replaced by s->size_fix when s->size_fix_on. */
void is_fetch_seg_out(isess *s, const char *p, size_t n, int depth);
/* The held segment before a whole-message literal goes out unchanged (the literal is relayed). */
void is_hold_release(isess *s);
void is_sel_command(isess *s, const pc_imap_cmd_head *h);

#endif
