/* test_pop3_parse.c — POP3 commands, shapes, status lines, CAPA and the body reader, fed whole,
 * byte by byte and split everywhere; smuggling, bad numbers, NUL/CR, oversize input are caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data_read.h"
#include "pop3/pop3_parse.h"

#define S(x) x, sizeof(x) - 1

static void assert_slice(pc_slice s, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(s.n, n);
    if (n)
        assert_memory_equal(s.p, want, n);
}

/* ---- commands ------------------------------------------------------------------------------- */

static pc_pop3_cmd parse_ok(const char *line, pc_pop3_verb verb, size_t nargs)
{
    pc_pop3_cmd c;
    pc_pop3_err e = pc_pop3_cmd_parse(line, strlen(line), &c);
    if (e != PC_POP3_E_OK)
        fail_msg("\"%s\": error %d", line, (int)e);
    assert_int_equal(c.verb, verb);
    assert_int_equal(c.nargs, nargs);
    return c;
}

static void parse_bad(const char *line, size_t len, pc_pop3_err want)
{
    pc_pop3_cmd c;
    pc_pop3_err e = pc_pop3_cmd_parse(line, len, &c);
    if (e != want)
        fail_msg("\"%.*s\": got %d, want %d", (int)len, line, (int)e, (int)want);
    assert_int_equal(c.nargs, 0);
}

static void bad(const char *line, pc_pop3_err want)
{
    parse_bad(line, strlen(line), want);
}

