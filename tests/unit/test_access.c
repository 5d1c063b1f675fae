/* test_access.c — the access and pregreet filters run through the chain with a fake session view
 * (and a pc_conn whose input buffer stands in for bytes sent before the greeting). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/log.h"
#include "builtin.h"
#include "core/chain.h"
#include "core/plugin.h"
#include "net/conn.h"

static uv_loop_t loop;
static pc_results results;
static pc_session_view sv;
static int ncb;
static pc_verdict got;
static char got_text[256], got_sym[64], got_enh[16];

static void on_chain(void *ud, const pc_verdict *v)
{
    (void)ud;
    ncb++;
    got = *v;
    snprintf(got_text, sizeof(got_text), "%s", v->text ? v->text : "");
    snprintf(got_sym, sizeof(got_sym), "%s", v->symbol ? v->symbol : "");
    snprintf(got_enh, sizeof(got_enh), "%s", v->enhanced ? v->enhanced : "");
}

static void set_client(const char *ip)
{
    memset(&sv.client, 0, sizeof(sv.client));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sv.client;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&sv.client;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    snprintf(sv.client_ip, sizeof(sv.client_ip), "%s", ip);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&sv, 0, sizeof(sv));
    sv.sid = 7;
    sv.loop = &loop;
    sv.protocol = "smtp";
    sv.listener = "mx";
    sv.results = &results;
    set_client("192.0.2.10");
    ncb = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    pc_results_reset(&results);
    return 0;
}

/* ---- building options trees ---- */

static pc_opt nodes[64];
static size_t nnodes;

static pc_opt *node(pc_opt_kind kind, const char *key, const char *value, int line)
{
    assert_true(nnodes < 64);
    pc_opt *o = &nodes[nnodes++];
    *o = (pc_opt){.kind = kind, .key = key, .value = value, .line = line, .file = "t.yaml"};
    return o;
}

static void add_child(pc_opt *parent, pc_opt *child)
{
    pc_opt **pp = &parent->child;
    while (*pp)
        pp = &(*pp)->next;
    *pp = child;
}

/* key: [items...] (NULL-terminated) */
static void list(pc_opt *map, const char *key, ...)
{
    pc_opt *seq = node(PC_OPT_SEQ, key, NULL, (int)nnodes + 1);
    add_child(map, seq);
    va_list ap;
    va_start(ap, key);
    const char *v;
    while ((v = va_arg(ap, const char *)))
        add_child(seq, node(PC_OPT_SCALAR, NULL, v, (int)nnodes + 1));
    va_end(ap);
}

static pc_chain *chain_of(const char *name, const pc_opt *opts, char *err, size_t errlen)
{
    pc_filter_use u = {.name = (char *)name, .timeout_ms = 2000, .options = opts};
    return pc_chain_build(&u, 1, err, errlen);
}

/* chain_of() that must succeed. */
static pc_chain *build(const char *name, const pc_opt *opts)
{
    char err[256] = "";
    pc_chain *ch = chain_of(name, opts, err, sizeof(err));
    assert_non_null(ch);
    return ch;
}

static pc_verdict run_hook(pc_chain *ch, pc_hook hook)
{
    int before = ncb;
    pc_chain_run *r = pc_chain_start(ch, hook, &sv, on_chain, NULL);
    if (r)
        uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ncb, before + 1);
    return got;
}

/* A value for a session-view field and the action the chain must answer with it. */
typedef struct {
    const char *value;
    pc_action action;
} field_case;

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* Sets *field to each case's value in turn, in order, and runs hook on ch for it. */
static void check_cases(pc_chain *ch, pc_hook hook, const char **field, const field_case *c,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *field = c[i].value;
        pc_action a = run_hook(ch, hook).action;
        if (a != c[i].action)
            print_error("hook %d, value \"%s\":\n", (int)hook, c[i].value);
        assert_int_equal(a, c[i].action);
    }
}

static pc_opt *access_opts(void)
{
    nnodes = 0;
    pc_opt *root = node(PC_OPT_MAP, NULL, NULL, 1);
    list(root, "allow_clients", "192.0.2.128/25", "2001:db8:1::/48", NULL);
    list(root, "deny_clients", "192.0.2.0/24", "198.51.100.7", "2001:db8::/32", NULL);
    list(root, "deny_helo", "localhost", ".bad.example", NULL);
    list(root, "allow_senders", "boss@spam.example", NULL);
    list(root, "deny_senders", "@spam.example", "junk.example", "Eve@Example.ORG", NULL);
    list(root, "allow_recipients", "postmaster@corp.example", NULL);
    list(root, "deny_recipients", "corp.example", "@old.example", NULL);
    return root;
}

