/* test_smtp_reply.c — the upstream reply parser: single and multi-line replies fed whole and byte
 * by byte, enhanced codes, mismatched codes, bare LF/CR, NUL, missing CRLF and the line and byte
 * limits that stop a hostile upstream (100000 continuation lines, one endless line); and the
 * sanitiser its text goes through before being relayed (CR/LF/NUL injection, truncation, xtext). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse/sanitize.h"
#include "smtp/smtp_reply.h"

/* Parses buf whole, and checks that every shorter prefix gives NEED_MORE or the same final verdict
 * (a parser that only needs a prefix to refuse may refuse early). */
static int parse(const char *buf, size_t len, pc_smtp_reply *r)
{
    int whole = pc_smtp_reply_parse(buf, len, r);
    for (size_t k = 0; k < len; k++) {
        pc_smtp_reply tmp;
        int rc = pc_smtp_reply_parse(buf, k, &tmp);
        if (rc == PC_NEED_MORE)
            continue;
        if (whole == PC_OK) /* an OK on a prefix would have to end at the same place */
            assert_int_equal(rc, PC_OK);
        else
            assert_int_equal(rc, whole);
        if (rc == PC_OK)
            assert_int_equal(tmp.consumed, r->consumed);
        break;
    }
    return whole;
}

static int sparse(const char *s, pc_smtp_reply *r)
{
    return parse(s, strlen(s), r);
}

static void assert_slice(pc_slice s, const char *want)
{
    assert_int_equal(s.n, strlen(want));
    if (s.n)
        assert_memory_equal(s.p, want, s.n);
}

static void test_single(void **st)
{
    (void)st;
    pc_smtp_reply r;
    assert_int_equal(sparse("250 2.1.0 Ok\r\n", &r), PC_OK);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.enhanced, "2.1.0");
    assert_int_equal(r.nlines, 1);
    assert_slice(r.lines[0], "2.1.0 Ok");
    assert_int_equal(r.consumed, 14);

    assert_int_equal(sparse("220 mx.example.org ESMTP\r\nEHLO", &r), PC_OK);
    assert_int_equal(r.code, 220);
    assert_string_equal(r.enhanced, "");
    assert_int_equal(r.consumed, 26);

    assert_int_equal(sparse("354\r\n", &r), PC_OK);
    assert_int_equal(r.code, 354);
    assert_int_equal(r.lines[0].n, 0);

    assert_int_equal(sparse("550 5.7.1\r\n", &r), PC_OK);
    assert_string_equal(r.enhanced, "5.7.1");
    assert_int_equal(sparse("550 4.7.1 class mismatch\r\n", &r), PC_OK);
    assert_string_equal(r.enhanced, "");
    assert_int_equal(sparse("421 4.4.2x\r\n", &r), PC_OK);
    assert_string_equal(r.enhanced, "");
    assert_int_equal(sparse("452 4.123.456 x\r\n", &r), PC_OK);
    assert_string_equal(r.enhanced, "4.123.456");
    assert_int_equal(sparse("452 4.1234.5 x\r\n", &r), PC_OK);
    assert_string_equal(r.enhanced, "");
}

static void test_multi(void **st)
{
    (void)st;
    pc_smtp_reply r;
    const char *s = "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 "
                    "SMTPUTF8\r\n221 next";
    assert_int_equal(sparse(s, &r), PC_OK);
    assert_int_equal(r.code, 250);
    assert_int_equal(r.nlines, 4);
    assert_slice(r.lines[0], "mx.example.org");
    assert_slice(r.lines[2], "SIZE 10240000");
    assert_slice(r.lines[3], "SMTPUTF8");
    assert_int_equal(r.consumed, strlen(s) - 8);
    /* the remainder is the next reply */
    assert_int_equal(sparse(s + r.consumed, &r), PC_NEED_MORE);

    assert_int_equal(sparse("250-a\r\n250\r\n", &r), PC_OK);
    assert_int_equal(r.nlines, 2);
    assert_int_equal(sparse("250-a\r\n251 b\r\n", &r), PC_INVALID);
    assert_int_equal(sparse("250-a\r\n550 b\r\n", &r), PC_INVALID);
    assert_int_equal(sparse("250-a\r\n250-b\r\n", &r), PC_NEED_MORE);
}

