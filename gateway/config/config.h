/* config.h — the validated configuration: one immutable snapshot, built from a YAML file (config.c)
 * or from the one-line command-line mode (cli.c). Sessions keep the snapshot they started with; a
 * reload builds a new one. Every key, its type, default and check lives in the table in config.c,
 * and etc/portcullis.yaml documents each one. */
#ifndef PC_CONFIG_H
#define PC_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portcullis/options.h"

typedef enum { PC_PROTO_SMTP, PC_PROTO_POP3, PC_PROTO_IMAP } pc_proto;
typedef enum { PC_TLS_NONE, PC_TLS_STARTTLS, PC_TLS_IMPLICIT } pc_tls_mode;
typedef enum { PC_IDENT_NONE, PC_IDENT_XCLIENT, PC_IDENT_PROXY, PC_IDENT_IMAP_ID } pc_ident_mode;
typedef enum { PC_ONERR_TEMPFAIL, PC_ONERR_CONTINUE, PC_ONERR_REJECT } pc_onerr;

/* A CIDR block, and a list of them: the plugin API's types (options.h). */
typedef pc_cidr pc_net;
typedef pc_cidr_list pc_netlist;

/* Score thresholds of a listener (the total of the filters' scores of a message); 0 = not used. */
typedef struct pc_scores_cfg {
    double tag, quarantine, reject;
} pc_scores_cfg;

typedef struct pc_strlist {
    char **v;
    size_t n;
} pc_strlist;

typedef struct pc_cert_cfg {
    char *cert_file; /* PEM chain */
    char *key_file;
} pc_cert_cfg;

typedef struct pc_tls_cfg {
    pc_tls_mode mode;
    pc_cert_cfg *certs; /* first is the default; others picked by SNI from their names */
    size_t ncerts;
    char *min_version;              /* "TLSv1.2" (default) or "TLSv1.3" */
    char *ciphers;                  /* TLS 1.2 list; default Mozilla intermediate */
    char *ciphersuites;             /* TLS 1.3 list; default OpenSSL's */
    unsigned handshake_timeout_ms;  /* default 30 s */
    unsigned handshakes_per_minute; /* per client address; 0 = unlimited; default 60 */
} pc_tls_cfg;

typedef struct pc_upstream_cfg {
    char *name;
    char *host; /* address or name to connect to */
    uint16_t port;
    pc_proto proto;
    pc_tls_mode tls;   /* none | starttls | implicit */
    int verify;        /* verify chain and name; default 1 */
    char *ca_file;     /* NULL = system default store */
    char *sni;         /* name to send and verify; default host */
    char *client_cert; /* optional client certificate */
    char *client_key;
    pc_ident_mode identity;      /* how the client's address reaches the upstream */
    char *helo_name;             /* our EHLO name; default the listener's hostname */
    unsigned connect_timeout_ms; /* default 30 s */
    unsigned reply_timeout_ms;   /* default 5 min */
    unsigned data_timeout_ms;    /* final reply after the dot; default 10 min */
} pc_upstream_cfg;

typedef struct pc_filter_use {
    char *name;            /* a built-in filter or a plugin's name */
    unsigned timeout_ms;   /* default 30 s */
    pc_onerr on_error;     /* default tempfail */
    int monitor;           /* 1: log the verdict, do not act on it */
    const pc_opt *options; /* the filter's own options; may be NULL */
} pc_filter_use;

typedef struct pc_smtp_limits {
    size_t line_length;      /* command line, CRLF included; default 512 (RFC 5321 4.5.3.1.4) */
    size_t text_line_length; /* DATA line, CRLF included; default 1000 (RFC 5321 4.5.3.1.6) */
    size_t message_size;     /* default 50 MiB; also announced in SIZE */
    size_t size_headroom;    /* off the upstream's SIZE, for added headers; 16 KiB */
    unsigned recipients;     /* per transaction; default 100 (RFC 5321 4.5.3.1.8) */
    unsigned errors;         /* per session before 421; default 10 */
    unsigned max_received;   /* Received headers before 554 5.4.6; default 30 */
    unsigned auth_failures;  /* per session before 421; default 3 */
    unsigned pregreet_bytes; /* bytes the client may send before the greeting; default 0 */
} pc_smtp_limits;

