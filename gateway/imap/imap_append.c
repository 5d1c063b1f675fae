/* imap_append.c — APPEND through the message hook (RFC 9051 §6.3.12, RFC 7888, RFC 7889 style
 * limits): the gateway answers the client's "+" itself, spools the message literal, runs
 * PC_HOOK_MESSAGE and only then appends the message (as the filters left it) upstream, with the
 * client's tag so that the upstream's tagged answer ([APPENDUID ...]) is relayed as it is.
 * Defends against: a refused message reaching the mailbox (nothing goes upstream before the
 * verdict), unbounded buffering (literal_max, the spool's budgets), APPEND forms the gateway does
 * not inspect (MULTIAPPEND, CATENATE: BAD). */
#include "imap/imap_append.h"
#include "imap/imap_client.h"
#include "imap/imap_flow.h"
#include "imap/imap_render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/notice.h"
#include "parse/sanitize.h"

#define AP_MBOX_LITERAL_MAX 1024
#define AP_ERR_MBOX 1000 /* the mailbox literal cannot be quoted */

void is_ap_init(is_append *a, pc_session *base, const char *user, unsigned *serial,
                const is_append_ops *ops, void *ud)
{
    a->base = base;
    a->user = user;
    a->serial = serial;
    a->ops = ops;
    a->ud = ud;
}

int is_ap_wanted(const is_append *a, const pc_imap_cmd_head *h)
{
    return a->base->l->chain && (a->base->l->chain_hooks & PC_HOOK_BIT(PC_HOOK_MESSAGE)) &&
           !h->sub.n && pc_imap_word_is(h->name, "APPEND");
}

void is_ap_free(is_append *a)
{
    if (a->run) {
        pc_chain_abort(a->run);
        a->run = NULL;
    }
    if (a->msg)
        pc_message_unref(a->msg);
    else
        pc_spool_free(a->spool);
    if (a->base->sv.msg == a->msg)
        a->base->sv.msg = NULL;
    a->msg = NULL;
    a->spool = NULL;
    pc_buf_release(&a->cmd);
    a->st = AP_NONE;
    a->err = 0;
    a->have_mbox = 0;
}

/* Refuses the rest of the command: the relay's swallow path answers (at once for a synchronising
 * literal, else at the line end). */
static void refuse(is_append *a, const char *reply)
{
    is_ap_free(a);
    a->ops->refuse(a->ud, reply);
}

/* A text segment of the arguments: what comes before a literal announcement is kept. */
static void args_text(is_append *a, const char *p, size_t n)
{
    if (n && p[n - 1] == '\n') {
        size_t k = n;
        while (k > 0 && p[k - 1] != '{')
            k--;
        n = k ? k - 1 : 0;
    }
    for (size_t i = 0; i < n && !a->have_mbox; i++)
        if (p[i] != ' ')
            a->have_mbox = 1;
    pc_buf_append(&a->cmd, p, n);
}

/* The message is too large to be scanned and may pass: the command goes upstream as the client
 * sent it and the relay takes over (the upstream answers the "+"). */
static void pass_unscanned(is_append *a, const pc_imap_ev *ev)
{
    char ann[48];
    a->appended++;
    a->unscanned++;
    pc_log_notice(a->base->sid, "event=append user=%s size=%llu action=unscanned reason=size",
                  a->user, (unsigned long long)ev->lit_size);
    int n = snprintf(ann, sizeof(ann), "{%llu%s}\r\n", (unsigned long long)ev->lit_size,
                     (ev->lit_flags & PC_IMAP_LIT_NONSYNC) ? "+" : "");
    a->ops->up_send(a->ud, a->tag, strlen(a->tag));
    a->ops->up_send(a->ud, " ", 1);
    a->ops->up_send(a->ud, pc_buf_ptr(&a->cmd), pc_buf_used(&a->cmd));
    a->ops->up_send(a->ud, ann, (size_t)n);
    a->ops->forwarded(a->ud, pc_buf_used(&a->cmd) + (size_t)n + 1);
    is_ap_free(a);
}

static int message_literal(is_append *a, const pc_imap_ev *ev)
{
    if (ev->lit_size > a->base->cfg->mailbox.scan_max) {
        if (!a->base->cfg->mailbox.oversize_refuse) {
            pass_unscanned(a, ev);
            return 0; /* the relay goes on with this LITERAL event */
        }
        a->refused++;
        pc_log_notice(a->base->sid, "event=append user=%s size=%llu action=refused reason=size",
                      a->user, (unsigned long long)ev->lit_size);
        refuse(a, "NO [TOOBIG] Message too large to be scanned");
        return 0;
    }
    a->size = ev->lit_size;
    a->spool = pc_spool_new(a->base->l->spool_threshold);
    if (!a->spool)
        a->err = PC_SPOOL_EIO;
    if (ev->lit_flags & PC_IMAP_LIT_SYNC) {
        pc_session_reply(a->base, "+ Ready for literal data");
        pc_session_flush(a->base);
    }
    a->st = ev->lit_size ? AP_BODY : AP_END;
    return 1;
}

