/* conn.c — one byte stream over libuv TCP, TLS through OpenSSL memory BIOs (see conn.h). Buffers
 * exist only while bytes are in flight; one timer serves the idle, connect and close deadlines. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)
#define TLS_WRITE_CHUNK 16384
#define CLOSE_WAIT_MS 2000
#define NO_DEADLINE UINT64_MAX

/* Socket reads land here and are copied out before the read callback returns, so one buffer per
 * thread serves every connection of its loop. */
static _Thread_local char rbuf[READ_CHUNK];

/* Private state; the public struct comes first so that a pc_conn * is also a conn_priv *. */
typedef struct conn_priv {
    pc_conn pub;
    uv_connect_t creq;
    pc_buf wq;              /* plaintext written while the handshake runs */
    uint64_t idle_deadline; /* loop time, NO_DEADLINE when disarmed */
    uint64_t connect_deadline;
    uint64_t close_deadline;
    uint64_t timer_due;      /* when the uv timer fires next, NO_DEADLINE when stopped */
    unsigned open : 1;       /* accepted or connected */
    unsigned uv_reading : 1; /* uv_read_start is in effect */
    unsigned dead : 1;       /* read side finished: error, EOF or TLS failure */
    unsigned eof_sent : 1;
    unsigned error_sent : 1;
    unsigned tls_failed : 1;
    unsigned close_wait : 1; /* closing, waiting for writes to drain */
    unsigned handles_closed : 1;
    unsigned deferred : 1;     /* run process_deferred() from the timer */
    unsigned connect_done : 1; /* connect finished or timed out: ignore a late callback */
    unsigned deadline : 1;     /* the timeout is a deadline: reads do not move it */
    unsigned consumed : 1;     /* input was consumed since the deadline was set */
    int pending_error;         /* a write failed inside the owner's call: ERROR comes later */
} conn_priv;

typedef struct wreq {
    uv_write_t req;
    size_t len;
    size_t cap;
    char data[];
} wreq;

static inline conn_priv *P(pc_conn *c)
{
    return (conn_priv *)c;
}

static void timer_cb(uv_timer_t *t);
static void update_reading(pc_conn *c);

static void emit(pc_conn *c, pc_conn_event ev)
{
    if (c->closing && ev != PC_CONN_EV_CLOSED)
        return;
    c->cb(c, ev, c->ud);
}

/* ---- timer ---- */

static void arm_timer(pc_conn *c)
{
    conn_priv *p = P(c);
    if (p->handles_closed)
        return;
    uint64_t now = uv_now(c->loop);
    uint64_t next = NO_DEADLINE;
    if (p->deferred)
        next = now;
    if (p->close_wait) {
        if (p->close_deadline < next)
            next = p->close_deadline;
    } else if (!c->closing) {
        if (c->connecting && p->connect_deadline < next)
            next = p->connect_deadline;
        if (p->idle_deadline < next)
            next = p->idle_deadline;
    }
    if (next == NO_DEADLINE) {
        if (p->timer_due != NO_DEADLINE)
            uv_timer_stop(&c->timer);
        p->timer_due = NO_DEADLINE;
        return;
    }
    /* A timer due earlier than needed just fires and re-arms: cheaper than restarting the timer
     * on every read. */
    if (p->timer_due <= next && p->timer_due != NO_DEADLINE)
        return;
    p->timer_due = next;
    uv_timer_start(&c->timer, timer_cb, next > now ? next - now : 0, 0);
}

static int want_socket_read(const pc_conn *c)
{
    const conn_priv *p = (const conn_priv *)c;
    return p->open && !c->closing && !p->dead && !c->full && (c->reading || c->tls_handshaking);
}

/* The idle clock runs only while we wait for the peer's bytes. */
static void restart_idle(pc_conn *c)
{
    conn_priv *p = P(c);
    if (c->timeout_ms && want_socket_read(c))
        p->idle_deadline = uv_now(c->loop) + c->timeout_ms;
    else
        p->idle_deadline = NO_DEADLINE;
    arm_timer(c);
}

/* ---- TLS helpers ---- */

static void sanitize_text(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            *s = '?';
}

static void set_tls_error(pc_conn *c, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, c->errtext, sizeof(c->errtext));
    else
        snprintf(c->errtext, sizeof(c->errtext), "%s", fallback);
    if (c->ssl) {
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK) {
            size_t l = strlen(c->errtext);
            snprintf(c->errtext + l, sizeof(c->errtext) - l, ": %s",
                     X509_verify_cert_error_string(v));
        }
    }
    sanitize_text(c->errtext);
    ERR_clear_error();
    c->err = -1;
}

