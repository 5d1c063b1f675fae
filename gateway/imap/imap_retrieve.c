/* imap_retrieve.c — FETCH through the retrieve hook: whole messages in FETCH responses spooled,
 * scanned and sent on (or replaced by a notice); FETCH of sections and partials made safe by a
 * pre-scan of the whole messages (internal commands on the upstream, responses consumed here) with
 * a per-worker verdict cache keyed by (listener, user, mailbox, UIDVALIDITY, UID); the parts of a
 * withheld message replaced by a notice part. Defends against: a dangerous message read piecewise
 * (BODY[2], BODY[]<0.2048>) around the whole-message scan, cache poisoning by a UID spoofed in
 * response text (UIDs read only at parenthesis depth 1 outside strings and sections). */
#include "imap/imap_retrieve.h"
#include "imap/imap_flow.h"
#include "imap/imap_render.h"
#include "imap/imap_select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/notice.h"
#include "parse/sanitize.h"

#define PF_MAP_MAX 100000   /* messages one pre-scanned FETCH may cover */
#define PF_UIDLIST_MAX 4000 /* bytes of UID set in one internal UID FETCH */

/* ---- the verdict cache (imap_select.c) --------------------------------------------------- */

static const pc_vcache_ent *vc_lookup(const is_retrieve *r, uint32_t uid)
{
    return is_vc_lookup(&r->sel, r->base->cfg, r->user, uid,
                        pc_chain_content_version(r->base->l->chain));
}

static void vc_store(const is_retrieve *r, uint32_t uid, int state, const char *info,
                     size_t info_len)
{
    is_vc_store(&r->sel, r->base->cfg, r->user, uid, pc_chain_content_version(r->base->l->chain),
                state, info, info_len);
}

/* ---- the notice (notice.c) ---------------------------------------------------------------- */

static size_t notice_info(const is_retrieve *r, const pc_message *m, const char *reason,
                          const char *ref, char *info, size_t infolen)
{
    return pc_notice_info(m, r->base->cfg->hostname, reason, "withheld", ref, info, infolen);
}

/* What the decision means for the FETCH response (imap_render.c); the finding goes to why. */
static pc_imap_rendered rendered(const pc_decision *d, char *why, size_t whylen)
{
    return d ? pc_imap_render(d, PC_IMAP_AT_RETRIEVE, why, whylen) : PC_IMAP_GO_ON;
}

/* ---- whole messages in FETCH responses ------------------------------------------------------ */

void is_rt_init(is_retrieve *r, pc_session *base, const char *user, unsigned *serial,
                const is_retrieve_ops *ops, void *ud)
{
    pc_buf_init(&r->notice, 0);
    pc_buf_init(&r->hold, 0);
    r->base = base;
    r->user = user;
    r->serial = serial;
    r->ops = ops;
    r->ud = ud;
}

int is_scannable(const is_retrieve *r)
{
    return r->base->l->chain && (r->base->l->chain_hooks & PC_HOOK_BIT(PC_HOOK_RETRIEVE));
}

static void scan_finish(is_retrieve *r)
{
    if (r->msg)
        pc_message_unref(r->msg);
    else
        pc_spool_free(r->spool);
    r->msg = NULL;
    r->spool = NULL;
    r->base->sv.msg = NULL;
    pc_buf_release(&r->notice);
    pc_results_reset(&r->base->results);
    if (!r->scan_pre)
        r->fetched++;
    r->scan = 0;
    r->scan_pre = 0;
    r->wait = IW_NONE;
}

