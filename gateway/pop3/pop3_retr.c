/* pop3_retr.c — RETR and TOP through the retrieve hook: UIDL and LIST first (cache key, size), the
 * body spooled, the chain run, then the original bytes, the tagged message or a notice served. */
#include "pop3/pop3_retr.h"
#include "pop3/pop3_render.h"
#include "pop3/pop3_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/notice.h"
#include "core/vcache.h"
#include "parse/sanitize.h"

/* Steps of a RETR/TOP that goes through the retrieve hook. */
enum p3_rstep { R_NONE, R_UIDL, R_LIST, R_BODY, R_CHAIN, R_SERVE };

/* The retrieval: one per session, made at its first RETR/TOP through the hook. */
struct p3_retr {
    enum p3_rstep step;
    int pipe;   /* UIDL, LIST and RETR/TOP went upstream together */
    int mode;   /* what happens to the body (pop3_retr.c) */
    char *info; /* a cached notice's fields */
    size_t info_len;
    char uidl[80];
    size_t list_size;
    pc_spool *spool;
    int spool_err;
    size_t spool_size;
    pc_message *msg;
    char *notice; /* the replacement notice being served */
    size_t notice_len;
    size_t serve_off;
    int serve_bol, serve_cr;
    size_t serve_last2;
    int serving;
};

/* ---- verdict cache (vcache.c), keyed by listener + user + UIDL + content version
 * --------------------------- */

