/* options.h — a filter's options as the configuration gave them: a small read-only tree of maps,
 * sequences and scalars, each with the line it came from so that a filter can name it in an error.
 * The tree is owned by the configuration snapshot and lives as long as the filter instance. */
#ifndef PORTCULLIS_OPTIONS_H
#define PORTCULLIS_OPTIONS_H

#include <stddef.h>

typedef enum { PC_OPT_SCALAR, PC_OPT_MAP, PC_OPT_SEQ } pc_opt_kind;

typedef struct pc_opt {
    pc_opt_kind kind;
    const char *key;   /* key in the parent map, NULL in a sequence or at the root */
    const char *value; /* scalars only, NUL-terminated */
    int line;          /* 1-based line in file, 0 when from the command line */
    const char *file;
    struct pc_opt *child; /* first child (map entries or sequence items) */
    struct pc_opt *next;  /* next sibling */
} pc_opt;

/* Map lookup by key; NULL if absent or opt is not a map. */
const pc_opt *pc_opt_get(const pc_opt *map, const char *key);
/* Scalar value of map[key], or def if absent. */
const char *pc_opt_str(const pc_opt *map, const char *key, const char *def);

#endif