static ipf_ent *map_find(is_retrieve *r, uint32_t seq)
{
    size_t lo = 0, hi = r->pmap_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->pmap[mid].seq == seq)
            return &r->pmap[mid];
        if (r->pmap[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void ent_set(ipf_ent *e, int state, const char *info, size_t len)
{
    free(e->info);
    e->info = NULL;
    e->info_len = 0;
    e->state = state;
    if (state == VS_WITHHELD && (e->info = malloc(len ? len : 1)) != NULL) {
        memcpy(e->info, info, len);
        e->info_len = len;
    }
}

/* Counts a retrieval outcome for the session's log line. */
static void count(is_retrieve *r, const char *action)
{
    if (strcmp(action, "withheld") == 0)
        r->withheld++;
    else if (strcmp(action, "tag") == 0)
        r->tagged++;
    else if (strcmp(action, "unscanned") == 0)
        r->unscanned++;
    else
        r->passed++;
}

/* The pre-scan's decision for the message just scanned (d NULL: not scanned). */
static void pre_verdict(is_retrieve *r, const pc_decision *d)
{
    char why[PC_DECISION_TEXT_MAX];
    pc_imap_rendered how = rendered(d, why, sizeof(why));
    ipf_ent *e = map_find(r, r->u_seq);
    uint32_t uid = r->u_uid ? r->u_uid : e ? e->uid : 0;
    char ref[64], info[PC_NOTICE_INFO_MAX];
    size_t ilen = 0;
    pc_notice_ref(ref, sizeof(ref), r->base->sid, "p", ++*r->serial);
    int state = VS_PASS;
    const char *action = d && d->action == PC_TAG ? "tag" : "pass";
    const char *reason = "";
    if (r->scan == 2) {
        if (r->base->cfg->mailbox.oversize_refuse) {
            state = VS_WITHHELD;
            reason = "message too large to be scanned";
        } else {
            action = "unscanned";
        }
    } else if (r->spool_err || !r->msg) {
        state = VS_WITHHELD;
        reason = "local error";
    } else if (how == PC_IMAP_NOTICE) {
        state = VS_WITHHELD;
        reason = why;
    } else if (how == PC_IMAP_REPLACED) {
        /* the replacement is served whole; its parts would not match: withheld for sections */
        state = VS_WITHHELD;
        reason = pc_decision_reason(d, "replaced by policy");
    }
    if (state == VS_WITHHELD) {
        action = "withheld";
        ilen = notice_info(r, r->msg, reason, ref, info, sizeof(info));
    }
    if (e)
        ent_set(e, state, info, ilen);
    if (!(state == VS_PASS && r->scan == 2) && !r->spool_err) /* unscanned: not cached */
        vc_store(r, uid, state, info, ilen);
    char rs[300];
    pc_sanitize(rs, sizeof(rs), reason, strlen(reason), 0);
    count(r, action);
    pc_log_info(r->base->sid,
                "event=retrieve user=%s uid=%u size=%llu source=prescan action=%s%s%s%s%s", r->user,
                (unsigned)uid, (unsigned long long)r->scan_size, action,
                state == VS_WITHHELD ? " reason=\"" : "", state == VS_WITHHELD ? rs : "",
                state == VS_WITHHELD ? "\" ref=" : "", state == VS_WITHHELD ? ref : "");
    scan_finish(r);
}

/* The held segment before the literal goes out, with RFC822.SIZE describing what is served
 * (here and in the rest of the response) when that differs from the upstream's literal. */
static void hold_out(is_retrieve *r, uint64_t served)
{
    r->size_fix = served;
    r->size_fix_on = served != r->scan_size;
    if (pc_buf_used(&r->hold))
        is_fetch_seg_out(r, pc_buf_ptr(&r->hold), pc_buf_used(&r->hold), r->hold_depth);
    pc_buf_release(&r->hold);
}

static void emit(is_retrieve *r, const pc_decision *d)
{
    char why[PC_DECISION_TEXT_MAX];
    pc_imap_rendered how = rendered(d, why, sizeof(why));
    char ref[64], hdr[40], info[PC_NOTICE_INFO_MAX];
    pc_notice_ref(ref, sizeof(ref), r->base->sid, "", r->fetched + 1);
    const char *action = "pass";
    int withhold = r->scan == 2 || r->spool_err || !r->msg;
    const char *reason = r->scan == 2 ? "message too large to be scanned" : "local error";
    if (how == PC_IMAP_NOTICE) {
        withhold = 1;
        reason = why;
    }
    if (withhold) {
        size_t ilen = notice_info(r, r->msg, reason, ref, info, sizeof(info));
        pc_notice_build(&r->notice, info, ilen, r->base->cfg->hostname, PC_NOTICE_FULL);
        if (!r->spool_err && r->msg)
            vc_store(r, r->u_uid, VS_WITHHELD, info, ilen);
        action = "withheld";
        hold_out(r, pc_buf_used(&r->notice));
        int n = snprintf(hdr, sizeof(hdr), "{%zu}\r\n", pc_buf_used(&r->notice));
        r->ops->out_add(r->ud, hdr, (size_t)n);
        r->ops->out_add(r->ud, pc_buf_ptr(&r->notice), pc_buf_used(&r->notice));
        char rs[300];
        pc_sanitize(rs, sizeof(rs), reason, strlen(reason), 0);
        count(r, action);
        pc_log_info(r->base->sid,
                    "event=retrieve user=%s uid=%u size=%llu action=%s reason=\"%s\" ref=%s",
                    r->user, (unsigned)r->u_uid, (unsigned long long)r->scan_size, action, rs, ref);
        scan_finish(r);
        return;
    }
    /* REPLACE serves the replacement whole; its parts would not match: withheld for sections. */
    if (how == PC_IMAP_REPLACED) {
        size_t ilen = notice_info(r, r->msg, "replaced by policy", ref, info, sizeof(info));
        vc_store(r, r->u_uid, VS_WITHHELD, info, ilen);
    } else {
        vc_store(r, r->u_uid, VS_PASS, NULL, 0);
    }
    size_t sz = pc_message_size(r->msg);
    hold_out(r, sz);
    int n = snprintf(hdr, sizeof(hdr), "{%zu}\r\n", sz);
    r->ops->out_add(r->ud, hdr, (size_t)n);
    /* tagged: a TAG verdict, or headers added (what is served differs from what was read) */
    count(r, (d && d->action == PC_TAG) || sz != r->scan_size ? "tag" : action);
    pc_log_info(
        r->base->sid, "event=retrieve user=%s uid=%u size=%llu sent=%zu action=%s duration_ms=%llu",
        r->user, (unsigned)r->u_uid, (unsigned long long)r->scan_size, sz,
        d && d->action == PC_TAG ? "tag" : action, (unsigned long long)(pc_now_ms() - r->t0));
    r->emit_off = 0;
    r->wait = IW_PUMP;
    is_pump(r);
}

/* Streams the message to the client while its write queue is low; continues on DRAIN. The bytes
 * join the session's output batch (after the response text and "{n}", before the rest of the
 * line), which goes out in writes of IMAP_CHUNK bytes: a small message is one write with its
 * framing, a large one a series of full chunks. */
void is_pump(is_retrieve *r)
{
    char chunk[IMAP_CHUNK];
    while (r->wait == IW_PUMP && r->base->c->wpending < IMAP_HIGH_WATER) {
        size_t used = pc_buf_used(&r->base->out);
        if (used >= IMAP_CHUNK) {
            pc_session_flush(r->base);
            continue;
        }
        ssize_t n = pc_message_read(r->msg, r->emit_off, chunk, IMAP_CHUNK - used);
        if (n < 0) {
            pc_log_err(r->base->sid, "event=spool-read-error");
            r->ops->close(r->ud);
            return;
        }
        if (n == 0) {
            r->base->c->want_drain = 0;
            scan_finish(r); /* the rest of the line joins the batch; the caller flushes */
            r->ops->again(r->ud);
            return;
        }
        r->emit_off += (size_t)n;
        r->ops->out_add(r->ud, chunk, (size_t)n); /* a full batch is written at once */
    }
    pc_session_flush(r->base); /* waiting for DRAIN: what is gathered goes out now */
    r->base->c->want_drain = 1;
}

static void chain_cb(void *ud, const pc_verdict *v)
{
    is_retrieve *r = ud;
    r->run = NULL;
    pc_decision d;
    pc_decision_set(&d, v, r->base->sv.results);
    if (r->scan_pre)
        pre_verdict(r, &d);
    else
        emit(r, &d);
    if (r->wait == IW_NONE)
        r->ops->resume(r->ud);
}

void is_scan_done(is_retrieve *r)
{
    if (r->scan == 1 && !r->spool_err) {
        r->msg = pc_message_new(r->spool);
        if (r->msg)
            r->spool = NULL;
    }
    if (r->scan == 2 || r->spool_err || !r->msg) {
        if (r->scan_pre)
            pre_verdict(r, NULL);
        else
            emit(r, NULL);
        return;
    }
    r->base->sv.msg = r->msg;
    r->wait = IW_CHAIN;
    pc_results_reset(&r->base->results);
    r->scanned++;
    pc_chain_run *run =
        pc_chain_start(r->base->l->chain, PC_HOOK_RETRIEVE, &r->base->sv, chain_cb, r);
    if (run)
        r->run = run;
}

void is_scan_begin(is_retrieve *r, const pc_imap_ev *ev, int own, const char *ann, size_t ann_len)
{
    r->scan_pre = own;
    r->scan_size = ev->lit_size;
    r->t0 = pc_now_ms();
    r->spool_err = 0;
    if (ev->lit_size > r->base->cfg->mailbox.scan_max) {
        if (!r->base->cfg->mailbox.oversize_refuse && !r->scan_pre) {
            r->unscanned++;
            pc_log_notice(r->base->sid,
                          "event=retrieve user=%s uid=%u size=%llu action=unscanned reason=size",
                          r->user, (unsigned)r->u_uid, (unsigned long long)ev->lit_size);
            is_hold_release(r);
            r->ops->out_add(r->ud, ann, ann_len);
            return;
        }
        r->scan = 2; /* discarded; refused, or (pre-scan) passed unscanned */
        return;
    }
    r->scan = 1;
    r->spool = pc_spool_new(r->base->l->spool_threshold);
    if (!r->spool)
        r->spool_err = PC_SPOOL_EIO;
}

/* ---- the pre-scan of section / partial FETCH ---------------------------------------------- */

static void map_free(is_retrieve *r)
{
    for (size_t i = 0; i < r->pmap_n; i++)
        free(r->pmap[i].info);
    free(r->pmap);
    r->pmap = NULL;
    r->pmap_n = r->pmap_cap = 0;
}

void is_retrieve_free(is_retrieve *r)
{
    if (r->run) {
        pc_chain_abort(r->run);
        r->run = NULL;
    }
    if (r->msg)
        pc_message_unref(r->msg);
    else
        pc_spool_free(r->spool);
    if (r->base->sv.msg == r->msg)
        r->base->sv.msg = NULL;
    r->msg = NULL;
    r->spool = NULL;
    pc_buf_release(&r->notice);
    pc_buf_release(&r->pf_cmd);
    pc_buf_release(&r->hold);
    map_free(r);
    r->pf = PF_NONE;
}

int is_rt_fetch_begin(is_retrieve *r, const char *p, size_t n)
{
    pc_imap_resp_head h;
    r->u_fetch = pc_imap_resp_split(p, n, &h) == PC_OK && h.kind == PC_IMAP_RESP_UNTAGGED &&
                 h.number.n && pc_imap_word_is(h.name, "FETCH");
    r->u_seq = 0;
    r->u_uid = 0;
    r->u_pdepth = 0;
    r->size_fix_on = 0;
    if (r->u_fetch)
        for (size_t i = 0; i < h.number.n && i < 10; i++)
            r->u_seq = r->u_seq * 10 + (uint32_t)(h.number.p[i] - '0');
    return r->u_fetch;
}

void is_rt_line_end(is_retrieve *r)
{
    r->u_fetch = 0;
    r->size_fix_on = 0;
}

int is_rt_item(is_retrieve *r, const char *p, size_t n)
{
    pc_slice item = {"", 0};
    int kind = r->u_fetch ? pc_imap_fetch_item(p, n, &item) : PC_IMAP_ITEM_NONE;
    snprintf(r->u_item, sizeof(r->u_item), "%.*s", (int)item.n, item.p);
    return kind;
}

int is_rt_hold(is_retrieve *r, const char *p, size_t n, int depth)
{
    pc_buf_reset(&r->hold);
    r->hold_depth = depth;
    return pc_buf_append(&r->hold, p, n) == 0;
}

void is_scan_drop(is_retrieve *r, const pc_imap_ev *ev)
{
    r->scan = ev->lit_size > 0 ? 3 : 0;
}

int is_scan_data(is_retrieve *r, const pc_imap_ev *ev)
{
    if (r->scan == 1 && !r->spool_err) {
        int w = pc_spool_write(r->spool, ev->data.p, ev->data.n);
        if (w != PC_SPOOL_OK)
            r->spool_err = w;
    }
    if (r->scan == 3 && ev->lit_left == 0) {
        r->scan = 0;
        return 0;
    }
    return ev->lit_left == 0;
}

void is_pf_command_add(is_retrieve *r, const char *p, size_t n)
{
    pc_buf_append(&r->pf_cmd, p, n);
}

/* Every TEXT segment of an upstream FETCH response: picks up its UID. */
void is_pf_text(is_retrieve *r, const char *p, size_t n)
{
    if (!r->u_fetch)
        return;
    pc_imap_fetch_scan(p, n, &r->u_pdepth, &r->u_uid, NULL, NULL, NULL, NULL);
}

void is_fetch_seg_out(is_retrieve *r, const char *p, size_t n, int depth)
{
    size_t at = 0, len = 0;
    if (r->size_fix_on && r->u_fetch)
        pc_imap_fetch_scan(p, n, &depth, NULL, NULL, NULL, &at, &len);
    if (!len) {
        r->ops->out_add(r->ud, p, n);
        return;
    }
    char num[24];
    int k = snprintf(num, sizeof(num), "%llu", (unsigned long long)r->size_fix);
    r->ops->out_add(r->ud, p, at);
    r->ops->out_add(r->ud, num, (size_t)k);
    r->ops->out_add(r->ud, p + at + len, n - at - len);
}

void is_hold_release(is_retrieve *r)
{
    if (pc_buf_used(&r->hold))
        is_fetch_seg_out(r, pc_buf_ptr(&r->hold), pc_buf_used(&r->hold), r->hold_depth);
    pc_buf_release(&r->hold);
}

/* Does the FETCH item list ask for a section or a partial? */
static int wants_parts(const char *p, size_t n)
{
    static const char *const heads[] = {"BODY[", "BODY.PEEK[", "BINARY[", "BINARY.PEEK[", NULL};
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; heads[k]; k++) {
            size_t hl = strlen(heads[k]);
            pc_slice w = {p + i, hl};
            if (i + hl > n || !pc_imap_word_is(w, heads[k]))
                continue;
            if (i > 0 && p[i - 1] != ' ' && p[i - 1] != '(')
                continue;
            size_t j = i + hl;
            if (j < n && p[j] != ']')
                return 1; /* a section */
            if (j + 1 < n && p[j + 1] == '<')
                return 1; /* a partial of the whole message */
        }
        static const char *const rfc[] = {"RFC822.HEADER", "RFC822.TEXT", NULL};
        for (size_t k = 0; rfc[k]; k++) {
            size_t hl = strlen(rfc[k]);
            pc_slice w = {p + i, hl};
            if (i + hl <= n && pc_imap_word_is(w, rfc[k]) &&
                (i == 0 || p[i - 1] == ' ' || p[i - 1] == '('))
                return 1;
        }
    }
    return 0;
}

