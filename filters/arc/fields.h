/* fields.h — reading ARC header fields (RFC 8617): pure, bounded, no allocation.
 * The arc filter (arc.c) builds on them; the fuzz target tests/fuzz/fuzz_arc_fields.c runs them
 * over any bytes. */
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

/* The next header field of the header section p[0..n): its length with its folding but without the
 * line end that closes it in *flen; returns the bytes it takes with that line end (0 at the end of
 * p or at the empty line that ends the section). */
size_t pc_arc_next_field(const char *p, size_t n, size_t *flen);

/* Body canonicalisation (RFC 6376 §3.4.3 simple, §3.4.4 relaxed), fed in pieces of any size; the
 * canonical bytes go to emit(). Lines end at LF (a CR before it belongs to the line end); empty
 * lines are held back until a line with content follows, so the trailing ones never come out. */
typedef struct pc_arc_body {
    int relaxed;
    int content;              /* the current line has content */
    int wsp;                  /* relaxed: white space held back on the current line */
    int cr;                   /* a CR held back: a line end if LF follows */
    int any;                  /* a line with content has been emitted */
    unsigned long long empty; /* empty lines held back */
    void (*emit)(void *arg, const char *p, size_t n);
    void *arg;
} pc_arc_body;

void pc_arc_body_init(pc_arc_body *b, int relaxed, void (*emit)(void *, const char *, size_t),
                      void *arg);
void pc_arc_body_feed(pc_arc_body *b, const char *p, size_t n);
/* The end of the body: an unterminated last line gets its CRLF; an empty body is CRLF (simple)
 * or nothing (relaxed). */
void pc_arc_body_end(pc_arc_body *b);

#endif
