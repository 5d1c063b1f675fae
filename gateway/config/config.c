/* config.c — YAML file → generic pc_opt tree (every node with file and line) → validated pc_config
 * through one typed table per section (key, type, default, check, offset), the cross-field checks
 * and the entry points. The YAML reader is tree.c, the value parsers values.c. */
#include "config/config.h"

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

#include "base/log.h"
#include "config/loader.h"

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
    F_SCORE,    /* double, a score threshold > 0 ("5", "7.5") */
} ftype;

enum {
    REQUIRED = 1,  /* no default: must be given */
    READABLE = 2,  /* a file we must be able to read now (before privileges drop) */
    ABSPATH = 4,   /* an absolute path */
    HOSTNAME = 8,  /* a DNS name: letters, digits, '-', '.', '_' */
    BELOW = 16,    /* with HOSTNAME: a leading '.' (any name below) is allowed */
    MAILADDR = 32, /* user@domain, @domain or domain */
    ZERO_OK = 64,  /* durations: 0 is allowed */
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
static int finish_filter(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);

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
    {KEY("size_headroom", F_SIZE, "16K", LIM(size_headroom)), .max = 1048576},
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

static const section filter_sec = {.elem_size = sizeof(pc_filter_use), .finish = finish_filter, .fields = (const field[]){
    {KEY("name", F_STR, NULL, FU(name)), .flags = REQUIRED | HOSTNAME},
    {KEY("timeout", F_DURATION, "30s", FU(timeout_ms))},
    {KEY("on_error", F_ENUM, "tempfail", FU(on_error)), .names = onerr_names, .values = onerr_values},
    {KEY("mode", F_ENUM, "enforce", FU(monitor)), .names = fmode_names, .values = zero_one},
    {KEY("options", F_OPT, NULL, FU(options))},
    END}};

#define SC(f) offsetof(pc_scores_cfg, f)
static int finish_scores(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);
static const section scores_sec = {.finish = finish_scores, .fields = (const field[]){
    {KEY("tag", F_SCORE, NULL, SC(tag))},
    {KEY("quarantine", F_SCORE, NULL, SC(quarantine))},
    {KEY("reject", F_SCORE, NULL, SC(reject))},
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
    {KEY("scores", F_SECTION, NULL, L(scores)), .sub = &scores_sec},
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

/* The state store for filters (gateway/store/): absent means none; see finish_state. */
#define ST(f) offsetof(pc_state_cfg, f)
static const char *const state_names[] = {"lmdb", "redis", NULL};
static const int state_values[] = {PC_STATE_LMDB, PC_STATE_REDIS};
static int finish_state(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);
static const section redis_sec = {.fields = (const field[]){
    {KEY("address", F_STR, "127.0.0.1:6379", ST(redis_address))},
    {KEY("password_file", F_STR, NULL, ST(redis_password_file)), .flags = READABLE},
    {KEY("database", F_UINT, "0", ST(redis_db)), .max = 1000},
    {KEY("connect_timeout", F_DURATION, "2s", ST(connect_timeout_ms))},
    {KEY("timeout", F_DURATION, "1s", ST(timeout_ms))},
    END}};
static const section state_sec = {.finish = finish_state, .fields = (const field[]){
    {KEY("backend", F_ENUM, "lmdb", ST(backend)), .names = state_names, .values = state_values},
    {KEY("path", F_STR, "/var/lib/portcullis/state", ST(path)), .flags = ABSPATH},
    {KEY("map_size", F_SIZE, "64M", ST(map_size)), .min = 1 << 20},
    {KEY("prefix", F_STR, "pc:", ST(prefix))},
    {KEY("max_pending", F_UINT, "10000", ST(max_pending)), .min = 1, .max = 1000000},
    {KEY("redis", F_SECTION, NULL, 0), .sub = &redis_sec},
    END}};

/* The quarantine: absent means none (451 as before); see finish_quarantine. */
#define QU(f) offsetof(pc_quarantine_cfg, f)
static int finish_quarantine(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);
static const section quarantine_sec = {.finish = finish_quarantine, .fields = (const field[]){
    {KEY("directory", F_STR, "/var/lib/portcullis/quarantine", QU(directory)), .flags = ABSPATH},
    {KEY("max_age", F_STR, "30d", QU(max_age_text))},
    END}};

#define AD(f) offsetof(pc_admin_cfg, f)
static int finish_admin(struct ctx *, void *, const pc_opt *, const pc_opt *, size_t);
static const section admin_sec = {.finish = finish_admin, .fields = (const field[]){
    {KEY("socket", F_STR, "/run/portcullis/admin.sock", AD(socket)), .flags = ABSPATH},
    {KEY("mode", F_STR, "0660", AD(mode_text))},
    {KEY("group", F_STR, NULL, AD(group))},
    {KEY("max_clients", F_UINT, "16", AD(max_clients)), .min = 1, .max = 1024},
    {KEY("timeout", F_DURATION, "30s", AD(timeout_ms))},
    END}};

static const section authres_sec = {.fields = (const field[]){
    {KEY("authserv_id", F_STR, NULL, G(authserv_id)), .flags = HOSTNAME},
    {KEY("remove_ids", F_STRLIST, NULL, G(authres_drop)), .flags = HOSTNAME},
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
    {KEY("authres", F_SECTION, NULL, 0), .sub = &authres_sec},
    {KEY("state", F_SECTION, NULL, G(state)), .sub = &state_sec},
    {KEY("quarantine", F_SECTION, NULL, G(quarantine)), .sub = &quarantine_sec},
    {KEY("admin", F_SECTION, NULL, G(admin)), .sub = &admin_sec},
    {KEY("policies", F_STR, NULL, G(policies_dir))},
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

/* Strings end up in greetings, headers, paths and log lines: no control characters anywhere. */
static int check_string(struct ctx *c, const pc_opt *n, unsigned flags)
{
    for (const unsigned char *p = (const unsigned char *)n->value; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return fail(c, n, "control characters are not allowed");
    if ((flags & HOSTNAME) &&
        !pc_cfg_valid_hostname(n->value + ((flags & BELOW) && n->value[0] == '.')))
        return fail(c, n, "\"%s\" is not a valid name (letters, digits, '-', '.', '_')", n->value);
    if ((flags & MAILADDR) && !pc_cfg_valid_mailaddr(n->value))
        return fail(c, n, "\"%s\" is not user@domain, @domain or domain", n->value);
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
        if (pc_cfg_parse_u64(s, &v, &end) < 0 || *end || v > 1024) /* 0 is auto, as in pc_config */
            return fail(c, n, "expected auto or a number up to 1024");
        *(unsigned *)dst = (unsigned)v;
        return 0;
    case F_UINT:
        if (pc_cfg_parse_u64(s, &v, &end) < 0 || *end)
            return fail(c, n, "expected a number");
        if (range(c, n, f, v, UINT_MAX) < 0)
            return -1;
        *(unsigned *)dst = (unsigned)v;
        return 0;
    case F_SIZE: {
        size_t sz;
        if (pc_parse_size(s, &sz) < 0)
            return fail(c, n, "expected a size such as 512, 64K, 50M, 4G, got %.64s", s);
        if (range(c, n, f, sz, SIZE_MAX) < 0)
            return -1;
        *(size_t *)dst = sz;
        return 0;
    }
    case F_DURATION: {
        unsigned ms;
        if (pc_parse_duration_ms(s, &ms) < 0)
            return fail(c, n, "expected a duration such as 6s or 500ms, got %.64s", s);
        if (ms == 0 && !(f->flags & ZERO_OK))
            return fail(c, n, "must be greater than 0");
        *(unsigned *)dst = ms;
        return 0;
    }
    case F_SCORE: {
        char *e;
        double d = strtod(s, &e);
        if (e == s || *e || !(d > 0) || d > 1e6)
            return fail(c, n, "expected a score greater than 0, got %.64s", s);
        *(double *)dst = d;
        return 0;
    }
    case F_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
            *(int *)dst = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
            *(int *)dst = 0;
        else
            return fail(c, n, "expected true or false, got %.64s", s);
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
        if (pc_cfg_split_hostport(s, host, sizeof(host), &port, 1) < 0 ||
            (*s != '[' && !pc_cfg_valid_hostname(host)))
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

/* The thresholds, where two are given, rise: tag below quarantine below reject. */
static int finish_scores(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                         size_t index)
{
    (void)index;
    const pc_scores_cfg *sc = base;
    if (sc->tag && sc->quarantine && sc->tag >= sc->quarantine)
        return fail_key(c, "quarantine", at(map, "quarantine", where), "must be greater than tag");
    if (sc->reject &&
        ((sc->quarantine && sc->quarantine >= sc->reject) || (sc->tag && sc->tag >= sc->reject)))
        return fail_key(c, "reject", at(map, "reject", where),
                        "must be greater than tag and quarantine");
    return 0;
}

/* Built-in filters that wait on purpose: the filter's timeout must outlast the wait, or every call
 * times out. The defaults are the filters' own (filters/pregreet/pregreet.c). */
static const struct {
    const char *filter, *option;
    unsigned def_ms;
} filter_waits[] = {
    {"pregreet", "delay", 6000},
};

static int finish_filter(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                         size_t index)
{
    (void)index;
    pc_filter_use *fu = base;
    for (size_t i = 0; i < sizeof(filter_waits) / sizeof(filter_waits[0]); i++) {
        if (strcmp(fu->name, filter_waits[i].filter))
            continue;
        unsigned wait = filter_waits[i].def_ms;
        const char *given = pc_opt_str(fu->options, filter_waits[i].option, NULL);
        if (given && pc_parse_duration_ms(given, &wait) < 0)
            return 0; /* the filter's own init names the bad value, at start and in -t */
        if (fu->timeout_ms <= wait) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "must be longer than the %s filter's %s (%u ms), or it can only time out",
                     fu->name, filter_waits[i].option, wait);
            return fail_key(c, "timeout", at(map, "timeout", where), msg);
        }
    }
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
        if (!pc_cfg_valid_hostname(buf))
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
        u->port = pc_cfg_default_port(u->proto, u->tls);
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

/* No `state:` section: no store. A Redis address is a numeric IP:PORT (no name: resolving it would
 * block a loop) or a UNIX socket's absolute path. */
static int finish_state(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                        size_t index)
{
    (void)index;
    pc_state_cfg *s = base;
    if (!map) {
        s->backend = PC_STATE_NONE;
        return 0;
    }
    if (s->backend != PC_STATE_REDIS || !s->redis_address || s->redis_address[0] == '/')
        return 0;
    char host[INET6_ADDRSTRLEN + 1];
    unsigned char a[16];
    uint16_t port;
    const char *addr = s->redis_address;
    int v6 = *addr == '[';
    if (pc_cfg_split_hostport(addr, host, sizeof(host), &port, 1) < 0 || !port ||
        inet_pton(v6 ? AF_INET6 : AF_INET, host, a) != 1) {
        const pc_opt *r = at(map, "redis", where);
        return fail_key(c, "redis.address", at(r, "address", r),
                        "an IP:PORT, [IPV6]:PORT or a UNIX socket's absolute path");
    }
    return 0;
}

/* max_age: a whole number with s, m, h or d (seconds without), up to 10 years. */
static int finish_quarantine(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                             size_t index)
{
    (void)index;
    pc_quarantine_cfg *q = base;
    q->enabled = map != NULL;
    unsigned long long v, mul = 0;
    const char *u;
    if (pc_cfg_parse_u64(q->max_age_text, &v, &u) == 0) {
        mul = !*u || !strcmp(u, "s") ? 1
              : !strcmp(u, "m")      ? 60
              : !strcmp(u, "h")      ? 3600
              : !strcmp(u, "d")      ? 86400
                                     : 0;
    }
    if (!mul || v == 0 || v > 3650ULL * 86400 / mul)
        return fail_key(c, "max_age", at(map, "max_age", where),
                        "expected an age such as 30d, 12h or 90s (at most 3650d)");
    q->max_age_s = v * mul;
    return 0;
}

/* mode: octal permission bits, at most 0777 (0660 by default: owner and group). */
static int finish_admin(struct ctx *c, void *base, const pc_opt *map, const pc_opt *where,
                        size_t index)
{
    (void)index;
    pc_admin_cfg *a = base;
    const char *p = a->mode_text;
    unsigned m = 0;
    size_t n = 0;
    for (; p && *p >= '0' && *p <= '7' && n < 5; p++, n++)
        m = m * 8 + (unsigned)(*p - '0');
    if (!p || *p || n == 0 || n > 4 || m > 0777)
        return fail_key(c, "mode", at(map, "mode", where),
                        "expected octal permission bits such as 0660");
    a->mode = m;
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
        if (pc_cfg_split_hostport(s, host, sizeof(host), &port, 1) < 0 ||
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
    if (cfg->policies_dir && cfg->policies_dir[0] != '/') {
        if (!c->file)
            return fail_key(c, "policies", at(map, "policies", where), "expected an absolute path");
        const char *slash = strrchr(c->file, '/');
        int dlen = slash ? (int)(slash - c->file) : 1;
        char buf[4096];
        int n =
            snprintf(buf, sizeof(buf), "%.*s/%s", dlen, slash ? c->file : ".", cfg->policies_dir);
        if (n < 0 || (size_t)n >= sizeof(buf))
            return fail_key(c, "policies", at(map, "policies", where), "path too long");
        if (c->file[0] != '/') { /* relative to the working directory: make it absolute */
            char cwd[2048];
            if (!getcwd(cwd, sizeof(cwd)))
                return fail_key(c, "policies", at(map, "policies", where),
                                "cannot find the working directory");
            char abs[4096 + 2048];
            snprintf(abs, sizeof(abs), "%s/%s", cwd, buf);
            cfg->policies_dir = pc_arena_strdup(c->a, abs);
        } else
            cfg->policies_dir = pc_arena_strdup(c->a, buf);
        if (!cfg->policies_dir)
            return fail(c, where, "out of memory");
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        pc_listener_cfg *l = &cfg->listeners[i];
        l->authserv_id = cfg->authserv_id ? cfg->authserv_id : l->hostname;
        l->authres_drop = &cfg->authres_drop;
    }
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
    pc_opt *root = file ? pc_cfg_build_tree(a, f, file, err, errlen) : NULL;
    if (!file)
        snprintf(err, errlen, "%s: out of memory", path);
    fclose(f);
    if (!root) {
        pc_arena_free(a);
        return NULL;
    }
    return pc_config_from_opt(a, root, path, err, errlen);
}

pc_opt *pc_config_read_yaml(pc_arena *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    const char *file = pc_arena_strdup(a, path);
    pc_opt *root = file ? pc_cfg_build_tree(a, f, file, err, errlen) : NULL;
    if (!file)
        snprintf(err, errlen, "%s: out of memory", path);
    fclose(f);
    return root;
}

pc_opt *pc_config_read_yaml_mem(pc_arena *a, const char *name, const void *buf, size_t len,
                                char *err, size_t errlen)
{
    FILE *f = len ? fmemopen((void *)buf, len, "r") : NULL;
    if (!f) {
        snprintf(err, errlen, "%s: empty", name);
        return NULL;
    }
    const char *file = pc_arena_strdup(a, name);
    pc_opt *root = file ? pc_cfg_build_tree(a, f, file, err, errlen) : NULL;
    if (!file)
        snprintf(err, errlen, "%s: out of memory", name);
    fclose(f);
    return root;
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

/* ---- one value, for the typed readers (options.c) ----------------------------------------------
 */

int pc_config_value(pc_arena *a, const pc_opt *n, const char *key, pc_value_kind kind,
                    const char *const *names, unsigned flags, void *dst, char *err, size_t errlen)
{
    struct ctx c = {.a = a,
                    .file = n->line ? (n->file ? n->file : "config") : NULL,
                    .err = err,
                    .errlen = errlen};
    field f = {.key = key, .names = names};
    int idx;
    path_push(&c, key, 0);
    switch (kind) {
    case PC_VAL_DURATION: f.type = F_DURATION, f.flags = ZERO_OK; break;
    case PC_VAL_SIZE: f.type = F_SIZE; break;
    case PC_VAL_BOOL: f.type = F_BOOL; break;
    case PC_VAL_NETS: f.type = F_NETLIST; break;
    case PC_VAL_DOMAINS:
        f.type = F_STRLIST, f.flags = HOSTNAME | (flags & PC_OPT_BELOW ? BELOW : 0);
        break;
    case PC_VAL_ADDRESSES: f.type = F_STRLIST, f.flags = MAILADDR; break;
    case PC_VAL_ENUM:
        if (want_scalar(&c, n) < 0 || enum_value(&c, &f, n, &idx) < 0)
            return -1;
        *(int *)dst = idx;
        return 0;
    case PC_VAL_PATH:
        if (want_scalar(&c, n) < 0 ||
            check_string(&c, n,
                         (flags & PC_OPT_ABSOLUTE ? ABSPATH : 0) |
                             (flags & PC_OPT_READABLE ? READABLE : 0)) < 0)
            return -1;
        *(const char **)dst = n->value;
        return 0;
    default: return fail(&c, n, "internal error: unknown type");
    }
    return conv_field(&c, &f, n, dst);
}