static void test_access_clients(void **state)
{
    (void)state;
    pc_chain *ch = build("access", access_opts());

    pc_verdict v = run_hook(ch, PC_HOOK_CONNECT);
    assert_int_equal(v.action, PC_REJECT);
    assert_int_equal(v.code, 554);
    assert_string_equal(got_enh, "5.7.1");
    assert_string_equal(got_text, "Client address rejected: 192.0.2.10");
    assert_string_equal(got_sym, "ACCESS_DENY_CLIENT");
    pc_results_reset(&results);

    set_client("198.51.100.7");
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_REJECT);
    set_client("198.51.100.8");
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_CONTINUE);
    set_client("2001:db8:5::1");
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_REJECT);
    pc_results_reset(&results);

    /* v4-mapped IPv6 is matched as IPv4 */
    set_client("::ffff:192.0.2.1");
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_REJECT);
    pc_results_reset(&results);

    /* allow wins over deny, and is remembered for later hooks */
    set_client("192.0.2.200");
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_ACCEPT);
    assert_non_null(results.keys);
    assert_string_equal(results.keys[0], "access.client");
    assert_string_equal(results.values[0], "allow");
    sv.helo = "localhost";
    assert_int_equal(run_hook(ch, PC_HOOK_HELO).action, PC_CONTINUE);
    sv.sender = "x@spam.example";
    assert_int_equal(run_hook(ch, PC_HOOK_MAIL).action, PC_CONTINUE);
    set_client("2001:db8:1::9");
    pc_results_reset(&results);
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_ACCEPT);
    pc_chain_free(ch);
}

static void test_access_envelope(void **state)
{
    (void)state;
    pc_chain *ch = build("access", access_opts());
    set_client("203.0.113.5");

    sv.helo = "LOCALHOST";
    assert_int_equal(run_hook(ch, PC_HOOK_HELO).action, PC_REJECT);
    assert_string_equal(got_text, "Helo command rejected: LOCALHOST");
    assert_string_equal(got_sym, "ACCESS_DENY_HELO");
    static const field_case helos[] = {
        {"mx.Bad.Example", PC_REJECT},
        {"bad.example", PC_CONTINUE}, /* ".domain" is for names below it */
        {"notbad.example", PC_CONTINUE},
    };
    check_cases(ch, PC_HOOK_HELO, &sv.helo, helos, NCASES(helos));

    sv.sender = "someone@SPAM.example";
    assert_int_equal(run_hook(ch, PC_HOOK_MAIL).action, PC_REJECT);
    assert_string_equal(got_text, "Sender address rejected: someone@SPAM.example");
    assert_string_equal(got_sym, "ACCESS_DENY_SENDER");
    static const field_case senders[] = {
        {"boss@spam.example", PC_ACCEPT},
        {"a@junk.example", PC_REJECT},
        {"eve@example.org", PC_REJECT},
        {"adam@example.org", PC_CONTINUE},
        {"", PC_CONTINUE},
        {"x@sub.spam.example", PC_CONTINUE},     /* whole domain, not subdomains */
        {"bad\r\nname@spam.example", PC_REJECT}, /* echoed safely */
    };
    check_cases(ch, PC_HOOK_MAIL, &sv.sender, senders, NCASES(senders));
    assert_string_equal(got_text, "Sender address rejected: bad??name@spam.example");

    sv.rcpt = "user@corp.example";
    assert_int_equal(run_hook(ch, PC_HOOK_RCPT).action, PC_REJECT);
    assert_string_equal(got_text, "Recipient address rejected: user@corp.example");
    assert_string_equal(got_sym, "ACCESS_DENY_RCPT");
    static const field_case rcpts[] = {
        {"PostMaster@corp.example", PC_ACCEPT},
        {"a@old.example", PC_REJECT},
        {"a@new.example", PC_CONTINUE},
    };
    check_cases(ch, PC_HOOK_RCPT, &sv.rcpt, rcpts, NCASES(rcpts));
    pc_chain_free(ch);

    /* no options at all: everything continues */
    ch = build("access", NULL);
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_CONTINUE);
    assert_int_equal(run_hook(ch, PC_HOOK_RCPT).action, PC_CONTINUE);
    pc_chain_free(ch);
}

static void test_access_bad_options(void **state)
{
    (void)state;
    char err[256] = "";
    nnodes = 0;
    pc_opt *root = node(PC_OPT_MAP, NULL, NULL, 1);
    add_child(root, node(PC_OPT_SCALAR, "deny_client", "10.0.0.0/8", 12));
    assert_null(chain_of("access", root, err, sizeof(err)));
    assert_string_equal(err, "filter access: t.yaml:12: unknown option deny_client");

    nnodes = 0;
    root = node(PC_OPT_MAP, NULL, NULL, 1);
    list(root, "deny_clients", "10.0.0.0/33", NULL);
    assert_null(chain_of("access", root, err, sizeof(err)));
    assert_non_null(strstr(err, "10.0.0.0/33"));
    assert_non_null(strstr(err, "t.yaml:3"));

    /* a single scalar is a list of one */
    nnodes = 0;
    root = node(PC_OPT_MAP, NULL, NULL, 1);
    add_child(root, node(PC_OPT_SCALAR, "deny_clients", "192.0.2.10", 2));
    pc_chain *ch = build("access", root);
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_REJECT);
    pc_chain_free(ch);
}

