/* fuzz_smtp_reply.c — libFuzzer target for the upstream reply parser: every reply found must lie
 * inside the buffer, respect the limits, and parse identically from exactly its own bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t pos = 0;
    for (;;) {
        pc_smtp_reply r;
        int rc = pc_smtp_reply_parse(buf + pos, size - pos, &r);
        if (rc != PC_OK)
            break;
        if (r.consumed == 0 || r.consumed > size - pos || r.consumed > PC_SMTP_REPLY_MAX_BYTES)
            abort();
        if (r.code < 200 || r.code > 599 || r.nlines < 1 || r.nlines > PC_SMTP_REPLY_MAX_LINES)
            abort();
        if (strlen(r.enhanced) >= sizeof(r.enhanced))
            abort();
        for (size_t i = 0; i < r.nlines; i++) {
            const char *p = r.lines[i].p;
            if (p < buf + pos || p + r.lines[i].n > buf + pos + r.consumed)
                abort();
            if (r.lines[i].n && (memchr(p, '\n', r.lines[i].n) || memchr(p, '\0', r.lines[i].n)))
                abort();
        }
        /* the reply alone parses to the same thing; one byte less needs more */
        pc_smtp_reply r2;
        if (pc_smtp_reply_parse(buf + pos, r.consumed, &r2) != PC_OK || r2.consumed != r.consumed ||
            r2.nlines != r.nlines || r2.code != r.code)
            abort();
        if (pc_smtp_reply_parse(buf + pos, r.consumed - 1, &r2) != PC_NEED_MORE)
            abort();
        pos += r.consumed;
    }
    return 0;
}
