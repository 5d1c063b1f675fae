/* dmarc.c — DMARC (RFC 7489) with libopendmarc, at MESSAGE, after spf, dkim and arc in the chain:
 * the domain of the message's single From field, its policy record fetched through the gateway's
 * resolver and handed to libopendmarc (opendmarc_policy_store_dmarc: it does no DNS of its own),
 * the SPF result (spf.result, spf.domain) and the passing DKIM domains (dkim.pass) of this
 * transaction, relaxed or strict alignment as the record says, p, sp and pct.
 *
 * Where the record and the organisational domain come from is the `organizational_domain` option:
 *   psl        (RFC 7489) _dmarc.DOMAIN, then _dmarc.ORGANIZATIONAL-DOMAIN, the organisational
 *              domain from the public suffix list of Debian's publicsuffix package;
 *   tree_walk  (DMARCbis, RFC 9989) the DNS tree walk: _dmarc.DOMAIN, then up towards the TLD, at
 *              most 8 queries (a name of more than 8 labels goes on at its last 7); the first
 *              record found is the policy, the organisational domain is where a psd=n record is,
 *              the name one label below a psd=y record, else the shortest name with a record.
 *              Relaxed alignment compares the tree-walk organisational domains (a walk for each
 *              SPF or DKIM domain under the From domain's), and np applies to a From domain that
 *              does not exist (NXDOMAIN for A, AAAA and MX); t=y takes the next lower policy.
 *
 * The result goes into Authentication-Results (dmarc=pass|fail|none|permerror|temperror, the policy
 * and what was done), the symbol DMARC_FAIL (or DMARC_PASS) with its score, and the published
 * policy becomes a verdict — reject: 550 5.7.1, quarantine: the quarantine action — which the admin
 * may soften (`reject` and `quarantine` options: reject, quarantine, tag or none).
 *
 * ARC override: a fail is let through when the arc filter (earlier in the chain) vouches for the
 * message — arc.vouch, "METHOD:DOMAIN:SEALER ...", set only for a validated chain (cv=pass) sealed
 * by a trusted sealer — with dmarc:FROM-DOMAIN, or dkim:D / spf:D for a D aligned with the From
 * domain under the record's adkim / aspf: dmarc=fail stays the result (dmarc.result), the verdict
 * is none, the symbol DMARC_ARC_OVERRIDE (score 0) and dmarc.override names the sealer. */
#include <arpa/inet.h>
#include <opendmarc/dmarc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "portcullis/dns.h"
#include "portcullis/filter.h"

/* In libopendmarc, not in its header: the organisational domain of domain. */
extern int opendmarc_get_tld(u_char *domain, u_char *tld, size_t tld_len);

enum { A_REJECT, A_QUARANTINE, A_TAG, A_NONE };
enum { ORG_PSL, ORG_TREE_WALK };
enum { M_SPF, M_DKIM, M_DMARC };
/* bounds: queries of one tree walk; DKIM domains and ARC vouches looked at */
enum { WALK_MAX = 8, DKIM_MAX = 8, VOUCH_MAX = 16, CANDS_MAX = 1 + DKIM_MAX + VOUCH_MAX };

typedef struct dmarcf {
    int on_reject, on_quarantine, org_mode, arc_override;
    double fail_score, pass_score;
} dmarcf;

/* One DNS tree walk (DMARCbis) from dom towards its TLD. */
typedef struct walk {
    char dom[256];
    const char *at;       /* the name asked now: dom or one of its suffixes */
    const char *shortest; /* the shortest name with a record so far */
    int asked;
    char rec[1024];   /* the first record found: the policy record ("" none) */
    char rec_at[256]; /* where it was */
    char org[256];    /* when the walk is done: the organisational domain of dom */
} walk;

/* An identifier to align with the From domain: the message's own SPF and DKIM passes, then the
 * ARC vouches. */
typedef struct cand {
    char d[256];
    char sealer[256]; /* vouches only */
    int method, strict;
    int needs_walk;
} cand;

