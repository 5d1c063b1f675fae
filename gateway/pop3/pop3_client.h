/* pop3_client.h — a POP3 client session towards the upstream: connect (with an outbound PROXY v2
 * header when the identity mode is proxy), implicit TLS or STLS (RFC 2595) with chain and name
 * verification, greeting, CAPA (stored in the listener's caps_text/caps_flags, never the plaintext
 * list read before STLS), then commands, each answer's status line and, for multi-line answers,
 * its body streamed to the caller: wire bytes (byte-exact, still dot-stuffed) and/or the
 * dot-unstuffed content. One command at a time, or a window of them in flight when the upstream
 * announces PIPELINING (RFC 2449 §6.6), answered in order. Fails closed: STLS missing where
 * configured, or bytes after the +OK to STLS, end the session before any credential is sent; bytes
 * after the answer to the last command in flight (POP3 has no unsolicited responses) end it too.
 * Used by the POP3 server (pop3_server.c) and the start-up probe (worker.c). */
#ifndef PC_POP3_CLIENT_H
#define PC_POP3_CLIENT_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/listener.h"
#include "pop3/pop3_parse.h"

typedef struct pc_pop3c pc_pop3c;

typedef enum {
    PC_POP3C_OK = 0,
    PC_POP3C_UNAVAILABLE, /* connect failed, closed, timed out */
    PC_POP3C_PROTOCOL,    /* the upstream broke the protocol or a TLS requirement */
} pc_pop3c_status;

/* Flag of listener caps_flags (beside the PC_POP3_CAP_ bits): the upstream offers SASL PLAIN. */
#define PC_POP3C_CAPF_PLAIN (1u << 20)

typedef struct pc_pop3c_params {
    uv_loop_t *loop;
    uint64_t sid;
    pc_listener_rt *l;              /* upstream config and address; caps are refreshed here */
    struct sockaddr_storage client; /* the client's address (PROXY source) */
    struct sockaddr_storage local;  /* where the client connected to (PROXY destination) */
} pc_pop3c_params;

/* What to do with the answer to one command. Every function may be NULL except done. */
typedef struct pc_pop3c_handler {
    /* The status line (slices valid during the call). For a "+OK" to a multi-line command the body
     * follows. */
    void (*status)(void *ud, const pc_pop3_resp *r);
    /* Body content, dot-unstuffed (return <0 to abort: the session fails). */
    int (*content)(void *ud, const char *p, size_t n);
    /* Body wire bytes as received, stuffing and the final ".\r\n" included. */
    int (*raw)(void *ud, const char *p, size_t n);
    /* Exactly once: the answer is complete (OK; body_flags are the body reader's PC_DATA_ flags),
     * or the session failed (status may or may not have been called before). */
    void (*done)(void *ud, pc_pop3c_status st, unsigned body_flags);
    void *ud;
} pc_pop3c_handler;

typedef void (*pc_pop3c_ready_fn)(void *ud, pc_pop3c_status st);

/* Opens a session; ready(OK) once it can take commands (after CAPA, and STLS when configured), or a
 * failure. Returns NULL if it could not start (no callback then). */
pc_pop3c *pc_pop3c_open(const pc_pop3c_params *p, pc_pop3c_ready_fn ready, void *ud);
/* Sends one command line (without CRLF). multiline: what pc_pop3_multiline() says for it. secret:
 * the line carries credentials (wiped after sending, never logged; never pipelined). max_body:
 * content bytes kept (PC_DATA_TOO_BIG past it; 0 = no limit). 0, or -1 if the session cannot take
 * it now (see pc_pop3c_can_queue). When the session fails, done() is called for every command in
 * flight, oldest first, until the caller frees the session. */
int pc_pop3c_command(pc_pop3c *c, const char *line, size_t len, int secret, int multiline,
                     size_t max_body, const pc_pop3c_handler *h);
/* 1 if a command can be sent now: the session is idle, or it is waiting for answers, the upstream
 * pipelines and the window has room. */
int pc_pop3c_can_queue(const pc_pop3c *c);
/* 1 if the upstream announced PIPELINING in this session's CAPA. */
int pc_pop3c_pipelines(const pc_pop3c *c);
/* cork(c, 1) … cork(c, 0): the command lines sent in between leave in one write (nestable). */
void pc_pop3c_cork(pc_pop3c *c, int on);
/* Stops / restarts reading from the upstream (back-pressure while the client is slow). */
void pc_pop3c_pause(pc_pop3c *c, int paused);
int pc_pop3c_alive(const pc_pop3c *c);
/* Ends the session and frees it once closed; no callback afterwards. NULL is fine. quit: send QUIT
 * first if idle (commits DELEs); 0 just closes (RFC 1939 §6: a lost client must not commit them).
 */
void pc_pop3c_free(pc_pop3c *c, int quit);

/* Start-up probe: connects once, reads the upstream's CAPA into l, and quits. */
void pc_pop3_probe(pc_listener_rt *l, uv_loop_t *loop);

#endif
