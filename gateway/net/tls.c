/* tls.c — builds the OpenSSL 3 contexts (see tls.h): a server context per listener with extra
 * certificates picked by SNI, and a client context per upstream. */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTERMEDIATE_CIPHERS                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

static const unsigned char SID_CTX[] = "portcullis";

/* The certificates besides the default one; owned by the main context through its ex_data. */
typedef struct sni_list {
    size_t n;
    SSL_CTX **v;
} sni_list;

static int sni_idx = -1;
static pthread_once_t sni_once = PTHREAD_ONCE_INIT;

static void sni_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    sni_list *l = ptr;
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        SSL_CTX_free(l->v[i]);
    free(l->v);
    free(l);
}

static void sni_index_init(void)
{
    sni_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_free);
}

/* "what file: reason" from the OpenSSL error queue, which is then cleared. */
static void set_err(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[160] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    if (err && errlen)
        snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", reason);
}

static int parse_min_version(const char *s, int *v)
{
    if (!s || !*s || strcmp(s, "TLSv1.2") == 0)
        *v = TLS1_2_VERSION;
    else if (strcmp(s, "TLSv1.3") == 0)
        *v = TLS1_3_VERSION;
    else
        return -1;
    return 0;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
    if (!cert || !*cert) {
        snprintf(err, errlen, "certificate file not set");
        return -1;
    }
    if (!key || !*key)
        key = cert;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        set_err(err, errlen, "cannot load certificate", cert);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        set_err(err, errlen, "cannot load key", key);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        set_err(err, errlen, "key does not match certificate", cert);
        return -1;
    }
    return 0;
}

/* One server context with every setting but the SNI callback. */
static SSL_CTX *server_ctx_one(const pc_tls_cfg *cfg, const pc_cert_cfg *cert, char *err,
                               size_t errlen)
{
    int minv;
    if (parse_min_version(cfg->min_version, &minv) < 0) {
        snprintf(err, errlen, "unknown TLS min_version %s", cfg->min_version);
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Intermediate profile: every offered cipher is strong, so the client's order is fine. */
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_dh_auto(ctx, 1);
    const char *ciphers = cfg->ciphers && *cfg->ciphers ? cfg->ciphers : INTERMEDIATE_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        set_err(err, errlen, "bad cipher list", ciphers);
        goto fail;
    }
    if (cfg->ciphersuites && *cfg->ciphersuites &&
        SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1) {
        set_err(err, errlen, "bad ciphersuites", cfg->ciphersuites);
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, SID_CTX, sizeof(SID_CTX) - 1);
    if (load_pair(ctx, cert->cert_file, cert->key_file, err, errlen) < 0)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int name_matches(SSL_CTX *ctx, const char *name)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    return x && X509_check_host(x, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
}

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const sni_list *l = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !l)
        return SSL_TLSEXT_ERR_OK;
    if (name_matches(SSL_get_SSL_CTX(ssl), name))
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < l->n; i++) {
        if (name_matches(l->v[i], name)) {
            SSL_set_SSL_CTX(ssl, l->v[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK; /* unknown names get the default certificate */
}

SSL_CTX *pc_tls_server_ctx(const pc_tls_cfg *cfg, char *err, size_t errlen)
{
    if (!cfg || cfg->ncerts == 0 || !cfg->certs) {
        snprintf(err, errlen, "no TLS certificate configured");
        return NULL;
    }
    SSL_CTX *ctx = server_ctx_one(cfg, &cfg->certs[0], err, errlen);
    if (!ctx || cfg->ncerts == 1)
        return ctx;
    pthread_once(&sni_once, sni_index_init);
    sni_list *l = calloc(1, sizeof(*l));
    if (!l || sni_idx < 0 || !SSL_CTX_set_ex_data(ctx, sni_idx, l)) {
        free(l);
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* From here the list belongs to ctx: SSL_CTX_free(ctx) frees it and its contexts. */
    l->v = calloc(cfg->ncerts - 1, sizeof(*l->v));
    if (!l->v) {
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 1; i < cfg->ncerts; i++) {
        SSL_CTX *sub = server_ctx_one(cfg, &cfg->certs[i], err, errlen);
        if (!sub) {
            SSL_CTX_free(ctx);
            return NULL;
        }
        l->v[l->n++] = sub;
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, l);
    return ctx;
}

SSL_CTX *pc_tls_client_ctx(const pc_upstream_cfg *u, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (u->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (u->ca_file && *u->ca_file) {
            if (SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL) != 1) {
                set_err(err, errlen, "cannot load CA file", u->ca_file);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            set_err(err, errlen, "cannot load the system CA store", NULL);
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (u->client_cert && *u->client_cert &&
        load_pair(ctx, u->client_cert, u->client_key, err, errlen) < 0)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
