/* fuzz_qmeta.c — the quarantine's metadata file reader: any bytes (a file another process or a
 * crash left), never read past the end; what parses formats again and parses to the same fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quarantine/qmeta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *copy = malloc(size ? size : 1); /* exactly size bytes: ASan sees any overread */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    pc_qmeta m, again;
    char err[128];
    if (pc_qmeta_parse(&m, copy, size, err, sizeof(err)) == 0) {
        char *out;
        size_t n;
        if (pc_qmeta_format(&m, &out, &n) == 0) {
            if (pc_qmeta_parse(&again, out, n, err, sizeof(err)) != 0 || again.nrcpts != m.nrcpts ||
                strcmp(again.id, m.id) != 0 || strcmp(again.from, m.from) != 0)
                abort();
            for (size_t i = 0; i < m.nrcpts; i++)
                if (strcmp(again.rcpts[i].addr, m.rcpts[i].addr) != 0)
                    abort();
            pc_qmeta_free(&again);
            free(out);
        }
        char line[PC_QMETA_LINE_MAX];
        pc_qmeta_release_line(line, sizeof(line), 1, 0, m.helo, m.nrcpts ? m.rcpts[0].addr : NULL);
        if (pc_qmeta_add_history(&m, line) < 0 && m.historylen + strlen(line) < PC_QMETA_FILE_MAX)
            abort(); /* a line it made itself is always taken */
        if (!strchr(line, '\n') || strchr(line, '\n')[1] != '\0')
            abort(); /* one line, whatever the recipient */
    }
    pc_qmeta_free(&m);
    free(copy);
    return 0;
}
