/* conn.h — one byte stream over a libuv TCP handle, with optional TLS through OpenSSL memory BIOs.
 * It owns the socket, the TLS state, a bounded input buffer of plaintext and the write queue; the
 * protocol code above it sees only plaintext. Read buffers are allocated when bytes arrive and
 * freed when consumed, so an idle connection holds no buffer. Starting TLS discards any plaintext
 * still buffered (the STARTTLS injection class): the caller checks pc_conn_pending() first if it
 * wants to refuse instead. */
#ifndef PC_CONN_H
#define PC_CONN_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/buf.h"

typedef struct pc_conn pc_conn;

typedef enum {
    PC_CONN_EV_READ,       /* new plaintext was appended to c->in */
    PC_CONN_EV_EOF,        /* the peer closed its side; c->in may still hold bytes */
    PC_CONN_EV_ERROR,      /* socket or TLS error (c->err has the libuv code or -1 for TLS) */
    PC_CONN_EV_TIMEOUT,    /* no bytes arrived within the idle timeout */
    PC_CONN_EV_CONNECTED,  /* pc_conn_connect() finished */
    PC_CONN_EV_TLS_DONE,   /* handshake finished */
    PC_CONN_EV_TLS_FAILED, /* handshake failed (c->errtext says why, sanitised) */
    PC_CONN_EV_DRAIN,      /* every queued byte was handed to the kernel (only if want_drain) */
    PC_CONN_EV_CLOSED,     /* last event: the handles are closed; the owner frees its own state.
                              The conn itself is freed right after the callback returns. */
} pc_conn_event;

typedef void (*pc_conn_cb)(pc_conn *c, pc_conn_event ev, void *ud);

struct pc_conn {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    pc_conn_cb cb;
    void *ud;
    pc_buf in; /* plaintext received, not yet consumed */
    SSL *ssl;  /* NULL while plaintext */
    BIO *rbio, *wbio;
    size_t wpending;     /* bytes queued in uv_write requests */
    uint64_t bytes_in;   /* plaintext received (after TLS), for the session's log line */
    uint64_t bytes_out;  /* plaintext handed to pc_conn_write */
    unsigned timeout_ms; /* idle timeout; 0 = none */
    int err;
    char errtext[128];
    struct sockaddr_storage peer;
    struct sockaddr_storage local;
    unsigned reading : 1; /* the owner wants bytes */
    unsigned full : 1;    /* reading paused because `in` is at its max */
    unsigned eof : 1;
    unsigned closing : 1;
    unsigned want_drain : 1;
    unsigned tls_handshaking : 1;
    unsigned tls_server : 1;
    unsigned connecting : 1;
    int handles; /* handles still open; 0 → freed */
};

/* Creates a conn bound to loop; in_max bounds the plaintext input buffer. Returns NULL on no
 * memory. The conn is freed by the library after PC_CONN_EV_CLOSED. */
pc_conn *pc_conn_new(uv_loop_t *loop, size_t in_max, pc_conn_cb cb, void *ud);
/* Accepts a pending connection from server; sets TCP_NODELAY; fills peer and local. 0 or <0. */
int pc_conn_accept(pc_conn *c, uv_stream_t *server);
/* Starts connecting (TCP_NODELAY set); PC_CONN_EV_CONNECTED or PC_CONN_EV_ERROR/TIMEOUT follows.
 * timeout_ms 0 = none. Returns 0, or <0 if it could not start (no event follows then). */
int pc_conn_connect(pc_conn *c, const struct sockaddr *addr, unsigned timeout_ms);

/* Start or stop delivering PC_CONN_EV_READ. While stopped, nothing is read from the socket. */
void pc_conn_read_start(pc_conn *c);
void pc_conn_read_stop(pc_conn *c);
/* Drops n bytes from the front of c->in (resumes reading if it had stopped because `in` was full).
 */
void pc_conn_consume(pc_conn *c, size_t n);
static inline size_t pc_conn_pending(const pc_conn *c)
{
    return pc_buf_used(&c->in);
}
/* Sets the idle timeout, restarted by every read; 0 disables. */
void pc_conn_set_timeout(pc_conn *c, unsigned ms);
/* Sets a deadline of ms for the peer's next unit of input (a command line): bytes that arrive do
 * not move it, so a client trickling one byte at a time cannot hold the session. Asking for the
 * same deadline again restarts it only if input was consumed (pc_conn_consume) since it was set;
 * pc_conn_set_timeout or pc_conn_set_deadline(c, 0) ends it. Like the idle timeout it runs only
 * while the conn waits for the peer's bytes, and it ends in PC_CONN_EV_TIMEOUT. */
void pc_conn_set_deadline(pc_conn *c, unsigned ms);

/* Queues n bytes (copied; encrypted when TLS is on). Returns 0, or -1 if the conn is closing or
 * memory ran out. Write errors arrive as PC_CONN_EV_ERROR. */
int pc_conn_write(pc_conn *c, const void *p, size_t n);

/* Starts a TLS handshake as server or client. Any plaintext buffered in c->in is discarded.
 * Client: sni may be NULL; verify_name, if not NULL, is checked against the certificate (a host
 * name, or an IP address literal checked as an IP); verification against the context's store is on
 * when the context asks for it. Returns 0, or -1 (no event follows). */
int pc_conn_tls_server(pc_conn *c, SSL_CTX *ctx);
int pc_conn_tls_client(pc_conn *c, SSL_CTX *ctx, const char *sni, const char *verify_name);
/* "TLSv1.3" / cipher name / NULL when plaintext. */
const char *pc_conn_tls_version(const pc_conn *c);
const char *pc_conn_tls_cipher(const pc_conn *c);

/* Closes: queued writes are flushed first (bounded by a short deadline), then the handles are
 * closed and PC_CONN_EV_CLOSED is delivered. No other event is delivered after this call.
 * Idempotent. */
void pc_conn_close(pc_conn *c);

/* Formats an address "1.2.3.4" / "2001:db8::1" into out (at least INET6_ADDRSTRLEN). */
const char *pc_addr_str(const struct sockaddr *sa, char *out, size_t outlen);

#endif
