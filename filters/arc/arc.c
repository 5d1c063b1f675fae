/* arc.c — ARC (RFC 8617): the chain of an incoming message verified, and the message sealed on
 * its way out on the listeners that have `seal`.
 *
 * Verify (MESSAGE): the ARC sets' key names (d= and s= of every ARC-Seal and
 * ARC-Message-Signature) are read on the loop and their TXT records asked through the gateway's
 * resolver; the chain is then checked on the threadpool over the sealed message: every instance
 * 1..N present exactly once in each of the three fields, N at most `max_sets`, the newest
 * ARC-Message-Signature valid, every ARC-Seal valid over the sets up to its own, cv=none at i=1 and
 * cv=pass above it (a seal that says cv=fail ends the chain as fail). The result goes into
 * Authentication-Results (arc=pass|fail|none, header.oldest-pass, smtp.remote-ip) and into the
 * results arc.result, arc.n and, for a passing chain, arc.vouch: what the sets of trusted sealers
 * (`trusted_sealers`, matched on the ARC-Seal d=) recorded as passing, for dmarc's override.
 *
 * Seal (DELIVER, after the decision and every change to the message, like DKIM signing): a new set
 * i=N+1 with an RSA key (`seal: { domain, selector, key }`): ARC-Authentication-Results is "i=N+1;
 * " and the gateway's own Authentication-Results value; ARC-Message-Signature covers the configured
 * header fields that are present (relaxed/relaxed, From oversigned); ARC-Seal covers every set, or
 * only the new one when the chain failed (cv=fail). A chain of 50 sets, or one whose state is not
 * known, is not sealed.
 *
 * Written by hand, on OpenSSL's EVP: libopendkim has no ARC and no body canonicalisation of its
 * own to borrow; the readers of the fields are in fields.c (fuzzed), DKIM's tag lists in dkim/. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dkim/tags.h"
#include "fields.h"
#include "portcullis/dns.h"
#include "portcullis/filter.h"

#define MAX_NAMES 32          /* distinct key records per message */
#define MAX_FIELDS 4096       /* header fields looked at */
#define FIELD_MAX (64 * 1024) /* the longest header field hashed */
#define HDR_MAX (1024 * 1024)
#define SIG_MAX 1024 /* a signature's bytes (RSA 8192) */

enum { F_AAR, F_AMS, F_AS };
static const char *const arc_names[] = {"ARC-Authentication-Results", "ARC-Message-Signature",
                                        "ARC-Seal"};

typedef struct arcf {
    int verify;
    unsigned max_sets, min_bits;
    double fail_score;
    pc_str_list trusted;
    /* sealing */
    const char *domain, *selector;
    EVP_PKEY *key;
    const char *headers[64]; /* lower case, borrowed from the configuration or static */
    size_t nheaders;
} arcf;

/* ---- hashing and signatures ---------------------------------------------------------------- */

static void hash_emit(void *arg, const char *p, size_t n)
{
    EVP_DigestUpdate(arg, p, n);
}

/* The body hash of the body b[0..n) (base64 into out, 45 bytes), canonicalised relaxed or simple,
 * l= bytes at most when limit is not (size_t)-1. 0 or -1. */
typedef struct limited {
    EVP_MD_CTX *md;
    size_t left;
} limited;

static void limited_emit(void *arg, const char *p, size_t n)
{
    limited *l = arg;
    if (n > l->left)
        n = l->left;
    EVP_DigestUpdate(l->md, p, n);
    l->left -= n;
}

static int body_hash(const char *b, size_t n, int relaxed, size_t limit, char out[64])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        return -1;
    }
    limited l = {.md = md, .left = limit};
    pc_arc_body c;
    pc_arc_body_init(&c, relaxed, limit == (size_t)-1 ? hash_emit : limited_emit,
                     limit == (size_t)-1 ? (void *)md : (void *)&l);
    for (size_t off = 0; off < n; off += 65536)
        pc_arc_body_feed(&c, b + off, n - off < 65536 ? n - off : 65536);
    pc_arc_body_end(&c);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    int ok = EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    if (!ok)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, d, (int)dl);
    return 0;
}

/* Base64 (white space ignored) into out: the length, or -1. */
static long b64_decode(const char *s, unsigned char *out, size_t cap)
{
    size_t n = strlen(s);
    char *t = malloc(n + 1);
    if (!t)
        return -1;
    t[0] = '\0';
    size_t k = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
            continue;
        t[k++] = s[i];
        if (s[i] == '=')
            pad++;
    }
    long r = -1;
    if (k % 4 == 0 && k / 4 * 3 <= cap) {
        int d = EVP_DecodeBlock(out, (unsigned char *)t, (int)k);
        if (d >= 0 && (size_t)d >= pad)
            r = d - (long)pad;
    }
    free(t);
    return r;
}

typedef struct header {
    const char *p; /* the field, name first, folding included, no final line end */
    size_t n;
    int used; /* already picked for the h= list being hashed */
} header;

/* Feeds one field, canonicalised, to the digest; the signature's own field has its b= value
 * removed and no final CRLF. */
static int hash_field(EVP_MD_CTX *md, const char *f, size_t n, int relaxed, int self, char *buf)
{
    const char *src = f;
    if (n > FIELD_MAX)
        return -1;
    if (self) {
        size_t k = pc_arc_strip_b(f, n, buf + FIELD_MAX + 8);
        if (k == (size_t)-1)
            return -1;
        src = buf + FIELD_MAX + 8;
        n = k;
    }
    if (relaxed) {
        size_t k = pc_arc_canon_relaxed(src, n, !self, buf);
        if (k == (size_t)-1)
            return -1;
        return EVP_DigestUpdate(md, buf, k) ? 0 : -1;
    }
    if (!EVP_DigestUpdate(md, src, n))
        return -1;
    return self || EVP_DigestUpdate(md, "\r\n", 2) ? 0 : -1;
}

