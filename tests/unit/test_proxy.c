/* test_proxy.c — PROXY protocol v1 and v2: valid headers fed whole and byte by byte (every prefix
 * must be NEED_MORE), strict v1 addresses and ports, v2 families, commands, lengths and TLVs,
 * truncation, and the v2 builder parsed back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "parse/parse.h"
#include "parse/proxy.h"

static const unsigned char SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Parses whole; a valid header must also give NEED_MORE for each of its proper prefixes. */
static int parse(const void *buf, size_t len, pc_proxy_info *info, size_t *used)
{
    int rc = pc_proxy_parse(buf, len, info, used);
    if (rc == PC_OK) {
        for (size_t k = 0; k < *used; k++) {
            pc_proxy_info tmp;
            size_t u2 = 0;
            int r2 = pc_proxy_parse(buf, k, &tmp, &u2);
            if (r2 != PC_NEED_MORE)
                fail_msg("prefix of %zu bytes gave %d", k, r2);
        }
    }
    return rc;
}

static int sparse(const char *s, pc_proxy_info *info, size_t *used)
{
    return parse(s, strlen(s), info, used);
}

static void check_v4(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char buf[INET_ADDRSTRLEN];
    assert_int_equal(sin->sin_family, AF_INET);
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, addr);
    assert_int_equal(ntohs(sin->sin_port), port);
}

static void check_v6(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN];
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
    assert_string_equal(buf, addr);
    assert_int_equal(ntohs(sin6->sin6_port), port);
}