static void test_malformed(void **st)
{
    (void)st;
    pc_smtp_reply r;
    static const char *bad[] = {
        "25 x\r\n",   "2500 x\r\n", "abc x\r\n", "250x\r\n",         "150 x\r\n",
        "650 x\r\n",  "260 x\r\n",  "250 x\n",   "250-x\n250 y\r\n", "250 a\rb\r\n",
        " 250 x\r\n", "\r\n",       "25\r\n",    "250_x\r\n",        "250-a\r\n2x0 b\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sparse(bad[i], &r) != PC_INVALID)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(parse("250 a\0b\r\n", 9, &r), PC_INVALID);
    assert_int_equal(parse("250-a\r\n250 \0\r\n", 14, &r), PC_INVALID);
}

static void test_need_more(void **st)
{
    (void)st;
    pc_smtp_reply r;
    assert_int_equal(pc_smtp_reply_parse("", 0, &r), PC_NEED_MORE);
    assert_int_equal(pc_smtp_reply_parse("2", 1, &r), PC_NEED_MORE);
    assert_int_equal(pc_smtp_reply_parse("250 Ok", 6, &r), PC_NEED_MORE);
    assert_int_equal(pc_smtp_reply_parse("250 Ok\r", 7, &r), PC_NEED_MORE);
    assert_int_equal(pc_smtp_reply_parse("250-Ok\r\n", 8, &r), PC_NEED_MORE);
    assert_int_equal(pc_smtp_reply_parse("250-Ok\r\n25", 10, &r), PC_NEED_MORE);
}

static void test_limits(void **st)
{
    (void)st;
    pc_smtp_reply r;
    /* exactly PC_SMTP_REPLY_MAX_LINES lines is fine */
    char buf[PC_SMTP_REPLY_MAX_LINES * 8 + 16];
    size_t n = 0;
    for (int i = 0; i < PC_SMTP_REPLY_MAX_LINES - 1; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250-x\r\n");
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250 y\r\n");
    assert_int_equal(parse(buf, n, &r), PC_OK);
    assert_int_equal(r.nlines, PC_SMTP_REPLY_MAX_LINES);
    assert_slice(r.lines[PC_SMTP_REPLY_MAX_LINES - 1], "y");
    /* one more continuation line: too long, even before the last line arrives */
    n = 0;
    for (int i = 0; i < PC_SMTP_REPLY_MAX_LINES; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "250-x\r\n");
    assert_int_equal(pc_smtp_reply_parse(buf, n, &r), PC_TOO_LONG);

    /* 100000 continuation lines */
    size_t big = 100000 * 7 + 7;
    char *h = malloc(big);
    assert_non_null(h);
    for (size_t i = 0; i < 100000; i++)
        memcpy(h + i * 7, "250-x\r\n", 7);
    memcpy(h + 100000 * 7, "250 y\r\n", 7);
    assert_int_equal(pc_smtp_reply_parse(h, big, &r), PC_TOO_LONG);
    /* one endless line without CRLF */
    memset(h, 'a', big);
    memcpy(h, "250 ", 4);
    assert_int_equal(pc_smtp_reply_parse(h, big, &r), PC_TOO_LONG);
    assert_int_equal(pc_smtp_reply_parse(h, PC_SMTP_REPLY_MAX_BYTES - 1, &r), PC_NEED_MORE);
    /* a line exactly at the byte limit is accepted */
    memcpy(h + PC_SMTP_REPLY_MAX_BYTES - 2, "\r\n", 2);
    assert_int_equal(pc_smtp_reply_parse(h, big, &r), PC_OK);
    assert_int_equal(r.consumed, PC_SMTP_REPLY_MAX_BYTES);
    memset(h, 'a', big);
    memcpy(h, "250 ", 4);
    memcpy(h + PC_SMTP_REPLY_MAX_BYTES - 1, "\r\n", 2);
    assert_int_equal(pc_smtp_reply_parse(h, big, &r), PC_TOO_LONG);
    /* long continuation lines crossing the byte limit */
    size_t k = 0;
    while (k + 1000 < big) {
        memset(h + k, 'b', 1000);
        memcpy(h + k, "250-", 4);
        memcpy(h + k + 998, "\r\n", 2);
        k += 1000;
    }
    assert_int_equal(pc_smtp_reply_parse(h, k, &r), PC_TOO_LONG);
    free(h);
}

static void test_sanitize(void **st)
{
    (void)st;
    char out[16];
    pc_smtp_reply r;
    assert_int_equal(sparse("550 5.7.1 a\x01"
                            "b\x7f\xc3\xa9\r\n",
                            &r),
                     PC_OK);
    pc_sanitize(out, sizeof(out), r.lines[0].p, r.lines[0].n, 0);
    assert_string_equal(out, "5.7.1 a?b???");
    pc_sanitize(out, sizeof(out), r.lines[0].p, r.lines[0].n, 1);
    assert_string_equal(out, "5.7.1 a?b?\xc3\xa9");
    pc_sanitize(out, sizeof(out), "a\r\nRCPT\0x", 9, 1);
    assert_string_equal(out, "a??RCPT?x");
    pc_sanitize(out, 8, "0123456789", 10, 0);
    assert_string_equal(out, "0123...");
    pc_sanitize(out, 8, "0123456", 7, 0);
    assert_string_equal(out, "0123456");
    pc_sanitize(out, 3, "0123456", 7, 0);
    assert_string_equal(out, "..");
    pc_sanitize(out, 1, "x", 1, 0);
    assert_string_equal(out, "");
    /* a UTF-8 sequence is not cut in half */
    pc_sanitize(out, 8, "abc\xc3\xa9\xc3\xa9xyz", 10, 1);
    assert_string_equal(out, "abc...");
    pc_sanitize(out, 9, "abc\xc3\xa9\xc3\xa9xyz", 10, 1);
    assert_string_equal(out, "abc\xc3\xa9...");

    assert_int_equal(pc_xtext_encode(out, sizeof(out), "a+b=c d", 7), 13);
    assert_string_equal(out, "a+2Bb+3Dc+20d");
    assert_int_equal(pc_xtext_encode(out, sizeof(out), "\r\n\xff", 3), 9);
    assert_string_equal(out, "+0D+0A+FF");
    assert_int_equal(pc_xtext_encode(out, 4, "abcd", 4), -1);
    assert_int_equal(pc_xtext_encode(out, 5, "abcd", 4), 4);
    assert_int_equal(pc_xtext_encode(out, 3, "+", 1), -1);
    assert_int_equal(pc_xtext_encode(out, 4, "+", 1), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),    cmocka_unit_test(test_multi),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_need_more),
        cmocka_unit_test(test_limits),    cmocka_unit_test(test_sanitize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
