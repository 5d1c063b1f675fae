/* archive_names.h — the names inside an archive attachment, read with libarchive from its headers
 * only (no entry's data is extracted), and the pure functions that judge and clean a name (an
 * attachment's or an entry's): its base, the extension it opens by, its text for a log line.
 * rules_archive_names is called on the threadpool by the rules filter; the name functions do no
 * I/O and no allocation, and are fuzzed (tests/fuzz/fuzz_archive_names.c). */
#ifndef PC_RULES_ARCHIVE_NAMES_H
#define PC_RULES_ARCHIVE_NAMES_H

#include <stddef.h>

typedef struct rules_arc_limits {
    size_t max_entries;  /* entries read at most; more makes the archive unreadable */
    size_t max_unpacked; /* the decompressed bytes read through to reach the headers (a .tar.gz) */
    unsigned max_ms;     /* wall time, a last guard against a decompression bomb */
} rules_arc_limits;

enum {
    RULES_ARC_NOT = 0,    /* not an archive libarchive knows (or an empty one) */
    RULES_ARC_READ = 1,   /* every entry's name was given to the callback */
    RULES_ARC_FAILED = 2, /* recognised but not read to its end: why says what stopped it */
};

/* Calls name_fn(ud, name) for each entry that is not a directory (name as stored, a path; UTF-8
 * where the archive says so). A name_fn returning nonzero stops the reading (RULES_ARC_READ).
 * *format gets libarchive's name of the format, *entries the count read, *encrypted 1 if an
 * entry is encrypted (its name is still read; its data could not be checked by anyone). */
int rules_archive_names(const void *data, size_t len, const rules_arc_limits *lim,
                        int (*name_fn)(void *ud, const char *name), void *ud, char *format,
                        size_t formatlen, size_t *entries, int *encrypted, char *why,
                        size_t whylen);

/* ---- a name, judged and cleaned (pure: no I/O, no allocation, any bytes but NUL) ----------- */

/* The last component of an entry's path, after its last '/' or '\\' (archives made on Windows
 * use either). Borrowed: a pointer into path; "" when the path ends with a separator. */
const char *rules_name_base(const char *path);

/* The extension a name is opened by: the text after its last dot, once the trailing dots and
 * spaces that Windows drops from a file name are set aside ("a.exe.", "a.exe " and "a.exe. ."
 * are all opened as a.exe). Returns a pointer into name with the extension's length in *extlen
 * (not NUL-terminated where something was set aside), or NULL with *extlen 0 when there is none.
 * *prevlen gets the length of a nonempty extension before it (a.pdf.exe: 3), else 0. A name of
 * only an extension (".exe") has that extension. */
const char *rules_name_ext(const char *name, size_t *extlen, size_t *prevlen);

/* For a log line or a reply: s (NULL is "") copied into out, outlen bytes with its NUL, control
 * bytes, DEL, quotes and backslashes each as '?'; a UTF-8 sequence the cut would split is left
 * out whole. Nothing is written when outlen is 0. */
void rules_name_clean(char *out, size_t outlen, const char *s);

#endif
