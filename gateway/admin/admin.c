/* admin.c — the admin socket's server (see admin.h): accept with a cap, one bounded line at a time
 * under a deadline, the peer's credentials, each command's disk work on the threadpool and its
 * reply. The release's SMTP part is release.c. */
#include "admin/admin.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin_cmd.h"
#include "admin/release.h"
#include "base/log.h"
#include "core/spool.h"
#include "parse/sanitize.h"
#include "quarantine/qstore.h"

#define LIST_MAX 10000        /* records in one list reply */
#define SHOW_HEADER_MAX 65536 /* bytes of the message's header section in a show reply */

typedef struct out {
    char *p;
    size_t len, cap;
    size_t records;
    int failed;
} out;

typedef struct client client;

struct pc_admin {
    uv_loop_t *loop;
    const pc_config *cfg;
    SSL_CTX **upstream_tls;
    pc_upstream *ups; /* per listener, for releases */
    uv_pipe_t server;
    unsigned nclients;
    client *clients; /* every connected client, for the per-message lock */
    int stopping;
    char path[108];
};

struct client {
    uv_pipe_t pipe;
    uv_timer_t timer;
    pc_admin *a;
    client *next;
    int handles; /* open: pipe and timer; freed at 0 */
    int busy;    /* a command runs; reading stops */
    int closing;
    int skipping; /* discarding the rest of an over-long line */
    char in[PC_ADMIN_LINE_MAX + 2];
    size_t inlen;
    unsigned uid, gid;
    int pid;
    char user[64];
    /* the command being run */
    uv_work_t work;
    pc_admin_cmd cmd;
    char line[PC_ADMIN_LINE_MAX + 1];
    out reply;
    pc_qmeta meta;   /* release: loaded and marked on the threadpool */
    pc_message *msg; /* release: the stored bytes */
    char release_line[PC_QMETA_LINE_MAX];
    const pc_listener_cfg *lc; /* release: the listener it came through */
    size_t li;
    int rc;              /* the work's outcome */
    int send_failed;     /* release: nothing was delivered (code and text say why) */
    char code[32];       /* error code when rc < 0 */
    char text[256];      /* error text */
    unsigned char *sent; /* release: per recipient, 1 when this release sends it */
    unsigned char *ok;   /* release: per recipient, 1 when the upstream accepted it */
};

/* ---- replies ---------------------------------------------------------------------------------
 */

