/* addrtable.c — per-address counters shared by the workers (see addrtable.h): a fixed table with
 * bounded linear probing under one mutex; windows are rings of one-second buckets. */
#include "net/addrtable.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define NBUCKETS 60 /* longest window, in seconds */
#define PROBE 16    /* slots looked at per address */

typedef struct slot {
    unsigned char key[16]; /* IPv6 form; IPv4 as ::ffff:a.b.c.d */
    unsigned char used;
    uint32_t conns;
    uint32_t last[PC_CNT__MAX]; /* second of the newest bucket in use */
    uint16_t b[PC_CNT__MAX][NBUCKETS];
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot *tab;
static size_t mask;
static uint64_t seed0, seed1;
static uint32_t (*clock_fn)(void);

static uint32_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_sec + 1; /* never 0, so a zeroed slot looks old */
}

void pc_addrtable_set_clock(uint32_t (*now)(void))
{
    pthread_mutex_lock(&mu);
    clock_fn = now;
    pthread_mutex_unlock(&mu);
}

int pc_addrtable_init(unsigned nslots)
{
    size_t n = PROBE;
    while (n < nslots)
        n *= 2;
    slot *t = calloc(n, sizeof(*t));
    if (!t)
        return -1;
    uint64_t s[2];
    if (getrandom(s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        s[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
        s[1] = (uint64_t)(uintptr_t)t;
    }
    pthread_mutex_lock(&mu);
    free(tab);
    tab = t;
    mask = n - 1;
    seed0 = s[0];
    seed1 = s[1];
    pthread_mutex_unlock(&mu);
    return 0;
}

void pc_addrtable_free(void)
{
    pthread_mutex_lock(&mu);
    free(tab);
    tab = NULL;
    mask = 0;
    pthread_mutex_unlock(&mu);
}

static int make_key(const struct sockaddr *sa, unsigned char key[16])
{
    static const unsigned char v4pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        memcpy(key, v4pre, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* Seeded so that a client cannot choose addresses that crowd one probe window. */
static size_t hash_key(const unsigned char key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ seed0) * 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h = (h ^ b ^ seed1) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    h *= 0x9e3779b97f4a7c15ULL;
    h ^= h >> 32;
    return (size_t)h;
}

static uint32_t newest(const slot *s)
{
    uint32_t m = 0;
    for (int i = 0; i < PC_CNT__MAX; i++)
        if (s->last[i] > m)
            m = s->last[i];
    return m;
}

/* Zeroes the buckets that fell out of the ring between s->last[k] and now. */
static void advance(slot *s, int k, uint32_t now)
{
    uint32_t last = s->last[k];
    if (now <= last)
        return;
    if (now - last >= NBUCKETS) {
        memset(s->b[k], 0, sizeof(s->b[k]));
    } else {
        for (uint32_t t = last + 1; t <= now; t++)
            s->b[k][t % NBUCKETS] = 0;
    }
    s->last[k] = now;
}

/* Finds the slot of key; with create, takes an empty or stale one (no connections, nothing in
 * the last window), else the least recently active idle one. NULL if every candidate is busy. */
static slot *find(const unsigned char key[16], int create, uint32_t now)
{
    if (!tab)
        return NULL;
    size_t h = hash_key(key);
    slot *victim = NULL;
    uint32_t victim_age = 0;
    for (size_t i = 0; i < PROBE; i++) {
        slot *s = &tab[(h + i) & mask];
        if (s->used && memcmp(s->key, key, 16) == 0)
            return s;
        if (!create)
            continue;
        uint32_t age;
        if (!s->used)
            age = UINT32_MAX;
        else if (s->conns == 0)
            age = now - newest(s);
        else
            continue;
        if (!victim || age > victim_age) {
            victim = s;
            victim_age = age;
        }
    }
    if (!victim)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->key, key, 16);
    victim->used = 1;
    return victim;
}

static uint32_t now_s(void)
{
    return clock_fn ? clock_fn() : mono_now();
}

unsigned pc_addr_conn_inc(const struct sockaddr *sa)
{
    unsigned char key[16];
    if (make_key(sa, key) < 0)
        return 1;
    pthread_mutex_lock(&mu);
    slot *s = find(key, 1, now_s());
    unsigned r = 1; /* an overfull table does not count, rather than refuse */
    if (s) {
        if (s->conns < UINT32_MAX)
            s->conns++;
        r = s->conns;
    }
    pthread_mutex_unlock(&mu);
    return r;
}

void pc_addr_conn_dec(const struct sockaddr *sa)
{
    unsigned char key[16];
    if (make_key(sa, key) < 0)
        return;
    pthread_mutex_lock(&mu);
    slot *s = find(key, 0, 0);
    if (s && s->conns > 0)
        s->conns--;
    pthread_mutex_unlock(&mu);
}

static unsigned window_sum(slot *s, int k, unsigned window_s, uint32_t now)
{
    if (window_s == 0)
        window_s = 1;
    if (window_s > NBUCKETS)
        window_s = NBUCKETS;
    if (window_s > now)
        window_s = now;
    advance(s, k, now);
    unsigned sum = 0;
    for (unsigned i = 0; i < window_s; i++)
        sum += s->b[k][(now - i) % NBUCKETS];
    return sum;
}

unsigned pc_addr_event(const struct sockaddr *sa, pc_counter which, unsigned window_s)
{
    unsigned char key[16];
    if ((unsigned)which >= PC_CNT__MAX || make_key(sa, key) < 0)
        return 1;
    pthread_mutex_lock(&mu);
    uint32_t now = now_s();
    slot *s = find(key, 1, now);
    unsigned r = 1;
    if (s) {
        advance(s, which, now);
        if (s->b[which][now % NBUCKETS] < UINT16_MAX)
            s->b[which][now % NBUCKETS]++;
        r = window_sum(s, which, window_s, now);
    }
    pthread_mutex_unlock(&mu);
    return r;
}

void pc_addr_raise(const struct sockaddr *sa, pc_counter which, unsigned window_s, unsigned n)
{
    unsigned char key[16];
    if ((unsigned)which >= PC_CNT__MAX || make_key(sa, key) < 0)
        return;
    pthread_mutex_lock(&mu);
    uint32_t now = now_s();
    slot *s = find(key, 1, now);
    if (s) {
        advance(s, which, now);
        unsigned have = window_sum(s, which, window_s, now);
        if (have < n) {
            unsigned add = n - have, cur = s->b[which][now % NBUCKETS];
            s->b[which][now % NBUCKETS] =
                (uint16_t)(cur + add > UINT16_MAX ? UINT16_MAX : cur + add);
        }
    }
    pthread_mutex_unlock(&mu);
}

unsigned pc_addr_count(const struct sockaddr *sa, pc_counter which, unsigned window_s)
{
    unsigned char key[16];
    if ((unsigned)which >= PC_CNT__MAX || make_key(sa, key) < 0)
        return 0;
    pthread_mutex_lock(&mu);
    uint32_t now = now_s();
    slot *s = find(key, 0, now);
    unsigned r = s ? window_sum(s, which, window_s, now) : 0;
    pthread_mutex_unlock(&mu);
    return r;
}
