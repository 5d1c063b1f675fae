/* dkim.c — DKIM (RFC 6376) with libopendkim: every signature of an incoming message verified, and
 * outgoing mail signed on the listeners that have `sign`.
 *
 * Verify (MESSAGE): the signatures' key names are read on the loop (d= and s= of each
 * DKIM-Signature field, at most `max_signatures`), their TXT records asked through the gateway's
 * resolver, and libopendkim then runs on the threadpool over the sealed message with a key lookup
 * that answers from those records: libopendkim does no DNS of its own. rsa-sha1 signatures verify
 * as fail (RFC 8301), keys under `min_key_bits` (1024) fail. Each result goes into the message's
 * Authentication-Results (header.d, header.i, header.s, header.a, header.b), and the passing
 * domains are recorded for later filters (result "dkim.pass": the d= values, space-separated).
 *
 * Sign (DELIVER, after the decision and every change to the message): only mail from an
 * authenticated user or a trusted network; d= is the domain of the message's single From field,
 * which must be a configured domain and, for an authenticated user, the user's own domain or one
 * `users` allows. relaxed/relaxed, the configured header list with From oversigned; with an RSA and
 * an Ed25519 key for the domain, both signatures are added. */
#include <opendkim/dkim.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keycache.h"
#include "portcullis/dns.h"
#include "portcullis/filter.h"
#include "tags.h"

#define MAX_SIGS 16
#define MAX_KEYS 32
#define HDR_MAX (1024 * 1024)

typedef struct key {
    const char *domain, *selector; /* borrowed from the configuration */
    unsigned char *pem;            /* the private key file's text */
    dkim_alg_t alg;
} key;

typedef struct dkimf {
    DKIM_LIB *lib;
    int verify;
    unsigned max_sigs, min_bits;
    double fail_score;
    key keys[MAX_KEYS];
    size_t nkeys;
    const pc_opt *users; /* user -> [domains] */
} dkimf;

/* ---- keys ---------------------------------------------------------------------------------- */

static unsigned char *read_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *b = malloc(max + 1);
    size_t n = b ? fread(b, 1, max, f) : 0;
    fclose(f);
    if (!b || n == 0 || n == max) {
        free(b);
        return NULL;
    }
    b[n] = '\0';
    return b;
}