typedef struct pc_smtp_timeouts {
    unsigned greeting_ms;   /* whole session before the client's first command: 5 min */
    unsigned command_ms;    /* 5 min */
    unsigned data_block_ms; /* 3 min */
    unsigned data_end_ms;   /* waiting for the upstream's final reply: 10 min */
} pc_smtp_timeouts;

/* POP3 and IMAP listeners: the `mailbox:` section of a listener. */
typedef struct pc_mbox_cfg {
    int plaintext_auth; /* never (0, default) | allow (1): USER/PASS, LOGIN, AUTH before TLS */
    size_t line_length; /* command line, CRLF included; default POP3 255 (RFC 2449),
                           IMAP 8192 */
    size_t literal_max; /* largest IMAP literal accepted from a client; default 50M */
    size_t nonsync_literal_max;   /* largest IMAP {n+} literal; default 4096 (LITERAL-) */
    size_t scan_max;              /* messages up to this size go through the retrieve/message hooks;
                                     default 50M */
    int oversize_refuse;          /* larger messages: pass unscanned with a log line (0, default)
                                     or refuse (1) */
    unsigned auth_failures;       /* failed logins per session before it is closed; default 3 */
    unsigned errors;              /* bad commands per session before it is closed; default 10 */
    unsigned prelogin_timeout_ms; /* before login; default 3 min */
    unsigned idle_timeout_ms;     /* after login; default POP3 10 min (RFC 1939 §3), IMAP 30 min
                                     (RFC 9051 §5.4), IDLE included */
    unsigned verdict_cache; /* entries of the per-worker retrieve verdict cache; default 10000 */
} pc_mbox_cfg;

typedef struct pc_listener_cfg {
    char *name;
    pc_proto proto;
    struct sockaddr_storage *addrs; /* bind addresses */
    size_t naddrs;
    pc_tls_cfg tls;
    int require_tls;                /* refuse MAIL FROM / AUTH before TLS */
    char *hostname;                 /* greeting and Received; default gethostname() */
    pc_netlist proxy_trusted;       /* PROXY protocol accepted only from these; empty = off */
    pc_netlist trusted_networks;    /* may relay anywhere; default loopback */
    pc_strlist accepted_domains;    /* recipients' domains accepted from anyone */
    pc_scores_cfg scores;           /* scores: { tag, quarantine, reject } */
    const char *authserv_id;        /* authres.authserv_id, or this listener's host name */
    const pc_strlist *authres_drop; /* authres.remove_ids (the top-level list) */
    int bare_lf_normalize;          /* smtp.bare_lf: reject (0, default) | normalize (1) */
    int plaintext_auth;             /* smtp.plaintext_auth: never (0, default) | allow (1) */
    int xclient_trusted;            /* accept XCLIENT from proxy_trusted: not supported, 0 */
    pc_smtp_limits limits;
    pc_smtp_timeouts timeouts;
    pc_mbox_cfg mailbox;             /* POP3/IMAP listeners */
    unsigned max_connections_per_ip; /* default 50; trusted networks exempt */
    pc_upstream_cfg upstream;
    pc_filter_use *filters;
    size_t nfilters;
} pc_listener_cfg;

/* The resolver for filters (gateway/core/dns.c): the `resolver:` section. */
typedef struct pc_resolver_cfg {
    pc_strlist servers;  /* "ip:port" (normalised, port filled in); empty = /etc/resolv.conf */
    unsigned timeout_ms; /* per try; default 2 s */
    unsigned attempts;   /* tries per server; default 2 */
    unsigned cache_size; /* entries of the cache shared by all workers; 0 = off; default 10000 */
    unsigned max_ttl_ms; /* positive answers are kept at most this long; default 1 d */
    unsigned negative_ttl_ms; /* negative answers without an SOA; the cap with one; default 15 m */
} pc_resolver_cfg;

