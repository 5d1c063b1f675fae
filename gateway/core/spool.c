/* spool.c — a message's bytes (memory up to a threshold, then an anonymous 0600 temp file) under
 * global memory/disk budgets, and the message object that layers filters' header changes on top. */
#include "core/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- global setup and budgets ---- */

static char spool_dir[PATH_MAX] = "/var/tmp";
static int use_mkstemp;             /* the directory has no O_TMPFILE: mkstemp + unlink */
static size_t mem_limit = SIZE_MAX; /* SIZE_MAX: unlimited (before setup) */
static size_t disk_limit = SIZE_MAX;
static atomic_size_t mem_used;
static atomic_size_t disk_used;

static int budget_take(atomic_size_t *used, size_t limit, size_t n)
{
    size_t cur = atomic_load(used);
    do {
        if (n > limit || cur > limit - n)
            return -1;
    } while (!atomic_compare_exchange_weak(used, &cur, cur + n));
    return 0;
}

static void budget_give(atomic_size_t *used, size_t n)
{
    if (n)
        atomic_fetch_sub(used, n);
}

static int open_tmp(const char *dir, int mkstemp_mode)
{
    if (!mkstemp_mode)
        return open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/portcullis-XXXXXX", dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(path, O_CLOEXEC); /* mode 0600 */
    if (fd >= 0)
        unlink(path);
    return fd;
}

void pc_spool_usage(size_t *mem, size_t *disk)
{
    if (mem)
        *mem = atomic_load(&mem_used);
    if (disk)
        *disk = atomic_load(&disk_used);
}

int pc_spool_setup(const char *dir, size_t mem_total, size_t disk_total, char *err, size_t errlen)
{
    if (!dir || !*dir)
        dir = "/var/tmp";
    if (strlen(dir) >= sizeof(spool_dir) - 32) {
        snprintf(err, errlen, "spool directory %s: name too long", dir);
        return -1;
    }
    int mk = 0;
    int fd = open_tmp(dir, 0);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        mk = 1; /* e.g. some network file systems: still nothing is left after a crash but a race */
        fd = open_tmp(dir, 1);
    }
    if (fd < 0) {
        snprintf(err, errlen, "spool directory %s: %s", dir, strerror(errno));
        return -1;
    }
    close(fd);
    snprintf(spool_dir, sizeof(spool_dir), "%s", dir);
    use_mkstemp = mk;
    mem_limit = mem_total ? mem_total : SIZE_MAX;
    disk_limit = disk_total ? disk_total : SIZE_MAX;
    return 0;
}

/* ---- spool ---- */

struct pc_spool {
    char *mem;
    size_t len;       /* total bytes written */
    size_t cap;       /* allocated (charged to the memory budget) */
    size_t threshold; /* memory kept before switching to a file */
    size_t disk;      /* bytes charged to the disk budget */
    int fd;           /* -1 while in memory */
    int failed;       /* a write failed: read-only from now on */
    int sealed;       /* its message was handed to filters: no more writes */
    int lent;         /* a mapping or the descriptor was handed out (pc_message_map/_fd) */
    void *map;        /* read-only mapping of the file, made on first pc_message_map() */
};

pc_spool *pc_spool_new(size_t mem_threshold)
{
    pc_spool *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fd = -1;
    s->threshold = mem_threshold;
    return s;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return (errno == ENOSPC || errno == EDQUOT) ? PC_SPOOL_ENOSPC : PC_SPOOL_EIO;
        }
        c += w;
        n -= (size_t)w;
    }
    return PC_SPOOL_OK;
}

/* Moves what memory holds into a new temp file; memory is returned to its budget. */
static int spool_to_file(pc_spool *s)
{
    int fd = open_tmp(spool_dir, use_mkstemp);
    if (fd < 0)
        return (errno == ENOSPC || errno == EDQUOT) ? PC_SPOOL_ENOSPC : PC_SPOOL_EIO;
    if (budget_take(&disk_used, disk_limit, s->len) < 0) {
        close(fd);
        return PC_SPOOL_ENOSPC;
    }
    int rc = write_all(fd, s->mem, s->len);
    if (rc != PC_SPOOL_OK) {
        budget_give(&disk_used, s->len);
        close(fd);
        return rc;
    }
    s->disk = s->len;
    s->fd = fd;
    free(s->mem);
    s->mem = NULL;
    budget_give(&mem_used, s->cap);
    s->cap = 0;
    return PC_SPOOL_OK;
}

