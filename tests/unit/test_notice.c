/* test_notice.c — the replacement notice of POP3/IMAP retrieval: the original's fields carried
 * over, the three forms consistent, nothing a message or a filter says can add a header line, and
 * the info blob bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/notice.h"
#include "core/spool.h"

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
    assert_non_null(s);
    assert_int_equal(pc_spool_write(s, text, strlen(text)), PC_SPOOL_OK);
    pc_message *m = pc_message_new(s);
    assert_non_null(m);
    return m;
}

static char *build(const char *info, size_t len, pc_notice_form form)
{
    pc_buf b;
    pc_buf_init(&b, 0);
    assert_int_equal(pc_notice_build(&b, info, len, "gw.example", form), 0);
    char *out = calloc(1, pc_buf_used(&b) + 1);
    memcpy(out, pc_buf_ptr(&b), pc_buf_used(&b));
    pc_buf_release(&b);
    return out;
}

/* Every line ends in CRLF, the text is printable ASCII, and the header has exactly the notice's
 * own fields (so nothing injected became a header). */
static void assert_well_formed(const char *n)
{
    static const char *const fields[] = {"From:",
                                         "Subject:",
                                         "Date:",
                                         "Message-ID:",
                                         "MIME-Version:",
                                         "Content-Type:",
                                         "Content-Transfer-Encoding:",
                                         "X-Portcullis-Verdict:",
                                         "X-Portcullis-Reference:"};
    const char *end = strstr(n, "\r\n\r\n");
    assert_non_null(end);
    size_t i = 0, k = 0;
    for (const char *p = n; p < end + 2; k++) {
        assert_true(k < sizeof(fields) / sizeof(fields[0]));
        assert_memory_equal(p, fields[k], strlen(fields[k]));
        p = strstr(p, "\r\n") + 2;
    }
    assert_int_equal(k, sizeof(fields) / sizeof(fields[0]));
    for (i = 0; n[i]; i++) {
        unsigned char c = (unsigned char)n[i];
        if (c == '\n')
            assert_int_equal(n[i - 1], '\r');
        else if (c == '\r')
            assert_int_equal(n[i + 1], '\n');
        else
            assert_true(c >= 0x20 && c < 0x7f);
    }
}

static void test_fields_of_the_original(void **state)
{
    (void)state;
    pc_message *m = new_msg("From: Alice <alice@example.org>\r\n"
                            "Subject: quarterly\r\n report\r\n"
                            "Date: Thu, 16 Nov 2023 10:00:00 +0000\r\n"
                            "\r\nEICAR body\r\n");
    char ref[64], info[PC_NOTICE_INFO_MAX];
    pc_notice_ref(ref, sizeof(ref), 0x6b0454de000002ull, "", 7);
    assert_string_equal(ref, "006b0454de000002-7");
    size_t len = pc_notice_info(m, "gw.example", "Eicar-Test-Signature (CLAM_VIRUS)", "rejected",
                                ref, info, sizeof(info));
    char *n = build(info, len, PC_NOTICE_FULL);
    assert_well_formed(n);
    assert_non_null(strstr(n, "From: Alice <alice@example.org>\r\n"));
    assert_non_null(strstr(n, "Subject: [Withheld] quarterly report\r\n")); /* unfolded */
    assert_non_null(strstr(n, "Date: Thu, 16 Nov 2023 10:00:00 +0000\r\n"));
    assert_non_null(strstr(n, "Message-ID: <006b0454de000002-7@gw.example>\r\n"));
    assert_non_null(strstr(n, "X-Portcullis-Verdict: rejected\r\n"));
    assert_non_null(strstr(n, "\r\nFinding: Eicar-Test-Signature (CLAM_VIRUS)\r\n"));
    assert_non_null(strstr(n, "\r\nReference: 006b0454de000002-7\r\n"));
    assert_null(strstr(n, "EICAR body"));
    /* header + body = full */
    char *h = build(info, len, PC_NOTICE_HEADER), *b = build(info, len, PC_NOTICE_BODY);
    assert_int_equal(strlen(h) + strlen(b), strlen(n));
    assert_memory_equal(n, h, strlen(h));
    assert_string_equal(n + strlen(h), b);
    assert_true(strlen(h) > 4 && strcmp(h + strlen(h) - 4, "\r\n\r\n") == 0);
    free(n);
    free(h);
    free(b);
    pc_message_unref(m);
}

static void test_defaults_without_a_message(void **state)
{
    (void)state;
    char info[PC_NOTICE_INFO_MAX];
    size_t len = pc_notice_info(NULL, "gw.example", "message could not be checked", "withheld",
                                "r-1", info, sizeof(info));
    char *n = build(info, len, PC_NOTICE_FULL);
    assert_well_formed(n);
    assert_non_null(strstr(n, "From: Mail gateway <postmaster@gw.example>\r\n"));
    assert_non_null(strstr(n, "Subject: [Withheld] (no subject)\r\n"));
    assert_non_null(strstr(n, "\r\nDate: ")); /* now, RFC 5322 requires one */
    free(n);
}

/* CR/LF in a header of the original (folded or not) or in a filter's text never starts a line. */
static void test_no_header_injection(void **state)
{
    (void)state;
    pc_message *m = new_msg("From: x@example.org\r\n"
                            "Subject: hi\r\n Bcc: folded@example.org\r\n"
                            "\r\nbody\r\n");
    char info[PC_NOTICE_INFO_MAX];
    size_t len =
        pc_notice_info(m, "gw.example", "found\r\nBcc: victim@example.org\r\n\r\nfake body",
                       "rejected\r\nX-Evil: 1", "ref\nX-Ref: 2", info, sizeof(info));
    char *n = build(info, len, PC_NOTICE_FULL);
    assert_well_formed(n);
    assert_null(strstr(n, "\r\nBcc:"));
    assert_null(strstr(n, "\r\nX-Evil:"));
    assert_null(strstr(n, "\r\nX-Ref:"));
    free(n);
    pc_message_unref(m);
}

/* Long fields are cut, never overflow: the blob fits, and a short buffer gives a shorter blob whose
 * notice is still well formed (missing fields empty). */
static void test_bounded(void **state)
{
    (void)state;
    char finding[5000];
    memset(finding, 'a', sizeof(finding) - 1);
    finding[sizeof(finding) - 1] = '\0';
    char info[PC_NOTICE_INFO_MAX];
    size_t len = pc_notice_info(NULL, "gw.example", finding, "rejected", "r", info, sizeof(info));
    assert_true(len <= sizeof(info));
    char *n = build(info, len, PC_NOTICE_FULL);
    assert_well_formed(n);
    free(n);
    char small[40];
    len = pc_notice_info(NULL, "gw.example", finding, "rejected", "r", small, sizeof(small));
    assert_true(len <= sizeof(small));
    n = build(small, len, PC_NOTICE_FULL);
    assert_well_formed(n);
    free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_of_the_original),
        cmocka_unit_test(test_defaults_without_a_message),
        cmocka_unit_test(test_no_header_injection),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
