/* archive_names.h — the names inside an archive attachment, read with libarchive from its headers
 * only (no entry's data is extracted). Called on the threadpool by the rules filter. */
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

#endif
