/* policy.c — policy files → an immutable set of policies, the matcher and the explanation.
 *
 * Reading: each file is read by the configuration's YAML reader (every node keeps its file and
 * line), then each policy's map is checked key by key against the tables below: an unknown key, a
 * value of the wrong kind or a bad address is an error that names file and line. Values go through
 * the configuration's own typed readers (options.h), so a size or a network reads as it does in
 * the main file.
 *
 * State: the set owns an arena (the option trees and names) and the lists the readers allocated;
 * nothing changes after loading, so workers share it without a lock.
 *
 * Matching is a linear pass over the policies (a site has tens, not thousands); the rule that
 * picks among those that match is in policy.h and docs/configuration.md. Envelope data is only
 * compared, never copied or echoed from here; explain's output is for the admin's terminal. */
#include "policy.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct pc_policy_set {
    pc_arena *a;
    pc_policy *v;
    size_t n, cap;
};

static const char *const policy_keys[] = {"name",  "priority", "match",        "scores",
                                          "allow", "deny",     "message_size", NULL};
static const char *const match_keys[] = {"listener", "direction", "recipient", "sender",
                                         "user",     "network",   NULL};
static const char *const scores_keys[] = {"tag", "quarantine", "reject", NULL};
static const char *const allow_keys[] = {"senders", "networks", NULL};
static const char *const deny_keys[] = {"senders", NULL};
static const char *const direction_names[] = {"inbound", "submission", NULL};

static const char *const setting_names[PC_PSET__COUNT] = {
    [PC_PSET_SCORES_TAG] = "scores.tag",         [PC_PSET_SCORES_QUARANTINE] = "scores.quarantine",
    [PC_PSET_SCORES_REJECT] = "scores.reject",   [PC_PSET_ALLOW_SENDERS] = "allow.senders",
    [PC_PSET_ALLOW_NETWORKS] = "allow.networks", [PC_PSET_DENY_SENDERS] = "deny.senders",
    [PC_PSET_MESSAGE_SIZE] = "message_size",
};

/* ---- reading ---------------------------------------------------------------------------------
 */

/* A map whose keys are all in known; section names the map in errors ("match", "" at the top). */
static int check_map(const pc_opt *n, const char *section, const char *const *known, char *err,
                     size_t errlen)
{
    if (n->kind != PC_OPT_MAP)
        return pc_opt_error(err, errlen, n, "%s%sexpected a map", section, *section ? ": " : "");
    for (const pc_opt *o = n->child; o; o = o->next) {
        size_t k = 0;
        while (known[k] && (!o->key || strcmp(o->key, known[k])))
            k++;
        if (!known[k]) {
            char list[200] = "";
            for (size_t i = 0; known[i]; i++) {
                size_t used = strlen(list);
                snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", known[i]);
            }
            return pc_opt_error(err, errlen, o, "%s%s%s: unknown key (expected one of %s)", section,
                                *section ? "." : "", o->key ? o->key : "(none)", list);
        }
    }
    return 0;
}