static void test_v1_valid(void **st)
{
    (void)st;
    pc_proxy_info info;
    size_t used = 0;
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO x\r\n";
    assert_int_equal(sparse(h, &info, &used), PC_OK);
    assert_int_equal(used, strlen(h) - 8);
    assert_int_equal(info.version, 1);
    assert_int_equal(info.local, 0);
    check_v4(&info.src, "192.0.2.1", 56324);
    check_v4(&info.dst, "198.51.100.2", 25);

    h = "PROXY TCP6 2001:db8::1 ::ffff:192.0.2.9 0 65535\r\n";
    assert_int_equal(sparse(h, &info, &used), PC_OK);
    assert_int_equal(used, strlen(h));
    check_v6(&info.src, "2001:db8::1", 0);
    check_v6(&info.dst, "::ffff:192.0.2.9", 65535);

    assert_int_equal(sparse("PROXY UNKNOWN\r\n", &info, &used), PC_OK);
    assert_int_equal(info.local, 1);
    assert_int_equal(used, 15);
    h = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(sparse(h, &info, &used), PC_OK);
    assert_int_equal(info.local, 1);
    assert_int_equal(used, strlen(h));

    /* the longest legal v1 line: 107 bytes */
    char big[PC_PROXY_V1_MAX + 8];
    int n = snprintf(big, sizeof(big), "PROXY TCP6 %s %s 65535 65535\r\n",
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_int_equal(n, 104);
    assert_int_equal(sparse(big, &info, &used), PC_OK);
}

static void test_v1_invalid(void **st)
{
    (void)st;
    pc_proxy_info info;
    size_t used;
    static const char *bad[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 +5 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2  5 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5 25 \r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5 65536\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5 025\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5 -1\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5 0x19\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5 25 6\r\n",
        "PROXY TCP4 192.0.2.01 198.51.100.2 5 25\r\n",
        "PROXY TCP4 192.0.2 198.51.100.2 5 25\r\n",
        "PROXY TCP4 192.0.2.256 198.51.100.2 5 25\r\n",
        "PROXY TCP4 ::1 198.51.100.2 5 25\r\n",
        "PROXY TCP6 192.0.2.1 ::1 5 25\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 5 25\r\n",
        "PROXY TCP5 192.0.2.1 198.51.100.2 5 25\r\n",
        "PROXY UDP4 192.0.2.1 198.51.100.2 5 25\r\n",
        "PROXY tcp4 192.0.2.1 198.51.100.2 5 25\r\n",
        "proxy TCP4 192.0.2.1 198.51.100.2 5 25\r\n",
        "PROXY  TCP4 192.0.2.1 198.51.100.2 5 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 5 25\n",
        "PROXY TCP4 192.0.2.1\r198.51.100.2 5 25\r\n",
        "PROXY \r\n",
        "PROXY\r\n",
        "EHLO mx.example.org\r\n",
        "GET / HTTP/1.0\r\n",
        "\r\n\r\n\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sparse(bad[i], &info, &used) != PC_INVALID)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33, &info, &used), PC_INVALID);
    /* no CRLF within 107 bytes */
    char big[300];
    memset(big, '1', sizeof(big));
    memcpy(big, "PROXY TCP4 ", 11);
    assert_int_equal(pc_proxy_parse((unsigned char *)big, sizeof(big), &info, &used), PC_INVALID);
    assert_int_equal(pc_proxy_parse((unsigned char *)big, PC_PROXY_V1_MAX, &info, &used),
                     PC_INVALID);
    assert_int_equal(pc_proxy_parse((unsigned char *)big, PC_PROXY_V1_MAX - 1, &info, &used),
                     PC_NEED_MORE);
}

static void test_need_more(void **st)
{
    (void)st;
    pc_proxy_info info;
    size_t used;
    assert_int_equal(pc_proxy_parse((const unsigned char *)"", 0, &info, &used), PC_NEED_MORE);
    assert_int_equal(pc_proxy_parse((const unsigned char *)"PRO", 3, &info, &used), PC_NEED_MORE);
    assert_int_equal(pc_proxy_parse((const unsigned char *)"PROXY TCP4 1.2", 14, &info, &used),
                     PC_NEED_MORE);
    assert_int_equal(pc_proxy_parse(SIG, 5, &info, &used), PC_NEED_MORE);
    assert_int_equal(pc_proxy_parse(SIG, 12, &info, &used), PC_NEED_MORE);
    assert_int_equal(pc_proxy_parse((const unsigned char *)"PRX", 3, &info, &used), PC_INVALID);
}

static size_t v2(unsigned char *b, unsigned char vc, unsigned char fam, size_t alen)
{
    memcpy(b, SIG, 12);
    b[12] = vc;
    b[13] = fam;
    b[14] = (unsigned char)(alen >> 8);
    b[15] = (unsigned char)alen;
    for (size_t i = 0; i < alen; i++)
        b[16 + i] = (unsigned char)(i + 1);
    return 16 + alen;
}

static void test_v2(void **st)
{
    (void)st;
    unsigned char b[2048];
    pc_proxy_info info;
    size_t used, n;

    n = v2(b, 0x21, 0x11, 12);
    memcpy(b + n, "EHLO", 4);
    assert_int_equal(parse(b, n + 4, &info, &used), PC_OK);
    assert_int_equal(used, 28);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.local, 0);
    check_v4(&info.src, "1.2.3.4", 0x090a);
    check_v4(&info.dst, "5.6.7.8", 0x0b0c);

    n = v2(b, 0x21, 0x21, 36);
    assert_int_equal(parse(b, n, &info, &used), PC_OK);
    assert_int_equal(used, 52);
    check_v6(&info.src, "102:304:506:708:90a:b0c:d0e:f10", 0x2122);
    check_v6(&info.dst, "1112:1314:1516:1718:191a:1b1c:1d1e:1f20", 0x2324);

    /* TLVs after the addresses are skipped */
    n = v2(b, 0x21, 0x11, 12 + 7);
    assert_int_equal(parse(b, n, &info, &used), PC_OK);
    assert_int_equal(used, 35);
    /* LOCAL: addresses ignored, whatever the family */
    n = v2(b, 0x20, 0x00, 0);
    assert_int_equal(parse(b, n, &info, &used), PC_OK);
    assert_int_equal(info.local, 1);
    assert_int_equal(used, 16);
    n = v2(b, 0x20, 0x11, 12);
    assert_int_equal(parse(b, n, &info, &used), PC_OK);
    assert_int_equal(info.local, 1);
    assert_int_equal(used, 28);
    /* the largest accepted header */
    n = v2(b, 0x21, 0x11, PC_PROXY_V2_MAX - 16);
    assert_int_equal(pc_proxy_parse(b, n, &info, &used), PC_OK);
    assert_int_equal(used, PC_PROXY_V2_MAX);
}

static void test_v2_invalid(void **st)
{
    (void)st;
    unsigned char b[2048];
    pc_proxy_info info;
    size_t used, n;
    static const struct {
        unsigned char vc, fam;
        size_t alen;
    } bad[] = {
        {0x11, 0x11, 12},                   /* version 1 */
        {0x31, 0x11, 12},                   /* version 3 */
        {0x22, 0x11, 12},                   /* unknown command */
        {0x21, 0x12, 12},                   /* UDP over IPv4 */
        {0x21, 0x22, 36},                   /* UDP over IPv6 */
        {0x21, 0x31, 216},                  /* UNIX stream */
        {0x21, 0x00, 0},                    /* PROXY with AF_UNSPEC */
        {0x21, 0x11, 11},                   /* too short for IPv4 */
        {0x21, 0x21, 35},                   /* too short for IPv6 */
        {0x21, 0x11, PC_PROXY_V2_MAX - 15}, /* too big */
        {0x20, 0x00, 0xffff},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = v2(b, bad[i].vc, bad[i].fam, bad[i].alen > 1500 ? 0 : bad[i].alen);
        b[14] = (unsigned char)(bad[i].alen >> 8);
        b[15] = (unsigned char)bad[i].alen;
        if (pc_proxy_parse(b, n, &info, &used) != PC_INVALID)
            fail_msg("accepted v2 case %zu", i);
    }
    /* a damaged signature */
    n = v2(b, 0x21, 0x11, 12);
    b[7] = 'q';
    assert_int_equal(pc_proxy_parse(b, n, &info, &used), PC_INVALID);
    /* truncated: all prefixes need more */
    n = v2(b, 0x21, 0x21, 36 + 20);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(pc_proxy_parse(b, k, &info, &used), PC_NEED_MORE);
    assert_int_equal(pc_proxy_parse(b, n, &info, &used), PC_OK);
}

static void test_v2_build(void **st)
{
    (void)st;
    unsigned char b[128];
    pc_proxy_info info;
    size_t used;
    struct sockaddr_in s4 = {0}, d4 = {0};
    s4.sin_family = d4.sin_family = AF_INET;
    inet_pton(AF_INET, "203.0.113.5", &s4.sin_addr);
    inet_pton(AF_INET, "192.0.2.25", &d4.sin_addr);
    s4.sin_port = htons(40000);
    d4.sin_port = htons(25);
    size_t n = pc_proxy_v2_build(b, sizeof(b), (struct sockaddr *)&s4, (struct sockaddr *)&d4);
    assert_int_equal(n, 28);
    assert_memory_equal(b, SIG, 12);
    assert_int_equal(b[12], 0x21);
    assert_int_equal(b[13], 0x11);
    assert_int_equal(parse(b, n, &info, &used), PC_OK);
    assert_int_equal(used, n);
    check_v4(&info.src, "203.0.113.5", 40000);
    check_v4(&info.dst, "192.0.2.25", 25);
    assert_int_equal(pc_proxy_v2_build(b, 27, (struct sockaddr *)&s4, (struct sockaddr *)&d4), 0);

    struct sockaddr_in6 s6 = {0}, d6 = {0};
    s6.sin6_family = d6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::5", &s6.sin6_addr);
    inet_pton(AF_INET6, "2001:db8::25", &d6.sin6_addr);
    s6.sin6_port = htons(1);
    d6.sin6_port = htons(587);
    n = pc_proxy_v2_build(b, sizeof(b), (struct sockaddr *)&s6, (struct sockaddr *)&d6);
    assert_int_equal(n, 52);
    assert_int_equal(parse(b, n, &info, &used), PC_OK);
    check_v6(&info.src, "2001:db8::5", 1);
    check_v6(&info.dst, "2001:db8::25", 587);
    assert_int_equal(pc_proxy_v2_build(b, 51, (struct sockaddr *)&s6, (struct sockaddr *)&d6), 0);

    /* mixed or unsupported families */
    assert_int_equal(
        pc_proxy_v2_build(b, sizeof(b), (struct sockaddr *)&s4, (struct sockaddr *)&d6), 0);
    struct sockaddr_un u = {0};
    u.sun_family = AF_UNIX;
    assert_int_equal(pc_proxy_v2_build(b, sizeof(b), (struct sockaddr *)&u, (struct sockaddr *)&u),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_valid),   cmocka_unit_test(test_v1_invalid),
        cmocka_unit_test(test_need_more),  cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_invalid), cmocka_unit_test(test_v2_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