static void test_cmd_simple(void **st)
{
    (void)st;
    static const struct {
        const char *s;
        pc_pop3_verb v;
    } none[] = {
        {"STLS", PC_POP3_STLS}, {"capa", PC_POP3_CAPA}, {"QuIt", PC_POP3_QUIT},
        {"STAT", PC_POP3_STAT}, {"NOOP", PC_POP3_NOOP}, {"RSET", PC_POP3_RSET},
        {"LIST", PC_POP3_LIST}, {"uidl", PC_POP3_UIDL}, {"STAT  ", PC_POP3_STAT},
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        parse_ok(none[i].s, none[i].v, 0);
    bad("STAT 1", PC_POP3_E_SYNTAX);
    bad("QUIT now", PC_POP3_E_SYNTAX);
    bad("STLS x", PC_POP3_E_SYNTAX);
    bad("CAPA x", PC_POP3_E_SYNTAX);
    /* unknown verbs, including ones other servers have or had */
    bad("LAST", PC_POP3_E_UNKNOWN);
    bad("XTND XMIT", PC_POP3_E_UNKNOWN);
    bad("", PC_POP3_E_UNKNOWN);
    bad(" STAT", PC_POP3_E_UNKNOWN);
    bad("STATS", PC_POP3_E_UNKNOWN);
    bad("STA", PC_POP3_E_UNKNOWN);
    bad("HELO x", PC_POP3_E_UNKNOWN);
    assert_string_equal(pc_pop3_verb_name(PC_POP3_TOP), "TOP");
    assert_string_equal(pc_pop3_verb_name(PC_POP3_UNKNOWN), "UNKNOWN");
    assert_string_equal(pc_pop3_verb_name(PC_POP3_VERB_COUNT), "UNKNOWN");
    /* every verb name parses back to its verb */
    for (int v = PC_POP3_UNKNOWN + 1; v < PC_POP3_VERB_COUNT; v++) {
        pc_pop3_cmd c;
        const char *name = pc_pop3_verb_name((pc_pop3_verb)v);
        (void)pc_pop3_cmd_parse(name, strlen(name), &c);
        assert_int_equal(c.verb, v);
    }
}

static void test_cmd_numbers(void **st)
{
    (void)st;
    pc_pop3_cmd c = parse_ok("RETR 1", PC_POP3_RETR, 1);
    assert_int_equal(c.num[0], 1);
    assert_slice(c.arg[0], "1");
    c = parse_ok("dele 2147483647", PC_POP3_DELE, 1);
    assert_int_equal(c.num[0], 2147483647u);
    c = parse_ok("LIST 42", PC_POP3_LIST, 1);
    assert_int_equal(c.num[0], 42);
    c = parse_ok("UIDL 7 ", PC_POP3_UIDL, 1);
    assert_int_equal(c.num[0], 7);
    c = parse_ok("TOP 3 0", PC_POP3_TOP, 2);
    assert_int_equal(c.num[0], 3);
    assert_int_equal(c.num[1], 0);
    assert_slice(c.arg[1], "0");
    c = parse_ok("TOP 1 2147483647", PC_POP3_TOP, 2);
    assert_int_equal(c.num[1], 2147483647u);

    static const char *const badnum[] = {
        "RETR 0",
        "RETR -1",
        "RETR +1",
        "RETR 01",
        "RETR 2147483648",
        "RETR 4294967297",
        "RETR 99999999999",
        "RETR 1a",
        "RETR a1",
        "RETR 0x1",
        "RETR 1.0",
        "RETR",
        "RETR ",
        "RETR 1 2",
        "RETR  1",
        "DELE",
        "DELE 0",
        "DELE 1 1",
        "LIST 0",
        "LIST 1 2",
        "LIST -0",
        "UIDL +3",
        "UIDL 1  2",
        "TOP 1",
        "TOP 0 1",
        "TOP 1 -1",
        "TOP 1 01",
        "TOP 1 2 3",
        "TOP",
        "TOP 1  2",
        "TOP 1 2147483648",
    };
    for (size_t i = 0; i < sizeof(badnum) / sizeof(badnum[0]); i++)
        bad(badnum[i], PC_POP3_E_SYNTAX);
    /* 8-bit digits are not digits, and 8-bit is refused outside USER/PASS anyway */
    bad("RETR \xd9\xa1", PC_POP3_E_8BIT);
}

static void test_cmd_user_pass(void **st)
{
    (void)st;
    pc_pop3_cmd c = parse_ok("USER alice", PC_POP3_USER, 1);
    assert_slice(c.arg[0], "alice");
    c = parse_ok("PASS correct horse battery staple", PC_POP3_PASS, 1);
    assert_slice(c.arg[0], "correct horse battery staple");
    c = parse_ok("pass  lead and trail  ", PC_POP3_PASS, 1);
    assert_slice(c.arg[0], " lead and trail  ");
    c = parse_ok("USER j\xc3\xb6rg@example.org", PC_POP3_USER, 1);
    assert_slice(c.arg[0], "j\xc3\xb6rg@example.org");
    c = parse_ok("PASS \xff\xfe", PC_POP3_PASS, 1);
    assert_int_equal(c.arg[0].n, 2);
    bad("USER", PC_POP3_E_SYNTAX);
    bad("USER ", PC_POP3_E_SYNTAX);
    bad("PASS", PC_POP3_E_SYNTAX);
    /* CR, TAB and NUL inside an argument would be smuggled upstream */
    bad("PASS a\rQUIT", PC_POP3_E_CTL);
    bad("USER a\tb", PC_POP3_E_CTL);
    bad("PASS a\x7f", PC_POP3_E_CTL);
    parse_bad(S("PASS se\0cret"), PC_POP3_E_NUL);
    parse_bad(S("USER \0"), PC_POP3_E_NUL);
    /* the verb stays known on an argument error */
    pc_pop3_err e = pc_pop3_cmd_parse(S("USER "), &c);
    assert_int_equal(e, PC_POP3_E_SYNTAX);
    assert_int_equal(c.verb, PC_POP3_USER);
}

static void test_cmd_apop_auth(void **st)
{
    (void)st;
    pc_pop3_cmd c = parse_ok("APOP mrose c4c9334bac560ecc979e58001b3e22fb", PC_POP3_APOP, 2);
    assert_slice(c.arg[0], "mrose");
    assert_slice(c.arg[1], "c4c9334bac560ecc979e58001b3e22fb");
    bad("APOP mrose", PC_POP3_E_SYNTAX);
    bad("APOP", PC_POP3_E_SYNTAX);
    bad("APOP a b c", PC_POP3_E_SYNTAX);
    bad("APOP m\xc3\xa9 x", PC_POP3_E_8BIT);

    c = parse_ok("AUTH PLAIN", PC_POP3_AUTH, 1);
    assert_slice(c.arg[0], "PLAIN");
    c = parse_ok("auth scram-sha-256", PC_POP3_AUTH, 1);
    c = parse_ok("AUTH PLAIN AGFsaWNlAHNlY3JldA==", PC_POP3_AUTH, 2);
    assert_slice(c.arg[1], "AGFsaWNlAHNlY3JldA==");
    c = parse_ok("AUTH EXTERNAL =", PC_POP3_AUTH, 2);
    assert_slice(c.arg[1], "=");
    c = parse_ok("AUTH XOAUTH2 dXNlcj1h ", PC_POP3_AUTH, 2);
    assert_slice(c.arg[1], "dXNlcj1h");
    bad("AUTH", PC_POP3_E_SYNTAX);
    bad("AUTH PLAIN abc", PC_POP3_E_SYNTAX);  /* not a multiple of 4 */
    bad("AUTH PLAIN ab=c", PC_POP3_E_SYNTAX); /* padding inside */
    bad("AUTH PLAIN a===", PC_POP3_E_SYNTAX); /* too much padding */
    bad("AUTH PLAIN ab!c", PC_POP3_E_SYNTAX);
    bad("AUTH PLAIN == ", PC_POP3_E_SYNTAX);
    bad("AUTH PLAIN a b", PC_POP3_E_SYNTAX);
    bad("AUTH PLAIN AAAA BBBB", PC_POP3_E_SYNTAX);
    bad("AUTH PL*AIN", PC_POP3_E_SYNTAX);
    bad("AUTH ABCDEFGHIJKLMNOPQRSTU", PC_POP3_E_SYNTAX); /* 21 characters */
    parse_ok("AUTH ABCDEFGHIJKLMNOPQRST", PC_POP3_AUTH, 1);
    bad("AUTH  PLAIN", PC_POP3_E_SYNTAX);

    assert_int_equal(pc_pop3_base64_valid(S("")), 0);
    assert_int_equal(pc_pop3_base64_valid(S("QQ==")), 0);
    assert_int_equal(pc_pop3_base64_valid(S("QUI=")), 0);
    assert_int_equal(pc_pop3_base64_valid(S("QUJD")), 0);
    assert_int_equal(pc_pop3_base64_valid(S("Q===")), -1);
    assert_int_equal(pc_pop3_base64_valid(S("QU=I")), -1);
    assert_int_equal(pc_pop3_base64_valid(S("====")), -1);
    assert_int_equal(pc_pop3_base64_valid(S("=")), -1);
    assert_int_equal(pc_pop3_sasl_line_parse(S("*")), PC_POP3_SASL_CANCEL);
    assert_int_equal(pc_pop3_sasl_line_parse(S("")), PC_POP3_SASL_DATA);
    assert_int_equal(pc_pop3_sasl_line_parse(S("dGVzdA==")), PC_POP3_SASL_DATA);
    assert_int_equal(pc_pop3_sasl_line_parse(S("* ")), PC_POP3_SASL_INVALID);
    assert_int_equal(pc_pop3_sasl_line_parse(S("dGVzdA== ")), PC_POP3_SASL_INVALID);
}

static void test_cmd_bytes(void **st)
{
    (void)st;
    parse_bad(S("\0STAT"), PC_POP3_E_NUL);
    parse_bad(S("STAT\0"), PC_POP3_E_NUL);
    parse_bad(S("RETR 1\0"), PC_POP3_E_NUL);
    bad("STAT\r", PC_POP3_E_CTL);
    bad("RETR 1\rDELE 1", PC_POP3_E_CTL);
    bad("LIST\n", PC_POP3_E_CTL);
    bad("RETR\t1", PC_POP3_E_CTL);
    bad("ST\xc3\x80T", PC_POP3_E_UNKNOWN);
    bad("LIST \xe2\x91\xa0", PC_POP3_E_8BIT);
    bad("AUTH PL\xc3\x80IN", PC_POP3_E_8BIT);
    bad("NOOP \x80", PC_POP3_E_8BIT);
}

static void test_line_framing(void **st)
{
    (void)st;
    size_t ll = 0, used = 0;
    char buf[600];
    /* a line of exactly PC_POP3_CMD_MAX octets with its CRLF passes; one more does not */
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "PASS ", 5);
    memcpy(buf + PC_POP3_CMD_MAX - 2, "\r\n", 2);
    assert_int_equal(pc_line_find(buf, PC_POP3_CMD_MAX, PC_POP3_CMD_MAX, &ll, &used), PC_LINE_OK);
    assert_int_equal(ll, PC_POP3_CMD_MAX - 2);
    assert_int_equal(used, PC_POP3_CMD_MAX);
    pc_pop3_cmd c;
    assert_int_equal(pc_pop3_cmd_parse(buf, ll, &c), PC_POP3_E_OK);
    memset(buf, 'x', sizeof(buf));
    memcpy(buf + PC_POP3_CMD_MAX - 1, "\r\n", 2);
    assert_int_equal(pc_line_find(buf, PC_POP3_CMD_MAX + 1, PC_POP3_CMD_MAX, &ll, &used),
                     PC_LINE_TOO_LONG);
    /* the same line with the AUTH continuation limit */
    assert_int_equal(pc_line_find(buf, PC_POP3_CMD_MAX + 1, PC_POP3_AUTH_LINE_MAX, &ll, &used),
                     PC_LINE_OK);
    /* bare LF reported, with where it ends */
    assert_int_equal(pc_line_find(S("STAT\nQUIT\r\n"), PC_POP3_CMD_MAX, &ll, &used),
                     PC_LINE_BARE_LF);
    assert_int_equal(used, 5);
    /* need more for every prefix of a line, then OK */
    const char line[] = "TOP 1 10\r\nQUIT\r\n";
    for (size_t k = 0; k < 10; k++)
        assert_int_equal(pc_line_find(line, k, PC_POP3_CMD_MAX, &ll, &used), PC_LINE_NEED_MORE);
    for (size_t k = 10; k <= sizeof(line) - 1; k++) {
        assert_int_equal(pc_line_find(line, k, PC_POP3_CMD_MAX, &ll, &used), PC_LINE_OK);
        assert_int_equal(used, 10);
        assert_int_equal(ll, 8);
    }
}

