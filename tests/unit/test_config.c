/* test_config.c — the configuration: YAML files (values, defaults, each error with its file:line:
 * key prefix), the one-line mode, the value parsers, and that etc/portcullis.yaml names every key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "config/config.h"

#ifndef PC_SOURCE_DIR
#define PC_SOURCE_DIR "."
#endif
#define FIXTURES PC_SOURCE_DIR "/tests/fixtures/config/"

static char err[512];

static pc_config *load_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), FIXTURES "%s", name);
    err[0] = '\0';
    return pc_config_load(path, err, sizeof(err));
}

/* The error must start with "FILE:LINE: KEY" and contain problem. */
static void expect_error(const char *name, int line, const char *key, const char *problem)
{
    pc_config *cfg = load_fixture(name);
    char prefix[1024];
    snprintf(prefix, sizeof(prefix), FIXTURES "%s:%d: %s", name, line, key);
    if (cfg || strncmp(err, prefix, strlen(prefix)) || !strstr(err, problem))
        print_error("want \"%s ...%s...\"\n got \"%s\"\n", prefix, problem, err);
    assert_null(cfg);
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_non_null(strstr(err, problem));
}

static char tmpdir[] = "/tmp/pc_test_config.XXXXXX";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    char p[256];
    const char *names[] = {"cert.pem", "key.pem", "b.pem", "b.key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
        write_file(p, "not really PEM: the loader only checks that it can read the file\n");
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* ---- files --------------------------------------------------------------------------------------
 */

static int in4(const pc_netlist *l, const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sin.sin_addr);
    return pc_netlist_match(l, (struct sockaddr *)&sin);
}

static int in6(const pc_netlist *l, const char *ip)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, ip, &sin6.sin6_addr);
    return pc_netlist_match(l, (struct sockaddr *)&sin6);
}