static int vc_keyof(p3sess *s, char *out, size_t outlen)
{
    /* the filters' content version: a signature update makes every cached verdict stale */
    int n = snprintf(out, outlen, "%s\n%s\n%s\n%llx", s->base.cfg->name, s->user, s->r->uidl,
                     pc_chain_content_version(s->base.l->chain));
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* NULL info in an entry: the message was clean; else the notice's fields. */
static const pc_vcache_ent *vc_lookup(p3sess *s)
{
    char key[512];
    if (!s->r->uidl[0] || vc_keyof(s, key, sizeof(key)) < 0)
        return NULL;
    return pc_vcache_lookup(s->cache_size, key);
}

static void vc_store(p3sess *s, const char *info, size_t info_len)
{
    char key[512];
    if (!s->r->uidl[0] || vc_keyof(s, key, sizeof(key)) < 0)
        return;
    pc_vcache_store(s->cache_size, key, info != NULL, info, info_len);
}

/* What happens to the body of RETR/TOP (s->r->mode). */
enum { M_SCAN, M_RELAY, M_NOTICE, M_REFUSE, M_ERRLINE };

/* ---- session helpers ----------------------------------------------------------------------- */

static void retr_reset(p3sess *s)
{
    pc_session_hook_abort(&s->base);
    s->base.sv.msg = NULL;
    pc_results_reset(&s->base.results);
    if (!s->r)
        return;
    if (s->r->msg)
        pc_message_unref(s->r->msg);
    else
        pc_spool_free(s->r->spool);
    s->r->msg = NULL;
    s->r->spool = NULL;
    s->r->spool_err = 0;
    free(s->r->notice);
    s->r->notice = NULL;
    s->r->notice_len = 0;
    free(s->r->info);
    s->r->info = NULL;
    s->r->info_len = 0;
    s->r->serving = 0;
    s->r->step = R_NONE;
}

void p3_retr_free(p3sess *s)
{
    retr_reset(s);
    free(s->r);
    s->r = NULL;
}

int p3_retr_serving(const p3sess *s)
{
    return s->r && s->r->serving;
}

static void finish(p3sess *s)
{
    retr_reset(s);
    s->base.c->want_drain = s->up_paused; /* a relayed body may have paused the upstream */
    s->busy = 0;
    p3_resume(s);
}

/* ---- serving a body ------------------------------------------------------------------------ */

#define SERVE_CHUNK 32768

/* Writes the source (notice or message) dot-stuffed exactly as RFC 1939 §3 asks: a '.' starting a
 * line (after a CRLF) is doubled and nothing else changes, so an unmodified message goes out
 * byte-exact as the upstream sent it. */
void p3_serve_pump(p3sess *s)
{
    char in[SERVE_CHUNK], out[2 * SERVE_CHUNK + 8];
    while (s->r->serving && s->base.c->wpending < P3_OUT_HIGH) {
        ssize_t n;
        if (s->r->notice) {
            size_t left = s->r->notice_len - s->r->serve_off;
            n = (ssize_t)(left < sizeof(in) ? left : sizeof(in));
            memcpy(in, s->r->notice + s->r->serve_off, (size_t)n);
        } else {
            n = pc_message_read(s->r->msg, s->r->serve_off, in, sizeof(in));
        }
        if (n < 0) {
            pc_log_err(s->base.sid, "event=retrieve error=spool-read");
            p3_close(s);
            return;
        }
        size_t o = 0;
        if (n == 0) {
            if (s->r->serve_off > 0 && s->r->serve_last2 != (('\r' << 8) | '\n')) {
                out[o++] = '\r';
                out[o++] = '\n';
            }
            memcpy(out + o, ".\r\n", 3);
            if (p3_queue(s, out, o + 3) < 0) {
                p3_close(s);
                return;
            }
            finish(s); /* the answer leaves in one write with the next ones (process flushes) */
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            char b = in[i];
            if (s->r->serve_bol && b == '.')
                out[o++] = '.';
            out[o++] = b;
            s->r->serve_bol = s->r->serve_cr && b == '\n';
            s->r->serve_cr = b == '\r';
            s->r->serve_last2 = ((s->r->serve_last2 << 8) | (unsigned char)b) & 0xffff;
        }
        s->r->serve_off += (size_t)n;
        if (p3_queue(s, out, o) < 0) {
            p3_close(s);
            return;
        }
    }
    if (s->r->serving) {
        p3_flush(s);
        s->base.c->want_drain = 1;
    }
}

static void serve(p3sess *s, const char *okline)
{
    p3_reply(s, "%s", okline); /* written with the body */
    s->r->serving = 1;
    s->r->serve_off = 0;
    s->r->serve_bol = 1;
    s->r->serve_cr = 0;
    s->r->serve_last2 = 0;
    p3_serve_pump(s);
}

/* ---- the notice ---------------------------------------------------------------------------- */

/* The notice from info: whole for RETR; for TOP n m, its header and the first m lines of its body
 * (what TOP gives of any message). */
static void notice_make(p3sess *s, const char *info, size_t info_len)
{
    pc_buf b;
    pc_buf_init(&b, 0);
    if (pc_notice_build(&b, info, info_len, s->base.cfg->hostname, PC_NOTICE_FULL) < 0 ||
        pc_buf_used(&b) == 0) {
        pc_buf_release(&b);
        return;
    }
    const char *text = pc_buf_ptr(&b);
    size_t len = pc_buf_used(&b);
    if (s->cmd.verb == PC_POP3_TOP) {
        const char *hdr_end = memmem(text, len, "\r\n\r\n", 4);
        if (hdr_end) {
            size_t pos = (size_t)(hdr_end - text) + 4, lines = s->cmd.num[1];
            while (lines > 0 && pos < len) {
                const char *lf = memchr(text + pos, '\n', len - pos);
                pos = lf ? (size_t)(lf - text) + 1 : len;
                lines--;
            }
            len = pos;
        }
    }
    s->r->notice = malloc(len);
    if (s->r->notice) {
        memcpy(s->r->notice, text, len);
        s->r->notice_len = len;
    }
    pc_buf_release(&b);
}

static void serve_notice(p3sess *s, const char *info, size_t info_len)
{
    notice_make(s, info, info_len);
    if (!s->r->notice) {
        p3_reply(s, "-ERR [SYS/TEMP] Local error in processing.");
        finish(s);
        return;
    }
    char ok[64];
    snprintf(ok, sizeof(ok), "+OK %zu octets", s->r->notice_len);
    if (s->r->msg) {
        pc_message_unref(s->r->msg);
        s->r->msg = NULL;
        s->base.sv.msg = NULL;
    }
    serve(s, ok);
}

static const char *action_name(pc_action a)
{
    switch (a) {
    case PC_REJECT: return "rejected";
    case PC_QUARANTINE: return "quarantined";
    case PC_DISCARD: return "discarded";
    case PC_REPLACE: return "replaced";
    case PC_TEMPFAIL: return "tempfail";
    case PC_TAG: return "tagged";
    case PC_ACCEPT: return "accepted";
    default: return "clean";
    }
}

/* ---- the steps ----------------------------------------------------------------------------- */

static void chain_cb(void *ud, const pc_verdict *v)
{
    p3sess *s = ud;
    s->base.run = NULL;
    s->r->step = R_SERVE;
    size_t size = pc_message_size(s->r->msg);
    pc_log_info(s->base.sid, "event=retrieve user=%s msg=%u uidl=%s size=%zu verdict=%s score=%.2f",
                s->user_log, (unsigned)s->cmd.num[0], s->r->uidl[0] ? s->r->uidl : "-",
                s->r->spool_size, action_name(v->action), s->base.results.score);
    pc_decision d;
    pc_decision_set(&d, v, &s->base.results);
    char out[512];
    switch (pc_pop3_render(&d, PC_POP3_AT_RETRIEVE, out, sizeof(out))) {
    case PC_POP3_ANSWERED:
    case PC_POP3_ANSWER_END:
        p3_reply(s, "%s", out);
        finish(s);
        return;
    case PC_POP3_NOTICE: {
        char info[PC_NOTICE_INFO_MAX], ref[64];
        pc_notice_ref(ref, sizeof(ref), s->base.sid, "", (unsigned)s->cmd.num[0]);
        size_t ilen = pc_notice_info(s->r->msg, s->base.cfg->hostname, out, action_name(v->action),
                                     ref, info, sizeof(info));
        pc_log_info(s->base.sid, "event=notice user=%s msg=%u ref=%s", s->user_log,
                    (unsigned)s->cmd.num[0], ref);
        s->replaced++;
        if (s->cmd.verb == PC_POP3_RETR)
            vc_store(s, info, ilen);
        serve_notice(s, info, ilen);
        return;
    }
    case PC_POP3_REPLACED: /* the filter replaced the message (pc_message_replace): its version */
        s->replaced++;
        break;
    default:
        if (size == s->r->spool_size) {
            s->passed++;
            if (s->cmd.verb == PC_POP3_RETR)
                vc_store(s, NULL, 0);
        } else {
            s->tagged++;
        }
        break;
    }
    serve(s, s->okline);
}

static int body_content(void *ud, const char *p, size_t n)
{
    p3sess *s = ud;
    if (s->r->mode != M_SCAN || s->r->spool_err || !s->r->spool)
        return 0;
    int rc = pc_spool_write(s->r->spool, p, n);
    if (rc != PC_SPOOL_OK)
        s->r->spool_err = rc;
    return 0;
}

static int body_raw(void *ud, const char *p, size_t n)
{
    p3sess *s = ud;
    return s->r->mode == M_RELAY ? p3_relay_bytes(s, p, n) : 0;
}

/* The verdict cache, by the UIDL just read: a cached notice (its fields copied to s->r->info), a
 * message known clean (relayed as it is), or nothing known (M_SCAN). */
static int decide_cache(p3sess *s)
{
    const pc_vcache_ent *e = vc_lookup(s);
    if (!e)
        return M_SCAN;
    if (e->info) {
        s->r->info = malloc(e->info_len);
        if (!s->r->info)
            return M_SCAN; /* scanned again rather than failed */
        memcpy(s->r->info, e->info, e->info_len);
        s->r->info_len = e->info_len;
    }
    s->cache_hits++;
    pc_log_info(s->base.sid, "event=retrieve user=%s msg=%u uidl=%s verdict=%s cached=1",
                s->user_log, (unsigned)s->cmd.num[0], s->r->uidl, e->info ? "notice" : "clean");
    if (e->info) {
        s->replaced++;
        return M_NOTICE;
    }
    s->passed++;
    return M_RELAY;
}

/* The scan limit, by the size LIST just gave: past it the message is relayed unscanned or refused,
 * per configuration. */
static int decide_size(p3sess *s)
{
    if (s->r->list_size == (size_t)-1 || s->r->list_size <= s->scan_max)
        return M_SCAN;
    s->unscanned++;
    pc_log_notice(s->base.sid, "event=retrieve user=%s msg=%u size=%zu result=%s reason=scan_max",
                  s->user_log, (unsigned)s->cmd.num[0], s->r->list_size,
                  s->base.cfg->mailbox.oversize_refuse ? "refused" : "unscanned");
    return s->base.cfg->mailbox.oversize_refuse ? M_REFUSE : M_RELAY;
}

static void refuse_oversize(p3sess *s)
{
    p3_reply(s, "-ERR Message too large to be checked.");
    finish(s);
}

static void body_status(void *ud, const pc_pop3_resp *r)
{
    p3sess *s = ud;
    pc_sanitize(s->okline, sizeof(s->okline), r->line.p, r->line.n, 0);
    s->status_sent = 0;
    if (r->status != PC_POP3_RESP_OK) {
        s->r->mode = M_ERRLINE;
        return;
    }
    if (s->r->pipe) { /* UIDL and LIST were answered just before: decide now */
        s->r->mode = decide_cache(s);
        if (s->r->mode == M_SCAN)
            s->r->mode = decide_size(s);
    }
    if (s->r->mode == M_RELAY) {
        p3_reply(s, "%s", s->okline); /* goes out with the body */
        s->status_sent = 1;
    } else if (s->r->mode == M_SCAN) {
        s->r->spool =
            pc_spool_new(s->base.l->spool_threshold ? s->base.l->spool_threshold : 4 * 1024 * 1024);
        if (!s->r->spool)
            s->r->spool_err = PC_SPOOL_EIO;
        s->r->step = R_BODY;
    }
}

static void body_done(void *ud, pc_pop3c_status st, unsigned flags)
{
    p3sess *s = ud;
    if (st != PC_POP3C_OK) {
        retr_reset(s);
        p3_upstream_lost(s);
        return;
    }
    switch (s->r->mode) {
    case M_ERRLINE:
        p3_reply(s, "%s", s->okline);
        finish(s);
        return;
    case M_RELAY: finish(s); return;
    case M_NOTICE: serve_notice(s, s->r->info, s->r->info_len); return;
    case M_REFUSE: refuse_oversize(s); return;
    default: break;
    }
    if ((flags & PC_DATA_TOO_BIG) || s->r->spool_err) {
        pc_log_notice(s->base.sid, "event=retrieve msg=%u result=error reason=%s",
                      (unsigned)s->cmd.num[0], s->r->spool_err ? "spool" : "size");
        p3_reply(s, "-ERR [SYS/TEMP] Message could not be checked, try again later.");
        finish(s);
        return;
    }
    s->r->spool_size = pc_spool_size(s->r->spool);
    s->r->msg = pc_message_new(s->r->spool);
    if (!s->r->msg) {
        p3_reply(s, "-ERR [SYS/TEMP] Local error in processing.");
        finish(s);
        return;
    }
    s->r->spool = NULL;
    s->base.sv.msg = s->r->msg;
    s->scanned++;
    s->r->step = R_CHAIN;
    pc_session_hook_start(&s->base, PC_HOOK_RETRIEVE, chain_cb);
}

/* Sends RETR/TOP itself; its answer is handled as s->r->mode says (decided at its status line when
 * it was pipelined behind UIDL and LIST). */
static void send_body(p3sess *s)
{
    pc_pop3c_handler h = {.status = body_status,
                          .content = body_content,
                          .raw = body_raw,
                          .done = body_done,
                          .ud = s};
    p3_up_send(s, s->upline, 1, s->scan_max, &h);
}

/* Status of UIDL n / LIST n: "+OK n value"; -ERR leaves list_size at -1 (no such message). */
static const char *single_value(p3sess *s, const pc_pop3_resp *r, size_t *vlen)
{
    pc_sanitize(s->okline, sizeof(s->okline), r->line.p, r->line.n, 0);
    s->status_sent = 0;
    if (r->status != PC_POP3_RESP_OK) {
        s->r->list_size = (size_t)-1;
        return NULL;
    }
    const char *p = r->text.p, *e = r->text.p + r->text.n;
    while (p < e && *p >= '0' && *p <= '9')
        p++;
    while (p < e && *p == ' ')
        p++;
    const char *v = p;
    while (p < e && *p != ' ')
        p++;
    *vlen = (size_t)(p - v);
    return v;
}

static void uidl_status(void *ud, const pc_pop3_resp *r)
{
    p3sess *s = ud;
    size_t n = 0;
    const char *v = single_value(s, r, &n);
    if (v && n > 0 && n < sizeof(s->r->uidl))
        pc_sanitize(s->r->uidl, sizeof(s->r->uidl), v, n, 0);
}

static void list_status(void *ud, const pc_pop3_resp *r)
{
    p3sess *s = ud;
    size_t n = 0, size = 0;
    const char *v = single_value(s, r, &n);
    if (!v)
        return;
    for (size_t i = 0; i < n && size < ((size_t)-1) / 20; i++)
        size = size * 10 + (size_t)(v[i] - '0');
    s->r->list_size = size;
}

static void send_single(p3sess *s, const char *verb, void (*status)(void *, const pc_pop3_resp *));

/* What to do once the cache and the size are known, when RETR/TOP is not yet sent. */
static void act(p3sess *s, int mode)
{
    s->r->mode = mode;
    switch (mode) {
    case M_NOTICE: serve_notice(s, s->r->info, s->r->info_len); return;
    case M_REFUSE: refuse_oversize(s); return;
    default: send_body(s); return; /* M_RELAY: relayed as it comes; M_SCAN: spooled */
    }
}

static void single_done(void *ud, pc_pop3c_status st, unsigned flags)
{
    p3sess *s = ud;
    (void)flags;
    if (st != PC_POP3C_OK) {
        retr_reset(s);
        p3_upstream_lost(s);
        return;
    }
    int was_uidl = s->r->step == R_UIDL;
    s->r->step = R_LIST;
    if (s->r->pipe)
        return; /* RETR/TOP is already on its way: its status line decides */
    if (s->r->list_size == (size_t)-1) { /* -ERR: no such message */
        p3_reply(s, "%s", s->okline);
        finish(s);
        return;
    }
    if (was_uidl) {
        int m = decide_cache(s);
        if (m != M_SCAN)
            act(s, m);
        else
            send_single(s, "LIST", list_status);
        return;
    }
    act(s, decide_size(s));
}

static void send_single(p3sess *s, const char *verb, void (*status)(void *, const pc_pop3_resp *))
{
    char line[40];
    snprintf(line, sizeof(line), "%s %u", verb, (unsigned)s->cmd.num[0]);
    pc_pop3c_handler h = {.status = status, .done = single_done, .ud = s};
    p3_up_send(s, line, 0, 0, &h);
}

/* RETR n / TOP n m through the retrieve hook. UIDL n (the verdict cache's key) and LIST n (the
 * size, against scan_max) are asked first; when the upstream pipelines, the three commands leave in
 * one write and the body's status line decides what happens to it, else each waits for the previous
 * answer and RETR is not sent at all for a cached notice or a refused size. */
void p3_retrieve(p3sess *s)
{
    if (!(s->base.l->chain_hooks & PC_HOOK_BIT(PC_HOOK_RETRIEVE)) || !s->base.l->chain) {
        p3_relay(s);
        return;
    }
    if (!s->r && !(s->r = calloc(1, sizeof(*s->r)))) {
        p3_reply(s, "-ERR [SYS/TEMP] Local error, try again later.");
        return;
    }
    retr_reset(s);
    s->r->uidl[0] = '\0';
    s->r->list_size = 0;
    s->r->mode = M_SCAN;
    s->r->pipe = pc_pop3c_pipelines(s->up);
    int uidl =
        s->cache_size && (!s->base.l->caps_known || (s->base.l->caps_flags & PC_POP3_CAP_UIDL));
    pc_pop3c *up = s->up;
    pc_pop3c_cork(up, 1);
    s->r->step = uidl ? R_UIDL : R_LIST;
    if (uidl)
        send_single(s, "UIDL", uidl_status);
    if ((!uidl || s->r->pipe) && s->up == up)
        send_single(s, "LIST", list_status);
    if (s->r->pipe && s->up == up)
        send_body(s);
    if (s->up == up)
        pc_pop3c_cork(up, 0);
}
