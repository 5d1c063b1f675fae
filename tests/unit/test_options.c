/* test_options.c — the typed readers of include/portcullis/options.h on option trees loaded from
 * a real file (so every node has its file and line): good values, defaults, bad values and the
 * exact "FILE:LINE: KEY: problem" text, which is the configuration loader's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char dir[] = "/tmp/pc_test_options.XXXXXX";
static char path[300];
static char err[512];
static pc_config *cfg;

/* Loads a configuration whose one filter has the given options block (lines of "      key: v"
 * start at line 7) and returns that options node. */
static const pc_opt *opts(const char *block)
{
    pc_config_free(cfg);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "listeners:\n"                   /* 1 */
            "  - listen: \"127.0.0.1:1\"\n"  /* 2 */
            "    upstream: { address: h }\n" /* 3 */
            "    filters:\n"                 /* 4 */
            "      - name: access\n"         /* 5 */
            "        options:\n"             /* 6 */
            "%s",
            block);
    fclose(f);
    cfg = pc_config_load(path, err, sizeof(err));
    if (!cfg)
        print_error("%s\n", err);
    assert_non_null(cfg);
    assert_non_null(cfg->listeners[0].filters[0].options);
    return cfg->listeners[0].filters[0].options;
}

/* err must be "PATH:LINE: " followed by rest. */
static void expect_err(int line, const char *rest)
{
    char want[1024];
    snprintf(want, sizeof(want), "%s:%d: %s", path, line, rest);
    assert_string_equal(err, want);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/o.yaml", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pc_config_free(cfg);
    cfg = NULL;
    unlink(path);
    return rmdir(dir);
}

static void test_duration(void **state)
{
    (void)state;
    const pc_opt *o = opts("          a: 500ms\n"
                           "          b: 0\n"
                           "          c: 2m\n"
                           "          d:\n"
                           "          bad: soon\n"
                           "          list: [ 1s ]\n"
                           "          big: 50d\n");
    unsigned ms = 7;
    assert_int_equal(pc_opt_duration(o, "a", &ms, err, sizeof(err)), 1);
    assert_int_equal(ms, 500);
    assert_int_equal(pc_opt_duration(o, "b", &ms, err, sizeof(err)), 1);
    assert_int_equal(ms, 0); /* 0 is a value for a filter ("check at once") */
    assert_int_equal(pc_opt_duration(o, "c", &ms, err, sizeof(err)), 1);
    assert_int_equal(ms, 120000);
    ms = 6000;
    assert_int_equal(pc_opt_duration(o, "d", &ms, err, sizeof(err)), 0); /* no value: default */
    assert_int_equal(pc_opt_duration(o, "absent", &ms, err, sizeof(err)), 0);
    assert_int_equal(pc_opt_duration(NULL, "a", &ms, err, sizeof(err)), 0);
    assert_int_equal(ms, 6000);

    assert_int_equal(pc_opt_duration(o, "bad", &ms, err, sizeof(err)), -1);
    expect_err(11, "bad: expected a duration such as 6s or 500ms, got soon");
    assert_int_equal(ms, 6000); /* unchanged on error */
    assert_int_equal(pc_opt_duration(o, "list", &ms, err, sizeof(err)), -1);
    expect_err(12, "list: expected a single value, found a list");
    assert_int_equal(pc_opt_duration(o, "big", &ms, err, sizeof(err)), -1);
    expect_err(13, "big: expected a duration such as 6s or 500ms, got 50d");
}