static void test_minimal_defaults(void **state)
{
    (void)state;
    pc_config *cfg = load_fixture("minimal.yaml");
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_non_null(strstr(cfg->file, "minimal.yaml"));
    assert_int_equal(cfg->workers, 0);
    assert_null(cfg->user);
    assert_null(cfg->group);
    assert_string_equal(cfg->log_target, "stderr");
    assert_int_equal(cfg->log_level, PC_LOG_INFO);
    assert_int_equal(cfg->max_connections, 10000);
    assert_string_equal(cfg->spool_dir, "/var/tmp");
    assert_int_equal(cfg->spool_memory_threshold, 4 * 1024 * 1024);
    assert_int_equal(cfg->spool_memory_total, 256 * 1024 * 1024);
    assert_true(cfg->spool_disk_total == (size_t)4 << 30);
    assert_int_equal(cfg->shutdown_timeout_ms, 30000);
    assert_int_equal(cfg->threadpool_size, 4);
    assert_int_equal(cfg->plugins.n, 0);
    assert_int_equal(cfg->nlisteners, 1);

    const pc_listener_cfg *l = &cfg->listeners[0];
    assert_string_equal(l->name, "listener0");
    assert_int_equal(l->proto, PC_PROTO_SMTP);
    assert_int_equal(l->naddrs, 1);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addrs[0];
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 2525);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
    assert_non_null(l->hostname);
    assert_int_equal(l->tls.mode, PC_TLS_NONE);
    assert_int_equal(l->tls.ncerts, 0);
    assert_string_equal(l->tls.min_version, "TLSv1.2");
    assert_non_null(strstr(l->tls.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:"));
    assert_null(l->tls.ciphersuites);
    assert_int_equal(l->tls.handshake_timeout_ms, 30000);
    assert_int_equal(l->tls.handshakes_per_minute, 60);
    assert_int_equal(l->require_tls, 0);
    assert_int_equal(l->proxy_trusted.n, 0);
    assert_int_equal(l->trusted_networks.n, 2);
    assert_true(in4(&l->trusted_networks, "127.1.2.3"));
    assert_true(in6(&l->trusted_networks, "::1"));
    assert_false(in4(&l->trusted_networks, "10.0.0.1"));
    assert_int_equal(l->accepted_domains.n, 0);
    assert_int_equal(l->bare_lf_normalize, 0);
    assert_int_equal(l->plaintext_auth, 0);
    assert_int_equal(l->xclient_trusted, 0);
    assert_int_equal(l->limits.line_length, 512);
    assert_int_equal(l->limits.text_line_length, 1000);
    assert_int_equal(l->limits.message_size, 50 * 1024 * 1024);
    assert_int_equal(l->limits.recipients, 100);
    assert_int_equal(l->limits.errors, 10);
    assert_int_equal(l->limits.max_received, 30);
    assert_int_equal(l->limits.auth_failures, 3);
    assert_int_equal(l->limits.pregreet_bytes, 0);
    assert_int_equal(l->timeouts.greeting_ms, 300000);
    assert_int_equal(l->timeouts.command_ms, 300000);
    assert_int_equal(l->timeouts.data_block_ms, 180000);
    assert_int_equal(l->timeouts.data_end_ms, 600000);
    assert_int_equal(l->max_connections_per_ip, 50);
    assert_int_equal(l->nfilters, 0);

    const pc_upstream_cfg *u = &l->upstream;
    assert_string_equal(u->name, "listener0");
    assert_string_equal(u->host, "127.0.0.1");
    assert_int_equal(u->port, 25);
    assert_int_equal(u->proto, PC_PROTO_SMTP);
    assert_int_equal(u->tls, PC_TLS_NONE);
    assert_int_equal(u->verify, 1);
    assert_null(u->ca_file);
    assert_string_equal(u->sni, "127.0.0.1");
    assert_null(u->client_cert);
    assert_int_equal(u->identity, PC_IDENT_NONE);
    assert_string_equal(u->helo_name, l->hostname);
    assert_int_equal(u->connect_timeout_ms, 30000);
    assert_int_equal(u->reply_timeout_ms, 300000);
    assert_int_equal(u->data_timeout_ms, 600000);
    pc_config_free(cfg);
}

static void test_values(void **state)
{
    (void)state;
    pc_config *cfg = load_fixture("values.yaml");
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_int_equal(cfg->workers, 3);
    assert_string_equal(cfg->user, "mail");
    assert_string_equal(cfg->log_target, "syslog");
    assert_int_equal(cfg->log_level, PC_LOG_DEBUG);
    assert_string_equal(cfg->spool_dir, "/tmp");
    assert_int_equal(cfg->spool_memory_threshold, 1 << 20);
    assert_int_equal(cfg->shutdown_timeout_ms, 250);
    assert_int_equal(cfg->nlisteners, 2);

    const pc_listener_cfg *l = &cfg->listeners[0];
    assert_string_equal(l->name, "sub");
    assert_string_equal(l->hostname, "mx.example.test");
    assert_int_equal(l->naddrs, 2);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&l->addrs[1];
    assert_int_equal(s6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(s6->sin6_port), 587);
    assert_int_equal(l->trusted_networks.n, 1);
    assert_true(in4(&l->trusted_networks, "10.200.0.1"));
    assert_false(in4(&l->trusted_networks, "127.0.0.1"));
    assert_true(in4(&l->proxy_trusted, "192.168.3.4"));
    assert_int_equal(l->accepted_domains.n, 1);
    assert_string_equal(l->accepted_domains.v[0], "example.test");
    assert_int_equal(l->bare_lf_normalize, 1);
    assert_int_equal(l->plaintext_auth, 1);
    assert_int_equal(l->limits.line_length, 2048);
    assert_int_equal(l->limits.message_size, 10 << 20);
    assert_int_equal(l->limits.recipients, 5);
    assert_int_equal(l->limits.text_line_length, 1000);
    assert_int_equal(l->timeouts.command_ms, 60000);
    assert_int_equal(l->timeouts.greeting_ms, 300000);
    assert_string_equal(l->upstream.host, "::1");
    assert_int_equal(l->upstream.port, 25);
    assert_int_equal(l->upstream.identity, PC_IDENT_XCLIENT);
    assert_string_equal(l->upstream.helo_name, "mx.example.test");

    assert_int_equal(l->nfilters, 2);
    const pc_filter_use *f = &l->filters[0];
    assert_string_equal(f->name, "access");
    assert_int_equal(f->timeout_ms, 5000);
    assert_int_equal(f->on_error, PC_ONERR_CONTINUE);
    assert_int_equal(f->monitor, 1);
    assert_non_null(f->options);
    assert_string_equal(pc_opt_str(f->options, "default", NULL), "accept");
    assert_string_equal(pc_opt_str(f->options, "missing", "dflt"), "dflt");
    const pc_opt *rules = pc_opt_get(f->options, "rules");
    assert_non_null(rules);
    assert_int_equal(rules->kind, PC_OPT_SEQ);
    assert_int_equal(rules->line, 26);
    assert_non_null(strstr(rules->file, "values.yaml"));
    assert_string_equal(pc_opt_str(rules->child, "from", NULL), "a@b");
    assert_null(pc_opt_get(rules, "from")); /* not a map */
    assert_string_equal(l->filters[1].name, "pregreet");
    assert_int_equal(l->filters[1].timeout_ms, 30000);
    assert_int_equal(l->filters[1].on_error, PC_ONERR_TEMPFAIL);
    assert_int_equal(l->filters[1].monitor, 0);
    assert_null(l->filters[1].options);

    l = &cfg->listeners[1];
    assert_string_equal(l->name, "listener1");
    assert_int_equal(l->proto, PC_PROTO_POP3);
    assert_int_equal(l->upstream.proto, PC_PROTO_POP3);
    assert_int_equal(l->upstream.tls, PC_TLS_IMPLICIT);
    assert_int_equal(l->upstream.port, 995);
    assert_int_equal(l->upstream.verify, 0);
    assert_string_equal(l->upstream.host, "mail.example.test");
    assert_string_equal(l->upstream.sni, "pop.example.test");
    pc_config_free(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("err_unknown_key.yaml", 5, "listeners[0].upstream.adress: ", "unknown key");
    expect_error("err_tls_mode.yaml", 4,
                 "listeners[0].tls.mode: ", "expected one of none, starttls, implicit");
    expect_error("err_certs_required.yaml", 5,
                 "listeners[1].tls.certificates: ", "required when mode is implicit");
    expect_error("err_no_listener.yaml", 2, "listeners: ", "at least one");
    expect_error("err_missing_upstream.yaml", 2, "listeners[0].upstream.address: ", "required");
    expect_error("err_dup_name.yaml", 5, "listeners[1].name: ", "already used by listeners[0]");
    expect_error("err_duration.yaml", 5, "listeners[0].timeouts.greeting: ", "expected a duration");
    expect_error("err_limit_zero.yaml", 5,
                 "listeners[0].limits.recipients: ", "must be greater than 0");
    expect_error("err_listen.yaml", 2, "listeners[0].listen[1]: ", "localhost:25");
    expect_error("err_alias.yaml", 4, "YAML aliases", "not supported");
    expect_error("err_cert_missing.yaml", 6, "listeners[0].tls.certificates[0].cert: ",
                 "cannot read /nonexistent/portcullis/cert.pem");

    /* libyaml decides where a syntax error is found; we only promise file:line first. */
    assert_null(load_fixture("err_syntax.yaml"));
    assert_memory_equal(err, FIXTURES "err_syntax.yaml:", strlen(FIXTURES "err_syntax.yaml:"));
    assert_non_null(strstr(err, "invalid YAML"));

    err[0] = '\0';
    assert_null(pc_config_load("/nonexistent/portcullis.yaml", err, sizeof(err)));
    assert_string_equal(err,
                        "/nonexistent/portcullis.yaml: cannot open: No such file or directory");
}

/* More error cases, written at test time: each is a whole file and the expected prefix. */
static void test_errors_inline(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *prefix, *problem;
    } cases[] = {
        {"listeners: x\n", ":1: listeners: ", "expected a list"},
        {"- a\n", ":1: (top): ", "must be a map"},
        {"workers: 1025\nlisteners: []\n", ":1: workers: ", "auto or a number"},
        {"threadpool_size: 2000\n", ":1: threadpool_size: ", "between 1 and 1024"},
        {"log: { level: loud }\n",
         ":1: log.level: ", "expected one of error, warning, notice, info, debug"},
        {"spool: { memory_threshold: 2G, memory_total: 1G }\n",
         ":1: spool.memory_threshold: ", "must not exceed memory_total"},
        {"spool: { directory: tmp }\n", ":1: spool.directory: ", "absolute path"},
        {"plugins: [ x.so ]\n", ":1: plugins[0]: ", "absolute path"},
        {"a: 1\na: 2\n", ":2: a: ", "duplicate key"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    limits: { line_length: 100K }\n",
         ":4: listeners[0].limits.line_length: ", "between 1 and 65536"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    require_tls: true\n",
         ":4: listeners[0].require_tls: ", "needs tls.mode"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    hostname: \"a\\r\\nb\"\n"
         "    upstream: { address: \"h:1\" }\n",
         ":3: listeners[0].hostname: ", "control characters"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\", protocol: "
         "imap }\n",
         ":3: listeners[0].upstream.protocol: ", "listener's protocol"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream:\n      address: \"h:1\"\n"
         "      client_identity: imap_id\n",
         ":5: listeners[0].upstream.client_identity: ", "imap_id needs protocol imap"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "  - listen: [ \"127.0.0.2:1\", \"127.0.0.1:1\" ]\n    upstream: { address: \"h:1\" }\n",
         ":4: listeners[1].listen: ", "already used by listeners[0]"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    trusted_networks: [ 10.0.0.0/33 ]\n",
         ":4: listeners[0].trusted_networks[0]: ", "10.0.0.0/33"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    filters: [ { timeout: 1s } ]\n",
         ":4: listeners[0].filters[0].name: ", "required"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    tls: { mode: starttls, certificates: [ { cert: /etc/hostname } ] }\n",
         ":4: listeners[0].tls.certificates[0].key: ", "required"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    timeouts: { command: 0s }\n",
         ":4: listeners[0].timeouts.command: ", "must be greater than 0"},
        /* pregreet waits `delay` on purpose: a shorter filter timeout could only time out */
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    filters:\n      - name: pregreet\n        timeout: 2s\n        options: { delay: 3s "
         "}\n",
         ":6: listeners[0].filters[0].timeout: ",
         "must be longer than the pregreet filter's delay (3000 ms)"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    filters:\n      - name: access\n      - name: pregreet\n        timeout: 6s\n",
         ":7: listeners[0].filters[1].timeout: ", "pregreet filter's delay (6000 ms)"},
        {"listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n"
         "    filters: [ { name: pregreet, options: { delay: 1m } } ]\n",
         ":4: listeners[0].filters[0].timeout: ", "pregreet filter's delay (60000 ms)"},
    };
    char path[300], prefix[400];
    snprintf(path, sizeof(path), "%s/inline.yaml", tmpdir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(path, cases[i].yaml);
        err[0] = '\0';
        pc_config *cfg = pc_config_load(path, err, sizeof(err));
        snprintf(prefix, sizeof(prefix), "%s%s", path, cases[i].prefix);
        if (cfg || strncmp(err, prefix, strlen(prefix)) || !strstr(err, cases[i].problem))
            print_error("case %zu: want \"%s...%s\"\n got \"%s\"\n", i, prefix, cases[i].problem,
                        err);
        assert_null(cfg);
        assert_memory_equal(err, prefix, strlen(prefix));
        assert_non_null(strstr(err, cases[i].problem));
    }
}

/* A pregreet timeout longer than the delay (given or default) loads; a bad delay is left to the
 * filter's own init, which names it. */
static void test_pregreet_timeout_ok(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "    filters: [ { name: pregreet } ]\n",
        "    filters: [ { name: pregreet, timeout: 7s } ]\n",
        "    filters: [ { name: pregreet, timeout: 1s, options: { delay: 500ms } } ]\n",
        "    filters: [ { name: pregreet, timeout: 1s, options: { delay: 0 } } ]\n",
        "    filters: [ { name: pregreet, timeout: 1s, options: { delay: soon } } ]\n",
        "    filters: [ { name: access, timeout: 1s, options: { delay: 1h } } ]\n",
    };
    char path[300], text[512];
    snprintf(path, sizeof(path), "%s/pregreet.yaml", tmpdir);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text),
                 "listeners:\n  - listen: \"127.0.0.1:1\"\n    upstream: { address: \"h:1\" }\n%s",
                 ok[i]);
        write_file(path, text);
        pc_config *cfg = pc_config_load(path, err, sizeof(err));
        if (!cfg)
            print_error("case %zu: %s\n", i, err);
        assert_non_null(cfg);
        pc_config_free(cfg);
    }
}

