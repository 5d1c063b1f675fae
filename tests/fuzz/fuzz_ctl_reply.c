/* fuzz_ctl_reply.c — portcullisctl's reader of reply lines: any bytes, never read past the end;
 * every slice it gives lies inside the line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_reply.h"

static void inside(const char *line, size_t n, ctl_slice s)
{
    if (s.n && (s.p < line || s.p + s.n > line + n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    ctl_line l;
    ctl_kind k = ctl_parse_line(&l, copy, size);
    inside(copy, size, l.type);
    inside(copy, size, l.text);
    if (k == CTL_RECORD) {
        if (l.n > CTL_FIELDS)
            abort();
        for (size_t i = 0; i < l.n; i++) {
            inside(copy, size, l.key[i]);
            inside(copy, size, l.value[i]);
        }
        size_t len;
        ctl_get(&l, "id", &len);
    }
    free(copy);
    return 0;
}
