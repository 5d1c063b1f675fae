/* fuzz_authres.c — the authserv-id reader of Authentication-Results values: any bytes, NUL-ended
 * as the header reader gives them, never read past the end or write past out. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse/authres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *v = malloc(size + 1);
    if (!v)
        return 0;
    memcpy(v, data, size);
    v[size] = '\0';
    size_t outlen = size ? data[0] % 64 : 0;
    char *out = malloc(outlen ? outlen : 1);
    if (out && pc_authres_id(v, out, outlen) == 0 && strlen(out) >= outlen)
        abort(); /* a result always fits, NUL included */
    free(out);
    free(v);
    return 0;
}
