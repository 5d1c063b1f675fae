/* policy_cmd.h — the policy files for main.c: loaded and checked at start and in -t, and the
 * `portcullis policy explain` command (policy_cmd.c). */
#ifndef PC_POLICY_CMD_H
#define PC_POLICY_CMD_H

#include <stddef.h>

#include "config/config.h"

struct pc_policy_set;
/* Loads cfg->policies_dir and checks it against the listeners. NULL when there is no policies:
 * key (err empty) or on error (err set). */
struct pc_policy_set *pc_policies_open(const pc_config *cfg, char *err, size_t errlen);
/* argv[0] is "policy". Returns the exit status. */
int pc_policy_command(int argc, char **argv);

#endif
