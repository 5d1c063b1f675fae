/* test_render.c — the one decision and its rendering by each protocol: every outcome at every
 * stage, the defaults, a filter's own code and text, and what a filter may not choose (a 2xx for a
 * refusal, a 4xx for a rejection, an enhanced code of the wrong class, CR/LF in its text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/chain.h"
#include "core/decision.h"
#include "imap/imap_render.h"
#include "pop3/pop3_render.h"
#include "smtp/smtp_render.h"

static pc_decision dec(pc_action a, int code, const char *enh, const char *text, const char *sym)
{
    pc_verdict v = {.action = a, .code = code, .enhanced = enh, .text = text, .symbol = sym};
    pc_results r = {.score = 4.5};
    pc_decision d;
    pc_decision_set(&d, &v, &r);
    return d;
}

static void smtp_is(pc_decision d, pc_smtp_stage st, pc_smtp_rendered want, const char *line)
{
    char out[512] = "";
    assert_int_equal(pc_smtp_render(&d, st, out, sizeof(out)), want);
    if (line)
        assert_string_equal(out, line);
}

static void test_decision_set(void **state)
{
    (void)state;
    pc_decision d = dec(PC_REJECT, 553, "5.7.2", "bad\r\nRSET", "SYM\n");
    assert_int_equal(d.outcome, PC_OUTCOME_REFUSE);
    assert_int_equal(d.code, 553);
    assert_string_equal(d.enhanced, "5.7.2");
    assert_null(strchr(d.reason, '\r'));
    assert_null(strchr(d.reason, '\n'));
    assert_null(strchr(d.symbol, '\n'));
    assert_true(d.score == 4.5);
    d = dec(PC_REJECT, 250, "2.0.0", NULL, NULL);
    assert_int_equal(d.code, 0);         /* outside 4xx/5xx: the default applies */
    assert_string_equal(d.enhanced, ""); /* and so does the default enhanced code */
    d = dec(PC_TEMPFAIL, 451, "5.7.1", NULL, NULL);
    assert_string_equal(d.enhanced, ""); /* class mismatch */
    d = dec(PC_TEMPFAIL, 0, "4.7.1x", NULL, NULL);
    assert_string_equal(d.enhanced, ""); /* malformed */
    assert_string_equal(pc_action_name(PC_ACCEPT), "pass");
    assert_string_equal(pc_action_name(PC_QUARANTINE), "quarantine");
    assert_int_equal(dec(PC_TAG, 0, NULL, NULL, NULL).outcome, PC_OUTCOME_PASS);
}

static void test_smtp(void **state)
{
    (void)state;
    smtp_is(dec(PC_CONTINUE, 0, NULL, NULL, NULL), PC_SMTP_AT_COMMAND, PC_SMTP_GO_ON, NULL);
    smtp_is(dec(PC_TAG, 0, NULL, NULL, NULL), PC_SMTP_AT_MESSAGE, PC_SMTP_GO_ON, NULL);
    smtp_is(dec(PC_REJECT, 0, NULL, NULL, NULL), PC_SMTP_AT_COMMAND, PC_SMTP_ANSWERED,
            "550 5.7.1 Rejected by policy");
    smtp_is(dec(PC_REJECT, 554, "5.7.0", "Go away", NULL), PC_SMTP_AT_MESSAGE, PC_SMTP_ANSWERED,
            "554 5.7.0 Go away");
    /* a rejection never becomes a 4xx or a 2xx, a deferral never a 5xx */
    smtp_is(dec(PC_REJECT, 451, NULL, NULL, NULL), PC_SMTP_AT_COMMAND, PC_SMTP_ANSWERED,
            "550 5.7.1 Rejected by policy");
    smtp_is(dec(PC_REJECT, 250, NULL, NULL, NULL), PC_SMTP_AT_COMMAND, PC_SMTP_ANSWERED,
            "550 5.7.1 Rejected by policy");
    smtp_is(dec(PC_TEMPFAIL, 550, "5.7.1", NULL, NULL), PC_SMTP_AT_COMMAND, PC_SMTP_ANSWERED,
            "451 4.7.1 Try again later");
    smtp_is(dec(PC_QUARANTINE, 0, NULL, "ignored", NULL), PC_SMTP_AT_MESSAGE, PC_SMTP_ANSWERED,
            "451 4.7.1 Message held for review, try again later");
    smtp_is(dec(PC_DISCARD, 0, NULL, NULL, NULL), PC_SMTP_AT_COMMAND, PC_SMTP_GO_ON, NULL);
    smtp_is(dec(PC_DISCARD, 0, NULL, NULL, NULL), PC_SMTP_AT_MESSAGE, PC_SMTP_ANSWERED,
            "250 2.0.0 Ok: discarded by policy");
    smtp_is(dec(PC_REJECT, 0, NULL, NULL, NULL), PC_SMTP_AT_CONNECT, PC_SMTP_ANSWER_END,
            "554 5.7.1 Service refused");
    smtp_is(dec(PC_TEMPFAIL, 0, NULL, "later", NULL), PC_SMTP_AT_CONNECT, PC_SMTP_ANSWER_END,
            "421 4.7.0 later");
    smtp_is(dec(PC_TEMPFAIL, 451, NULL, NULL, NULL), PC_SMTP_AT_CONNECT, PC_SMTP_ANSWER_END,
            "451 4.7.0 Service refused");
    smtp_is(dec(PC_DISCARD, 0, NULL, NULL, NULL), PC_SMTP_AT_CONNECT, PC_SMTP_ANSWER_END,
            "554 5.7.1 Service refused");
    /* REPLACE belongs to retrieval: no SMTP reply */
    smtp_is(dec(PC_REPLACE, 0, NULL, NULL, NULL), PC_SMTP_AT_MESSAGE, PC_SMTP_GO_ON, NULL);
}

