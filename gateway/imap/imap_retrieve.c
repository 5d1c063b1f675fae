/* imap_retrieve.c — FETCH through the retrieve hook: whole messages in FETCH responses spooled,
 * scanned and sent on (or replaced by a notice); FETCH of sections and partials made safe by a
 * pre-scan of the whole messages (internal commands on the upstream, responses consumed here) with
 * a per-worker verdict cache keyed by (listener, user, mailbox, UIDVALIDITY, UID); the parts of a
 * withheld message replaced by a notice part. Defends against: a dangerous message read piecewise
 * (BODY[2], BODY[]<0.2048>) around the whole-message scan, cache poisoning by a UID spoofed in
 * response text (UIDs read only at parenthesis depth 1 outside strings and sections). */
#include "imap/imap_server_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/notice.h"
#include "core/vcache.h"
#include "parse/sanitize.h"

#define PF_MAP_MAX 100000   /* messages one pre-scanned FETCH may cover */
#define PF_UIDLIST_MAX 4000 /* bytes of UID set in one internal UID FETCH */

enum { VS_UNKNOWN = 0, VS_PASS = 1, VS_WITHHELD = 2, VS_ASKED = 3 };

/* ---- verdict cache (vcache.c), keyed by listener, user, mailbox, UIDVALIDITY and UID ---- */