/* The example must load as shipped once its certificate files exist. */
static void test_example_loads(void **state)
{
    (void)state;
    char *text = slurp(PC_SOURCE_DIR "/etc/portcullis.yaml");
    static char out[70000];
    size_t o = 0;
    for (const char *p = text; *p;) {
        const char *hit = strstr(p, "/etc/portcullis/");
        size_t n = hit ? (size_t)(hit - p) : strlen(p);
        assert_true(o + n + 300 < sizeof(out));
        memcpy(out + o, p, n);
        o += n;
        p += n;
        if (hit) {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s/", tmpdir);
            p += strlen("/etc/portcullis/");
        }
    }
    out[o] = '\0';
    char path[300];
    snprintf(path, sizeof(path), "%s/portcullis.yaml", tmpdir);
    write_file(path, out);
    pc_config *cfg = pc_config_load(path, err, sizeof(err));
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_int_equal(cfg->nlisteners, 1);
    assert_string_equal(cfg->listeners[0].name, "inbound");
    assert_int_equal(cfg->listeners[0].tls.mode, PC_TLS_STARTTLS);
    assert_int_equal(cfg->listeners[0].tls.ncerts, 1);
    assert_int_equal(cfg->listeners[0].nfilters, 1);
    pc_config_free(cfg);
}

