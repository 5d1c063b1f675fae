/* pop3_server.h — the client-facing POP3 session (pop3_server.c, pop3_retr.c): the gateway answers
 * everything before login itself, relays the mailbox commands to the upstream after login, and runs
 * RETR/TOP through the filter chain's retrieve hook. */
#ifndef PC_POP3_SERVER_H
#define PC_POP3_SERVER_H

#include "core/listener.h"
#include "net/conn.h"

/* Takes over an accepted connection of a POP3 listener (owns it from now on). */
void pc_pop3_session_start(pc_listener_rt *l, pc_conn *conn, const struct sockaddr_storage *client);

/* The protocol as the accept path sees it (core/listener.h). */
extern const pc_protocol pc_pop3_protocol;

#endif
