/* qstore.c — the quarantine directory on disk (see qstore.h). Blocking: threadpool only. Paths are
 * made only from the configured directory and a validated ID, never from message or envelope data.
 */
#include "quarantine/qstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LEFTOVER_AGE_S 3600 /* .tmp and .eml without .meta older than this are removed */

static int path_of(char *out, size_t outlen, const char *dir, const char *id, const char *suffix)
{
    int n = snprintf(out, outlen, "%s/%s%s", dir, id, suffix);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int pc_qstore_setup(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (access(dir, W_OK | X_OK) < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int pc_qstore_new_id(char *id)
{
    unsigned char r[PC_QMETA_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates tmp exclusively (0640), fills it through fill(), fsyncs and renames it to final. */
typedef int (*fill_fn)(int fd, void *ud);
static int durable_file(const char *tmp, const char *final, fill_fn fill, void *ud)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0)
        return -1;
    if (fill(fd, ud) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, final) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

static int fill_message(int fd, void *ud)
{
    pc_message *msg = ud;
    char buf[65536];
    size_t off = 0;
    for (;;) {
        ssize_t n = pc_message_read(msg, off, buf, sizeof(buf));
        if (n < 0) {
            errno = EIO;
            return -1;
        }
        if (n == 0)
            return 0;
        if (write_all(fd, buf, (size_t)n) < 0)
            return -1;
        off += (size_t)n;
    }
}

typedef struct bytes {
    const char *p;
    size_t n;
} bytes;

static int fill_bytes(int fd, void *ud)
{
    bytes *b = ud;
    return write_all(fd, b->p, b->n);
}

int pc_qstore_write(const char *dir, pc_message *msg, pc_qmeta *m, char *err, size_t errlen)
{
    char eml[PATH_MAX], emltmp[PATH_MAX], meta[PATH_MAX], metatmp[PATH_MAX];
    if (pc_qstore_new_id(m->id) < 0) {
        snprintf(err, errlen, "no random ID: %s", strerror(errno));
        return -1;
    }
    if (path_of(eml, sizeof(eml), dir, m->id, ".eml") < 0 ||
        path_of(emltmp, sizeof(emltmp), dir, m->id, ".eml.tmp") < 0 ||
        path_of(meta, sizeof(meta), dir, m->id, ".meta") < 0 ||
        path_of(metatmp, sizeof(metatmp), dir, m->id, ".meta.tmp") < 0) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    char *text = NULL;
    size_t tlen = 0;
    if (pc_qmeta_format(m, &text, &tlen) < 0) {
        snprintf(err, errlen, "metadata: out of memory");
        return -1;
    }
    bytes b = {text, tlen};
    if (durable_file(emltmp, eml, fill_message, msg) < 0) {
        snprintf(err, errlen, "%s: %s", emltmp, strerror(errno));
        free(text);
        return -1;
    }
    if (durable_file(metatmp, meta, fill_bytes, &b) < 0 || fsync_dir(dir) < 0) {
        snprintf(err, errlen, "%s: %s", metatmp, strerror(errno));
        unlink(meta);
        unlink(eml);
        free(text);
        return -1;
    }
    free(text);
    return 0;
}

/* The whole file into a new buffer, at most max bytes. 0, -1 absent, -2 error/too large. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? -1 : -2;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size > max) {
        close(fd);
        return -2;
    }
    size_t n = (size_t)st.st_size, got = 0;
    char *p = malloc(n + 1);
    if (!p) {
        close(fd);
        return -2;
    }
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(p);
        return -2;
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    return 0;
}

int pc_qstore_load(const char *dir, const char *id, pc_qmeta *m, char *err, size_t errlen)
{
    char path[PATH_MAX];
    memset(m, 0, sizeof(*m));
    if (!pc_qmeta_id_ok(id) || path_of(path, sizeof(path), dir, id, ".meta") < 0) {
        snprintf(err, errlen, "no such message");
        return -1;
    }
    char *text;
    size_t n;
    int rc = read_file(path, PC_QMETA_FILE_MAX, &text, &n);
    if (rc < 0) {
        snprintf(err, errlen, rc == -1 ? "no such message" : "metadata unreadable");
        return rc;
    }
    rc = pc_qmeta_parse(m, text, n, err, errlen);
    free(text);
    if (rc == 0 && strcmp(m->id, id) != 0) {
        snprintf(err, errlen, "metadata of another message");
        rc = -1;
    }
    return rc < 0 ? -2 : 0;
}

int pc_qstore_rewrite(const char *dir, const pc_qmeta *m, char *err, size_t errlen)
{
    char meta[PATH_MAX], metatmp[PATH_MAX];
    if (!pc_qmeta_id_ok(m->id) || path_of(meta, sizeof(meta), dir, m->id, ".meta") < 0 ||
        path_of(metatmp, sizeof(metatmp), dir, m->id, ".meta.tmp") < 0) {
        snprintf(err, errlen, "bad ID or path too long");
        return -1;
    }
    char *text = NULL;
    size_t tlen = 0;
    if (pc_qmeta_format(m, &text, &tlen) < 0) {
        snprintf(err, errlen, "metadata too large or out of memory");
        return -1;
    }
    bytes b = {text, tlen};
    int rc = durable_file(metatmp, meta, fill_bytes, &b);
    if (rc == 0)
        rc = fsync_dir(dir);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", meta, strerror(errno));
    free(text);
    return rc;
}

int pc_qstore_read_message(const char *dir, const char *id, size_t max, char **out, size_t *len)
{
    char path[PATH_MAX];
    if (!pc_qmeta_id_ok(id) || path_of(path, sizeof(path), dir, id, ".eml") < 0)
        return -1;
    return read_file(path, max, out, len);
}

int pc_qstore_delete(const char *dir, const char *id)
{
    char meta[PATH_MAX], eml[PATH_MAX];
    if (!pc_qmeta_id_ok(id) || path_of(meta, sizeof(meta), dir, id, ".meta") < 0 ||
        path_of(eml, sizeof(eml), dir, id, ".eml") < 0)
        return -1;
    if (unlink(meta) < 0)
        return errno == ENOENT ? -1 : -2;
    if (unlink(eml) < 0 && errno != ENOENT)
        return -2;
    return fsync_dir(dir) < 0 ? -2 : 0;
}

int pc_qstore_read_head(const char *dir, const char *id, size_t max, char **out, size_t *len)
{
    char path[PATH_MAX];
    if (!pc_qmeta_id_ok(id) || path_of(path, sizeof(path), dir, id, ".eml") < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    char *p = malloc(max + 1);
    size_t got = 0;
    while (p && got < max) {
        ssize_t r = read(fd, p + got, max - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!p)
        return -1;
    p[got] = '\0';
    *out = p;
    *len = got;
    return 0;
}

int pc_qstore_delete_message(const char *dir, const char *id)
{
    char eml[PATH_MAX];
    if (!pc_qmeta_id_ok(id) || path_of(eml, sizeof(eml), dir, id, ".eml") < 0)
        return -1;
    if (unlink(eml) < 0 && errno != ENOENT)
        return -1;
    return fsync_dir(dir);
}

/* name is "<32 hex><suffix>" exactly: the ID into id. */
static int name_is(const char *name, const char *suffix, char *id)
{
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != PC_QMETA_ID_LEN + sl || strcmp(name + PC_QMETA_ID_LEN, suffix) != 0)
        return 0;
    memcpy(id, name, PC_QMETA_ID_LEN);
    id[PC_QMETA_ID_LEN] = '\0';
    return pc_qmeta_id_ok(id);
}

long pc_qstore_each(const char *dir, pc_qstore_each_fn fn, void *ud)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char id[PC_QMETA_ID_LEN + 1], err[128];
        if (!name_is(e->d_name, ".meta", id))
            continue;
        pc_qmeta m;
        if (pc_qstore_load(dir, id, &m, err, sizeof(err)) == 0) {
            seen++;
            int stop = fn(ud, &m);
            pc_qmeta_free(&m);
            if (stop)
                break;
        } else {
            pc_qmeta_free(&m);
        }
    }
    closedir(d);
    return seen;
}

long pc_qstore_sweep(const char *dir, unsigned long long max_age_s, long long now, char *err,
                     size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    long expired = 0;
    int changed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char id[PC_QMETA_ID_LEN + 1], path[PATH_MAX];
        struct stat st;
        if (name_is(e->d_name, ".meta", id)) {
            pc_qmeta m;
            char why[128];
            if (pc_qstore_load(dir, id, &m, why, sizeof(why)) == 0 &&
                (unsigned long long)(now - m.time) >= max_age_s && now >= m.time &&
                pc_qstore_delete(dir, id) == 0)
                expired++;
            pc_qmeta_free(&m);
            continue;
        }
        int tmp = name_is(e->d_name, ".eml.tmp", id) || name_is(e->d_name, ".meta.tmp", id);
        int orphan = 0;
        if (!tmp && name_is(e->d_name, ".eml", id)) {
            char meta[PATH_MAX];
            orphan = path_of(meta, sizeof(meta), dir, id, ".meta") == 0 && access(meta, F_OK) < 0 &&
                     errno == ENOENT;
        }
        if ((tmp || orphan) && snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) > 0 &&
            lstat(path, &st) == 0 && now - (long long)st.st_mtime > LEFTOVER_AGE_S &&
            unlink(path) == 0)
            changed = 1;
    }
    closedir(d);
    if (changed)
        fsync_dir(dir);
    return expired;
}
