/* test_archive_names.c — the rules filter's name functions (filters/rules/archive_names.c): the
 * base of an entry's path, the extension a name opens by (trailing dots and spaces set aside, as
 * Windows does: "invoice.exe." is an .exe), and the cleaned text for a log line (cut whole UTF-8
 * sequences, nothing written into a buffer of 0 bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rules/archive_names.h"

static void expect_ext(const char *name, const char *ext, size_t prev)
{
    size_t len = 99, p = 99;
    const char *got = rules_name_ext(name, &len, &p);
    if (!ext) {
        assert_null(got);
        assert_int_equal(len, 0);
    } else {
        assert_non_null(got);
        assert_int_equal(len, strlen(ext));
        assert_memory_equal(got, ext, len);
    }
    assert_int_equal(p, prev);
}

static void test_base(void **state)
{
    (void)state;
    assert_string_equal(rules_name_base("invoice.exe"), "invoice.exe");
    assert_string_equal(rules_name_base("docs/2024/invoice.exe"), "invoice.exe");
    assert_string_equal(rules_name_base("C:\\Users\\a\\invoice.exe"), "invoice.exe");
    assert_string_equal(rules_name_base("docs/"), "");
    assert_string_equal(rules_name_base(""), "");
}

static void test_ext(void **state)
{
    (void)state;
    expect_ext("invoice.exe", "exe", 0);
    expect_ext("statement.pdf.scr", "scr", 3);
    expect_ext(".exe", "exe", 0);
    expect_ext(".pdf.exe", "exe", 3);
    expect_ext("a..exe", "exe", 0); /* an empty extension before is none */
    expect_ext("README", NULL, 0);
    expect_ext("", NULL, 0);
    expect_ext(".", NULL, 0);
    expect_ext("a. .", NULL, 0);
    /* what Windows drops from the end of a file name */
    expect_ext("invoice.exe.", "exe", 0);
    expect_ext("invoice.exe ", "exe", 0);
    expect_ext("invoice.exe. . ..", "exe", 0);
    expect_ext("statement.pdf.scr.", "scr", 3);
    expect_ext("a.b c", "b c", 0);
}

static void test_clean(void **state)
{
    (void)state;
    char out[16];
    rules_name_clean(out, sizeof(out), "a\"b\\c\r\nd\x7f.txt");
    assert_string_equal(out, "a?b?c??d?.txt");
    rules_name_clean(out, sizeof(out), NULL);
    assert_string_equal(out, "");
    rules_name_clean(out, 6, "abcdefgh");
    assert_string_equal(out, "abcde");
    /* "abcd" then é (2 bytes): 5 bytes fit with the NUL in 6, and the é does not */
    rules_name_clean(out, 6, "abcd\xc3\xa9z");
    assert_string_equal(out, "abcd");
    rules_name_clean(out, 7, "abcd\xc3\xa9z");
    assert_string_equal(out, "abcd\xc3\xa9");
    /* a 4-byte sequence cut after 2 */
    rules_name_clean(out, 5, "ab\xf0\x9f\x98\x80");
    assert_string_equal(out, "ab");
    out[0] = 'x';
    rules_name_clean(out, 0, "abc"); /* nothing written */
    assert_int_equal(out[0], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base),
        cmocka_unit_test(test_ext),
        cmocka_unit_test(test_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
