/* imap_server_session.h — the state of one client-facing IMAP session and the low-level helpers
 * its files share (imap_server_session.c). The files call each other in one direction only:
 * imap_server.c (session life, pre-login) → imap_server_relay.c (login, relay after login) → the
 * objects the relay drives, imap_append.c and imap_retrieve.c (→ imap_select.c), which see the
 * session only through their ops; imap_caps.c and imap_server_session.c are below them all, and
 * reach the session's own functions only through s->sops. Internal to gateway/imap/. */
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
#include "imap/imap_retrieve.h"
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

typedef struct isess isess;

/* What the session before login (imap_server.c) provides to the files below it. */
typedef struct is_session_ops {
    void (*process)(isess *s); /* the input loop of the current state */
    void (*close)(isess *s);   /* ends the session: the relay freed, the CLOSE hook, the log line */
} is_session_ops;

struct isess {
    pc_session base; /* first: what every protocol's session has (session.h); base.run is the
                        CONNECT hook, later the CLOSE hook (the retrieve hook's is rt.run) */
    const is_session_ops *sops; /* set at start by imap_server.c */
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
    /* for the session's log line */
    unsigned commands;

    /* client stream */
    pc_imap_tok ctok;
    int c_first;     /* next TEXT begins a command */
    char tag[64];    /* of the command being read */
    char name[32];   /* its name (upper case) */
    size_t line_fwd; /* bytes of the current command forwarded upstream */
    int swallow;     /* relay: the current command is answered here, not forwarded */
    const char *swallow_reply;
    int sync_wait;        /* relay: a synchronising literal was forwarded, the answer is due */
    unsigned outstanding; /* relay: client commands sent upstream whose tagged answer is due */
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
    int u_kind;     /* pc_imap_fetch_item of the last TEXT */
    int u_own;      /* the upstream line is the gateway's (internal command): not relayed */
    char ann[32];   /* literal announcement held until its LITERAL event */
    size_t ann_len;
    int u_paused; /* upstream reading paused until the client drains */
    int c_paused;
    /* FETCH through the retrieve hook (imap_retrieve.h), driven by the relay */
    is_retrieve rt;
    unsigned ref_serial; /* references of notices and internal tags (retrieve and APPEND) */

    /* APPEND through the message hook (imap_append.h), driven by the relay */
    is_append ap;
};

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

/* imap_server_session.c: calls none of the other files by name */
/* "* BYE text", at most once per session: after the upstream's own BYE was relayed, nothing. */
void is_bye(isess *s, const char *text);
/* Counts a client error; at mailbox.errors "* BYE" and close. */
void is_error_count(isess *s);
/* The client tokenizer's limits before login (relay 0) or after (relay 1); a command starts. */
void is_tok_client_init(isess *s, int relay);
/* Batched to the upstream (s->uout; wiped after writing before the relay: credentials) and to the
 * client (s->base.out, written when IMAP_CHUNK is reached). Copied. */
void is_up_send(isess *s, const void *p, size_t n);
void is_up_flush(isess *s);
void is_out_add(isess *s, const void *p, size_t n);
/* Through s->sops: the session ends (once; phase IP_CLOSING), the client's input is processed
 * (again later when called from within). */
void is_close(isess *s);
void is_process(isess *s);

#endif