static int spool_write(pc_spool *s, const void *p, size_t n)
{
    if (s->fd < 0 && n <= s->threshold && s->len <= s->threshold - n) {
        if (s->len + n > s->cap) {
            size_t ncap = s->cap ? s->cap : 4096;
            while (ncap < s->len + n)
                ncap *= 2;
            if (ncap > s->threshold)
                ncap = s->threshold;
            /* Past the memory budget the message goes on disk instead. */
            if (budget_take(&mem_used, mem_limit, ncap - s->cap) < 0)
                goto to_disk;
            char *nm = realloc(s->mem, ncap);
            if (!nm) {
                budget_give(&mem_used, ncap - s->cap);
                goto to_disk;
            }
            s->mem = nm;
            s->cap = ncap;
        }
        memcpy(s->mem + s->len, p, n);
        s->len += n;
        return PC_SPOOL_OK;
    }
to_disk:
    if (s->fd < 0) {
        int rc = spool_to_file(s);
        if (rc != PC_SPOOL_OK)
            return rc;
    }
    if (budget_take(&disk_used, disk_limit, n) < 0)
        return PC_SPOOL_ENOSPC;
    s->disk += n;
    int rc = write_all(s->fd, p, n);
    if (rc != PC_SPOOL_OK) {
        /* Part may have been written: keep the file consistent with len by cutting it back. */
        if (ftruncate(s->fd, (off_t)s->len) < 0 || lseek(s->fd, (off_t)s->len, SEEK_SET) < 0)
            rc = PC_SPOOL_EIO;
        return rc;
    }
    s->len += n;
    return PC_SPOOL_OK;
}

int pc_spool_write(pc_spool *s, const void *p, size_t n)
{
    if (s->failed || s->sealed)
        return PC_SPOOL_EIO;
    if (n == 0)
        return PC_SPOOL_OK;
    int rc = spool_write(s, p, n);
    if (rc != PC_SPOOL_OK)
        s->failed = 1;
    return rc;
}

size_t pc_spool_size(const pc_spool *s)
{
    return s->len;
}