typedef struct job {
    const dmarcf *f;
    pc_filter_ctx *ctx;
    pc_done_fn done;
    pc_dns_req *req;
    char from[256], org[256];
    int asked_org;
    int walking_from; /* the tree walk is the From domain's (else an identifier's) */
    walk w;
    int exist_asked; /* np: A, AAAA, MX asked so far */
    int nonexistent; /* the From domain does not exist */
    char rec[1024], rec_at[256];
    int pv, spv, npv, pct, adkim, aspf, testing;
    cand c[CANDS_MAX];
    int nc, ci, vouching, id_temp;
} job;

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_ok;
static OPENDMARC_LIB_T lib;

static void lib_start(void)
{
    memset(&lib, 0, sizeof(lib));
    const char *psl = "/usr/share/publicsuffix/public_suffix_list.dat";
    lib.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
    snprintf((char *)lib.tld_source_file, sizeof(lib.tld_source_file), "%s", psl);
    lib_ok = opendmarc_policy_library_init(&lib) == DMARC_PARSE_OKAY;
}

/* The organisational domain of d: the public suffix list's, or for a suffix the list does not know
 * its default rule "*": the last two labels. */
static void org_of(const char *d, char *out, size_t outlen)
{
    u_char org[256] = "";
    if (opendmarc_get_tld((u_char *)d, org, sizeof(org)) == 0 && org[0]) {
        snprintf(out, outlen, "%s", (char *)org);
        return;
    }
    const char *last = strrchr(d, '.'), *p = last;
    while (p && p > d && p[-1] != '.')
        p--;
    snprintf(out, outlen, "%s", last && p && p > d ? p : d);
}

static int aligned(const char *a, const char *from, int strict)
{
    if (!a || !*a)
        return 0;
    if (strict)
        return strcasecmp(a, from) == 0;
    char oa[256], of[256];
    org_of(a, oa, sizeof(oa));
    org_of(from, of, sizeof(of));
    return strcasecmp(oa, of) == 0;
}

/* --- pure helpers of the tree walk and the record's own tags --- */

static int labels(const char *d)
{
    int n = *d ? 1 : 0;
    for (; *d; d++)
        n += *d == '.' && d[1];
    return n;
}

/* The suffix of d with its last k labels (d itself when it has no more). */
static const char *last_labels(const char *d, int k)
{
    int n = labels(d);
    const char *p = d;
    while (n > k) {
        const char *q = strchr(p, '.');
        if (!q)
            break;
        p = q + 1;
        n--;
    }
    return p;
}

/* d is sub or under it. */
static int under(const char *d, const char *sub)
{
    size_t dl = strlen(d), sl = strlen(sub);
    return sl && dl >= sl && strcasecmp(d + dl - sl, sub) == 0 &&
           (dl == sl || d[dl - sl - 1] == '.');
}

/* The value of tag in the tag-list rec (tag=value pairs separated by ';', whitespace around
 * either; RFC 7489 §6.4): 1 and the value in out (cut at outlen - 1), or 0. */
static int record_tag(const char *rec, const char *tag, char *out, size_t outlen)
{
    size_t tl = strlen(tag);
    const char *p = rec;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t nl = (size_t)(p - name);
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '=') {
            while (*p && *p != ';')
                p++;
            continue;
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *v = p;
        while (*p && *p != ';')
            p++;
        const char *e = p;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (nl == tl && strncasecmp(name, tag, tl) == 0) {
            size_t vl = (size_t)(e - v) < outlen - 1 ? (size_t)(e - v) : outlen - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 1;
        }
    }
    return 0;
}

static void walk_start(walk *w, const char *dom)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->dom, sizeof(w->dom), "%s", dom);
    w->at = w->dom;
}

/* Takes the answer for w->at (record: the one DMARC record there, or NULL). Returns 1 when the
 * walk is done (w->org set), 0 when w->at is the next name to ask. */