static void test_size(void **state)
{
    (void)state;
    const pc_opt *o = opts("          a: 64K\n"
                           "          b: 2MiB\n"
                           "          c: 512\n"
                           "          bad: lots\n"
                           "          map: { x: 1 }\n");
    size_t n = 1;
    assert_int_equal(pc_opt_size(o, "a", &n, err, sizeof(err)), 1);
    assert_int_equal(n, 65536);
    assert_int_equal(pc_opt_size(o, "b", &n, err, sizeof(err)), 1);
    assert_int_equal(n, 2 << 20);
    assert_int_equal(pc_opt_size(o, "c", &n, err, sizeof(err)), 1);
    assert_int_equal(n, 512);
    assert_int_equal(pc_opt_size(o, "none", &n, err, sizeof(err)), 0);
    assert_int_equal(n, 512);
    assert_int_equal(pc_opt_size(o, "bad", &n, err, sizeof(err)), -1);
    expect_err(10, "bad: expected a size such as 512, 64K, 50M, 4G, got lots");
    assert_int_equal(n, 512);
    assert_int_equal(pc_opt_size(o, "map", &n, err, sizeof(err)), -1);
    expect_err(11, "map: expected a single value, found a map");
}

static void test_bool(void **state)
{
    (void)state;
    const pc_opt *o = opts("          a: yes\n"
                           "          b: off\n"
                           "          c: \"true\"\n"
                           "          bad: maybe\n");
    int v = 5;
    assert_int_equal(pc_opt_bool(o, "a", &v, err, sizeof(err)), 1);
    assert_int_equal(v, 1);
    assert_int_equal(pc_opt_bool(o, "b", &v, err, sizeof(err)), 1);
    assert_int_equal(v, 0);
    assert_int_equal(pc_opt_bool(o, "c", &v, err, sizeof(err)), 1);
    assert_int_equal(v, 1);
    assert_int_equal(pc_opt_bool(o, "bad", &v, err, sizeof(err)), -1);
    expect_err(10, "bad: expected true or false, got maybe");
    assert_int_equal(v, 1);
}

static void test_enum(void **state)
{
    (void)state;
    static const char *const names[] = {"reject", "tempfail", "continue", NULL};
    const pc_opt *o = opts("          a: continue\n"
                           "          bad: drop\n"
                           "          case: Reject\n");
    int i = -1;
    assert_int_equal(pc_opt_enum(o, "a", names, &i, err, sizeof(err)), 1);
    assert_int_equal(i, 2);
    assert_int_equal(pc_opt_enum(o, "none", names, &i, err, sizeof(err)), 0);
    assert_int_equal(i, 2);
    assert_int_equal(pc_opt_enum(o, "bad", names, &i, err, sizeof(err)), -1);
    expect_err(8, "bad: expected one of reject, tempfail, continue");
    assert_int_equal(pc_opt_enum(o, "case", names, &i, err, sizeof(err)), -1);
    expect_err(9, "case: expected one of reject, tempfail, continue");
    assert_int_equal(i, 2);
}

static int has4(const pc_cidr_list *l, const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sin.sin_addr);
    return pc_cidr_match(l, (struct sockaddr *)&sin);
}

static int has6(const pc_cidr_list *l, const char *ip)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, ip, &sin6.sin6_addr);
    return pc_cidr_match(l, (struct sockaddr *)&sin6);
}