/* A memory BIO keeps its largest size forever; swap an empty one for a fresh one so an idle
 * connection holds no ciphertext buffer. */
static void shrink_bios(pc_conn *c)
{
    BUF_MEM *bm = NULL;
    if (BIO_ctrl_pending(c->rbio) == 0) {
        BIO_get_mem_ptr(c->rbio, &bm);
        if (bm && bm->max > 0) {
            BIO *nb = BIO_new(BIO_s_mem());
            if (nb) {
                BIO_set_mem_eof_return(nb, -1);
                SSL_set0_rbio(c->ssl, nb);
                c->rbio = nb;
            }
        }
    }
    bm = NULL;
    if (BIO_ctrl_pending(c->wbio) == 0) {
        BIO_get_mem_ptr(c->wbio, &bm);
        if (bm && bm->max > 0) {
            BIO *nb = BIO_new(BIO_s_mem());
            if (nb) {
                SSL_set0_wbio(c->ssl, nb);
                c->wbio = nb;
            }
        }
    }
}

/* ---- writes ---- */

static void set_error(pc_conn *c, int err)
{
    conn_priv *p = P(c);
    if (!c->err)
        c->err = err;
    p->dead = 1;
    update_reading(c);
    if (!p->error_sent) {
        p->error_sent = 1;
        emit(c, PC_CONN_EV_ERROR);
    }
}

static void close_handles(pc_conn *c);

static void write_cb(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    pc_conn *c = req->data;
    c->wpending -= w->len;
    free(w);
    if (c->closing) {
        if (P(c)->close_wait && (c->wpending == 0 || status < 0)) {
            P(c)->close_wait = 0;
            close_handles(c);
        }
        return;
    }
    if (status < 0) {
        set_error(c, status);
        return;
    }
    if (c->wpending == 0 && c->want_drain)
        emit(c, PC_CONN_EV_DRAIN);
}

static wreq *wreq_new(size_t cap)
{
    wreq *w = malloc(sizeof(*w) + cap);
    if (w) {
        w->len = 0;
        w->cap = cap;
    }
    return w;
}

static int wreq_submit(pc_conn *c, wreq *w)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    w->req.data = c;
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (r < 0) {
        /* Reported like an asynchronous write error, never from inside the owner's call. */
        free(w);
        if (!P(c)->pending_error)
            P(c)->pending_error = r;
        P(c)->deferred = 1;
        arm_timer(c);
        return 0;
    }
    c->wpending += w->len;
    return 0;
}

/* Moves everything the TLS engine produced into w (grown as needed). */
static int drain_wbio(pc_conn *c, wreq **wp)
{
    size_t pend;
    while ((pend = BIO_ctrl_pending(c->wbio)) > 0) {
        wreq *w = *wp;
        if (!w || w->cap - w->len < pend) {
            size_t cap = (w ? w->len : 0) + pend + (w ? w->cap / 2 : 0);
            wreq *nw = realloc(w, sizeof(*w) + cap);
            if (!nw)
                return -1;
            if (!w)
                nw->len = 0;
            nw->cap = cap;
            *wp = w = nw;
        }
        int n = BIO_read(c->wbio, w->data + w->len,
                         (int)(w->cap - w->len > INT32_MAX ? INT32_MAX : w->cap - w->len));
        if (n <= 0)
            break;
        w->len += (size_t)n;
    }
    return 0;
}

/* Sends whatever the TLS engine has queued (handshake records, alerts, tickets) in one write. */
static int flush_wbio(pc_conn *c)
{
    wreq *w = NULL;
    int r = drain_wbio(c, &w);
    if (w && w->len > 0 && r == 0) {
        r = wreq_submit(c, w);
        w = NULL;
    }
    free(w);
    return r;
}

static int tls_write(pc_conn *c, const char *p, size_t n)
{
    size_t est = n + (n / TLS_WRITE_CHUNK + 1) * 128;
    wreq *w = wreq_new(est);
    if (!w)
        return -1;
    ERR_clear_error();
    while (n > 0) {
        int k = n > TLS_WRITE_CHUNK ? TLS_WRITE_CHUNK : (int)n;
        int r = SSL_write(c->ssl, p, k);
        if (r <= 0) {
            free(w);
            set_tls_error(c, "TLS write failed");
            return -1;
        }
        p += r;
        n -= (size_t)r;
        if (drain_wbio(c, &w) < 0) {
            free(w);
            return -1;
        }
    }
    shrink_bios(c);
    if (w->len == 0) {
        free(w);
        return 0;
    }
    return wreq_submit(c, w);
}