/* The key, or -1 when the mailbox or its UIDVALIDITY is not known (no caching then). */
static int vc_keyof(const isess *s, uint32_t uid, char *out, size_t outlen)
{
    if (!uid || !s->sel_mbox[0] || !s->sel_uidv || !s->user[0])
        return -1;
    int n = snprintf(out, outlen, "%s\n%s\n%s\n%u\n%u", s->base.cfg->name, s->user, s->sel_mbox,
                     (unsigned)s->sel_uidv, (unsigned)uid);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static size_t vc_slots(const isess *s)
{
    return s->base.cfg->mailbox.verdict_cache ? s->base.cfg->mailbox.verdict_cache : 10000;
}

static const pc_vcache_ent *vc_lookup(const isess *s, uint32_t uid)
{
    char key[700];
    if (vc_keyof(s, uid, key, sizeof(key)) < 0)
        return NULL;
    return pc_vcache_lookup(vc_slots(s), key);
}

/* state VS_PASS or VS_WITHHELD (with the notice fields). */
static void vc_store(const isess *s, uint32_t uid, int state, const char *info, size_t info_len)
{
    char key[700];
    if (vc_keyof(s, uid, key, sizeof(key)) < 0)
        return;
    int withheld = state == VS_WITHHELD;
    pc_vcache_store(vc_slots(s), key, state, withheld ? info : NULL, withheld ? info_len : 0);
}

/* ---- the notice (notice.c) ---------------------------------------------------------------- */

static size_t notice_info(const isess *s, const pc_message *m, const char *reason, const char *ref,
                          char *info, size_t infolen)
{
    return pc_notice_info(m, s->base.cfg->hostname, reason, "withheld", ref, info, infolen);
}

static int withheld_action(const pc_verdict *v)
{
    return v && (v->action == PC_REJECT || v->action == PC_TEMPFAIL || v->action == PC_QUARANTINE ||
                 v->action == PC_DISCARD);
}

/* ---- whole messages in FETCH responses ------------------------------------------------------ */

int is_scannable(const isess *s)
{
    return s->base.l->chain && (s->base.l->chain_hooks & PC_HOOK_BIT(PC_HOOK_RETRIEVE));
}

static void scan_finish(isess *s)
{
    if (s->msg)
        pc_message_free(s->msg);
    else
        pc_spool_free(s->spool);
    s->msg = NULL;
    s->spool = NULL;
    s->base.sv.msg = NULL;
    pc_buf_release(&s->notice);
    pc_results_reset(&s->base.results);
    if (!s->scan_pre)
        s->fetched++;
    s->scan = 0;
    s->scan_pre = 0;
    s->wait = IW_NONE;
}

static ipf_ent *map_find(isess *s, uint32_t seq)
{
    size_t lo = 0, hi = s->pmap_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->pmap[mid].seq == seq)
            return &s->pmap[mid];
        if (s->pmap[mid].seq < seq)
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
static void count(isess *s, const char *action)
{
    if (strcmp(action, "withheld") == 0)
        s->withheld++;
    else if (strcmp(action, "tag") == 0)
        s->tagged++;
    else if (strcmp(action, "unscanned") == 0)
        s->unscanned++;
    else
        s->passed++;
}

/* The pre-scan's verdict for the message just scanned (v NULL: not scanned). */
static void pre_verdict(isess *s, const pc_verdict *v)
{
    ipf_ent *e = map_find(s, s->u_seq);
    uint32_t uid = s->u_uid ? s->u_uid : e ? e->uid : 0;
    char ref[64], info[PC_NOTICE_INFO_MAX];
    size_t ilen = 0;
    pc_notice_ref(ref, sizeof(ref), s->base.sid, "p", ++s->pf_serial);
    int state = VS_PASS;
    const char *action = v && v->action == PC_TAG ? "tag" : "pass";
    const char *reason = "";
    if (s->scan == 2) {
        if (s->base.cfg->mailbox.oversize_refuse) {
            state = VS_WITHHELD;
            reason = "message too large to be scanned";
        } else {
            action = "unscanned";
        }
    } else if (s->spool_err || !s->msg) {
        state = VS_WITHHELD;
        reason = "local error";
    } else if (withheld_action(v) || (v && v->action == PC_REPLACE)) {
        state = VS_WITHHELD;
        reason = v->text                   ? v->text
                 : v->action == PC_REPLACE ? "replaced by policy"
                                           : "rejected by policy";
    }
    if (state == VS_WITHHELD) {
        action = "withheld";
        ilen = notice_info(s, s->msg, reason, ref, info, sizeof(info));
    }
    if (e)
        ent_set(e, state, info, ilen);
    if (!(state == VS_PASS && s->scan == 2) && !s->spool_err) /* unscanned: not cached */
        vc_store(s, uid, state, info, ilen);
    char rs[300];
    pc_sanitize(rs, sizeof(rs), reason, strlen(reason), 0);
    count(s, action);
    pc_log_info(s->base.sid,
                "event=retrieve user=%s uid=%u size=%llu source=prescan action=%s%s%s%s%s", s->user,
                (unsigned)uid, (unsigned long long)s->scan_size, action,
                state == VS_WITHHELD ? " reason=\"" : "", state == VS_WITHHELD ? rs : "",
                state == VS_WITHHELD ? "\" ref=" : "", state == VS_WITHHELD ? ref : "");
    scan_finish(s);
}

/* The held segment before the literal goes out, with RFC822.SIZE describing what is served
 * (here and in the rest of the response) when that differs from the upstream's literal. */
static void hold_out(isess *s, uint64_t served)
{
    s->size_fix = served;
    s->size_fix_on = served != s->scan_size;
    if (pc_buf_used(&s->hold))
        is_fetch_seg_out(s, pc_buf_ptr(&s->hold), pc_buf_used(&s->hold), s->hold_depth);
    pc_buf_release(&s->hold);
}

static void emit(isess *s, const pc_verdict *v)
{
    char ref[64], hdr[40], info[PC_NOTICE_INFO_MAX];
    pc_notice_ref(ref, sizeof(ref), s->base.sid, "", s->fetched + 1);
    const char *action = "pass";
    int withhold = s->scan == 2 || s->spool_err || !s->msg;
    const char *reason = s->scan == 2 ? "message too large to be scanned" : "local error";
    if (withheld_action(v)) {
        withhold = 1;
        reason = v->text ? v->text : "rejected by policy";
    }
    if (withhold) {
        size_t ilen = notice_info(s, s->msg, reason, ref, info, sizeof(info));
        pc_notice_build(&s->notice, info, ilen, s->base.cfg->hostname, PC_NOTICE_FULL);
        if (!s->spool_err && s->msg)
            vc_store(s, s->u_uid, VS_WITHHELD, info, ilen);
        action = "withheld";
        hold_out(s, pc_buf_used(&s->notice));
        int n = snprintf(hdr, sizeof(hdr), "{%zu}\r\n", pc_buf_used(&s->notice));
        is_out_add(s, hdr, (size_t)n);
        is_out_add(s, pc_buf_ptr(&s->notice), pc_buf_used(&s->notice));
        char rs[300];
        pc_sanitize(rs, sizeof(rs), reason, strlen(reason), 0);
        count(s, action);
        pc_log_info(s->base.sid,
                    "event=retrieve user=%s uid=%u size=%llu action=%s reason=\"%s\" ref=%s",
                    s->user, (unsigned)s->u_uid, (unsigned long long)s->scan_size, action, rs, ref);
        scan_finish(s);
        return;
    }
    /* REPLACE serves the replacement whole; its parts would not match: withheld for sections. */
    if (v && v->action == PC_REPLACE) {
        size_t ilen = notice_info(s, s->msg, "replaced by policy", ref, info, sizeof(info));
        vc_store(s, s->u_uid, VS_WITHHELD, info, ilen);
    } else {
        vc_store(s, s->u_uid, VS_PASS, NULL, 0);
    }
    size_t sz = pc_message_size(s->msg);
    hold_out(s, sz);
    int n = snprintf(hdr, sizeof(hdr), "{%zu}\r\n", sz);
    is_out_add(s, hdr, (size_t)n);
    /* tagged: a TAG verdict, or headers added (what is served differs from what was read) */
    count(s, (v && v->action == PC_TAG) || sz != s->scan_size ? "tag" : action);
    pc_log_info(
        s->base.sid, "event=retrieve user=%s uid=%u size=%llu sent=%zu action=%s duration_ms=%llu",
        s->user, (unsigned)s->u_uid, (unsigned long long)s->scan_size, sz,
        v && v->action == PC_TAG ? "tag" : action, (unsigned long long)(pc_now_ms() - s->t0));
    s->emit_off = 0;
    s->wait = IW_PUMP;
    is_pump(s);
}

/* Streams the message to the client while its write queue is low; continues on DRAIN. The bytes
 * join the session's output batch (after the response text and "{n}", before the rest of the
 * line), which goes out in writes of IMAP_CHUNK bytes: a small message is one write with its
 * framing, a large one a series of full chunks. */
void is_pump(isess *s)
{
    char chunk[IMAP_CHUNK];
    while (s->wait == IW_PUMP && s->base.c->wpending < IMAP_HIGH_WATER) {
        size_t used = pc_buf_used(&s->base.out);
        if (used >= IMAP_CHUNK) {
            is_flush(s);
            continue;
        }
        ssize_t n = pc_message_read(s->msg, s->emit_off, chunk, IMAP_CHUNK - used);
        if (n < 0) {
            pc_log_err(s->base.sid, "event=spool-read-error");
            is_close(s);
            return;
        }
        if (n == 0) {
            s->base.c->want_drain = 0;
            scan_finish(s); /* the rest of the line joins the batch; the caller flushes */
            s->again = 1;
            return;
        }
        s->emit_off += (size_t)n;
        is_out_add(s, chunk, (size_t)n); /* a full batch is written at once */
    }
    is_flush(s); /* waiting for DRAIN: what is gathered goes out now */
    s->base.c->want_drain = 1;
}

static void chain_cb(void *ud, const pc_verdict *v)
{
    isess *s = ud;
    s->run = NULL;
    if (s->scan_pre)
        pre_verdict(s, v);
    else
        emit(s, v);
    if (s->wait == IW_NONE && s->phase != IP_CLOSING) {
        is_relay_upstream(s);
        is_process(s);
    }
}

void is_scan_done(isess *s)
{
    if (s->scan == 1 && !s->spool_err) {
        s->msg = pc_message_new(s->spool);
        if (s->msg)
            s->spool = NULL;
    }
    if (s->scan == 2 || s->spool_err || !s->msg) {
        if (s->scan_pre)
            pre_verdict(s, NULL);
        else
            emit(s, NULL);
        return;
    }
    s->base.sv.msg = s->msg;
    s->wait = IW_CHAIN;
    pc_results_reset(&s->base.results);
    s->scanned++;
    pc_chain_run *r = pc_chain_start(s->base.l->chain, PC_HOOK_RETRIEVE, &s->base.sv, chain_cb, s);
    if (r)
        s->run = r;
}

void is_scan_begin(isess *s, const pc_imap_ev *ev)
{
    s->scan_pre = s->u_own;
    s->scan_size = ev->lit_size;
    s->t0 = pc_now_ms();
    s->spool_err = 0;
    if (ev->lit_size > s->base.cfg->mailbox.scan_max) {
        if (!s->base.cfg->mailbox.oversize_refuse && !s->scan_pre) {
            s->unscanned++;
            pc_log_notice(s->base.sid,
                          "event=retrieve user=%s uid=%u size=%llu action=unscanned reason=size",
                          s->user, (unsigned)s->u_uid, (unsigned long long)ev->lit_size);
            is_hold_release(s);
            is_out_add(s, s->ann, s->ann_len);
            return;
        }
        s->scan = 2; /* discarded; refused, or (pre-scan) passed unscanned */
        return;
    }
    s->scan = 1;
    s->spool = pc_spool_new(s->base.l->spool_threshold);
    if (!s->spool)
        s->spool_err = PC_SPOOL_EIO;
}

/* ---- the pre-scan of section / partial FETCH ---------------------------------------------- */

static void map_free(isess *s)
{
    for (size_t i = 0; i < s->pmap_n; i++)
        free(s->pmap[i].info);
    free(s->pmap);
    s->pmap = NULL;
    s->pmap_n = s->pmap_cap = 0;
}

void is_retrieve_free(isess *s)
{
    if (s->run) {
        pc_chain_abort(s->run);
        s->run = NULL;
    }
    if (s->msg)
        pc_message_free(s->msg);
    else
        pc_spool_free(s->spool);
    if (s->base.sv.msg == s->msg)
        s->base.sv.msg = NULL;
    s->msg = NULL;
    s->spool = NULL;
    pc_buf_release(&s->notice);
    pc_buf_release(&s->pf_cmd);
    pc_buf_release(&s->hold);
    map_free(s);
    s->pf = PF_NONE;
}

/* Every TEXT segment of an upstream FETCH response: picks up its UID. */
void is_pf_text(isess *s, const char *p, size_t n)
{
    if (!s->u_fetch)
        return;
    pc_imap_fetch_scan(p, n, &s->u_pdepth, &s->u_uid, NULL, NULL, NULL, NULL);
}

void is_fetch_seg_out(isess *s, const char *p, size_t n, int depth)
{
    size_t at = 0, len = 0;
    if (s->size_fix_on && s->u_fetch)
        pc_imap_fetch_scan(p, n, &depth, NULL, NULL, NULL, &at, &len);
    if (!len) {
        is_out_add(s, p, n);
        return;
    }
    char num[24];
    int k = snprintf(num, sizeof(num), "%llu", (unsigned long long)s->size_fix);
    is_out_add(s, p, at);
    is_out_add(s, num, (size_t)k);
    is_out_add(s, p + at + len, n - at - len);
}

void is_hold_release(isess *s)
{
    if (pc_buf_used(&s->hold))
        is_fetch_seg_out(s, pc_buf_ptr(&s->hold), pc_buf_used(&s->hold), s->hold_depth);
    pc_buf_release(&s->hold);
}

static uint32_t parse_u32(pc_slice t)
{
    uint64_t v = 0;
    if (!t.n || t.n > 10)
        return 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.p[i] < '0' || t.p[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(t.p[i] - '0');
    }
    return v <= UINT32_MAX ? (uint32_t)v : 0;
}

/* Parses the mailbox argument of SELECT / EXAMINE (atom or quoted; a literal: unknown). */
void is_sel_command(isess *s, const pc_imap_cmd_head *h)
{
    if (h->sub.n)
        return;
    if (pc_imap_word_is(h->name, "CLOSE") || pc_imap_word_is(h->name, "UNSELECT")) {
        s->sel_mbox[0] = '\0';
        s->sel_uidv = 0;
        return;
    }
    if (!pc_imap_word_is(h->name, "SELECT") && !pc_imap_word_is(h->name, "EXAMINE"))
        return;
    s->sel_mbox[0] = '\0';
    s->sel_uidv = 0;
    const char *p = h->args.p;
    size_t n = h->args.n, o = 0, i = 0;
    char name[sizeof(s->sel_mbox)];
    if (n && p[0] == '"') {
        for (i = 1; i < n && p[i] != '"' && o + 1 < sizeof(name); i++) {
            if (p[i] == '\\' && i + 1 < n)
                i++;
            name[o++] = p[i];
        }
        if (i >= n || p[i] != '"')
            return;
    } else {
        for (i = 0; i < n && p[i] != ' ' && p[i] != '{' && p[i] != '(' && o + 1 < sizeof(name); i++)
            name[o++] = p[i];
        if (i < n && p[i] == '{')
            return;
    }
    name[o] = '\0';
    pc_slice w = {name, o};
    if (pc_imap_word_is(w, "INBOX"))
        snprintf(s->sel_mbox, sizeof(s->sel_mbox), "INBOX");
    else
        snprintf(s->sel_mbox, sizeof(s->sel_mbox), "%s", name);
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

int is_pf_command(isess *s, const pc_imap_ev *ev, const pc_imap_cmd_head *h)
{
    if (!is_scannable(s))
        return 0;
    int uid = pc_imap_word_is(h->name, "UID") && pc_imap_word_is(h->sub, "FETCH");
    if (!uid && !(pc_imap_word_is(h->name, "FETCH") && !h->sub.n))
        return 0;
    if (ev->data.n && ev->data.p[ev->data.n - 1] == '\n') {
        /* a literal inside the FETCH command (BODY[HEADER.FIELDS ({4}...)]): not pre-scanned */
        pc_log_notice(s->base.sid,
                      "event=retrieve user=%s action=unscanned reason=fetch-with-literal", s->user);
        return 0;
    }
    if (!wants_parts(h->args.p, h->args.n))
        return 0;
    pc_buf_reset(&s->pf_cmd);
    if (pc_buf_append(&s->pf_cmd, ev->data.p, ev->data.n) < 0)
        return 0;
    snprintf(s->pf_tag, sizeof(s->pf_tag), "%s", s->tag);
    s->pf_uidcmd = uid;
    s->pf_failed = 0;
    s->pf = PF_HELD;
    return 1;
}

static void pf_relay(isess *s)
{
    is_up_send(s, pc_buf_ptr(&s->pf_cmd), pc_buf_used(&s->pf_cmd));
    pc_buf_release(&s->pf_cmd);
    s->outstanding++;
    s->pf = PF_RELAY;
    s->pf_itag[0] = '\0';
    is_up_flush(s);
}

static void pf_internal(isess *s, const char *fmt, const char *a, const char *b)
{
    char line[PF_UIDLIST_MAX + 200];
    snprintf(s->pf_itag, sizeof(s->pf_itag), "PCX%llu.%u",
             (unsigned long long)(s->base.sid % 100000), ++s->pf_serial);
    int n = snprintf(line, sizeof(line), fmt, s->pf_itag, a, b);
    if (n > 0 && (size_t)n < sizeof(line))
        is_up_send(s, line, (size_t)n);
    is_up_flush(s);
}

static int cmp_seq(const void *a, const void *b)
{
    const ipf_ent *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Second step: verdicts from the cache or the size limit, the rest fetched whole and scanned. */
static void pf_step_scan(isess *s)
{
    char list[PF_UIDLIST_MAX + 32];
    size_t o = 0;
    for (size_t i = 0; i < s->pmap_n; i++) {
        ipf_ent *e = &s->pmap[i];
        if (e->state != VS_UNKNOWN)
            continue;
        const pc_vcache_ent *c = vc_lookup(s, e->uid);
        if (c) {
            ent_set(e, c->state, c->info, c->info_len);
            s->cache_hits++;
            pc_log_info(s->base.sid,
                        "event=retrieve user=%s uid=%u source=cache result=hit action=%s", s->user,
                        (unsigned)e->uid, c->state == VS_PASS ? "pass" : "withheld");
            continue;
        }
        if (e->size > s->base.cfg->mailbox.scan_max && !s->base.cfg->mailbox.oversize_refuse) {
            e->state = VS_PASS;
            s->unscanned++;
            pc_log_notice(s->base.sid,
                          "event=retrieve user=%s uid=%u size=%llu action=unscanned reason=size",
                          s->user, (unsigned)e->uid, (unsigned long long)e->size);
            continue;
        }
        if (o > PF_UIDLIST_MAX)
            continue; /* next batch */
        /* consecutive UIDs as ranges */
        uint32_t first = e->uid, last = e->uid;
        e->state = VS_ASKED;
        while (i + 1 < s->pmap_n && s->pmap[i + 1].state == VS_UNKNOWN &&
               s->pmap[i + 1].uid == last + 1 && !vc_lookup(s, s->pmap[i + 1].uid) &&
               s->pmap[i + 1].size <= s->base.cfg->mailbox.scan_max) {
            i++;
            s->pmap[i].state = VS_ASKED;
            last = s->pmap[i].uid;
        }
        int k = first == last
                    ? snprintf(list + o, sizeof(list) - o, "%s%u", o ? "," : "", (unsigned)first)
                    : snprintf(list + o, sizeof(list) - o, "%s%u:%u", o ? "," : "", (unsigned)first,
                               (unsigned)last);
        if (k > 0)
            o += (size_t)k;
    }
    if (!o) {
        pf_relay(s);
        return;
    }
    list[o] = '\0';
    s->pf = PF_SCAN;
    pf_internal(s, "%s UID FETCH %s%s (UID BODY.PEEK[])\r\n", list, "");
}

void is_pf_try_start(isess *s)
{
    if (s->pf != PF_HELD || s->outstanding || s->wait != IW_NONE || s->ap.st != AP_NONE ||
        !s->c_first)
        return;
    pc_imap_cmd_head h;
    const char *cmd = pc_buf_ptr(&s->pf_cmd);
    size_t n = pc_buf_used(&s->pf_cmd);
    pc_slice set = {"", 0};
    if (pc_imap_cmd_split(cmd, n, &h) == PC_OK) {
        const char *sp = memchr(h.args.p, ' ', h.args.n);
        set = (pc_slice){h.args.p, sp ? (size_t)(sp - h.args.p) : h.args.n};
    }
    map_free(s);
    if (!set_ok(set) || set.n > 1000) {
        pc_log_notice(s->base.sid, "event=retrieve user=%s action=unscanned reason=fetch-set",
                      s->user);
        pf_relay(s);
        return;
    }
    char sb[1001];
    memcpy(sb, set.p, set.n);
    sb[set.n] = '\0';
    s->pf = PF_UIDS;
    pf_internal(s, "%s %sFETCH %s (UID RFC822.SIZE)\r\n", s->pf_uidcmd ? "UID " : "", sb);
}

/* Whole upstream lines (no literal) while relaying. Returns 1 when consumed here. */
int is_pf_line(isess *s, const char *p, size_t n, const pc_imap_resp_head *h)
{
    (void)p;
    (void)n;
    if (h->kind == PC_IMAP_RESP_UNTAGGED && h->status == PC_IMAP_ST_OK && h->code.n &&
        pc_imap_word_is(h->code_name, "UIDVALIDITY")) {
        const char *v = h->code_name.p + h->code_name.n;
        while (v < h->code.p + h->code.n && *v == ' ')
            v++;
        s->sel_uidv = parse_u32((pc_slice){v, (size_t)(h->code.p + h->code.n - v)});
        return 0;
    }
    if (h->kind == PC_IMAP_RESP_TAGGED && s->pf_itag[0] && h->tag.n == strlen(s->pf_itag) &&
        memcmp(h->tag.p, s->pf_itag, h->tag.n) == 0) {
        s->pf_itag[0] = '\0';
        if (s->pf == PF_UIDS) {
            if (h->status != PC_IMAP_ST_OK) {
                s->pf_failed = 1;
                pf_relay(s);
                return 1;
            }
            qsort(s->pmap, s->pmap_n, sizeof(*s->pmap), cmp_seq);
            pf_step_scan(s);
        } else if (s->pf == PF_SCAN) {
            pf_step_scan(s); /* the next batch, or the client's command */
        }
        return 1;
    }
    if (h->kind == PC_IMAP_RESP_TAGGED && s->pf == PF_RELAY && h->tag.n == strlen(s->pf_tag) &&
        memcmp(h->tag.p, s->pf_tag, h->tag.n) == 0) {
        map_free(s);
        s->pf = PF_NONE;
        s->again = 1;
        return 0;
    }
    if (s->pf == PF_UIDS && h->kind == PC_IMAP_RESP_UNTAGGED && pc_imap_word_is(h->name, "FETCH")) {
        uint32_t seq = parse_u32(h->number), uid = 0;
        uint64_t size = 0;
        int depth = 0, others = 0;
        pc_imap_fetch_scan(h->text.p, h->text.n, &depth, &uid, &size, &others, NULL, NULL);
        if (!seq || !uid)
            return 0;
        if (s->pmap_n < PF_MAP_MAX) {
            if (s->pmap_n == s->pmap_cap) {
                size_t nc = s->pmap_cap ? s->pmap_cap * 2 : 64;
                ipf_ent *nm = realloc(s->pmap, nc * sizeof(*nm));
                if (!nm)
                    return 0;
                s->pmap = nm;
                s->pmap_cap = nc;
            }
            s->pmap[s->pmap_n++] = (ipf_ent){.seq = seq, .uid = uid, .size = size};
        }
        return others ? 0 : 1;
    }
    return 0;
}

/* First TEXT of an upstream line with a literal: the internal UID FETCH's responses are the
 * gateway's. */
int is_pf_own_line(isess *s, const char *p, size_t n)
{
    (void)p;
    (void)n;
    return s->pf == PF_SCAN && s->u_fetch;
}

/* A section / partial literal of the client's FETCH response: replaced by a notice part when the
 * message is withheld (or could not be checked). Returns 1 when it was (the caller discards the
 * content), 0 to relay it. */
int is_pf_part_literal(isess *s, const pc_imap_ev *ev)
{
    if (s->pf != PF_RELAY)
        return 0;
    ipf_ent *e = map_find(s, s->u_seq);
    if (e && e->state == VS_PASS)
        return 0;
    char info[PC_NOTICE_INFO_MAX];
    const char *fi = e && e->state == VS_WITHHELD ? e->info : NULL;
    size_t flen = e && e->state == VS_WITHHELD ? e->info_len : 0;
    if (!fi) {
        char ref[64];
        pc_notice_ref(ref, sizeof(ref), s->base.sid, "p", ++s->pf_serial);
        flen = notice_info(s, NULL, "message could not be checked", ref, info, sizeof(info));
        fi = info;
        pc_log_notice(s->base.sid, "event=retrieve user=%s seq=%u action=withheld reason=unchecked",
                      s->user, (unsigned)s->u_seq);
    }
    /* Which part: the header forms, a body part, or the whole message; then the partial. */
    const char *it = s->u_item;
    const char *br = strchr(it, '[');
    const char *cl = br ? strchr(br, ']') : NULL;
    pc_notice_form form = PC_NOTICE_BODY;
    pc_slice sec = {br ? br + 1 : "", br && cl ? (size_t)(cl - br - 1) : 0};
    if (br && cl && sec.n == 0)
        form = PC_NOTICE_FULL;
    else if (strstr(it, "HEADER") || strstr(it, "header") || strstr(it, "MIME") ||
             strstr(it, "mime"))
        form = PC_NOTICE_HEADER;
    pc_buf_reset(&s->notice);
    pc_notice_build(&s->notice, fi, flen, s->base.cfg->hostname, form);
    size_t total = pc_buf_used(&s->notice), off = 0, len = total;
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
    is_out_add(s, hdr, (size_t)k);
    is_out_add(s, pc_buf_ptr(&s->notice) + off, len);
    pc_buf_release(&s->notice);
    return 1;
}
