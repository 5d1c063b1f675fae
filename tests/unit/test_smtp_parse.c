/* test_smtp_parse.c — SMTP line framing and command parsing: CRLF-only framing fed whole and byte
 * by byte, strict RFC 5321 paths (shell metacharacters, unbalanced brackets, quoting, lengths),
 * ESMTP parameter limits, NUL / 8-bit / control bytes, SMTPUTF8 addresses, HELO validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_parse.h"

/* ---- framing ----------------------------------------------------------------------------------
 */

/* Feeds buf as it arrives one byte at a time: every proper prefix that does not yet hold the line
 * end must be NEED_MORE (or the same early verdict), and the whole buffer must agree. */
static pc_line_result frame(const char *buf, size_t len, size_t max, size_t *ll, size_t *used)
{
    pc_line_result whole = pc_line_find(buf, len, max, ll, used);
    size_t wl = *ll, wu = *used;
    for (size_t k = 0; k <= len; k++) {
        size_t l2 = 0, u2 = 0;
        pc_line_result r = pc_line_find(buf, k, max, &l2, &u2);
        if (r == PC_LINE_NEED_MORE)
            continue;
        /* the first non-NEED_MORE verdict on a prefix is final */
        assert_int_equal(r, whole);
        if (r != PC_LINE_TOO_LONG) {
            assert_int_equal(l2, wl);
            assert_int_equal(u2, wu);
        }
        break;
    }
    *ll = wl;
    *used = wu;
    return whole;
}

static void test_line_ok(void **st)
{
    (void)st;
    size_t ll, used;
    assert_int_equal(frame("NOOP\r\nQUIT\r\n", 12, 512, &ll, &used), PC_LINE_OK);
    assert_int_equal(ll, 4);
    assert_int_equal(used, 6);
    assert_int_equal(frame("\r\n", 2, 512, &ll, &used), PC_LINE_OK);
    assert_int_equal(ll, 0);
    assert_int_equal(used, 2);
    assert_int_equal(frame("NOOP", 4, 512, &ll, &used), PC_LINE_NEED_MORE);
    assert_int_equal(frame("NOOP\r", 5, 512, &ll, &used), PC_LINE_NEED_MORE);
    assert_int_equal(frame("", 0, 512, &ll, &used), PC_LINE_NEED_MORE);
    /* "\r\r\n": the first CR is part of the line */
    assert_int_equal(frame("A\r\r\n", 4, 512, &ll, &used), PC_LINE_OK);
    assert_int_equal(ll, 2);
    assert_int_equal(used, 4);
}

static void test_line_bare_lf(void **st)
{
    (void)st;
    size_t ll, used;
    assert_int_equal(frame("NOOP\nQUIT\r\n", 11, 512, &ll, &used), PC_LINE_BARE_LF);
    assert_int_equal(used, 5);
    assert_int_equal(frame("\n", 1, 512, &ll, &used), PC_LINE_BARE_LF);
    assert_int_equal(used, 1);
    assert_int_equal(frame("A\rB\n", 4, 512, &ll, &used), PC_LINE_BARE_LF);
    assert_int_equal(used, 4);
}

static void test_line_bare_cr_is_a_byte(void **st)
{
    (void)st;
    size_t ll, used;
    const char *s = "NO\rOP\r\n";
    assert_int_equal(frame(s, strlen(s), 512, &ll, &used), PC_LINE_OK);
    assert_int_equal(ll, 5);
    pc_smtp_cmd cmd;
    assert_int_equal(pc_smtp_cmd_parse(s, ll, 0, &cmd), PC_SMTP_E_SYNTAX);
    s = "RSET\r.\rQUIT\r\n";
    assert_int_equal(frame(s, strlen(s), 512, &ll, &used), PC_LINE_OK);
    assert_int_equal(pc_smtp_cmd_parse(s, ll, 0, &cmd), PC_SMTP_E_SYNTAX);
}

static void test_line_too_long(void **st)
{
    (void)st;
    size_t ll, used;
    char buf[64];
    memset(buf, 'a', sizeof(buf));
    /* max 10: 8 bytes + CRLF fit exactly */
    memcpy(buf + 8, "\r\n", 2);
    assert_int_equal(frame(buf, 10, 10, &ll, &used), PC_LINE_OK);
    assert_int_equal(ll, 8);
    memset(buf, 'a', sizeof(buf));
    memcpy(buf + 9, "\r\n", 2);
    assert_int_equal(frame(buf, 11, 10, &ll, &used), PC_LINE_TOO_LONG);
    memset(buf, 'a', sizeof(buf));
    assert_int_equal(frame(buf, 9, 10, &ll, &used), PC_LINE_NEED_MORE);
    assert_int_equal(frame(buf, 64, 10, &ll, &used), PC_LINE_TOO_LONG);
}

