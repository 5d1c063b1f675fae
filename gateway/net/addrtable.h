/* addrtable.h — counters per client address shared by all worker threads: connections in flight,
 * TLS handshakes per minute, failed logins. A fixed-size hash table under one mutex; old entries
 * are reused, so memory stays flat whatever the number of addresses. */
#ifndef PC_ADDRTABLE_H
#define PC_ADDRTABLE_H

#include <stdint.h>
#include <sys/socket.h>

typedef enum {
    PC_CNT_CONNS,
    PC_CNT_HANDSHAKES,
    PC_CNT_AUTHFAIL,
    PC_CNT_PREGREET,
    PC_CNT__MAX
} pc_counter;

/* Initialises the table (nslots entries, rounded up to a power of two). Call once before workers.
 */
int pc_addrtable_init(unsigned nslots);
/* Connections in flight: +1 / -1. pc_addr_conn_inc returns the count after the increment. */
unsigned pc_addr_conn_inc(const struct sockaddr *sa);
void pc_addr_conn_dec(const struct sockaddr *sa);
/* Events in a sliding window of window_s seconds: records one and returns how many are in the
 * window now, this one included. */
unsigned pc_addr_event(const struct sockaddr *sa, pc_counter which, unsigned window_s);
/* Raises the count in the window to at least n (what other gateways saw, from the state store),
 * as events of this second. */
void pc_addr_raise(const struct sockaddr *sa, pc_counter which, unsigned window_s, unsigned n);
/* Count in the window without recording. */
unsigned pc_addr_count(const struct sockaddr *sa, pc_counter which, unsigned window_s);

/* Frees the table (at exit, once no worker uses it); the calls above then count nothing. */
void pc_addrtable_free(void);
/* Tests only: replaces the clock (whole seconds, never 0); NULL restores CLOCK_MONOTONIC. */
void pc_addrtable_set_clock(uint32_t (*now)(void));

#endif