/* A scalar of printable characters; *out borrowed from the tree. */
static int read_word(const pc_opt *map, const char *key, const char **out, char *err, size_t errlen)
{
    const pc_opt *n = pc_opt_get(map, key);
    if (!n)
        return 0;
    if (n->kind != PC_OPT_SCALAR || !n->value || !n->value[0])
        return pc_opt_error(err, errlen, n, "%s: expected a single value", key);
    for (const unsigned char *p = (const unsigned char *)n->value; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return pc_opt_error(err, errlen, n, "%s: spaces and control characters are not allowed",
                                key);
    *out = n->value;
    return 1;
}

/* A list of words (user names): a YAML list or one value, allocated like the readers' lists. */
static int read_words(const pc_opt *map, const char *key, pc_str_list *out, char *err,
                      size_t errlen)
{
    const pc_opt *n = pc_opt_get(map, key);
    if (!n)
        return 0;
    if (n->kind == PC_OPT_MAP)
        return pc_opt_error(err, errlen, n, "%s: expected a list, found a map", key);
    const pc_opt *first = n->kind == PC_OPT_SEQ ? n->child : n;
    size_t count = 0;
    for (const pc_opt *i = first; i; i = n->kind == PC_OPT_SEQ ? i->next : NULL) {
        if (i->kind != PC_OPT_SCALAR || !i->value || !i->value[0])
            return pc_opt_error(err, errlen, i, "%s[%zu]: expected a single value", key, count);
        for (const unsigned char *p = (const unsigned char *)i->value; *p; p++)
            if (*p <= 0x20 || *p == 0x7f)
                return pc_opt_error(err, errlen, i,
                                    "%s[%zu]: spaces and control characters are not allowed", key,
                                    count);
        count++;
    }
    if (!count)
        return pc_opt_error(err, errlen, n, "%s: expected at least one value", key);
    char **v = calloc(count, sizeof(*v));
    if (!v)
        return pc_opt_error(err, errlen, n, "out of memory");
    size_t k = 0;
    for (const pc_opt *i = first; i; i = n->kind == PC_OPT_SEQ ? i->next : NULL)
        v[k++] = (char *)i->value;
    out->v = v, out->n = count;
    return 1;
}

/* Addresses must not be an empty list: "recipient: []" would match nothing, never what was meant.
 */
static int read_addrs(const pc_opt *map, const char *key, pc_str_list *out, char *err,
                      size_t errlen)
{
    int r = pc_opt_addresses(map, key, out, err, errlen);
    if (r == 1 && !out->n)
        return pc_opt_error(err, errlen, pc_opt_get(map, key), "%s: expected at least one value",
                            key);
    return r;
}

static int read_nets(const pc_opt *map, const char *key, pc_cidr_list *out, char *err,
                     size_t errlen)
{
    int r = pc_opt_cidrs(map, key, out, err, errlen);
    if (r == 1 && !out->n)
        return pc_opt_error(err, errlen, pc_opt_get(map, key), "%s: expected at least one value",
                            key);
    return r;
}

static void policy_free_lists(pc_policy *p)
{
    pc_str_list_free(&p->recipient);
    pc_str_list_free(&p->sender);
    pc_str_list_free(&p->user);
    pc_cidr_list_free(&p->network);
    pc_str_list_free(&p->allow_senders);
    pc_str_list_free(&p->deny_senders);
    pc_cidr_list_free(&p->allow_networks);
}

static int read_match(pc_policy *p, const pc_opt *m, char *err, size_t errlen)
{
    if (check_map(m, "match", match_keys, err, errlen) < 0)
        return -1;
    int r, dir = 0;
    if ((r = read_word(m, "listener", &p->listener, err, errlen)) < 0)
        return -1;
    p->nkeys += (unsigned)r;
    if ((r = pc_opt_enum(m, "direction", direction_names, &dir, err, errlen)) < 0)
        return -1;
    if (r)
        p->direction = dir == 0 ? PC_DIR_INBOUND : PC_DIR_SUBMISSION, p->nkeys++;
    if ((r = read_addrs(m, "recipient", &p->recipient, err, errlen)) < 0)
        return -1;
    p->nkeys += (unsigned)r;
    if ((r = read_addrs(m, "sender", &p->sender, err, errlen)) < 0)
        return -1;
    p->nkeys += (unsigned)r;
    if ((r = read_words(m, "user", &p->user, err, errlen)) < 0)
        return -1;
    p->nkeys += (unsigned)r;
    if ((r = read_nets(m, "network", &p->network, err, errlen)) < 0)
        return -1;
    p->nkeys += (unsigned)r;
    return 0;
}

static int read_scores(pc_policy *p, const pc_opt *s, char *err, size_t errlen)
{
    if (check_map(s, "scores", scores_keys, err, errlen) < 0)
        return -1;
    double *dst[] = {&p->scores.tag, &p->scores.quarantine, &p->scores.reject};
    for (int i = 0; i < 3; i++) {
        int r = pc_opt_number(s, scores_keys[i], 1e-9, 1e9, dst[i], err, errlen);
        if (r < 0)
            return -1;
        if (r)
            p->set_at[PC_PSET_SCORES_TAG + i] = pc_opt_get(s, scores_keys[i]);
    }
    const pc_scores_cfg *sc = &p->scores;
    if (sc->tag && sc->quarantine && sc->tag >= sc->quarantine)
        return pc_opt_error(err, errlen, p->set_at[PC_PSET_SCORES_QUARANTINE],
                            "scores.quarantine: must be greater than tag");
    if (sc->reject &&
        ((sc->quarantine && sc->quarantine >= sc->reject) || (sc->tag && sc->tag >= sc->reject)))
        return pc_opt_error(err, errlen, p->set_at[PC_PSET_SCORES_REJECT],
                            "scores.reject: must be greater than tag and quarantine");
    p->has_scores = 1;
    return 0;
}

static int read_policy(pc_policy_set *set, pc_policy *p, const pc_opt *m, char *err, size_t errlen)
{
    if (check_map(m, "", policy_keys, err, errlen) < 0)
        return -1;
    p->at = m;
    if (read_word(m, "name", &p->name, err, errlen) < 0)
        return -1;
    if (!p->name)
        return pc_opt_error(err, errlen, m, "name: required (explain and the logs name policies)");
    for (size_t i = 0; i < set->n; i++)
        if (!strcmp(set->v[i].name, p->name))
            return pc_opt_error(err, errlen, pc_opt_get(m, "name"),
                                "name: %s is already the name of the policy at %s:%d", p->name,
                                set->v[i].at->file, set->v[i].at->line);
    double prio = 0;
    if (pc_opt_number(m, "priority", -1e6, 1e6, &prio, err, errlen) < 0)
        return -1;
    if (prio != floor(prio))
        return pc_opt_error(err, errlen, pc_opt_get(m, "priority"), "priority: a whole number");
    p->priority = (int)prio;
    const pc_opt *n;
    if ((n = pc_opt_get(m, "match")) && read_match(p, n, err, errlen) < 0)
        return -1;
    if ((n = pc_opt_get(m, "scores")) && read_scores(p, n, err, errlen) < 0)
        return -1;
    if ((n = pc_opt_get(m, "allow"))) {
        int r;
        if (check_map(n, "allow", allow_keys, err, errlen) < 0 ||
            (r = read_addrs(n, "senders", &p->allow_senders, err, errlen)) < 0)
            return -1;
        if (r)
            p->set_at[PC_PSET_ALLOW_SENDERS] = pc_opt_get(n, "senders");
        if ((r = read_nets(n, "networks", &p->allow_networks, err, errlen)) < 0)
            return -1;
        if (r)
            p->set_at[PC_PSET_ALLOW_NETWORKS] = pc_opt_get(n, "networks");
    }
    if ((n = pc_opt_get(m, "deny"))) {
        int r;
        if (check_map(n, "deny", deny_keys, err, errlen) < 0 ||
            (r = read_addrs(n, "senders", &p->deny_senders, err, errlen)) < 0)
            return -1;
        if (r)
            p->set_at[PC_PSET_DENY_SENDERS] = pc_opt_get(n, "senders");
    }
    int r = pc_opt_size(m, "message_size", &p->message_size, err, errlen);
    if (r < 0)
        return -1;
    if (r && !p->message_size)
        return pc_opt_error(err, errlen, pc_opt_get(m, "message_size"),
                            "message_size: must be greater than 0");
    if (r)
        p->set_at[PC_PSET_MESSAGE_SIZE] = pc_opt_get(m, "message_size");
    return 0;
}

/* One file's tree: a list of policies (an empty file is an empty list). */
static int add_tree(pc_policy_set *set, const pc_opt *root, char *err, size_t errlen)
{
    if (!root)
        return 0;
    if (root->kind != PC_OPT_SEQ)
        return pc_opt_error(err, errlen, root, "a policy file is a list of policies (- name: ...)");
    for (const pc_opt *m = root->child; m; m = m->next) {
        if (set->n == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 16;
            pc_policy *nv = realloc(set->v, cap * sizeof(*nv));
            if (!nv)
                return pc_opt_error(err, errlen, m, "out of memory");
            set->v = nv, set->cap = cap;
        }
        pc_policy *p = &set->v[set->n];
        memset(p, 0, sizeof(*p));
        if (read_policy(set, p, m, err, errlen) < 0) {
            policy_free_lists(p);
            return -1;
        }
        p->order = set->n++;
    }
    return 0;
}

static pc_policy_set *set_new(char *err, size_t errlen)
{
    pc_policy_set *set = calloc(1, sizeof(*set));
    if (!set || !(set->a = pc_arena_new())) {
        free(set);
        snprintf(err, errlen, "policies: out of memory");
        return NULL;
    }
    return set;
}

void pc_policy_free(pc_policy_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        policy_free_lists(&set->v[i]);
    free(set->v);
    pc_arena_free(set->a);
    free(set);
}

pc_policy_set *pc_policy_load_mem(const char *name, const void *buf, size_t len, char *err,
                                  size_t errlen)
{
    pc_policy_set *set = set_new(err, errlen);
    if (!set)
        return NULL;
    err[0] = '\0';
    pc_opt *root = len ? pc_config_read_yaml_mem(set->a, name, buf, len, err, errlen) : NULL;
    if ((!root && err[0]) || add_tree(set, root, err, errlen) < 0) {
        pc_policy_free(set);
        return NULL;
    }
    return set;
}

static int by_name(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

pc_policy_set *pc_policy_load_dir(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "policies: %s: %s", dir, strerror(errno));
        return NULL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".yaml"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (!nn) {
                bad = 1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            bad = 1;
            break;
        }
        n++;
    }
    closedir(d);
    pc_policy_set *set = bad ? NULL : set_new(err, errlen);
    if (bad)
        snprintf(err, errlen, "policies: out of memory");
    if (set && n)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; set && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        err[0] = '\0';
        pc_opt *root = pc_config_read_yaml(set->a, path, err, errlen);
        if ((!root && err[0]) || add_tree(set, root, err, errlen) < 0) {
            pc_policy_free(set);
            set = NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return set;
}

size_t pc_policy_count(const pc_policy_set *set)
{
    return set ? set->n : 0;
}

const pc_policy *pc_policy_at(const pc_policy_set *set, size_t i)
{
    return set && i < set->n ? &set->v[i] : NULL;
}

/* ---- matching --------------------------------------------------------------------------------
 */

static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : NULL;
}

