/* cli.c — the one-line mode ("--listen URL --upstream URL ..."): turns the arguments into the same
 * option tree a YAML file gives, so that config.c's tables supply every default and every check. */
#include "config/config.h"

#include <stdio.h>
#include <string.h>

enum {
    O_LISTEN,
    O_UPSTREAM,
    O_CERT,
    O_KEY,
    O_REQUIRE_TLS,
    O_DOMAIN,
    O_TRUST,
    O_CA_FILE,
    O_NO_VERIFY,
    O_IDENTITY,
    O_HOSTNAME,
    O_WORKERS,
    O_USER,
    O_LOG_LEVEL,
    O_FILTER,
    O_MAX_MESSAGE_SIZE,
    O_PLAINTEXT_AUTH,
};

static const struct option {
    const char *name;
    int id;
    int has_value;
} options[] = {
    {"--listen", O_LISTEN, 1},
    {"--upstream", O_UPSTREAM, 1},
    {"--cert", O_CERT, 1},
    {"--key", O_KEY, 1},
    {"--require-tls", O_REQUIRE_TLS, 0},
    {"--domain", O_DOMAIN, 1},
    {"--trust", O_TRUST, 1},
    {"--ca-file", O_CA_FILE, 1},
    {"--no-verify", O_NO_VERIFY, 0},
    {"--upstream-identity", O_IDENTITY, 1},
    {"--hostname", O_HOSTNAME, 1},
    {"--workers", O_WORKERS, 1},
    {"--user", O_USER, 1},
    {"--log-level", O_LOG_LEVEL, 1},
    {"--filter", O_FILTER, 1},
    {"--max-message-size", O_MAX_MESSAGE_SIZE, 1},
    {"--plaintext-auth", O_PLAINTEXT_AUTH, 0},
};

/* Repeatable options keep their values in argv order; the arrays live in the arena. */
typedef struct {
    const char **v;
    size_t n;
} list;

struct args {
    list listen, upstream, cert, key, domain, trust, filter;
    const char *ca_file, *identity, *hostname, *workers, *user, *log_level, *max_size;
    int require_tls, no_verify, plaintext_auth;
};

struct builder {
    pc_arena *a;
    int oom;
};

/* Appends a node under parent (NULL for the root). key is for maps; value for scalars. Strings are
 * copied into the arena: the snapshot must not point into argv. */
static pc_opt *add(struct builder *b, pc_opt *parent, pc_opt_kind kind, const char *key,
                   const char *value)
{
    pc_opt *n = pc_arena_alloc(b->a, sizeof(*n));
    if (!n || (key && !(n->key = pc_arena_strdup(b->a, key))) ||
        (value && !(n->value = pc_arena_strdup(b->a, value)))) {
        b->oom = 1;
        return NULL;
    }
    n->kind = kind;
    if (parent) {
        pc_opt **tail = &parent->child;
        while (*tail)
            tail = &(*tail)->next;
        *tail = n;
    }
    return n;
}

static void add_str(struct builder *b, pc_opt *map, const char *key, const char *value)
{
    if (map && value)
        add(b, map, PC_OPT_SCALAR, key, value);
}

static void add_list(struct builder *b, pc_opt *map, const char *key, const list *l,
                     const char *first)
{
    if (!map || (!l->n && !first))
        return;
    pc_opt *seq = add(b, map, PC_OPT_SEQ, key, NULL);
    if (seq && first)
        add(b, seq, PC_OPT_SCALAR, NULL, first);
    for (size_t i = 0; seq && i < l->n; i++)
        add(b, seq, PC_OPT_SCALAR, NULL, l->v[i]);
}

static const char *const proto_word[] = {"smtp", "pop3", "imap"};
static const char *const tls_word[] = {"none", "starttls", "implicit"};

