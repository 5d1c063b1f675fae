/* imap_append.c — APPEND through the message hook (RFC 9051 §6.3.12, RFC 7888, RFC 7889 style
 * limits): the gateway answers the client's "+" itself, spools the message literal, runs
 * PC_HOOK_MESSAGE and only then appends the message (as the filters left it) upstream, with the
 * client's tag so that the upstream's tagged answer ([APPENDUID ...]) is relayed as it is.
 * Defends against: a refused message reaching the mailbox (nothing goes upstream before the
 * verdict), unbounded buffering (literal_max, the spool's budgets), APPEND forms the gateway does
 * not inspect (MULTIAPPEND, CATENATE: BAD). */
#include "imap/imap_server_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/notice.h"
#include "parse/sanitize.h"

#define AP_MBOX_LITERAL_MAX 1024
#define AP_ERR_MBOX 1000 /* the mailbox literal cannot be quoted */

int is_ap_wanted(const isess *s, const pc_imap_cmd_head *h)
{
    return s->base.l->chain && (s->base.l->chain_hooks & PC_HOOK_BIT(PC_HOOK_MESSAGE)) &&
           !h->sub.n && pc_imap_word_is(h->name, "APPEND");
}

void is_ap_free(isess *s)
{
    if (s->ap_run) {
        pc_chain_abort(s->ap_run);
        s->ap_run = NULL;
    }
    if (s->ap_msg)
        pc_message_free(s->ap_msg);
    else
        pc_spool_free(s->ap_spool);
    if (s->base.sv.msg == s->ap_msg)
        s->base.sv.msg = NULL;
    s->ap_msg = NULL;
    s->ap_spool = NULL;
    pc_buf_release(&s->ap_cmd);
    s->ap = AP_NONE;
    s->ap_err = 0;
    s->ap_have_mbox = 0;
}

/* Refuses the rest of the command: the relay's swallow path answers (at once for a synchronising
 * literal, else at the line end). */
static void refuse(isess *s, const char *reply)
{
    is_ap_free(s);
    s->swallow = 1;
    s->swallow_reply = reply;
}

/* A text segment of the arguments: what comes before a literal announcement is kept. */
static void args_text(isess *s, const char *p, size_t n)
{
    if (n && p[n - 1] == '\n') {
        size_t k = n;
        while (k > 0 && p[k - 1] != '{')
            k--;
        n = k ? k - 1 : 0;
    }
    for (size_t i = 0; i < n && !s->ap_have_mbox; i++)
        if (p[i] != ' ')
            s->ap_have_mbox = 1;
    pc_buf_append(&s->ap_cmd, p, n);
}

/* The message is too large to be scanned and may pass: the command goes upstream as the client
 * sent it and the relay takes over (the upstream answers the "+"). */
static void pass_unscanned(isess *s, const pc_imap_ev *ev)
{
    char ann[48];
    s->appended++;
    s->unscanned++;
    pc_log_notice(s->base.sid, "event=append user=%s size=%llu action=unscanned reason=size",
                  s->user, (unsigned long long)ev->lit_size);
    int n = snprintf(ann, sizeof(ann), "{%llu%s}\r\n", (unsigned long long)ev->lit_size,
                     (ev->lit_flags & PC_IMAP_LIT_NONSYNC) ? "+" : "");
    is_up_send(s, s->ap_tag, strlen(s->ap_tag));
    is_up_send(s, " ", 1);
    is_up_send(s, pc_buf_ptr(&s->ap_cmd), pc_buf_used(&s->ap_cmd));
    is_up_send(s, ann, (size_t)n);
    s->line_fwd = pc_buf_used(&s->ap_cmd) + (size_t)n + 1;
    s->outstanding++;
    is_ap_free(s);
}

static int message_literal(isess *s, const pc_imap_ev *ev)
{
    if (ev->lit_size > s->base.cfg->mailbox.scan_max) {
        if (!s->base.cfg->mailbox.oversize_refuse) {
            pass_unscanned(s, ev);
            return 0; /* the relay goes on with this LITERAL event */
        }
        s->append_refused++;
        pc_log_notice(s->base.sid, "event=append user=%s size=%llu action=refused reason=size",
                      s->user, (unsigned long long)ev->lit_size);
        refuse(s, "NO [TOOBIG] Message too large to be scanned");
        return 0;
    }
    s->ap_size = ev->lit_size;
    s->ap_spool = pc_spool_new(s->base.l->spool_threshold);
    if (!s->ap_spool)
        s->ap_err = PC_SPOOL_EIO;
    if (ev->lit_flags & PC_IMAP_LIT_SYNC) {
        is_reply(s, "+ Ready for literal data");
        is_flush(s);
    }
    s->ap = ev->lit_size ? AP_BODY : AP_END;
    return 1;
}