ssize_t pc_spool_read(const pc_spool *s, size_t off, void *buf, size_t len)
{
    if (off >= s->len || len == 0)
        return 0;
    if (len > s->len - off)
        len = s->len - off;
    if (len > (size_t)SSIZE_MAX)
        len = (size_t)SSIZE_MAX;
    if (s->fd < 0) {
        memcpy(buf, s->mem + off, len);
        return (ssize_t)len;
    }
    for (;;) {
        ssize_t r = pread(s->fd, buf, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -1 : r;
    }
}

void pc_spool_free(pc_spool *s)
{
    if (!s)
        return;
    if (s->map)
        munmap(s->map, s->len);
    if (s->fd >= 0)
        close(s->fd);
    free(s->mem);
    budget_give(&mem_used, s->cap);
    budget_give(&disk_used, s->disk);
    free(s);
}

/* ---- message ---- */

#define HDR_MAX_FIELDS 10000
#define HDR_MAX_BYTES (1024 * 1024)

typedef struct field {
    size_t start, end; /* [start, end) including the final line break */
    size_t namelen;    /* bytes of the name before the colon (trailing WSP trimmed); 0 = none */
    int removed;
} field;

typedef struct range {
    size_t start, end;
} range;

/* Threads: everything runs on the loop thread that owns the message, except pc_message_ref/unref
 * and the sealed readers (pc_message_map, pc_message_fd), which threadpool work may call while it
 * holds a reference; `lock` orders those against a replacement on the loop thread. */
struct pc_message {
    atomic_uint refs;
    pthread_mutex_t lock; /* base and retired, against the sealed readers */
    int sealed;
    pc_spool *base;     /* the original, or the replacement */
    pc_spool **retired; /* earlier bases whose bytes were lent out: kept until the last unref */
    size_t nretired;
    char *pre; /* prepended fields, newest first */
    size_t prelen, precap;
    field *added; /* fields of pre, top to bottom (removed ones are cut out of pre) */
    size_t nadded, addcap;
    field *f; /* index of base's header section (lazy) */
    size_t nf, fcap;
    int indexed;
    range *rm; /* removed fields of base, sorted */
    size_t nrm, rmcap;
    size_t rmbytes;
};

pc_message *pc_message_new(pc_spool *spool)
{
    if (!spool)
        return NULL;
    pc_message *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    pthread_mutex_init(&m->lock, NULL);
    m->base = spool;
    return m;
}

static void drop_index(pc_message *m)
{
    free(m->f);
    free(m->rm);
    m->f = NULL;
    m->rm = NULL;
    m->nf = m->fcap = m->nrm = m->rmcap = m->rmbytes = 0;
    m->indexed = 0;
}

static void message_free(pc_message *m)
{
    pc_spool_free(m->base);
    for (size_t i = 0; i < m->nretired; i++)
        pc_spool_free(m->retired[i]);
    free(m->retired);
    free(m->pre);
    free(m->added);
    drop_index(m);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

pc_message *pc_message_ref(pc_message *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void pc_message_unref(pc_message *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        message_free(m);
}

void pc_message_seal(pc_message *m)
{
    pthread_mutex_lock(&m->lock);
    m->sealed = 1;
    m->base->sealed = 1;
    pthread_mutex_unlock(&m->lock);
}

const void *pc_message_map(pc_message *m, size_t *len)
{
    static const char empty[1];
    const void *p = NULL;
    *len = 0;
    pthread_mutex_lock(&m->lock);
    pc_spool *s = m->base;
    if (!m->sealed) {
        errno = EBUSY; /* the bytes may still change */
    } else if (s->fd < 0) {
        p = s->len ? s->mem : empty;
    } else if (s->len == 0) {
        p = empty;
    } else if (s->map ||
               (s->map = mmap(NULL, s->len, PROT_READ, MAP_SHARED, s->fd, 0)) != MAP_FAILED) {
        p = s->map;
    } else {
        s->map = NULL;
    }
    if (p) {
        s->lent = 1;
        *len = s->len;
    }
    pthread_mutex_unlock(&m->lock);
    return p;
}

int pc_message_fd(pc_message *m)
{
    pthread_mutex_lock(&m->lock);
    int fd = m->sealed ? m->base->fd : -1;
    if (fd >= 0)
        m->base->lent = 1;
    pthread_mutex_unlock(&m->lock);
    return fd;
}

/* Sequential byte reader over a spool. */
typedef struct reader {
    const pc_spool *s;
    size_t bstart, blen, pos;
    unsigned char buf[16384];
} reader;

static int rd_get(reader *r)
{
    if (r->pos < r->bstart || r->pos >= r->bstart + r->blen) {
        ssize_t n = pc_spool_read(r->s, r->pos, r->buf, sizeof(r->buf));
        if (n <= 0)
            return -1;
        r->bstart = r->pos;
        r->blen = (size_t)n;
    }
    return r->buf[r->pos++ - r->bstart];
}

static int push_field(pc_message *m, const field *fl)
{
    if (m->nf == m->fcap) {
        size_t nc = m->fcap ? m->fcap * 2 : 64;
        field *nf = realloc(m->f, nc * sizeof(*nf));
        if (!nf)
            return -1;
        m->f = nf;
        m->fcap = nc;
    }
    m->f[m->nf++] = *fl;
    return 0;
}

/* Indexes base's header section up to the first empty line, at most HDR_MAX_FIELDS fields and
 * HDR_MAX_BYTES bytes. Fields past a limit are simply not indexed: they stay in the message. */
static int build_index(pc_message *m)
{
    if (m->indexed)
        return 0;
    reader *r = malloc(sizeof(*r));
    if (!r)
        return -1;
    r->s = m->base;
    r->bstart = r->blen = r->pos = 0;
    field cur = {0};
    int have = 0, rc = 0;
    for (;;) {
        size_t lstart = r->pos;
        int c = rd_get(r);
        if (c < 0)
            break;
        if (c == '\n' || (c == '\r' && rd_get(r) == '\n'))
            break; /* empty line: end of the header section */
        r->pos = lstart;
        int cont = (c == ' ' || c == '\t');
        /* scan the line, noting where the name ends */
        size_t namelen = 0, wsp = 0;
        int colon = 0;
        int ch;
        while ((ch = rd_get(r)) >= 0) {
            if (!cont && !colon) {
                if (ch == ':') {
                    colon = 1;
                    namelen = r->pos - 1 - lstart - wsp;
                } else if (ch == ' ' || ch == '\t') {
                    wsp++;
                } else {
                    wsp = 0;
                }
            }
            if (ch == '\n')
                break;
        }
        size_t lend = r->pos;
        if (lend > HDR_MAX_BYTES) {
            if (cont)
                have = 0; /* the open field's end is unknown: leave it out of the index */
            break;
        }
        if (cont && have) {
            cur.end = lend;
            continue;
        }
        if (have && push_field(m, &cur) < 0) {
            rc = -1;
            have = 0;
            break;
        }
        have = 0;
        if (m->nf >= HDR_MAX_FIELDS)
            break;
        cur.start = lstart;
        cur.end = lend;
        cur.namelen = colon ? namelen : 0;
        cur.removed = 0;
        have = 1;
        if (ch < 0)
            break;
    }
    if (have && push_field(m, &cur) < 0)
        rc = -1;
    free(r);
    if (rc < 0) {
        drop_index(m);
        return -1;
    }
    m->indexed = 1;
    return 0;
}

static int ensure_index(const pc_message *m)
{
    /* The index is a cache: building it does not change what the message is. */
    return build_index((pc_message *)m);
}

size_t pc_message_size(const pc_message *m)
{
    return m->prelen + pc_spool_size(m->base) - m->rmbytes;
}

ssize_t pc_message_read(const pc_message *m, size_t off, void *buf, size_t len)
{
    char *out = buf;
    size_t done = 0;
    if (len > (size_t)SSIZE_MAX)
        len = (size_t)SSIZE_MAX;
    if (off < m->prelen) {
        size_t n = m->prelen - off < len ? m->prelen - off : len;
        memcpy(out, m->pre + off, n);
        done += n;
        off += n;
    }
    if (done == len)
        return (ssize_t)done;
    /* map the visible offset into base, skipping removed ranges */
    size_t a = off - m->prelen;
    size_t i = 0;
    while (i < m->nrm && m->rm[i].start <= a) {
        a += m->rm[i].end - m->rm[i].start;
        i++;
    }
    size_t bsize = pc_spool_size(m->base);
    while (done < len && a < bsize) {
        size_t lim = i < m->nrm ? m->rm[i].start : bsize;
        size_t want = len - done;
        if (want > lim - a)
            want = lim - a;
        ssize_t r = pc_spool_read(m->base, a, out + done, want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        done += (size_t)r;
        a += (size_t)r;
        while (i < m->nrm && a >= m->rm[i].start) {
            a = m->rm[i].end > a ? m->rm[i].end : a;
            i++;
        }
    }
    return (ssize_t)done;
}

char *pc_message_header_section(const pc_message *m, size_t max, size_t *len)
{
    size_t cap = max < 16384 ? max + 4 : 16384, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        if (n == cap) {
            if (cap >= max + 4)
                break; /* longer than max */
            size_t nc = cap * 2 > max + 4 ? max + 4 : cap * 2;
            char *nb = realloc(b, nc + 1);
            if (!nb)
                break;
            b = nb;
            cap = nc;
        }
        ssize_t r = pc_message_read(m, n, b + n, cap - n);
        if (r < 0)
            break;
        if (r == 0) { /* no body: the message is all header section */
            if (n > max)
                break;
            b[n] = '\0';
            *len = n;
            return b;
        }
        size_t from = n > 3 ? n - 3 : 0;
        n += (size_t)r;
        char *e = memmem(b + from, n - from, "\r\n\r\n", 4);
        if (e || (n >= 2 && n <= (size_t)r && b[0] == '\r' && b[1] == '\n')) {
            size_t hl = e ? (size_t)(e - b) + 2 : 0;
            if (hl > max)
                break;
            b[hl] = '\0';
            *len = hl;
            return b;
        }
    }
    free(b);
    return NULL;
}

/* A name is printable US-ASCII without colon (RFC 5322 2.2). */
static int valid_name(const char *name, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 33 || c > 126 || c == ':')
            return 0;
    }
    return 1;
}

/* CR and LF only as CRLF followed by WSP (folding); with final=1 a last CRLF ends the text. */
static int valid_folding(const char *p, size_t n, int final)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0')
            return 0;
        if (p[i] == '\n')
            return 0;
        if (p[i] == '\r') {
            if (i + 1 >= n || p[i + 1] != '\n')
                return 0;
            if (final && i + 2 == n)
                return 1;
            if (i + 2 >= n || (p[i + 2] != ' ' && p[i + 2] != '\t'))
                return 0;
            i++;
        }
    }
    return !final;
}

