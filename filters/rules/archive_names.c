/* archive_names.c — the names of an archive's entries, from its directory or its headers, with
 * libarchive over a buffer in memory. No entry is extracted: where a format must decompress to
 * find the next header (a .tar.gz, a solid RAR5, a streamed zip without sizes), the decompressed
 * bytes and the time are bounded, and reading stops there.
 *
 * Formats: zip (also a zip-based document or a self-extracting .exe), 7z, RAR (4 and 5), tar,
 * cpio, cab, lha, ISO 9660; tar and cpio also compressed with gzip, xz, lzma or zstd where
 * libarchive has the library built in (never an external program). Not mtree (whose entries name
 * files on this machine), xar, warc or raw. Archives inside the archive are not opened.
 *
 * The name functions at the end judge a name as the machine that opens it will (Windows drops
 * trailing dots and spaces: "invoice.exe." runs as invoice.exe) and clean it for a log line; they
 * serve attachment names too. */
#include "archive_names.h"

#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BLOCK 4096 /* bytes handed to libarchive per read: the grain of the bounds */

/* ---- the compression filters libarchive has built in --------------------------------------- */

typedef int (*support_fn)(struct archive *);
static const support_fn filters[] = {
    archive_read_support_filter_gzip, archive_read_support_filter_xz,
    archive_read_support_filter_lzma, archive_read_support_filter_zstd};
#define NFILTERS (sizeof(filters) / sizeof(filters[0]))
static int filter_builtin[NFILTERS];
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

/* ARCHIVE_WARN means "through an external program": those are left out. */
static void probe(void)
{
    for (size_t i = 0; i < NFILTERS; i++) {
        struct archive *a = archive_read_new();
        filter_builtin[i] = a && filters[i](a) == ARCHIVE_OK;
        archive_read_free(a);
    }
}

/* ---- the buffer, handed out in blocks ------------------------------------------------------ */

typedef struct src {
    const unsigned char *p;
    size_t n, off;
    int64_t max_unpacked;
    uint64_t deadline;
    int stop; /* 1 past max_unpacked, 2 past the time */
} src;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static la_ssize_t src_read(struct archive *a, void *ud, const void **buf)
{
    src *s = ud;
    /* filter 0 is the stream the format reads: the decompressed bytes, where there is a filter */
    if (archive_filter_bytes(a, 0) > s->max_unpacked)
        s->stop = 1;
    else if (now_ms() > s->deadline)
        s->stop = 2;
    if (s->stop) {
        archive_set_error(a, -1, "stopped");
        return -1;
    }
    size_t k = s->n - s->off < BLOCK ? s->n - s->off : BLOCK;
    *buf = s->p + s->off;
    s->off += k;
    return (la_ssize_t)k;
}

static la_int64_t src_seek(struct archive *a, void *ud, la_int64_t offset, int whence)
{
    (void)a;
    src *s = ud;
    la_int64_t base = whence == SEEK_SET   ? 0
                      : whence == SEEK_CUR ? (la_int64_t)s->off
                                           : (la_int64_t)s->n;
    la_int64_t to = base + offset;
    if (to < 0 || to > (la_int64_t)s->n)
        return ARCHIVE_FATAL;
    s->off = (size_t)to;
    return to;
}

static la_int64_t src_skip(struct archive *a, void *ud, la_int64_t request)
{
    (void)a;
    src *s = ud;
    size_t k = request < 0                         ? 0
               : (uint64_t)request < s->n - s->off ? (size_t)request
                                                   : s->n - s->off;
    s->off += k;
    return (la_int64_t)k;
}

/* ---- reading ------------------------------------------------------------------------------- */

static void say(char *out, size_t outlen, const char *text)
{
    if (out && outlen)
        snprintf(out, outlen, "%s", text ? text : "");
}

