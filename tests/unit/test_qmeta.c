/* test_qmeta.c — the quarantine's metadata file: what is written parses back to the same fields,
 * release lines mark their recipients, and every bound (line, file, recipients, ID form) holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarantine/qmeta.h"

#define ID "0123456789abcdef0123456789abcdef"

static void test_round_trip(void **state)
{
    (void)state;
    pc_qmeta m;
    memset(&m, 0, sizeof(m));
    strcpy(m.id, ID);
    m.time = 1767225600;
    strcpy(m.listener, "in");
    strcpy(m.client, "192.0.2.1");
    strcpy(m.helo, "evil\r\nhelo"); /* sanitised on the way out */
    strcpy(m.from, "");
    strcpy(m.action, "quarantine");
    m.score = 7.5;
    strcpy(m.symbols, "A,B");
    strcpy(m.reason, "held");
    m.size = 99;
    m.body8bit = 1;
    m.smtputf8 = 1;
    assert_int_equal(pc_qmeta_add_rcpt(&m, "alice@example.com"), 0);
    assert_int_equal(pc_qmeta_add_rcpt(&m, "bob@example.com"), 0);
    char *out;
    size_t n;
    assert_int_equal(pc_qmeta_format(&m, &out, &n), 0);
    char line[PC_QMETA_LINE_MAX];
    pc_qmeta_release_line(line, sizeof(line), 1767229200, 0, "ro ot", "bob@example.com");
    assert_string_equal(line, "released 1767229200 uid=0 user=ro?ot rcpt=bob@example.com\n");
    char *all = malloc(n + strlen(line) + 1);
    memcpy(all, out, n);
    strcpy(all + n, line);
    pc_qmeta p;
    char err[128];
    assert_int_equal(pc_qmeta_parse(&p, all, strlen(all), err, sizeof(err)), 0);
    assert_string_equal(p.id, ID);
    assert_true(p.time == 1767225600);
    assert_string_equal(p.helo, "evil??helo");
    assert_string_equal(p.from, "");
    assert_int_equal(p.nrcpts, 2);
    assert_string_equal(p.rcpts[1].addr, "bob@example.com");
    assert_int_equal(p.rcpts[0].released, 0);
    assert_int_equal(p.rcpts[1].released, 1);
    assert_int_equal(pc_qmeta_all_released(&p), 0);
    assert_true(p.score > 7.49 && p.score < 7.51);
    assert_int_equal(p.body8bit, 1);
    assert_int_equal(p.smtputf8, 1);
    assert_int_equal(p.nreleases, 1);
    /* An unreleased line takes it back; the history is written out again as it was. */
    pc_qmeta_release_line(line, sizeof(line), 1767229300, 0, NULL, "bob@example.com");
    assert_string_equal(line, "unreleased 1767229300 rcpt=bob@example.com\n");
    assert_int_equal(pc_qmeta_add_history(&p, line), 0);
    assert_int_equal(p.rcpts[1].released, 0);
    char *again;
    size_t againlen;
    assert_int_equal(pc_qmeta_format(&p, &again, &againlen), 0);
    assert_non_null(strstr(again, "\nreleased 1767229200 uid=0 user=ro?ot rcpt=bob@example.com\n"
                                  "unreleased 1767229300 rcpt=bob@example.com\n"));
    free(again);
    pc_qmeta_free(&p);
    pc_qmeta_release_line(line, sizeof(line), 1, 0, "root", NULL);
    strcpy(all + n, line);
    assert_int_equal(pc_qmeta_parse(&p, all, strlen(all), err, sizeof(err)), 0);
    assert_int_equal(pc_qmeta_all_released(&p), 1);
    pc_qmeta_free(&p);
    free(all);
    free(out);
    pc_qmeta_free(&m);
}

static void expect_bad(const char *text)
{
    pc_qmeta p;
    char err[128];
    assert_int_equal(pc_qmeta_parse(&p, text, strlen(text), err, sizeof(err)), -1);
    pc_qmeta_free(&p);
}

static void test_refused(void **state)
{
    (void)state;
    expect_bad("");
    expect_bad("portcullis-quarantine 2\nid " ID "\nrcpt a@b\n");
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt a@b");       /* unterminated */
    expect_bad("portcullis-quarantine 1\nid " ID "\n");               /* no recipient */
    expect_bad("portcullis-quarantine 1\nrcpt a@b\n");                /* no id */
    expect_bad("portcullis-quarantine 1\nid 0123\nrcpt a@b\n");       /* short id */
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt a@b\r\n");   /* CR */
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt a\x7f@b\n"); /* a control byte */
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt a@b\ntime x\n");
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt \n"); /* empty recipient */
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt a@b\nbody binarymime\n");
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt a@b\nsmtputf8 1\n");
    expect_bad("portcullis-quarantine 1\nid " ID "\nrcpt a@b\nreleased 1 uid=0\n"); /* no rcpt= */
    /* A line over the bound, a field over its own. */
    size_t big = PC_QMETA_LINE_MAX + 100;
    char *t = malloc(big + 100);
    int k = snprintf(t, big + 100, "portcullis-quarantine 1\nid %s\nrcpt a@b\nreason ", ID);
    memset(t + k, 'x', big);
    strcpy(t + k + big, "\n");
    expect_bad(t);
    k = snprintf(t, big + 100, "portcullis-quarantine 1\nid %s\nrcpt a@b\nhelo ", ID);
    memset(t + k, 'x', 300);
    strcpy(t + k + 300, "\n");
    expect_bad(t);
    free(t);
    /* Recipients past the bound. */
    size_t cap = (PC_QMETA_RCPTS + 2) * 16 + 100;
    char *r = malloc(cap);
    size_t n = (size_t)snprintf(r, cap, "portcullis-quarantine 1\nid %s\n", ID);
    for (int i = 0; i < PC_QMETA_RCPTS + 1; i++)
        n += (size_t)snprintf(r + n, cap - n, "rcpt r%d@x\n", i);
    expect_bad(r);
    free(r);
    /* Unknown keys of a later version are ignored. */
    pc_qmeta p;
    char err[128];
    const char *ok = "portcullis-quarantine 1\nid " ID "\nrcpt a@b\nfuture thing\n";
    assert_int_equal(pc_qmeta_parse(&p, ok, strlen(ok), err, sizeof(err)), 0);
    pc_qmeta_free(&p);
}

static void test_id(void **state)
{
    (void)state;
    assert_true(pc_qmeta_id_ok(ID));
    assert_false(pc_qmeta_id_ok("0123456789ABCDEF0123456789abcdef"));
    assert_false(pc_qmeta_id_ok(ID "0"));
    assert_false(pc_qmeta_id_ok("../../etc/passwd"));
    assert_false(pc_qmeta_id_ok(""));
    assert_false(pc_qmeta_id_ok(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