static int prepend(pc_message *m, const char *line, size_t n, size_t namelen)
{
    if (m->prelen + n > m->precap) {
        size_t nc = m->precap ? m->precap : 256;
        while (nc < m->prelen + n)
            nc *= 2;
        char *np = realloc(m->pre, nc);
        if (!np)
            return -1;
        m->pre = np;
        m->precap = nc;
    }
    if (m->nadded == m->addcap) {
        size_t nc = m->addcap ? m->addcap * 2 : 8;
        field *na = realloc(m->added, nc * sizeof(*na));
        if (!na)
            return -1;
        m->added = na;
        m->addcap = nc;
    }
    memmove(m->pre + n, m->pre, m->prelen);
    memcpy(m->pre, line, n);
    m->prelen += n;
    memmove(m->added + 1, m->added, m->nadded * sizeof(*m->added));
    for (size_t i = 1; i <= m->nadded; i++) {
        m->added[i].start += n;
        m->added[i].end += n;
    }
    m->added[0] = (field){.start = 0, .end = n, .namelen = namelen};
    m->nadded++;
    return 0;
}

int pc_message_prepend_raw(pc_message *m, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return -1;
    size_t namelen = (size_t)(colon - line);
    if (!valid_name(line, namelen) || !valid_folding(line, n, 1))
        return -1;
    return prepend(m, line, n, namelen);
}

