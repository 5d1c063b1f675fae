/* imap_server_relay.h — the IMAP session from the login on (imap_server_relay.c): what the
 * session before login (imap_server.c) calls. The relay reports back to the session only through
 * the helpers of imap_server_session.c (is_close, is_process: the session's ops), and drives the
 * retrieve and append objects (imap_retrieve.h, imap_append.h) through their own functions. */
#ifndef PC_IMAP_SERVER_RELAY_H
#define PC_IMAP_SERVER_RELAY_H

#include "imap/imap_server_session.h"

/* Sets up the objects the relay drives (at session start). */
void is_relay_init(isess *s);
/* Opens the upstream for the login in s->cred / s->login_tag (phase IP_UPOPEN, then IP_LOGIN;
 * back to IP_PRE with a NO when it fails). */
void is_login_start(isess *s);
/* Client input after login (phase IP_RELAY). */
void is_relay_client(isess *s);
/* The client's write queue drained: the pump, upstream reading, input go on. */
void is_client_drained(isess *s);
/* Frees what the relay holds: the objects, the results, the upstream. */
void is_relay_free(isess *s);

/* Used within the relay's file and by the ops it hands the objects. */
void is_relay_upstream(isess *s);
void is_up_event(pc_conn *c, pc_conn_event ev, void *ud);

#endif