/* Habit 11: every key of the loader's tables appears in the example, as "key:". */
static void test_every_key_documented(void **state)
{
    (void)state;
    const char *text = slurp(PC_SOURCE_DIR "/etc/portcullis.yaml");
    const char *const *keys = pc_config_known_keys();
    size_t n = 0;
    for (; keys[n]; n++) {
        const char *leaf = strrchr(keys[n], '.');
        leaf = leaf ? leaf + 1 : keys[n];
        int found = 0;
        size_t len = strlen(leaf);
        for (const char *p = text; !found && (p = strstr(p, leaf)); p += len)
            found = p[len] == ':' && (p == text || strchr(" \t\n{,#-", p[-1]));
        if (!found)
            print_error("%s is not in etc/portcullis.yaml\n", keys[n]);
        assert_true(found);
    }
    assert_true(n > 60);
    int has_mode = 0;
    for (size_t i = 0; i < n; i++)
        has_mode |= !strcmp(keys[i], "listeners.tls.mode");
    assert_true(has_mode);
}

/* ---- one-line mode ------------------------------------------------------------------------------
 */

static pc_config *cli(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    err[0] = '\0';
    return pc_config_from_args(argc, argv, err, sizeof(err));
}

/* resolver: servers normalised to IP:PORT, defaults, bad entries named. */
static pc_config *load_text(const char *text)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/resolver.yaml", tmpdir);
    write_file(path, text);
    err[0] = '\0';
    return pc_config_load(path, err, sizeof(err));
}