static int set_ok(pc_slice set)
{
    if (!set.n)
        return 0;
    for (size_t i = 0; i < set.n; i++)
        if (!strchr("0123456789:*,$", set.p[i]))
            return 0;
    return 1;
}

int is_pf_command(is_retrieve *r, const char *tag, const pc_imap_ev *ev, const pc_imap_cmd_head *h)
{
    if (!is_scannable(r))
        return 0;
    int uid = pc_imap_word_is(h->name, "UID") && pc_imap_word_is(h->sub, "FETCH");
    if (!uid && !(pc_imap_word_is(h->name, "FETCH") && !h->sub.n))
        return 0;
    if (ev->data.n && ev->data.p[ev->data.n - 1] == '\n') {
        /* a literal inside the FETCH command (BODY[HEADER.FIELDS ({4}...)]): not pre-scanned */
        pc_log_notice(r->base->sid,
                      "event=retrieve user=%s action=unscanned reason=fetch-with-literal", r->user);
        return 0;
    }
    if (!wants_parts(h->args.p, h->args.n))
        return 0;
    pc_buf_reset(&r->pf_cmd);
    if (pc_buf_append(&r->pf_cmd, ev->data.p, ev->data.n) < 0)
        return 0;
    snprintf(r->pf_tag, sizeof(r->pf_tag), "%s", tag);
    r->pf_uidcmd = uid;
    r->pf_failed = 0;
    r->pf = PF_HELD;
    return 1;
}

