/* test_admin_cmd.c — the admin socket's request lines (gateway/admin/admin_cmd.c) and
 * portcullisctl's reply lines (tools/ctl_reply.c): what each accepts, and every malformed or
 * over-long line refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/admin_cmd.h"
#include "ctl_reply.h"

#define ID "0123456789abcdef0123456789abcdef"

static int parse(pc_admin_cmd *c, const char *s)
{
    char err[128];
    return pc_admin_cmd_parse(c, s, strlen(s), err, sizeof(err));
}

static void test_accepted(void **state)
{
    (void)state;
    pc_admin_cmd c;
    assert_int_equal(parse(&c, "quarantine list"), 0);
    assert_int_equal(c.verb, PC_ADMIN_LIST);
    assert_string_equal(c.rcpt, "");
    assert_int_equal(parse(&c, "quarantine list rcpt=a@b since=1767225600"), 0);
    assert_string_equal(c.rcpt, "a@b");
    assert_true(c.since == 1767225600);
    assert_int_equal(parse(&c, "quarantine show " ID), 0);
    assert_int_equal(c.verb, PC_ADMIN_SHOW);
    assert_string_equal(c.id, ID);
    assert_int_equal(parse(&c, "quarantine release " ID " rcpt=bob@x.test"), 0);
    assert_int_equal(c.verb, PC_ADMIN_RELEASE);
    assert_string_equal(c.rcpt, "bob@x.test");
    assert_int_equal(parse(&c, "quarantine delete " ID), 0);
    assert_int_equal(c.verb, PC_ADMIN_DELETE);
}

static void test_refused(void **state)
{
    (void)state;
    pc_admin_cmd c;
    const char *bad[] = {
        "",
        "quarantine",
        "quarantine frob",
        "QUARANTINE list",
        "quarantine  list",
        "quarantine list ",
        "quarantine list rcpt=",
        "quarantine list since=12x",
        "quarantine list other=1",
        "quarantine show",
        "quarantine show ../../etc/passwd",
        "quarantine show " ID "0",
        "quarantine show 0123456789ABCDEF0123456789abcdef",
        "quarantine show " ID " extra",
        "quarantine delete " ID " rcpt=a@b",
        "quarantine release " ID " rcpt=a\x01@b",
        "quarantine list a b c d e f g",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(&c, bad[i]) != -1)
            fail_msg("accepted: %s", bad[i]);
    }
    /* A NUL inside the line is not a space: refused within its word. */
    char err[128];
    assert_int_equal(pc_admin_cmd_parse(&c, "quarantine li\0st", 16, err, sizeof(err)), -1);
    /* Over the line bound. */
    char *big = malloc(PC_ADMIN_LINE_MAX + 10);
    memset(big, 'a', PC_ADMIN_LINE_MAX + 10);
    memcpy(big, "quarantine list rcpt=", 21);
    assert_int_equal(pc_admin_cmd_parse(&c, big, PC_ADMIN_LINE_MAX + 1, err, sizeof(err)), -1);
    free(big);
}

static void test_reply_lines(void **state)
{
    (void)state;
    ctl_line l;
    const char *rec = "message\tid=" ID "\tfrom=\trcpts=a@b,c@d";
    assert_int_equal(ctl_parse_line(&l, rec, strlen(rec)), CTL_RECORD);
    assert_int_equal(l.n, 3);
    size_t n;
    const char *v = ctl_get(&l, "rcpts", &n);
    assert_non_null(v);
    assert_int_equal(n, 7);
    assert_memory_equal(v, "a@b,c@d", 7);
    v = ctl_get(&l, "from", &n);
    assert_non_null(v);
    assert_int_equal(n, 0);
    assert_null(ctl_get(&l, "nope", &n));
    assert_int_equal(ctl_parse_line(&l, "ok 12", 5), CTL_OK);
    assert_int_equal(l.n, 12);
    assert_int_equal(ctl_parse_line(&l, "error not-found no such message", 31), CTL_ERROR);
    assert_int_equal(l.type.n, 9);
    assert_int_equal(l.text.n, 15);
    const char *bad[] = {"", "ok", "ok x", "ok 1 2", "error ", "\tk=v", "t\tnovalue", "t\t=v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ctl_parse_line(&l, bad[i], strlen(bad[i])) != CTL_BAD)
            fail_msg("accepted: %s", bad[i]);
    /* More fields than the bound: refused, never written past the arrays. */
    char many[2000];
    size_t k = (size_t)snprintf(many, sizeof(many), "t");
    for (int i = 0; i < CTL_FIELDS + 1; i++)
        k += (size_t)snprintf(many + k, sizeof(many) - k, "\tk%d=v", i);
    assert_int_equal(ctl_parse_line(&l, many, k), CTL_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_reply_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
