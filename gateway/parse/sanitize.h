/* sanitize.h — the one place raw network bytes are made safe to echo into a reply, a header
 * (Received, XCLIENT, Authentication-Results) or a log line. Pure; no allocation. */
#ifndef PC_SANITIZE_H
#define PC_SANITIZE_H

#include <stddef.h>

/* Copies at most outlen-1 bytes of src (srclen bytes) into out, NUL-terminated: CR, LF, NUL and
 * other control bytes become '?', bytes >= 0x80 are kept only if keep8bit, otherwise '?'. If src is
 * longer, the copy ends with "...". Returns out. */
char *pc_sanitize(char *out, size_t outlen, const char *src, size_t srclen, int keep8bit);

/* xtext (RFC 3461 §4) for XCLIENT attribute values: '+', '=', controls, space and >= 0x7f are
 * encoded as +XX. Returns the length written (without NUL), or -1 if out is too small. */
int pc_xtext_encode(char *out, size_t outlen, const char *src, size_t srclen);

#endif