static void test_cidrs(void **state)
{
    (void)state;
    const pc_opt *o = opts("          nets:\n"
                           "            - 10.0.0.0/8\n"
                           "            - 192.168.1.77/24\n"
                           "            - 2001:db8::/32\n"
                           "          one: 198.51.100.7\n"
                           "          bad:\n"
                           "            - 10.0.0.0/8\n"
                           "            - 10.0.0.0/33\n"
                           "          badone: host/8\n"
                           "          map: { a: b }\n"
                           "          empty: []\n");
    pc_cidr_list l = {0};
    assert_int_equal(pc_opt_cidrs(o, "nets", &l, err, sizeof(err)), 1);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.v[1].prefix, 24);
    assert_int_equal(l.v[1].addr[3], 0); /* host bits cleared, as in the loader */
    assert_true(has4(&l, "10.1.2.3"));
    assert_true(has4(&l, "192.168.1.200"));
    assert_false(has4(&l, "192.168.2.1"));
    assert_true(has6(&l, "::ffff:10.9.9.9")); /* v4-mapped matched as IPv4 */
    assert_true(has6(&l, "2001:db8:1::1"));
    assert_false(has6(&l, "2001:db9::1"));
    pc_cidr_list_free(&l);
    assert_null(l.v);
    assert_int_equal(l.n, 0);

    assert_int_equal(pc_opt_cidrs(o, "one", &l, err, sizeof(err)), 1);
    assert_int_equal(l.n, 1);
    assert_true(has4(&l, "198.51.100.7"));
    assert_false(has4(&l, "198.51.100.8"));
    pc_cidr_list_free(&l);

    assert_int_equal(pc_opt_cidrs(o, "absent", &l, err, sizeof(err)), 0);
    assert_null(l.v);
    assert_int_equal(pc_opt_cidrs(o, "empty", &l, err, sizeof(err)), 1);
    assert_int_equal(l.n, 0);
    assert_false(has4(&l, "10.0.0.1"));

    assert_int_equal(pc_opt_cidrs(o, "bad", &l, err, sizeof(err)), -1);
    expect_err(14, "bad[1]: \"10.0.0.0/33\" is not an address or ADDRESS/PREFIX");
    assert_null(l.v);
    assert_int_equal(pc_opt_cidrs(o, "badone", &l, err, sizeof(err)), -1);
    expect_err(15, "badone: \"host/8\" is not an address or ADDRESS/PREFIX");
    assert_int_equal(pc_opt_cidrs(o, "map", &l, err, sizeof(err)), -1);
    expect_err(16, "map: expected a list, found a map");
    pc_cidr_list_free(NULL);
}

static void test_addresses(void **state)
{
    (void)state;
    const pc_opt *o = opts("          ok: [ Eve@Example.ORG, \"@spam.example\", junk.example,"
                           " \"o'neil+tag@x.example\", jos\xc3\xa9@example.com ]\n"
                           "          one: boss@corp.example\n"
                           "          space: [ ok@a.example, \"a b@c.example\" ]\n"
                           "          nodomain: user@\n"
                           "          baddomain: \"@-x..example\"\n"
                           "          ctl: \"a\\tb@c.example\"\n");
    pc_str_list l = {0};
    assert_int_equal(pc_opt_addresses(o, "ok", &l, err, sizeof(err)), 1);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.v[0], "Eve@Example.ORG");
    assert_string_equal(l.v[1], "@spam.example");
    assert_string_equal(l.v[2], "junk.example");
    assert_string_equal(l.v[3], "o'neil+tag@x.example");
    assert_string_equal(l.v[4], "jos\xc3\xa9@example.com");
    pc_str_list_free(&l);
    assert_null(l.v);
    assert_int_equal(pc_opt_addresses(o, "one", &l, err, sizeof(err)), 1);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0], "boss@corp.example");
    pc_str_list_free(&l);

    assert_int_equal(pc_opt_addresses(o, "space", &l, err, sizeof(err)), -1);
    expect_err(9, "space[1]: \"a b@c.example\" is not user@domain, @domain or domain");
    assert_null(l.v);
    assert_int_equal(pc_opt_addresses(o, "nodomain", &l, err, sizeof(err)), -1);
    expect_err(10, "nodomain: \"user@\" is not user@domain, @domain or domain");
    assert_int_equal(pc_opt_addresses(o, "baddomain", &l, err, sizeof(err)), -1);
    expect_err(11, "baddomain: \"@-x..example\" is not user@domain, @domain or domain");
    assert_int_equal(pc_opt_addresses(o, "ctl", &l, err, sizeof(err)), -1);
    expect_err(12, "ctl: control characters are not allowed");
}

