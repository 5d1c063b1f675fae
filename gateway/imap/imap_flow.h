/* imap_flow.h — the output batch and flow-control thresholds the IMAP session, its relay and the
 * retrieve and append objects share. Constants only. */
#ifndef PC_IMAP_FLOW_H
#define PC_IMAP_FLOW_H

#define IMAP_CHUNK 65536              /* writes are batched up to this many bytes */
#define IMAP_HIGH_WATER (1024 * 1024) /* a source stops being read above this write queue */
/* Commands relayed and not yet answered: past this, the client's next command stays unread (in
 * the conn's bounded buffer, then in the socket) until an answer comes back. Nor is a new command
 * taken while more than IMAP_CHUNK of answers wait for the client: small answers would otherwise
 * pile up in its write queue, one write each, up to IMAP_HIGH_WATER. */
#define IMAP_PIPELINE_MAX 64

#endif
