/* fuzz_archive_bytes.c — rules_archive_names (filters/rules/archive_names.c) over any bytes as an
 * attachment's, under its own bounds (entries, decompressed bytes, time): it returns one of its
 * three answers, never counts more entries than allowed, hands the callback nonempty names, and
 * leaves format and why NUL-terminated in their buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive_names.h"

static size_t calls;

static int on_name(void *ud, const char *name)
{
    (void)ud;
    size_t len, prev;
    char clean[100];
    if (!*name)
        abort();
    rules_name_ext(rules_name_base(name), &len, &prev);
    rules_name_clean(clean, sizeof(clean), name);
    calls++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    /* small bounds, so that a run stays quick; the filter's are larger */
    rules_arc_limits lim = {.max_entries = 64, .max_unpacked = 1 << 20, .max_ms = 500};
    char format[64], why[120];
    size_t entries;
    int encrypted;
    calls = 0;
    memset(format, 'x', sizeof(format));
    memset(why, 'x', sizeof(why));
    int rc = rules_archive_names(data, size, &lim, on_name, NULL, format, sizeof(format), &entries,
                                 &encrypted, why, sizeof(why));
    if ((rc != RULES_ARC_NOT && rc != RULES_ARC_READ && rc != RULES_ARC_FAILED) ||
        entries > lim.max_entries || calls > entries || (encrypted != 0 && encrypted != 1) ||
        !memchr(format, 0, sizeof(format)) || !memchr(why, 0, sizeof(why)))
        abort();
    if (rc == RULES_ARC_NOT && (entries || calls))
        abort();
    return 0;
}
