/* plugin.c — the filter registry: built-in filters and shared-object plugins (dlopen, ABI check)
 * register by name; chains look them up. Written at start on the main thread, read-only after. */
#include "core/plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "portcullis/filter.h"

#define MAX_FILTERS 64

static const pc_filter *registry[MAX_FILTERS];
static size_t nregistry;

int pc_filter_register(const pc_filter *f)
{
    if (!f || f->abi != PC_FILTER_ABI || !f->name || !*f->name || !f->run)
        return -1;
    for (size_t i = 0; i < nregistry; i++) {
        if (registry[i] == f)
            return 0;
        if (strcmp(registry[i]->name, f->name) == 0)
            return -1;
    }
    if (nregistry == MAX_FILTERS)
        return -1;
    registry[nregistry++] = f;
    return 0;
}

const pc_filter *pc_filter_lookup(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < nregistry; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

static int load_one(const char *path, char *err, size_t errlen)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "%s: cannot load plugin: %s", path, dlerror());
        return -1;
    }
    const pc_filter *(*entry)(void);
    void *sym = dlsym(h, "pc_filter_entry");
    if (!sym) {
        snprintf(err, errlen, "%s: not a portcullis plugin (no pc_filter_entry)", path);
        dlclose(h);
        return -1;
    }
    memcpy(&entry, &sym, sizeof(entry)); /* object pointer to function pointer, as POSIX allows */
    const pc_filter *f = entry();
    if (!f) {
        snprintf(err, errlen, "%s: pc_filter_entry returned no filter", path);
        dlclose(h);
        return -1;
    }
    if (f->abi != PC_FILTER_ABI) {
        snprintf(err, errlen, "%s: plugin built for filter ABI %d, this gateway has ABI %d", path,
                 f->abi, PC_FILTER_ABI);
        dlclose(h);
        return -1;
    }
    if (!f->name || !*f->name || !f->run) {
        snprintf(err, errlen, "%s: plugin filter has no name or no run function", path);
        dlclose(h);
        return -1;
    }
    if (pc_filter_lookup(f->name)) {
        snprintf(err, errlen, "%s: a filter named %s is already registered", path, f->name);
        dlclose(h);
        return -1;
    }
    if (pc_filter_register(f) < 0) {
        snprintf(err, errlen, "%s: too many filters (at most %d)", path, MAX_FILTERS);
        dlclose(h);
        return -1;
    }
    return 0; /* h stays open: the filter's code is used until exit */
}

int pc_plugins_load(const pc_strlist *paths, char *err, size_t errlen)
{
    if (!paths)
        return 0;
    for (size_t i = 0; i < paths->n; i++)
        if (load_one(paths->v[i], err, errlen) < 0)
            return -1;
    return 0;
}
