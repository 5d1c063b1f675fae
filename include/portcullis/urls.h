/* urls.h — for filters: the host names of http and https URLs in a text, for URI lists (SURBL/URIBL
 * style): pure, bounded, no allocation. */
#ifndef PORTCULLIS_URLS_H
#define PORTCULLIS_URLS_H

#include <stddef.h>

#define PC_URL_HOST_MAX 253

/* Calls cb(ud, host, len) once for each distinct host (lower case, no trailing dot, at least two
 * labels, not an address literal) of an "http://" or "https://" URL in p[0..n), in order of first
 * appearance, at most max of them (max <= 64). A user part ("user@host") and a port are skipped.
 * Returns the number of hosts reported. */
size_t pc_url_hosts(const char *p, size_t n, size_t max,
                    void (*cb)(void *ud, const char *host, size_t len), void *ud);

#endif
