/* tags.h — DKIM tag-lists (RFC 6376 §3.2: "tag=value; tag=value"): pure, bounded, no allocation. */
#ifndef PC_DKIM_TAGS_H
#define PC_DKIM_TAGS_H

#include <stddef.h>

/* Copies the value of tag in the tag-list v (white space around names and values dropped, folding
 * inside a value removed) into out. Returns its length, or -1 when the tag is absent, repeated, or
 * its value does not fit. */
long pc_dkim_tag(const char *v, const char *tag, char *out, size_t outlen);

#endif