static void test_domains(void **state)
{
    (void)state;
    const pc_opt *o = opts("          names: [ localhost, .dynamic.example.net, mx_1.example ]\n"
                           "          bad: [ \"-x.example\" ]\n"
                           "          at: [ user@example.com ]\n");
    pc_str_list l = {0};
    assert_int_equal(pc_opt_domains(o, "names", PC_OPT_BELOW, &l, err, sizeof(err)), 1);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[1], ".dynamic.example.net");
    pc_str_list_free(&l);
    /* a leading '.' only with PC_OPT_BELOW */
    assert_int_equal(pc_opt_domains(o, "names", 0, &l, err, sizeof(err)), -1);
    expect_err(7, "names[1]: \".dynamic.example.net\" is not a valid name (letters, digits, '-', "
                  "'.', '_')");
    assert_null(l.v);
    assert_int_equal(pc_opt_domains(o, "bad", PC_OPT_BELOW, &l, err, sizeof(err)), -1);
    expect_err(8, "bad[0]: \"-x.example\" is not a valid name (letters, digits, '-', '.', '_')");
    assert_int_equal(pc_opt_domains(o, "at", 0, &l, err, sizeof(err)), -1);
    expect_err(9,
               "at[0]: \"user@example.com\" is not a valid name (letters, digits, '-', '.', '_')");
    assert_int_equal(pc_opt_domains(o, "none", 0, &l, err, sizeof(err)), 0);
    assert_null(l.v);
}

static void test_path(void **state)
{
    (void)state;
    char block[600];
    snprintf(block, sizeof(block),
             "          file: %s\n"
             "          rel: some/file\n"
             "          missing: /nonexistent/portcullis/x.db\n",
             path);
    const pc_opt *o = opts(block);
    const char *p = "default";
    assert_int_equal(
        pc_opt_path(o, "file", PC_OPT_ABSOLUTE | PC_OPT_READABLE, &p, err, sizeof(err)), 1);
    assert_string_equal(p, path);
    assert_int_equal(pc_opt_path(o, "rel", 0, &p, err, sizeof(err)), 1);
    assert_string_equal(p, "some/file");
    assert_int_equal(pc_opt_path(o, "rel", PC_OPT_ABSOLUTE, &p, err, sizeof(err)), -1);
    expect_err(8, "rel: expected an absolute path");
    assert_string_equal(p, "some/file");
    assert_int_equal(pc_opt_path(o, "missing", PC_OPT_READABLE, &p, err, sizeof(err)), -1);
    expect_err(9, "missing: cannot read /nonexistent/portcullis/x.db: No such file or directory");
    assert_int_equal(pc_opt_path(o, "missing", PC_OPT_ABSOLUTE, &p, err, sizeof(err)), 1);
    p = "default";
    assert_int_equal(pc_opt_path(o, "none", PC_OPT_READABLE, &p, err, sizeof(err)), 0);
    assert_string_equal(p, "default");
}

static void test_keys_and_errors(void **state)
{
    (void)state;
    static const char *const known[] = {"delay", "action", NULL};
    const pc_opt *o = opts("          delay: 1s\n"
                           "          dealy: 2s\n");
    assert_int_equal(pc_opt_check_keys(o, known, err, sizeof(err)), -1);
    expect_err(8, "unknown option dealy");
    assert_int_equal(pc_opt_check_keys(NULL, known, err, sizeof(err)), 0);
    o = opts("          delay: 1s\n");
    assert_int_equal(pc_opt_check_keys(o, known, err, sizeof(err)), 0);
    o = opts("          - 1s\n");
    assert_int_equal(pc_opt_check_keys(o, known, err, sizeof(err)), -1);
    expect_err(6, "options must be a map");

    assert_int_equal(pc_opt_error(err, sizeof(err), o, "%s: bad %d", "x", 3), -1);
    expect_err(6, "x: bad 3");
    pc_opt cli = {.kind = PC_OPT_SCALAR, .key = "delay", .value = "x"};
    assert_int_equal(pc_opt_error(err, sizeof(err), &cli, "oops"), -1);
    assert_string_equal(err, "command line: oops");
    pc_opt map = {.kind = PC_OPT_MAP, .child = &cli};
    unsigned ms = 1;
    assert_int_equal(pc_opt_duration(&map, "delay", &ms, err, sizeof(err)), -1);
    assert_string_equal(err, "command line: delay: expected a duration such as 6s or 500ms, got x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_cidrs),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_keys_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