static void test_multiline(void **st)
{
    (void)st;
    static const struct {
        pc_pop3_verb v;
        int m0, m1, m2;
    } t[] = {
        {PC_POP3_UNKNOWN, 0, 0, 0}, {PC_POP3_USER, 0, 0, 0},       {PC_POP3_PASS, 0, 0, 0},
        {PC_POP3_APOP, 0, 0, 0},    {PC_POP3_AUTH, 0, 0, 0},       {PC_POP3_STLS, 0, 0, 0},
        {PC_POP3_CAPA, 1, 1, 1},    {PC_POP3_QUIT, 0, 0, 0},       {PC_POP3_STAT, 0, 0, 0},
        {PC_POP3_LIST, 1, 0, 0},    {PC_POP3_UIDL, 1, 0, 0},       {PC_POP3_RETR, 1, 1, 1},
        {PC_POP3_TOP, 1, 1, 1},     {PC_POP3_DELE, 0, 0, 0},       {PC_POP3_NOOP, 0, 0, 0},
        {PC_POP3_RSET, 0, 0, 0},    {PC_POP3_VERB_COUNT, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_int_equal(pc_pop3_multiline(t[i].v, 0), t[i].m0);
        assert_int_equal(pc_pop3_multiline(t[i].v, 1), t[i].m1);
        assert_int_equal(pc_pop3_multiline(t[i].v, 2), t[i].m2);
    }
    /* driven from parsed commands */
    pc_pop3_cmd c = parse_ok("LIST", PC_POP3_LIST, 0);
    assert_true(pc_pop3_multiline(c.verb, c.nargs));
    c = parse_ok("LIST 3", PC_POP3_LIST, 1);
    assert_false(pc_pop3_multiline(c.verb, c.nargs));
    c = parse_ok("TOP 3 0", PC_POP3_TOP, 2);
    assert_true(pc_pop3_multiline(c.verb, c.nargs));
}

/* ---- status lines --------------------------------------------------------------------------- */

static pc_pop3_resp resp_ok(const char *in, pc_pop3_status st, const char *code, const char *text)
{
    pc_pop3_resp r;
    size_t n = strlen(in), used = 0;
    int rc = pc_pop3_resp_parse(in, n, PC_POP3_RESP_MAX, &r, &used);
    if (rc != PC_OK)
        fail_msg("\"%s\": %d", in, rc);
    assert_int_equal(used, n);
    assert_int_equal(r.status, st);
    assert_slice(r.code, code);
    assert_slice(r.text, text);
    assert_int_equal(r.line.n, n - 2);
    assert_ptr_equal(r.line.p, in);
    /* every proper prefix needs more */
    for (size_t k = 0; k < n; k++) {
        size_t u = 12345;
        assert_int_equal(pc_pop3_resp_parse(in, k, PC_POP3_RESP_MAX, &r, &u), PC_NEED_MORE);
        assert_int_equal(u, 12345);
    }
    pc_pop3_resp_parse(in, n, PC_POP3_RESP_MAX, &r, &used);
    return r;
}

static void resp_bad(const char *in, size_t n, int want)
{
    pc_pop3_resp r;
    size_t used = 0;
    int rc = pc_pop3_resp_parse(in, n, PC_POP3_RESP_MAX, &r, &used);
    if (rc != want)
        fail_msg("\"%.*s\": got %d want %d", (int)n, in, rc, want);
}

static void test_resp(void **st)
{
    (void)st;
    resp_ok("+OK\r\n", PC_POP3_RESP_OK, "", "");
    resp_ok("+OK \r\n", PC_POP3_RESP_OK, "", "");
    resp_ok("+OK 2 messages (320 octets)\r\n", PC_POP3_RESP_OK, "", "2 messages (320 octets)");
    resp_ok("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", PC_POP3_RESP_OK, "",
            "POP3 server ready <1896.697170952@dbc.mtview.ca.us>");
    resp_ok("-ERR\r\n", PC_POP3_RESP_ERR, "", "");
    resp_ok("-ERR no such message\r\n", PC_POP3_RESP_ERR, "", "no such message");
    resp_ok("-ERR [SYS/TEMP] try later\r\n", PC_POP3_RESP_ERR, "SYS/TEMP", "try later");
    resp_ok("-ERR [AUTH] bad credentials\r\n", PC_POP3_RESP_ERR, "AUTH", "bad credentials");
    resp_ok("-ERR [IN-USE] locked\r\n", PC_POP3_RESP_ERR, "IN-USE", "locked");
    resp_ok("-ERR [LOGIN-DELAY]\r\n", PC_POP3_RESP_ERR, "LOGIN-DELAY", "");
    resp_ok("-ERR [SYS/PERM/X-Y]  two\r\n", PC_POP3_RESP_ERR, "SYS/PERM/X-Y", " two");
    resp_ok("+OK [IN-USE] odd but legal\r\n", PC_POP3_RESP_OK, "IN-USE", "odd but legal");
    /* brackets that are not a code are text */
    resp_ok("-ERR [not a code] x\r\n", PC_POP3_RESP_ERR, "", "[not a code] x");
    resp_ok("-ERR [SYS/] x\r\n", PC_POP3_RESP_ERR, "", "[SYS/] x");
    resp_ok("-ERR [/SYS] x\r\n", PC_POP3_RESP_ERR, "", "[/SYS] x");
    resp_ok("-ERR [SYS//TEMP] x\r\n", PC_POP3_RESP_ERR, "", "[SYS//TEMP] x");
    resp_ok("-ERR [] x\r\n", PC_POP3_RESP_ERR, "", "[] x");
    resp_ok("-ERR [SYS/TEMP]x\r\n", PC_POP3_RESP_ERR, "", "[SYS/TEMP]x");
    resp_ok("-ERR [SYS/TEMP\r\n", PC_POP3_RESP_ERR, "", "[SYS/TEMP");
    resp_ok("-ERR [A[B] x\r\n", PC_POP3_RESP_ERR, "", "[A[B] x");
    resp_ok("-ERR \xe9t\xe9\r\n", PC_POP3_RESP_ERR, "", "\xe9t\xe9");
    /* SASL continuations */
    resp_ok("+ \r\n", PC_POP3_RESP_CONT, "", "");
    resp_ok("+\r\n", PC_POP3_RESP_CONT, "", "");
    resp_ok("+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UuZXhhbXBsZS5uZXQ+\r\n", PC_POP3_RESP_CONT, "",
            "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UuZXhhbXBsZS5uZXQ+");

    resp_bad(S("+ok\r\n"), PC_INVALID);
    resp_bad(S("-err\r\n"), PC_INVALID);
    resp_bad(S("+OKAY\r\n"), PC_INVALID);
    resp_bad(S("-ERROR\r\n"), PC_INVALID);
    resp_bad(S("-ERR[AUTH]\r\n"), PC_INVALID);
    resp_bad(S("OK\r\n"), PC_INVALID);
    resp_bad(S("\r\n"), PC_INVALID);
    resp_bad(S(" +OK\r\n"), PC_INVALID);
    resp_bad(S("+ not base64!\r\n"), PC_INVALID);
    resp_bad(S("+  \r\n"), PC_INVALID);
    resp_bad(S("+OK a\0b\r\n"), PC_INVALID);
    resp_bad(S("+OK a\rb\r\n"), PC_INVALID);
    resp_bad(S("+OK\r\r\n"), PC_INVALID);
    resp_bad(S("-ERR x\n"), PC_INVALID);
    resp_bad(S("+OK"), PC_NEED_MORE);
    resp_bad(S("+OK\r"), PC_NEED_MORE);
    resp_bad(S(""), PC_NEED_MORE);

    /* bare LF: invalid, and consumed says where that line ends */
    pc_pop3_resp r;
    size_t used = 0;
    assert_int_equal(pc_pop3_resp_parse(S("+OK x\n+OK\r\n"), PC_POP3_RESP_MAX, &r, &used),
                     PC_INVALID);
    assert_int_equal(used, 6);

    /* two responses back to back: one at a time */
    const char two[] = "+OK 1\r\n-ERR [IN-USE] 2\r\n+O";
    assert_int_equal(pc_pop3_resp_parse(S(two), PC_POP3_RESP_MAX, &r, &used), PC_OK);
    assert_int_equal(used, 7);
    assert_slice(r.text, "1");
    size_t pos = used;
    assert_int_equal(
        pc_pop3_resp_parse(two + pos, sizeof(two) - 1 - pos, PC_POP3_RESP_MAX, &r, &used), PC_OK);
    assert_int_equal(r.status, PC_POP3_RESP_ERR);
    assert_slice(r.code, "IN-USE");
    pos += used;
    assert_int_equal(
        pc_pop3_resp_parse(two + pos, sizeof(two) - 1 - pos, PC_POP3_RESP_MAX, &r, &used),
        PC_NEED_MORE);
}

static void test_resp_too_long(void **st)
{
    (void)st;
    char buf[2 * PC_POP3_RESP_MAX];
    pc_pop3_resp r;
    size_t used = 0;
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "+OK ", 4);
    /* exactly the limit, CRLF included */
    memcpy(buf + PC_POP3_RESP_MAX - 2, "\r\n", 2);
    assert_int_equal(pc_pop3_resp_parse(buf, PC_POP3_RESP_MAX, PC_POP3_RESP_MAX, &r, &used), PC_OK);
    assert_int_equal(used, PC_POP3_RESP_MAX);
    /* one more */
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "+OK ", 4);
    memcpy(buf + PC_POP3_RESP_MAX - 1, "\r\n", 2);
    assert_int_equal(pc_pop3_resp_parse(buf, PC_POP3_RESP_MAX + 1, PC_POP3_RESP_MAX, &r, &used),
                     PC_TOO_LONG);
    /* without any line end: need more below the limit, too long at it */
    assert_int_equal(pc_pop3_resp_parse(buf, PC_POP3_RESP_MAX - 1, PC_POP3_RESP_MAX, &r, &used),
                     PC_NEED_MORE);
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(pc_pop3_resp_parse(buf, PC_POP3_RESP_MAX, PC_POP3_RESP_MAX, &r, &used),
                     PC_TOO_LONG);
    /* a long SASL challenge passes with a larger limit */
    memset(buf, 'Q', sizeof(buf));
    memcpy(buf, "+ ", 2);
    memcpy(buf + 2 + 800, "\r\n", 2);
    assert_int_equal(pc_pop3_resp_parse(buf, 804, PC_POP3_RESP_MAX, &r, &used), PC_TOO_LONG);
    assert_int_equal(pc_pop3_resp_parse(buf, 804, 4096, &r, &used), PC_OK);
    assert_int_equal(r.status, PC_POP3_RESP_CONT);
    assert_int_equal(r.text.n, 800);
}

