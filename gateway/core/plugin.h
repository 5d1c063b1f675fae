/* plugin.h — filling the filter registry (pc_filter_register/lookup in portcullis/filter.h): the
 * built-in filters and the shared-object plugins named in the configuration. Main thread, at start,
 * before any chain is built. */
#ifndef PC_PLUGIN_H
#define PC_PLUGIN_H

#include <stddef.h>

#include "config/config.h"

/* Registers the filters compiled into the gateway (access, pregreet). Idempotent. */

/* dlopen()s each path (RTLD_NOW | RTLD_LOCAL), calls its pc_filter_entry() and registers the filter
 * after checking its ABI. Loaded objects stay loaded for the life of the process. Returns 0, or -1
 * with "PATH: reason" in err. */
int pc_plugins_load(const pc_strlist *paths, char *err, size_t errlen);

#endif
