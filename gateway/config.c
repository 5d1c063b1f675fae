/* config.c — YAML file → generic pc_opt tree (every node with file and line) → validated pc_config
 * through one typed table per section (key, type, default, check, offset); also the value parsers.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "log.h"

#define MAX_DEPTH 64 /* YAML nesting; deeper is an error, never a deep recursion */

/* ---- arena ---------------------------------------------------------------------------------- */

struct pc_arena {
    struct chunk *head;
};

struct chunk {
    struct chunk *next;
    size_t cap, used;
    alignas(max_align_t) unsigned char data[];
};

#define CHUNK_SIZE 16384

pc_arena *pc_arena_new(void)
{
    return calloc(1, sizeof(pc_arena));
}

void *pc_arena_alloc(pc_arena *a, size_t n)
{
    const size_t al = alignof(max_align_t);
    if (n > SIZE_MAX - al)
        return NULL;
    n = (n + al - 1) / al * al;
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        if (a->head && n > CHUNK_SIZE) { /* keep filling the current chunk */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *pc_arena_strdup(pc_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = pc_arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void pc_arena_free(pc_arena *a)
{
    if (!a)
        return;
    for (struct chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

/* ---- value parsers ----------------------------------------------------------------------------
 */

/* Strict decimal: digits only, no sign, no spaces; *end gets the first non-digit. */
static int parse_u64(const char *s, unsigned long long *out, const char **end)
{
    unsigned long long v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return 0;
}

int pc_parse_duration_ms(const char *s, unsigned *ms)
{
    unsigned long long v, mul;
    const char *u;
    if (!s || parse_u64(s, &v, &u) < 0)
        return -1;
    if (!strcmp(u, "ms"))
        mul = 1;
    else if (!strcmp(u, "s") || !*u)
        mul = 1000;
    else if (!strcmp(u, "m"))
        mul = 60000;
    else if (!strcmp(u, "h"))
        mul = 3600000;
    else if (!strcmp(u, "d"))
        mul = 86400000;
    else
        return -1;
    if (v > UINT_MAX / mul)
        return -1;
    *ms = (unsigned)(v * mul);
    return 0;
}

int pc_parse_size(const char *s, size_t *out)
{
    unsigned long long v;
    const char *u;
    unsigned shift = 0;
    if (!s || parse_u64(s, &v, &u) < 0)
        return -1;
    switch (*u) {
    case '\0': break;
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    case 't':
    case 'T': shift = 40; break;
    default: return -1;
    }
    if (*u && u[1] && strcmp(u + 1, "B") && strcmp(u + 1, "iB"))
        return -1;
    if (v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

/* A port: 0..65535, decimal. */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long long v;
    const char *end;
    if (parse_u64(s, &v, &end) < 0 || *end || v > 65535 || end - s > 5)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* Splits "host:port" or "[v6]:port" (port optional when allow_noport) into host and port. */
static int split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port,
                          int allow_noport)
{
    const char *h = s, *colon;
    size_t n;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return -1;
        h = s + 1;
        n = (size_t)(close - h);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (!colon && close[1])
            return -1;
        if (!memchr(h, ':', n))
            return -1; /* brackets are for IPv6 only */
    } else {
        colon = strrchr(s, ':');
        if (colon && memchr(s, ':', (size_t)(colon - s)))
            return -1; /* a bare IPv6 address: needs brackets */
        n = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    if (!colon) {
        if (!allow_noport)
            return -1;
        *port = 0;
        return 0;
    }
    return parse_port(colon + 1, port);
}

int pc_parse_hostport(const char *s, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 1];
    uint16_t port;
    if (!s || split_hostport(s, host, sizeof(host), &port, 0) < 0)
        return -1;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (*s != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return 0;
    }
    if (*s == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

static const struct scheme {
    const char *name;
    pc_proto proto;
    pc_tls_mode tls;
    uint16_t port;
} schemes[] = {
    {"smtp", PC_PROTO_SMTP, PC_TLS_NONE, 25},
    {"smtps", PC_PROTO_SMTP, PC_TLS_IMPLICIT, 465},
    {"smtp+starttls", PC_PROTO_SMTP, PC_TLS_STARTTLS, 25},
    {"pop3", PC_PROTO_POP3, PC_TLS_NONE, 110},
    {"pop3s", PC_PROTO_POP3, PC_TLS_IMPLICIT, 995},
    {"pop3+stls", PC_PROTO_POP3, PC_TLS_STARTTLS, 110},
    {"imap", PC_PROTO_IMAP, PC_TLS_NONE, 143},
    {"imaps", PC_PROTO_IMAP, PC_TLS_IMPLICIT, 993},
    {"imap+starttls", PC_PROTO_IMAP, PC_TLS_STARTTLS, 143},
};

static uint16_t default_port(pc_proto proto, pc_tls_mode tls)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (schemes[i].proto == proto && schemes[i].tls == tls)
            return schemes[i].port;
    return 0;
}

int pc_parse_url(const char *url, pc_proto *proto, pc_tls_mode *tls, char *hostbuf, size_t hostlen,
                 uint16_t *port)
{
    const char *sep = url ? strstr(url, "://") : NULL;
    if (!sep)
        return -1;
    const struct scheme *sc = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i].name) == (size_t)(sep - url) &&
            !strncmp(url, schemes[i].name, (size_t)(sep - url)))
            sc = &schemes[i];
    if (!sc)
        return -1;
    char rest[300];
    size_t n = strlen(sep + 3);
    if (n >= sizeof(rest))
        return -1;
    memcpy(rest, sep + 3, n + 1);
    if (n > 0 && rest[n - 1] == '/')
        rest[n - 1] = '\0';
    if (strpbrk(rest, "/?#@ \t\r\n"))
        return -1;
    uint16_t p;
    if (split_hostport(rest, hostbuf, hostlen, &p, 1) < 0)
        return -1;
    *proto = sc->proto;
    *tls = sc->tls;
    *port = p ? p : sc->port;
    return 0;
}

int pc_net_parse(const char *s, pc_net *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = s ? strchr(s, '/') : NULL;
    size_t n = slash ? (size_t)(slash - s) : (s ? strlen(s) : 0);
    if (n == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    memset(out, 0, sizeof(*out));
    unsigned max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->prefix = max;
    if (slash) {
        unsigned long long v;
        const char *end;
        if (parse_u64(slash + 1, &v, &end) < 0 || *end || v > max)
            return -1;
        out->prefix = (unsigned)v;
    }
    /* A v4-mapped block is stored as IPv4 so that one comparison rule serves both. */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (out->family == AF_INET6 && out->prefix >= 96 && !memcmp(out->addr, mapped, 12)) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= 96;
    }
    /* Host bits are cleared: "192.168.1.1/24" means 192.168.1.0/24. */
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = out->prefix > i * 8 ? out->prefix - i * 8 : 0;
        if (bits < 8)
            out->addr[i] &= (unsigned char)(0xff00u >> bits);
    }
    return 0;
}

int pc_netlist_match(const pc_netlist *l, const struct sockaddr *addr)
{
    unsigned char a[16];
    int family;
    if (!l || !addr)
        return 0;
    if (addr->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
        family = AF_INET;
    } else if (addr->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            memcpy(a, in6->s6_addr + 12, 4);
            family = AF_INET;
        } else {
            memcpy(a, in6->s6_addr, 16);
            family = AF_INET6;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        const pc_net *net = &l->v[i];
        if (net->family != family)
            continue;
        unsigned full = net->prefix / 8, rest = net->prefix % 8;
        if (memcmp(a, net->addr, full))
            continue;
        if (rest && ((a[full] ^ net->addr[full]) & (0xff00u >> rest) & 0xff))
            continue;
        return 1;
    }
    return 0;
}

const pc_opt *pc_opt_get(const pc_opt *map, const char *key)
{
    if (!map || map->kind != PC_OPT_MAP || !key)
        return NULL;
    for (const pc_opt *c = map->child; c; c = c->next)
        if (c->key && !strcmp(c->key, key))
            return c;
    return NULL;
}

const char *pc_opt_str(const pc_opt *map, const char *key, const char *def)
{
    const pc_opt *n = pc_opt_get(map, key);
    return n && n->kind == PC_OPT_SCALAR ? n->value : def;
}

/* ---- YAML → pc_opt ------------------------------------------------------------------------- */

struct frame {
    pc_opt *node, *last;
    const char *key; /* maps: the key waiting for its value */
    int key_line;
};

static void tree_err(char *err, size_t errlen, const char *file, size_t line, const char *what,
                     const char *detail)
{
    snprintf(err, errlen, "%s:%zu: %s%s%s", file, line, what, detail ? ": " : "",
             detail ? detail : "");
}

/* Adds n under the top frame; in a map, a scalar without a pending key becomes the key. Returns 1
 * when n was taken as a key, 0 when attached, -1 on error. */
static int attach(struct frame *top, pc_opt *n, char *err, size_t errlen)
{
    if (top->node->kind == PC_OPT_MAP) {
        if (!top->key) {
            if (n->kind != PC_OPT_SCALAR) {
                tree_err(err, errlen, n->file, (size_t)n->line, "map keys must be plain strings",
                         NULL);
                return -1;
            }
            if (pc_opt_get(top->node, n->value)) {
                tree_err(err, errlen, n->file, (size_t)n->line, n->value, "duplicate key");
                return -1;
            }
            top->key = n->value;
            top->key_line = n->line;
            return 1;
        }
        n->key = top->key;
        n->line = top->key_line; /* errors point at the key, where the reader looks */
        top->key = NULL;
    }
    if (top->last)
        top->last->next = n;
    else
        top->node->child = n;
    top->last = n;
    return 0;
}

static pc_opt *build_tree(pc_arena *a, FILE *f, const char *file, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_event_t ev;
    struct frame st[MAX_DEPTH];
    int depth = 0, docs = 0, done = 0;
    pc_opt *root = NULL;

    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errlen, "%s: out of memory", file);
        return NULL;
    }
    yaml_parser_set_input_file(&p, f);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            char detail[256];
            snprintf(detail, sizeof(detail), "%s%s%s", p.problem ? p.problem : "syntax error",
                     p.context ? " " : "", p.context ? p.context : "");
            tree_err(err, errlen, file, p.problem_mark.line + 1, "invalid YAML", detail);
            root = NULL;
            break;
        }
        size_t line = ev.start_mark.line + 1;
        pc_opt *n = NULL;
        int fail = 0;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                tree_err(err, errlen, file, line, "only one YAML document is allowed", NULL);
                fail = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            tree_err(err, errlen, file, line, "YAML aliases are not supported", NULL);
            fail = 1;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            n = pc_arena_alloc(a, sizeof(*n));
            if (!n) {
                snprintf(err, errlen, "%s: out of memory", file);
                fail = 1;
                break;
            }
            n->line = line > INT_MAX ? INT_MAX : (int)line;
            n->file = file;
            if (ev.type == YAML_SCALAR_EVENT) {
                const char *v = (const char *)ev.data.scalar.value;
                size_t len = ev.data.scalar.length;
                n->kind = PC_OPT_SCALAR;
                if (strlen(v) != len) {
                    tree_err(err, errlen, file, line, "a value contains a NUL byte", NULL);
                    fail = 1;
                    break;
                }
                /* A plain null (~, null, nothing) is the empty string: "use the default". */
                if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                    (!strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
                     !strcmp(v, "NULL")))
                    v = "";
                if (!(n->value = pc_arena_strdup(a, v))) {
                    snprintf(err, errlen, "%s: out of memory", file);
                    fail = 1;
                    break;
                }
            } else {
                n->kind = ev.type == YAML_SEQUENCE_START_EVENT ? PC_OPT_SEQ : PC_OPT_MAP;
            }
            if (depth == 0) {
                root = n;
            } else if (attach(&st[depth - 1], n, err, errlen) < 0) {
                fail = 1;
                break;
            }
            if (n->kind != PC_OPT_SCALAR) {
                if (depth == MAX_DEPTH) {
                    tree_err(err, errlen, file, line, "nesting too deep", NULL);
                    fail = 1;
                    break;
                }
                st[depth++] = (struct frame){.node = n};
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: depth--; break;
        default: break;
        }
        yaml_event_delete(&ev);
        if (fail) {
            root = NULL;
            break;
        }
    }
    yaml_parser_delete(&p);
    if (done && !root) { /* an empty file is an empty map: the checks then name what is missing */
        root = pc_arena_alloc(a, sizeof(*root));
        if (root) {
            root->kind = PC_OPT_MAP;
            root->line = 1;
            root->file = file;
        } else {
            snprintf(err, errlen, "%s: out of memory", file);
        }
    }
    return root;
}

