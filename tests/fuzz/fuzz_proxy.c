/* fuzz_proxy.c — libFuzzer target for the PROXY v1/v2 parser: a header found must lie inside the
 * buffer, be found again from exactly its own bytes, and survive a v2 build/parse round trip. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse/parse.h"
#include "parse/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_proxy_info info;
    size_t used = 0;
    int rc = pc_proxy_parse(data, size, &info, &used);
    if (rc != PC_OK && rc != PC_NEED_MORE && rc != PC_INVALID)
        abort();
    if (rc != PC_OK)
        return 0;
    if (used == 0 || used > size || (info.version == 1 && used > PC_PROXY_V1_MAX) ||
        (info.version == 2 && used > PC_PROXY_V2_MAX))
        abort();
    pc_proxy_info again;
    size_t used2 = 0;
    if (pc_proxy_parse(data, used, &again, &used2) != PC_OK || used2 != used)
        abort();
    if (pc_proxy_parse(data, used - 1, &again, &used2) != PC_NEED_MORE)
        abort();
    if (info.local)
        return 0;
    int fam = info.src.ss_family;
    if ((fam != AF_INET && fam != AF_INET6) || info.dst.ss_family != fam)
        abort();
    unsigned char out[64];
    size_t n = pc_proxy_v2_build(out, sizeof(out), (struct sockaddr *)&info.src,
                                 (struct sockaddr *)&info.dst);
    if (n == 0 || pc_proxy_parse(out, n, &again, &used2) != PC_OK || used2 != n || again.local)
        abort();
    size_t alen = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (memcmp(&again.src, &info.src, alen) != 0 || memcmp(&again.dst, &info.dst, alen) != 0)
        abort();
    return 0;
}
