/* fuzz_urls.c — the URL host extractor over any bytes: hosts reported are NUL-terminated, lower
 * case names of at most 253 characters, never more than asked for. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portcullis/urls.h"

static size_t count;

static void cb(void *ud, const char *host, size_t len)
{
    (void)ud;
    if (len == 0 || len > PC_URL_HOST_MAX || strlen(host) != len)
        abort();
    for (size_t i = 0; i < len; i++)
        if (host[i] >= 'A' && host[i] <= 'Z')
            abort();
    count++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max = size ? data[0] % 70 : 0;
    count = 0;
    size_t n = pc_url_hosts((const char *)data, size, max, cb, NULL);
    if (n != count || n > max || n > 64)
        abort();
    return 0;
}