static int is_address(const char *entry)
{
    return entry[0] != '@' && strchr(entry, '@') != NULL;
}

/* How list matches addr: 2 by an address, 1 by its domain, 0 not at all. */
static int addr_kind(const pc_str_list *list, const char *addr)
{
    if (!addr || !addr[0])
        return 0;
    const char *dom = domain_of(addr);
    int best = 0;
    for (size_t i = 0; i < list->n; i++) {
        const char *e = list->v[i];
        if (is_address(e)) {
            if (!strcasecmp(e, addr))
                return 2;
        } else if (dom && !strcasecmp(e + (e[0] == '@'), dom))
            best = 1;
    }
    return best;
}

int pc_policy_addr_in(const pc_str_list *list, const char *addr)
{
    return addr_kind(list, addr) > 0;
}

/* The longest prefix in list that holds ip, plus one (0: none). */
static unsigned net_kind(const pc_cidr_list *list, const struct sockaddr *ip)
{
    unsigned best = 0;
    for (size_t i = 0; ip && i < list->n; i++) {
        pc_cidr_list one = {.v = &list->v[i], .n = 1};
        if (pc_cidr_match(&one, ip) && list->v[i].prefix + 1 > best)
            best = list->v[i].prefix + 1;
    }
    return best;
}

typedef struct spec {
    unsigned nkeys;
    int rcpt, sender;
    unsigned net;
} spec;

