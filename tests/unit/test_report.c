/* test_report.c — what the gateway writes into a message about its filters' findings: the
 * authserv-id of an Authentication-Results value, incoming headers that claim the site's ids
 * removed and others kept, one Authentication-Results header folded with every method result, the
 * spam headers (status with symbols and scores, the flag only at the tag threshold) replacing any
 * the message came with, and nothing added when the filters found nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/report.h"
#include "core/spool.h"
#include "parse/authres.h"

static int setup(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(pc_spool_setup("/tmp", 64u << 20, 256u << 20, err, sizeof(err)), 0);
    return 0;
}

static pc_message *new_msg(const char *text)
{
    pc_spool *s = pc_spool_new(1 << 20);
    assert_int_equal(pc_spool_write(s, text, strlen(text)), PC_SPOOL_OK);
    return pc_message_new(s);
}

static char *all(pc_message *m)
{
    size_t n = pc_message_size(m);
    char *b = calloc(1, n + 1);
    assert_int_equal(pc_message_read(m, 0, b, n), (ssize_t)n);
    return b;
}

static void test_authserv_id(void **state)
{
    (void)state;
    char id[64];
    assert_int_equal(pc_authres_id("mx.example.org; spf=pass", id, sizeof(id)), 0);
    assert_string_equal(id, "mx.example.org");
    assert_int_equal(pc_authres_id("  (comment) gw.test 1; none", id, sizeof(id)), 0);
    assert_string_equal(id, "gw.test");
    assert_int_equal(pc_authres_id("gw.test(c);dkim=pass", id, sizeof(id)), 0);
    assert_string_equal(id, "gw.test");
    assert_int_equal(pc_authres_id("   ", id, sizeof(id)), -1);
    assert_int_equal(pc_authres_id("(unterminated", id, sizeof(id)), -1);
    assert_int_equal(pc_authres_id("; spf=pass", id, sizeof(id)), -1);
    char tiny[4];
    assert_int_equal(pc_authres_id("toolong.example", tiny, sizeof(tiny)), -1);
}

static void test_headers_written(void **state)
{
    (void)state;
    pc_message *m = new_msg("Authentication-Results: gw.example; spf=pass smtp.mailfrom=forged\r\n"
                            "Authentication-Results: other.example; dkim=pass\r\n"
                            "Authentication-Results: (x) OLD.example; dmarc=pass\r\n"
                            "X-Spam-Flag: NO\r\n"
                            "X-Spam-Status: No, score=-100\r\n"
                            "Subject: hi\r\n\r\nbody\r\n");
    pc_results r;
    memset(&r, 0, sizeof(r));
    char *sym[] = {"DNSBL_LISTED", "RULE_CASINO"};
    double sc[] = {3.0, 2.5};
    r.symbols = sym;
    r.symscores = sc;
    r.nsymbols = 2;
    r.score = 5.5;
    char *ar[] = {"spf=fail smtp.mailfrom=example.net", "dkim=none"};
    r.authres = ar;
    r.nauthres = 2;
    pc_strlist drop = {.v = (char *[]){"old.example"}, .n = 1};
    pc_scores_cfg scores = {.tag = 5, .reject = 10};
    pc_report_cfg cfg = {.authserv_id = "gw.example", .drop = &drop, .scores = &scores};
    assert_int_equal(pc_report_write(m, &r, &cfg), 4); /* two forged A-R, two X-Spam */
    char *t = all(m);
    /* the site's own ids removed, another site's kept */
    assert_null(strstr(t, "smtp.mailfrom=forged"));
    assert_null(strstr(t, "OLD.example"));
    assert_non_null(strstr(t, "Authentication-Results: other.example; dkim=pass\r\n"));
    assert_null(strstr(t, "score=-100"));
    assert_null(strstr(t, "X-Spam-Flag: NO"));
    /* one header of ours, each result on its own folded line */
    assert_non_null(strstr(t, "Authentication-Results: gw.example;\r\n\tspf=fail "
                              "smtp.mailfrom=example.net;\r\n\tdkim=none\r\n"));
    assert_non_null(strstr(t, "X-Spam-Score: 5.50\r\n"));
    assert_non_null(strstr(t, "X-Spam-Flag: YES\r\n"));
    assert_non_null(
        strstr(t, "X-Spam-Status: Yes, score=5.50 required=5.00 tests=DNSBL_LISTED(3.00),"));
    assert_non_null(strstr(t, "RULE_CASINO(2.50)\r\n"));
    char v[256];
    assert_true(pc_message_header(m, "X-Spam-Status", 0, v, sizeof(v)) > 0);
    assert_int_equal(pc_message_header(m, "X-Spam-Status", 1, v, sizeof(v)), -1); /* one only */
    free(t);
    pc_message_unref(m);

    /* under the threshold: no flag, status No */
    m = new_msg("Subject: hi\r\n\r\nbody\r\n");
    r.score = 1;
    r.nauthres = 0;
    assert_int_equal(pc_report_write(m, &r, &cfg), 0);
    t = all(m);
    assert_null(strstr(t, "X-Spam-Flag"));
    assert_null(strstr(t, "Authentication-Results"));
    assert_non_null(strstr(t, "X-Spam-Status: No, score=1.00 required=5.00"));
    free(t);
    pc_message_unref(m);
}

static void test_nothing_found_nothing_written(void **state)
{
    (void)state;
    const char *text = "X-Spam-Flag: YES\r\nSubject: hi\r\n\r\nbody\r\n";
    pc_message *m = new_msg(text);
    pc_results r;
    memset(&r, 0, sizeof(r));
    pc_report_cfg cfg = {.authserv_id = "gw.example"};
    assert_int_equal(pc_report_write(m, &r, &cfg), 0);
    char *t = all(m);
    assert_string_equal(t, text); /* no scores configured, no symbols: untouched */
    free(t);
    pc_message_unref(m);
}

static void test_many_symbols_stay_bounded(void **state)
{
    (void)state;
    pc_message *m = new_msg("Subject: hi\r\n\r\nbody\r\n");
    enum { N = 2000 };
    static char names[N][24];
    static char *sym[N];
    static double sc[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "SYMBOL_NUMBER_%d", i);
        sym[i] = names[i];
        sc[i] = 0.01;
    }
    pc_results r = {.symbols = sym, .symscores = sc, .nsymbols = N, .score = 20};
    pc_report_cfg cfg = {.authserv_id = "gw.example"};
    assert_true(pc_report_write(m, &r, &cfg) >= 0);
    char v[16384];
    ssize_t n = pc_message_header(m, "X-Spam-Status", 0, v, sizeof(v));
    assert_true(n > 1000 && n < 8192);
    pc_message_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authserv_id),
        cmocka_unit_test(test_headers_written),
        cmocka_unit_test(test_nothing_found_nothing_written),
        cmocka_unit_test(test_many_symbols_stay_bounded),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