static int read_key(dkimf *d, const pc_opt *it, char *err, size_t errlen)
{
    static const char *const keys[] = {"domain", "selector", "key", NULL};
    if (!it || it->kind != PC_OPT_MAP)
        return pc_opt_error(err, errlen, it, "sign: a list of { domain, selector, key }");
    if (pc_opt_check_keys(it, keys, err, errlen) < 0)
        return -1;
    if (d->nkeys >= MAX_KEYS)
        return pc_opt_error(err, errlen, it, "sign: at most %d keys", MAX_KEYS);
    key *k = &d->keys[d->nkeys];
    const char *path = NULL;
    pc_str_list dom = {0};
    if (pc_opt_domains(it, "domain", 0, &dom, err, errlen) < 0 ||
        pc_opt_path(it, "key", PC_OPT_READABLE, &path, err, errlen) < 0)
        return -1;
    pc_str_list_free(&dom);
    k->domain = pc_opt_str(it, "domain", NULL);
    k->selector = pc_opt_str(it, "selector", NULL);
    if (!k->domain || !k->selector || !*k->selector || !path)
        return pc_opt_error(err, errlen, it, "sign: domain, selector and key are required");
    if (!(k->pem = read_file(path, 64 * 1024)))
        return pc_opt_error(err, errlen, pc_opt_get(it, "key"), "key: cannot read %s", path);
    /* the key's type from the key itself (OpenSSL), not from what its file looks like */
    BIO *bio = BIO_new_mem_buf(k->pem, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    int type = pk ? EVP_PKEY_get_base_id(pk) : 0;
    EVP_PKEY_free(pk);
    BIO_free(bio);
    if (type == EVP_PKEY_RSA)
        k->alg = DKIM_SIGN_RSASHA256;
    else if (type == EVP_PKEY_ED25519)
        k->alg = DKIM_SIGN_ED25519SHA256;
    else {
        free(k->pem);
        k->pem = NULL;
        return pc_opt_error(err, errlen, pc_opt_get(it, "key"),
                            "key: %s is not a PEM private key (RSA or Ed25519)", path);
    }
    d->nkeys++;
    return 0;
}

/* ---- the key lookup: from the records the loop fetched ------------------------------------- */

struct vjob;

typedef struct rec {
    struct vjob *job;
    char name[300];
    char *txt; /* NULL: not found */
    int temp;  /* a temporary failure */
} rec;

typedef struct vjob vjob;
struct vjob {
    dkimf *d;
    pc_message *msg;
    pc_done_fn done;
    pc_filter_ctx *ctx;
    rec recs[MAX_SIGS];
    size_t nrecs, pending;
    pc_dns_req *reqs[MAX_SIGS];
    char results[MAX_SIGS][720];
    size_t nresults;
    char passed[600]; /* d= of passing signatures */
    int failed;
};

static DKIM_CBSTAT key_lookup(DKIM *dk, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    vjob *j = dkim_get_user_context(dk);
    char name[300];
    snprintf(name, sizeof(name), "%s._domainkey.%s", (char *)dkim_sig_getselector(sig),
             (char *)dkim_sig_getdomain(sig));
    for (size_t i = 0; j && i < j->nrecs; i++) {
        if (strcasecmp(j->recs[i].name, name) != 0)
            continue;
        if (!j->recs[i].txt)
            return j->recs[i].temp ? DKIM_CBSTAT_TRYAGAIN : DKIM_CBSTAT_NOTFOUND;
        snprintf((char *)buf, buflen, "%s", j->recs[i].txt);
        return DKIM_CBSTAT_CONTINUE;
    }
    return DKIM_CBSTAT_NOTFOUND;
}

/* ---- options ------------------------------------------------------------------------------- */

static void dkim_fini(void *self)
{
    dkimf *d = self;
    if (!d)
        return;
    for (size_t i = 0; i < d->nkeys; i++)
        free(d->keys[i].pem);
    if (d->lib)
        dkim_close(d->lib);
    pc_dkim_keycache_clear(); /* the keys hold their own references where still in use */
    free(d);
}

static const char *default_headers[] = {"from",
                                        "to",
                                        "cc",
                                        "subject",
                                        "date",
                                        "message-id",
                                        "reply-to",
                                        "in-reply-to",
                                        "references",
                                        "mime-version",
                                        "content-type",
                                        "content-transfer-encoding",
                                        "list-unsubscribe",
                                        NULL};

static void *dkim_init_f(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const known[] = {"verify", "max_signatures", "min_key_bits", "fail_score",
                                        "sign",   "users",          "sign_headers", NULL};
    if (pc_opt_check_keys(o, known, err, errlen) < 0)
        return NULL;
    dkimf *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->verify = 1;
    double ms = 5, mb = 1024;
    d->fail_score = 1;
    if (pc_opt_bool(o, "verify", &d->verify, err, errlen) < 0 ||
        pc_opt_number(o, "max_signatures", 1, MAX_SIGS, &ms, err, errlen) < 0 ||
        pc_opt_number(o, "min_key_bits", 512, 16384, &mb, err, errlen) < 0 ||
        pc_opt_number(o, "fail_score", -1000, 1000, &d->fail_score, err, errlen) < 0)
        goto fail;
    d->max_sigs = (unsigned)ms;
    d->min_bits = (unsigned)mb;
    const pc_opt *sign = pc_opt_get(o, "sign");
    if (sign && sign->kind != PC_OPT_SEQ) {
        pc_opt_error(err, errlen, sign, "sign: a list of { domain, selector, key }");
        goto fail;
    }
    for (const pc_opt *it = sign ? sign->child : NULL; it; it = it->next)
        if (read_key(d, it, err, errlen) < 0)
            goto fail;
    d->users = pc_opt_get(o, "users");
    if (d->users && d->users->kind != PC_OPT_MAP) {
        pc_opt_error(err, errlen, d->users, "users: a map of user: [domains]");
        goto fail;
    }
    if (!(d->lib = dkim_init(NULL, NULL))) {
        snprintf(err, errlen, "libopendkim could not start");
        goto fail;
    }
    unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;
    dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags));
    unsigned int bits = d->min_bits;
    dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &bits, sizeof(bits));
    /* the headers signed: the configured list, or the default one; From oversigned */
    static const char *hdrs[64];
    size_t nh = 0;
    const pc_opt *sh = pc_opt_get(o, "sign_headers");
    for (const pc_opt *h = sh && sh->kind == PC_OPT_SEQ ? sh->child : NULL; h && nh < 62;
         h = h->next)
        if (h->kind == PC_OPT_SCALAR)
            hdrs[nh++] = h->value;
    const char **list = nh ? hdrs : default_headers;
    if (nh)
        hdrs[nh] = NULL;
    int has_from = 0;
    for (size_t i = 0; list[i]; i++)
        has_from |= strcasecmp(list[i], "from") == 0;
    if (!has_from) {
        pc_opt_error(err, errlen, sh, "sign_headers: must include From");
        goto fail;
    }
    dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, list, sizeof(char **));
    static const char *over[] = {"from", NULL};
    dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, over, sizeof(char **));
    dkim_set_key_lookup(d->lib, key_lookup);
    return d;
