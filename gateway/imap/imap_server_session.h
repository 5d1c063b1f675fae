/* imap_server_session.h — the state of one client-facing IMAP session and what its files share:
 * imap_server.c (session life, pre-login commands, login) and imap_server_relay.c (the relay after
 * login, CAPABILITY rewriting, the retrieve hook). Internal; nothing else includes it. */
#ifndef PC_IMAP_SERVER_SESSION_H
#define PC_IMAP_SERVER_SESSION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "chain.h"
#include "conn.h"
#include "imap/imap_client.h"
#include "imap/imap_token.h"
#include "listener.h"
#include "spool.h"

#define IMAP_PRELOGIN_LITERAL_MAX 8192
#define IMAP_MAX_ARGS 4
#define IMAP_CHUNK 65536
#define IMAP_HIGH_WATER (1024 * 1024)

enum iphase {
    IP_TLS,    /* handshake in progress */
    IP_PRE,    /* not authenticated: the gateway answers */
    IP_UPOPEN, /* opening the upstream for a login */
    IP_LOGIN,  /* login sent upstream, waiting for its tagged answer */
    IP_RELAY,  /* authenticated: relaying */
    IP_CLOSING,
};

enum iwait { IW_NONE, IW_CHAIN, IW_PUMP };

typedef struct isess {
    pc_listener_rt *l;
    const pc_listener_cfg *cfg;
    pc_conn *c;
    pc_conn *up;
    pc_imapc *opening;
    uint64_t sid;
    uint64_t start_ms;
    enum iphase phase;
    int in_process;
    int again;
    pc_buf out;  /* to the client, batched */
    pc_buf uout; /* to the upstream, batched */

    pc_session_view sv;
    pc_results results;
    char client_ip[INET6_ADDRSTRLEN];
    int tls;
    char user[256];
    unsigned errors;
    unsigned auth_failures;
    unsigned fetched;
    unsigned conn_counted;

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
} isess;

/* The conn's pending input, never a null pointer (the tokenizer may be called with 0 bytes to
 * collect an event it owes: LITERAL after its announcement). */
static inline const char *in_ptr(const pc_conn *c)
{
    return pc_conn_pending(c) ? pc_buf_ptr(&c->in) : "";
}

/* imap_server.c */
void is_reply(isess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void is_flush(isess *s);
void is_close(isess *s);
void is_error_count(isess *s);
void is_process(isess *s);
uint64_t is_now_ms(void);

/* imap_server_relay.c */
void is_login_start(isess *s);
void is_relay_client(isess *s);
void is_relay_upstream(isess *s);
void is_up_event(pc_conn *c, pc_conn_event ev, void *ud);
void is_client_drained(isess *s);
void is_relay_free(isess *s);
void is_caps_rewrite(isess *s, const char *caps, size_t n, pc_buf *out);
void is_tok_client_init(isess *s, int relay);

#endif