/* "host:port" as the file would spell it: IPv6 in brackets. */
static void hostport(char *buf, size_t len, const char *host, uint16_t port)
{
    snprintf(buf, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
}

static int build_listener(struct builder *b, pc_opt *seq, const struct args *g, size_t i, char *err,
                          size_t errlen)
{
    pc_proto lp, up;
    pc_tls_mode lt, ut;
    char host[256], addr[300];
    uint16_t lport, uport;
    const char *lurl = g->listen.v[i], *uurl = g->upstream.v[i];

    if (pc_parse_url(lurl, &lp, &lt, host, sizeof(host), &lport) < 0) {
        snprintf(err, errlen,
                 "--listen %s: expected SCHEME://ADDRESS[:PORT], scheme smtp, smtps, "
                 "smtp+starttls, pop3, pop3s, pop3+stls, imap, imaps or imap+starttls",
                 lurl);
        return -1;
    }
    if (pc_parse_url(uurl, &up, &ut, host, sizeof(host), &uport) < 0) {
        snprintf(err, errlen, "--upstream %s: expected SCHEME://HOST[:PORT] (see --listen)", uurl);
        return -1;
    }
    if (up != lp) {
        snprintf(err, errlen, "--upstream %s: protocol differs from --listen %s", uurl, lurl);
        return -1;
    }
    if (lt == PC_TLS_NONE && g->cert.n)
        lt = PC_TLS_STARTTLS; /* a plain scheme offers STARTTLS/STLS once there is a certificate */
    if (lt != PC_TLS_NONE && !g->cert.n) {
        snprintf(err, errlen, "--listen %s: TLS needs --cert FILE --key FILE", lurl);
        return -1;
    }

    pc_opt *l = add(b, seq, PC_OPT_MAP, NULL, NULL);
    add_str(b, l, "protocol", proto_word[lp]);
    pc_parse_url(lurl, &lp, &lt, host, sizeof(host), &lport);
    hostport(addr, sizeof(addr), host, lport);
    add_str(b, l, "listen", addr);
    add_str(b, l, "hostname", g->hostname);
    if (g->cert.n) {
        pc_opt *tls = add(b, l, PC_OPT_MAP, "tls", NULL);
        add_str(b, tls, "mode", tls_word[lt == PC_TLS_NONE ? PC_TLS_STARTTLS : lt]);
        pc_opt *certs = add(b, tls, PC_OPT_SEQ, "certificates", NULL);
        for (size_t c = 0; certs && c < g->cert.n; c++) {
            pc_opt *pair = add(b, certs, PC_OPT_MAP, NULL, NULL);
            add_str(b, pair, "cert", g->cert.v[c]);
            add_str(b, pair, "key", g->key.v[c]);
        }
    }
    if (g->require_tls)
        add_str(b, l, "require_tls", "true");
    /* --trust replaces the loopback default, as trusted_networks does in a file: an admin can
     * then test from 127.0.0.1 as an untrusted client. */
    add_list(b, l, "trusted_networks", &g->trust, NULL);
    if (g->plaintext_auth) /* a relaxation, logged at start (main.c) */
        add_str(b, add(b, l, PC_OPT_MAP, lp == PC_PROTO_SMTP ? "smtp" : "mailbox", NULL),
                "plaintext_auth", "allow");
    add_list(b, l, "accepted_domains", &g->domain, NULL);
    if (g->max_size) {
        pc_opt *lim = add(b, l, PC_OPT_MAP, "limits", NULL);
        add_str(b, lim, "message_size", g->max_size);
    }
    pc_opt *u = add(b, l, PC_OPT_MAP, "upstream", NULL);
    pc_parse_url(uurl, &up, &ut, host, sizeof(host), &uport);
    hostport(addr, sizeof(addr), host, uport);
    add_str(b, u, "address", addr);
    add_str(b, u, "tls", tls_word[ut]);
    if (g->no_verify)
        add_str(b, u, "verify", "false");
    add_str(b, u, "ca_file", g->ca_file);
    add_str(b, u, "client_identity", g->identity);
    if (g->filter.n) {
        pc_opt *fs = add(b, l, PC_OPT_SEQ, "filters", NULL);
        for (size_t f = 0; fs && f < g->filter.n; f++)
            add_str(b, add(b, fs, PC_OPT_MAP, NULL, NULL), "name", g->filter.v[f]);
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct args *g, pc_arena *a, char *err, size_t errlen)
{
    list *lists[] = {&g->listen, &g->upstream, &g->cert,  &g->key,
                     &g->domain, &g->trust,    &g->filter};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        if (argc > 0 && !(lists[i]->v = pc_arena_alloc(a, (size_t)argc * sizeof(char *)))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *value = NULL, *eq = strchr(arg, '=');
        size_t nlen = eq && !strncmp(arg, "--", 2) ? (size_t)(eq - arg) : strlen(arg);
        const struct option *o = NULL;
        for (size_t k = 0; k < sizeof(options) / sizeof(options[0]); k++)
            if (strlen(options[k].name) == nlen && !strncmp(arg, options[k].name, nlen))
                o = &options[k];
        if (!o) {
            snprintf(err, errlen, "%s: unknown %s (see portcullis -h)", arg,
                     arg[0] == '-' ? "option" : "argument");
            return -1;
        }
        if (o->has_value) {
            if (eq && nlen < strlen(arg))
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            if (!value || !*value) {
                snprintf(err, errlen, "%s needs a value", o->name);
                return -1;
            }
        } else if (nlen < strlen(arg)) {
            snprintf(err, errlen, "%s takes no value", o->name);
            return -1;
        }
        switch (o->id) {
        case O_LISTEN: g->listen.v[g->listen.n++] = value; break;
        case O_UPSTREAM:
            if (g->upstream.n >= g->listen.n) {
                snprintf(err, errlen, "--upstream %s has no --listen before it", value);
                return -1;
            }
            g->upstream.v[g->upstream.n++] = value;
            break;
        case O_CERT: g->cert.v[g->cert.n++] = value; break;
        case O_KEY: g->key.v[g->key.n++] = value; break;
        case O_REQUIRE_TLS: g->require_tls = 1; break;
        case O_DOMAIN: g->domain.v[g->domain.n++] = value; break;
        case O_TRUST: g->trust.v[g->trust.n++] = value; break;
        case O_CA_FILE: g->ca_file = value; break;
        case O_NO_VERIFY: g->no_verify = 1; break;
        case O_IDENTITY: g->identity = value; break;
        case O_HOSTNAME: g->hostname = value; break;
        case O_WORKERS: g->workers = value; break;
        case O_USER: g->user = value; break;
        case O_LOG_LEVEL: g->log_level = value; break;
        case O_FILTER: g->filter.v[g->filter.n++] = value; break;
        case O_MAX_MESSAGE_SIZE: g->max_size = value; break;
        case O_PLAINTEXT_AUTH: g->plaintext_auth = 1; break;
        }
    }
    if (g->listen.n == 0) {
        snprintf(err, errlen, "no --listen given: use -c FILE, or --listen URL --upstream URL");
        return -1;
    }
    if (g->upstream.n < g->listen.n) {
        snprintf(err, errlen, "--listen %s has no --upstream after it", g->listen.v[g->upstream.n]);
        return -1;
    }
    if (g->cert.n != g->key.n) {
        snprintf(err, errlen, "--cert and --key come in pairs (%zu --cert, %zu --key)", g->cert.n,
                 g->key.n);
        return -1;
    }
    if (g->require_tls && !g->cert.n) {
        snprintf(err, errlen, "--require-tls needs --cert FILE --key FILE");
        return -1;
    }
    if (g->identity && strcmp(g->identity, "none") && strcmp(g->identity, "xclient") &&
        strcmp(g->identity, "proxy")) {
        snprintf(err, errlen, "--upstream-identity %s: expected none, xclient or proxy",
                 g->identity);
        return -1;
    }
    return 0;
}

pc_config *pc_config_from_args(int argc, char **argv, char *err, size_t errlen)
{
    struct args g = {0};
    struct builder b = {.a = pc_arena_new()};
    if (!b.a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_args(argc, argv, &g, b.a, err, errlen) < 0) {
        pc_arena_free(b.a);
        return NULL;
    }
    pc_opt *root = add(&b, NULL, PC_OPT_MAP, NULL, NULL);
    add_str(&b, root, "workers", g.workers);
    add_str(&b, root, "user", g.user);
    if (g.log_level)
        add_str(&b, add(&b, root, PC_OPT_MAP, "log", NULL), "level", g.log_level);
    pc_opt *seq = add(&b, root, PC_OPT_SEQ, "listeners", NULL);
    for (size_t i = 0; seq && i < g.listen.n; i++)
        if (build_listener(&b, seq, &g, i, err, errlen) < 0) {
            pc_arena_free(b.a);
            return NULL;
        }
    if (b.oom || !root) {
        snprintf(err, errlen, "out of memory");
        pc_arena_free(b.a);
        return NULL;
    }
    return pc_config_from_opt(b.a, root, NULL, err, errlen);
}