/* ---- pregreet ---- */

static pc_opt *pregreet_opts(const char *delay, const char *action)
{
    nnodes = 0;
    pc_opt *root = node(PC_OPT_MAP, NULL, NULL, 1);
    if (delay)
        add_child(root, node(PC_OPT_SCALAR, "delay", delay, 2));
    if (action)
        add_child(root, node(PC_OPT_SCALAR, "action", action, 3));
    return root;
}

static void test_pregreet(void **state)
{
    (void)state;
    char err[256] = "";
    pc_conn conn;
    memset(&conn, 0, sizeof(conn));
    pc_buf_init(&conn.in, 4096);
    sv.conn = &conn;

    pc_chain *ch = build("pregreet", pregreet_opts("30ms", NULL));
    /* quiet client */
    uint64_t t0 = uv_hrtime();
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_CONTINUE);
    assert_true((uv_hrtime() - t0) / 1000000u >= 25);
    /* talked before the greeting */
    assert_int_equal(pc_buf_append(&conn.in, "EHLO x\r\n", 8), 0);
    pc_verdict v = run_hook(ch, PC_HOOK_CONNECT);
    assert_int_equal(v.action, PC_REJECT);
    assert_int_equal(v.code, 554);
    assert_string_equal(got_enh, "5.5.1");
    assert_string_equal(got_text, "Protocol error: talked before greeting");
    assert_string_equal(got_sym, "PREGREET");
    pc_chain_free(ch);

    ch = build("pregreet", pregreet_opts("0", "tempfail"));
    assert_null(pc_chain_start(ch, PC_HOOK_CONNECT, &sv, on_chain, NULL)); /* delay 0: at once */
    assert_int_equal(got.action, PC_TEMPFAIL);
    assert_int_equal(got.code, 421);
    assert_string_equal(got_enh, "4.7.0");
    pc_chain_free(ch);

    ch = build("pregreet", pregreet_opts("10ms", "continue"));
    pc_results_reset(&results);
    assert_int_equal(run_hook(ch, PC_HOOK_CONNECT).action, PC_CONTINUE);
    assert_int_equal(results.nsymbols, 1);
    assert_string_equal(results.symbols[0], "PREGREET");
    pc_chain_free(ch);

    /* the session ends during the delay */
    ch = build("pregreet", pregreet_opts("1h", NULL));
    pc_chain_run *run = pc_chain_start(ch, PC_HOOK_CONNECT, &sv, on_chain, NULL);
    assert_non_null(run);
    int before = ncb;
    pc_chain_abort(run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ncb, before);
    pc_chain_free(ch);

    assert_null(chain_of("pregreet", pregreet_opts("soon", NULL), err, sizeof(err)));
    assert_string_equal(
        err, "filter pregreet: t.yaml:2: delay: expected a duration such as 6s or 500ms, "
             "got soon");
    assert_null(chain_of("pregreet", pregreet_opts(NULL, "drop"), err, sizeof(err)));
    assert_non_null(strstr(err, "t.yaml:3: action"));
    nnodes = 0;
    pc_opt *root = node(PC_OPT_MAP, NULL, NULL, 1);
    add_child(root, node(PC_OPT_SCALAR, "dealy", "5s", 4));
    assert_null(chain_of("pregreet", root, err, sizeof(err)));
    assert_string_equal(err, "filter pregreet: t.yaml:4: unknown option dealy");

    pc_buf_release(&conn.in);
    sv.conn = NULL;
}

/* access (allow) before pregreet: an allowed client skips the rest of CONNECT */
static void test_together(void **state)
{
    (void)state;
    char err[256] = "";
    pc_filter_use u[2] = {
        {.name = "access", .timeout_ms = 1000, .options = access_opts()},
        {.name = "pregreet", .timeout_ms = 1000, .options = NULL},
    };
    pc_chain *ch = pc_chain_build(u, 2, err, sizeof(err));
    assert_non_null(ch);
    set_client("192.0.2.129");
    assert_null(pc_chain_start(ch, PC_HOOK_CONNECT, &sv, on_chain, NULL));
    assert_int_equal(got.action, PC_ACCEPT);
    pc_chain_free(ch);
}

int main(void)
{
    pc_log_open("stderr", PC_LOG_WARN);
    pc_filters_register_builtin();
    pc_filters_register_builtin(); /* idempotent */
    if (!pc_filter_lookup("access") || !pc_filter_lookup("pregreet"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_access_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pregreet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_together, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
