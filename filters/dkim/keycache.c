/* keycache.c — decoded DKIM public keys kept, for libopendkim.
 *
 * libopendkim decodes the signer's public key from its DER bytes (d2i_PUBKEY_bio) for every
 * signature it verifies, and OpenSSL 3 does that through its decoder framework: provider lookups
 * under locks and many allocations, the largest cost of verifying a signature, larger than the
 * RSA check itself. libopendkim has no hook that takes a decoded key, so the gateway defines
 * d2i_PUBKEY_bio itself: the dynamic linker binds libopendkim's calls to this definition (the
 * executable comes first in the lookup order), which answers from a small cache of decoded keys,
 * keyed by the DER bytes, and decodes with d2i_PUBKEY (a different symbol) on a miss. A key is
 * shared by reference (EVP_PKEY_up_ref); libopendkim's EVP_PKEY_free drops its reference, and the
 * read-only uses libopendkim makes of it (RSA_verify, EVP_DigestVerify) are safe from several
 * threads. Nothing else in the gateway calls d2i_PUBKEY_bio. */
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keycache.h"

#define SLOTS 256    /* keys kept: the signers of a site's usual mail */
#define DER_MAX 2600 /* an RSA-16384 SubjectPublicKeyInfo is ~2.1 KB */

typedef struct slot {
    uint64_t hash;
    size_t len;
    unsigned char *der;
    EVP_PKEY *key;
    uint64_t used;
} slot;

static slot cache[SLOTS];
static uint64_t tick;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static EVP_PKEY *lookup(const unsigned char *der, size_t n, uint64_t h)
{
    EVP_PKEY *k = NULL;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < SLOTS; i++)
        if (cache[i].key && cache[i].hash == h && cache[i].len == n &&
            memcmp(cache[i].der, der, n) == 0) {
            if (EVP_PKEY_up_ref(cache[i].key) == 1) {
                k = cache[i].key;
                cache[i].used = ++tick;
            }
            break;
        }
    pthread_mutex_unlock(&mu);
    return k;
}

static void insert(const unsigned char *der, size_t n, uint64_t h, EVP_PKEY *k)
{
    unsigned char *copy = malloc(n);
    if (!copy || EVP_PKEY_up_ref(k) != 1) {
        free(copy);
        return;
    }
    memcpy(copy, der, n);
    pthread_mutex_lock(&mu);
    size_t victim = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        if (!cache[i].key) {
            victim = i;
            break;
        }
        if (cache[i].used < cache[victim].used)
            victim = i;
    }
    slot old = cache[victim];
    cache[victim] = (slot){.hash = h, .len = n, .der = copy, .key = k, .used = ++tick};
    pthread_mutex_unlock(&mu);
    EVP_PKEY_free(old.key);
    free(old.der);
}

EVP_PKEY *d2i_PUBKEY_bio(BIO *bp, EVP_PKEY **a)
{
    char *data = NULL;
    long n = bp ? BIO_get_mem_data(bp, &data) : 0;
    if (n <= 0 || !data || a) {
        /* not a memory BIO, or a caller that wants its own object: decode as OpenSSL would */
        unsigned char buf[DER_MAX];
        int r = bp ? BIO_read(bp, buf, sizeof(buf)) : 0;
        const unsigned char *q = buf;
        return r > 0 ? d2i_PUBKEY(a, &q, r) : NULL;
    }
    const unsigned char *der = (const unsigned char *)data;
    uint64_t h = fnv(der, (size_t)n);
    EVP_PKEY *k = lookup(der, (size_t)n, h);
    if (!k) {
        const unsigned char *q = der;
        k = d2i_PUBKEY(NULL, &q, n);
        if (k && (size_t)n <= DER_MAX)
            insert(der, (size_t)n, h, k);
    }
    if (k) {
        char sink[256];
        while (BIO_read(bp, sink, sizeof(sink)) > 0) /* consumed, as the real one would */
            ;
    }
    return k;
}

void pc_dkim_keycache_clear(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < SLOTS; i++) {
        EVP_PKEY_free(cache[i].key);
        free(cache[i].der);
        cache[i] = (slot){0};
    }
    pthread_mutex_unlock(&mu);
}
