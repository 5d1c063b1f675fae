/* pop3_retr.h — a RETR or TOP that goes through the retrieve hook, as an object of the session: the
 * UIDL and LIST asked first (the verdict cache's key and the size bound), the body read into a
 * spool, the chain run on the sealed message, and what is served (the message, with the filters'
 * changes, or the notice that stands in for it). It answers the client itself and reports back to
 * the session through the session's ops (pop3_session.h). */
#ifndef PC_POP3_RETR_H
#define PC_POP3_RETR_H

typedef struct p3sess p3sess;

/* Starts the RETR/TOP in s->cmd: through the hook when a filter of this listener uses it, else
 * relayed as it is. */
void p3_retrieve(p3sess *s);
/* Frees the retrieval and what it holds (the session's end). */
void p3_retr_free(p3sess *s);
/* A body is being served to the client (paced by its draining). */
int p3_retr_serving(const p3sess *s);
/* Serves more of the body once the client has drained its output. */
void p3_serve_pump(p3sess *s);

#endif