/* ---- tables ------------------------------------------------------------------------------------
 */

typedef enum {
    F_STR,      /* char *; flags below add checks */
    F_UINT,     /* unsigned, decimal, in [min, max] */
    F_SIZE,     /* size_t, "50M", in [min, max] */
    F_DURATION, /* unsigned ms, "30s", > 0 */
    F_BOOL,     /* int 0/1 */
    F_ENUM,     /* int from names[] → values[] */
    F_STRENUM,  /* char *, one of names[] */
    F_WORKERS,  /* unsigned: "auto" (or 0) = 0, or a number up to 1024 */
    F_STRLIST,  /* pc_strlist; a sequence or a single string */
    F_NETLIST,  /* pc_netlist; a sequence or a single string */
    F_ADDRS,    /* struct sockaddr_storage * at off, size_t count at off2 */
    F_HOSTPORT, /* char *host at off, uint16_t port at off2 (0 when absent) */
    F_SECTION,  /* a map with its own table, struct at off */
    F_SEQ,      /* a sequence of maps: array at off, size_t count at off2 */
    F_OPT,      /* const pc_opt * to any subtree, kept for a filter */
} ftype;

enum {
    REQUIRED = 1, /* no default: must be given */
    READABLE = 2, /* a file we must be able to read now (before privileges drop) */
    ABSPATH = 4,  /* an absolute path */
    HOSTNAME = 8, /* a DNS name: letters, digits, '-', '.', '_' */
};

