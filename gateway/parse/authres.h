/* authres.h — reading Authentication-Results values (RFC 8601): pure, bounded, no allocation. */
#ifndef PC_PARSE_AUTHRES_H
#define PC_PARSE_AUTHRES_H

#include <stddef.h>

/* The authserv-id an Authentication-Results value claims: its first token (RFC 8601 §2.2: the
 * value up to ';' or white space, comments skipped), copied into out. 0, or -1 when it has none. */
int pc_authres_id(const char *value, char *out, size_t outlen);

#endif