/* ---- multi-line bodies ---------------------------------------------------------------------- */

/* The body reader behind the shared driver (data_read.h). */
typedef struct body_reader {
    pc_pop3_body b;
    size_t max_line, max_size;
} body_reader;

static void body_start(void *self)
{
    body_reader *s = self;
    pc_pop3_body_init(&s->b, s->max_line, s->max_size);
}

static size_t body_feed(void *self, const char *in, size_t n, pc_data_emit_fn emit, void *ud,
                        int *done)
{
    return pc_pop3_body_feed(&((body_reader *)self)->b, in, n, emit, ud, done);
}

static void body_finish(void *self, result *r)
{
    body_reader *s = self;
    r->flags = s->b.flags;
    r->size = s->b.size;
}

/* Whole, then byte by byte and every two-piece split: all the same. */
static void read_all(const char *in, size_t n, size_t max_line, size_t max_size, result *r)
{
    body_reader s = {.max_line = max_line, .max_size = max_size};
    reader rd = {body_start, body_feed, body_finish, &s};
    reader_all(&rd, in, n, r);
}

static void expect(const char *in, size_t n, const char *want, size_t wn, int done, size_t consumed,
                   unsigned flags)
{
    result r;
    read_all(in, n, 0, 0, &r);
    assert_int_equal(r.done, done);
    assert_int_equal(r.consumed, done ? consumed : n);
    assert_int_equal(r.flags, flags);
    assert_int_equal(r.out.n, wn);
    assert_int_equal(r.size, wn);
    if (wn)
        assert_memory_equal(r.out.p, want, wn);
    result_free(&r);
}