int pc_message_add_header(pc_message *m, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (!valid_name(name, nl) || !valid_folding(value, vl, 0))
        return -1;
    size_t n = nl + 2 + vl + 2;
    char *line = malloc(n + 1);
    if (!line)
        return -1;
    memcpy(line, name, nl);
    memcpy(line + nl, ": ", 2);
    memcpy(line + nl + 2, value, vl);
    memcpy(line + nl + 2 + vl, "\r\n", 2);
    int rc = prepend(m, line, n, nl);
    free(line);
    return rc;
}

/* Finds the i-th field named name over the final header: added ones first, then base's. */
static field *find_field(const pc_message *m, const char *name, size_t i, int *in_pre)
{
    size_t nl = strlen(name);
    if (nl == 0)
        return NULL;
    for (size_t k = 0; k < m->nadded; k++) {
        field *f = &m->added[k];
        if (f->namelen == nl && strncasecmp(m->pre + f->start, name, nl) == 0 && i-- == 0) {
            *in_pre = 1;
            return f;
        }
    }
    if (ensure_index(m) < 0)
        return NULL;
    char nbuf[256];
    if (nl > sizeof(nbuf))
        return NULL; /* no field name this long is worth looking up */
    for (size_t k = 0; k < m->nf; k++) {
        field *f = &m->f[k];
        if (f->removed || f->namelen != nl)
            continue;
        if (pc_spool_read(m->base, f->start, nbuf, nl) != (ssize_t)nl)
            continue;
        if (strncasecmp(nbuf, name, nl) == 0 && i-- == 0) {
            *in_pre = 0;
            return f;
        }
    }
    return NULL;
}