/* The public key of a DKIM key record ("v=DKIM1; k=rsa; p=..."): NULL with why. */
static EVP_PKEY *record_key(const char *txt, const char *alg, unsigned min_bits, const char **why)
{
    char k[32] = "rsa", p[4096];
    long kl = pc_dkim_tag(txt, "k", k, sizeof(k));
    if (kl == -1)
        snprintf(k, sizeof(k), "rsa");
    if (pc_dkim_tag(txt, "p", p, sizeof(p)) < 0) {
        *why = "no key in the record";
        return NULL;
    }
    if (!p[0]) {
        *why = "key revoked";
        return NULL;
    }
    int ed = strcmp(alg, "ed25519-sha256") == 0;
    if ((strcasecmp(k, "ed25519") == 0) != ed) {
        *why = "key type does not match a=";
        return NULL;
    }
    unsigned char der[4096];
    long n = b64_decode(p, der, sizeof(der));
    if (n <= 0) {
        *why = "key not base64";
        return NULL;
    }
    EVP_PKEY *pk = NULL;
    if (ed) {
        pk = n == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32) : NULL;
    } else {
        const unsigned char *q = der;
        pk = d2i_PUBKEY(NULL, &q, n);
        if (!pk) {
            q = der;
            pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, n);
        }
        if (pk && EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
        if (pk && (unsigned)EVP_PKEY_get_bits(pk) < min_bits) {
            EVP_PKEY_free(pk);
            *why = "key too short";
            return NULL;
        }
    }
    if (!pk)
        *why = "key not readable";
    return pk;
}

/* Checks the signature sig[0..sl) over the header hash in md (finalised here). 1 valid, 0 not. */
static int check_sig(EVP_MD_CTX *md, EVP_PKEY *pk, int ed, const unsigned char *sig, size_t sl)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (!EVP_DigestFinal_ex(md, d, &dl))
        return 0;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(pk, NULL);
    int ok = 0;
    if (ed) { /* RFC 8463: Ed25519 over the SHA-256 of the hash input */
        EVP_MD_CTX *v = EVP_MD_CTX_new();
        ok = v && EVP_DigestVerifyInit(v, NULL, NULL, NULL, pk) == 1 &&
             EVP_DigestVerify(v, sig, sl, d, dl) == 1;
        EVP_MD_CTX_free(v);
    } else {
        ok = pc && EVP_PKEY_verify_init(pc) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
             EVP_PKEY_verify(pc, sig, sl, d, dl) == 1;
    }
    EVP_PKEY_CTX_free(pc);
    return ok;
}

/* ---- the verify job ------------------------------------------------------------------------ */

typedef struct vjob vjob;

typedef struct rec {
    vjob *job;
    char name[400];
    char *txt; /* NULL: not found */
    int temp;
} rec;

typedef struct set {
    const char *f[3]; /* AAR, AMS, AS fields (into the mapped message) */
    size_t n[3];
} set;

struct vjob {
    arcf *a;
    pc_message *msg;
    pc_done_fn done;
    pc_filter_ctx *ctx;
    rec recs[MAX_NAMES];
    pc_dns_req *reqs[MAX_NAMES];
    size_t nrecs, pending;
    int too_many; /* more key names than MAX_NAMES */
    /* results */
    char result[16]; /* pass, fail, none */
    char why[160];
    int n, oldest;     /* the newest instance; the oldest AMS that still validates */
    char sealers[300]; /* the ARC-Seal d= of each set, newest first */
    char bh[2][64];    /* the body hashes, simple and relaxed, once computed (no l=) */
    int have_bh[2];
    char vouch[1024];
};

static const char *find_txt(vjob *j, const char *sel, const char *dom, int *temp)
{
    char name[400];
    snprintf(name, sizeof(name), "%s._domainkey.%s", sel, dom);
    for (size_t i = 0; i < j->nrecs; i++)
        if (strcasecmp(j->recs[i].name, name) == 0) {
            *temp = j->recs[i].temp;
            return j->recs[i].txt;
        }
    *temp = 0;
    return NULL;
}

/* Verifies one ARC-Message-Signature (ams) or ARC-Seal (as) of set k (1-based) against the
 * message's header fields hs[0..nh) (top first) and its body. 1 valid, 0 not (why set). */