struct ctx;
typedef struct section section;

typedef struct field {
    const char *key;
    ftype type;
    const char *def; /* default, parsed like a value from the file; lists: comma-separated */
    size_t off, off2;
    unsigned long long min, max; /* numbers; max 0 = the type's maximum */
    const char *const *names;    /* enums, NULL-terminated */
    const int *values;
    const section *sub;
    unsigned flags;
} field;

struct section {
    const field *fields;
    size_t elem_size; /* sequences: one element */
    /* Cross-field checks and computed defaults, after every field is converted. */
    int (*finish)(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where, size_t index);
};

struct ctx {
    pc_arena *a;
    pc_config *cfg;
    const char *file;
    char *err;
    size_t errlen;
    char path[512];
    size_t plen;
};

static size_t path_push(struct ctx *c, const char *key, long index)
{
    size_t old = c->plen;
    int n;
    if (key)
        n = snprintf(c->path + old, sizeof(c->path) - old, "%s%s", old ? "." : "", key);
    else
        n = snprintf(c->path + old, sizeof(c->path) - old, "[%ld]", index);
    if (n > 0)
        c->plen = old + (size_t)n < sizeof(c->path) ? old + (size_t)n : sizeof(c->path) - 1;
    return old;
}

static void path_pop(struct ctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, const pc_opt *n,
                                                      const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->file)
        snprintf(c->err, c->errlen, "%s:%d: %s: %s", c->file, n && n->line ? n->line : 1,
                 c->plen ? c->path : "(top)", msg);
    else
        snprintf(c->err, c->errlen, "command line: %s: %s", c->plen ? c->path : "(top)", msg);
    return -1;
}

static const char *const proto_names[] = {"smtp", "pop3", "imap", NULL};
static const int proto_values[] = {PC_PROTO_SMTP, PC_PROTO_POP3, PC_PROTO_IMAP};
static const char *const tls_names[] = {"none", "starttls", "implicit", NULL};
static const int tls_values[] = {PC_TLS_NONE, PC_TLS_STARTTLS, PC_TLS_IMPLICIT};
static const char *const ident_names[] = {"none", "xclient", "proxy", "imap_id", NULL};
static const int ident_values[] = {PC_IDENT_NONE, PC_IDENT_XCLIENT, PC_IDENT_PROXY,
                                   PC_IDENT_IMAP_ID};
static const char *const onerr_names[] = {"tempfail", "continue", "reject", NULL};
static const int onerr_values[] = {PC_ONERR_TEMPFAIL, PC_ONERR_CONTINUE, PC_ONERR_REJECT};
static const char *const fmode_names[] = {"enforce", "monitor", NULL};
static const char *const bare_lf_names[] = {"reject", "normalize", NULL};
static const char *const ptauth_names[] = {"never", "allow", NULL};
static const char *const oversize_names[] = {"pass", "refuse", NULL};
static const int zero_one[] = {0, 1};
static const char *const target_names[] = {"stderr", "syslog", NULL};
static const char *const level_names[] = {"error", "warning", "notice", "info", "debug", NULL};
static const int level_values[] = {PC_LOG_ERR, PC_LOG_WARN, PC_LOG_NOTICE, PC_LOG_INFO,
                                   PC_LOG_DEBUG};
static const char *const tlsver_names[] = {"TLSv1.2", "TLSv1.3", NULL};

#define MOZILLA_INTERMEDIATE                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

static int finish_top(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);
static int finish_listener(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);
static int finish_spool(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);

/* clang-format off */
#define KEY(k, t, d, o) .key = k, .type = t, .def = d, .off = o
#define END {.key = NULL} /* the end of a table */
#define L(f) offsetof(pc_listener_cfg, f)
#define U(f) offsetof(pc_upstream_cfg, f)
#define T(f) offsetof(pc_tls_cfg, f)
#define G(f) offsetof(pc_config, f)
#define CE(f) offsetof(pc_cert_cfg, f)
#define LIM(f) offsetof(pc_smtp_limits, f)
#define TMO(f) offsetof(pc_smtp_timeouts, f)
#define FU(f) offsetof(pc_filter_use, f)
#define MB(f) offsetof(pc_mbox_cfg, f)

static const section cert_sec = {.elem_size = sizeof(pc_cert_cfg), .fields = (const field[]){
    {KEY("cert", F_STR, NULL, CE(cert_file)), .flags = REQUIRED | READABLE},
    {KEY("key", F_STR, NULL, CE(key_file)), .flags = REQUIRED | READABLE},
    END}};

static const section tls_sec = {.fields = (const field[]){
    {KEY("mode", F_ENUM, "none", T(mode)), .names = tls_names, .values = tls_values},
    {KEY("certificates", F_SEQ, NULL, T(certs)), .off2 = T(ncerts), .sub = &cert_sec},
    {KEY("min_version", F_STRENUM, "TLSv1.2", T(min_version)), .names = tlsver_names},
    {KEY("ciphers", F_STR, MOZILLA_INTERMEDIATE, T(ciphers))},
    {KEY("ciphersuites", F_STR, NULL, T(ciphersuites))},
    {KEY("handshake_timeout", F_DURATION, "30s", T(handshake_timeout_ms))},
    {KEY("handshakes_per_minute", F_UINT, "60", T(handshakes_per_minute))},
    END}};

