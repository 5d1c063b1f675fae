/* imap_client.h — opening an IMAP session towards the upstream, up to the point where a login can
 * be sent: connect, PROXY v2 header (identity proxy), implicit TLS or STARTTLS (fail closed),
 * greeting (PREAUTH refused), CAPABILITY (kept in the listener's caps_*, never the plaintext
 * answer read before STARTTLS), ID x-originating-ip
 * (identity imap_id). Then the caller takes the connection over and relays through it. */
#ifndef PC_IMAP_CLIENT_H
#define PC_IMAP_CLIENT_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/listener.h"
#include "net/conn.h"

/* Upstream capability flags kept in pc_listener_rt.caps_flags. */
enum {
    PC_IMAPCAP_LITPLUS = 1u << 0,
    PC_IMAPCAP_LITMINUS = 1u << 1,
    PC_IMAPCAP_SASLIR = 1u << 2,
    PC_IMAPCAP_AUTHPLAIN = 1u << 3,
    PC_IMAPCAP_STARTTLS = 1u << 4,
    PC_IMAPCAP_LOGINDISABLED = 1u << 5,
    PC_IMAPCAP_IDLE = 1u << 6,
};

/* Largest response line (outside literals) accepted from the upstream. */
#define PC_IMAPC_MAX_LINE (1024 * 1024)
#define PC_IMAPC_IN_MAX (PC_IMAPC_MAX_LINE + 64 * 1024)

typedef enum { PC_IMAPC_OK, PC_IMAPC_UNAVAILABLE, PC_IMAPC_PROTOCOL } pc_imapc_status;
typedef void (*pc_imapc_cb)(void *ud, pc_imapc_status st);

typedef struct pc_imapc_params {
    pc_listener_rt *l;
    uint64_t sid;
    struct sockaddr_storage client; /* for PROXY and ID */
    struct sockaddr_storage local;
    int send_id; /* identity imap_id: send ID x-originating-ip */
} pc_imapc_params;

typedef struct pc_imapc pc_imapc;

/* Starts opening; cb is called exactly once unless pc_imapc_free() comes first (not from within
 * cb on a failure: then free after cb returns is fine too). Returns NULL when nothing could start.
 */
pc_imapc *pc_imapc_open(const pc_imapc_params *p, pc_imapc_cb cb, void *ud);
/* After PC_IMAPC_OK: hands the connection over (callbacks set to cb/ud, reading stopped) and
 * frees the opener. */
pc_conn *pc_imapc_take(pc_imapc *c, pc_conn_cb cb, void *ud);
/* Gives up: closes the connection (politely with LOGOUT when it is ready) and frees. NULL ok. */
void pc_imapc_free(pc_imapc *c);
/* Closes a connection taken with pc_imapc_take: no more events reach its owner. */
void pc_imapc_close_conn(pc_conn *conn);

/* Reads the upstream's capabilities once (worker start and reload) into l->caps_*. */
void pc_imap_probe(pc_listener_rt *l);

#endif