/* The state store for filters (gateway/store/): the `state:` section. */
enum { PC_STATE_NONE = 0, PC_STATE_LMDB, PC_STATE_REDIS };
typedef struct pc_state_cfg {
    int backend;               /* PC_STATE_NONE when the section is absent */
    char *path;                /* lmdb: the directory of the environment */
    size_t map_size;           /* lmdb: the map's first size (it grows when full) */
    char *redis_address;       /* redis: "ip:port", "[ip6]:port" or a UNIX socket's absolute path */
    char *redis_password_file; /* redis: AUTH with the first line of this file */
    unsigned redis_db;         /* redis: SELECT */
    char *prefix;              /* every key's prefix; default "pc:" */
    unsigned connect_timeout_ms, timeout_ms; /* redis: connect; each command */
    unsigned max_pending;                    /* operations pending per worker */
} pc_state_cfg;

/* The quarantine (gateway/quarantine/): the `quarantine:` section. Absent: a quarantine verdict
 * is answered 451 4.7.1 as before (nothing is kept). */
typedef struct pc_quarantine_cfg {
    int enabled;                  /* the section is present */
    char *directory;              /* the files; default /var/lib/portcullis/quarantine */
    char *max_age_text;           /* as written ("30d") */
    unsigned long long max_age_s; /* expiry; default 30 days */
} pc_quarantine_cfg;

/* The admin socket (gateway/admin/): the `admin:` section; opened when the quarantine is on. */
typedef struct pc_admin_cfg {
    char *socket;         /* default /run/portcullis/admin.sock */
    char *mode_text;      /* octal, default "0660" */
    unsigned mode;        /* parsed */
    char *group;          /* chgrp the socket to; NULL = the gateway's group */
    unsigned max_clients; /* at once; default 16 */
    unsigned timeout_ms;  /* per request line; default 30 s */
} pc_admin_cfg;

typedef struct pc_config {
    char *file;       /* NULL in one-line mode */
    unsigned workers; /* 0 in the file = auto = number of cores */
    char *user;       /* drop privileges to; NULL = stay */
    char *group;
    char *log_target;              /* "stderr" | "syslog" */
    int log_level;                 /* pc_log_level */
    unsigned max_connections;      /* total; default 10000 */
    char *spool_dir;               /* for O_TMPFILE; default /var/tmp */
    size_t spool_memory_threshold; /* per message, default 4 MiB */
    size_t spool_memory_total;     /* all messages, default 256 MiB */
    size_t spool_disk_total;       /* all messages, default 4 GiB */
    unsigned shutdown_timeout_ms;  /* SIGTERM grace; default 30 s */
    unsigned threadpool_size;      /* UV_THREADPOOL_SIZE; default 4 */
    pc_strlist plugins;            /* shared objects to load */
    pc_listener_cfg *listeners;
    size_t nlisteners;
    pc_resolver_cfg resolver;
    pc_state_cfg state;
    pc_quarantine_cfg quarantine;
    pc_admin_cfg admin;
    char *policies_dir;      /* policies: the directory of policy files (policies/); NULL = none;
                                a relative path is made absolute from the file's directory */
    char *authserv_id;       /* authres.authserv_id; NULL = each listener's host name */
    pc_strlist authres_drop; /* authres.remove_ids: the site's other ids, removed from incoming */
    pc_opt *opt_root;        /* owns every pc_opt node referenced above */
    void *arena;             /* owns every string; freed by pc_config_free */
} pc_config;

/* Loads and validates a YAML file. On error returns NULL and writes "FILE:LINE: key: problem" into
 * err. */
pc_config *pc_config_load(const char *path, char *err, size_t errlen);
/* Builds a configuration from the one-line mode's arguments (cli.c). argv are the arguments that
 * remain after the ones main() handled. On error returns NULL with a message in err. */
pc_config *pc_config_from_args(int argc, char **argv, char *err, size_t errlen);
void pc_config_free(pc_config *cfg);