/* proxy_protocol and smtp are maps of listener fields: their offsets count from their base. */
static const section proxy_sec = {.fields = (const field[]){
    {KEY("trusted", F_NETLIST, NULL, 0)},
    END}};

static const section smtp_sec = {.fields = (const field[]){
    {KEY("bare_lf", F_ENUM, "reject", L(bare_lf_normalize)), .names = bare_lf_names, .values = zero_one},
    {KEY("plaintext_auth", F_ENUM, "never", L(plaintext_auth)), .names = ptauth_names, .values = zero_one},
    END}};

static const section limits_sec = {.fields = (const field[]){
    {KEY("line_length", F_SIZE, "512", LIM(line_length)), .min = 1, .max = 65536},
    {KEY("text_line_length", F_SIZE, "1000", LIM(text_line_length)), .min = 1, .max = 1048576},
    {KEY("message_size", F_SIZE, "50M", LIM(message_size)), .min = 1},
    {KEY("recipients", F_UINT, "100", LIM(recipients)), .min = 1},
    {KEY("errors", F_UINT, "10", LIM(errors)), .min = 1},
    {KEY("max_received", F_UINT, "30", LIM(max_received)), .min = 1},
    {KEY("auth_failures", F_UINT, "3", LIM(auth_failures)), .min = 1},
    {KEY("pregreet_bytes", F_UINT, "0", LIM(pregreet_bytes)), .max = 65536},
    END}};

static const section timeouts_sec = {.fields = (const field[]){
    {KEY("greeting", F_DURATION, "5m", TMO(greeting_ms))},
    {KEY("command", F_DURATION, "5m", TMO(command_ms))},
    {KEY("data_block", F_DURATION, "3m", TMO(data_block_ms))},
    {KEY("data_end", F_DURATION, "10m", TMO(data_end_ms))},
    END}};

/* POP3/IMAP listeners. Keys without a default here get the protocol's own in finish_listener. */
static const section mailbox_sec = {.fields = (const field[]){
    {KEY("plaintext_auth", F_ENUM, "never", MB(plaintext_auth)), .names = ptauth_names, .values = zero_one},
    {KEY("line_length", F_SIZE, NULL, MB(line_length)), .min = 64, .max = 65536},
    {KEY("literal_max", F_SIZE, "50M", MB(literal_max)), .min = 1},
    {KEY("nonsync_literal_max", F_SIZE, "4K", MB(nonsync_literal_max)), .max = 1048576},
    {KEY("scan_max", F_SIZE, "50M", MB(scan_max)), .min = 1},
    {KEY("oversize", F_ENUM, "pass", MB(oversize_refuse)), .names = oversize_names, .values = zero_one},
    {KEY("auth_failures", F_UINT, "3", MB(auth_failures)), .min = 1},
    {KEY("errors", F_UINT, "10", MB(errors)), .min = 1},
    {KEY("prelogin_timeout", F_DURATION, "3m", MB(prelogin_timeout_ms))},
    {KEY("idle_timeout", F_DURATION, NULL, MB(idle_timeout_ms))},
    {KEY("verdict_cache", F_UINT, "10000", MB(verdict_cache))},
    END}};

static const section upstream_sec = {.fields = (const field[]){
    {KEY("name", F_STR, NULL, U(name)), .flags = HOSTNAME},
    {KEY("address", F_HOSTPORT, NULL, U(host)), .off2 = U(port), .flags = REQUIRED},
    {KEY("protocol", F_ENUM, NULL, U(proto)), .names = proto_names, .values = proto_values},
    {KEY("tls", F_ENUM, "none", U(tls)), .names = tls_names, .values = tls_values},
    {KEY("verify", F_BOOL, "true", U(verify))},
    {KEY("ca_file", F_STR, NULL, U(ca_file)), .flags = READABLE},
    {KEY("sni", F_STR, NULL, U(sni)), .flags = HOSTNAME},
    {KEY("client_cert", F_STR, NULL, U(client_cert)), .flags = READABLE},
    {KEY("client_key", F_STR, NULL, U(client_key)), .flags = READABLE},
    {KEY("client_identity", F_ENUM, "none", U(identity)), .names = ident_names, .values = ident_values},
    {KEY("helo_name", F_STR, NULL, U(helo_name)), .flags = HOSTNAME},
    {KEY("connect_timeout", F_DURATION, "30s", U(connect_timeout_ms))},
    {KEY("reply_timeout", F_DURATION, "5m", U(reply_timeout_ms))},
    {KEY("data_timeout", F_DURATION, "10m", U(data_timeout_ms))},
    END}};

static const section filter_sec = {.elem_size = sizeof(pc_filter_use), .fields = (const field[]){
    {KEY("name", F_STR, NULL, FU(name)), .flags = REQUIRED | HOSTNAME},
    {KEY("timeout", F_DURATION, "30s", FU(timeout_ms))},
    {KEY("on_error", F_ENUM, "tempfail", FU(on_error)), .names = onerr_names, .values = onerr_values},
    {KEY("mode", F_ENUM, "enforce", FU(monitor)), .names = fmode_names, .values = zero_one},
    {KEY("options", F_OPT, NULL, FU(options))},
    END}};

static const section listener_sec = {.elem_size = sizeof(pc_listener_cfg), .finish = finish_listener,
                                     .fields = (const field[]){
    {KEY("name", F_STR, NULL, L(name)), .flags = HOSTNAME},
    {KEY("protocol", F_ENUM, "smtp", L(proto)), .names = proto_names, .values = proto_values},
    {KEY("listen", F_ADDRS, NULL, L(addrs)), .off2 = L(naddrs), .flags = REQUIRED},
    {KEY("hostname", F_STR, NULL, L(hostname)), .flags = HOSTNAME},
    {KEY("tls", F_SECTION, NULL, L(tls)), .sub = &tls_sec},
    {KEY("require_tls", F_BOOL, "false", L(require_tls))},
    {KEY("proxy_protocol", F_SECTION, NULL, L(proxy_trusted)), .sub = &proxy_sec},
    {KEY("trusted_networks", F_NETLIST, "127.0.0.0/8,::1/128", L(trusted_networks))},
    {KEY("accepted_domains", F_STRLIST, NULL, L(accepted_domains)), .flags = HOSTNAME},
    {KEY("max_connections_per_ip", F_UINT, "50", L(max_connections_per_ip)), .min = 1},
    {KEY("smtp", F_SECTION, NULL, 0), .sub = &smtp_sec},
    {KEY("limits", F_SECTION, NULL, L(limits)), .sub = &limits_sec},
    {KEY("timeouts", F_SECTION, NULL, L(timeouts)), .sub = &timeouts_sec},
    {KEY("mailbox", F_SECTION, NULL, L(mailbox)), .sub = &mailbox_sec},
    {KEY("upstream", F_SECTION, NULL, L(upstream)), .sub = &upstream_sec},
    {KEY("filters", F_SEQ, NULL, L(filters)), .off2 = L(nfilters), .sub = &filter_sec},
    END}};

