/* admin.h — the admin socket: a UNIX stream socket (mode and group from the `admin:` section) on
 * the main thread's loop, never a worker's, serving the quarantine commands of admin_cmd.h to
 * portcullisctl(8). One command per line (at most PC_ADMIN_LINE_MAX bytes), answered before the
 * next is read; a client that sends no complete line within admin.timeout is dropped; at most
 * admin.max_clients at once. Every command is logged with the peer's credentials (SO_PEERCRED).
 * Directory reads and writes run on the threadpool; a release is sent upstream from this loop.
 *
 * Reply: zero or more record lines, "TYPE\tkey=value\tkey=value...", values sanitised (no tab, CR,
 * LF or other controls), then one final line: "ok N" (N records) or "error CODE text" with CODE
 * one of bad-request, not-found, already-released, failed, upstream, busy. */
#ifndef PC_ADMIN_H
#define PC_ADMIN_H

#include <openssl/ssl.h>
#include <uv.h>

#include "config/config.h"

typedef struct pc_admin pc_admin;

/* Binds the socket (a stale one, that nobody answers on, is replaced) and starts serving on loop.
 * upstream_tls: the listeners' upstream TLS contexts (borrowed, per listener, NULL entries for
 * none), for releases. NULL with why in err. */
pc_admin *pc_admin_start(uv_loop_t *loop, const pc_config *cfg, SSL_CTX **upstream_tls, char *err,
                         size_t errlen);
/* Stops accepting, closes every client (a release under way finishes first: its handles keep the
 * loop alive), removes the socket file. NULL is fine. */
void pc_admin_stop(pc_admin *a);

#endif