int is_ap_event(isess *s, int rc, const pc_imap_ev *ev)
{
    switch (rc) {
    case PC_IMAP_EV_TEXT:
        if (s->ap == AP_NONE) { /* the command's first segment */
            pc_imap_cmd_head h;
            pc_imap_cmd_split(ev->data.p, ev->data.n, &h);
            snprintf(s->ap_tag, sizeof(s->ap_tag), "%s", s->tag);
            pc_buf_reset(&s->ap_cmd);
            pc_buf_append(&s->ap_cmd, "APPEND ", 7);
            s->ap = AP_ARGS;
            s->ap_have_mbox = 0;
            s->ap_err = 0;
            s->ap_t0 = pc_now_ms();
            /* h.args lacks the CRLF of an announcement: take the segment's end instead */
            const char *a = h.args.n ? h.args.p : ev->data.p + ev->data.n;
            args_text(s, a, (size_t)(ev->data.p + ev->data.n - a));
            return 1;
        }
        if (s->ap == AP_ARGS) {
            args_text(s, ev->data.p, ev->data.n);
            return 1;
        }
        /* text after the message literal: a second message (MULTIAPPEND) or junk */
        refuse(s, "BAD Only one message per APPEND (MULTIAPPEND is not available)");
        return 0;
    case PC_IMAP_EV_LITERAL:
        if (s->ap != AP_ARGS)
            return 1;
        if (ev->depth != 0) {
            refuse(s, "BAD APPEND form not supported (CATENATE is not available)");
            return 0;
        }
        if (s->ap_have_mbox)
            return message_literal(s, ev);
        if (ev->lit_size > AP_MBOX_LITERAL_MAX) {
            refuse(s, "BAD Mailbox name too long");
            return 0;
        }
        /* the mailbox as a literal: rebuilt as a quoted string */
        s->ap_have_mbox = 2;
        pc_buf_append(&s->ap_cmd, "\"", 1);
        if (ev->lit_size == 0) {
            pc_buf_append(&s->ap_cmd, "\"", 1);
            s->ap_have_mbox = 1;
        }
        if (ev->lit_flags & PC_IMAP_LIT_SYNC) {
            is_reply(s, "+ Ready for literal data");
            is_flush(s);
        }
        return 1;
    case PC_IMAP_EV_LITERAL_DATA:
        if (s->ap == AP_ARGS && s->ap_have_mbox == 2) {
            for (size_t i = 0; i < ev->data.n; i++) {
                unsigned char c = (unsigned char)ev->data.p[i];
                if (c < 0x20 || c > 0x7e)
                    s->ap_err = AP_ERR_MBOX;
                if (c == '"' || c == '\\')
                    pc_buf_append(&s->ap_cmd, "\\", 1);
                pc_buf_append(&s->ap_cmd, ev->data.p + i, 1);
            }
            if (ev->lit_left == 0) {
                pc_buf_append(&s->ap_cmd, "\"", 1);
                s->ap_have_mbox = 1;
                if (s->ap_err) {
                    refuse(s, "BAD Mailbox name not supported");
                    return 1;
                }
            }
            return 1;
        }
        if (s->ap == AP_BODY) {
            if (!s->ap_err) {
                int w = pc_spool_write(s->ap_spool, ev->data.p, ev->data.n);
                if (w != PC_SPOOL_OK)
                    s->ap_err = w;
            }
            if (ev->lit_left == 0)
                s->ap = AP_END;
        }
        return 1;
    case PC_IMAP_EV_LINE_END:
        s->c_first = 1;
        s->line_fwd = 0;
        if (s->ap == AP_END) {
            s->ap = AP_READY;
            return 1;
        }
        is_reply(s, "%s BAD Missing message literal", s->ap_tag);
        is_ap_free(s);
        is_error_count(s);
        return s->phase == IP_CLOSING ? -1 : 1;
    default: return 1;
    }
}

static void ap_done(isess *s)
{
    is_ap_free(s);
    pc_results_reset(&s->base.results);
    s->again = 1;
}

static void send_upstream(isess *s, const pc_verdict *v)
{
    size_t sz = pc_message_size(s->ap_msg);
    unsigned f = s->base.l->caps_flags;
    int nonsync =
        (f & PC_IMAPCAP_LITPLUS) || ((f & PC_IMAPCAP_LITMINUS) && sz <= PC_IMAP_LITERAL_MINUS_MAX);
    char ann[48];
    int n = snprintf(ann, sizeof(ann), "{%zu%s}\r\n", sz, nonsync ? "+" : "");
    is_up_send(s, s->ap_tag, strlen(s->ap_tag));
    is_up_send(s, " ", 1);
    is_up_send(s, pc_buf_ptr(&s->ap_cmd), pc_buf_used(&s->ap_cmd));
    is_up_send(s, ann, (size_t)n);
    s->outstanding++;
    s->appended++;
    pc_log_info(s->base.sid,
                "event=append user=%s size=%llu sent=%zu action=%s literal=%s duration_ms=%llu",
                s->user, (unsigned long long)s->ap_size, sz,
                v && v->action == PC_TAG ? "tag" : "pass", nonsync ? "nonsync" : "sync",
                (unsigned long long)(pc_now_ms() - s->ap_t0));
    s->ap_off = 0;
    if (nonsync) {
        s->ap = AP_SEND;
        is_ap_pump(s);
    } else {
        s->ap = AP_UPWAIT;
        is_up_flush(s);
    }
}