int pc_conn_write(pc_conn *c, const void *p, size_t n)
{
    conn_priv *pr = P(c);
    if (c->closing || pr->tls_failed || pr->error_sent || pr->pending_error)
        return -1;
    if (n == 0)
        return 0;
    c->bytes_out += n;
    if (c->ssl) {
        if (c->tls_handshaking)
            return pc_buf_append(&pr->wq, p, n);
        return tls_write(c, p, n);
    }
    wreq *w = wreq_new(n);
    if (!w)
        return -1;
    memcpy(w->data, p, n);
    w->len = n;
    return wreq_submit(c, w);
}

/* ---- reads ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pc_conn *c = h->data;
    size_t n = sizeof(rbuf);
    (void)suggested;
    /* Plaintext: never take more from the kernel than `in` can hold, so nothing is left over. */
    if (!c->ssl && c->in.max) {
        size_t used = pc_buf_used(&c->in);
        size_t space = used < c->in.max ? c->in.max - used : 0;
        if (space < n)
            n = space;
    }
    *buf = uv_buf_init(rbuf, (unsigned)n);
}

static size_t in_space(const pc_conn *c)
{
    size_t used = pc_buf_used(&c->in);
    if (!c->in.max)
        return READ_CHUNK;
    return used < c->in.max ? c->in.max - used : 0;
}

static void check_full(pc_conn *c)
{
    if (c->in.max && pc_buf_used(&c->in) >= c->in.max)
        c->full = 1;
}

#define PULL_GOT 1    /* bytes were appended to c->in */
#define PULL_CLOSED 2 /* the peer sent close_notify */

/* Decrypts what the rbio holds into c->in. Returns PULL_* flags, or -1 on a TLS error (errtext
 * set). */
static int tls_pull(pc_conn *c)
{
    int got = 0;
    ERR_clear_error();
    for (;;) {
        size_t space = in_space(c);
        if (space == 0) {
            c->full = 1;
            break;
        }
        if (space > sizeof(rbuf))
            space = sizeof(rbuf);
        int n = SSL_read(c->ssl, rbuf, (int)space);
        if (n > 0) {
            if (pc_buf_append(&c->in, rbuf, (size_t)n) < 0) {
                snprintf(c->errtext, sizeof(c->errtext), "out of memory");
                c->err = -1;
                return -1;
            }
            c->bytes_in += (uint64_t)n;
            got = PULL_GOT;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        flush_wbio(c);
        if (e == SSL_ERROR_ZERO_RETURN)
            return got | PULL_CLOSED;
        set_tls_error(c, "TLS read failed");
        return -1;
    }
    check_full(c);
    flush_wbio(c); /* post-handshake messages (tickets, key updates) */
    shrink_bios(c);
    return got;
}

static void send_eof(pc_conn *c)
{
    conn_priv *p = P(c);
    p->dead = 1;
    update_reading(c);
    if (!p->eof_sent) {
        p->eof_sent = 1;
        c->eof = 1;
        emit(c, PC_CONN_EV_EOF);
    }
}

static void tls_fail(pc_conn *c, const char *fallback)
{
    conn_priv *p = P(c);
    if (!c->errtext[0] || c->err != -1)
        set_tls_error(c, fallback);
    c->tls_handshaking = 0;
    p->tls_failed = 1;
    p->dead = 1;
    pc_buf_release(&p->wq);
    update_reading(c);
    emit(c, PC_CONN_EV_TLS_FAILED);
}

/* Decrypts application data and delivers READ; used after reads, the handshake and consume. */
static void tls_data(pc_conn *c)
{
    int r = tls_pull(c);
    if (r == -1) {
        set_error(c, -1);
        return;
    }
    if ((r & PULL_GOT) && c->reading) {
        emit(c, PC_CONN_EV_READ);
        if (c->closing)
            return;
    }
    if (r & PULL_CLOSED)
        send_eof(c);
}

/* Drives the handshake with whatever ciphertext the rbio holds. */
static void tls_advance(pc_conn *c)
{
    conn_priv *p = P(c);
    if (c->tls_handshaking) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
            set_tls_error(c, "TLS handshake failed");
            flush_wbio(c); /* our alert */
            tls_fail(c, "TLS handshake failed");
            return;
        }
        if (flush_wbio(c) < 0) {
            set_error(c, c->err ? c->err : -1);
            return;
        }
        if (e == SSL_ERROR_WANT_READ) {
            shrink_bios(c);
            return;
        }
        c->tls_handshaking = 0;
        update_reading(c);
        /* Bytes written during the handshake go out before anything the owner writes on DONE. */
        if (pc_buf_used(&p->wq) > 0) {
            int wr = tls_write(c, pc_buf_ptr(&p->wq), pc_buf_used(&p->wq));
            pc_buf_release(&p->wq);
            if (wr < 0) {
                set_error(c, c->err ? c->err : -1);
                return;
            }
        }
        emit(c, PC_CONN_EV_TLS_DONE);
        if (c->closing)
            return;
    }
    if (c->ssl && !c->tls_handshaking && !p->tls_failed)
        tls_data(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pc_conn *c = s->data;
    conn_priv *p = P(c);
    if (c->closing || p->dead || nread == 0)
        return;
    if (nread == UV_ENOBUFS) {
        c->full = 1;
        update_reading(c);
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF) {
            set_error(c, (int)nread);
            return;
        }
        if (c->tls_handshaking) {
            snprintf(c->errtext, sizeof(c->errtext), "connection closed during the TLS handshake");
            c->err = -1;
            tls_fail(c, c->errtext);
            return;
        }
        send_eof(c);
        return;
    }
    if (!p->deadline || p->idle_deadline == NO_DEADLINE)
        restart_idle(c); /* an idle timeout moves with every read; a deadline does not */
    if (!c->ssl) {
        if (pc_buf_append(&c->in, buf->base, (size_t)nread) < 0) {
            set_error(c, UV_ENOMEM);
            return;
        }
        c->bytes_in += (uint64_t)nread;
        check_full(c);
        if (c->full)
            update_reading(c);
        if (c->reading)
            emit(c, PC_CONN_EV_READ);
        return;
    }
    if (p->tls_failed)
        return;
    if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
        set_error(c, UV_ENOMEM);
        return;
    }
    tls_advance(c);
    if (!c->closing)
        update_reading(c);
}