static void test_resolver(void **state)
{
    (void)state;
    const char *head = "listeners:\n  - listen: \"127.0.0.1:2525\"\n"
                       "    upstream: {address: \"127.0.0.1:25\"}\n";
    char text[1024];
    pc_config *cfg = load_text(head);
    assert_non_null(cfg);
    assert_int_equal(cfg->resolver.servers.n, 0);
    assert_int_equal(cfg->resolver.timeout_ms, 2000);
    assert_int_equal(cfg->resolver.attempts, 2);
    assert_int_equal(cfg->resolver.cache_size, 10000);
    assert_int_equal(cfg->resolver.max_ttl_ms, 86400000);
    assert_int_equal(cfg->resolver.negative_ttl_ms, 900000);
    pc_config_free(cfg);
    snprintf(text, sizeof(text),
             "%sresolver:\n  servers: [\"127.0.0.1:5353\", 192.0.2.1, \"[::1]\", \"[::1]:5300\"]\n"
             "  timeout: 500ms\n  attempts: 3\n  cache_size: 0\n",
             head);
    cfg = load_text(text);
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_int_equal(cfg->resolver.servers.n, 4);
    assert_string_equal(cfg->resolver.servers.v[0], "127.0.0.1:5353");
    assert_string_equal(cfg->resolver.servers.v[1], "192.0.2.1:53");
    assert_string_equal(cfg->resolver.servers.v[2], "[::1]:53");
    assert_string_equal(cfg->resolver.servers.v[3], "[::1]:5300");
    assert_int_equal(cfg->resolver.timeout_ms, 500);
    assert_int_equal(cfg->resolver.cache_size, 0);
    pc_config_free(cfg);
    const char *bad[] = {"dns.example", "127.0.0.1:0", "::1", "[127.0.0.1]:53", "1.2.3.4:99999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%sresolver:\n  servers: [\"%s\"]\n", head, bad[i]);
        cfg = load_text(text);
        if (cfg)
            print_error("accepted %s\n", bad[i]);
        assert_null(cfg);
        assert_non_null(strstr(err, "resolver.servers"));
    }
    snprintf(text, sizeof(text), "%sresolver:\n  attempts: 0\n", head);
    assert_null(load_text(text));
    assert_non_null(strstr(err, "resolver.attempts"));
}

static void test_mailbox_defaults_per_protocol(void **state)
{
    (void)state;
    pc_config *cfg =
        cli("--listen", "pop3://127.0.0.1:2110", "--upstream", "pop3://127.0.0.1", "--listen",
            "imap://127.0.0.1:2143", "--upstream", "imap://127.0.0.1", "--listen",
            "smtp://127.0.0.1:2525", "--upstream", "smtp://127.0.0.1", NULL);
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_int_equal(cfg->nlisteners, 3);
    const pc_mbox_cfg *pop3 = &cfg->listeners[0].mailbox, *imap = &cfg->listeners[1].mailbox;
    assert_int_equal(cfg->listeners[0].proto, PC_PROTO_POP3);
    assert_int_equal(pop3->line_length, 255);
    assert_int_equal(pop3->idle_timeout_ms, 10 * 60 * 1000);
    assert_int_equal(cfg->listeners[1].proto, PC_PROTO_IMAP);
    assert_int_equal(imap->line_length, 8192);
    assert_int_equal(imap->idle_timeout_ms, 30 * 60 * 1000);
    assert_int_equal(imap->nonsync_literal_max, 4096);
    assert_int_equal(imap->plaintext_auth, 0);
    assert_int_equal(imap->oversize_refuse, 0);
    assert_int_equal(imap->prelogin_timeout_ms, 3 * 60 * 1000);
    assert_int_equal(cfg->listeners[1].upstream.port, 143);
    pc_config_free(cfg);
}

static void expect_cli_error(pc_config *cfg, const char *want)
{
    if (cfg || !strstr(err, want))
        print_error("want \"%s\" got \"%s\"\n", want, err);
    assert_null(cfg);
    assert_non_null(strstr(err, want));
}

static void test_cli_basic(void **state)
{
    (void)state;
    pc_config *cfg =
        cli("--listen", "smtp://127.0.0.1:2525", "--upstream", "smtp://127.0.0.1", NULL);
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_null(cfg->file);
    assert_int_equal(cfg->nlisteners, 1);
    const pc_listener_cfg *l = &cfg->listeners[0];
    assert_int_equal(l->tls.mode, PC_TLS_NONE);
    assert_int_equal(ntohs(((const struct sockaddr_in *)&l->addrs[0])->sin_port), 2525);
    assert_string_equal(l->upstream.host, "127.0.0.1");
    assert_int_equal(l->upstream.port, 25);
    assert_int_equal(l->upstream.verify, 1);
    assert_int_equal(l->trusted_networks.n, 2);
    assert_int_equal(l->limits.message_size, 50 << 20);
    assert_int_equal(cfg->log_level, PC_LOG_INFO);
    pc_config_free(cfg);
}

