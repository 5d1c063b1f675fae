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

/* ---- typed readers ---------------------------------------------------------------------------
 * The configuration loader's own value parsers and checks, for a filter's options: the same
 * grammar as the file (docs/configuration.md, "Rules for every key") and the same errors,
 * "FILE:LINE: KEY: problem" ("command line: KEY: problem" for a node without a line; list items
 * are named KEY[i]).
 *
 * Each reads map[key] (map may be NULL). Absent, or given without a value ("key:", "~"): *out is
 * left as it is (set the default first) and the reader returns 0. A valid value is stored in *out
 * and the reader returns 1. Otherwise it returns -1, writes the error into err and leaves *out
 * unchanged. Lists take a YAML list or a single string (a list of one). */

/* A network: ADDRESS/PREFIX or one address; host bits cleared, IPv4-mapped IPv6 stored as IPv4. */
typedef struct pc_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
} pc_cidr;

/* Lists filled by the readers are allocated with malloc: the caller owns them and frees them with
 * pc_cidr_list_free / pc_str_list_free (each frees one block and zeroes the list). */
typedef struct pc_cidr_list {
    pc_cidr *v;
    size_t n;
} pc_cidr_list;

typedef struct pc_str_list {
    char **v;
    size_t n;
} pc_str_list;

enum {
    PC_OPT_BELOW = 1,    /* pc_opt_domains: ".example.com" stands for any name below it */
    PC_OPT_ABSOLUTE = 2, /* pc_opt_path: an absolute path */
    PC_OPT_READABLE = 4, /* pc_opt_path: a file readable now (init runs before privileges drop) */
};

/* Writes "FILE:LINE: " and the message into err (line and file of at; "command line: " when at
 * has no line). Returns -1, so that `return pc_opt_error(...)` ends an init. */
int pc_opt_error(char *err, size_t errlen, const pc_opt *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* options must be a map (or NULL) whose keys are all in known (NULL-terminated). Errors:
 * "FILE:LINE: options must be a map", "FILE:LINE: unknown option KEY". Returns 0 or -1. */
int pc_opt_check_keys(const pc_opt *options, const char *const *known, char *err, size_t errlen);

/* "250ms", "30s", "5m", "1h", "1d"; a bare number is seconds; 0 is accepted. */
int pc_opt_duration(const pc_opt *map, const char *key, unsigned *ms, char *err, size_t errlen);
/* "512", "64K", "50M", "4G" (powers of 1024; "MB", "MiB" too). */
int pc_opt_size(const pc_opt *map, const char *key, size_t *out, char *err, size_t errlen);
/* A decimal number ("5", "-2.5", "1e3") in [min, max]: scores and weights. */
int pc_opt_number(const pc_opt *map, const char *key, double min, double max, double *out,
                  char *err, size_t errlen);
/* true/false, yes/no, on/off → 1/0. */
int pc_opt_bool(const pc_opt *map, const char *key, int *out, char *err, size_t errlen);
/* One of names (NULL-terminated); *index is its position. */
int pc_opt_enum(const pc_opt *map, const char *key, const char *const *names, int *index, char *err,
                size_t errlen);
/* Networks (see pc_cidr). On success *out is replaced: it must hold no list of its own. */
int pc_opt_cidrs(const pc_opt *map, const char *key, pc_cidr_list *out, char *err, size_t errlen);
/* Mail addresses and domains: "user@domain" (one address), "@domain" or "domain" (the whole
 * domain). Domains are DNS names (letters, digits, '-', '.', '_'; IDNs as xn-- labels). */
int pc_opt_addresses(const pc_opt *map, const char *key, pc_str_list *out, char *err,
                     size_t errlen);
/* DNS names; flags PC_OPT_BELOW allows a leading '.'. */
int pc_opt_domains(const pc_opt *map, const char *key, unsigned flags, pc_str_list *out, char *err,
                   size_t errlen);
/* A file path, checked by flags (PC_OPT_ABSOLUTE, PC_OPT_READABLE); *path is borrowed from the
 * tree and lives as long as the filter instance. */
int pc_opt_path(const pc_opt *map, const char *key, unsigned flags, const char **path, char *err,
                size_t errlen);

/* Does addr (AF_INET/AF_INET6; IPv4-mapped IPv6 matched as IPv4) fall in one of the networks? */
struct sockaddr;
int pc_cidr_match(const pc_cidr_list *l, const struct sockaddr *addr);
void pc_cidr_list_free(pc_cidr_list *l);
void pc_str_list_free(pc_str_list *l);

#endif