static void update_reading(pc_conn *c)
{
    conn_priv *p = P(c);
    int want = want_socket_read(c);
    if (want && !p->uv_reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0) {
            p->uv_reading = 1;
            restart_idle(c);
        }
    } else if (!want && p->uv_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        p->uv_reading = 0;
        restart_idle(c);
    }
}

/* Work that must not run inside the owner's call: data the TLS engine still holds once `in` has
 * room again, and a READ for bytes already buffered when reading restarts. */
static void process_deferred(pc_conn *c)
{
    conn_priv *p = P(c);
    if (c->closing)
        return;
    if (p->pending_error) {
        set_error(c, p->pending_error);
        return;
    }
    if (c->ssl && !c->tls_handshaking && !p->tls_failed && !c->full &&
        (BIO_ctrl_pending(c->rbio) > 0 || SSL_pending(c->ssl) > 0)) {
        int r = tls_pull(c);
        if (r == -1) {
            set_error(c, -1);
            return;
        }
        if (r & PULL_CLOSED) {
            if (pc_buf_used(&c->in) && c->reading) {
                emit(c, PC_CONN_EV_READ);
                if (c->closing)
                    return;
            }
            send_eof(c);
            return;
        }
    }
    if (pc_buf_used(&c->in) > 0 && c->reading)
        emit(c, PC_CONN_EV_READ);
    if (!c->closing)
        update_reading(c);
}

static void timer_cb(uv_timer_t *t)
{
    pc_conn *c = t->data;
    conn_priv *p = P(c);
    uint64_t now = uv_now(c->loop);
    p->timer_due = NO_DEADLINE;
    if (p->close_wait) {
        if (now >= p->close_deadline) {
            p->close_wait = 0;
            close_handles(c);
            return;
        }
        arm_timer(c);
        return;
    }
    if (c->closing)
        return;
    if (p->deferred) {
        p->deferred = 0;
        process_deferred(c);
        if (c->closing)
            return;
    }
    if (c->connecting && now >= p->connect_deadline) {
        c->connecting = 0;
        p->connect_done = 1;
        p->connect_deadline = NO_DEADLINE;
        c->err = UV_ETIMEDOUT;
        emit(c, PC_CONN_EV_TIMEOUT);
        if (c->closing)
            return;
    }
    if (now >= p->idle_deadline) {
        p->idle_deadline = NO_DEADLINE; /* re-armed by the next read or read_start */
        emit(c, PC_CONN_EV_TIMEOUT);
        if (c->closing)
            return;
    }
    arm_timer(c);
}

