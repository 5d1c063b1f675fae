/* fuzz_admin_cmd.c — the admin socket's request line parser: any bytes up to and past the line
 * bound, never read past the end; what it accepts is well formed (an ID where one is needed,
 * values without spaces or controls). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_cmd.h"
#include "quarantine/qmeta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * PC_ADMIN_LINE_MAX)
        return 0;
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    pc_admin_cmd c;
    char err[128];
    if (pc_admin_cmd_parse(&c, copy, size, err, sizeof(err)) == 0) {
        if (c.verb != PC_ADMIN_LIST && !pc_qmeta_id_ok(c.id))
            abort();
        for (const char *p = c.rcpt; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                abort();
    }
    free(copy);
    return 0;
}
