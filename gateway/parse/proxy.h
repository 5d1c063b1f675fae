/* proxy.h — the PROXY protocol (HAProxy's spec, v1 text and v2 binary): parsing the header a
 * trusted load balancer puts before the client's bytes, and building the v2 header the gateway
 * sends to an upstream (Postfix smtpd_upstream_proxy_protocol, Dovecot haproxy). Pure functions. */
#ifndef PC_PROXY_H
#define PC_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

#define PC_PROXY_V1_MAX 107  /* the v1 line, CRLF included */
#define PC_PROXY_V2_MAX 1024 /* largest v2 header accepted, TLVs included */

typedef struct pc_proxy_info {
    int version;                 /* 1 or 2 */
    int local;                   /* v2 LOCAL or v1 UNKNOWN: keep the socket's own addresses */
    struct sockaddr_storage src; /* the client */
    struct sockaddr_storage dst; /* the address the client connected to */
} pc_proxy_info;

/* Parses a header at the start of buf. Returns PC_OK (*consumed = header length), PC_NEED_MORE
 * (not enough bytes yet, and what is there is a valid prefix), or PC_INVALID. Only TCP over IPv4
 * and IPv6 (and LOCAL/UNKNOWN) are accepted; TLVs are skipped. */
int pc_proxy_parse(const unsigned char *buf, size_t len, pc_proxy_info *info, size_t *consumed);

/* Builds a v2 PROXY header (command PROXY, TCP) for src -> dst, which must be the same family.
 * Returns its length, or 0 if outlen is too small or the families differ. */
size_t pc_proxy_v2_build(unsigned char *out, size_t outlen, const struct sockaddr *src,
                         const struct sockaddr *dst);

#endif
