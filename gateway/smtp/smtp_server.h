/* smtp_server.h — the client-facing SMTP session: ESMTP state machine, limits, STARTTLS, AUTH
 * relay, relay control, DATA into the spool, the filter chain at every hook, and the hand-off to
 * the upstream client. */
#ifndef PC_SMTP_SERVER_H
#define PC_SMTP_SERVER_H

#include "core/listener.h"
#include "net/conn.h"

/* Takes over an accepted connection (peer/local filled). The session owns conn from now on. */
void pc_smtp_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client);

/* The protocol as the accept path sees it (core/listener.h). */
extern const pc_protocol pc_smtp_protocol;

#endif
