/* smtp_client.h — the gateway's SMTP client towards the upstream: connect (optionally with an
 * outbound PROXY v2 header), greeting, EHLO, STARTTLS with verification, XCLIENT, then one command
 * at a time and the DATA phase with the message re-encoded (CRLF, dot-stuffed). It validates every
 * reply it interprets itself and fails closed: an unexpected code, bytes after the 220 to STARTTLS,
 * a missing STARTTLS where TLS is configured, or an oversized reply end the upstream session. */
#ifndef PC_SMTP_CLIENT_H
#define PC_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/upstream.h"
#include "portcullis/message.h"
#include "smtp/smtp_reply.h"

typedef struct pc_smtpc pc_smtpc;

typedef enum {
    PC_SMTPC_OK = 0,      /* reply is valid */
    PC_SMTPC_UNAVAILABLE, /* could not connect, connection lost, timed out */
    PC_SMTPC_PROTOCOL,    /* the upstream broke the protocol (or TLS could not be had) */
} pc_smtpc_status;

/* reply is borrowed, valid during the call; NULL unless status is PC_SMTPC_OK. After a status other
 * than OK the client is dead: the owner calls pc_smtpc_free(). */
typedef void (*pc_smtpc_cb)(void *ud, pc_smtpc_status status, const pc_smtp_reply *reply);

typedef struct pc_smtpc_params {
    uv_loop_t *loop;
    uint64_t sid;
    pc_upstream *up;                /* caps are refreshed from every EHLO */
    SSL_CTX *tls_ctx;               /* for STARTTLS / implicit TLS; NULL when tls is none */
    const char *helo_name;          /* our EHLO name */
    struct sockaddr_storage client; /* the client's address (for XCLIENT / PROXY) */
    struct sockaddr_storage local;  /* where the client connected to (PROXY destination) */
    const char *client_helo;        /* may be NULL */
    const char *login;              /* authenticated user, may be NULL */
} pc_smtpc_params;

/* Opens a session; cb(OK, greeting-or-EHLO reply) once ready for MAIL/AUTH, or a failure.
 * Strings in p are copied. Returns NULL if the session could not even start (no memory, connect
 * refused at once): no callback then, the caller answers as for an unavailable upstream. */
pc_smtpc *pc_smtpc_open(const pc_smtpc_params *p, pc_smtpc_cb cb, void *ud);
/* Sends one command line (without CRLF) and calls cb with its reply. secret != 0: the line carries
 * credentials; it is wiped from the client's buffers after sending and never logged. 0 or -1. */
int pc_smtpc_command(pc_smtpc *c, const char *line, size_t len, int secret, pc_smtpc_cb cb,
                     void *ud);
/* DATA, expects 354, streams m dot-stuffed, then cb with the final reply. 0 or -1. */
int pc_smtpc_data(pc_smtpc *c, const pc_message *m, pc_smtpc_cb cb, void *ud);
/* A session taken from the reuse pool logs under the new owner's session id. */
void pc_smtpc_adopt(pc_smtpc *c, uint64_t sid);
/* 1 while the session is usable (not lost, not failed). */
int pc_smtpc_alive(const pc_smtpc *c);
/* Ends the session (QUIT if idle and alive) and frees it once its handles are closed; no callback
 * is called after this. NULL is fine. */
void pc_smtpc_free(pc_smtpc *c);

/* Parses EHLO reply lines (after the first) into caps. */
void pc_smtp_caps_parse(pc_upstream_caps *caps, const pc_smtp_reply *r);

#endif