ssize_t pc_message_header(const pc_message *m, const char *name, size_t i, char *out, size_t outlen)
{
    int in_pre = 0;
    field *f = find_field(m, name, i, &in_pre);
    if (!f)
        return -1;
    size_t flen = f->end - f->start;
    char *raw = malloc(flen ? flen : 1);
    if (!raw)
        return -1;
    if (in_pre)
        memcpy(raw, m->pre + f->start, flen);
    else if (pc_spool_read(m->base, f->start, raw, flen) != (ssize_t)flen) {
        free(raw);
        return -1;
    }
    size_t p = f->namelen;
    while (p < flen && raw[p] != ':')
        p++;
    p++;
    /* drop the final line break */
    size_t e = flen;
    if (e > p && raw[e - 1] == '\n')
        e--;
    if (e > p && raw[e - 1] == '\r')
        e--;
    /* strip leading whitespace, including folding right after the colon */
    while (p < e) {
        if (raw[p] == ' ' || raw[p] == '\t' || raw[p] == '\r' || raw[p] == '\n')
            p++;
        else
            break;
    }
    size_t n = 0;
    for (size_t k = p; k < e; k++) {
        if (raw[k] == '\r' && k + 1 < e && raw[k + 1] == '\n')
            continue; /* CRLF WSP → WSP: the WSP follows */
        if (raw[k] == '\n')
            continue;
        if (outlen && n < outlen - 1)
            out[n] = raw[k];
        n++;
    }
    if (outlen)
        out[n < outlen - 1 ? n : outlen - 1] = '\0';
    free(raw);
    return (ssize_t)n;
}

int pc_message_remove_header(pc_message *m, const char *name, size_t i)
{
    int in_pre = 0;
    field *f = find_field(m, name, i, &in_pre);
    if (!f)
        return -1;
    if (in_pre) {
        size_t k = (size_t)(f - m->added);
        size_t n = f->end - f->start;
        memmove(m->pre + f->start, m->pre + f->end, m->prelen - f->end);
        m->prelen -= n;
        memmove(m->added + k, m->added + k + 1, (m->nadded - k - 1) * sizeof(*m->added));
        m->nadded--;
        for (size_t j = k; j < m->nadded; j++) {
            m->added[j].start -= n;
            m->added[j].end -= n;
        }
        return 0;
    }
    if (m->nrm == m->rmcap) {
        size_t nc = m->rmcap ? m->rmcap * 2 : 16;
        range *nr = realloc(m->rm, nc * sizeof(*nr));
        if (!nr)
            return -1;
        m->rm = nr;
        m->rmcap = nc;
    }
    size_t pos = m->nrm;
    while (pos > 0 && m->rm[pos - 1].start > f->start)
        pos--;
    memmove(m->rm + pos + 1, m->rm + pos, (m->nrm - pos) * sizeof(*m->rm));
    m->rm[pos] = (range){f->start, f->end};
    m->nrm++;
    m->rmbytes += f->end - f->start;
    f->removed = 1;
    return 0;
}

int pc_message_replace(pc_message *m, const void *data, size_t len)
{
    pc_spool *s = pc_spool_new(m->base->threshold);
    if (!s)
        return -1;
    if (pc_spool_write(s, data, len) != PC_SPOOL_OK) {
        pc_spool_free(s);
        return -1;
    }
    /* The prepended fields (Received, filters' additions) stay on top of the new content. */
    pthread_mutex_lock(&m->lock);
    pc_spool *old = m->base;
    if (old->lent) { /* threadpool work may still read it: keep it until the last unref */
        pc_spool **nr = realloc(m->retired, (m->nretired + 1) * sizeof(*nr));
        if (!nr) {
            pthread_mutex_unlock(&m->lock);
            pc_spool_free(s);
            return -1;
        }
        m->retired = nr;
        m->retired[m->nretired++] = old;
        old = NULL;
    }
    s->sealed = m->sealed;
    m->base = s;
    pthread_mutex_unlock(&m->lock);
    pc_spool_free(old);
    drop_index(m);
    return 0;
}

int pc_message_from_domain(const pc_message *m, char *out, size_t outlen)
{
    char v[1024], x[8];
    if (outlen)
        out[0] = '\0';
    if (pc_message_header(m, "From", 0, v, sizeof(v)) < 0)
        return -1;
    if (pc_message_header(m, "From", 1, x, sizeof(x)) >= 0)
        return -2;
    const char *lt = strrchr(v, '<');
    const char *addr = lt ? lt + 1 : v;
    const char *at = strrchr(addr, '@');
    if (!at || !outlen)
        return -1;
    size_t n = 0;
    for (const char *p = at + 1; *p && *p != '>' && *p != ' ' && *p != ',' && *p != ')'; p++) {
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    }
    out[n] = '\0';
    return n ? 0 : -1;
}