static int verify_one(vjob *j, int which, const set *sets, int k, header *hs, size_t nh,
                      const char *body, size_t blen, char *buf, const char **why)
{
    const set *s = &sets[k - 1];
    const char *f = s->f[which];
    size_t fn = s->n[which];
    const char *colon = memchr(f, ':', fn);
    if (!colon || fn > FIELD_MAX) {
        *why = "field too long";
        return 0;
    }
    char *v = malloc(fn + 1);
    if (!v) {
        *why = "out of memory";
        return 0;
    }
    size_t vl = fn - (size_t)(colon + 1 - f);
    memcpy(v, colon + 1, vl);
    v[vl] = '\0';
    char alg[32], dom[256], sel[128], c[64] = "relaxed/relaxed", bh[128], l[24];
    char *b = malloc(2 * SIG_MAX), *h = NULL;
    int ok = 0;
    EVP_MD_CTX *md = NULL;
    EVP_PKEY *pk = NULL;
    if (!b)
        goto out;
    if (pc_dkim_tag(v, "a", alg, sizeof(alg)) <= 0 || pc_dkim_tag(v, "d", dom, sizeof(dom)) <= 0 ||
        pc_dkim_tag(v, "s", sel, sizeof(sel)) <= 0 || pc_dkim_tag(v, "b", b, 2 * SIG_MAX) <= 0) {
        *why = "a=, b=, d= or s= missing";
        goto out;
    }
    if (strcmp(alg, "rsa-sha256") != 0 && strcmp(alg, "ed25519-sha256") != 0) {
        *why = "unknown a=";
        goto out;
    }
    int hrelaxed = 1;
    if (which == F_AMS) {
        if (pc_dkim_tag(v, "bh", bh, sizeof(bh)) <= 0) {
            *why = "bh= missing";
            goto out;
        }
        long cl = pc_dkim_tag(v, "c", c, sizeof(c));
        if (cl == -1)
            snprintf(c, sizeof(c), "relaxed/relaxed");
        char *slash = strchr(c, '/');
        const char *bc = slash ? slash + 1 : "simple";
        if (slash)
            *slash = '\0';
        if ((strcmp(c, "relaxed") != 0 && strcmp(c, "simple") != 0) ||
            (strcmp(bc, "relaxed") != 0 && strcmp(bc, "simple") != 0)) {
            *why = "unknown c=";
            goto out;
        }
        hrelaxed = strcmp(c, "relaxed") == 0;
        size_t limit = (size_t)-1;
        if (pc_dkim_tag(v, "l", l, sizeof(l)) > 0)
            limit = (size_t)strtoull(l, NULL, 10);
        char mine[64];
        int br = strcmp(bc, "relaxed") == 0;
        if (limit == (size_t)-1 && j->have_bh[br]) {
            memcpy(mine, j->bh[br], sizeof(mine));
        } else if (body_hash(body, blen, br, limit, mine) < 0) {
            *why = "hash failed";
            goto out;
        } else if (limit == (size_t)-1) {
            memcpy(j->bh[br], mine, sizeof(mine));
            j->have_bh[br] = 1;
        }
        char theirs[128];
        size_t t = 0;
        for (const char *q = bh; *q && t + 1 < sizeof(theirs); q++)
            if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
                theirs[t++] = *q;
        theirs[t] = '\0';
        if (strcmp(mine, theirs) != 0) {
            *why = "body hash did not verify";
            goto out;
        }
    } else {
        char cvb[16];
        if (pc_dkim_tag(v, "cv", cvb, sizeof(cvb)) <= 0) {
            *why = "cv= missing";
            goto out;
        }
        char hb[2048];
        if (pc_dkim_tag(v, "h", hb, sizeof(hb)) != -1) {
            *why = "h= in an ARC-Seal";
            goto out;
        }
    }
    int temp = 0;
    const char *txt = find_txt(j, sel, dom, &temp);
    if (!txt) {
        *why = temp ? "key record temporarily unavailable" : "no key record";
        goto out;
    }
    int ed = strcmp(alg, "ed25519-sha256") == 0;
    if (!(pk = record_key(txt, alg, j->a->min_bits, why)))
        goto out;
    unsigned char sig[SIG_MAX];
    long sl = b64_decode(b, sig, sizeof(sig));
    if (sl <= 0) {
        *why = "b= not base64";
        goto out;
    }
    if (!(md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        *why = "hash failed";
        goto out;
    }
    if (which == F_AMS) {
        h = malloc(8192);
        if (!h || pc_dkim_tag(v, "h", h, 8192) <= 0) {
            *why = "h= missing";
            goto out;
        }
        for (size_t i = 0; i < nh; i++)
            hs[i].used = 0;
        /* each name of h= takes the lowest field of that name not taken yet (RFC 6376 §5.4.2) */
        for (char *name = h, *e; name; name = e ? e + 1 : NULL) {
            e = strchr(name, ':');
            if (e)
                *e = '\0';
            while (*name == ' ' || *name == '\t')
                name++;
            size_t nl = strlen(name);
            while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
                name[--nl] = '\0';
            if (!nl)
                continue;
            if (strcasecmp(name, "arc-seal") == 0) {
                *why = "h= signs ARC-Seal";
                goto out;
            }
            for (size_t i = nh; i-- > 0;) {
                const char *hc = memchr(hs[i].p, ':', hs[i].n);
                size_t hn = hc ? (size_t)(hc - hs[i].p) : 0;
                while (hn && (hs[i].p[hn - 1] == ' ' || hs[i].p[hn - 1] == '\t'))
                    hn--;
                if (hs[i].used || hn != nl || strncasecmp(hs[i].p, name, nl) != 0)
                    continue;
                hs[i].used = 1;
                if (hs[i].n > FIELD_MAX || hash_field(md, hs[i].p, hs[i].n, hrelaxed, 0, buf) < 0) {
                    *why = "field too long";
                    goto out;
                }
                break;
            }
        }
    } else {
        for (int i = 1; i < k; i++)
            for (int w = F_AAR; w <= F_AS; w++)
                if (hash_field(md, sets[i - 1].f[w], sets[i - 1].n[w], 1, 0, buf) < 0) {
                    *why = "field too long";
                    goto out;
                }
        for (int w = F_AAR; w <= F_AMS; w++)
            if (hash_field(md, s->f[w], s->n[w], 1, 0, buf) < 0) {
                *why = "field too long";
                goto out;
            }
    }
    if (hash_field(md, f, fn, hrelaxed, 1, buf) < 0) {
        *why = "b= missing";
        goto out;
    }
    ok = check_sig(md, pk, ed, sig, (size_t)sl);
    if (!ok)
        *why = which == F_AMS ? "ARC-Message-Signature did not verify" : "ARC-Seal did not verify";
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    free(h);
    free(b);
    free(v);
    return ok;
}

/* The header fields of the header section p[0..len) into *out (top first); the body's offset. */
static size_t split_headers(const char *p, size_t len, header **out, size_t *nout)
{
    header *hs = calloc(MAX_FIELDS, sizeof(*hs));
    size_t nh = 0, off = 0;
    while (hs && off < len && nh < MAX_FIELDS) {
        size_t fl, used = pc_arc_next_field(p + off, len - off, &fl);
        if (!used)
            break;
        hs[nh++] = (header){.p = p + off, .n = fl};
        off += used;
    }
    /* past the empty line */
    if (off < len && p[off] == '\r')
        off++;
    if (off < len && p[off] == '\n')
        off++;
    *out = hs;
    *nout = hs ? nh : 0;
    return off;
}

/* Which ARC field f is (F_AAR..F_AS), or -1. */
static int arc_kind(const char *f, size_t n)
{
    const char *colon = memchr(f, ':', n);
    size_t nl = colon ? (size_t)(colon - f) : 0;
    while (nl && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
        nl--;
    for (int w = F_AAR; w <= F_AS; w++)
        if (nl == strlen(arc_names[w]) && strncasecmp(f, arc_names[w], nl) == 0)
            return w;
    return -1;
}

/* The instance of an ARC field, from its i= tag (the AAR's first tag). -1 when unreadable. */
static int arc_instance(int kind, const char *f, size_t n)
{
    const char *colon = memchr(f, ':', n);
    if (!colon)
        return -1;
    const char *v = colon + 1;
    size_t vl = n - (size_t)(v - f);
    if (kind == F_AAR)
        return pc_arc_aar_instance(v, vl);
    if (vl > FIELD_MAX)
        return -1;
    char *t = malloc(vl + 1);
    if (!t)
        return -1;
    memcpy(t, v, vl);
    t[vl] = '\0';
    char num[8];
    int k = -1;
    if (pc_dkim_tag(t, "i", num, sizeof(num)) > 0 && num[0] >= '1' && num[0] <= '9') {
        char *e;
        long x = strtol(num, &e, 10);
        if (!*e && x >= 1 && x <= PC_ARC_MAX_INSTANCE)
            k = (int)x;
    }
    free(t);
    return k;
}

static int is_trusted(const arcf *a, const char *d)
{
    for (size_t i = 0; i < a->trusted.n; i++)
        if (strcasecmp(a->trusted.v[i], d) == 0)
            return 1;
    return 0;
}

static void verify_work(void *arg)
{
    vjob *j = arg;
    size_t len;
    const char *p = pc_message_map(j->msg, &len);
    snprintf(j->result, sizeof(j->result), "fail");
    if (!p) {
        snprintf(j->why, sizeof(j->why), "message not readable");
        return;
    }
    header *hs;
    size_t nh, bs = split_headers(p, len, &hs, &nh);
    set *sets = calloc(PC_ARC_MAX_INSTANCE, sizeof(*sets));
    char *buf = malloc(2 * FIELD_MAX + 16);
    if (!hs || !sets || !buf) {
        snprintf(j->why, sizeof(j->why), "out of memory");
        goto out;
    }
    int n = 0, bad = 0;
    for (size_t i = 0; i < nh; i++) {
        int w = arc_kind(hs[i].p, hs[i].n);
        if (w < 0)
            continue;
        int k = arc_instance(w, hs[i].p, hs[i].n);
        if (k < 1 || sets[k - 1].f[w]) {
            bad = 1; /* unreadable instance, or two fields of one kind in a set */
            continue;
        }
        sets[k - 1].f[w] = hs[i].p;
        sets[k - 1].n[w] = hs[i].n;
        if (k > n)
            n = k;
    }
    j->n = n;
    if (n == 0 && !bad) {
        snprintf(j->result, sizeof(j->result), "none");
        goto out;
    }
    if (bad || n == 0) {
        snprintf(j->why, sizeof(j->why), "malformed or duplicate ARC field");
        goto out;
    }
    if ((unsigned)n > j->a->max_sets) {
        snprintf(j->why, sizeof(j->why), "%d sets, more than max_sets", n);
        goto out;
    }
    for (int k = 1; k <= n; k++)
        if (!sets[k - 1].f[F_AAR] || !sets[k - 1].f[F_AMS] || !sets[k - 1].f[F_AS]) {
            snprintf(j->why, sizeof(j->why), "set %d incomplete", k);
            goto out;
        }
    if (j->too_many) {
        snprintf(j->why, sizeof(j->why), "too many key records");
        goto out;
    }
    /* cv= of every seal, newest first: a seal that already says fail ends the chain */
    for (int k = n; k >= 1; k--) {
        const set *s = &sets[k - 1];
        char *v = malloc(s->n[F_AS] + 1);
        char cv[16] = "", d[256] = "";
        if (v) {
            memcpy(v, s->f[F_AS], s->n[F_AS]);
            v[s->n[F_AS]] = '\0';
            const char *colon = strchr(v, ':');
            pc_dkim_tag(colon ? colon + 1 : v, "cv", cv, sizeof(cv));
            pc_dkim_tag(colon ? colon + 1 : v, "d", d, sizeof(d));
            free(v);
        }
        size_t sl = strlen(j->sealers);
        snprintf(j->sealers + sl, sizeof(j->sealers) - sl, "%s%.100s", sl ? "," : "", d);
        if (strcasecmp(cv, "fail") == 0) {
            snprintf(j->why, sizeof(j->why), "ARC-Seal i=%d says cv=fail", k);
            goto out;
        }
        if ((k == 1) != (strcasecmp(cv, "none") == 0) || (k > 1 && strcasecmp(cv, "pass") != 0)) {
            snprintf(j->why, sizeof(j->why), "ARC-Seal i=%d has cv=%.10s", k, cv);
            goto out;
        }
    }
    const char *body = p + bs;
    size_t blen = len - bs;
    const char *why = NULL;
    if (!verify_one(j, F_AMS, sets, n, hs, nh, body, blen, buf, &why)) {
        snprintf(j->why, sizeof(j->why), "i=%d: %s", n, why);
        goto out;
    }
    for (int k = n; k >= 1; k--)
        if (!verify_one(j, F_AS, sets, k, hs, nh, body, blen, buf, &why)) {
            snprintf(j->why, sizeof(j->why), "i=%d: %s", k, why);
            goto out;
        }
    j->oldest = n;
    for (int k = n - 1; k >= 1; k--) {
        if (!verify_one(j, F_AMS, sets, k, hs, nh, body, blen, buf, &why))
            break;
        j->oldest = k;
    }
    snprintf(j->result, sizeof(j->result), "pass");
    /* what the trusted sealers vouch for */
    for (int k = n; k >= 1; k--) {
        const set *s = &sets[k - 1];
        char *v = malloc(s->n[F_AS] + 1), d[256] = "";
        if (!v)
            continue;
        memcpy(v, s->f[F_AS], s->n[F_AS]);
        v[s->n[F_AS]] = '\0';
        pc_dkim_tag(strchr(v, ':') + 1, "d", d, sizeof(d));
        free(v);
        if (!is_trusted(j->a, d))
            continue;
        const char *colon = memchr(s->f[F_AAR], ':', s->n[F_AAR]);
        size_t al = s->n[F_AAR] - (size_t)(colon + 1 - s->f[F_AAR]);
        char *aar = malloc(al + 1);
        if (!aar)
            continue;
        size_t o = 0;
        for (size_t i = 0; i < al; i++) /* unfolded */
            if (colon[1 + i] != '\r' && colon[1 + i] != '\n')
                aar[o++] = colon[1 + i];
        aar[o] = '\0';
        for (char *q = d; *q; q++)
            *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
        pc_arc_vouch(aar, d, j->vouch, sizeof(j->vouch));
        free(aar);
    }
out:
    free(buf);
    free(sets);
    free(hs);
}

static void free_job(vjob *j)
{
    for (size_t i = 0; i < j->nrecs; i++)
        free(j->recs[i].txt);
    free(j);
}

static void verify_after(pc_filter_ctx *ctx, void *arg)
{
    vjob *j = arg;
    if (pc_ctx_cancelled(ctx)) {
        free_job(j);
        return;
    }
    char ar[400], n[8];
    const char *ip = pc_ctx_client_ip(ctx);
    if (strcmp(j->result, "pass") == 0)
        snprintf(ar, sizeof(ar), "arc=pass header.oldest-pass=%d smtp.remote-ip=%s", j->oldest,
                 ip ? ip : "");
    else
        snprintf(ar, sizeof(ar), "arc=%s smtp.remote-ip=%s", j->result, ip ? ip : "");
    pc_ctx_authres(ctx, ar);
    snprintf(n, sizeof(n), "%d", j->n);
    pc_ctx_result_set(ctx, "arc.result", j->result);
    pc_ctx_result_set(ctx, "arc.n", n);
    if (strcmp(j->result, "pass") == 0 && j->vouch[0])
        pc_ctx_result_set(ctx, "arc.vouch", j->vouch);
    if (strcmp(j->result, "fail") == 0) {
        pc_ctx_symbol(ctx, "ARC_FAIL", j->a->fail_score);
        pc_filter_log(ctx, 6, "arc=fail sets=%d sealers=%s reason=\"%s\"", j->n,
                      j->sealers[0] ? j->sealers : "-", j->why);
    } else if (strcmp(j->result, "pass") == 0) {
        pc_filter_log(ctx, 6, "arc=pass sets=%d sealers=%s oldest-pass=%d vouch=\"%s\"", j->n,
                      j->sealers, j->oldest, j->vouch);
    }
    pc_done_fn done = j->done;
    free_job(j);
    done(ctx, &(pc_verdict){.action = PC_CONTINUE});
}

static void key_answer(void *arg, const pc_dns_answer *a)
{
    rec *r = arg;
    vjob *j = r->job;
    j->reqs[r - j->recs] = NULL;
    if (a->status == PC_DNS_NOERROR && a->n > 0) {
        size_t n = a->rr[0].len;
        if ((r->txt = malloc(n + 1))) {
            memcpy(r->txt, a->rr[0].data, n);
            r->txt[n] = '\0';
        }
    } else {
        r->temp = a->status == PC_DNS_TIMEOUT || a->status == PC_DNS_SERVFAIL;
    }
    if (--j->pending == 0) {
        void **slot = pc_ctx_session_state(j->ctx);
        if (slot && *slot == j)
            *slot = NULL;
        if (pc_filter_offload_long(j->ctx, verify_work, verify_after, j) < 0) {
            snprintf(j->result, sizeof(j->result), "fail");
            snprintf(j->why, sizeof(j->why), "no worker");
            verify_after(j->ctx, j);
        }
    }
}

static void add_name(vjob *j, const char *v)
{
    char dom[256], sel[128], name[400];
    if (pc_dkim_tag(v, "d", dom, sizeof(dom)) <= 0 || pc_dkim_tag(v, "s", sel, sizeof(sel)) <= 0)
        return; /* the check on the threadpool says why */
    snprintf(name, sizeof(name), "%s._domainkey.%s", sel, dom);
    for (size_t k = 0; k < j->nrecs; k++)
        if (strcasecmp(j->recs[k].name, name) == 0)
            return;
    if (j->nrecs >= MAX_NAMES) {
        j->too_many = 1;
        return;
    }
    j->recs[j->nrecs].job = j;
    snprintf(j->recs[j->nrecs++].name, sizeof(j->recs[0].name), "%s", name);
}

static void start_verify(arcf *a, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_message *m = pc_ctx_message(ctx);
    vjob *j = m ? calloc(1, sizeof(*j)) : NULL;
    if (!j) {
        done(ctx, &(pc_verdict){.action = PC_CONTINUE});
        return;
    }
    *j = (vjob){.a = a, .msg = m, .done = done, .ctx = ctx};
    char *v = malloc(8192);
    int any = 0;
    for (size_t i = 0; v && i < 2 * PC_ARC_MAX_INSTANCE + 2; i++) {
        int more = 0;
        for (int w = F_AAR; w <= F_AS; w++)
            if (pc_message_header(m, arc_names[w], i, v, 8192) >= 0) {
                more = any = 1;
                if (w != F_AAR)
                    add_name(j, v);
            }
        if (!more)
            break;
    }
    free(v);
    if (!any) {
        pc_ctx_authres(ctx, "arc=none");
        pc_ctx_result_set(ctx, "arc.result", "none");
        pc_ctx_result_set(ctx, "arc.n", "0");
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
    if (j->pending) {
        void **slot = pc_ctx_session_state(ctx);
        if (slot)
            *slot = j; /* for cancel() */
    } else if (pc_filter_offload_long(ctx, verify_work, verify_after, j) < 0) {
        snprintf(j->result, sizeof(j->result), "fail");
        snprintf(j->why, sizeof(j->why), "no worker");
        verify_after(ctx, j);
    }
}

/* ---- seal ---------------------------------------------------------------------------------- */

typedef struct sjob {
    arcf *a;
    pc_message *msg;
    pc_done_fn done;
    char *headers; /* the header section as it will be sent */
    size_t hlen;
    int instance;
    char cv[8];
    char authserv[256];
    char out[3][12288]; /* the values of the new AAR, AMS and AS */
    char error[200];
} sjob;

/* Appends fmt to b (a header value being built), folding before it past 76 columns. */
static void put(char *b, size_t cap, size_t *col, const char *text)
{
    size_t len = strlen(b), t = strlen(text);
    if (len + t + 4 >= cap)
        return;
    if (len && *col + t > 76) {
        memcpy(b + len, "\r\n\t", 3);
        len += 3;
        *col = 8;
    } else if (len) {
        b[len++] = ' ';
        (*col)++;
    }
    memcpy(b + len, text, t + 1);
    *col += t;
}

/* Signs the hash in md with the sealing key: base64 into out (folded at 72 columns). 0 or -1. */
static int sign_hash(const arcf *a, EVP_MD_CTX *md, char *out, size_t cap)
{
    unsigned char d[EVP_MAX_MD_SIZE], sig[SIG_MAX];
    unsigned dl = 0;
    size_t sl = sizeof(sig);
    if (!EVP_DigestFinal_ex(md, d, &dl))
        return -1;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(a->key, NULL);
    int ok = pc && EVP_PKEY_sign_init(pc) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
             EVP_PKEY_sign(pc, sig, &sl, d, dl) == 1;
    EVP_PKEY_CTX_free(pc);
    if (!ok)
        return -1;
    char b64[2 * SIG_MAX];
    int n = EVP_EncodeBlock((unsigned char *)b64, sig, (int)sl);
    size_t o = strlen(out);
    for (int i = 0; i < n; i += 72) {
        int k = n - i < 72 ? n - i : 72;
        if (o + (size_t)k + 4 >= cap)
            return -1;
        memcpy(out + o, "\r\n\t", 3);
        o += 3;
        memcpy(out + o, b64 + i, (size_t)k);
        o += (size_t)k;
    }
    out[o] = '\0';
    return 0;
}

/* Hashes "Name: value" as the new field will be written (relaxed), with or without CRLF; self: the
 * signature's own field, b= value removed. */
static int hash_new(EVP_MD_CTX *md, const char *name, const char *value, int self, char *buf)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (nl + 2 + vl > FIELD_MAX)
        return -1;
    char *f = buf + 2 * FIELD_MAX + 16;
    memcpy(f, name, nl);
    memcpy(f + nl, ": ", 2);
    memcpy(f + nl + 2, value, vl);
    return hash_field(md, f, nl + 2 + vl, 1, self, buf);
}

static void seal_work(void *arg)
{
    sjob *j = arg;
    const arcf *a = j->a;
    size_t len;
    const char *p = pc_message_map(j->msg, &len);
    header *hs = NULL;
    set *sets = NULL;
    EVP_MD_CTX *md = NULL;
    char *buf = malloc(3 * FIELD_MAX + 16);
    if (!p || !buf) {
        snprintf(j->error, sizeof(j->error), "message not readable");
        goto out;
    }
    size_t nh, sn;
    split_headers(j->headers, j->hlen, &hs, &nh);
    header *sealed_hs; /* only for where the sealed bytes' body starts */
    size_t bs = split_headers(p, len, &sealed_hs, &sn);
    free(sealed_hs);
    if (!hs || !(sets = calloc(PC_ARC_MAX_INSTANCE, sizeof(*sets)))) {
        snprintf(j->error, sizeof(j->error), "out of memory");
        goto out;
    }
    /* the earlier sets (from the header section as it will be sent) */
    for (size_t i = 0; i < nh; i++) {
        int w = arc_kind(hs[i].p, hs[i].n);
        int k = w < 0 ? -1 : arc_instance(w, hs[i].p, hs[i].n);
        if (k >= 1 && k < j->instance && !sets[k - 1].f[w]) {
            sets[k - 1].f[w] = hs[i].p;
            sets[k - 1].n[w] = hs[i].n;
        }
    }
    /* ARC-Authentication-Results: our own Authentication-Results, with the instance in front */
    const char *ours = NULL;
    size_t oursl = 0;
    for (size_t i = 0; i < nh && !ours; i++) {
        const char *colon = memchr(hs[i].p, ':', hs[i].n);
        if (!colon || (size_t)(colon - hs[i].p) != strlen("Authentication-Results") ||
            strncasecmp(hs[i].p, "Authentication-Results", (size_t)(colon - hs[i].p)) != 0)
            continue;
        const char *v = colon + 1, *e = hs[i].p + hs[i].n;
        while (v < e && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'))
            v++;
        size_t il = strlen(j->authserv);
        if ((size_t)(e - v) > il && strncasecmp(v, j->authserv, il) == 0 &&
            (v[il] == ';' || v[il] == ' ' || v[il] == '\t' || v[il] == '\r')) {
            ours = v;
            oursl = (size_t)(e - v);
        }
    }
    if (ours && oursl + 16 < sizeof(j->out[0]))
        snprintf(j->out[F_AAR], sizeof(j->out[0]), "i=%d; %.*s", j->instance, (int)oursl, ours);
    else
        snprintf(j->out[F_AAR], sizeof(j->out[0]), "i=%d; %s; none", j->instance, j->authserv);

    /* ARC-Message-Signature */
    char bh[64];
    if (body_hash(p + bs, len - bs, 1, (size_t)-1, bh) < 0) {
        snprintf(j->error, sizeof(j->error), "body hash failed");
        goto out;
    }
    long t = (long)time(NULL);
    char tag[512], *ams = j->out[F_AMS];
    size_t col = strlen("ARC-Message-Signature: ");
    ams[0] = '\0';
    snprintf(tag, sizeof(tag), "i=%d; a=rsa-sha256; c=relaxed/relaxed;", j->instance);
    put(ams, sizeof(j->out[0]), &col, tag);
    snprintf(tag, sizeof(tag), "d=%s; s=%s; t=%ld;", a->domain, a->selector, t);
    put(ams, sizeof(j->out[0]), &col, tag);
    /* h=: each configured field once per occurrence, From once more (oversigned) */
    char h[4096] = "h=";
    size_t hn = 2;
    for (size_t c = 0; c < a->nheaders; c++) {
        size_t count = 0, cl = strlen(a->headers[c]);
        for (size_t i = 0; i < nh; i++) {
            const char *colon = memchr(hs[i].p, ':', hs[i].n);
            size_t nl = colon ? (size_t)(colon - hs[i].p) : 0;
            while (nl && (hs[i].p[nl - 1] == ' ' || hs[i].p[nl - 1] == '\t'))
                nl--;
            count += nl == cl && strncasecmp(hs[i].p, a->headers[c], cl) == 0;
        }
        if (strcmp(a->headers[c], "from") == 0)
            count++;
        for (size_t k = 0; k < count && hn + cl + 2 < sizeof(h); k++) {
            if (hn > 2)
                h[hn++] = ':';
            memcpy(h + hn, a->headers[c], cl);
            hn += cl;
        }
    }
    h[hn] = '\0';
    /* folded at the colons when long */
    for (char *s = h; *s;) {
        char piece[256];
        size_t k = 0;
        while (s[k] && k < 60)
            k++;
        while (s[k] && s[k] != ':' && k < 200)
            k++;
        if (s[k] == ':')
            k++;
        snprintf(piece, sizeof(piece), "%.*s%s", (int)k, s, s[k] ? "" : ";");
        put(ams, sizeof(j->out[0]), &col, piece);
        s += k;
    }
    snprintf(tag, sizeof(tag), "bh=%s;", bh);
    put(ams, sizeof(j->out[0]), &col, tag);
    put(ams, sizeof(j->out[0]), &col, "b=");
    if (!(md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        snprintf(j->error, sizeof(j->error), "hash failed");
        goto out;
    }
    for (size_t i = 0; i < nh; i++)
        hs[i].used = 0;
    for (char *name = h + 2, *e; name && *name; name = e ? e + 1 : NULL) {
        e = strchr(name, ':');
        size_t nl = e ? (size_t)(e - name) : strlen(name);
        for (size_t i = nh; i-- > 0;) {
            const char *colon = memchr(hs[i].p, ':', hs[i].n);
            size_t fl = colon ? (size_t)(colon - hs[i].p) : 0;
            while (fl && (hs[i].p[fl - 1] == ' ' || hs[i].p[fl - 1] == '\t'))
                fl--;
            if (hs[i].used || fl != nl || strncasecmp(hs[i].p, name, nl) != 0)
                continue;
            hs[i].used = 1;
            if (hs[i].n > FIELD_MAX || hash_field(md, hs[i].p, hs[i].n, 1, 0, buf) < 0) {
                snprintf(j->error, sizeof(j->error), "a header field is too long");
                goto out;
            }
            break;
        }
    }
    if (hash_new(md, arc_names[F_AMS], ams, 1, buf) < 0 ||
        sign_hash(a, md, ams, sizeof(j->out[0])) < 0) {
        snprintf(j->error, sizeof(j->error), "signing failed");
        goto out;
    }

    /* ARC-Seal */
    char *as = j->out[F_AS];
    col = strlen("ARC-Seal: ");
    as[0] = '\0';
    snprintf(tag, sizeof(tag), "i=%d; cv=%s; a=rsa-sha256;", j->instance, j->cv);
    put(as, sizeof(j->out[0]), &col, tag);
    snprintf(tag, sizeof(tag), "d=%s; s=%s; t=%ld;", a->domain, a->selector, t);
    put(as, sizeof(j->out[0]), &col, tag);
    put(as, sizeof(j->out[0]), &col, "b=");
    EVP_MD_CTX_free(md);
    if (!(md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        snprintf(j->error, sizeof(j->error), "hash failed");
        goto out;
    }
    if (strcmp(j->cv, "fail") != 0)
        for (int k = 1; k < j->instance; k++)
            for (int w = F_AAR; w <= F_AS; w++) {
                if (!sets[k - 1].f[w] ||
                    hash_field(md, sets[k - 1].f[w], sets[k - 1].n[w], 1, 0, buf) < 0) {
                    snprintf(j->error, sizeof(j->error), "earlier set %d unreadable", k);
                    goto out;
                }
            }
    if (hash_new(md, arc_names[F_AAR], j->out[F_AAR], 0, buf) < 0 ||
        hash_new(md, arc_names[F_AMS], ams, 0, buf) < 0 ||
        hash_new(md, arc_names[F_AS], as, 1, buf) < 0 ||
        sign_hash(a, md, as, sizeof(j->out[0])) < 0) {
        snprintf(j->error, sizeof(j->error), "signing failed");
        goto out;
    }
out:
    EVP_MD_CTX_free(md);
    free(sets);
    free(hs);
    free(buf);
}

static void seal_after(pc_filter_ctx *ctx, void *arg)
{
    sjob *j = arg;
    if (!pc_ctx_cancelled(ctx)) {
        pc_message *m = pc_ctx_message(ctx);
        if (!j->error[0] && m) {
            /* each goes on top: the set reads AS, AMS, AAR from the top */
            if (pc_message_add_header(m, arc_names[F_AAR], j->out[F_AAR]) < 0 ||
                pc_message_add_header(m, arc_names[F_AMS], j->out[F_AMS]) < 0 ||
                pc_message_add_header(m, arc_names[F_AS], j->out[F_AS]) < 0)
                snprintf(j->error, sizeof(j->error), "header not added");
        }
        if (j->error[0])
            pc_filter_log(ctx, 3, "arc-seal result=failed instance=%d error=\"%s\"", j->instance,
                          j->error);
        else
            pc_filter_log(ctx, 6, "arc-seal result=ok domain=%s instance=%d cv=%s", j->a->domain,
                          j->instance, j->cv);
        j->done(ctx, &(pc_verdict){.action = PC_CONTINUE});
    }
    free(j->headers);
    free(j);
}

static void start_seal(arcf *a, pc_filter_ctx *ctx, pc_done_fn done)
{
    pc_verdict cont = {.action = PC_CONTINUE};
    pc_message *m = pc_ctx_message(ctx);
    const char *res = pc_ctx_result_get(ctx, "arc.result");
    const char *ns = pc_ctx_result_get(ctx, "arc.n");
    const char *id = pc_ctx_authserv_id(ctx);
    int n = ns ? atoi(ns) : -1;
    if (!m || !id) {
        done(ctx, &cont);
        return;
    }
    if (!res || n < 0) {
        char v[16];
        int present = pc_message_header(m, arc_names[F_AS], 0, v, sizeof(v)) >= 0 ||
                      pc_message_header(m, arc_names[F_AMS], 0, v, sizeof(v)) >= 0 ||
                      pc_message_header(m, arc_names[F_AAR], 0, v, sizeof(v)) >= 0;
        if (present) {
            pc_filter_log(ctx, 6, "arc-seal result=skipped reason=\"chain not verified\"");
            done(ctx, &cont);
            return;
        }
        res = "none";
        n = 0;
    }
    if (n >= PC_ARC_MAX_INSTANCE) {
        pc_filter_log(ctx, 6, "arc-seal result=skipped reason=\"%d sets already\"", n);
        done(ctx, &cont);
        return;
    }
    sjob *j = calloc(1, sizeof(*j));
    /* the header section as it will be sent (it holds the gateway's and the filters' fields); the
     * body is the sealed bytes after their empty line */
    if (!j || !(j->headers = pc_message_header_section(m, HDR_MAX, &j->hlen))) {
        if (j)
            pc_filter_log(ctx, 3, "arc-seal result=failed error=\"header section too long\"");
        free(j);
        done(ctx, &cont);
        return;
    }
    j->a = a;
    j->msg = m;
    j->done = done;
    j->instance = n + 1;
    snprintf(j->cv, sizeof(j->cv), "%s",
             n == 0                     ? "none"
             : strcmp(res, "pass") == 0 ? "pass"
                                        : "fail");
    snprintf(j->authserv, sizeof(j->authserv), "%s", id);
    if (pc_filter_offload_long(ctx, seal_work, seal_after, j) < 0) {
        free(j->headers);
        free(j);
        done(ctx, &cont);
    }
}

/* ---- options ------------------------------------------------------------------------------- */

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
                                        "dkim-signature",
                                        "list-id",
                                        "list-unsubscribe",
                                        NULL};

static void arc_fini(void *self)
{
    arcf *a = self;
    if (!a)
        return;
    EVP_PKEY_free(a->key);
    pc_str_list_free(&a->trusted);
    free(a);
}

static int read_seal(arcf *a, const pc_opt *s, char *err, size_t errlen)
{
    static const char *const keys[] = {"domain", "selector", "key", NULL};
    if (s->kind != PC_OPT_MAP)
        return pc_opt_error(err, errlen, s, "seal: a map { domain, selector, key }");
    if (pc_opt_check_keys(s, keys, err, errlen) < 0)
        return -1;
    pc_str_list dom = {0};
    const char *path = NULL;
    if (pc_opt_domains(s, "domain", 0, &dom, err, errlen) < 0 ||
        pc_opt_path(s, "key", PC_OPT_READABLE, &path, err, errlen) < 0)
        return -1;
    pc_str_list_free(&dom);
    a->domain = pc_opt_str(s, "domain", NULL);
    a->selector = pc_opt_str(s, "selector", NULL);
    if (!a->domain || !a->selector || !*a->selector || !path)
        return pc_opt_error(err, errlen, s, "seal: domain, selector and key are required");
    FILE *f = fopen(path, "rb");
    a->key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!a->key || EVP_PKEY_get_base_id(a->key) != EVP_PKEY_RSA)
        return pc_opt_error(err, errlen, pc_opt_get(s, "key"),
                            "key: %s is not a PEM RSA private key (ARC seals with rsa-sha256)",
                            path);
    if (EVP_PKEY_get_bits(a->key) < 1024)
        return pc_opt_error(err, errlen, pc_opt_get(s, "key"), "key: %s is shorter than 1024 bits",
                            path);
    return 0;
}

static void *arc_init(const pc_opt *o, char *err, size_t errlen)
{
    static const char *const known[] = {
        "verify", "trusted_sealers", "max_sets", "min_key_bits", "fail_score",
        "seal",   "seal_headers",    NULL};
    if (pc_opt_check_keys(o, known, err, errlen) < 0)
        return NULL;
    arcf *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->verify = 1;
    double ms = PC_ARC_MAX_INSTANCE, mb = 1024;
    if (pc_opt_bool(o, "verify", &a->verify, err, errlen) < 0 ||
        pc_opt_number(o, "max_sets", 1, PC_ARC_MAX_INSTANCE, &ms, err, errlen) < 0 ||
        pc_opt_number(o, "min_key_bits", 512, 16384, &mb, err, errlen) < 0 ||
        pc_opt_number(o, "fail_score", -1000, 1000, &a->fail_score, err, errlen) < 0 ||
        pc_opt_domains(o, "trusted_sealers", 0, &a->trusted, err, errlen) < 0)
        goto fail;
    a->max_sets = (unsigned)ms;
    a->min_bits = (unsigned)mb;
    const pc_opt *s = pc_opt_get(o, "seal");
    if (s && read_seal(a, s, err, errlen) < 0)
        goto fail;
    const pc_opt *sh = pc_opt_get(o, "seal_headers");
    if (sh && sh->kind != PC_OPT_SEQ) {
        pc_opt_error(err, errlen, sh, "seal_headers: a list of header field names");
        goto fail;
    }
    int has_from = 0;
    for (const pc_opt *h = sh ? sh->child : NULL; h; h = h->next) {
        if (h->kind != PC_OPT_SCALAR || !h->value || !*h->value || strchr(h->value, ':') ||
            a->nheaders >= 63) {
            pc_opt_error(err, errlen, h, "seal_headers: field names (at most 63)");
            goto fail;
        }
        if (strncasecmp(h->value, "arc-", 4) == 0 ||
            strcasecmp(h->value, "authentication-results") == 0) {
            pc_opt_error(err, errlen, h, "seal_headers: %s is not signed by ARC", h->value);
            goto fail;
        }
        a->headers[a->nheaders++] = h->value;
        has_from |= strcasecmp(h->value, "from") == 0;
    }
    if (sh && !has_from) {
        pc_opt_error(err, errlen, sh, "seal_headers: must include From");
        goto fail;
    }
    if (!sh)
        for (size_t i = 0; default_headers[i]; i++)
            a->headers[a->nheaders++] = default_headers[i];
    return a;
fail:
    arc_fini(a);
    return NULL;
}

/* ---- hooks --------------------------------------------------------------------------------- */

static void arc_run(void *self, pc_hook hook, pc_filter_ctx *ctx, pc_done_fn done)
{
    arcf *a = self;
    if (hook == PC_HOOK_MESSAGE && a->verify) {
        start_verify(a, ctx, done);
        return;
    }
    if (hook == PC_HOOK_DELIVER && a->key) {
        start_seal(a, ctx, done);
        return;
    }
    done(ctx, &(pc_verdict){.action = PC_CONTINUE});
}

static void arc_cancel(void *self, pc_filter_ctx *ctx)
{
    (void)self;
    void **slot = pc_ctx_session_state(ctx);
    vjob *j = slot ? *slot : NULL;
    if (!j || j->ctx != ctx || !j->pending)
        return;
    for (size_t k = 0; k < j->nrecs; k++)
        if (j->reqs[k])
            pc_dns_cancel(j->reqs[k]);
    *slot = NULL;
    free_job(j);
}

const pc_filter pcf_arc_filter = {
    .abi = PC_FILTER_ABI,
    .name = "arc",
    .hooks = PC_HOOK_BIT(PC_HOOK_MESSAGE) | PC_HOOK_BIT(PC_HOOK_DELIVER),
    .init = arc_init,
    .fini = arc_fini,
    .run = arc_run,
    .cancel = arc_cancel,
};
