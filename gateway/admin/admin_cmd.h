/* admin_cmd.h — one request line of the admin socket, parsed: pure, bounded, fuzzed
 * (tests/fuzz/fuzz_admin_cmd.c). The grammar (words separated by one space, line without CRLF):
 *
 *     quarantine list [rcpt=ADDR] [since=UNIXTIME]
 *     quarantine show ID
 *     quarantine release ID [rcpt=ADDR]
 *     quarantine delete ID
 *
 * An ID is 32 lower-case hex digits; ADDR is at most PC_ADMIN_ADDR_MAX bytes of printable
 * characters without spaces. Anything else is refused. */
#ifndef PC_ADMIN_CMD_H
#define PC_ADMIN_CMD_H

#include <stddef.h>

#define PC_ADMIN_LINE_MAX 4096
#define PC_ADMIN_ADDR_MAX 512

typedef enum {
    PC_ADMIN_LIST = 1,
    PC_ADMIN_SHOW,
    PC_ADMIN_RELEASE,
    PC_ADMIN_DELETE,
} pc_admin_verb;

typedef struct pc_admin_cmd {
    pc_admin_verb verb;
    char id[33];                      /* show, release, delete */
    char rcpt[PC_ADMIN_ADDR_MAX + 1]; /* list, release: "" = all */
    long long since;                  /* list: 0 = all */
} pc_admin_cmd;

/* Parses len bytes of line (borrowed). 0, or -1 with why in err. */
int pc_admin_cmd_parse(pc_admin_cmd *c, const char *line, size_t len, char *err, size_t errlen);

#endif