/* Does p match c? Fills *s with the specificity of the match. */
static int matches(const pc_policy *p, const pc_policy_case *c, spec *s)
{
    *s = (spec){.nkeys = p->nkeys};
    if (p->listener && (!c->listener || strcmp(p->listener, c->listener)))
        return 0;
    if (p->direction && p->direction != c->direction)
        return 0;
    if (p->recipient.n && !(s->rcpt = addr_kind(&p->recipient, c->rcpt)))
        return 0;
    if (p->sender.n && !(s->sender = addr_kind(&p->sender, c->sender)))
        return 0;
    if (p->user.n) {
        size_t i = 0;
        while (c->user && i < p->user.n && strcmp(p->user.v[i], c->user))
            i++;
        if (!c->user || i == p->user.n)
            return 0;
    }
    if (p->network.n && !(s->net = net_kind(&p->network, c->ip)))
        return 0;
    return 1;
}

/* > 0 when a is more specific than b; the step that decided in *why. */
static int spec_cmp(const spec *a, const spec *b, const char **why)
{
    if (a->nkeys != b->nkeys)
        return *why = "more match keys", a->nkeys > b->nkeys ? 1 : -1;
    if (a->rcpt != b->rcpt)
        return *why = "recipient matched by address, not domain", a->rcpt > b->rcpt ? 1 : -1;
    if (a->sender != b->sender)
        return *why = "sender matched by address, not domain", a->sender > b->sender ? 1 : -1;
    if (a->net != b->net)
        return *why = "longer network prefix", a->net > b->net ? 1 : -1;
    return 0;
}

