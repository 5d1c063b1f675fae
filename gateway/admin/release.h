/* release.h — a quarantined message sent on: one SMTP transaction to the upstream of the listener
 * that took it, with its original envelope (or some of its recipients), the filters skipped,
 * through the gateway's own upstream client (smtp/smtp_client.c). Runs on the admin loop. */
#ifndef PC_RELEASE_H
#define PC_RELEASE_H

#include <openssl/ssl.h>
#include <uv.h>

#include "config/config.h"
#include "core/upstream.h"
#include "portcullis/message.h"
#include "quarantine/qmeta.h"

/* rc 0: DATA was accepted (250) for the recipients whose ok[] is 1; rc -1: nothing was delivered,
 * text (borrowed, valid during the call) says why. */
typedef void (*pc_release_fn)(void *ud, int rc, const char *text);

/* Sends msg (borrowed until done) from m->from to each m->rcpts[i] with send[i] set; ok[i] becomes
 * 1 for each the upstream accepted (a recipient refused at RCPT is not sent to; the others are).
 * done is called exactly once, later. 0, or -1 when nothing started (done not called). */
int pc_release_send(uv_loop_t *loop, const pc_listener_cfg *lc, SSL_CTX *tls, pc_upstream *up,
                    const pc_qmeta *m, const unsigned char *send, unsigned char *ok,
                    pc_message *msg, pc_release_fn done, void *ud);

#endif
