/* fuzz_dkim_tags.c — the DKIM tag-list reader (filters/dkim/tags.c) over any bytes: a value found
 * always fits its buffer with its NUL, and holds no white space. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *v = malloc(size + 1);
    if (!v)
        return 0;
    memcpy(v, data, size);
    v[size] = '\0';
    static const char *const tags[] = {"d", "s", "b", "bh", "h", "i", "v"};
    size_t outlen = size ? (size_t)data[0] % 300 : 0;
    char *out = malloc(outlen + 1);
    for (size_t t = 0; out && t < sizeof(tags) / sizeof(tags[0]); t++) {
        long n = pc_dkim_tag(v, tags[t], out, outlen);
        if (n >= 0 && ((size_t)n >= outlen || strlen(out) != (size_t)n || strpbrk(out, " \t\r\n")))
            abort();
    }
    free(out);
    free(v);
    return 0;
}
