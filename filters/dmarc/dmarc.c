/* dmarc.c — DMARC (RFC 7489) with libopendmarc, at MESSAGE, after spf and dkim in the chain: the
 * domain of the message's single From field, its policy record fetched through the gateway's
 * resolver (_dmarc.DOMAIN, then _dmarc.ORGANIZATIONAL-DOMAIN, the organisational domain from the
 * public suffix list of Debian's publicsuffix package) and handed to libopendmarc
 * (opendmarc_policy_store_dmarc: it does no DNS of its own), the SPF result (spf.result,
 * spf.domain) and the passing DKIM domains (dkim.pass) of this transaction, relaxed or strict
 * alignment as the record says, p, sp and pct.
 *
 * The result goes into Authentication-Results (dmarc=pass|fail|none|permerror|temperror, the policy
 * and what was done), the symbol DMARC_FAIL (or DMARC_PASS) with its score, and the published
 * policy becomes a verdict — reject: 550 5.7.1, quarantine: the quarantine action — which the admin
 * may soften (`reject` and `quarantine` options: reject, quarantine, tag or none). */
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

typedef struct dmarcf {
    int on_reject, on_quarantine;
    double fail_score, pass_score;
} dmarcf;

typedef struct job {
    const dmarcf *f;
    pc_filter_ctx *ctx;
    pc_done_fn done;
    pc_dns_req *req;
    char from[256], org[256];
    int asked_org;
    int several_from;
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

static void *dmarc_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"reject", "quarantine", "fail_score", "pass_score", NULL};
    static const char *const acts[] = {"reject", "quarantine", "tag", "none", NULL};
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
    f->fail_score = 2;
    f->pass_score = -0.5;
    if (pc_opt_enum(o, "reject", acts, &f->on_reject, err, errlen) < 0 ||
        pc_opt_enum(o, "quarantine", acts, &f->on_quarantine, err, errlen) < 0 ||
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

/* Evaluates with the record found at domain (NULL: none was found). */
static void evaluate(job *j, const char *record, const char *domain)
{
    const dmarcf *f = j->f;
    pc_filter_ctx *ctx = j->ctx;
    char ar[500];
    if (!record) {
        snprintf(ar, sizeof(ar), "dmarc=none header.from=%s", j->from);
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    const char *ip = pc_ctx_client_ip(ctx);
    const struct sockaddr *sa = pc_ctx_client_addr(ctx);
    int type =
        sa && sa->sa_family == AF_INET6 ? DMARC_POLICY_IP_TYPE_IPV6 : DMARC_POLICY_IP_TYPE_IPV4;
    DMARC_POLICY_T *p = opendmarc_policy_connect_init((u_char *)(ip ? ip : "0.0.0.0"), type);
    if (!p) {
        snprintf(ar, sizeof(ar), "dmarc=temperror header.from=%s", j->from);
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    opendmarc_policy_store_from_domain(p, (u_char *)j->from);
    const char *spf = pc_ctx_result_get(ctx, "spf.result"),
               *spfd = pc_ctx_result_get(ctx, "spf.domain");
    const char *dk = pc_ctx_result_get(ctx, "dkim.pass");
    int rc = opendmarc_policy_store_dmarc(p, (u_char *)record, (u_char *)domain,
                                          (u_char *)(j->org[0] ? j->org : domain));
    if (rc != DMARC_PARSE_OKAY) {
        snprintf(ar, sizeof(ar), "dmarc=permerror header.from=%s", j->from);
        opendmarc_policy_connect_shutdown(p);
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    /* libopendmarc parsed the record; the alignment is checked here, by the rules of RFC 7489
     * §3.1 (strict: the same domain; relaxed: the same organisational domain) */
    int pv = 0, spv = 0, pct = 100, adkim = 0, aspf = 0;
    opendmarc_policy_fetch_p(p, &pv);
    opendmarc_policy_fetch_sp(p, &spv);
    opendmarc_policy_fetch_pct(p, &pct);
    opendmarc_policy_fetch_adkim(p, &adkim);
    opendmarc_policy_fetch_aspf(p, &aspf);
    opendmarc_policy_connect_shutdown(p);
    int pass = spf && !strcmp(spf, "pass") && aligned(spfd, j->from, aspf == DMARC_RECORD_A_STRICT);
    if (!pass && dk) {
        char buf[600];
        snprintf(buf, sizeof(buf), "%s", dk);
        for (char *save = NULL, *d = strtok_r(buf, " ", &save); d && !pass;
             d = strtok_r(NULL, " ", &save))
            pass = aligned(d, j->from, adkim == DMARC_RECORD_A_STRICT);
    }
    int sub = strcasecmp(domain, j->from) != 0; /* the record is the organisational domain's */
    int published = sub && spv ? spv : pv;
    int pol = pass                                     ? DMARC_POLICY_PASS
              : published == DMARC_RECORD_P_REJECT     ? DMARC_POLICY_REJECT
              : published == DMARC_RECORD_P_QUARANTINE ? DMARC_POLICY_QUARANTINE
                                                       : DMARC_POLICY_NONE;
    const char *pname = published == DMARC_RECORD_P_REJECT       ? "reject"
                        : published == DMARC_RECORD_P_QUARANTINE ? "quarantine"
                                                                 : "none";
    if (pol == DMARC_POLICY_PASS || pol == DMARC_POLICY_NONE) {
        snprintf(ar, sizeof(ar), "dmarc=%s (p=%s dis=none) header.from=%s", pass ? "pass" : "fail",
                 pname, j->from);
        pc_ctx_symbol(ctx, pass ? "DMARC_PASS" : "DMARC_FAIL",
                      pass ? f->pass_score : f->fail_score);
        pc_ctx_result_set(ctx, "dmarc.result", pass ? "pass" : "fail");
        answer(j, ar, (pc_verdict){.action = pass ? PC_CONTINUE : PC_TAG});
        return;
    }
    /* fail under a reject or quarantine policy: pct picks which messages get it; the others get
     * the next lower one (RFC 7489 §6.6.4) */
    int action = pol == DMARC_POLICY_REJECT ? f->on_reject : f->on_quarantine;
    int sampled = pct >= 100 || (pct > 0 && (random() % 100) < pct);
    if (!sampled)
        action = pol == DMARC_POLICY_REJECT ? f->on_quarantine : A_NONE;
    const char *dis = action == A_REJECT       ? "reject"
                      : action == A_QUARANTINE ? "quarantine"
                                               : "none";
    snprintf(ar, sizeof(ar), "dmarc=fail (p=%s dis=%s) header.from=%s", pname, dis, j->from);
    pc_ctx_symbol(ctx, "DMARC_FAIL", f->fail_score);
    pc_ctx_result_set(ctx, "dmarc.result", "fail");
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

static int is_dmarc(const char *t)
{
    while (*t == ' ')
        t++;
    return strncasecmp(t, "v=DMARC1", 8) == 0 && (t[8] == ';' || t[8] == ' ' || t[8] == '\0');
}

static void on_record(void *arg, const pc_dns_answer *a)
{
    job *j = arg;
    j->req = NULL;
    if (a->status == PC_DNS_TIMEOUT || a->status == PC_DNS_SERVFAIL || a->status == PC_DNS_ERROR) {
        char ar[400];
        snprintf(ar, sizeof(ar), "dmarc=temperror header.from=%s", j->from);
        answer(j, ar, (pc_verdict){.action = PC_CONTINUE});
        return;
    }
    const char *found = NULL;
    char rec[1024];
    int n = 0;
    for (size_t i = 0; a->status == PC_DNS_NOERROR && i < a->n; i++) {
        size_t l = a->rr[i].len < sizeof(rec) - 1 ? a->rr[i].len : sizeof(rec) - 1;
        char t[1024];
        memcpy(t, a->rr[i].data, l);
        t[l] = '\0';
        if (is_dmarc(t)) {
            n++;
            memcpy(rec, t, l + 1);
            found = rec;
        }
    }
    if (n > 1)
        found = NULL; /* several records: as none (RFC 7489 §6.6.3) */
    if (found) {
        evaluate(j, found, j->asked_org ? j->org : j->from);
        return;
    }
    if (!j->asked_org && j->org[0] && strcasecmp(j->org, j->from) != 0) {
        j->asked_org = 1;
        char name[300];
        snprintf(name, sizeof(name), "_dmarc.%s", j->org);
        if ((j->req = pc_dns_query(pc_filter_dns(j->ctx), name, PC_DNS_TXT, on_record, j)))
            return;
    }
    evaluate(j, NULL, NULL);
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
    *j = (job){.f = self, .ctx = ctx, .done = done};
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
    org_of(j->from, j->org, sizeof(j->org));
    char name[300];
    snprintf(name, sizeof(name), "_dmarc.%s", j->from);
    void **slot = pc_ctx_session_state(ctx);
    if (slot)
        *slot = j;
    if (!(j->req = pc_dns_query(pc_filter_dns(ctx), name, PC_DNS_TXT, on_record, j))) {
        char ar[400];
        snprintf(ar, sizeof(ar), "dmarc=temperror header.from=%s", j->from);
        answer(j, ar, cont);
    }
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