/* > 0 when a wins over b (both match). */
static int wins(const pc_policy *a, const spec *sa, const pc_policy *b, const spec *sb,
                const char **why)
{
    int r = spec_cmp(sa, sb, why);
    if (r)
        return r;
    if (a->priority != b->priority)
        return *why = "higher priority", a->priority > b->priority ? 1 : -1;
    *why = "earlier in file order";
    return a->order < b->order ? 1 : -1;
}

const pc_policy *pc_policy_match(const pc_policy_set *set, const pc_policy_case *c)
{
    const pc_policy *best = NULL;
    spec bs = {0}, s;
    const char *why;
    for (size_t i = 0; set && i < set->n; i++)
        if (matches(&set->v[i], c, &s) && (!best || wins(&set->v[i], &s, best, &bs, &why) > 0))
            best = &set->v[i], bs = s;
    return best;
}

/* ---- checks ----------------------------------------------------------------------------------
 */

static int cidr_equal(const pc_cidr *a, const pc_cidr *b)
{
    return a->family == b->family && a->prefix == b->prefix &&
           !memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16);
}

/* Could one recipient (or sender) be matched by a and by b with the same kind? An address both
 * list, or a domain both list (any other local part of it). */
static int addrs_tie(const pc_str_list *a, const pc_str_list *b)
{
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = 0; j < b->n; j++) {
            const char *x = a->v[i], *y = b->v[j];
            if (is_address(x) != is_address(y))
                continue;
            if (is_address(x) ? !strcasecmp(x, y)
                              : !strcasecmp(x + (x[0] == '@'), y + (y[0] == '@')))
                return 1;
        }
    return 0;
}

static int words_meet(const pc_str_list *a, const pc_str_list *b)
{
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = 0; j < b->n; j++)
            if (!strcmp(a->v[i], b->v[j]))
                return 1;
    return 0;
}

/* Is there a case both match with the same specificity? Keys given by one only can always be
 * satisfied; a key given by both must be able to tie. Recipient, sender and network enter the
 * specificity, so one policy giving them and the other not can never tie. */
static int can_tie(const pc_policy *a, const pc_policy *b)
{
    if (a->nkeys != b->nkeys)
        return 0;
    if (a->listener && b->listener && strcmp(a->listener, b->listener))
        return 0;
    if (a->direction && b->direction && a->direction != b->direction)
        return 0;
    if (!a->recipient.n != !b->recipient.n || !a->sender.n != !b->sender.n ||
        !a->network.n != !b->network.n)
        return 0;
    if (a->recipient.n && !addrs_tie(&a->recipient, &b->recipient))
        return 0;
    if (a->sender.n && !addrs_tie(&a->sender, &b->sender))
        return 0;
    if (a->user.n && b->user.n && !words_meet(&a->user, &b->user))
        return 0;
    if (a->network.n) {
        int meet = 0;
        for (size_t i = 0; !meet && i < a->network.n; i++)
            for (size_t j = 0; !meet && j < b->network.n; j++)
                meet = cidr_equal(&a->network.v[i], &b->network.v[j]);
        if (!meet)
            return 0;
    }
    return 1;
}

