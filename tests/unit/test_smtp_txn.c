/* test_smtp_txn.c — the SMTP transaction object: recipients recorded with their outcome, the
 * accepted ones in the filters' view, the replay after an upstream loss skipping refused ones, the
 * bound on refused ones, and a reset that frees everything (the message and its spool included). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_txn.h"

static void set_cur(pc_smtp_txn *t, const char *addr)
{
    snprintf(t->cur_rcpt, sizeof(t->cur_rcpt), "%s", addr);
    snprintf(t->cur_line, sizeof(t->cur_line), "RCPT TO:<%s>", addr);
}

static void test_record_and_replay(void **state)
{
    (void)state;
    pc_smtp_txn t;
    memset(&t, 0, sizeof(t));
    const char *addrs[] = {"a@x.test", "b@x.test", "c@x.test", "d@x.test"};
    const pc_rcpt_status st[] = {PC_RCPT_ACCEPTED, PC_RCPT_REFUSED, PC_RCPT_ACCEPTED,
                                 PC_RCPT_REFUSED};
    const int code[] = {250, 550, 251, 451};
    const pc_action act[] = {PC_CONTINUE, PC_CONTINUE, PC_TAG, PC_REJECT};
    for (int i = 0; i < 4; i++) {
        set_cur(&t, addrs[i]);
        assert_int_equal(pc_smtp_txn_record(&t, st[i], code[i], act[i]), 0);
    }
    assert_int_equal(t.nrcpts, 4);
    assert_int_equal(t.naccepted, 2);
    assert_string_equal(t.accepted[0], "a@x.test");
    assert_string_equal(t.accepted[1], "c@x.test");
    assert_int_equal(t.rcpts[3].status, PC_RCPT_REFUSED);
    assert_int_equal(t.rcpts[3].code, 451);
    assert_int_equal(t.rcpts[3].action, PC_REJECT);
    assert_int_equal(t.rcpts[2].action, PC_TAG);
    /* the replay sends the accepted ones only, in order, then ends */
    const pc_smtp_rcpt *r = pc_smtp_txn_replay_next(&t);
    assert_non_null(r);
    assert_string_equal(r->line, "RCPT TO:<a@x.test>");
    r = pc_smtp_txn_replay_next(&t);
    assert_non_null(r);
    assert_string_equal(r->line, "RCPT TO:<c@x.test>");
    assert_null(pc_smtp_txn_replay_next(&t));
    pc_smtp_txn_reset(&t);
    assert_int_equal(t.nrcpts, 0);
    assert_int_equal(t.naccepted, 0);
    assert_null(t.accepted);
    assert_int_equal(t.open, 0);
}

static void test_refused_are_bounded(void **state)
{
    (void)state;
    pc_smtp_txn t;
    memset(&t, 0, sizeof(t));
    for (int i = 0; i < PC_SMTP_TXN_TRIED + 50; i++) {
        char a[64];
        snprintf(a, sizeof(a), "r%d@x.test", i);
        set_cur(&t, a);
        assert_int_equal(pc_smtp_txn_record(&t, PC_RCPT_REFUSED, 550, PC_CONTINUE), 0);
    }
    assert_int_equal(t.nrcpts, PC_SMTP_TXN_TRIED);
    /* an accepted one is always kept */
    set_cur(&t, "ok@x.test");
    assert_int_equal(pc_smtp_txn_record(&t, PC_RCPT_ACCEPTED, 250, PC_CONTINUE), 0);
    assert_int_equal(t.naccepted, 1);
    assert_string_equal(t.accepted[0], "ok@x.test");
    pc_smtp_txn_reset(&t);
}

static void test_reset_frees_the_message(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(pc_spool_setup("/tmp", 1u << 20, 1u << 20, err, sizeof(err)), 0);
    size_t mem0, mem;
    pc_spool_usage(&mem0, NULL);
    pc_smtp_txn t;
    memset(&t, 0, sizeof(t));
    t.spool = pc_spool_new(4096);
    assert_int_equal(pc_spool_write(t.spool, "Subject: x\r\n\r\nbody\r\n", 20), PC_SPOOL_OK);
    pc_spool_usage(&mem, NULL);
    assert_true(mem > mem0);
    pc_smtp_txn_reset(&t); /* the spool alone */
    pc_spool_usage(&mem, NULL);
    assert_int_equal(mem, mem0);
    t.spool = pc_spool_new(4096);
    assert_int_equal(pc_spool_write(t.spool, "Subject: y\r\n\r\n", 14), PC_SPOOL_OK);
    t.msg = pc_message_new(t.spool); /* the message owns the spool now */
    t.spool = NULL;
    pc_smtp_txn_reset(&t);
    pc_spool_usage(&mem, NULL);
    assert_int_equal(mem, mem0);
    assert_null(t.msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_replay),
        cmocka_unit_test(test_refused_are_bounded),
        cmocka_unit_test(test_reset_frees_the_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