/* ---- commands ---------------------------------------------------------------------------------
 */

static pc_smtp_err parse(const char *s, int utf8, pc_smtp_cmd *cmd)
{
    return pc_smtp_cmd_parse(s, strlen(s), utf8, cmd);
}

static void assert_slice(pc_slice s, const char *want)
{
    assert_int_equal(s.n, strlen(want));
    if (s.n)
        assert_memory_equal(s.p, want, s.n);
}

static void test_verbs(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    assert_int_equal(parse("noop", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_NOOP);
    assert_int_equal(parse("NoOp anything at all", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.arg, "anything at all");
    assert_int_equal(parse("HELP me  ", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.arg, "me");
    assert_int_equal(parse("ehlo mx.example.org", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_EHLO);
    assert_slice(c.arg, "mx.example.org");
    assert_int_equal(parse("HELO", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(c.verb, PC_SMTP_HELO);
    assert_int_equal(parse("EHLO   ", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("DATA", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_DATA);
    assert_int_equal(parse("DATA x", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("RSET x", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("QUIT now", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("STARTTLS x", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("starttls", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_STARTTLS);
    assert_int_equal(parse("AUTH PLAIN AGFAYg==", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_AUTH);
    assert_slice(c.arg, "PLAIN AGFAYg==");
    assert_int_equal(parse("AUTH", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("VRFY", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("BDAT 100 LAST", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_BDAT);
    assert_int_equal(parse("XCLIENT ADDR=1.2.3.4", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_XCLIENT);
    assert_int_equal(parse("FOO", 0, &c), PC_SMTP_E_UNKNOWN);
    assert_int_equal(parse("", 0, &c), PC_SMTP_E_UNKNOWN);
    assert_int_equal(parse("NOOPX", 0, &c), PC_SMTP_E_UNKNOWN);
    assert_int_equal(parse("MAILFROM:<a@b>", 0, &c), PC_SMTP_E_UNKNOWN);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2", 0, &c), PC_SMTP_E_UNKNOWN);
    assert_string_equal(pc_smtp_verb_name(PC_SMTP_MAIL), "MAIL");
    assert_string_equal(pc_smtp_verb_name(PC_SMTP_STARTTLS), "STARTTLS");
}

static void test_bad_bytes(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    assert_int_equal(pc_smtp_cmd_parse("NOOP\0x", 6, 0, &c), PC_SMTP_E_NUL);
    assert_int_equal(pc_smtp_cmd_parse("\0", 1, 0, &c), PC_SMTP_E_NUL);
    assert_int_equal(pc_smtp_cmd_parse("MAIL FROM:<a\0@b>", 16, 1, &c), PC_SMTP_E_NUL);
    assert_int_equal(parse("NOOP \xc3\xa9", 0, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse("NOOP \xc3\xa9", 1, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse("EHLO \xc3\xa9xample.org", 1, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse("NOOP\tx", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("NOOP x\x7f", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("NOOP x\r", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("MAIL FROM:<a@b>\r", 0, &c), PC_SMTP_E_SYNTAX);
}

static void test_mail_ok(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    assert_int_equal(parse("MAIL FROM:<user@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_MAIL);
    assert_slice(c.path, "user@example.org");
    assert_slice(c.domain, "example.org");
    assert_int_equal(c.nparams, 0);
    assert_int_equal(parse("mail from: <user@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.path, "user@example.org");
    assert_int_equal(parse("MAIL FROM:<>", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.path.n, 0);
    assert_int_equal(c.domain.n, 0);
    assert_int_equal(parse("MAIL FROM:<first.last+tag@sub-1.example.org>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.domain, "sub-1.example.org");
    assert_int_equal(parse("MAIL FROM:<\"john doe\"@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.path, "\"john doe\"@example.org");
    assert_int_equal(parse("MAIL FROM:<\"a@b\\\"c\"@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.domain, "example.org");
    assert_int_equal(parse("MAIL FROM:<\"\"@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(parse("MAIL FROM:<@relay.one,@relay.two:u@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.path, "u@example.org");
    assert_slice(c.domain, "example.org");
    assert_int_equal(parse("MAIL FROM:<u@[192.0.2.1]>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.domain, "[192.0.2.1]");
    assert_int_equal(parse("MAIL FROM:<u@[IPv6:2001:db8::1]>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.domain, "[IPv6:2001:db8::1]");
    assert_int_equal(parse("MAIL FROM:<u@localhost>", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(parse("MAIL FROM:<!#$%&'*+-/=?^_`{|}~@x.org>", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(parse("MAIL FROM:<u@123.example>", 0, &c), PC_SMTP_E_OK);
}

static void test_mail_bad_address(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    static const char *bad[] = {
        "MAIL FROM:<;sleep 5;>",
        "MAIL FROM:<;sleep 5;@example.org>",
        "MAIL FROM:<a@b;sleep 5>",
        "MAIL FROM:<$(reboot)@example.org>",
        "MAIL FROM:<a b@example.org>",
        "MAIL FROM:<a@example.org",
        "MAIL FROM:<<a@example.org>",
        "MAIL FROM:<a@example.org>>",
        "MAIL FROM:<a@<example.org>",
        "MAIL FROM:a@example.org>",
        "MAIL FROM:a@example.org",
        "MAIL FROM:<\"unterminated@example.org>",
        "MAIL FROM:<\"a\"b@example.org>",
        "MAIL FROM:<a\"b\"@example.org>",
        "MAIL FROM:<\"a\\\">",
        "MAIL FROM:<\">",
        "MAIL FROM:<\"\">",
        "MAIL FROM:<user>",
        "MAIL FROM:<user@>",
        "MAIL FROM:<@example.org>",
        "MAIL FROM:<.a@example.org>",
        "MAIL FROM:<a.@example.org>",
        "MAIL FROM:<a..b@example.org>",
        "MAIL FROM:<a@example..org>",
        "MAIL FROM:<a@example.org.>",
        "MAIL FROM:<a@.example.org>",
        "MAIL FROM:<a@-example.org>",
        "MAIL FROM:<a@example-.org>",
        "MAIL FROM:<a@exa_mple.org>",
        "MAIL FROM:<a@b@example.org>",
        "MAIL FROM:<a@[300.1.1.1]>",
        "MAIL FROM:<a@[1.2.3]>",
        "MAIL FROM:<a@[IPv6:zz::1]>",
        "MAIL FROM:<a@[IPv6:::1%eth0]>",
        "MAIL FROM:<a@[1.2.3.4>",
        "MAIL FROM:<a@[tag:content]>",
        "MAIL FROM:<@relay:>",
        "MAIL FROM:<@relay,u@example.org>",
        "MAIL FROM:<@relay:@x:u@example.org>",
        "MAIL FROM:<@a,b:u@example.org>",
        "MAIL FROM:  <a@example.org>",
        "MAIL FROM:<a@example.org>x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pc_smtp_err e = parse(bad[i], 0, &c);
        if (e != PC_SMTP_E_ADDRESS && e != PC_SMTP_E_PARAMS)
            fail_msg("accepted or misclassified (%d): %s", e, bad[i]);
        if (i < 2)
            assert_int_equal(e, PC_SMTP_E_ADDRESS);
        assert_int_equal(c.verb, PC_SMTP_MAIL);
    }
    assert_int_equal(parse("MAIL FROM:<;sleep 5;>", 0, &c), PC_SMTP_E_ADDRESS);
    assert_int_equal(parse("MAIL FROM:<a@example.org", 0, &c), PC_SMTP_E_ADDRESS);
    assert_int_equal(parse("MAIL FROM:", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("MAIL", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("MAIL TO:<a@b.c>", 0, &c), PC_SMTP_E_SYNTAX);
    assert_int_equal(parse("RCPT FROM:<a@b.c>", 0, &c), PC_SMTP_E_SYNTAX);
}

static void test_path_limits(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    char line[1024], local[100], dom[300];
    memset(local, 'l', 64);
    local[64] = '\0';
    snprintf(line, sizeof(line), "MAIL FROM:<%s@example.org>", local);
    assert_int_equal(parse(line, 0, &c), PC_SMTP_E_OK);
    memset(local, 'l', 65);
    local[65] = '\0';
    snprintf(line, sizeof(line), "MAIL FROM:<%s@example.org>", local);
    assert_int_equal(parse(line, 0, &c), PC_SMTP_E_ADDRESS);
    /* a label of 63 is fine, 64 is not */
    memset(dom, 'd', 63);
    strcpy(dom + 63, ".org");
    snprintf(line, sizeof(line), "MAIL FROM:<a@%s>", dom);
    assert_int_equal(parse(line, 0, &c), PC_SMTP_E_OK);
    memset(dom, 'd', 64);
    strcpy(dom + 64, ".org");
    snprintf(line, sizeof(line), "MAIL FROM:<a@%s>", dom);
    assert_int_equal(parse(line, 0, &c), PC_SMTP_E_ADDRESS);
    /* whole path: "<" + 64 + "@" + domain + ">" at 256 ok, 257 not */
    memset(local, 'l', 64);
    local[64] = '\0';
    for (int extra = 0; extra <= 1; extra++) {
        size_t dl = 256 - 3 - 64 + (size_t)extra; /* < @ > */
        size_t k = 0;
        while (k < dl) {
            size_t lab = dl - k > 50 ? 49 : dl - k;
            memset(dom + k, 'x', lab);
            k += lab;
            if (k < dl)
                dom[k++] = '.';
        }
        dom[dl] = '\0';
        if (dom[dl - 1] == '.')
            dom[dl - 1] = 'y';
        snprintf(line, sizeof(line), "MAIL FROM:<%s@%s>", local, dom);
        assert_int_equal(parse(line, 0, &c), extra ? PC_SMTP_E_ADDRESS : PC_SMTP_E_OK);
    }
}

static void test_rcpt(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    assert_int_equal(parse("RCPT TO:<u@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.verb, PC_SMTP_RCPT);
    assert_slice(c.path, "u@example.org");
    assert_int_equal(parse("rcpt to:<Postmaster>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.path, "Postmaster");
    assert_int_equal(c.domain.n, 0);
    assert_int_equal(parse("RCPT TO:<postmaster@example.org>", 0, &c), PC_SMTP_E_OK);
    assert_slice(c.domain, "example.org");
    assert_int_equal(parse("RCPT TO:<>", 0, &c), PC_SMTP_E_ADDRESS);
    assert_int_equal(parse("RCPT TO:<root>", 0, &c), PC_SMTP_E_ADDRESS);
    assert_int_equal(parse("MAIL FROM:<postmaster>", 0, &c), PC_SMTP_E_ADDRESS);
    assert_int_equal(
        parse("RCPT TO:<u@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u+40x", 0, &c),
        PC_SMTP_E_OK);
    assert_int_equal(c.nparams, 2);
    assert_slice(c.params[1].value, "rfc822;u+40x");
}

static void test_params(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    assert_int_equal(parse("MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME SMTPUTF8", 0, &c),
                     PC_SMTP_E_OK);
    assert_int_equal(c.nparams, 3);
    assert_slice(c.params[0].key, "SIZE");
    assert_slice(c.params[0].value, "1000");
    assert_slice(c.params[1].key, "BODY");
    assert_slice(c.params[1].value, "8BITMIME");
    assert_slice(c.params[2].key, "SMTPUTF8");
    assert_int_equal(c.params[2].value.n, 0);
    assert_int_equal(pc_smtp_param_find(&c, "body"), 1);
    assert_int_equal(pc_smtp_param_find(&c, "smtputf8"), 2);
    assert_int_equal(pc_smtp_param_find(&c, "RET"), -1);
    assert_int_equal(parse("MAIL FROM:<a@b.org> SIZE=", 0, &c), PC_SMTP_E_PARAMS);
    assert_int_equal(parse("MAIL FROM:<a@b.org> SIZE==1", 0, &c), PC_SMTP_E_PARAMS);
    assert_int_equal(parse("MAIL FROM:<a@b.org> SIZE=1=2", 0, &c), PC_SMTP_E_PARAMS);
    assert_int_equal(parse("MAIL FROM:<a@b.org> =1", 0, &c), PC_SMTP_E_PARAMS);
    assert_int_equal(parse("MAIL FROM:<a@b.org> -X=1", 0, &c), PC_SMTP_E_PARAMS);
    assert_int_equal(parse("MAIL FROM:<a@b.org> X_Y=1", 0, &c), PC_SMTP_E_PARAMS);
    assert_int_equal(parse("MAIL FROM:<a@b.org> X-Y=1", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(parse("MAIL FROM:<a@b.org> SIZE=\xc3\xa9", 1, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse("MAIL FROM:<a@b.org>  SIZE=1  ", 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.nparams, 1);

    char line[8192];
    size_t n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@b.org>");
    for (int i = 0; i < PC_SMTP_MAX_PARAMS; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, " X%d=%d", i, i);
    assert_int_equal(parse(line, 0, &c), PC_SMTP_E_OK);
    assert_int_equal(c.nparams, PC_SMTP_MAX_PARAMS);
    snprintf(line + n, sizeof(line) - n, " ONEMORE");
    assert_int_equal(parse(line, 0, &c), PC_SMTP_E_PARAMS);
    n = (size_t)snprintf(line, sizeof(line), "RCPT TO:<a@b.org>");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, " P");
    assert_int_equal(parse(line, 0, &c), PC_SMTP_E_PARAMS);
    assert_true(c.nparams <= PC_SMTP_MAX_PARAMS);
}

static void test_utf8(void **st)
{
    (void)st;
    pc_smtp_cmd c;
    const char *ok = "MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc"
                     "cher.example> SMTPUTF8";
    assert_int_equal(parse(ok, 0, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse(ok, 1, &c), PC_SMTP_E_OK);
    assert_slice(c.domain, "b\xc3\xbc"
                           "cher.example");
    assert_int_equal(parse("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b.example>", 1, &c),
                     PC_SMTP_E_OK);
    assert_int_equal(parse("RCPT TO:<\"\xc3\xb6 x\"@example.org>", 1, &c), PC_SMTP_E_OK);
    /* invalid UTF-8: lone continuation, overlong, surrogate, truncated */
    assert_int_equal(parse("RCPT TO:<a\x80@example.org>", 1, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse("RCPT TO:<a\xc0\xaf@example.org>", 1, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse("RCPT TO:<a\xed\xa0\x80@example.org>", 1, &c), PC_SMTP_E_8BIT);
    assert_int_equal(parse("RCPT TO:<a@example.or\xc3>", 1, &c), PC_SMTP_E_8BIT);
    /* not in address literals or source routes */
    assert_int_equal(parse("RCPT TO:<a@[1.2.3.\xc3\xb6]>", 1, &c), PC_SMTP_E_ADDRESS);
    assert_int_equal(parse("RCPT TO:<@\xc3\xb6.x:a@example.org>", 1, &c), PC_SMTP_E_8BIT);
}

static void test_helo_valid(void **st)
{
    (void)st;
    static const char *good[] = {"mx.example.org",     "localhost",      "[192.0.2.7]",
                                 "[IPv6:2001:db8::7]", "a-b.c1.example", "1.example"};
    static const char *bad[] = {"",         "mx..example.org", "mx.example.org.", "-mx.example",
                                "mx_1.org", "[1.2.3.4",        "[999.1.1.1]",     "a b",
                                "exa;mple", "[IPv6:xyz]",      "mx.exam\xc3\xa9"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(pc_smtp_helo_valid(good[i], strlen(good[i])), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pc_smtp_helo_valid(bad[i], strlen(bad[i])) != -1)
            fail_msg("helo accepted: %s", bad[i]);
    char big[300];
    memset(big, 'a', sizeof(big));
    for (size_t i = 60; i < sizeof(big); i += 61)
        big[i] = '.';
    assert_int_equal(pc_smtp_helo_valid(big, 255), 0);
    assert_int_equal(pc_smtp_helo_valid(big, 256), -1);
}

/* Every command, parsed whole, gives the same answer as after being framed byte by byte. */
static void test_stream_commands(void **st)
{
    (void)st;
    const char *wire = "EHLO mx.example.org\r\nMAIL FROM:<a@b.org> SIZE=10\r\nRCPT TO:<c@d.org>\r\n"
                       "DATA\r\nRSET\nQUIT\r\n";
    static const int want[] = {PC_SMTP_EHLO, PC_SMTP_MAIL, PC_SMTP_RCPT,
                               PC_SMTP_DATA, -1,           PC_SMTP_QUIT};
    size_t len = strlen(wire), start = 0, avail = 0, idx = 0;
    /* one byte arrives at a time */
    while (start < len) {
        size_t ll = 0, used = 0;
        pc_line_result r = pc_line_find(wire + start, avail, 512, &ll, &used);
        if (r == PC_LINE_NEED_MORE) {
            assert_true(start + avail < len);
            avail++;
            continue;
        }
        assert_true(idx < sizeof(want) / sizeof(want[0]));
        if (want[idx] < 0) {
            assert_int_equal(r, PC_LINE_BARE_LF);
        } else {
            assert_int_equal(r, PC_LINE_OK);
            pc_smtp_cmd c;
            assert_int_equal(pc_smtp_cmd_parse(wire + start, ll, 0, &c), PC_SMTP_E_OK);
            assert_int_equal(c.verb, want[idx]);
        }
        assert_int_equal(used, avail);
        idx++;
        start += used;
        avail = 0;
    }
    assert_int_equal(idx, sizeof(want) / sizeof(want[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_ok),
        cmocka_unit_test(test_line_bare_lf),
        cmocka_unit_test(test_line_bare_cr_is_a_byte),
        cmocka_unit_test(test_line_too_long),
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_mail_ok),
        cmocka_unit_test(test_mail_bad_address),
        cmocka_unit_test(test_path_limits),
        cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_helo_valid),
        cmocka_unit_test(test_stream_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