/* log and spool are maps of top-level fields: their offsets count from pc_config. */
static const section log_sec = {.fields = (const field[]){
    {KEY("target", F_STRENUM, "stderr", G(log_target)), .names = target_names},
    {KEY("level", F_ENUM, "info", G(log_level)), .names = level_names, .values = level_values},
    END}};

static const section spool_sec = {.finish = finish_spool, .fields = (const field[]){
    {KEY("directory", F_STR, "/var/tmp", G(spool_dir)), .flags = ABSPATH},
    {KEY("memory_threshold", F_SIZE, "4M", G(spool_memory_threshold)), .min = 1},
    {KEY("memory_total", F_SIZE, "256M", G(spool_memory_total)), .min = 1},
    {KEY("disk_total", F_SIZE, "4G", G(spool_disk_total)), .min = 1},
    END}};

/* The resolver for filters: servers are "ip" or "ip:port", IPv6 in brackets; see finish_resolver. */
#define RS(f) offsetof(pc_resolver_cfg, f)
static int finish_resolver(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);
static const section resolver_sec = {.finish = finish_resolver, .fields = (const field[]){
    {KEY("servers", F_STRLIST, NULL, RS(servers))},
    {KEY("timeout", F_DURATION, "2s", RS(timeout_ms))},
    {KEY("attempts", F_UINT, "2", RS(attempts)), .min = 1, .max = 10},
    {KEY("cache_size", F_UINT, "10000", RS(cache_size)), .max = 10000000},
    {KEY("max_ttl", F_DURATION, "1d", RS(max_ttl_ms))},
    {KEY("negative_ttl", F_DURATION, "15m", RS(negative_ttl_ms))},
    END}};

static const section top_sec = {.finish = finish_top, .fields = (const field[]){
    {KEY("workers", F_WORKERS, "auto", G(workers))},
    {KEY("user", F_STR, NULL, G(user))},
    {KEY("group", F_STR, NULL, G(group))},
    {KEY("log", F_SECTION, NULL, 0), .sub = &log_sec},
    {KEY("max_connections", F_UINT, "10000", G(max_connections)), .min = 1},
    {KEY("spool", F_SECTION, NULL, 0), .sub = &spool_sec},
    {KEY("shutdown_timeout", F_DURATION, "30s", G(shutdown_timeout_ms))},
    {KEY("threadpool_size", F_UINT, "4", G(threadpool_size)), .min = 1, .max = 1024},
    {KEY("plugins", F_STRLIST, NULL, G(plugins)), .flags = ABSPATH},
    {KEY("listeners", F_SEQ, NULL, G(listeners)), .off2 = G(nlisteners), .sub = &listener_sec, .flags = REQUIRED},
    {KEY("resolver", F_SECTION, NULL, G(resolver)), .sub = &resolver_sec},
    END}};
/* clang-format on */

/* ---- conversion --------------------------------------------------------------------------------
 */

static int apply_section(struct ctx *c, const section *s, const pc_opt *map, const pc_opt *where,
                         char *base, size_t index);

static const char *kind_name(pc_opt_kind k)
{
    return k == PC_OPT_MAP ? "a map" : k == PC_OPT_SEQ ? "a list" : "a single value";
}

static int want_scalar(struct ctx *c, const pc_opt *n)
{
    if (n->kind != PC_OPT_SCALAR)
        return fail(c, n, "expected a single value, found %s", kind_name(n->kind));
    return 0;
}

static int valid_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || *s == '.' || *s == '-' || strstr(s, ".."))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