fail:
    dkim_fini(d);
    return NULL;
}

/* ---- feeding libopendkim ------------------------------------------------------------------- */

/* Feeds the header fields of h[0..n) one by one (each with its folding, without its last CRLF),
 * then the end of the header section. */
static DKIM_STAT feed_headers(DKIM *dk, const char *h, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        for (;;) {
            const char *lf = memchr(h + i, '\n', n - i);
            i = lf ? (size_t)(lf - h) + 1 : n;
            if (i >= n || (h[i] != ' ' && h[i] != '\t'))
                break;
        }
        size_t e = i;
        while (e > s && (h[e - 1] == '\n' || h[e - 1] == '\r'))
            e--;
        if (e > s) {
            DKIM_STAT st = dkim_header(dk, (u_char *)h + s, e - s);
            if (st != DKIM_STAT_OK)
                return st;
        }
    }
    return dkim_eoh(dk);
}

/* Where the header section of p[0..len) ends (after its empty line), or len when it has none. */
static size_t body_start(const char *p, size_t len, size_t *hdr_len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] == '\n' &&
            (p[i + 1] == '\n' || (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n'))) {
            *hdr_len = i + 1;
            return p[i + 1] == '\n' ? i + 2 : i + 3;
        }
    }
    *hdr_len = len;
    return len;
}

/* ---- verify -------------------------------------------------------------------------------- */

static const char *alg_name(dkim_alg_t a)
{
    return a == DKIM_SIGN_RSASHA1         ? "rsa-sha1"
           : a == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256"
                                          : "rsa-sha256";
}

static void verify_work(void *arg)
{
    vjob *j = arg;
    size_t len;
    const char *p = pc_message_map(j->msg, &len);
    if (!p)
        return;
    DKIM_STAT st;
    DKIM *dk = dkim_verify(j->d->lib, (const u_char *)"pc", NULL, &st);
    if (!dk)
        return;
    dkim_set_user_context(dk, j);
    size_t hl, bs = body_start(p, len, &hl);
    st = feed_headers(dk, p, hl);
    if (st == DKIM_STAT_OK || st == DKIM_STAT_NOSIG) {
        for (size_t off = bs; off < len && st == DKIM_STAT_OK; off += 65536)
            st = dkim_body(dk, (u_char *)p + off, len - off < 65536 ? len - off : 65536);
        if (st == DKIM_STAT_OK)
            dkim_eom(dk, NULL);
    }
    DKIM_SIGINFO **sigs = NULL;
    int nsigs = 0;
    if (dkim_getsiglist(dk, &sigs, &nsigs) == DKIM_STAT_OK) {
        for (int i = 0; i < nsigs && j->nresults < MAX_SIGS && i < (int)j->d->max_sigs; i++) {
            DKIM_SIGINFO *sig = sigs[i];
            const char *dom = (const char *)dkim_sig_getdomain(sig);
            const char *sel = (const char *)dkim_sig_getselector(sig);
            dkim_alg_t alg = DKIM_SIGN_RSASHA256;
            dkim_sig_getsignalg(sig, &alg);
            unsigned int bits = 0;
            dkim_sig_getkeysize(sig, &bits);
            u_char ident[256] = "";
            dkim_sig_getidentity(dk, sig, ident, sizeof(ident));
            const char *b = (const char *)dkim_sig_gettagvalue(sig, 0, (u_char *)"b");
            char bpre[9] = "";
            if (b) {
                size_t k = 0;
                for (const char *q = b; *q && k < 8; q++)
                    if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
                        bpre[k++] = *q;
                bpre[k] = '\0';
            }
            const char *res = "fail", *why = NULL;
            int err = dkim_sig_geterror(sig);
            if (alg == DKIM_SIGN_RSASHA1) {
                why = "rsa-sha1 is not acceptable (RFC 8301)";
            } else if (DKIM_SIG_CHECK(sig)) {
                if (alg != DKIM_SIGN_ED25519SHA256 && bits && bits < j->d->min_bits)
                    why = "key too short";
                else
                    res = "pass";
            } else if (err == DKIM_SIGERROR_KEYFAIL) {
                res = "temperror";
                why = dkim_sig_geterrorstr(err);
            } else if (err == DKIM_SIGERROR_NOKEY || err == DKIM_SIGERROR_DNSSYNTAX) {
                res = "permerror";
                why = dkim_sig_geterrorstr(err);
            } else {
                why =
                    err != DKIM_SIGERROR_UNKNOWN ? dkim_sig_geterrorstr(err) : "body hash mismatch";
                if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH)
                    why = "body hash did not verify";
            }
            char reason[120] = "";
            if (why)
                snprintf(reason, sizeof(reason), " reason=\"%.100s\"", why);
            snprintf(j->results[j->nresults++], sizeof(j->results[0]),
                     "dkim=%s%s header.d=%.120s header.i=%.120s header.s=%.60s header.a=%s "
                     "header.b=%s",
                     res, reason, dom ? dom : "", ident[0] ? (char *)ident : "", sel ? sel : "",
                     alg_name(alg), bpre);
            if (strcmp(res, "pass") == 0) {
                size_t n = strlen(j->passed);
                snprintf(j->passed + n, sizeof(j->passed) - n, "%s%s", n ? " " : "",
                         dom ? dom : "");
            } else {
                j->failed = 1;
            }
        }
    }
    dkim_free(dk);
}