void is_ap_begin(is_append *a, const char *tag, const pc_imap_ev *ev)
{
    pc_imap_cmd_head h;
    pc_imap_cmd_split(ev->data.p, ev->data.n, &h);
    snprintf(a->tag, sizeof(a->tag), "%s", tag);
    pc_buf_reset(&a->cmd);
    pc_buf_append(&a->cmd, "APPEND ", 7);
    a->st = AP_ARGS;
    a->have_mbox = 0;
    a->err = 0;
    a->t0 = pc_now_ms();
    /* h.args lacks the CRLF of an announcement: take the segment's end instead */
    const char *p = h.args.n ? h.args.p : ev->data.p + ev->data.n;
    args_text(a, p, (size_t)(ev->data.p + ev->data.n - p));
}

int is_ap_event(is_append *a, int rc, const pc_imap_ev *ev)
{
    switch (rc) {
    case PC_IMAP_EV_TEXT:
        if (a->st == AP_ARGS) {
            args_text(a, ev->data.p, ev->data.n);
            return 1;
        }
        /* text after the message literal: a second message (MULTIAPPEND) or junk */
        refuse(a, "BAD Only one message per APPEND (MULTIAPPEND is not available)");
        return 0;
    case PC_IMAP_EV_LITERAL:
        if (a->st != AP_ARGS)
            return 1;
        if (ev->depth != 0) {
            refuse(a, "BAD APPEND form not supported (CATENATE is not available)");
            return 0;
        }
        if (a->have_mbox)
            return message_literal(a, ev);
        if (ev->lit_size > AP_MBOX_LITERAL_MAX) {
            refuse(a, "BAD Mailbox name too long");
            return 0;
        }
        /* the mailbox as a literal: rebuilt as a quoted string */
        a->have_mbox = 2;
        pc_buf_append(&a->cmd, "\"", 1);
        if (ev->lit_size == 0) {
            pc_buf_append(&a->cmd, "\"", 1);
            a->have_mbox = 1;
        }
        if (ev->lit_flags & PC_IMAP_LIT_SYNC) {
            pc_session_reply(a->base, "+ Ready for literal data");
            pc_session_flush(a->base);
        }
        return 1;
    case PC_IMAP_EV_LITERAL_DATA:
        if (a->st == AP_ARGS && a->have_mbox == 2) {
            for (size_t i = 0; i < ev->data.n; i++) {
                unsigned char c = (unsigned char)ev->data.p[i];
                if (c < 0x20 || c > 0x7e)
                    a->err = AP_ERR_MBOX;
                if (c == '"' || c == '\\')
                    pc_buf_append(&a->cmd, "\\", 1);
                pc_buf_append(&a->cmd, ev->data.p + i, 1);
            }
            if (ev->lit_left == 0) {
                pc_buf_append(&a->cmd, "\"", 1);
                a->have_mbox = 1;
                if (a->err) {
                    refuse(a, "BAD Mailbox name not supported");
                    return 1;
                }
            }
            return 1;
        }
        if (a->st == AP_BODY) {
            if (!a->err) {
                int w = pc_spool_write(a->spool, ev->data.p, ev->data.n);
                if (w != PC_SPOOL_OK)
                    a->err = w;
            }
            if (ev->lit_left == 0)
                a->st = AP_END;
        }
        return 1;
    case PC_IMAP_EV_LINE_END:
        if (a->st == AP_END) {
            a->st = AP_READY;
            return 1;
        }
        pc_session_reply(a->base, "%s BAD Missing message literal", a->tag);
        is_ap_free(a);
        a->ops->error_count(a->ud);
        return a->ops->closing(a->ud) ? -1 : 1;
    default: return 1;
    }
}

static void ap_done(is_append *a)
{
    is_ap_free(a);
    pc_results_reset(&a->base->results);
    a->ops->again(a->ud);
}

static void send_upstream(is_append *a, const pc_decision *d)
{
    size_t sz = pc_message_size(a->msg);
    unsigned f = a->base->l->caps_flags;
    int nonsync =
        (f & PC_IMAPCAP_LITPLUS) || ((f & PC_IMAPCAP_LITMINUS) && sz <= PC_IMAP_LITERAL_MINUS_MAX);
    char ann[48];
    int n = snprintf(ann, sizeof(ann), "{%zu%s}\r\n", sz, nonsync ? "+" : "");
    a->ops->up_send(a->ud, a->tag, strlen(a->tag));
    a->ops->up_send(a->ud, " ", 1);
    a->ops->up_send(a->ud, pc_buf_ptr(&a->cmd), pc_buf_used(&a->cmd));
    a->ops->up_send(a->ud, ann, (size_t)n);
    a->ops->forwarded(a->ud, 0);
    a->appended++;
    pc_log_info(a->base->sid,
                "event=append user=%s size=%llu sent=%zu action=%s literal=%s duration_ms=%llu",
                a->user, (unsigned long long)a->size, sz, d->action == PC_TAG ? "tag" : "pass",
                nonsync ? "nonsync" : "sync", (unsigned long long)(pc_now_ms() - a->t0));
    a->off = 0;
    if (nonsync) {
        a->st = AP_SEND;
        is_ap_pump(a);
    } else {
        a->st = AP_UPWAIT;
        a->ops->up_flush(a->ud);
    }
}