static void ap_chain_cb(void *ud, const pc_verdict *v)
{
    isess *s = ud;
    s->ap_run = NULL;
    s->base.sv.msg = NULL;
    if (v->action == PC_REJECT || v->action == PC_TEMPFAIL || v->action == PC_QUARANTINE ||
        v->action == PC_DISCARD) {
        char why[300], ref[64];
        const char *txt = v->text ? v->text : "Message refused by policy";
        pc_sanitize(why, sizeof(why), txt, strlen(txt), 0);
        pc_notice_ref(ref, sizeof(ref), s->base.sid, "a", ++s->pf_serial);
        const char *code = v->action == PC_TEMPFAIL ? "UNAVAILABLE" : "CANNOT";
        is_reply(s, "%s NO [%s] %s (reference %s)", s->ap_tag, code, why, ref);
        static const char *const names[] = {[PC_REJECT] = "rejected",
                                            [PC_TEMPFAIL] = "tempfail",
                                            [PC_QUARANTINE] = "quarantined",
                                            [PC_DISCARD] = "discarded"};
        s->append_refused++;
        pc_log_info(s->base.sid,
                    "event=append user=%s size=%llu action=%s reason=\"%s\" ref=%s "
                    "duration_ms=%llu",
                    s->user, (unsigned long long)s->ap_size, names[v->action], why, ref,
                    (unsigned long long)(pc_now_ms() - s->ap_t0));
        ap_done(s);
    } else {
        send_upstream(s, v);
    }
    if (s->phase == IP_CLOSING)
        return;
    is_flush(s);
    is_relay_upstream(s);
    is_process(s);
}

void is_ap_try_start(isess *s)
{
    if (s->ap != AP_READY || s->wait != IW_NONE)
        return;
    if (!s->ap_err) {
        s->ap_msg = pc_message_new(s->ap_spool);
        if (s->ap_msg)
            s->ap_spool = NULL;
    }
    if (s->ap_err || !s->ap_msg) {
        is_reply(s, "%s NO [UNAVAILABLE] Message could not be stored for checking, try again later",
                 s->ap_tag);
        s->append_refused++;
        pc_log_notice(s->base.sid, "event=append user=%s size=%llu action=refused reason=spool-%d",
                      s->user, (unsigned long long)s->ap_size, s->ap_err);
        ap_done(s);
        return;
    }
    pc_results_reset(&s->base.results);
    s->base.sv.msg = s->ap_msg;
    s->ap = AP_CHAIN;
    pc_chain_run *r =
        pc_chain_start(s->base.l->chain, PC_HOOK_MESSAGE, &s->base.sv, ap_chain_cb, s);
    if (r)
        s->ap_run = r;
}

/* The upstream's answer while the APPEND is on its way: its "+" (consumed, the message follows)
 * or a tagged refusal (relayed by the caller). Returns 1 when the line was consumed. */
int is_ap_upstream_line(isess *s, const pc_imap_resp_head *h)
{
    if (s->ap != AP_UPWAIT)
        return 0;
    if (h->kind == PC_IMAP_RESP_CONTINUE) {
        s->ap = AP_SEND;
        is_ap_pump(s);
        return 1;
    }
    if (h->kind == PC_IMAP_RESP_TAGGED && h->tag.n == strlen(s->ap_tag) &&
        memcmp(h->tag.p, s->ap_tag, h->tag.n) == 0) {
        s->append_refused++;
        pc_log_notice(s->base.sid, "event=append user=%s action=refused-upstream", s->user);
        ap_done(s);
    }
    return 0;
}

/* Streams the message upstream while its write queue is low; continues on the upstream's DRAIN.
 */
void is_ap_pump(isess *s)
{
    char chunk[IMAP_CHUNK];
    is_up_flush(s);
    while (s->ap == AP_SEND && s->up && s->up->wpending < IMAP_HIGH_WATER) {
        ssize_t n = pc_message_read(s->ap_msg, s->ap_off, chunk, sizeof(chunk));
        if (n < 0) {
            pc_log_err(s->base.sid, "event=spool-read-error");
            is_reply(s, "* BYE Local error");
            is_close(s);
            return;
        }
        if (n == 0) {
            pc_conn_write(s->up, "\r\n", 2);
            if (!s->c_paused)
                s->up->want_drain = 0;
            ap_done(s);
            is_process(s);
            return;
        }
        s->ap_off += (size_t)n;
        pc_conn_write(s->up, chunk, (size_t)n);
    }
    if (s->up && s->ap == AP_SEND)
        s->up->want_drain = 1;
}
