/* fuzz_arc_fields.c — the ARC field readers (filters/arc/fields.c) over any bytes: every output
 * stays within the bounds fields.h promises, and vouch entries hold no white space. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *v = malloc(size + 1), *out = malloc(size + 3);
    if (!v || !out)
        goto done;
    memcpy(v, data, size);
    v[size] = '\0';
    int k = pc_arc_aar_instance(v, size);
    if (k != -1 && (k < 1 || k > PC_ARC_MAX_INSTANCE))
        abort();
    size_t n = pc_arc_strip_b(v, size, out);
    if (n != (size_t)-1 && n > size)
        abort();
    n = pc_arc_canon_relaxed(v, size, 1, out);
    if (n != (size_t)-1 && n > size + 3)
        abort();
    char vouch[256] = "";
    pc_arc_vouch(v, "lists.example.org", vouch, size ? (size_t)data[0] % sizeof(vouch) : 0);
    if (strlen(vouch) >= sizeof(vouch) || strpbrk(vouch, " \t\r\n;") == vouch)
        abort();
done:
    free(out);
    free(v);
    return 0;
}