static int walk_take(walk *w, const char *record)
{
    w->asked++;
    if (record) {
        if (!w->rec[0]) {
            snprintf(w->rec, sizeof(w->rec), "%s", record);
            snprintf(w->rec_at, sizeof(w->rec_at), "%s", w->at);
        }
        char psd[8];
        if (record_tag(record, "psd", psd, sizeof(psd)) && !strcasecmp(psd, "n")) {
            snprintf(w->org, sizeof(w->org), "%s", w->at);
            return 1;
        }
        if (record_tag(record, "psd", psd, sizeof(psd)) && !strcasecmp(psd, "y")) {
            /* a public suffix domain: the organisational domain is the name one label below it
             * (the domain itself when the record is its own) */
            const char *o = w->at == w->dom ? w->dom : last_labels(w->dom, labels(w->at) + 1);
            snprintf(w->org, sizeof(w->org), "%s", o);
            return 1;
        }
        w->shortest = w->at;
    }
    int n = labels(w->at);
    if (n <= 1 || w->asked >= WALK_MAX) {
        snprintf(w->org, sizeof(w->org), "%s", w->shortest ? w->shortest : w->dom);
        return 1;
    }
    w->at = w->at == w->dom && n > WALK_MAX ? last_labels(w->dom, WALK_MAX - 1)
                                            : strchr(w->at, '.') + 1;
    return 0;
}

static int policy_of(const char *v)
{
    return !strcasecmp(v, "reject")       ? DMARC_RECORD_P_REJECT
           : !strcasecmp(v, "quarantine") ? DMARC_RECORD_P_QUARANTINE
           : !strcasecmp(v, "none")       ? DMARC_RECORD_P_NONE
                                          : 0;
}