static void out_put(out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 4096;
        while (nc < o->len + n + 1)
            nc *= 2;
        char *np = realloc(o->p, nc);
        if (!np) {
            o->failed = 1;
            return;
        }
        o->p = np;
        o->cap = nc;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* "\tkey=value", the value sanitised (a tab is a control: mapped) */
static void out_kv(out *o, const char *key, const char *val)
{
    char clean[2100];
    pc_sanitize(clean, sizeof(clean), val, strlen(val), 1);
    out_put(o, "\t", 1);
    out_put(o, key, strlen(key));
    out_put(o, "=", 1);
    out_put(o, clean, strlen(clean));
}

static void out_kvf(out *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void out_kvf(out *o, const char *key, const char *fmt, ...)
{
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    out_kv(o, key, v);
}

static void out_end_record(out *o)
{
    out_put(o, "\n", 1);
    o->records++;
}

/* The message record: what list and show say of one message. */
static void out_message(out *o, const pc_qmeta *m)
{
    out_put(o, "message", 7);
    out_kv(o, "id", m->id);
    out_kvf(o, "time", "%lld", m->time);
    out_kv(o, "from", m->from);
    char rc[2048], rel[2048];
    size_t k = 0, r = 0;
    rc[0] = rel[0] = '\0';
    for (size_t i = 0; i < m->nrcpts; i++) {
        int w = snprintf(rc + k, sizeof(rc) - k, "%s%s", k ? "," : "", m->rcpts[i].addr);
        if (w > 0 && (size_t)w < sizeof(rc) - k)
            k += (size_t)w;
        if (m->rcpts[i].released) {
            w = snprintf(rel + r, sizeof(rel) - r, "%s%s", r ? "," : "", m->rcpts[i].addr);
            if (w > 0 && (size_t)w < sizeof(rel) - r)
                r += (size_t)w;
        }
    }
    out_kv(o, "rcpts", rc);
    out_kv(o, "released", rel);
    out_kvf(o, "size", "%llu", m->size);
    out_kvf(o, "score", "%.2f", m->score);
    out_kv(o, "action", m->action);
    out_kv(o, "symbols", m->symbols);
    out_kv(o, "listener", m->listener);
    out_kv(o, "client", m->client);
    out_kv(o, "helo", m->helo);
    out_kv(o, "reason", m->reason);
    out_end_record(o);
}

static void fail(client *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(client *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->text, sizeof(c->text), fmt, ap);
    va_end(ap);
    snprintf(c->code, sizeof(c->code), "%s", code);
    c->rc = -1;
}

/* ---- the commands' disk work (threadpool) -----------------------------------------------------
 */

typedef struct list_item {
    long long time;
    out rec;
} list_item;

typedef struct list_ctx {
    client *c;
    size_t n;
    int truncated;
    list_item *items; /* sorted by time before they are sent */
    size_t cap;
} list_ctx;

static int by_time(const void *a, const void *b)
{
    const list_item *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return strcmp(x->rec.p ? x->rec.p : "", y->rec.p ? y->rec.p : "");
}

static int list_one(void *ud, const pc_qmeta *m)
{
    list_ctx *l = ud;
    client *c = l->c;
    if (c->cmd.since && m->time < c->cmd.since)
        return 0;
    if (c->cmd.rcpt[0]) {
        int match = 0;
        for (size_t i = 0; i < m->nrcpts && !match; i++)
            match = strcasecmp(m->rcpts[i].addr, c->cmd.rcpt) == 0;
        if (!match)
            return 0;
    }
    if (l->n >= LIST_MAX) {
        l->truncated = 1;
        return 1;
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        list_item *ni = realloc(l->items, nc * sizeof(*ni));
        if (!ni) {
            c->reply.failed = 1;
            return 1;
        }
        l->items = ni;
        l->cap = nc;
    }
    list_item *it = &l->items[l->n++];
    *it = (list_item){.time = m->time};
    out_message(&it->rec, m);
    c->reply.failed |= it->rec.failed;
    return 0;
}

static void do_show(client *c, const char *dir)
{
    pc_qmeta m;
    char err[256];
    int rc = pc_qstore_load(dir, c->cmd.id, &m, err, sizeof(err));
    if (rc < 0) {
        pc_qmeta_free(&m);
        fail(c, rc == -1 ? "not-found" : "failed", "%s", err);
        return;
    }
    out_message(&c->reply, &m);
    for (const char *p = m.history; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char line[PC_QMETA_LINE_MAX];
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        out_put(&c->reply, "history", 7);
        out_kv(&c->reply, "line", line);
        out_end_record(&c->reply);
        p += n + (e != NULL);
    }
    pc_qmeta_free(&m);
    char *eml = NULL;
    size_t len = 0;
    /* The header section only: the body of a held message is not for a terminal. */
    if (pc_qstore_read_head(dir, c->cmd.id, SHOW_HEADER_MAX, &eml, &len) == 0) {
        size_t end = len;
        const char *blank = memmem(eml, end, "\r\n\r\n", 4);
        if (blank)
            end = (size_t)(blank - eml) + 2;
        for (size_t off = 0; off < end;) {
            const char *e = memchr(eml + off, '\n', end - off);
            size_t n = e ? (size_t)(e - (eml + off)) : end - off;
            size_t vn = n && eml[off + n - 1] == '\r' ? n - 1 : n;
            char line[1100];
            pc_sanitize(line, sizeof(line), eml + off, vn, 1);
            out_put(&c->reply, "header", 6);
            out_kv(&c->reply, "line", line);
            out_end_record(&c->reply);
            off += n + 1;
        }
        free(eml);
    }
}

/* Release, first half: which recipients, marked released (fsync) before anything is sent, so that a
 * crash can never send twice; then the bytes, for the send on the loop. */
static void do_release_prepare(client *c, const char *dir)
{
    char err[256];
    int rc = pc_qstore_load(dir, c->cmd.id, &c->meta, err, sizeof(err));
    if (rc < 0) {
        fail(c, rc == -1 ? "not-found" : "failed", "%s", err);
        return;
    }
    pc_qmeta *m = &c->meta;
    c->lc = NULL;
    for (size_t i = 0; i < c->a->cfg->nlisteners; i++)
        if (!strcmp(c->a->cfg->listeners[i].name, m->listener)) {
            c->lc = &c->a->cfg->listeners[i];
            c->li = i;
        }
    if (!c->lc) {
        fail(c, "failed", "the listener %s is not configured any more", m->listener);
        return;
    }
    c->sent = calloc(m->nrcpts, 1);
    c->ok = calloc(m->nrcpts, 1);
    if (!c->sent || !c->ok) {
        fail(c, "failed", "out of memory");
        return;
    }
    size_t n = 0, known = 0;
    for (size_t i = 0; i < m->nrcpts; i++) {
        int want = !c->cmd.rcpt[0] || strcasecmp(m->rcpts[i].addr, c->cmd.rcpt) == 0;
        known += want;
        if (want && !m->rcpts[i].released) {
            c->sent[i] = 1;
            n++;
        }
    }
    if (!known) {
        fail(c, "not-found", "%s is not a recipient of this message", c->cmd.rcpt);
        return;
    }
    if (!n) {
        fail(c, "already-released", "already released (%s)", c->cmd.rcpt[0] ? c->cmd.rcpt : "all");
        return;
    }
    long long now = (long long)time(NULL);
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (!c->sent[i])
            continue;
        char line[PC_QMETA_LINE_MAX];
        pc_qmeta_release_line(line, sizeof(line), now, c->uid, c->user, m->rcpts[i].addr);
        if (pc_qmeta_add_history(m, line) < 0) {
            fail(c, "failed", "metadata too large");
            return;
        }
    }
    if (pc_qstore_rewrite(dir, m, err, sizeof(err)) < 0) {
        fail(c, "failed", "%s", err);
        return;
    }
    char *eml = NULL;
    size_t len = 0;
    pc_spool *sp = NULL;
    /* No larger than the listener could have taken, with room for the headers it added. */
    size_t max =
        c->lc->limits.message_size ? c->lc->limits.message_size * 2 + 65536 : (size_t)1 << 30;
    if (pc_qstore_read_message(dir, m->id, max, &eml, &len) < 0 || !(sp = pc_spool_new(len + 1)) ||
        pc_spool_write(sp, eml, len) != PC_SPOOL_OK || !(c->msg = pc_message_new(sp))) {
        if (!c->msg)
            pc_spool_free(sp);
        free(eml);
        fail(c, "failed", "the message file cannot be read");
        c->rc = -2; /* marked: the marks are taken back */
        return;
    }
    free(eml);
    pc_message_seal(c->msg);
    c->rc = 1; /* the loop sends it */
}

/* Release, last half: what the upstream accepted stays released, the rest is taken back; the
 * message file goes once every recipient is released. */
static void do_release_finish(client *c, const char *dir)
{
    pc_qmeta *m = &c->meta;
    long long now = (long long)time(NULL);
    char err[256];
    int back = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (c->sent[i] && !c->ok[i]) {
            char line[PC_QMETA_LINE_MAX];
            pc_qmeta_release_line(line, sizeof(line), now, 0, NULL, m->rcpts[i].addr);
            if (pc_qmeta_add_history(m, line) == 0)
                back = 1;
        }
    if (back && pc_qstore_rewrite(dir, m, err, sizeof(err)) < 0)
        pc_log_err(0, "event=admin command=release id=%s result=unmark-failed error=\"%s\"", m->id,
                   err);
    /* Released to everyone: the bytes go; the metadata stays as the record of who released it
     * (a second release is told so) until it expires. */
    if (pc_qmeta_all_released(m) && pc_qstore_delete_message(dir, m->id) < 0)
        pc_log_err(0, "event=admin command=release id=%s result=delete-failed", m->id);
}

static void work(uv_work_t *req)
{
    client *c = req->data;
    const char *dir = c->a->cfg->quarantine.directory;
    /* The peer's name, once: getpwuid reads the user database, which is disk. */
    if (!c->user[0]) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        if (getpwuid_r(c->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
            snprintf(c->user, sizeof(c->user), "%s", res->pw_name);
        else
            snprintf(c->user, sizeof(c->user), "uid%u", c->uid);
    }
    if (c->rc == 2) { /* the release was sent: its second half */
        do_release_finish(c, dir);
        return;
    }
    c->rc = 0;
    switch (c->cmd.verb) {
    case PC_ADMIN_LIST: {
        list_ctx l = {.c = c};
        if (pc_qstore_each(dir, list_one, &l) < 0)
            fail(c, "failed", "the quarantine directory cannot be read");
        else if (l.truncated)
            pc_log_notice(0, "event=admin command=list result=truncated records=%zu", l.n);
        if (l.n)
            qsort(l.items, l.n, sizeof(*l.items), by_time);
        for (size_t i = 0; i < l.n; i++) {
            out_put(&c->reply, l.items[i].rec.p ? l.items[i].rec.p : "", l.items[i].rec.len);
            c->reply.records++;
            free(l.items[i].rec.p);
        }
        free(l.items);
        break;
    }
    case PC_ADMIN_SHOW: do_show(c, dir); break;
    case PC_ADMIN_DELETE: {
        int rc = pc_qstore_delete(dir, c->cmd.id);
        if (rc == -1)
            fail(c, "not-found", "no such message");
        else if (rc < 0)
            fail(c, "failed", "the files cannot be removed");
        break;
    }
    case PC_ADMIN_RELEASE: do_release_prepare(c, dir); break;
    }
}

/* ---- clients ----------------------------------------------------------------------------------
 */

static void read_more(client *c);
static void client_close(client *c);

static void handle_closed(uv_handle_t *h)
{
    client *c = h->data;
    if (--c->handles > 0)
        return;
    c->a->nclients--;
    for (client **p = &c->a->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    free(c->reply.p);
    free(c);
}

static void client_close(client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->busy)
        return; /* once the command is done */
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->pipe, handle_closed);
}

typedef struct wreq {
    uv_write_t w;
    client *c;
    char *p;
} wreq;

static void written(uv_write_t *w, int status)
{
    wreq *r = (wreq *)w;
    client *c = r->c;
    free(r->p);
    free(r);
    c->busy = 0;
    if (status < 0 || c->closing || c->a->stopping) {
        c->closing = 0;
        client_close(c);
        return;
    }
    read_more(c);
}

/* Sends the reply built in c->reply with its final line, then reads the next command. */
static void finish(client *c)
{
    char last[400];
    if (c->rc < 0) {
        char t[300];
        pc_sanitize(t, sizeof(t), c->text, strlen(c->text), 1);
        snprintf(last, sizeof(last), "error %s %s\n", c->code, t);
        c->reply.len = 0;
        c->reply.records = 0;
        if (c->reply.p)
            c->reply.p[0] = '\0';
    } else {
        snprintf(last, sizeof(last), "ok %zu\n", c->reply.records);
    }
    out_put(&c->reply, last, strlen(last));
    pc_log_notice(0, "event=admin uid=%u gid=%u pid=%d user=%s command=\"%s\" result=%s%s%s",
                  c->uid, c->gid, c->pid, c->user, c->line, c->rc < 0 ? "error code=" : "ok",
                  c->rc < 0 ? c->code : "", "");
    if (c->reply.failed) {
        c->reply.failed = 0;
        c->reply.len = 0;
        out_put(&c->reply, "error failed out of memory\n", 27);
    }
    wreq *r = calloc(1, sizeof(*r));
    if (!r || c->closing) {
        free(r);
        c->busy = 0;
        c->closing = 0;
        client_close(c);
        return;
    }
    r->c = c;
    r->p = c->reply.p;
    uv_buf_t b = uv_buf_init(r->p ? r->p : "", (unsigned)c->reply.len);
    c->reply = (out){0};
    if (uv_write(&r->w, (uv_stream_t *)&c->pipe, &b, 1, written) < 0) {
        free(r->p);
        free(r);
        c->busy = 0;
        client_close(c);
    }
}

static void release_reset(client *c)
{
    pc_qmeta_free(&c->meta);
    if (c->msg)
        pc_message_unref(c->msg);
    c->msg = NULL;
    free(c->sent);
    free(c->ok);
    c->sent = c->ok = NULL;
}

static void after_work(uv_work_t *req, int status);

/* The upstream's answers for each recipient (ok[i]) are in: record them on the threadpool. */
static void sent(void *ud, int rc, const char *text)
{
    client *c = ud;
    size_t n = 0;
    for (size_t i = 0; i < c->meta.nrcpts; i++)
        n += c->ok[i];
    c->send_failed = rc < 0 || n == 0;
    if (c->send_failed)
        fail(c, "upstream", "%s", text);
    c->rc = 2;
    c->work.data = c;
    if (uv_queue_work(c->a->loop, &c->work, work, after_work) < 0) {
        fail(c, "failed", "no threadpool");
        release_reset(c);
        finish(c);
    }
}

static void after_work(uv_work_t *req, int status)
{
    client *c = req->data;
    if (status < 0)
        fail(c, "failed", "cancelled");
    if (c->cmd.verb != PC_ADMIN_RELEASE) {
        finish(c);
        return;
    }
    if (c->rc == 1) {
        /* marked: now the one send */
        if (pc_release_send(c->a->loop, c->lc, c->a->upstream_tls[c->li], &c->a->ups[c->li],
                            &c->meta, c->sent, c->ok, c->msg, sent, c) < 0)
            sent(c, -1, "the upstream session could not start");
        return;
    }
    if (c->rc == -2) {
        /* marked but nothing sent: take the marks back */
        c->send_failed = 1;
        c->rc = 2;
        c->work.data = c;
        if (uv_queue_work(c->a->loop, &c->work, work, after_work) == 0)
            return;
    }
    if (c->rc == 2) {
        /* done: the reply */
        for (size_t i = 0; i < c->meta.nrcpts; i++) {
            if (!c->sent[i])
                continue;
            out_put(&c->reply, "rcpt", 4);
            out_kv(&c->reply, "addr", c->meta.rcpts[i].addr);
            out_kv(&c->reply, "result", c->ok[i] ? "delivered" : "refused");
            out_end_record(&c->reply);
            pc_log_notice(0, "event=quarantine-release id=%s rcpt=%s result=%s uid=%u user=%s",
                          c->meta.id, c->meta.rcpts[i].addr, c->ok[i] ? "delivered" : "refused",
                          c->uid, c->user);
        }
        c->rc = c->send_failed ? -1 : 0;
    }
    release_reset(c);
    finish(c);
}

static void run_line(client *c, const char *line, size_t len)
{
    char err[200];
    pc_sanitize(c->line, sizeof(c->line), line, len, 1);
    c->busy = 1;
    c->rc = 0;
    c->send_failed = 0;
    c->reply = (out){0};
    uv_timer_stop(&c->timer);
    if (pc_admin_cmd_parse(&c->cmd, line, len, err, sizeof(err)) < 0) {
        fail(c, "bad-request", "%s", err);
        finish(c);
        return;
    }
    /* One command at a time per message: two releases of one ID must never both read it as
     * unreleased (the threadpool runs them in parallel), nor a delete pull the files from under a
     * release. The lock is this loop's: only the main loop runs commands. */
    if (c->cmd.verb != PC_ADMIN_LIST)
        for (client *o = c->a->clients; o; o = o->next)
            if (o != c && o->busy && o->cmd.verb != PC_ADMIN_LIST &&
                !strcmp(o->cmd.id, c->cmd.id)) {
                c->cmd.verb = 0; /* holds no lock */
                fail(c, "busy", "another command is working on this message; try again");
                finish(c);
                return;
            }
    c->work.data = c;
    if (uv_queue_work(c->a->loop, &c->work, work, after_work) < 0) {
        fail(c, "failed", "no threadpool");
        finish(c);
    }
}

static void on_timeout(uv_timer_t *t)
{
    client *c = t->data;
    pc_log_notice(0, "event=admin uid=%u pid=%d result=timeout", c->uid, c->pid);
    client_close(c);
}

/* A complete line in the buffer: run it (the rest waits until the reply is written). */
static int take_line(client *c)
{
    char *lf = memchr(c->in, '\n', c->inlen);
    if (!lf)
        return 0;
    size_t n = (size_t)(lf - c->in);
    size_t vn = n && c->in[n - 1] == '\r' ? n - 1 : n;
    char line[PC_ADMIN_LINE_MAX + 2];
    memcpy(line, c->in, vn);
    memmove(c->in, lf + 1, c->inlen - n - 1);
    c->inlen -= n + 1;
    run_line(c, line, vn);
    return 1;
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    client *c = h->data;
    (void)want;
    b->base = c->in + c->inlen;
    b->len = sizeof(c->in) - c->inlen;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client *c = s->data;
    (void)b;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->inlen += (size_t)n;
    if (c->skipping) {
        char *lf = memchr(c->in, '\n', c->inlen);
        if (!lf) {
            c->inlen = 0;
            return;
        }
        c->inlen -= (size_t)(lf + 1 - c->in);
        memmove(c->in, lf + 1, c->inlen);
        c->skipping = 0;
    }
    if (take_line(c)) {
        uv_read_stop(s);
        return;
    }
    if (c->inlen >= sizeof(c->in)) {
        uv_read_stop(s);
        c->inlen = 0;
        snprintf(c->line, sizeof(c->line), "(too long)");
        c->busy = 1;
        c->reply = (out){0};
        fail(c, "bad-request", "line longer than %d bytes", PC_ADMIN_LINE_MAX);
        c->skipping = 1; /* the rest of that line is never taken for a command */
        finish(c);
    }
}

static void read_more(client *c)
{
    if (take_line(c))
        return;
    uv_timer_start(&c->timer, on_timeout, c->a->cfg->admin.timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
        client_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    pc_admin *a = server->data;
    if (status < 0)
        return;
    client *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->a = a;
    uv_pipe_init(a->loop, &c->pipe, 0);
    uv_timer_init(a->loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    c->handles = 2;
    a->nclients++;
    c->next = a->clients;
    a->clients = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
        client_close(c);
        return;
    }
    uv_os_fd_t fd;
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        pc_log_warn(0, "event=admin result=refused reason=no-peer-credentials");
        client_close(c);
        return;
    }
    c->uid = (unsigned)cr.uid;
    c->gid = (unsigned)cr.gid;
    c->pid = (int)cr.pid;
    if (a->nclients > a->cfg->admin.max_clients || a->stopping) {
        pc_log_notice(0, "event=admin uid=%u pid=%d result=refused reason=max-clients", c->uid,
                      c->pid);
        static char busy[] = "error busy too many admin clients\n";
        uv_buf_t b = uv_buf_init(busy, sizeof(busy) - 1);
        uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
        client_close(c);
        return;
    }
    pc_log_info(0, "event=admin-connect uid=%u gid=%u pid=%d", c->uid, c->gid, c->pid);
    read_more(c);
}

/* ---- the socket -------------------------------------------------------------------------------
 */

/* A socket file nobody answers on is a leftover of an earlier run: removed. One that answers
 * belongs to a running gateway: an error. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    if (live) {
        snprintf(err, errlen, "%s: another gateway is serving it", path);
        return -1;
    }
    return unlink(path);
}

pc_admin *pc_admin_start(uv_loop_t *loop, const pc_config *cfg, SSL_CTX **upstream_tls, char *err,
                         size_t errlen)
{
    const pc_admin_cfg *ac = &cfg->admin;
    if (strlen(ac->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, errlen, "admin.socket: path too long");
        return NULL;
    }
    gid_t gid = (gid_t)-1;
    if (ac->group) {
        struct group *gr = getgrnam(ac->group);
        if (!gr) {
            snprintf(err, errlen, "admin.group %s: not found", ac->group);
            return NULL;
        }
        gid = gr->gr_gid;
    }
    pc_admin *a = calloc(1, sizeof(*a));
    if (!a || !(a->ups = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*a->ups)))) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->loop = loop;
    a->cfg = cfg;
    a->upstream_tls = upstream_tls;
    snprintf(a->path, sizeof(a->path), "%s", ac->socket);
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        a->ups[i].cfg = &cfg->listeners[i].upstream;
        pc_upstream_resolve(&a->ups[i]); /* at start, before the loop runs */
    }
    if (clear_stale(a->path, err, errlen) < 0)
        goto fail;
    uv_pipe_init(loop, &a->server, 0);
    a->server.data = a;
    int rc;
    /* Created with no permission for anyone but the owner until chmod/chown are done. */
    mode_t old = umask(0177);
    rc = uv_pipe_bind(&a->server, a->path);
    umask(old);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", a->path, uv_strerror(rc));
        uv_close((uv_handle_t *)&a->server, NULL);
        goto fail;
    }
    if ((gid != (gid_t)-1 && chown(a->path, (uid_t)-1, gid) < 0) ||
        chmod(a->path, (mode_t)ac->mode) < 0) {
        snprintf(err, errlen, "%s: %s", a->path, strerror(errno));
        unlink(a->path);
        uv_close((uv_handle_t *)&a->server, NULL);
        goto fail;
    }
    if ((rc = uv_listen((uv_stream_t *)&a->server, 16, on_connection)) < 0) {
        snprintf(err, errlen, "%s: %s", a->path, uv_strerror(rc));
        unlink(a->path);
        uv_close((uv_handle_t *)&a->server, NULL);
        goto fail;
    }
    return a;
fail:
    free(a->ups);
    free(a);
    return NULL;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    pc_admin *a = arg;
    if (h->type == UV_NAMED_PIPE && h != (uv_handle_t *)&a->server && h->data &&
        ((client *)h->data)->a == a && !uv_is_closing(h))
        client_close(h->data);
}

static void server_closed(uv_handle_t *h)
{
    pc_admin *a = h->data;
    free(a->ups);
    free(a);
}

void pc_admin_stop(pc_admin *a)
{
    if (!a)
        return;
    a->stopping = 1;
    unlink(a->path);
    uv_walk(a->loop, walk_close, a);
    uv_close((uv_handle_t *)&a->server, server_closed);
}