int rules_archive_names(const void *data, size_t len, const rules_arc_limits *lim,
                        int (*name_fn)(void *ud, const char *name), void *ud, char *format,
                        size_t formatlen, size_t *entries, int *encrypted, char *why, size_t whylen)
{
    *entries = 0;
    *encrypted = 0;
    say(format, formatlen, "");
    say(why, whylen, "");
    if (!data || len == 0)
        return RULES_ARC_NOT;
    pthread_once(&probe_once, probe);
    struct archive *a = archive_read_new();
    if (!a) {
        say(why, whylen, "out of memory");
        return RULES_ARC_FAILED;
    }
    archive_read_support_format_zip(a);
    archive_read_support_format_7zip(a);
    archive_read_support_format_rar(a);
    archive_read_support_format_rar5(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_cpio(a);
    archive_read_support_format_cab(a);
    archive_read_support_format_lha(a);
    archive_read_support_format_iso9660(a);
    for (size_t i = 0; i < NFILTERS; i++)
        if (filter_builtin[i])
            filters[i](a);
    src s = {.p = data,
             .n = len,
             .max_unpacked = (int64_t)lim->max_unpacked,
             .deadline = now_ms() + lim->max_ms};
    archive_read_set_read_callback(a, src_read);
    archive_read_set_seek_callback(a, src_seek);
    archive_read_set_skip_callback(a, src_skip);
    archive_read_set_callback_data(a, &s);
    if (archive_read_open1(a) != ARCHIVE_OK) {
        archive_read_free(a); /* no format took it: not an archive */
        return RULES_ARC_NOT;
    }
    int rc = RULES_ARC_READ;
    int64_t declared = 0; /* RAR5 decompresses a solid archive to skip an entry: its sizes count */
    struct archive_entry *e;
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (*entries == 0)
            say(format, formatlen, archive_format_name(a));
        if (r < ARCHIVE_WARN) {
            rc = RULES_ARC_FAILED;
            if (s.stop == 1)
                snprintf(why, whylen, "more than %zu bytes decompressed to reach the names",
                         lim->max_unpacked);
            else if (s.stop == 2)
                snprintf(why, whylen, "not read within %ums", lim->max_ms);
            else
                say(why, whylen, archive_error_string(a) ? archive_error_string(a) : "unreadable");
            break;
        }
        if (*entries >= lim->max_entries) {
            rc = RULES_ARC_FAILED;
            snprintf(why, whylen, "more than %zu entries", lim->max_entries);
            break;
        }
        (*entries)++;
        if (archive_entry_is_encrypted(e))
            *encrypted = 1;
        if (archive_format(a) == ARCHIVE_FORMAT_RAR_V5) {
            if (!archive_entry_size_is_set(e) ||
                (declared += archive_entry_size(e)) > (int64_t)lim->max_unpacked) {
                rc = RULES_ARC_FAILED;
                snprintf(why, whylen, "more than %zu bytes unpacked in a RAR5 archive",
                         lim->max_unpacked);
                break;
            }
        }
        if (archive_entry_filetype(e) == AE_IFDIR)
            continue;
        const char *name = archive_entry_pathname_utf8(e);
        if (!name)
            name = archive_entry_pathname(e);
        if (name && *name && name_fn(ud, name))
            break;
    }
    archive_read_free(a);
    return rc;
}

/* ---- a name, judged and cleaned ------------------------------------------------------------ */

const char *rules_name_base(const char *path)
{
    const char *base = path;
    for (const char *p = path; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    return base;
}

const char *rules_name_ext(const char *name, size_t *extlen, size_t *prevlen)
{
    size_t end = strlen(name);
    *extlen = 0;
    *prevlen = 0;
    while (end > 0 && (name[end - 1] == '.' || name[end - 1] == ' '))
        end--;
    size_t dot = end;
    while (dot > 0 && name[dot - 1] != '.')
        dot--;
    if (dot == 0) /* no dot before the end: no extension */
        return NULL;
    *extlen = end - dot;
    size_t prev = dot - 1; /* the dot itself */
    while (prev > 0 && name[prev - 1] != '.')
        prev--;
    if (prev > 0)
        *prevlen = dot - 1 - prev;
    return name + dot;
}

void rules_name_clean(char *out, size_t outlen, const char *s)
{
    if (!out || outlen == 0)
        return;
    size_t i = 0;
    for (; s && s[i] && i + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : (char)c;
    }
    if (s && s[i]) { /* cut: a sequence the cut splits goes (it starts at a byte 11xxxxxx) */
        size_t k = i;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0xc0) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (i - (k - 1) < need)
                i = k - 1;
        }
    }
    out[i] = 0;
}