static void test_body_basic(void **st)
{
    (void)st;
    expect(S(".\r\n"), S(""), 1, 3, 0);
    expect(S("a\r\n.\r\n"), S("a\r\n"), 1, 6, 0);
    expect(S("1 120\r\n2 200\r\n.\r\n"), S("1 120\r\n2 200\r\n"), 1, 17, 0);
    /* the exact end: the next response is not consumed */
    expect(S("x\r\n.\r\n+OK\r\n"), S("x\r\n"), 1, 6, 0);
    expect(S("x\r\n.\r\n.\r\n"), S("x\r\n"), 1, 6, 0);
    /* not finished yet */
    expect(S("abc"), S("abc"), 0, 0, 0);
    expect(S("abc\r\n."), S("abc\r\n"), 0, 0, 0);
    expect(S("abc\r\n.\r"), S("abc\r\n"), 0, 0, 0);
    expect(S(""), S(""), 0, 0, 0);
    /* 8-bit and NUL are flagged, passed */
    expect(S("\xe9\0\r\n.\r\n"), S("\xe9\0\r\n"), 1, 7, PC_DATA_8BIT | PC_DATA_NUL);
}

static void test_body_unstuff(void **st)
{
    (void)st;
    expect(S("..\r\n.\r\n"), S(".\r\n"), 1, 7, 0);
    expect(S("...\r\n.\r\n"), S("..\r\n"), 1, 8, 0);
    expect(S("..x\r\n.y\r\nz.\r\n.\r\n"), S(".x\r\ny\r\nz.\r\n"), 1, 16, 0);
    expect(S("a\r\n..\r\n.\r\n"), S("a\r\n.\r\n"), 1, 10, 0);
    /* a dot at a line start followed by CR then something else: the line ".", a bare CR */
    expect(S(".\rx\r\n.\r\n"), S(".\rx\r\n"), 1, 8, PC_DATA_BARE_CR);
}

