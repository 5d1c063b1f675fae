/* imap_flow.h — the output batch and flow-control thresholds the IMAP session, its relay and the
 * retrieve and append objects share. Constants only. */
#ifndef PC_IMAP_FLOW_H
#define PC_IMAP_FLOW_H

#define IMAP_CHUNK 65536              /* writes are batched up to this many bytes */
#define IMAP_HIGH_WATER (1024 * 1024) /* a source stops being read above this write queue */

#endif
