/* message.h — read-only access to the session, envelope and message for filters, the transaction's
 * shared results, and the few changes a filter may make (headers, whole-message replacement). All
 * strings returned are borrowed and valid until the hook is answered. */
#ifndef PORTCULLIS_MESSAGE_H
#define PORTCULLIS_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct pc_filter_ctx pc_filter_ctx;
typedef struct pc_message pc_message;

/* Session. */
uint64_t pc_ctx_session_id(const pc_filter_ctx *ctx);
const char *pc_ctx_protocol(const pc_filter_ctx *ctx);               /* "smtp", "pop3", "imap" */
const char *pc_ctx_listener(const pc_filter_ctx *ctx);               /* listener name */
const struct sockaddr *pc_ctx_client_addr(const pc_filter_ctx *ctx); /* from PROXY when trusted */
const char *pc_ctx_client_ip(const pc_filter_ctx *ctx);              /* "192.0.2.1" */
int pc_ctx_tls(const pc_filter_ctx *ctx);                            /* TLS active */
const char *pc_ctx_user(const pc_filter_ctx *ctx); /* authenticated user or NULL */
int pc_ctx_trusted(const pc_filter_ctx *ctx);      /* the client is in trusted_networks */
/* The authserv-id the gateway writes its Authentication-Results with on this listener. */
const char *pc_ctx_authserv_id(const pc_filter_ctx *ctx);
/* Bytes the client sent that the session has not read yet (pregreet detection). */
size_t pc_ctx_pending_input(const pc_filter_ctx *ctx);

/* Envelope (SMTP; NULL or 0 where not known yet). */
const char *pc_ctx_helo(const pc_filter_ctx *ctx);
const char *pc_ctx_sender(const pc_filter_ctx *ctx); /* "" for the null sender */
const char *pc_ctx_rcpt(const pc_filter_ctx *ctx);   /* at PC_HOOK_RCPT: the one being checked */
size_t pc_ctx_rcpt_count(const pc_filter_ctx *ctx);  /* accepted so far */
const char *pc_ctx_rcpt_at(const pc_filter_ctx *ctx, size_t i);

/* Shared results of the transaction: what earlier filters found, readable by later ones. */
int pc_ctx_result_set(pc_filter_ctx *ctx, const char *key, const char *value);
const char *pc_ctx_result_get(const pc_filter_ctx *ctx, const char *key);
/* Adds a symbol with its score to the transaction's findings (a filter may add several; the
 * verdict's own symbol and score come on top). In monitor mode it is logged only. 0 or -1. */
int pc_ctx_symbol(pc_filter_ctx *ctx, const char *symbol, double score);
/* This filter's slot for state that lives as long as the session (lookups started at CONNECT and
 * read at MESSAGE, say): *slot starts NULL; what the filter puts there it frees itself at the
 * CLOSE hook (subscribe to it) or in cancel() when the CLOSE run is cancelled. NULL when the
 * session is gone. Valid during run() and the callbacks of this hook. */
void **pc_ctx_session_state(pc_filter_ctx *ctx);
/* Records one method's result for the message's Authentication-Results header (RFC 8601), e.g.
 * "spf=pass smtp.mailfrom=example.com": one resinfo, printable US-ASCII without ';' (the gateway
 * writes the header once, with its authserv-id, folding it). At most 64 per transaction. 0 or -1.
 */
int pc_ctx_authres(pc_filter_ctx *ctx, const char *resinfo);
double pc_ctx_score(const pc_filter_ctx *ctx);
/* Symbols seen so far, by index (NULL past the end). */
const char *pc_ctx_symbol_at(const pc_filter_ctx *ctx, size_t i);

/* The message, at PC_HOOK_MESSAGE, PC_HOOK_RETRIEVE and PC_HOOK_DELIVER; NULL at other hooks. It is
 * sealed when the hook starts: the bytes received never change again; header changes are layered on
 * top and a replacement is a new set of bytes. The functions below run on the session's loop
 * thread, except pc_message_ref/unref, pc_message_map and pc_message_fd (any thread, with a
 * reference). */
pc_message *pc_ctx_message(pc_filter_ctx *ctx);

/* References. The message lives (and its bytes stay charged to the spool budgets) until the last
 * reference is dropped, even after the hook timed out and the session went on. Work handed to
 * pc_filter_offload() during the hook holds one by itself until its after() returned; take your
 * own to keep the message longer. Returns m. */
pc_message *pc_message_ref(pc_message *m);
void pc_message_unref(pc_message *m);
/* The sealed bytes (the message as received, or as last replaced, without the header changes
 * layered on top), read-only and without a copy: memory, or the spool file mapped. Valid while the
 * caller holds a reference, even if the message is replaced meanwhile. NULL (len 0) on error. */
const void *pc_message_map(pc_message *m, size_t *len);
/* The same bytes as a file descriptor from offset 0 (for scanners that take one), or -1 when they
 * are in memory (use pc_message_map). Owned by the message: read it with pread() only, never
 * close it; valid as pc_message_map's result is. */
int pc_message_fd(pc_message *m);
/* Size of the message as it will be sent on (with header changes). */
size_t pc_message_size(const pc_message *m);
/* Reads the message as it will be sent on, from off. Returns bytes read, 0 at the end, -1 error. */
ssize_t pc_message_read(const pc_message *m, size_t off, void *buf, size_t len);
/* The header section as it will be sent on (the gateway's and the filters' fields included), each
 * field with its CRLF, without the empty line that ends it: a malloc'd copy the caller frees (it
 * may then go to the threadpool), NUL-terminated; *len its length. NULL when it is longer than max
 * or memory is short. */
char *pc_message_header_section(const pc_message *m, size_t max, size_t *len);
/* The i-th (0-based) field named name (case-insensitive), unfolded value without the name and
 * colon, copied into out (NUL-terminated, truncated). Returns its full length or -1 if absent. */
ssize_t pc_message_header(const pc_message *m, const char *name, size_t i, char *out,
                          size_t outlen);
/* The domain of the address in the message's single From field, in lower case, into out: 0; -1
 * when there is no From field or no domain in it, -2 when there are several From fields (DMARC and
 * DKIM signing treat that as its own case). */
int pc_message_from_domain(const pc_message *m, char *out, size_t outlen);
/* Adds a field at the top (value must not contain CR/LF except as proper folding). 0 or -1. */
int pc_message_add_header(pc_message *m, const char *name, const char *value);
/* Removes the i-th field named name. 0, or -1 if absent. */
int pc_message_remove_header(pc_message *m, const char *name, size_t i);
/* Replaces the whole message (headers and body) by data (copied, canonical CRLF). 0 or -1. */
int pc_message_replace(pc_message *m, const void *data, size_t len);

#endif