/* ---- lifecycle ---- */

pc_conn *pc_conn_new(uv_loop_t *loop, size_t in_max, pc_conn_cb cb, void *ud)
{
    conn_priv *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pc_conn *c = &p->pub;
    c->loop = loop;
    c->cb = cb;
    c->ud = ud;
    pc_buf_init(&c->in, in_max);
    pc_buf_init(&p->wq, 0);
    p->idle_deadline = p->connect_deadline = p->close_deadline = NO_DEADLINE;
    p->timer_due = NO_DEADLINE;
    if (uv_tcp_init(loop, &c->tcp) < 0) {
        free(p);
        return NULL;
    }
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    return c;
}

static void fill_names(pc_conn *c)
{
    int len = sizeof(c->peer);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
    len = sizeof(c->local);
    uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local, &len);
}

int pc_conn_accept(pc_conn *c, uv_stream_t *server)
{
    if (c->closing)
        return UV_EINVAL;
    int r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r < 0)
        return r;
    uv_tcp_nodelay(&c->tcp, 1);
    fill_names(c);
    P(c)->open = 1;
    update_reading(c);
    return 0;
}

static void connect_cb(uv_connect_t *req, int status)
{
    pc_conn *c = req->data;
    conn_priv *p = P(c);
    if (status == UV_ECANCELED || c->closing || p->connect_done)
        return;
    p->connect_done = 1;
    c->connecting = 0;
    p->connect_deadline = NO_DEADLINE;
    if (status < 0) {
        c->err = status;
        p->dead = 1;
        p->error_sent = 1;
        emit(c, PC_CONN_EV_ERROR);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    fill_names(c);
    p->open = 1;
    emit(c, PC_CONN_EV_CONNECTED);
    if (!c->closing)
        update_reading(c);
}

int pc_conn_connect(pc_conn *c, const struct sockaddr *addr, unsigned timeout_ms)
{
    conn_priv *p = P(c);
    if (c->closing || c->connecting || p->open)
        return UV_EINVAL;
    uv_tcp_nodelay(&c->tcp, 1); /* remembered by libuv and applied when the socket exists */
    p->creq.data = c;
    int r = uv_tcp_connect(&p->creq, &c->tcp, addr, connect_cb);
    if (r < 0)
        return r;
    c->connecting = 1;
    if (timeout_ms) {
        p->connect_deadline = uv_now(c->loop) + timeout_ms;
        arm_timer(c);
    }
    return 0;
}

void pc_conn_read_start(pc_conn *c)
{
    if (c->closing)
        return;
    int was = c->reading;
    c->reading = 1;
    update_reading(c);
    if (!was) {
        restart_idle(c);
        /* Bytes buffered while reading was off get a READ of their own, outside this call. */
        if (pc_buf_used(&c->in) > 0) {
            P(c)->deferred = 1;
            arm_timer(c);
        }
    }
}

void pc_conn_read_stop(pc_conn *c)
{
    if (c->closing)
        return;
    c->reading = 0;
    update_reading(c);
}

void pc_conn_consume(pc_conn *c, size_t n)
{
    if (n)
        P(c)->consumed = 1;
    pc_buf_consume(&c->in, n);
    if (pc_buf_used(&c->in) == 0)
        pc_buf_release(&c->in);
    if (c->closing)
        return;
    if (c->full && in_space(c) > 0) {
        c->full = 0;
        if (c->ssl && !c->tls_handshaking &&
            (BIO_ctrl_pending(c->rbio) > 0 || SSL_pending(c->ssl) > 0)) {
            P(c)->deferred = 1;
            arm_timer(c);
        }
        update_reading(c);
    }
}

void pc_conn_set_timeout(pc_conn *c, unsigned ms)
{
    c->timeout_ms = ms;
    P(c)->deadline = 0;
    if (!c->closing)
        restart_idle(c);
}

void pc_conn_set_deadline(pc_conn *c, unsigned ms)
{
    conn_priv *p = P(c);
    /* The same deadline asked for again with nothing consumed meanwhile (a partial line arrived):
     * it keeps running. */
    if (p->deadline && c->timeout_ms == ms && !p->consumed && p->idle_deadline != NO_DEADLINE)
        return;
    c->timeout_ms = ms;
    p->deadline = 1;
    p->consumed = 0;
    if (!c->closing)
        restart_idle(c);
}

/* ---- TLS start ---- */

static int tls_start(pc_conn *c, SSL_CTX *ctx)
{
    if (c->closing || c->ssl || !P(c)->open || P(c)->dead)
        return -1;
    pc_buf_release(&c->in); /* STARTTLS injection: nothing sent in plaintext survives */
    c->full = 0;
    c->ssl = SSL_new(ctx);
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    if (!c->ssl || !r || !w) {
        BIO_free(r);
        BIO_free(w);
        SSL_free(c->ssl);
        c->ssl = NULL;
        return -1;
    }
    BIO_set_mem_eof_return(r, -1); /* empty means "wait for more", not end of stream */
    SSL_set_bio(c->ssl, r, w);
    c->rbio = r;
    c->wbio = w;
    SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    c->tls_handshaking = 1;
    c->errtext[0] = 0;
    return 0;
}

int pc_conn_tls_server(pc_conn *c, SSL_CTX *ctx)
{
    if (tls_start(c, ctx) < 0)
        return -1;
    c->tls_server = 1;
    SSL_set_accept_state(c->ssl);
    update_reading(c);
    return 0;
}

int pc_conn_tls_client(pc_conn *c, SSL_CTX *ctx, const char *sni, const char *verify_name)
{
    if (tls_start(c, ctx) < 0)
        return -1;
    c->tls_server = 0;
    SSL_set_connect_state(c->ssl);
    int ok = 1;
    if (sni && *sni)
        ok = SSL_set_tlsext_host_name(c->ssl, sni) == 1;
    if (ok && verify_name && *verify_name) {
        unsigned char tmp[16];
        if (inet_pton(AF_INET, verify_name, tmp) == 1 || inet_pton(AF_INET6, verify_name, tmp) == 1)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), verify_name) == 1;
        else
            ok = SSL_set1_host(c->ssl, verify_name) == 1;
    }
    if (ok) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        ok = r == 1 || SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ;
    }
    if (!ok || flush_wbio(c) < 0) {
        set_tls_error(c, "TLS client start failed");
        SSL_free(c->ssl);
        c->ssl = NULL;
        c->rbio = c->wbio = NULL;
        c->tls_handshaking = 0;
        return -1;
    }
    update_reading(c);
    return 0;
}