static void test_cli_full(void **state)
{
    (void)state;
    char cert[300], key[300], cert2[300], key2[300];
    snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
    snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
    snprintf(cert2, sizeof(cert2), "%s/b.pem", tmpdir);
    snprintf(key2, sizeof(key2), "%s/b.key", tmpdir);
    pc_config *cfg =
        cli("--listen", "smtp://[::1]:2525", "--listen=smtps://0.0.0.0:4650", "--upstream",
            "smtp+starttls://mail.example.test", "--upstream", "smtps://[2001:db8::1]:4465",
            "--cert", cert, "--key", key, "--cert", cert2, "--key", key2, "--require-tls",
            "--domain", "example.test", "--domain", "example.org", "--trust", "10.0.0.0/8",
            "--ca-file", cert, "--no-verify", "--upstream-identity", "xclient", "--hostname",
            "gw.example.test", "--workers", "2", "--user", "mail", "--log-level", "debug",
            "--filter", "access", "--filter", "pregreet", "--max-message-size", "10M", NULL);
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_int_equal(cfg->workers, 2);
    assert_string_equal(cfg->user, "mail");
    assert_int_equal(cfg->log_level, PC_LOG_DEBUG);
    assert_int_equal(cfg->nlisteners, 2);
    for (size_t i = 0; i < 2; i++) {
        const pc_listener_cfg *l = &cfg->listeners[i];
        assert_int_equal(l->tls.mode, i == 0 ? PC_TLS_STARTTLS : PC_TLS_IMPLICIT);
        assert_int_equal(l->tls.ncerts, 2);
        assert_string_equal(l->tls.certs[1].key_file, key2);
        assert_int_equal(l->require_tls, 1);
        assert_string_equal(l->hostname, "gw.example.test");
        assert_int_equal(l->accepted_domains.n, 2);
        assert_int_equal(l->trusted_networks.n, 1); /* --trust replaces the loopback default */
        assert_false(in4(&l->trusted_networks, "127.0.0.1"));
        assert_true(in4(&l->trusted_networks, "10.1.1.1"));
        assert_int_equal(l->plaintext_auth, 0);
        assert_int_equal(l->limits.message_size, 10 << 20);
        assert_int_equal(l->upstream.verify, 0);
        assert_string_equal(l->upstream.ca_file, cert);
        assert_int_equal(l->upstream.identity, PC_IDENT_XCLIENT);
        assert_int_equal(l->nfilters, 2);
        assert_string_equal(l->filters[1].name, "pregreet");
    }
    const pc_listener_cfg *l = &cfg->listeners[0];
    assert_int_equal(l->addrs[0].ss_family, AF_INET6);
    assert_string_equal(l->upstream.host, "mail.example.test");
    assert_int_equal(l->upstream.tls, PC_TLS_STARTTLS);
    assert_int_equal(l->upstream.port, 25);
    l = &cfg->listeners[1];
    assert_string_equal(l->upstream.host, "2001:db8::1");
    assert_int_equal(l->upstream.port, 4465);
    assert_int_equal(l->upstream.tls, PC_TLS_IMPLICIT);
    pc_config_free(cfg);
}

/* --trust replaces the default and repeats; --plaintext-auth relaxes the listener's own key. */
static void test_cli_trust_and_plaintext_auth(void **state)
{
    (void)state;
    pc_config *cfg = cli("--listen", "smtp://127.0.0.1:2525", "--upstream", "smtp://127.0.0.1",
                         "--listen", "imap://127.0.0.1:2143", "--upstream", "imap://127.0.0.1",
                         "--listen", "pop3://127.0.0.1:2110", "--upstream", "pop3://127.0.0.1",
                         "--trust", "10.0.0.0/8", "--trust=::1", "--plaintext-auth", NULL);
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    for (size_t i = 0; i < 3; i++) {
        const pc_listener_cfg *l = &cfg->listeners[i];
        assert_int_equal(l->trusted_networks.n, 2);
        assert_false(in4(&l->trusted_networks, "127.0.0.1"));
        assert_true(in4(&l->trusted_networks, "10.9.9.9"));
        assert_true(in6(&l->trusted_networks, "::1"));
        assert_int_equal(i == 0 ? l->plaintext_auth : l->mailbox.plaintext_auth, 1);
    }
    pc_config_free(cfg);

    cfg = cli("--listen", "imap://127.0.0.1:2143", "--upstream", "imap://127.0.0.1", NULL);
    assert_non_null(cfg);
    assert_int_equal(cfg->listeners[0].mailbox.plaintext_auth, 0); /* never, by default */
    assert_true(in4(&cfg->listeners[0].trusted_networks, "127.0.0.1"));
    pc_config_free(cfg);
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h", "--trust",
                         "10.0.0.0/33", NULL),
                     "command line: listeners[0].trusted_networks[0]: ");
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h",
                         "--plaintext-auth=yes", NULL),
                     "--plaintext-auth takes no value");
}

