/* ctl_reply.h — portcullisctl's reader of the admin socket's reply lines (gateway/admin/admin.h):
 * "TYPE\tkey=value\t..." records and the final "ok N" / "error CODE text". Pure, bounded (at most
 * CTL_FIELDS fields a record), fuzzed (tests/fuzz/fuzz_ctl_reply.c); slices point into the line. */
#ifndef PC_CTL_REPLY_H
#define PC_CTL_REPLY_H

#include <stddef.h>

#define CTL_FIELDS 32

typedef struct ctl_slice {
    const char *p;
    size_t n;
} ctl_slice;

typedef enum { CTL_RECORD = 1, CTL_OK, CTL_ERROR, CTL_BAD } ctl_kind;

typedef struct ctl_line {
    ctl_kind kind;
    ctl_slice type;            /* RECORD: its type; ERROR: the code */
    ctl_slice key[CTL_FIELDS]; /* RECORD */
    ctl_slice value[CTL_FIELDS];
    size_t n;       /* RECORD: fields; OK: the count */
    ctl_slice text; /* ERROR: the text */
} ctl_line;

/* Parses one line (without its LF; borrowed). Returns the kind (also in l->kind). */
ctl_kind ctl_parse_line(ctl_line *l, const char *p, size_t n);
/* The value of key in a RECORD, or NULL (*len 0). */
const char *ctl_get(const ctl_line *l, const char *key, size_t *len);

#endif
