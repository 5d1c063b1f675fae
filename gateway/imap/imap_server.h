/* imap_server.h — the client-facing IMAP session: pre-login answered by the gateway (CAPABILITY,
 * STARTTLS, LOGIN, AUTHENTICATE PLAIN, ID, NOOP, LOGOUT), the login relayed to the upstream, then
 * a literal-aware relay in both directions with the retrieve hook on whole-message FETCHes. */
#ifndef PC_IMAP_SERVER_H
#define PC_IMAP_SERVER_H

#include "conn.h"
#include "listener.h"

/* Takes over an accepted connection (peer/local filled). The session owns conn from now on. */
void pc_imap_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client);

#endif