static void test_cli_errors(void **state)
{
    (void)state;
    expect_cli_error(cli(NULL), "no --listen given");
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", NULL),
                     "--listen smtp://127.0.0.1:25 has no --upstream");
    expect_cli_error(cli("--upstream", "smtp://127.0.0.1:25", NULL), "has no --listen before it");
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h", "--upstream",
                         "smtp://h2", NULL),
                     "--upstream smtp://h2 has no --listen before it");
    expect_cli_error(cli("--listen", "smtps://127.0.0.1:465", "--upstream", "smtp://h", NULL),
                     "TLS needs --cert");
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h", "--cert",
                         "/etc/hostname", NULL),
                     "--cert and --key come in pairs");
    expect_cli_error(
        cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h", "--require-tls", NULL),
        "--require-tls needs --cert");
    expect_cli_error(
        cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h", "--bogus", NULL),
        "--bogus: unknown option");
    expect_cli_error(cli("--listen", NULL), "--listen needs a value");
    expect_cli_error(cli("--listen", "ftp://127.0.0.1:21", "--upstream", "smtp://h", NULL),
                     "--listen ftp://127.0.0.1:21: expected SCHEME://");
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", "--upstream", "imap://h", NULL),
                     "protocol differs");
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h",
                         "--upstream-identity", "imap_id", NULL),
                     "expected none, xclient or proxy");
    expect_cli_error(cli("--listen", "smtp://localhost:25", "--upstream", "smtp://h", NULL),
                     "command line: listeners[0].listen: ");
    expect_cli_error(
        cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h", "--workers", "many", NULL),
        "command line: workers: expected auto or a number");
    expect_cli_error(cli("--listen", "smtp://127.0.0.1:25", "--upstream", "smtp://h",
                         "--max-message-size", "lots", NULL),
                     "command line: listeners[0].limits.message_size: ");
    expect_cli_error(cli("--no-verify=1", NULL), "--no-verify takes no value");
}

/* ---- value parsers ------------------------------------------------------------------------------
 */

static void test_durations(void **state)
{
    (void)state;
    unsigned ms;
    assert_int_equal(pc_parse_duration_ms("30s", &ms), 0), assert_int_equal(ms, 30000);
    assert_int_equal(pc_parse_duration_ms("5m", &ms), 0), assert_int_equal(ms, 300000);
    assert_int_equal(pc_parse_duration_ms("250ms", &ms), 0), assert_int_equal(ms, 250);
    assert_int_equal(pc_parse_duration_ms("1h", &ms), 0), assert_int_equal(ms, 3600000);
    assert_int_equal(pc_parse_duration_ms("2d", &ms), 0), assert_int_equal(ms, 172800000);
    assert_int_equal(pc_parse_duration_ms("7", &ms), 0), assert_int_equal(ms, 7000);
    assert_int_equal(pc_parse_duration_ms("0", &ms), 0), assert_int_equal(ms, 0);
    const char *bad[] = {
        "", "s", "-1s", " 5s", "5 s", "5x", "1.5s", "50d", "99999999999999999999", "5sec"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pc_parse_duration_ms(bad[i], &ms), -1);
    assert_int_equal(pc_parse_duration_ms(NULL, &ms), -1);
}

static void test_sizes(void **state)
{
    (void)state;
    size_t n;
    assert_int_equal(pc_parse_size("512", &n), 0), assert_int_equal(n, 512);
    assert_int_equal(pc_parse_size("64K", &n), 0), assert_int_equal(n, 65536);
    assert_int_equal(pc_parse_size("50M", &n), 0), assert_int_equal(n, 50 << 20);
    assert_int_equal(pc_parse_size("4G", &n), 0), assert_true(n == (size_t)4 << 30);
    assert_int_equal(pc_parse_size("1k", &n), 0), assert_int_equal(n, 1024);
    assert_int_equal(pc_parse_size("2MB", &n), 0), assert_int_equal(n, 2 << 20);
    assert_int_equal(pc_parse_size("2MiB", &n), 0), assert_int_equal(n, 2 << 20);
    const char *bad[] = {"",         "K", "-1", "1.5M", "1X", "1MBB", "1 M", "99999999999999999999",
                         "16777216T"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pc_parse_size(bad[i], &n), -1);
}