static void test_body_smuggling(void **st)
{
    (void)st;
    /* <LF>.<LF>: never an end, passed as-is */
    expect(S("a\n.\nb\r\n.\r\n"), S("a\n.\nb\r\n"), 1, 10, PC_DATA_BARE_LF);
    /* <CR>.<CR> */
    expect(S("a\r.\rb\r\n.\r\n"), S("a\r.\rb\r\n"), 1, 10, PC_DATA_BARE_CR);
    /* <LF>.<CR><LF> and <CR>.<CR><LF>: after a bare LF/CR there is no line start */
    expect(S("a\n.\r\nb\r\n.\r\n"), S("a\n.\r\nb\r\n"), 1, 11, PC_DATA_BARE_LF);
    expect(S("a\r.\r\nb\r\n.\r\n"), S("a\r.\r\nb\r\n"), 1, 11, PC_DATA_BARE_CR);
    /* <CR><LF>.<LF>: the line "." then a bare LF */
    expect(S("a\r\n.\nb\r\n.\r\n"), S("a\r\n.\nb\r\n"), 1, 11, PC_DATA_BARE_LF);
    /* <CR><LF>.<CR>: the line "." then a bare CR */
    expect(S("a\r\n.\rb\r\n.\r\n"), S("a\r\n.\rb\r\n"), 1, 11, PC_DATA_BARE_CR);
    /* a dot after a bare LF is not unstuffed either */
    expect(S("a\n..\r\n.\r\n"), S("a\n..\r\n"), 1, 9, PC_DATA_BARE_LF);
    /* <LF>.<LF> at the very end, then the real end */
    expect(S("\n.\n.\r\n"), S("\n.\n.\r\n"), 0, 0, PC_DATA_BARE_LF);
    expect(S("\n.\n.\r\n\r\n.\r\n"), S("\n.\n.\r\n\r\n"), 1, 11, PC_DATA_BARE_LF);
    /* <CR><CR><LF>.<CR><LF>: the CRLF is real, so that is the end */
    expect(S("a\r\r\n.\r\n"), S("a\r\r\n"), 1, 7, PC_DATA_BARE_CR);
    /* ". CR CR LF" at a line start: "." bare CR, then CRLF */
    expect(S(".\r\r\n.\r\n"), S(".\r\r\n"), 1, 7, PC_DATA_BARE_CR);
    /* all together */
    const char all[] = "x\n.\ny\r.\rz\r\n.\n\r\n.\r\r\n..\r\n.\r\nNEXT";
    const char want[] = "x\n.\ny\r.\rz\r\n.\n\r\n.\r\r\n.\r\n";
    expect(all, sizeof(all) - 1, want, sizeof(want) - 1, 1, sizeof(all) - 1 - 4,
           PC_DATA_BARE_LF | PC_DATA_BARE_CR);
}

static void test_body_after_done(void **st)
{
    (void)st;
    pc_pop3_body b;
    sink s;
    sink_init(&s);
    pc_pop3_body_init(&b, 0, 0);
    int done = 0;
    assert_int_equal(pc_pop3_body_feed(&b, S(".\r\nmore"), sink_emit, &s, &done), 3);
    assert_int_equal(done, 1);
    done = 0;
    assert_int_equal(pc_pop3_body_feed(&b, S("more"), sink_emit, &s, &done), 0);
    assert_int_equal(done, 1);
    assert_int_equal(s.n, 0);
    /* an empty feed before the end */
    pc_pop3_body_init(&b, 0, 0);
    assert_int_equal(pc_pop3_body_feed(&b, "", 0, sink_emit, &s, &done), 0);
    assert_int_equal(done, 0);
    free(s.p);
}

