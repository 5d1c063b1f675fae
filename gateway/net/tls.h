/* tls.h — OpenSSL 3 contexts: one server context per listener (several certificates chosen by SNI)
 * and one client context per upstream. Safe defaults: TLS 1.2 minimum, Mozilla intermediate
 * ciphers, no renegotiation, no compression, session tickets on, SSL_MODE_RELEASE_BUFFERS for idle
 * connections. Contexts are immutable once built and shared by all worker threads; a reload builds
 * new ones. */
#ifndef PC_TLS_H
#define PC_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "config/config.h"

/* Returns a new context or NULL with a reason in err (naming the file that failed to load). */
SSL_CTX *pc_tls_server_ctx(const pc_tls_cfg *cfg, char *err, size_t errlen);
/* Client context for an upstream: verification of the chain (ca_file or the system store) when
 * u->verify, optional client certificate. */
SSL_CTX *pc_tls_client_ctx(const pc_upstream_cfg *u, char *err, size_t errlen);

#endif
