/* policy_cmd.c — the policy files at start and in -t (load, check against the listeners), and the
 * `portcullis policy explain` command: for one case given on the command line, the policy that
 * applies, why, and the file:line of each setting (the listener's own, from the configuration
 * file, for a setting the policy does not give). The direction is found as the SMTP session finds
 * it: submission for an authenticated user or a client in the listener's trusted_networks,
 * inbound otherwise. */
#include "policy_cmd.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "policies/policy.h"

pc_policy_set *pc_policies_open(const pc_config *cfg, char *err, size_t errlen)
{
    if (!cfg->policies_dir)
        return NULL;
    pc_policy_set *set = pc_policy_load_dir(cfg->policies_dir, err, errlen);
    if (!set)
        return NULL;
    const char **names = calloc(cfg->nlisteners + 1, sizeof(*names));
    if (!names) {
        pc_policy_free(set);
        snprintf(err, errlen, "policies: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++)
        names[i] = cfg->listeners[i].name;
    int r = pc_policy_check(set, names, cfg->nlisteners, err, errlen);
    free(names);
    if (r < 0) {
        pc_policy_free(set);
        return NULL;
    }
    return set;
}

/* The node of listeners[index].path (dotted) in the configuration's tree, for its line. */
static const pc_opt *listener_node(const pc_config *cfg, size_t index, const char *a, const char *b)
{
    const pc_opt *l = pc_opt_get(cfg->opt_root, "listeners");
    const pc_opt *item = l ? l->child : NULL;
    for (size_t i = 0; item && i < index; i++)
        item = item->next;
    const pc_opt *n = pc_opt_get(item, a);
    return b ? pc_opt_get(n, b) : n;
}

static void listener_setting(const pc_config *cfg, size_t index, const char *label, const char *a,
                             const char *b, const char *value)
{
    const pc_opt *n = listener_node(cfg, index, a, b);
    if (n && n->line)
        printf("  %s: %s (%s:%d)\n", label, value, n->file ? n->file : cfg->file, n->line);
    else
        printf("  %s: %s (default)\n", label, value);
}

static int usage(void)
{
    fprintf(stderr, "usage: portcullis policy explain --listener L --from F --rcpt R --ip I "
                    "[--user U] [-c CONFIG]\n");
    return 2;
}

int pc_policy_command(int argc, char **argv)
{
    const char *file = "/etc/portcullis/portcullis.yaml", *listener = NULL, *from = NULL,
               *rcpt = NULL, *ip = NULL, *user = NULL;
    if (argc < 2 || strcmp(argv[1], "explain"))
        return usage();
    for (int i = 2; i < argc; i++) {
        const char **dst = !strcmp(argv[i], "-c")           ? &file
                           : !strcmp(argv[i], "--listener") ? &listener
                           : !strcmp(argv[i], "--from")     ? &from
                           : !strcmp(argv[i], "--rcpt")     ? &rcpt
                           : !strcmp(argv[i], "--ip")       ? &ip
                           : !strcmp(argv[i], "--user")     ? &user
                                                            : NULL;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "portcullis: policy explain: unexpected argument %s\n", argv[i]);
            return usage();
        }
        *dst = argv[++i];
    }
    if (!listener || !from || !rcpt || !ip)
        return usage();
    char err[1024];
    pc_config *cfg = pc_config_load(file, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    size_t li = 0;
    while (li < cfg->nlisteners && strcmp(cfg->listeners[li].name, listener))
        li++;
    if (li == cfg->nlisteners) {
        fprintf(stderr, "portcullis: policy explain: no listener is named %s\n", listener);
        pc_config_free(cfg);
        return 1;
    }
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else {
        fprintf(stderr, "portcullis: policy explain: --ip %s: not an IP address\n", ip);
        pc_config_free(cfg);
        return 1;
    }
    int rc = 0;
    pc_policy_set *set = NULL;
    if (cfg->policies_dir && !(set = pc_policies_open(cfg, err, sizeof(err)))) {
        fprintf(stderr, "portcullis: %s\n", err);
        rc = 1;
    } else {
        const pc_listener_cfg *l = &cfg->listeners[li];
        int trusted = pc_netlist_match(&l->trusted_networks, (struct sockaddr *)&ss);
        pc_policy_case c = {.listener = listener,
                            .direction = user || trusted ? PC_DIR_SUBMISSION : PC_DIR_INBOUND,
                            .sender = strcmp(from, "<>") ? from : "",
                            .rcpt = rcpt,
                            .user = user,
                            .ip = (struct sockaddr *)&ss};
        printf("case: listener=%s direction=%s from=<%s> rcpt=<%s> ip=%s user=%s\n", listener,
               c.direction == PC_DIR_SUBMISSION ? "submission" : "inbound", c.sender, rcpt, ip,
               user ? user : "-");
        if (!set)
            printf("policy: none (no policies: in %s)\n", cfg->file);
        else
            pc_policy_explain(set, &c, stdout);
        printf("listener %s:\n", listener);
        char v[64];
        const char *const keys[] = {"tag", "quarantine", "reject"};
        const double vals[] = {l->scores.tag, l->scores.quarantine, l->scores.reject};
        for (int k = 0; k < 3; k++) {
            char label[32];
            snprintf(label, sizeof(label), "scores.%s", keys[k]);
            if (vals[k])
                snprintf(v, sizeof(v), "%g", vals[k]);
            else
                snprintf(v, sizeof(v), "(not used)");
            listener_setting(cfg, li, label, "scores", keys[k], v);
        }
        snprintf(v, sizeof(v), "%zu", l->limits.message_size);
        listener_setting(cfg, li, "limits.message_size", "limits", "message_size", v);
    }
    pc_policy_free(set);
    pc_config_free(cfg);
    return rc;
}
