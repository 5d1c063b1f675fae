/* fuzz_config.c — libFuzzer target for the configuration loader: each input is a whole YAML file,
 * parsed into the option tree and validated; any result is fine, a crash or a leak is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char path[64], err[512];

    if (fd < 0 && (fd = memfd_create("fuzz_config.yaml", 0)) < 0)
        return 0;
    /* One memfd reused for every input: rewrite it from the start and cut it to this size. */
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return 0;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    pc_config *cfg = pc_config_load(path, err, sizeof(err));
    if (cfg) {
        /* Touch what a caller would read, so that a dangling pointer shows. */
        for (size_t i = 0; i < cfg->nlisteners; i++)
            for (size_t f = 0; f < cfg->listeners[i].nfilters; f++)
                (void)pc_opt_str(cfg->listeners[i].filters[f].options, "x", NULL);
        pc_config_free(cfg);
    }
    return 0;
}