/* Strings end up in greetings, headers, paths and log lines: no control characters anywhere. */
static int check_string(struct ctx *c, const pc_opt *n, unsigned flags)
{
    for (const unsigned char *p = (const unsigned char *)n->value; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return fail(c, n, "control characters are not allowed");
    if ((flags & HOSTNAME) && !valid_hostname(n->value))
        return fail(c, n, "\"%s\" is not a valid name (letters, digits, '-', '.', '_')", n->value);
    if ((flags & ABSPATH) && n->value[0] != '/')
        return fail(c, n, "expected an absolute path");
    if ((flags & READABLE) && access(n->value, R_OK) < 0)
        return fail(c, n, "cannot read %s: %s", n->value, strerror(errno));
    return 0;
}

static int enum_value(struct ctx *c, const field *f, const pc_opt *n, int *idx)
{
    for (int i = 0; f->names[i]; i++)
        if (!strcmp(n->value, f->names[i])) {
            *idx = i;
            return 0;
        }
    char list[200] = "";
    for (int i = 0; f->names[i]; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", f->names[i]);
    }
    return fail(c, n, "expected one of %s", list);
}

static int range(struct ctx *c, const pc_opt *n, const field *f, unsigned long long v,
                 unsigned long long tmax)
{
    unsigned long long max = f->max ? f->max : tmax;
    if (v < f->min || v > max) {
        if (f->min == 1 && max == tmax)
            return fail(c, n, "must be greater than 0");
        return fail(c, n, "must be between %llu and %llu", f->min, max);
    }
    return 0;
}

/* Items of a list value: a sequence of scalars, or one scalar standing for a list of one. */
static int list_items(struct ctx *c, const pc_opt *n, const pc_opt **first, size_t *count)
{
    if (n->kind == PC_OPT_MAP)
        return fail(c, n, "expected a list, found a map");
    *first = n->kind == PC_OPT_SEQ ? n->child : n;
    *count = 0;
    for (const pc_opt *i = *first; i; i = n->kind == PC_OPT_SEQ ? i->next : NULL) {
        if (i->kind != PC_OPT_SCALAR || !i->value[0]) {
            size_t old = path_push(c, NULL, (long)*count);
            fail(c, i, "expected a single value");
            path_pop(c, old);
            return -1;
        }
        ++*count;
    }
    return 0;
}

#define FOR_ITEMS(it, first, n)                                                                    \
    for (it = (first); it; it = (n)->kind == PC_OPT_SEQ ? it->next : NULL)

static int conv_list(struct ctx *c, const field *f, const pc_opt *n, char *base)
{
    const pc_opt *first = NULL, *it;
    size_t count = 0, i = 0;
    if (list_items(c, n, &first, &count) < 0)
        return -1;
    size_t esz = f->type == F_STRLIST   ? sizeof(char *)
                 : f->type == F_NETLIST ? sizeof(pc_net)
                                        : sizeof(struct sockaddr_storage);
    if (f->type == F_ADDRS && count == 0)
        return fail(c, n, "at least one address is required");
    void *arr = count ? pc_arena_alloc(c->a, count * esz) : NULL;
    if (count && !arr)
        return fail(c, n, "out of memory");
    FOR_ITEMS(it, first, n)
    {
        size_t old = n->kind == PC_OPT_SEQ ? path_push(c, NULL, (long)i) : c->plen;
        int r = 0;
        if (f->type == F_STRLIST) {
            r = check_string(c, it, f->flags);
            if (!r && !(((char **)arr)[i] = pc_arena_strdup(c->a, it->value)))
                r = fail(c, it, "out of memory");
        } else if (f->type == F_NETLIST) {
            if (pc_net_parse(it->value, &((pc_net *)arr)[i]) < 0)
                r = fail(c, it, "\"%s\" is not an address or ADDRESS/PREFIX", it->value);
        } else if (pc_parse_hostport(it->value, &((struct sockaddr_storage *)arr)[i]) < 0) {
            r = fail(c, it,
                     "\"%s\" is not ADDRESS:PORT with a numeric address (0.0.0.0:25, [::]:25)",
                     it->value);
        }
        path_pop(c, old);
        if (r < 0)
            return -1;
        i++;
    }
    if (f->type == F_STRLIST)
        *(pc_strlist *)(void *)(base + f->off) = (pc_strlist){arr, count};
    else if (f->type == F_NETLIST)
        *(pc_netlist *)(void *)(base + f->off) = (pc_netlist){arr, count};
    else {
        *(struct sockaddr_storage **)(void *)(base + f->off) = arr;
        *(size_t *)(void *)(base + f->off2) = count;
    }
    return 0;
}

static int conv_seq(struct ctx *c, const field *f, const pc_opt *n, char *base)
{
    if (n->kind != PC_OPT_SEQ)
        return fail(c, n, "expected a list, found %s", kind_name(n->kind));
    size_t count = 0;
    for (const pc_opt *i = n->child; i; i = i->next)
        count++;
    if (count == 0 && (f->flags & REQUIRED))
        return fail(c, n, "at least one entry is required");
    char *arr = count ? pc_arena_alloc(c->a, count * f->sub->elem_size) : NULL;
    if (count && !arr)
        return fail(c, n, "out of memory");
    size_t idx = 0;
    for (const pc_opt *i = n->child; i; i = i->next, idx++) {
        size_t old = path_push(c, NULL, (long)idx);
        int r = i->kind == PC_OPT_MAP
                    ? apply_section(c, f->sub, i, i, arr + idx * f->sub->elem_size, idx)
                    : fail(c, i, "expected a map, found %s", kind_name(i->kind));
        path_pop(c, old);
        if (r < 0)
            return -1;
    }
    *(void **)(void *)(base + f->off) = arr;
    *(size_t *)(void *)(base + f->off2) = count;
    return 0;
}

static int conv_field(struct ctx *c, const field *f, const pc_opt *n, char *base)
{
    void *dst = base + f->off;
    unsigned long long v;
    const char *end;
    int idx;

    switch (f->type) {
    case F_SECTION:
        if (n->kind != PC_OPT_MAP)
            return fail(c, n, "expected a map, found %s", kind_name(n->kind));
        return apply_section(c, f->sub, n, n, dst, (size_t)-1);
    case F_SEQ: return conv_seq(c, f, n, base);
    case F_OPT: *(const pc_opt **)dst = n; return 0;
    case F_STRLIST:
    case F_NETLIST:
    case F_ADDRS: return conv_list(c, f, n, base);
    default: break;
    }
    if (want_scalar(c, n) < 0)
        return -1;
    const char *s = n->value;
    switch (f->type) {
    case F_STR:
        if (check_string(c, n, f->flags) < 0)
            return -1;
        if (!(*(char **)dst = pc_arena_strdup(c->a, s)))
            return fail(c, n, "out of memory");
        return 0;
    case F_WORKERS:
        if (!strcmp(s, "auto")) {
            *(unsigned *)dst = 0;
            return 0;
        }
        if (parse_u64(s, &v, &end) < 0 || *end || v > 1024) /* 0 is auto, as in pc_config */
            return fail(c, n, "expected auto or a number up to 1024");
        *(unsigned *)dst = (unsigned)v;
        return 0;
    case F_UINT:
        if (parse_u64(s, &v, &end) < 0 || *end)
            return fail(c, n, "expected a number");
        if (range(c, n, f, v, UINT_MAX) < 0)
            return -1;
        *(unsigned *)dst = (unsigned)v;
        return 0;
    case F_SIZE: {
        size_t sz;
        if (pc_parse_size(s, &sz) < 0)
            return fail(c, n, "expected a size such as 512, 64K, 50M, 4G");
        if (range(c, n, f, sz, SIZE_MAX) < 0)
            return -1;
        *(size_t *)dst = sz;
        return 0;
    }
    case F_DURATION: {
        unsigned ms;
        if (pc_parse_duration_ms(s, &ms) < 0)
            return fail(c, n, "expected a duration such as 250ms, 30s, 5m, 1h");
        if (ms == 0)
            return fail(c, n, "must be greater than 0");
        *(unsigned *)dst = ms;
        return 0;
    }
    case F_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
            *(int *)dst = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
            *(int *)dst = 0;
        else
            return fail(c, n, "expected true or false");
        return 0;
    case F_ENUM:
        if (enum_value(c, f, n, &idx) < 0)
            return -1;
        *(int *)dst = f->values[idx];
        return 0;
    case F_STRENUM:
        if (enum_value(c, f, n, &idx) < 0)
            return -1;
        *(char **)dst = pc_arena_strdup(c->a, f->names[idx]);
        return *(char **)dst ? 0 : fail(c, n, "out of memory");
    case F_HOSTPORT: {
        char host[256];
        uint16_t port;
        if (split_hostport(s, host, sizeof(host), &port, 1) < 0 ||
            (*s != '[' && !valid_hostname(host)))
            return fail(c, n, "expected HOST:PORT, [IPV6]:PORT or HOST");
        if (!(*(char **)dst = pc_arena_strdup(c->a, host)))
            return fail(c, n, "out of memory");
        *(uint16_t *)(void *)(base + f->off2) = port;
        return 0;
    }
    default: return fail(c, n, "internal error: unknown type");
    }
}

/* The node standing for a default: a scalar, or for lists a sequence split at commas. */
static const pc_opt *default_node(struct ctx *c, const field *f, const pc_opt *where)
{
    pc_opt *n = pc_arena_alloc(c->a, sizeof(*n));
    if (!n)
        return NULL;
    n->line = where ? where->line : 0;
    n->file = where ? where->file : NULL;
    n->kind = PC_OPT_SCALAR;
    n->value = f->def;
    if ((f->type != F_NETLIST && f->type != F_STRLIST) || !strchr(f->def, ','))
        return n;
    n->kind = PC_OPT_SEQ;
    n->value = NULL;
    pc_opt **tail = &n->child;
    for (const char *p = f->def; *p;) {
        size_t len = strcspn(p, ",");
        pc_opt *i = pc_arena_alloc(c->a, sizeof(*i));
        char *v = pc_arena_alloc(c->a, len + 1);
        if (!i || !v)
            return NULL;
        memcpy(v, p, len);
        *i = (pc_opt){.kind = PC_OPT_SCALAR, .value = v, .line = n->line, .file = n->file};
        *tail = i;
        tail = &i->next;
        p += len + (p[len] == ',');
    }
    return n;
}

static int apply_section(struct ctx *c, const section *s, const pc_opt *map, const pc_opt *where,
                         char *base, size_t index)
{
    for (const pc_opt *k = map ? map->child : NULL; k; k = k->next) {
        const field *f = s->fields;
        while (f->key && strcmp(f->key, k->key))
            f++;
        if (!f->key) {
            size_t old = path_push(c, k->key, 0);
            fail(c, k, "unknown key");
            path_pop(c, old);
            return -1;
        }
    }
    for (const field *f = s->fields; f->key; f++) {
        const pc_opt *n = pc_opt_get(map, f->key);
        size_t old = path_push(c, f->key, 0);
        int r = 0;
        if (n && n->kind == PC_OPT_SCALAR && !n->value[0])
            n = NULL; /* "key:" with no value means the default */
        if (!n && (f->flags & REQUIRED))
            r = fail(c, where, "required");
        else if (!n && f->type == F_SECTION)
            r = apply_section(c, f->sub, NULL, where, base + f->off, (size_t)-1);
        else if (!n && f->def)
            r = (n = default_node(c, f, where)) ? conv_field(c, f, n, base)
                                                : fail(c, where, "out of memory");
        else if (n)
            r = conv_field(c, f, n, base);
        path_pop(c, old);
        if (r < 0)
            return -1;
    }
    return s->finish ? s->finish(c, base, map, where, index) : 0;
}

/* ---- cross-field checks ------------------------------------------------------------------------
 */

static const pc_opt *at(const pc_opt *map, const char *key, const pc_opt *where)
{
    const pc_opt *n = pc_opt_get(map, key);
    return n ? n : where;
}

static int fail_key(struct ctx *c, const char *key, const pc_opt *n, const char *msg)
{
    size_t old = path_push(c, key, 0);
    fail(c, n, "%s", msg);
    path_pop(c, old);
    return -1;
}

static int finish_spool(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                        size_t index)
{
    (void)index;
    pc_config *cfg = base;
    if (cfg->spool_memory_threshold > cfg->spool_memory_total)
        return fail_key(c, "memory_threshold", at(map, "memory_threshold", where),
                        "must not exceed memory_total");
    return 0;
}

static int finish_listener(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                           size_t index)
{
    pc_listener_cfg *l = base;
    pc_upstream_cfg *u = &l->upstream;
    const pc_opt *tls = pc_opt_get(map, "tls"), *up = pc_opt_get(map, "upstream");
    char buf[256];

    /* The mailbox protocols' own defaults: RFC 2449 line, RFC 1939 §3 / RFC 9051 §5.4 timers. */
    if (!l->mailbox.line_length)
        l->mailbox.line_length = l->proto == PC_PROTO_IMAP ? 8192 : 255;
    if (!l->mailbox.idle_timeout_ms)
        l->mailbox.idle_timeout_ms = l->proto == PC_PROTO_IMAP ? 30 * 60 * 1000 : 10 * 60 * 1000;
    if (!l->name) {
        snprintf(buf, sizeof(buf), "listener%zu", index);
        l->name = pc_arena_strdup(c->a, buf);
    }
    if (!l->hostname) {
        if (gethostname(buf, sizeof(buf) - 1) < 0)
            buf[0] = '\0';
        buf[sizeof(buf) - 1] = '\0';
        if (!valid_hostname(buf))
            strcpy(buf, "localhost");
        l->hostname = pc_arena_strdup(c->a, buf);
    }
    if (l->tls.mode != PC_TLS_NONE && l->tls.ncerts == 0) {
        size_t old = path_push(c, "tls", 0);
        fail_key(c, "certificates", at(tls, "certificates", at(map, "tls", where)),
                 l->tls.mode == PC_TLS_STARTTLS ? "required when mode is starttls"
                                                : "required when mode is implicit");
        path_pop(c, old);
        return -1;
    }
    if (l->require_tls && l->tls.mode == PC_TLS_NONE)
        return fail_key(c, "require_tls", at(map, "require_tls", where),
                        "needs tls.mode starttls or implicit");

    size_t old = path_push(c, "upstream", 0);
    int r = 0;
    const pc_opt *pn = pc_opt_get(up, "protocol");
    if (pn && u->proto != l->proto)
        r = fail_key(c, "protocol", pn, "must be the listener's protocol");
    u->proto = l->proto;
    if (!r && u->identity == PC_IDENT_XCLIENT && u->proto != PC_PROTO_SMTP)
        r = fail_key(c, "client_identity", at(up, "client_identity", where),
                     "xclient needs protocol smtp");
    if (!r && u->identity == PC_IDENT_IMAP_ID && u->proto != PC_PROTO_IMAP)
        r = fail_key(c, "client_identity", at(up, "client_identity", where),
                     "imap_id needs protocol imap");
    if (!r && !u->client_cert != !u->client_key)
        r = fail_key(c, u->client_cert ? "client_key" : "client_cert", at(up, "client_cert", where),
                     "client_cert and client_key go together");
    path_pop(c, old);
    if (r < 0)
        return -1;
    if (u->port == 0)
        u->port = default_port(u->proto, u->tls);
    if (!u->name)
        u->name = l->name;
    if (!u->helo_name)
        u->helo_name = l->hostname;
    if (!u->sni)
        u->sni = u->host;
    if (!l->name || !l->hostname)
        return fail(c, where, "out of memory");
    return 0;
}

/* Each server must be a numeric address with an optional port (53); it is rewritten as
 * "ip:port" or "[ip6]:port", the form c-ares takes. */
static int finish_resolver(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                           size_t index)
{
    (void)index;
    pc_resolver_cfg *r = base;
    const pc_opt *list = at(map, "servers", where);
    for (size_t i = 0; i < r->servers.n; i++) {
        char host[INET6_ADDRSTRLEN + 1], buf[INET6_ADDRSTRLEN + 16];
        unsigned char a[16];
        uint16_t port;
        const char *s = r->servers.v[i];
        int v6 = *s == '[';
        const char *tail = v6 ? strchr(s, ']') : strchr(s, ':');
        if (tail && v6)
            tail = tail[1] ? tail + 1 : NULL;
        if (split_hostport(s, host, sizeof(host), &port, 1) < 0 ||
            inet_pton(v6 ? AF_INET6 : AF_INET, host, a) != 1 || (tail && !port)) {
            char msg[200];
            snprintf(msg, sizeof(msg), "\"%.80s\" is not IP, IP:PORT or [IPV6]:PORT", s);
            return fail_key(c, "servers", list, msg);
        }
        snprintf(buf, sizeof(buf), v6 ? "[%s]:%u" : "%s:%u", host, port ? port : 53u);
        if (!(r->servers.v[i] = pc_arena_strdup(c->a, buf)))
            return fail(c, where, "out of memory");
    }
    return 0;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

static int finish_top(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                      size_t index)
{
    (void)index;
    pc_config *cfg = base;
    const pc_opt *seq = pc_opt_get(map, "listeners"), *item = seq ? seq->child : NULL;
    for (size_t i = 0; i < cfg->nlisteners; i++, item = item ? item->next : NULL) {
        const pc_listener_cfg *l = &cfg->listeners[i];
        const pc_opt *in = item ? item : where;
        for (size_t j = 0; j < i; j++) {
            const pc_listener_cfg *o = &cfg->listeners[j];
            const char *dup = NULL;
            if (!strcmp(l->name, o->name))
                dup = "name";
            for (size_t a = 0; !dup && a < l->naddrs; a++)
                for (size_t b = 0; !dup && b < o->naddrs; b++)
                    if (same_addr(&l->addrs[a], &o->addrs[b]))
                        dup = "listen";
            if (dup) {
                size_t old = path_push(c, "listeners", 0);
                path_push(c, NULL, (long)i);
                char msg[160];
                snprintf(msg, sizeof(msg), "%s already used by listeners[%zu]",
                         !strcmp(dup, "name") ? "name" : "an address", j);
                fail_key(c, dup, at(in, dup, in), msg);
                path_pop(c, old);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------------
 */

pc_config *pc_config_from_opt(pc_arena *a, pc_opt *root, const char *file, char *err, size_t errlen)
{
    struct ctx c = {.a = a, .err = err, .errlen = errlen};
    pc_config *cfg = pc_arena_alloc(a, sizeof(*cfg));
    if (!cfg || (file && !(c.file = pc_arena_strdup(a, file)))) {
        snprintf(err, errlen, "%s: out of memory", file ? file : "command line");
        pc_arena_free(a);
        return NULL;
    }
    c.cfg = cfg;
    if (!root || root->kind != PC_OPT_MAP) {
        fail(&c, root, "the configuration must be a map of keys");
        pc_arena_free(a);
        return NULL;
    }
    if (apply_section(&c, &top_sec, root, root, (char *)cfg, (size_t)-1) < 0) {
        pc_arena_free(a);
        return NULL;
    }
    cfg->file = (char *)c.file;
    cfg->opt_root = root;
    cfg->arena = a;
    return cfg;
}

pc_config *pc_config_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    pc_arena *a = pc_arena_new();
    const char *file = a ? pc_arena_strdup(a, path) : NULL;
    pc_opt *root = file ? build_tree(a, f, file, err, errlen) : NULL;
    if (!file)
        snprintf(err, errlen, "%s: out of memory", path);
    fclose(f);
    if (!root) {
        pc_arena_free(a);
        return NULL;
    }
    return pc_config_from_opt(a, root, path, err, errlen);
}

void pc_config_free(pc_config *cfg)
{
    if (cfg)
        pc_arena_free(cfg->arena); /* cfg itself lives in the arena */
}

/* ---- the list of keys --------------------------------------------------------------------------
 */

static size_t collect_keys(const section *s, const char *prefix, const char **out, size_t n,
                           size_t cap, char **store, size_t *left)
{
    for (const field *f = s->fields; f->key; f++) {
        int len = snprintf(*store, *left, "%s%s%s", prefix, *prefix ? "." : "", f->key);
        if (len < 0 || (size_t)len >= *left || n + 1 >= cap)
            return n;
        out[n++] = *store;
        char *mine = *store;
        *store += (size_t)len + 1;
        *left -= (size_t)len + 1;
        if (f->sub)
            n = collect_keys(f->sub, mine, out, n, cap, store, left);
    }
    return n;
}

const char *const *pc_config_known_keys(void)
{
    static char storage[8192];
    static const char *keys[256];
    static int built;
    if (!built) { /* built once, before threads start; the tables never change */
        char *store = storage;
        size_t left = sizeof(storage);
        size_t n =
            collect_keys(&top_sec, "", keys, 0, sizeof(keys) / sizeof(keys[0]), &store, &left);
        keys[n] = NULL;
        built = 1;
    }
    return keys;
}