static void pf_relay(is_retrieve *r)
{
    r->ops->up_send(r->ud, pc_buf_ptr(&r->pf_cmd), pc_buf_used(&r->pf_cmd));
    pc_buf_release(&r->pf_cmd);
    r->ops->forwarded(r->ud, 0);
    r->pf = PF_RELAY;
    r->pf_itag[0] = '\0';
    r->ops->up_flush(r->ud);
}

static void pf_internal(is_retrieve *r, const char *fmt, const char *a, const char *b)
{
    char line[PF_UIDLIST_MAX + 200];
    snprintf(r->pf_itag, sizeof(r->pf_itag), "PCX%llu.%u",
             (unsigned long long)(r->base->sid % 100000), ++*r->serial);
    int n = snprintf(line, sizeof(line), fmt, r->pf_itag, a, b);
    if (n > 0 && (size_t)n < sizeof(line))
        r->ops->up_send(r->ud, line, (size_t)n);
    r->ops->up_flush(r->ud);
}

static int cmp_seq(const void *a, const void *b)
{
    const ipf_ent *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Second step: verdicts from the cache or the size limit, the rest fetched whole and scanned. */
static void pf_step_scan(is_retrieve *r)
{
    char list[PF_UIDLIST_MAX + 32];
    size_t o = 0;
    for (size_t i = 0; i < r->pmap_n; i++) {
        ipf_ent *e = &r->pmap[i];
        if (e->state != VS_UNKNOWN)
            continue;
        const pc_vcache_ent *c = vc_lookup(r, e->uid);
        if (c) {
            ent_set(e, c->state, c->info, c->info_len);
            r->cache_hits++;
            pc_log_info(r->base->sid,
                        "event=retrieve user=%s uid=%u source=cache result=hit action=%s", r->user,
                        (unsigned)e->uid, c->state == VS_PASS ? "pass" : "withheld");
            continue;
        }
        if (e->size > r->base->cfg->mailbox.scan_max && !r->base->cfg->mailbox.oversize_refuse) {
            e->state = VS_PASS;
            r->unscanned++;
            pc_log_notice(r->base->sid,
                          "event=retrieve user=%s uid=%u size=%llu action=unscanned reason=size",
                          r->user, (unsigned)e->uid, (unsigned long long)e->size);
            continue;
        }
        if (o > PF_UIDLIST_MAX)
            continue; /* next batch */
        /* consecutive UIDs as ranges */
        uint32_t first = e->uid, last = e->uid;
        e->state = VS_ASKED;
        while (i + 1 < r->pmap_n && r->pmap[i + 1].state == VS_UNKNOWN &&
               r->pmap[i + 1].uid == last + 1 && !vc_lookup(r, r->pmap[i + 1].uid) &&
               r->pmap[i + 1].size <= r->base->cfg->mailbox.scan_max) {
            i++;
            r->pmap[i].state = VS_ASKED;
            last = r->pmap[i].uid;
        }
        int k = first == last
                    ? snprintf(list + o, sizeof(list) - o, "%s%u", o ? "," : "", (unsigned)first)
                    : snprintf(list + o, sizeof(list) - o, "%s%u:%u", o ? "," : "", (unsigned)first,
                               (unsigned)last);
        if (k > 0)
            o += (size_t)k;
    }
    if (!o) {
        pf_relay(r);
        return;
    }
    list[o] = '\0';
    r->pf = PF_SCAN;
    pf_internal(r, "%s UID FETCH %s%s (UID BODY.PEEK[])\r\n", list, "");
}

void is_pf_try_start(is_retrieve *r, int blocked)
{
    if (r->pf != PF_HELD || blocked || r->wait != IW_NONE)
        return;
    pc_imap_cmd_head h;
    const char *cmd = pc_buf_ptr(&r->pf_cmd);
    size_t n = pc_buf_used(&r->pf_cmd);
    pc_slice set = {"", 0};
    if (pc_imap_cmd_split(cmd, n, &h) == PC_OK) {
        const char *sp = memchr(h.args.p, ' ', h.args.n);
        set = (pc_slice){h.args.p, sp ? (size_t)(sp - h.args.p) : h.args.n};
    }
    map_free(r);
    if (!set_ok(set) || set.n > 1000) {
        pc_log_notice(r->base->sid, "event=retrieve user=%s action=unscanned reason=fetch-set",
                      r->user);
        pf_relay(r);
        return;
    }
    char sb[1001];
    memcpy(sb, set.p, set.n);
    sb[set.n] = '\0';
    r->pf = PF_UIDS;
    pf_internal(r, "%s %sFETCH %s (UID RFC822.SIZE)\r\n", r->pf_uidcmd ? "UID " : "", sb);
}

/* Whole upstream lines (no literal) while relaying. Returns 1 when consumed here. */
int is_pf_line(is_retrieve *r, const char *p, size_t n, const pc_imap_resp_head *h)
{
    (void)p;
    (void)n;
    if (is_sel_uidvalidity(&r->sel, h))
        return 0;
    if (h->kind == PC_IMAP_RESP_TAGGED && r->pf_itag[0] && h->tag.n == strlen(r->pf_itag) &&
        memcmp(h->tag.p, r->pf_itag, h->tag.n) == 0) {
        r->pf_itag[0] = '\0';
        if (r->pf == PF_UIDS) {
            if (h->status != PC_IMAP_ST_OK) {
                r->pf_failed = 1;
                pf_relay(r);
                return 1;
            }
            qsort(r->pmap, r->pmap_n, sizeof(*r->pmap), cmp_seq);
            pf_step_scan(r);
        } else if (r->pf == PF_SCAN) {
            pf_step_scan(r); /* the next batch, or the client's command */
        }
        return 1;
    }
    if (h->kind == PC_IMAP_RESP_TAGGED && r->pf == PF_RELAY && h->tag.n == strlen(r->pf_tag) &&
        memcmp(h->tag.p, r->pf_tag, h->tag.n) == 0) {
        map_free(r);
        r->pf = PF_NONE;
        r->ops->again(r->ud);
        return 0;
    }
    if (r->pf == PF_UIDS && h->kind == PC_IMAP_RESP_UNTAGGED && pc_imap_word_is(h->name, "FETCH")) {
        uint32_t seq = is_parse_u32(h->number), uid = 0;
        uint64_t size = 0;
        int depth = 0, others = 0;
        pc_imap_fetch_scan(h->text.p, h->text.n, &depth, &uid, &size, &others, NULL, NULL);
        if (!seq || !uid)
            return 0;
        if (r->pmap_n < PF_MAP_MAX) {
            if (r->pmap_n == r->pmap_cap) {
                size_t nc = r->pmap_cap ? r->pmap_cap * 2 : 64;
                ipf_ent *nm = realloc(r->pmap, nc * sizeof(*nm));
                if (!nm)
                    return 0;
                r->pmap = nm;
                r->pmap_cap = nc;
            }
            r->pmap[r->pmap_n++] = (ipf_ent){.seq = seq, .uid = uid, .size = size};
        }
        return others ? 0 : 1;
    }
    return 0;
}

/* First TEXT of an upstream line with a literal: the internal UID FETCH's responses are the
 * gateway's. */
int is_pf_own_line(is_retrieve *r, const char *p, size_t n)
{
    (void)p;
    (void)n;
    return r->pf == PF_SCAN && r->u_fetch;
}

/* A section / partial literal of the client's FETCH response: replaced by a notice part when the
 * message is withheld (or could not be checked). Returns 1 when it was (the caller discards the
 * content), 0 to relay it. */
int is_pf_part_literal(is_retrieve *r, const pc_imap_ev *ev)
{
    if (r->pf != PF_RELAY)
        return 0;
    ipf_ent *e = map_find(r, r->u_seq);
    if (e && e->state == VS_PASS)
        return 0;
    char info[PC_NOTICE_INFO_MAX];
    const char *fi = e && e->state == VS_WITHHELD ? e->info : NULL;
    size_t flen = e && e->state == VS_WITHHELD ? e->info_len : 0;
    if (!fi) {
        char ref[64];
        pc_notice_ref(ref, sizeof(ref), r->base->sid, "p", ++*r->serial);
        flen = notice_info(r, NULL, "message could not be checked", ref, info, sizeof(info));
        fi = info;
        pc_log_notice(r->base->sid,
                      "event=retrieve user=%s seq=%u action=withheld reason=unchecked", r->user,
                      (unsigned)r->u_seq);
    }
    /* Which part: the header forms, a body part, or the whole message; then the partial. */
    const char *it = r->u_item;
    const char *br = strchr(it, '[');
    const char *cl = br ? strchr(br, ']') : NULL;
    pc_notice_form form = PC_NOTICE_BODY;
    pc_slice sec = {br ? br + 1 : "", br && cl ? (size_t)(cl - br - 1) : 0};
    if (br && cl && sec.n == 0)
        form = PC_NOTICE_FULL;
    else if (strstr(it, "HEADER") || strstr(it, "header") || strstr(it, "MIME") ||
             strstr(it, "mime"))
        form = PC_NOTICE_HEADER;
    pc_buf_reset(&r->notice);
    pc_notice_build(&r->notice, fi, flen, r->base->cfg->hostname, form);
    size_t total = pc_buf_used(&r->notice), off = 0, len = total;
    const char *lt = cl ? strchr(cl, '<') : NULL;
    if (lt) {
        off = (size_t)strtoull(lt + 1, NULL, 10);
        if (off > total)
            off = total;
        len = total - off;
        if (ev->lit_size < len)
            len = (size_t)ev->lit_size;
    }
    char hdr[40];
    int k = snprintf(hdr, sizeof(hdr), "{%zu}\r\n", len);
    r->ops->out_add(r->ud, hdr, (size_t)k);
    r->ops->out_add(r->ud, pc_buf_ptr(&r->notice) + off, len);
    pc_buf_release(&r->notice);
    return 1;
}
