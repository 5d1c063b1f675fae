/* keycache.h — the cache of decoded public keys behind libopendkim's d2i_PUBKEY_bio (keycache.c).
 */
#ifndef PC_DKIM_KEYCACHE_H
#define PC_DKIM_KEYCACHE_H

/* Drops every cached key (at the filter's end: nothing is left for the leak checker). */
void pc_dkim_keycache_clear(void);

#endif