static void verify_after(pc_filter_ctx *ctx, void *arg)
{
    vjob *j = arg;
    if (pc_ctx_cancelled(ctx)) {
        for (size_t i = 0; i < j->nrecs; i++)
            free(j->recs[i].txt);
        free(j);
        return;
    }
    for (size_t i = 0; i < j->nresults; i++) {
        pc_ctx_authres(ctx, j->results[i]);
        pc_filter_log(ctx, 6, "%s", j->results[i]);
    }
    if (!j->nresults)
        pc_ctx_authres(ctx, "dkim=none");
    if (j->passed[0])
        pc_ctx_result_set(ctx, "dkim.pass", j->passed);
    if (j->failed && !j->passed[0])
        pc_ctx_symbol(ctx, "DKIM_FAIL", j->d->fail_score);
    for (size_t i = 0; i < j->nrecs; i++)
        free(j->recs[i].txt);
    pc_done_fn done = j->done;
    free(j);
    done(ctx, &(pc_verdict){.action = PC_CONTINUE});
}

static void key_answer(void *arg, const pc_dns_answer *a)
{
    rec *r = arg;
    vjob *j = r->job;
    size_t idx = (size_t)(r - j->recs);
    j->reqs[idx] = NULL;
    if (a->status == PC_DNS_NOERROR && a->n > 0) {
        size_t n = a->rr[0].len;
        r->txt = malloc(n + 1);
        if (r->txt) {
            memcpy(r->txt, a->rr[0].data, n);
            r->txt[n] = '\0';
        }
    } else {
        r->temp = a->status == PC_DNS_TIMEOUT || a->status == PC_DNS_SERVFAIL;
    }
    if (--j->pending == 0) {
        void **slot = pc_ctx_session_state(j->ctx);
        if (slot && *slot == j)
            *slot = NULL; /* nothing left for cancel() to drop */
        if (pc_filter_offload_long(j->ctx, verify_work, verify_after, j) < 0)
            verify_after(j->ctx, j);
    }
}