static void ap_chain_cb(void *ud, const pc_verdict *v)
{
    is_append *a = ud;
    a->run = NULL;
    a->base->sv.msg = NULL;
    pc_decision d;
    pc_decision_set(&d, v, a->base->sv.results);
    char no[400];
    if (pc_imap_render(&d, PC_IMAP_AT_APPEND, no, sizeof(no)) == PC_IMAP_ANSWERED) {
        char ref[64];
        pc_notice_ref(ref, sizeof(ref), a->base->sid, "a", ++*a->serial);
        pc_session_reply(a->base, "%s %s (reference %s)", a->tag, no, ref);
        static const char *const names[] = {[PC_OUTCOME_REFUSE] = "rejected",
                                            [PC_OUTCOME_DEFER] = "tempfail",
                                            [PC_OUTCOME_HOLD] = "quarantined",
                                            [PC_OUTCOME_DISCARD] = "discarded"};
        a->refused++;
        pc_log_info(a->base->sid,
                    "event=append user=%s size=%llu action=%s reason=\"%s\" ref=%s "
                    "duration_ms=%llu",
                    a->user, (unsigned long long)a->size, names[d.outcome],
                    pc_decision_reason(&d, "Message refused by policy"), ref,
                    (unsigned long long)(pc_now_ms() - a->t0));
        ap_done(a);
    } else {
        send_upstream(a, &d);
    }
    a->ops->resume(a->ud);
}

void is_ap_try_start(is_append *a, int retrieve_busy)
{
    if (a->st != AP_READY || retrieve_busy)
        return;
    if (!a->err) {
        a->msg = pc_message_new(a->spool);
        if (a->msg)
            a->spool = NULL;
    }
    if (a->err || !a->msg) {
        pc_session_reply(
            a->base,
            "%s NO [UNAVAILABLE] Message could not be stored for checking, try again later",
            a->tag);
        a->refused++;
        pc_log_notice(a->base->sid, "event=append user=%s size=%llu action=refused reason=spool-%d",
                      a->user, (unsigned long long)a->size, a->err);
        ap_done(a);
        return;
    }
    pc_results_reset(&a->base->results);
    a->base->sv.msg = a->msg;
    a->st = AP_CHAIN;
    pc_chain_run *r =
        pc_chain_start(a->base->l->chain, PC_HOOK_MESSAGE, &a->base->sv, ap_chain_cb, a);
    if (r)
        a->run = r;
}

/* The upstream's answer while the APPEND is on its way: its "+" (consumed, the message follows)
 * or a tagged refusal (relayed by the caller). Returns 1 when the line was consumed. */
int is_ap_upstream_line(is_append *a, const pc_imap_resp_head *h)
{
    if (a->st != AP_UPWAIT)
        return 0;
    if (h->kind == PC_IMAP_RESP_CONTINUE) {
        a->st = AP_SEND;
        is_ap_pump(a);
        return 1;
    }
    if (h->kind == PC_IMAP_RESP_TAGGED && h->tag.n == strlen(a->tag) &&
        memcmp(h->tag.p, a->tag, h->tag.n) == 0) {
        a->refused++;
        pc_log_notice(a->base->sid, "event=append user=%s action=refused-upstream", a->user);
        ap_done(a);
    }
    return 0;
}

/* Streams the message upstream while its write queue is low; continues on the upstream's DRAIN.
 */
void is_ap_pump(is_append *a)
{
    char chunk[IMAP_CHUNK];
    a->ops->up_flush(a->ud);
    pc_conn *up = a->ops->upstream(a->ud);
    while (a->st == AP_SEND && up && up->wpending < IMAP_HIGH_WATER) {
        ssize_t n = pc_message_read(a->msg, a->off, chunk, sizeof(chunk));
        if (n < 0) {
            pc_log_err(a->base->sid, "event=spool-read-error");
            pc_session_reply(a->base, "* BYE Local error");
            a->ops->close(a->ud);
            return;
        }
        if (n == 0) {
            pc_conn_write(up, "\r\n", 2);
            ap_done(a);
            a->ops->sent(a->ud);
            return;
        }
        a->off += (size_t)n;
        pc_conn_write(up, chunk, (size_t)n);
    }
    if (up && a->st == AP_SEND)
        up->want_drain = 1;
}