const char *pc_conn_tls_version(const pc_conn *c)
{
    return c->ssl && !c->tls_handshaking && !P((pc_conn *)c)->tls_failed ? SSL_get_version(c->ssl)
                                                                         : NULL;
}

const char *pc_conn_tls_cipher(const pc_conn *c)
{
    return c->ssl && !c->tls_handshaking && !P((pc_conn *)c)->tls_failed
               ? SSL_get_cipher_name(c->ssl)
               : NULL;
}

/* ---- close ---- */

static void close_cb(uv_handle_t *h)
{
    pc_conn *c = h->data;
    if (--c->handles > 0)
        return;
    conn_priv *p = P(c);
    c->cb(c, PC_CONN_EV_CLOSED, c->ud);
    pc_buf_release(&c->in);
    pc_buf_release(&p->wq);
    SSL_free(c->ssl); /* frees both BIOs */
    free(p);
}

static void close_handles(pc_conn *c)
{
    conn_priv *p = P(c);
    if (p->handles_closed)
        return;
    p->handles_closed = 1;
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    uv_close((uv_handle_t *)&c->timer, close_cb);
}

void pc_conn_close(pc_conn *c)
{
    conn_priv *p = P(c);
    if (c->closing)
        return;
    c->closing = 1;
    if (p->uv_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        p->uv_reading = 0;
    }
    pc_buf_release(&p->wq);
    if (c->ssl && !c->tls_handshaking && !p->tls_failed && !p->error_sent && p->open) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* our close_notify; the peer's is not awaited */
        flush_wbio(c);
        ERR_clear_error();
    }
    if (c->wpending > 0 && !p->error_sent) {
        p->close_wait = 1;
        p->close_deadline = uv_now(c->loop) + CLOSE_WAIT_MS;
        p->deferred = 0;
        arm_timer(c);
        return;
    }
    close_handles(c);
}

const char *pc_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return out;
    out[0] = 0;
    if (!sa)
        return out;
    if (sa->sa_family == AF_INET) {
        if (!inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
                       (socklen_t)outlen))
            out[0] = 0;
    } else if (sa->sa_family == AF_INET6) {
        if (!inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
                       (socklen_t)outlen))
            out[0] = 0;
    } else {
        snprintf(out, outlen, "unknown");
    }
    return out;
}
