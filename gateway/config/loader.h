/* loader.h — what the files of the configuration loader share, internal to config/: the strict
 * number and address parsers the tables use, and the YAML reader that builds the pc_opt tree.
 * Nothing outside config/ includes it. */
#ifndef PC_CONFIG_LOADER_H
#define PC_CONFIG_LOADER_H

#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

/* Strict decimal: digits only, no sign, no spaces; *end gets the first non-digit. 0 or -1. */
int pc_cfg_parse_u64(const char *s, unsigned long long *out, const char **end);
/* "host", "host:port" or "[v6]:port" into host (NUL-terminated) and *port (0 when absent and
 * allow_noport). 0 or -1. */
int pc_cfg_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port,
                          int allow_noport);
/* A DNS name of letters, digits, '-', '.' and '_' (at most 253 bytes, no empty label). */
int pc_cfg_valid_hostname(const char *s);
/* "user@domain", "@domain" or "domain": a local part of RFC 5322 atext, dots and UTF-8 (at most
 * 64 bytes), and a DNS name. */
int pc_cfg_valid_mailaddr(const char *s);
/* The protocol's well-known port for a listener or upstream URL. */
uint16_t pc_cfg_default_port(pc_proto proto, pc_tls_mode tls);
/* Reads YAML from f into a pc_opt tree allocated in a (every node with file and line). NULL with
 * "FILE:LINE: problem" in err. */
pc_opt *pc_cfg_build_tree(pc_arena *a, FILE *f, const char *file, char *err, size_t errlen);

#endif