static void test_pop3(void **state)
{
    (void)state;
    char out[512];
    pc_decision d = dec(PC_REJECT, 0, NULL, NULL, NULL);
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_CONNECT, out, sizeof(out)), PC_POP3_ANSWER_END);
    assert_string_equal(out, "-ERR [SYS/PERM] Service refused");
    d = dec(PC_QUARANTINE, 0, NULL, NULL, NULL);
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_CONNECT, out, sizeof(out)), PC_POP3_ANSWER_END);
    assert_string_equal(out, "-ERR [SYS/TEMP] Service not available, try again later");
    d = dec(PC_TEMPFAIL, 0, NULL, NULL, NULL);
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_RETRIEVE, out, sizeof(out)), PC_POP3_ANSWERED);
    assert_string_equal(out, "-ERR [SYS/TEMP] Message cannot be checked now, try again later.");
    d = dec(PC_REJECT, 0, NULL, "virus found", "CLAM_VIRUS");
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_RETRIEVE, out, sizeof(out)), PC_POP3_NOTICE);
    assert_string_equal(out, "virus found (CLAM_VIRUS)");
    d = dec(PC_DISCARD, 0, NULL, NULL, NULL);
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_RETRIEVE, out, sizeof(out)), PC_POP3_NOTICE);
    assert_string_equal(out, "withheld by policy");
    d = dec(PC_REPLACE, 0, NULL, NULL, NULL);
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_RETRIEVE, out, sizeof(out)), PC_POP3_REPLACED);
    d = dec(PC_TAG, 0, NULL, NULL, NULL);
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_RETRIEVE, out, sizeof(out)), PC_POP3_GO_ON);
    assert_int_equal(pc_pop3_render(&d, PC_POP3_AT_CONNECT, out, sizeof(out)), PC_POP3_GO_ON);
}

static void test_imap(void **state)
{
    (void)state;
    char out[512];
    pc_decision d = dec(PC_REJECT, 0, NULL, NULL, NULL);
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_CONNECT, out, sizeof(out)), PC_IMAP_ANSWER_END);
    assert_string_equal(out, "Service refused");
    d = dec(PC_TEMPFAIL, 0, NULL, "busy", NULL);
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_CONNECT, out, sizeof(out)), PC_IMAP_ANSWER_END);
    assert_string_equal(out, "[UNAVAILABLE] busy");
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_APPEND, out, sizeof(out)), PC_IMAP_ANSWERED);
    assert_string_equal(out, "NO [UNAVAILABLE] busy");
    d = dec(PC_QUARANTINE, 0, NULL, NULL, NULL);
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_APPEND, out, sizeof(out)), PC_IMAP_ANSWERED);
    assert_string_equal(out, "NO [UNAVAILABLE] Message refused by policy");
    d = dec(PC_REJECT, 0, NULL, NULL, NULL);
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_APPEND, out, sizeof(out)), PC_IMAP_ANSWERED);
    assert_string_equal(out, "NO [CANNOT] Message refused by policy");
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_RETRIEVE, out, sizeof(out)), PC_IMAP_NOTICE);
    assert_string_equal(out, "rejected by policy");
    d = dec(PC_REPLACE, 0, NULL, NULL, NULL);
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_RETRIEVE, out, sizeof(out)), PC_IMAP_REPLACED);
    d = dec(PC_ACCEPT, 0, NULL, NULL, NULL);
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_APPEND, out, sizeof(out)), PC_IMAP_GO_ON);
    assert_int_equal(pc_imap_render(&d, PC_IMAP_AT_CONNECT, out, sizeof(out)), PC_IMAP_GO_ON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_set),
        cmocka_unit_test(test_smtp),
        cmocka_unit_test(test_pop3),
        cmocka_unit_test(test_imap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