/* Reads a YAML file (or, with _mem, len bytes of buf named name) into an option tree allocated in
 * a, every node with file and line: the loader's reader, for the policy files (policies/). NULL
 * with "FILE:LINE: problem" (or "FILE: cannot open: reason") in err. */
struct pc_arena;
pc_opt *pc_config_read_yaml(struct pc_arena *a, const char *path, char *err, size_t errlen);
pc_opt *pc_config_read_yaml_mem(struct pc_arena *a, const char *name, const void *buf, size_t len,
                                char *err, size_t errlen);

/* Parses "host:port", "[v6]:port" into *ss (numeric addresses only). Returns 0 or -1. */
int pc_parse_hostport(const char *s, struct sockaddr_storage *ss);
/* Parses a URL of the one-line mode: "smtps://0.0.0.0:465" → proto, tls mode, host, port.
 * Returns 0 or -1. host is written into hostbuf. */
int pc_parse_url(const char *url, pc_proto *proto, pc_tls_mode *tls, char *hostbuf, size_t hostlen,
                 uint16_t *port);
/* Does addr (AF_INET/AF_INET6 sockaddr; v4-mapped v6 treated as v4) fall in the list? */
int pc_netlist_match(const pc_netlist *l, const struct sockaddr *addr);
/* Parses "10.0.0.0/8", "::1", "127.0.0.1/32". Returns 0 or -1. */
int pc_net_parse(const char *s, pc_net *out);
/* Parses "30s", "5m", "250ms", "1h", a bare number = seconds. Returns 0 or -1. */
int pc_parse_duration_ms(const char *s, unsigned *ms);
/* Parses "512", "64K", "50M", "4G" (powers of 1024). Returns 0 or -1. */
int pc_parse_size(const char *s, size_t *out);

/* One value converted as the loader converts a key of that kind, for the typed readers of
 * options.h (options.c): the loader's checks, and its errors with key as the path. dst: unsigned
 * ms (DURATION; 0 allowed), size_t (SIZE), int 0/1 (BOOL), int index into names (ENUM),
 * pc_netlist (NETS), pc_strlist (DOMAINS, with PC_OPT_BELOW in flags; ADDRESSES), const char *
 * borrowed from n (PATH, with PC_OPT_ABSOLUTE / PC_OPT_READABLE). Lists are allocated in a.
 * Returns 0 or -1. */
typedef enum {
    PC_VAL_DURATION,
    PC_VAL_SIZE,
    PC_VAL_BOOL,
    PC_VAL_ENUM,
    PC_VAL_NETS,
    PC_VAL_DOMAINS,
    PC_VAL_ADDRESSES,
    PC_VAL_PATH,
} pc_value_kind;
struct pc_arena;
int pc_config_value(struct pc_arena *a, const pc_opt *n, const char *key, pc_value_kind kind,
                    const char *const *names, unsigned flags, void *dst, char *err, size_t errlen);

/* Every key the loader accepts, as dotted paths ("listeners.tls.mode"), sections included;
 * NULL-terminated, static. The test checks each one against etc/portcullis.yaml. */
const char *const *pc_config_known_keys(void);

/* Shared by config.c and cli.c. An arena owns a snapshot's strings and option nodes:
 * pc_arena_alloc returns zeroed memory valid until pc_arena_free, or NULL when out of memory. */
typedef struct pc_arena pc_arena;
pc_arena *pc_arena_new(void);
void *pc_arena_alloc(pc_arena *a, size_t n);
char *pc_arena_strdup(pc_arena *a, const char *s);
void pc_arena_free(pc_arena *a);
/* Validates an option tree (from YAML, or built by cli.c with line 0) into a snapshot. Takes
 * ownership of arena, which must own root: the snapshot keeps it, or it is freed on error.
 * file is NULL for the command line; errors then read "command line: key: problem". */
pc_config *pc_config_from_opt(pc_arena *arena, pc_opt *root, const char *file, char *err,
                              size_t errlen);

#endif