static void start_verify(dkimf *d, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_message *m = pc_ctx_message(ctx);
    vjob *j = calloc(1, sizeof(*j));
    if (!m || !j) {
        free(j);
        done(ctx, &(pc_verdict){.action = PC_CONTINUE});
        return;
    }
    *j = (vjob){.d = d, .msg = m, .done = done, .ctx = ctx};
    char v[4096];
    for (size_t i = 0; i < d->max_sigs; i++) {
        if (pc_message_header(m, "DKIM-Signature", i, v, sizeof(v)) < 0)
            break;
        char dom[160], sel[100], name[300];
        if (pc_dkim_tag(v, "d", dom, sizeof(dom)) <= 0 ||
            pc_dkim_tag(v, "s", sel, sizeof(sel)) <= 0)
            continue; /* libopendkim reports it as malformed */
        snprintf(name, sizeof(name), "%s._domainkey.%s", sel, dom);
        int dup = 0;
        for (size_t k = 0; k < j->nrecs && !dup; k++)
            dup = strcasecmp(j->recs[k].name, name) == 0;
        if (!dup && j->nrecs < MAX_SIGS) {
            j->recs[j->nrecs].job = j;
            snprintf(j->recs[j->nrecs++].name, sizeof(j->recs[0].name), "%s", name);
        }
    }
    if (j->nrecs == 0) {
        pc_ctx_authres(ctx, "dkim=none"); /* no signature to check */
        free(j);
        done(ctx, &(pc_verdict){.action = PC_CONTINUE});
        return;
    }
    j->pending = j->nrecs;
    for (size_t k = 0; k < j->nrecs; k++) {
        j->reqs[k] =
            pc_dns_query(pc_filter_dns(ctx), j->recs[k].name, PC_DNS_TXT, key_answer, &j->recs[k]);
        if (!j->reqs[k]) {
            j->recs[k].temp = 1;
            j->pending--;
        }
    }
    if (j->pending == 0 && pc_filter_offload_long(ctx, verify_work, verify_after, j) < 0)
        verify_after(ctx, j);
    else if (j->pending) {
        void **slot = pc_ctx_session_state(ctx);
        if (slot)
            *slot = j; /* for cancel() */
    }
}

/* ---- sign ---------------------------------------------------------------------------------- */

typedef struct sjob {
    dkimf *d;
    pc_message *msg;
    pc_done_fn done;
    const char *domain;
    char *headers; /* the header section as it will be sent */
    size_t hlen;
    char sigs[2][2048];
    size_t nsigs;
    char error[200];
} sjob;

static int user_may(const dkimf *d, const char *user, const char *dom)
{
    const char *at = strrchr(user, '@');
    if (at && strcasecmp(at + 1, dom) == 0)
        return 1;
    const pc_opt *l = pc_opt_get(d->users, user);
    if (l && l->kind == PC_OPT_SCALAR)
        return l->value && strcasecmp(l->value, dom) == 0;
    for (const pc_opt *c = l && l->kind == PC_OPT_SEQ ? l->child : NULL; c; c = c->next)
        if (c->kind == PC_OPT_SCALAR && c->value && strcasecmp(c->value, dom) == 0)
            return 1;
    return 0;
}

static void sign_work(void *arg)
{
    sjob *j = arg;
    size_t len;
    const char *p = pc_message_map(j->msg, &len);
    if (!p) {
        snprintf(j->error, sizeof(j->error), "message not readable");
        return;
    }
    size_t hl, bs = body_start(p, len, &hl);
    for (size_t k = 0; k < j->d->nkeys && j->nsigs < 2; k++) {
        const key *ky = &j->d->keys[k];
        if (strcasecmp(ky->domain, j->domain) != 0)
            continue;
        DKIM_STAT st;
        DKIM *dk = dkim_sign(j->d->lib, (const u_char *)"pc", NULL, ky->pem,
                             (const u_char *)ky->selector, (const u_char *)ky->domain,
                             DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, ky->alg, -1, &st);
        if (!dk) {
            snprintf(j->error, sizeof(j->error), "dkim_sign: %d", st);
            continue;
        }
        st = feed_headers(dk, j->headers, j->hlen);
        for (size_t off = bs; off < len && st == DKIM_STAT_OK; off += 65536)
            st = dkim_body(dk, (u_char *)p + off, len - off < 65536 ? len - off : 65536);
        if (st == DKIM_STAT_OK)
            st = dkim_eom(dk, NULL);
        u_char buf[2048];
        if (st == DKIM_STAT_OK &&
            dkim_getsighdr(dk, buf, sizeof(buf), strlen("DKIM-Signature: ")) == DKIM_STAT_OK) {
            /* its folding as CRLF + WSP, as a header value must have */
            size_t o = 0;
            for (const u_char *q = buf; *q && o + 3 < sizeof(j->sigs[0]); q++) {
                if (*q == '\r')
                    continue;
                if (*q == '\n')
                    j->sigs[j->nsigs][o++] = '\r';
                j->sigs[j->nsigs][o++] = (char)*q;
            }
            j->sigs[j->nsigs][o] = '\0';
            j->nsigs++;
        } else {
            snprintf(j->error, sizeof(j->error), "%s",
                     dkim_geterror(dk) ? dkim_geterror(dk) : "failed");
        }
        dkim_free(dk);
    }
}