static void test_body_size_limit(void **st)
{
    (void)st;
    result r;
    /* content = 14 bytes; cap 5: the first 5 go out, the rest is read to the end */
    read_all(S("hello\r\nworld\r\n.\r\n+OK\r\n"), 0, 5, &r);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.consumed, 17);
    assert_int_equal(r.size, 14);
    assert_true(r.flags & PC_DATA_TOO_BIG);
    assert_int_equal(r.out.n, 5);
    assert_memory_equal(r.out.p, "hello", 5);
    result_free(&r);
    /* exactly at the cap: not too big */
    read_all(S("hello\r\nworld\r\n.\r\n"), 0, 14, &r);
    assert_false(r.flags & PC_DATA_TOO_BIG);
    assert_int_equal(r.out.n, 14);
    result_free(&r);
    read_all(S("hello\r\nworld\r\n.\r\n"), 0, 13, &r);
    assert_true(r.flags & PC_DATA_TOO_BIG);
    assert_int_equal(r.out.n, 13);
    assert_int_equal(r.done, 1);
    result_free(&r);
    /* stuffing dots do not count */
    read_all(S("..\r\n.\r\n"), 0, 3, &r);
    assert_false(r.flags & PC_DATA_TOO_BIG);
    assert_int_equal(r.size, 3);
    result_free(&r);
}

static void test_body_long_line(void **st)
{
    (void)st;
    result r;
    /* max_line 6: "abcd" CRLF is 6 octets, fine; "abcde" CRLF is 7 */
    read_all(S("abcd\r\n.\r\n"), 6, 0, &r);
    assert_false(r.flags & PC_DATA_LONG_LINE);
    result_free(&r);
    read_all(S("abcde\r\n.\r\n"), 6, 0, &r);
    assert_true(r.flags & PC_DATA_LONG_LINE);
    result_free(&r);
    /* a stuffed dot is not content */
    read_all(S("..bcd\r\n.\r\n"), 6, 0, &r);
    assert_false(r.flags & PC_DATA_LONG_LINE);
    result_free(&r);
    read_all(S("abcd\nabcd\r\nabcd\r\n.\r\n"), 6, 0, &r);
    assert_false(r.flags & PC_DATA_LONG_LINE);
    result_free(&r);
}

static void test_body_emit_failure(void **st)
{
    (void)st;
    pc_pop3_body b;
    sink s;
    sink_init(&s);
    s.fail_after = 0;
    pc_pop3_body_init(&b, 0, 0);
    int done = 0;
    assert_int_equal(pc_pop3_body_feed(&b, S("abc\r\n.\r\n"), sink_emit, &s, &done), (size_t)-1);
    assert_int_equal(done, 0);
    /* failure on a held-back dot */
    sink_init(&s);
    s.fail_after = 0;
    pc_pop3_body_init(&b, 0, 0);
    assert_int_equal(pc_pop3_body_feed(&b, S("."), sink_emit, &s, &done), 0 + 1);
    assert_int_equal(pc_pop3_body_feed(&b, S("\nx"), sink_emit, &s, &done), (size_t)-1);
    free(s.p);
}

/* content -> pc_stuff (the POP3 writer) -> pop3 body reader: the same content back */
static void round_trip(const char *content, size_t n)
{
    sink wire;
    sink_init(&wire);
    pc_stuff w;
    pc_stuff_init(&w);
    assert_int_equal(pc_stuff_feed(&w, content, n, sink_emit, &wire), 0);
    assert_int_equal(pc_stuff_end(&w, sink_emit, &wire), 0);
    result r;
    read_all(wire.p, wire.n, 0, 0, &r);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.consumed, wire.n);
    assert_int_equal(r.flags & (PC_DATA_BARE_CR | PC_DATA_BARE_LF), 0);
    /* canonical content comes back exactly, with a final CRLF added when it had none */
    size_t want = n;
    int add = n > 0 && !(n >= 2 && content[n - 2] == '\r' && content[n - 1] == '\n');
    assert_int_equal(r.out.n, want + (add ? 2 : 0));
    if (n)
        assert_memory_equal(r.out.p, content, n);
    result_free(&r);
    free(wire.p);
}

