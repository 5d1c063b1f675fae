/* imap_server.h — the client-facing IMAP session: pre-login answered by the gateway (CAPABILITY,
 * STARTTLS, LOGIN, AUTHENTICATE PLAIN, ID, NOOP, LOGOUT), the login relayed to the upstream, then
 * a literal-aware relay in both directions with the retrieve hook on whole-message FETCHes. */
#ifndef PC_IMAP_SERVER_H
#define PC_IMAP_SERVER_H

#include "core/listener.h"
#include "net/conn.h"

/* Takes over an accepted connection (peer/local filled). The session owns conn from now on. */
void pc_imap_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client);

/* The protocol as the accept path sees it (core/listener.h). */
extern const pc_protocol pc_imap_protocol;

#endif