static void test_nets(void **state)
{
    (void)state;
    pc_net v[4];
    pc_netlist l = {v, 0};
    assert_int_equal(pc_net_parse("10.0.0.0/8", &v[l.n++]), 0);
    assert_int_equal(pc_net_parse("192.168.1.77/24", &v[l.n++]), 0); /* host bits cleared */
    assert_int_equal(pc_net_parse("2001:db8::/32", &v[l.n++]), 0);
    assert_int_equal(pc_net_parse("::ffff:172.16.0.0/108", &v[l.n++]), 0); /* stored as v4 /12 */
    assert_int_equal(v[1].prefix, 24);
    assert_int_equal(v[1].addr[3], 0);
    assert_int_equal(v[3].family, AF_INET);
    assert_int_equal(v[3].prefix, 12);

    assert_true(in4(&l, "10.255.1.2"));
    assert_false(in4(&l, "11.0.0.1"));
    assert_true(in4(&l, "192.168.1.200"));
    assert_false(in4(&l, "192.168.2.1"));
    assert_true(in6(&l, "::ffff:10.1.2.3")); /* v4-mapped: matched as IPv4 */
    assert_false(in6(&l, "::ffff:11.1.2.3"));
    assert_true(in6(&l, "2001:db8:1::5"));
    assert_false(in6(&l, "2001:db9::5"));
    assert_true(in4(&l, "172.31.0.1"));
    assert_false(in4(&l, "172.32.0.1"));
    assert_false(in6(&l, "::a00:1")); /* v4-compatible is not v4-mapped */

    pc_net one;
    pc_netlist single = {&one, 1};
    assert_int_equal(pc_net_parse("::1", &one), 0);
    assert_int_equal(one.prefix, 128);
    assert_true(in6(&single, "::1"));
    assert_false(in4(&single, "127.0.0.1"));
    assert_int_equal(pc_net_parse("127.0.0.1/32", &one), 0);
    assert_true(in6(&single, "::ffff:127.0.0.1"));
    assert_int_equal(pc_net_parse("0.0.0.0/0", &one), 0);
    assert_true(in4(&single, "8.8.8.8"));
    assert_true(in6(&single, "::ffff:8.8.8.8"));
    assert_false(in6(&single, "2001:db8::1"));

    const char *bad[] = {"",       "10.0.0.0/33", "::/129", "10.0.0.0/",  "10.0.0.0/-1",
                         "host/8", "10.0.0/8",    "/8",     "10.0.0.0/8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pc_net_parse(bad[i], &one), -1);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_false(pc_netlist_match(&l, &sa));
}

static void test_hostport(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_int_equal(pc_parse_hostport("0.0.0.0:25", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 25);
    assert_int_equal(pc_parse_hostport("[::1]:2525", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 2525);
    const char *bad[] = {"",
                         "0.0.0.0",
                         "::1:25",
                         "[::1]",
                         "[127.0.0.1]:25",
                         "localhost:25",
                         "1.2.3.4:65536",
                         "1.2.3.4:",
                         "1.2.3.4:x",
                         "[::1]25",
                         "1.2.3.4:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pc_parse_hostport(bad[i], &ss), -1);
}

static void test_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url, *host;
        pc_proto proto;
        pc_tls_mode tls;
        uint16_t port;
    } ok[] = {
        {"smtp://0.0.0.0", "0.0.0.0", PC_PROTO_SMTP, PC_TLS_NONE, 25},
        {"smtps://0.0.0.0", "0.0.0.0", PC_PROTO_SMTP, PC_TLS_IMPLICIT, 465},
        {"smtp+starttls://mx.example.test:587/", "mx.example.test", PC_PROTO_SMTP, PC_TLS_STARTTLS,
         587},
        {"pop3://[::1]", "::1", PC_PROTO_POP3, PC_TLS_NONE, 110},
        {"pop3s://[::1]:1995", "::1", PC_PROTO_POP3, PC_TLS_IMPLICIT, 1995},
        {"pop3+stls://h", "h", PC_PROTO_POP3, PC_TLS_STARTTLS, 110},
        {"imap://h", "h", PC_PROTO_IMAP, PC_TLS_NONE, 143},
        {"imaps://h", "h", PC_PROTO_IMAP, PC_TLS_IMPLICIT, 993},
        {"imap+starttls://10.0.0.1:1143", "10.0.0.1", PC_PROTO_IMAP, PC_TLS_STARTTLS, 1143},
    };
    char host[64];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        pc_proto p;
        pc_tls_mode t;
        uint16_t port;
        assert_int_equal(pc_parse_url(ok[i].url, &p, &t, host, sizeof(host), &port), 0);
        assert_string_equal(host, ok[i].host);
        assert_int_equal(p, ok[i].proto);
        assert_int_equal(t, ok[i].tls);
        assert_int_equal(port, ok[i].port);
    }
    const char *bad[] = {"",
                         "smtp:/h",
                         "http://h",
                         "smtp://",
                         "smtp://h:99999",
                         "smtp://::1:25",
                         "smtp://user@h",
                         "smtp://h/path",
                         "SMTP://h",
                         "smtp://[::1",
                         "smtp+tls://h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pc_proto p;
        pc_tls_mode t;
        uint16_t port;
        assert_int_equal(pc_parse_url(bad[i], &p, &t, host, sizeof(host), &port), -1);
    }
    pc_proto p;
    pc_tls_mode t;
    uint16_t port;
    assert_int_equal(pc_parse_url("smtp://a-very-long-host-name.example", &p, &t, host, 8, &port),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_errors_inline),
        cmocka_unit_test(test_pregreet_timeout_ok),
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_every_key_documented),
        cmocka_unit_test(test_cli_basic),
        cmocka_unit_test(test_mailbox_defaults_per_protocol),
        cmocka_unit_test(test_cli_full),
        cmocka_unit_test(test_cli_trust_and_plaintext_auth),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_nets),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_resolver),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