static void test_round_trip(void **st)
{
    (void)st;
    static const char *const fixed[] = {
        "",
        "a",
        ".",
        "..",
        ".\r\n",
        "a\r\n.\r\n",
        "a\r\n.\r\nb",
        "\r\n.\r\n\r\n..x\r\n",
        "Subject: x\r\n\r\n.\r\n..\r\n...\r\n",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        round_trip(fixed[i], strlen(fixed[i]));
    /* random canonical content over a hostile alphabet */
    static const char *const atoms[] = {".", "\r\n", "x", "\0", "..", "\r\n.\r\n"};
    uint32_t seed = 4242;
    char buf[256];
    for (int iter = 0; iter < 300; iter++) {
        size_t n = 0, k = (size_t)(iter % 30);
        for (size_t j = 0; j < k; j++) {
            seed = seed * 1103515245u + 12345u;
            size_t a = (seed >> 16) % 6;
            size_t al = a == 3 ? 1 : strlen(atoms[a]);
            memcpy(buf + n, atoms[a], al);
            n += al;
        }
        round_trip(buf, n);
    }
}

/* ---- CAPA ----------------------------------------------------------------------------------- */

static void test_capa(void **st)
{
    (void)st;
    pc_pop3_capa c;
    pc_pop3_capa_init(&c);
    const char body[] = "TOP\r\nUSER\r\nuidl\r\nSASL PLAIN scram-sha-256 X-FOO LOGIN\r\n"
                        "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nSTLS\r\n"
                        "EXPIRE 30 USER\r\nLOGIN-DELAY 900\r\nIMPLEMENTATION Shlemazle Plus\r\n"
                        "X-UNKNOWN-CAP yes\r\nSASL GSSAPI\r\n";
    assert_int_equal(pc_pop3_capa_parse(&c, S(body)), 0);
    assert_int_equal(c.caps, PC_POP3_CAP_TOP | PC_POP3_CAP_UIDL | PC_POP3_CAP_USER |
                                 PC_POP3_CAP_SASL | PC_POP3_CAP_STLS | PC_POP3_CAP_PIPELINING |
                                 PC_POP3_CAP_RESP_CODES | PC_POP3_CAP_AUTH_RESP_CODE |
                                 PC_POP3_CAP_EXPIRE | PC_POP3_CAP_LOGIN_DELAY |
                                 PC_POP3_CAP_IMPLEMENTATION);
    assert_int_equal(c.mechs, PC_POP3_MECH_PLAIN | PC_POP3_MECH_SCRAM_SHA_256 | PC_POP3_MECH_LOGIN |
                                  PC_POP3_MECH_GSSAPI);
    assert_int_equal(c.other_mechs, 1);
    assert_int_equal(c.other_caps, 1);
    assert_int_equal(c.bad_lines, 0);
    assert_int_equal(c.expire, 30);
    assert_int_equal(c.expire_user, 1);
    assert_int_equal(c.login_delay, 900);
    assert_int_equal(c.login_delay_user, 0);

    pc_pop3_capa_init(&c);
    assert_int_equal(pc_pop3_capa_parse(&c, S("EXPIRE NEVER\r\nTOP")), 0);
    assert_int_equal(c.expire, PC_POP3_EXPIRE_NEVER);
    assert_int_equal(c.caps, PC_POP3_CAP_EXPIRE | PC_POP3_CAP_TOP);

    /* malformed lines are counted and skipped; the good ones still count */
    pc_pop3_capa_init(&c);
    const char badbody[] = "TOP\r\n\r\nEXPIRE\r\nEXPIRE -1\r\nLOGIN-DELAY NEVER\r\n"
                           "LOGIN-DELAY 5 SOMETIMES\r\nSASL PL@IN\r\n USER\r\nSTLS\nUIDL\r\n"
                           "IMPLEMENTATION \xe9\r\nSASL  PLAIN\r\nPIPELINING x\r\n";
    assert_int_equal(pc_pop3_capa_parse(&c, S(badbody)), -1);
    assert_int_equal(c.bad_lines, 10);
    assert_int_equal(c.caps, PC_POP3_CAP_TOP | PC_POP3_CAP_UIDL);
    assert_int_equal(c.other_caps, 1); /* "PIPELINING x" is not the PIPELINING we know */
    assert_int_equal(c.mechs, 0);

    /* trailing spaces are tolerated */
    pc_pop3_capa_init(&c);
    assert_int_equal(pc_pop3_capa_line(&c, S("SASL PLAIN  ")), 0);
    assert_int_equal(c.mechs, PC_POP3_MECH_PLAIN);

    assert_int_equal(pc_pop3_mech_lookup(S("cram-md5")), PC_POP3_MECH_CRAM_MD5);
    assert_int_equal(pc_pop3_mech_lookup(S("SCRAM-SHA-1-PLUS")), PC_POP3_MECH_SCRAM_SHA_1_PLUS);
    assert_int_equal(pc_pop3_mech_lookup(S("PLAINX")), 0);
    assert_int_equal(pc_pop3_mech_lookup(S("")), 0);
}

/* A CAPA answer read by the body reader, then parsed. */
static void test_capa_from_body(void **st)
{
    (void)st;
    result r;
    read_all(S("SASL PLAIN\r\nSTLS\r\n.\r\n"), 0, 0, &r);
    assert_int_equal(r.done, 1);
    pc_pop3_capa c;
    pc_pop3_capa_init(&c);
    assert_int_equal(pc_pop3_capa_parse(&c, r.out.p, r.out.n), 0);
    assert_int_equal(c.caps, PC_POP3_CAP_SASL | PC_POP3_CAP_STLS);
    result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_simple),      cmocka_unit_test(test_cmd_numbers),
        cmocka_unit_test(test_cmd_user_pass),   cmocka_unit_test(test_cmd_apop_auth),
        cmocka_unit_test(test_cmd_bytes),       cmocka_unit_test(test_line_framing),
        cmocka_unit_test(test_multiline),       cmocka_unit_test(test_resp),
        cmocka_unit_test(test_resp_too_long),   cmocka_unit_test(test_body_basic),
        cmocka_unit_test(test_body_unstuff),    cmocka_unit_test(test_body_smuggling),
        cmocka_unit_test(test_body_after_done), cmocka_unit_test(test_body_size_limit),
        cmocka_unit_test(test_body_long_line),  cmocka_unit_test(test_body_emit_failure),
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_capa),
        cmocka_unit_test(test_capa_from_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