int pc_policy_check(const pc_policy_set *set, const char *const *listeners, size_t n, char *err,
                    size_t errlen)
{
    for (size_t i = 0; set && i < set->n; i++) {
        const pc_policy *p = &set->v[i];
        if (p->listener) {
            size_t k = 0;
            while (k < n && strcmp(listeners[k], p->listener))
                k++;
            if (k == n)
                return pc_opt_error(err, errlen, pc_opt_get(pc_opt_get(p->at, "match"), "listener"),
                                    "policy %s: match.listener: no listener is named %s", p->name,
                                    p->listener);
        }
        for (size_t j = 0; j < i; j++) {
            const pc_policy *o = &set->v[j];
            if (o->priority == p->priority && can_tie(o, p))
                return pc_opt_error(
                    err, errlen, p->at,
                    "policy %s and policy %s (%s:%d) have the same priority (%d) and can match the "
                    "same case equally specifically: give one a higher priority or narrow its "
                    "match",
                    p->name, o->name, o->at->file, o->at->line, p->priority);
        }
    }
    return 0;
}

/* ---- explain ---------------------------------------------------------------------------------
 */

static void print_list(FILE *out, const pc_str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        fprintf(out, "%s%s", i ? ", " : "", l->v[i]);
}

static void print_nets(FILE *out, const pc_cidr_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        char buf[64] = "?";
        const pc_cidr *c = &l->v[i];
        inet_ntop(c->family, c->addr, buf, sizeof(buf));
        fprintf(out, "%s%s/%u", i ? ", " : "", buf, c->prefix);
    }
}

const pc_policy *pc_policy_explain(const pc_policy_set *set, const pc_policy_case *c, FILE *out)
{
    const pc_policy *best = pc_policy_match(set, c);
    if (!best) {
        fprintf(out, "policy: none (no policy matches: the listener's own settings apply)\n");
        return NULL;
    }
    spec bs;
    matches(best, c, &bs);
    fprintf(out, "policy: %s (%s:%d)\n", best->name, best->at->file, best->at->line);
    fprintf(out, "  match keys: %u, priority %d\n", best->nkeys, best->priority);
    for (int k = 0; k < PC_PSET__COUNT; k++) {
        const pc_opt *at = best->set_at[k];
        fprintf(out, "  %s: ", setting_names[k]);
        if (!at) {
            fprintf(out, "(not set: the listener's)\n");
            continue;
        }
        switch (k) {
        case PC_PSET_SCORES_TAG: fprintf(out, "%g", best->scores.tag); break;
        case PC_PSET_SCORES_QUARANTINE: fprintf(out, "%g", best->scores.quarantine); break;
        case PC_PSET_SCORES_REJECT: fprintf(out, "%g", best->scores.reject); break;
        case PC_PSET_ALLOW_SENDERS: print_list(out, &best->allow_senders); break;
        case PC_PSET_ALLOW_NETWORKS: print_nets(out, &best->allow_networks); break;
        case PC_PSET_DENY_SENDERS: print_list(out, &best->deny_senders); break;
        case PC_PSET_MESSAGE_SIZE: fprintf(out, "%zu", best->message_size); break;
        default: break;
        }
        fprintf(out, " (%s:%d)\n", at->file, at->line);
    }
    spec s;
    const char *why;
    for (size_t i = 0; i < set->n; i++) {
        const pc_policy *p = &set->v[i];
        if (p == best || !matches(p, c, &s))
            continue;
        wins(best, &bs, p, &s, &why);
        fprintf(out, "  also matched: %s (%s:%d), lost: %s\n", p->name, p->at->file, p->at->line,
                why);
    }
    return best;
}
