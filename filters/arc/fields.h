/* fields.h — reading ARC header fields (RFC 8617): pure, bounded, no allocation.
 *
 * Work in progress: the arc filter (verify, seal, the trusted-sealer override DMARC reads) is
 * not built yet; see the note on the filters issue. */
#ifndef PC_ARC_FIELDS_H
#define PC_ARC_FIELDS_H

#include <stddef.h>

#define PC_ARC_MAX_INSTANCE 50 /* RFC 8617 §4.2.1 */

/* The instance of an ARC-Authentication-Results value ("i=N; authserv-id; ..."): N in
 * 1..PC_ARC_MAX_INSTANCE, or -1. */
int pc_arc_aar_instance(const char *v, size_t n);

/* Copies the field f[0..n) into out with the value of its b= tag removed (bh= kept), as the
 * signature's input needs (RFC 6376 §3.7). out holds at least n bytes. Returns the new length, or
 * (size_t)-1 when there is no b= tag. */
size_t pc_arc_strip_b(const char *f, size_t n, char *out);

/* The relaxed canonical form (RFC 6376 §3.4.2) of the field f[0..n) ("Name: value", folding
 * included): the name in lower case, unfolded, runs of white space as one space, none at the end
 * or around the colon; with crlf, CRLF appended. out holds at least n + 3 bytes. Returns the
 * length, or (size_t)-1 when f has no colon. */
size_t pc_arc_canon_relaxed(const char *f, size_t n, int crlf, char *out);

/* What a sealer's ARC-Authentication-Results value aar (unfolded, NUL-terminated) recorded as
 * passing, appended to out as space-separated "METHOD:DOMAIN:SEALER" entries (METHOD dmarc:
 * header.from; dkim: header.d or the domain of header.i; spf: the domain of smtp.mailfrom).
 * Domains are lower-cased and only letters, digits, '-', '_' and '.' are accepted. Returns the
 * number of entries added; entries that do not fit are left out. */
int pc_arc_vouch(const char *aar, const char *sealer, char *out, size_t outlen);

#endif
