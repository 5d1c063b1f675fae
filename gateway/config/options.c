/* options.c — the typed readers of the plugin API (include/portcullis/options.h): a filter reads
 * its options with the configuration loader's own parsers, checks and error texts
 * (pc_config_value in config.c); here only the lookup, the defaults and the lists the filter owns.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int pc_opt_error(char *err, size_t errlen, const pc_opt *at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (at && at->line)
        snprintf(err, errlen, "%s:%d: %s", at->file ? at->file : "config", at->line, msg);
    else
        snprintf(err, errlen, "command line: %s", msg);
    return -1;
}

int pc_opt_check_keys(const pc_opt *options, const char *const *known, char *err, size_t errlen)
{
    if (!options)
        return 0;
    if (options->kind != PC_OPT_MAP)
        return pc_opt_error(err, errlen, options, "options must be a map");
    for (const pc_opt *o = options->child; o; o = o->next) {
        size_t k = 0;
        while (known[k] && (!o->key || strcmp(o->key, known[k])))
            k++;
        if (!known[k])
            return pc_opt_error(err, errlen, o, "unknown option %s", o->key ? o->key : "(none)");
    }
    return 0;
}

/* The node of map[key], or NULL when absent or given without a value (the default applies). */
static const pc_opt *given(const pc_opt *map, const char *key)
{
    const pc_opt *n = pc_opt_get(map, key);
    if (n && n->kind == PC_OPT_SCALAR && (!n->value || !n->value[0]))
        return NULL;
    return n;
}

/* A scalar read: converted into a temporary, stored only when valid. */
static int scalar(const pc_opt *map, const char *key, pc_value_kind kind, const char *const *names,
                  unsigned flags, void *tmp, void *out, size_t size, char *err, size_t errlen)
{
    const pc_opt *n = given(map, key);
    if (!n)
        return 0;
    if (pc_config_value(NULL, n, key, kind, names, flags, tmp, err, errlen) < 0)
        return -1;
    memcpy(out, tmp, size);
    return 1;
}

int pc_opt_duration(const pc_opt *map, const char *key, unsigned *ms, char *err, size_t errlen)
{
    unsigned v;
    return scalar(map, key, PC_VAL_DURATION, NULL, 0, &v, ms, sizeof(v), err, errlen);
}

int pc_opt_size(const pc_opt *map, const char *key, size_t *out, char *err, size_t errlen)
{
    size_t v;
    return scalar(map, key, PC_VAL_SIZE, NULL, 0, &v, out, sizeof(v), err, errlen);
}

int pc_opt_bool(const pc_opt *map, const char *key, int *out, char *err, size_t errlen)
{
    int v;
    return scalar(map, key, PC_VAL_BOOL, NULL, 0, &v, out, sizeof(v), err, errlen);
}

int pc_opt_enum(const pc_opt *map, const char *key, const char *const *names, int *index, char *err,
                size_t errlen)
{
    int v;
    return scalar(map, key, PC_VAL_ENUM, names, 0, &v, index, sizeof(v), err, errlen);
}

int pc_opt_path(const pc_opt *map, const char *key, unsigned flags, const char **path, char *err,
                size_t errlen)
{
    const char *v;
    return scalar(map, key, PC_VAL_PATH, NULL, flags, &v, path, sizeof(v), err, errlen);
}

int pc_opt_cidrs(const pc_opt *map, const char *key, pc_cidr_list *out, char *err, size_t errlen)
{
    const pc_opt *n = given(map, key);
    if (!n)
        return 0;
    pc_arena *a = pc_arena_new();
    pc_netlist l = {0};
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int r = pc_config_value(a, n, key, PC_VAL_NETS, NULL, 0, &l, err, errlen);
    pc_cidr *v = NULL;
    if (r == 0 && l.n && !(v = malloc(l.n * sizeof(*v)))) {
        snprintf(err, errlen, "out of memory");
        r = -1;
    }
    if (r == 0) {
        if (l.n)
            memcpy(v, l.v, l.n * sizeof(*v));
        *out = (pc_cidr_list){v, l.n};
    }
    pc_arena_free(a);
    return r < 0 ? -1 : 1;
}

/* A string list in one block: the pointers, then the strings. */
static int strings(const pc_opt *map, const char *key, pc_value_kind kind, unsigned flags,
                   pc_str_list *out, char *err, size_t errlen)
{
    const pc_opt *n = given(map, key);
    if (!n)
        return 0;
    pc_arena *a = pc_arena_new();
    pc_strlist l = {0};
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int r = pc_config_value(a, n, key, kind, NULL, flags, &l, err, errlen);
    size_t bytes = l.n * sizeof(char *);
    for (size_t i = 0; r == 0 && i < l.n; i++)
        bytes += strlen(l.v[i]) + 1;
    char **v = NULL;
    if (r == 0 && l.n && !(v = malloc(bytes))) {
        snprintf(err, errlen, "out of memory");
        r = -1;
    }
    if (r == 0) {
        char *p = v ? (char *)(v + l.n) : NULL; /* an empty list has no block */
        for (size_t i = 0; i < l.n; i++) {
            size_t len = strlen(l.v[i]) + 1;
            v[i] = memcpy(p, l.v[i], len);
            p += len;
        }
        *out = (pc_str_list){v, l.n};
    }
    pc_arena_free(a);
    return r < 0 ? -1 : 1;
}

int pc_opt_addresses(const pc_opt *map, const char *key, pc_str_list *out, char *err, size_t errlen)
{
    return strings(map, key, PC_VAL_ADDRESSES, 0, out, err, errlen);
}

int pc_opt_domains(const pc_opt *map, const char *key, unsigned flags, pc_str_list *out, char *err,
                   size_t errlen)
{
    return strings(map, key, PC_VAL_DOMAINS, flags, out, err, errlen);
}

int pc_cidr_match(const pc_cidr_list *l, const struct sockaddr *addr)
{
    return pc_netlist_match(l, addr);
}

void pc_cidr_list_free(pc_cidr_list *l)
{
    if (l) {
        free(l->v);
        *l = (pc_cidr_list){0};
    }
}

void pc_str_list_free(pc_str_list *l)
{
    if (l) {
        free(l->v);
        *l = (pc_str_list){0};
    }
}

int pc_opt_number(const pc_opt *map, const char *key, double min, double max, double *out,
                  char *err, size_t errlen)
{
    const pc_opt *n = given(map, key);
    if (!n)
        return 0;
    if (n->kind != PC_OPT_SCALAR)
        return pc_opt_error(err, errlen, n, "%s: expected a number", key);
    char *end;
    double d = strtod(n->value, &end);
    if (end == n->value || *end || d != d || d < min || d > max)
        return pc_opt_error(err, errlen, n, "%s: expected a number from %g to %g, got %.64s", key,
                            min, max, n->value);
    *out = d;
    return 1;
}
