/* policy.h — the policy layer: the policy files of a directory (`policies: DIR`), every `*.yaml` of
 * it in name order, each a list of policies; which policy applies to one case (listener,
 * direction, sender, recipient, user, client address) and where each of its settings came from.
 *
 * A set is immutable once loaded and shared read-only by every worker; it owns every string and
 * list of its policies. Errors name the file and line: "FILE:LINE: KEY: problem".
 *
 * The rule for "most specific" (docs/configuration.md, "Policies") compares, in this order:
 *  1. the number of match keys the policy gives (listener, direction, recipient, sender, user,
 *     network): more wins;
 *  2. the recipient: a policy that matched it by its address beats one that matched it by its
 *     domain;
 *  3. the sender, the same way;
 *  4. the network: the longer prefix of the network that matched the client wins;
 *  5. the higher `priority`;
 *  6. the earlier policy (files by name, then the order in the file).
 * A policy without `match` is a default: it matches everything with the least specificity. */
#ifndef PC_POLICY_H
#define PC_POLICY_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "config/config.h"
#include "portcullis/options.h"

typedef enum { PC_DIR_ANY = 0, PC_DIR_INBOUND, PC_DIR_SUBMISSION } pc_direction;

/* The settings whose origin explain reports, in its order. */
typedef enum {
    PC_PSET_SCORES_TAG,
    PC_PSET_SCORES_QUARANTINE,
    PC_PSET_SCORES_REJECT,
    PC_PSET_ALLOW_SENDERS,
    PC_PSET_ALLOW_NETWORKS,
    PC_PSET_DENY_SENDERS,
    PC_PSET_MESSAGE_SIZE,
    PC_PSET__COUNT
} pc_policy_setting;

typedef struct pc_policy {
    const char *name;
    int priority;     /* default 0 */
    size_t order;     /* position in the set: files by name, then in the file */
    const pc_opt *at; /* the policy's map: its file and line */
    /* match; a key not given matches anything */
    const char *listener;
    pc_direction direction;
    pc_str_list recipient, sender; /* "user@domain", "@domain" or "domain" */
    pc_str_list user;
    pc_cidr_list network;
    unsigned nkeys; /* how many of the six match keys are given */
    /* settings */
    int has_scores;
    pc_scores_cfg scores; /* thresholds not given are 0 (not used) */
    pc_str_list allow_senders, deny_senders;
    pc_cidr_list allow_networks;
    size_t message_size;                  /* 0: the listener's limit */
    const pc_opt *set_at[PC_PSET__COUNT]; /* where each setting was given; NULL: not given */
} pc_policy;

typedef struct pc_policy_set pc_policy_set;

/* One case to decide. Strings may be NULL (unknown: a key that needs them does not match); the
 * sender "" is the null sender. ip may be NULL. */
typedef struct pc_policy_case {
    const char *listener;
    pc_direction direction;
    const char *sender, *rcpt, *user;
    const struct sockaddr *ip;
} pc_policy_case;

/* Loads every "*.yaml" of dir in name order (a directory without one is an empty set). NULL with
 * "FILE:LINE: KEY: problem" in err. */
pc_policy_set *pc_policy_load_dir(const char *dir, char *err, size_t errlen);
/* The same for one file's text (tests, the fuzz target); name stands for the file in errors. */
pc_policy_set *pc_policy_load_mem(const char *name, const void *buf, size_t len, char *err,
                                  size_t errlen);
void pc_policy_free(pc_policy_set *set);

size_t pc_policy_count(const pc_policy_set *set);
const pc_policy *pc_policy_at(const pc_policy_set *set, size_t i);

/* Checks what the set alone cannot: every match.listener names one of listeners (n names), and no
 * two policies of the same priority can match one case with the same specificity (the rule above
 * could only decide by file order: -t calls that an error). Returns 0, or -1 with
 * "FILE:LINE: problem" in err. */
int pc_policy_check(const pc_policy_set *set, const char *const *listeners, size_t n, char *err,
                    size_t errlen);

/* The policy that applies to c, or NULL when none matches. Borrowed from the set. */
const pc_policy *pc_policy_match(const pc_policy_set *set, const pc_policy_case *c);

/* Is sender (an address, "" for the null sender) in list? An entry "user@domain" is that address,
 * "@domain" or "domain" the whole domain; case-insensitive. */
int pc_policy_addr_in(const pc_str_list *list, const char *addr);

/* Writes, for c, the policy that applies, why it won, and each setting with the file:line it came
 * from ("listener default" for one the policy does not give) to out. Returns the policy or NULL. */
const pc_policy *pc_policy_explain(const pc_policy_set *set, const pc_policy_case *c, FILE *out);

#endif