static void sign_after(pc_filter_ctx *ctx, void *arg)
{
    sjob *j = arg;
    if (!pc_ctx_cancelled(ctx)) {
        pc_message *m = pc_ctx_message(ctx);
        for (size_t i = 0; i < j->nsigs && m; i++)
            if (pc_message_add_header(m, "DKIM-Signature", j->sigs[i]) < 0)
                pc_filter_log(ctx, 3, "dkim-sign result=failed error=\"bad signature header\"");
        if (j->nsigs)
            pc_filter_log(ctx, 6, "dkim-sign result=ok domain=%s signatures=%zu", j->domain,
                          j->nsigs);
        else
            pc_filter_log(ctx, 3, "dkim-sign result=failed domain=%s error=\"%s\"", j->domain,
                          j->error);
        j->done(ctx, &(pc_verdict){.action = PC_CONTINUE});
    }
    free(j->headers);
    free(j);
}

static void start_sign(dkimf *d, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_verdict cont = {.action = PC_CONTINUE};
    pc_message *m = pc_ctx_message(ctx);
    const char *user = pc_ctx_user(ctx);
    if (!m || (!user && !pc_ctx_trusted(ctx))) {
        done(ctx, &cont); /* only mail from our own users is signed */
        return;
    }
    char dom[256];
    if (pc_message_from_domain(m, dom, sizeof(dom)) < 0) {
        pc_filter_log(ctx, 6, "dkim-sign result=skipped reason=\"no single From address\"");
        done(ctx, &cont);
        return;
    }
    const key *found = NULL;
    for (size_t k = 0; k < d->nkeys && !found; k++)
        if (strcasecmp(d->keys[k].domain, dom) == 0)
            found = &d->keys[k];
    if (!found || (user && !user_may(d, user, dom))) {
        pc_filter_log(ctx, 6, "dkim-sign result=skipped domain=%s reason=\"%s\"", dom,
                      found ? "not a domain of this user" : "no key for this domain");
        done(ctx, &cont);
        return;
    }
    sjob *j = calloc(1, sizeof(*j));
    /* the header section as it will be sent (it may hold the gateway's and the filters' fields);
     * the body is the sealed bytes after their empty line */
    if (!j || !(j->headers = pc_message_header_section(m, HDR_MAX, &j->hlen))) {
        if (j)
            pc_filter_log(ctx, 3, "dkim-sign result=failed error=\"header section too long\"");
        free(j);
        done(ctx, &cont);
        return;
    }
    j->d = d;
    j->msg = m;
    j->done = done;
    j->domain = found->domain;
    if (pc_filter_offload_long(ctx, sign_work, sign_after, j) < 0) {
        free(j->headers);
        free(j);
        done(ctx, &cont);
    }
}

/* ---- hooks --------------------------------------------------------------------------------- */

static void dkim_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    dkimf *d = self;
    if (hook == PC_HOOK_MESSAGE && d->verify && !pc_ctx_user(ctx)) {
        start_verify(d, ctx, done);
        return;
    }
    if (hook == PC_HOOK_DELIVER && d->nkeys) {
        start_sign(d, ctx, done);
        return;
    }
    done(ctx, &(pc_verdict){.action = PC_CONTINUE});
}

/* The chain gave up while key records were being fetched: the questions go, the job with them. */
static void dkim_cancel(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    void **slot = pc_ctx_session_state(ctx);
    vjob *j = slot ? *slot : NULL;
    if (!j || j->ctx != ctx || !j->pending)
        return;
    for (size_t k = 0; k < j->nrecs; k++) {
        if (j->reqs[k])
            pc_dns_cancel(j->reqs[k]);
        free(j->recs[k].txt);
    }
    *slot = NULL;
    free(j);
}

const pc_filter pcf_dkim_filter = {
    .abi = PC_FILTER_ABI,
    .name = "dkim",
    .hooks = PC_HOOK_BIT(PC_HOOK_MESSAGE) | PC_HOOK_BIT(PC_HOOK_DELIVER),
    .init = dkim_init_f,
    .fini = dkim_fini,
    .run = dkim_run,
    .cancel = dkim_cancel,
};