/* A DNS name as the A-R text may carry it. */
static int name_ok(const char *s)
{
    if (!*s || strlen(s) > 253)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

static void *dmarc_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "reject",       "quarantine", "fail_score", "pass_score", "organizational_domain",
        "arc_override", NULL};
    static const char *const acts[] = {"reject", "quarantine", "tag", "none", NULL};
    static const char *const orgs[] = {"psl", "tree_walk", NULL};
    if (pc_opt_check_keys(o, keys, err, errlen) < 0)
        return NULL;
    pthread_once(&lib_once, lib_start);
    if (!lib_ok) {
        snprintf(err, errlen,
                 "libopendmarc could not start (public suffix list "
                 "/usr/share/publicsuffix/public_suffix_list.dat)");
        return NULL;
    }
    dmarcf *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->on_reject = A_REJECT;
    f->on_quarantine = A_QUARANTINE;
    f->org_mode = ORG_PSL;
    f->arc_override = 1;
    f->fail_score = 2;
    f->pass_score = -0.5;
    if (pc_opt_enum(o, "reject", acts, &f->on_reject, err, errlen) < 0 ||
        pc_opt_enum(o, "quarantine", acts, &f->on_quarantine, err, errlen) < 0 ||
        pc_opt_enum(o, "organizational_domain", orgs, &f->org_mode, err, errlen) < 0 ||
        pc_opt_bool(o, "arc_override", &f->arc_override, err, errlen) < 0 ||
        pc_opt_number(o, "fail_score", -1000, 1000, &f->fail_score, err, errlen) < 0 ||
        pc_opt_number(o, "pass_score", -1000, 1000, &f->pass_score, err, errlen) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

static void dmarc_fini(void *self)
{
    free(self);
}

static void answer(job *j, const char *ar, pc_verdict v)
{
    pc_ctx_authres(j->ctx, ar);
    pc_filter_log(j->ctx, 6, "%s", ar);
    void **slot = pc_ctx_session_state(j->ctx);
    if (slot && *slot == j)
        *slot = NULL;
    pc_done_fn done = j->done;
    pc_filter_ctx *ctx = j->ctx;
    free(j);
    done(ctx, &v);
}

static void temperror(job *j)
{
    char ar[400];
    snprintf(ar, sizeof(ar), "dmarc=temperror header.from=%s", j->from);
    answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
}

/* The policy that applies: p for the From domain's own record; for a record found above it np
 * (tree walk, a From domain that does not exist), else sp, else p. */
static int published(const job *j)
{
    if (!strcasecmp(j->rec_at, j->from))
        return j->pv;
    if (j->nonexistent && j->npv)
        return j->npv;
    return j->spv ? j->spv : j->pv;
}

static const char *pname_of(int p)
{
    return p == DMARC_RECORD_P_REJECT       ? "reject"
           : p == DMARC_RECORD_P_QUARANTINE ? "quarantine"
                                            : "none";
}

/* The fail, its policy applied; hit: the ARC vouch that overrides it (NULL none). */
static void finish_fail(job *j, const cand *hit)
{
    const dmarcf *f = j->f;
    pc_filter_ctx *ctx = j->ctx;
    int pub = published(j);
    const char *pname = pname_of(pub);
    char ar[900];
    pc_ctx_result_set(ctx, "dmarc.result", "fail");
    if (hit) {
        /* (no ';' inside: one resinfo) */
        snprintf(ar, sizeof(ar), "dmarc=fail (p=%s dis=none, arc override by %s) header.from=%s",
                 pname, hit->sealer, j->from);
        pc_filter_log(ctx, 6, "DMARC fail of %s overridden: ARC sealer %s vouches %s:%s", j->from,
                      hit->sealer,
                      hit->method == M_DMARC  ? "dmarc"
                      : hit->method == M_DKIM ? "dkim"
                                              : "spf",
                      hit->d);
        pc_ctx_symbol(ctx, "DMARC_ARC_OVERRIDE", 0);
        pc_ctx_result_set(ctx, "dmarc.override", hit->sealer);
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    if (pub != DMARC_RECORD_P_REJECT && pub != DMARC_RECORD_P_QUARANTINE) {
        snprintf(ar, sizeof(ar), "dmarc=fail (p=%s dis=none) header.from=%s", pname, j->from);
        pc_ctx_symbol(ctx, "DMARC_FAIL", f->fail_score);
        answer(j, ar, (pc_verdict){.action = PC_TAG});
        return;
    }
    /* fail under a reject or quarantine policy: pct (and DMARCbis' t=y) pick which messages get
     * it; the others get the next lower one (RFC 7489 §6.6.4) */
    int rej = pub == DMARC_RECORD_P_REJECT;
    int action = rej ? f->on_reject : f->on_quarantine;
    int sampled = !j->testing && (j->pct >= 100 || (j->pct > 0 && (random() % 100) < j->pct));
    if (!sampled)
        action = rej ? f->on_quarantine : A_NONE;
    const char *dis = action == A_REJECT       ? "reject"
                      : action == A_QUARANTINE ? "quarantine"
                                               : "none";
    snprintf(ar, sizeof(ar), "dmarc=fail (p=%s dis=%s) header.from=%s", pname, dis, j->from);
    pc_ctx_symbol(ctx, "DMARC_FAIL", f->fail_score);
    char text[300];
    pc_verdict v = {.action = PC_TAG};
    if (action == A_REJECT) {
        snprintf(text, sizeof(text), "Rejected by the DMARC policy of %s", j->from);
        v = (pc_verdict){.action = PC_REJECT,
                         .code = 550,
                         .enhanced = "5.7.1",
                         .text = text,
                         .symbol = "DMARC_REJECT"};
    } else if (action == A_QUARANTINE) {
        v = (pc_verdict){.action = PC_QUARANTINE, .symbol = "DMARC_QUARANTINE"};
    }
    answer(j, ar, v);
}

static void add_cand(job *j, const char *d, size_t dl, const char *sealer, size_t sl, int method)
{
    if (j->nc >= CANDS_MAX || !dl || dl > 253 || sl > 253)
        return;
    cand *c = &j->c[j->nc];
    memset(c, 0, sizeof(*c));
    memcpy(c->d, d, dl);
    memcpy(c->sealer, sealer, sl);
    c->method = method;
    c->strict =
        method == M_DKIM ? j->adkim == DMARC_RECORD_A_STRICT : j->aspf == DMARC_RECORD_A_STRICT;
    if (!name_ok(c->d) || (sl && !name_ok(c->sealer)))
        return;
    j->nc++;
}

/* The entries of arc.vouch, "METHOD:DOMAIN:SEALER" separated by spaces; malformed ones are
 * skipped, at most VOUCH_MAX are taken. */
static void add_vouches(job *j, const char *v)
{
    int n = 0;
    for (const char *p = v; *p && n < VOUCH_MAX;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        const char *c1 = memchr(p, ':', (size_t)(e - p));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(e - c1 - 1)) : NULL;
        if (c2 && !memchr(c2 + 1, ':', (size_t)(e - c2 - 1))) {
            size_t ml = (size_t)(c1 - p);
            int m = ml == 5 && !strncasecmp(p, "dmarc", 5)  ? M_DMARC
                    : ml == 4 && !strncasecmp(p, "dkim", 4) ? M_DKIM
                    : ml == 3 && !strncasecmp(p, "spf", 3)  ? M_SPF
                                                            : -1;
            if (m >= 0 && e > c2 + 1) {
                add_cand(j, c1 + 1, (size_t)(c2 - c1 - 1), c2 + 1, (size_t)(e - c2 - 1), m);
                n++;
            }
        }
        p = e;
    }
}

/* 1: c is aligned with the From domain, 0: it is not, -1: its tree walk must tell. */
static int quick_aligned(const job *j, const cand *c)
{
    if (c->method == M_DMARC || c->strict)
        return strcasecmp(c->d, j->from) == 0;
    if (j->f->org_mode == ORG_PSL)
        return aligned(c->d, j->from, 0);
    if (!strcasecmp(c->d, j->from))
        return 1;
    /* an organisational domain is its name or above it: only one under the From domain's can
     * be the same */
    return under(c->d, j->org) ? -1 : 0;
}

static void next_cand(job *j);

static void phase_done(job *j, const cand *hit)
{
    if (j->vouching) {
        finish_fail(j, hit);
        return;
    }
    if (!hit && j->id_temp) {
        temperror(j); /* an identifier's walk failed: not known whether it aligns */
        return;
    }
    if (hit) {
        char ar[600];
        snprintf(ar, sizeof(ar), "dmarc=pass (p=%s dis=none) header.from=%s",
                 pname_of(published(j)), j->from);
        pc_ctx_symbol(j->ctx, "DMARC_PASS", j->f->pass_score);
        pc_ctx_result_set(j->ctx, "dmarc.result", "pass");
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    const char *v = j->f->arc_override ? pc_ctx_result_get(j->ctx, "arc.vouch") : NULL;
    if (!v || !*v) {
        finish_fail(j, NULL);
        return;
    }
    j->vouching = 1;
    j->nc = j->ci = 0;
    add_vouches(j, v);
    next_cand(j);
}

static void ask_walk(job *j);

/* Goes through the candidates from j->ci: the ones decided without DNS first, then the tree walks
 * one after the other. */
static void next_cand(job *j)
{
    if (j->ci == 0) {
        for (int i = 0; i < j->nc; i++) {
            int q = quick_aligned(j, &j->c[i]);
            if (q == 1) {
                phase_done(j, &j->c[i]);
                return;
            }
            j->c[i].needs_walk = q < 0;
        }
    }
    while (j->ci < j->nc && !j->c[j->ci].needs_walk)
        j->ci++;
    if (j->ci >= j->nc) {
        phase_done(j, NULL);
        return;
    }
    j->walking_from = 0;
    walk_start(&j->w, j->c[j->ci].d);
    ask_walk(j);
}

/* The record is in j->rec (found at j->rec_at): parsed, then the alignment. */
static void evaluate(job *j)
{
    pc_filter_ctx *ctx = j->ctx;
    const char *ip = pc_ctx_client_ip(ctx);
    const struct sockaddr *sa = pc_ctx_client_addr(ctx);
    int type =
        sa && sa->sa_family == AF_INET6 ? DMARC_POLICY_IP_TYPE_IPV6 : DMARC_POLICY_IP_TYPE_IPV4;
    DMARC_POLICY_T *p = opendmarc_policy_connect_init((u_char *)(ip ? ip : "0.0.0.0"), type);
    if (!p) {
        temperror(j);
        return;
    }
    opendmarc_policy_store_from_domain(p, (u_char *)j->from);
    int rc = opendmarc_policy_store_dmarc(p, (u_char *)j->rec, (u_char *)j->rec_at,
                                          (u_char *)(j->org[0] ? j->org : j->rec_at));
    if (rc != DMARC_PARSE_OKAY) {
        char ar[400];
        snprintf(ar, sizeof(ar), "dmarc=permerror header.from=%s", j->from);
        opendmarc_policy_connect_shutdown(p);
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    /* libopendmarc parsed the record; the alignment is checked here, by the rules of RFC 7489
     * §3.1 (strict: the same domain; relaxed: the same organisational domain) */
    j->pct = 100;
    opendmarc_policy_fetch_p(p, &j->pv);
    opendmarc_policy_fetch_sp(p, &j->spv);
    opendmarc_policy_fetch_pct(p, &j->pct);
    opendmarc_policy_fetch_adkim(p, &j->adkim);
    opendmarc_policy_fetch_aspf(p, &j->aspf);
    opendmarc_policy_connect_shutdown(p);
    if (j->f->org_mode == ORG_TREE_WALK) {
        /* DMARCbis' tags, which libopendmarc does not know */
        char v[32];
        if (record_tag(j->rec, "np", v, sizeof(v)))
            j->npv = policy_of(v);
        j->testing = record_tag(j->rec, "t", v, sizeof(v)) && !strcasecmp(v, "y");
    }
    const char *spf = pc_ctx_result_get(ctx, "spf.result"),
               *spfd = pc_ctx_result_get(ctx, "spf.domain");
    const char *dk = pc_ctx_result_get(ctx, "dkim.pass");
    if (spf && !strcmp(spf, "pass") && spfd && *spfd)
        add_cand(j, spfd, strlen(spfd), "", 0, M_SPF);
    for (int n = 0; dk && *dk && n < DKIM_MAX;) {
        while (*dk == ' ')
            dk++;
        const char *e = dk;
        while (*e && *e != ' ')
            e++;
        if (e > dk) {
            add_cand(j, dk, (size_t)(e - dk), "", 0, M_DKIM);
            n++;
        }
        dk = e;
    }
    j->ci = 0;
    next_cand(j);
}

static int is_dmarc(const char *t)
{
    while (*t == ' ')
        t++;
    return strncasecmp(t, "v=DMARC1", 8) == 0 && (t[8] == ';' || t[8] == ' ' || t[8] == '\0');
}

/* The one DMARC record of a, into rec: 1, or 0 for none or several (as none: RFC 7489 §6.6.3). */
static int pick_record(const pc_dns_answer *a, char *rec, size_t reclen)
{
    int n = 0;
    for (size_t i = 0; a->status == PC_DNS_NOERROR && i < a->n; i++) {
        size_t l = a->rr[i].len < reclen - 1 ? a->rr[i].len : reclen - 1;
        char t[1024];
        if (l > sizeof(t) - 1)
            l = sizeof(t) - 1;
        memcpy(t, a->rr[i].data, l);
        t[l] = '\0';
        if (is_dmarc(t)) {
            n++;
            memcpy(rec, t, l + 1);
        }
    }
    return n == 1;
}

static int dns_failed(const pc_dns_answer *a)
{
    return a->status == PC_DNS_TIMEOUT || a->status == PC_DNS_SERVFAIL || a->status == PC_DNS_ERROR;
}

static void on_exist(void *arg, const pc_dns_answer *a);

static void ask_exist(job *j)
{
    static const pc_dns_type types[] = {PC_DNS_A, PC_DNS_AAAA, PC_DNS_MX};
    if (!(j->req =
              pc_dns_query(pc_filter_dns(j->ctx), j->from, types[j->exist_asked], on_exist, j)))
        evaluate(j); /* not known: as existing */
}

/* np: the From domain does not exist when A, AAAA and MX are all NXDOMAIN. */
static void on_exist(void *arg, const pc_dns_answer *a)
{
    job *j = arg;
    j->req = NULL;
    if (a->status == PC_DNS_NXDOMAIN && ++j->exist_asked < 3) {
        ask_exist(j);
        return;
    }
    j->nonexistent = a->status == PC_DNS_NXDOMAIN;
    evaluate(j);
}

/* The From domain's walk is done. */
static void from_walked(job *j)
{
    if (!j->w.rec[0]) {
        char ar[400];
        snprintf(ar, sizeof(ar), "dmarc=none header.from=%s", j->from);
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    snprintf(j->rec, sizeof(j->rec), "%s", j->w.rec);
    snprintf(j->rec_at, sizeof(j->rec_at), "%s", j->w.rec_at);
    snprintf(j->org, sizeof(j->org), "%s", j->w.org);
    char np[32];
    if (strcasecmp(j->rec_at, j->from) != 0 && record_tag(j->rec, "np", np, sizeof(np)) &&
        policy_of(np)) {
        j->exist_asked = 0;
        ask_exist(j);
        return;
    }
    evaluate(j);
}

static void on_walk(void *arg, const pc_dns_answer *a)
{
    job *j = arg;
    j->req = NULL;
    if (dns_failed(a)) {
        if (j->walking_from) {
            temperror(j);
        } else {
            j->id_temp = 1;
            j->ci++;
            next_cand(j);
        }
        return;
    }
    char rec[1024];
    if (!walk_take(&j->w, pick_record(a, rec, sizeof(rec)) ? rec : NULL)) {
        ask_walk(j);
        return;
    }
    if (j->walking_from) {
        from_walked(j);
        return;
    }
    const cand *c = &j->c[j->ci];
    if (!strcasecmp(j->w.org, j->org)) {
        phase_done(j, c);
        return;
    }
    j->ci++;
    next_cand(j);
}

static void ask_walk(job *j)
{
    char name[300];
    snprintf(name, sizeof(name), "_dmarc.%s", j->w.at);
    if ((j->req = pc_dns_query(pc_filter_dns(j->ctx), name, PC_DNS_TXT, on_walk, j)))
        return;
    if (j->walking_from) {
        temperror(j);
        return;
    }
    j->id_temp = 1;
    j->ci++;
    next_cand(j);
}

/* RFC 7489: the From domain's record, then the organisational domain's. */
static void on_record(void *arg, const pc_dns_answer *a)
{
    job *j = arg;
    j->req = NULL;
    if (dns_failed(a)) {
        temperror(j);
        return;
    }
    if (pick_record(a, j->rec, sizeof(j->rec))) {
        snprintf(j->rec_at, sizeof(j->rec_at), "%s", j->asked_org ? j->org : j->from);
        evaluate(j);
        return;
    }
    if (!j->asked_org && j->org[0] && strcasecmp(j->org, j->from) != 0) {
        j->asked_org = 1;
        char name[300];
        snprintf(name, sizeof(name), "_dmarc.%s", j->org);
        if ((j->req = pc_dns_query(pc_filter_dns(j->ctx), name, PC_DNS_TXT, on_record, j)))
            return;
    }
    char ar[400];
    snprintf(ar, sizeof(ar), "dmarc=none header.from=%s", j->from);
    answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
}

static void dmarc_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_verdict cont = {.action = PC_CONTINUE};
    pc_message *m = pc_ctx_message(ctx);
    if (hook != PC_HOOK_MESSAGE || !m || pc_ctx_user(ctx)) {
        done(ctx, &cont); /* mail of our own authenticated users is not checked */
        return;
    }
    job *j = calloc(1, sizeof(*j));
    if (!j) {
        done(ctx, &cont);
        return;
    }
    j->f = self;
    j->ctx = ctx;
    j->done = done;
    int rc = pc_message_from_domain(m, j->from, sizeof(j->from));
    if (rc < 0) {
        char ar[200];
        snprintf(ar, sizeof(ar), "dmarc=%s",
                 rc == -2 ? "permerror (several From fields)" : "none (no From domain)");
        /* several From fields is its own result: refused where DMARC is enforced */
        answer(j, ar,
               (pc_verdict){.action = rc == -2 ? PC_TAG : PC_CONTINUE,
                            .symbol = rc == -2 ? "DMARC_MULTIPLE_FROM" : NULL,
                            .score = rc == -2 ? ((const dmarcf *)self)->fail_score : 0});
        return;
    }
    void **slot = pc_ctx_session_state(ctx);
    if (slot)
        *slot = j;
    if (j->f->org_mode == ORG_TREE_WALK) {
        j->walking_from = 1;
        walk_start(&j->w, j->from);
        ask_walk(j);
        return;
    }
    org_of(j->from, j->org, sizeof(j->org));
    char name[300];
    snprintf(name, sizeof(name), "_dmarc.%s", j->from);
    if (!(j->req = pc_dns_query(pc_filter_dns(ctx), name, PC_DNS_TXT, on_record, j)))
        temperror(j);
}

static void dmarc_cancel(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    void **slot = pc_ctx_session_state(ctx);
    job *j = slot ? *slot : NULL;
    if (j && j->ctx == ctx) {
        if (j->req)
            pc_dns_cancel(j->req);
        *slot = NULL;
        free(j);
    }
}

const pc_filter pcf_dmarc_filter = {
    .abi = PC_FILTER_ABI,
    .name = "dmarc",
    .hooks = PC_HOOK_BIT(PC_HOOK_MESSAGE),
    .init = dmarc_init,
    .fini = dmarc_fini,
    .run = dmarc_run,
    .cancel = dmarc_cancel,
};
