/* test_urls.c — host names of http/https URLs in text, as the URI lists need them: case folded,
 * user parts and ports skipped, duplicates and address literals left out, the bound respected, and
 * text that only looks like a URL ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "portcullis/urls.h"

typedef struct got {
    char h[70][PC_URL_HOST_MAX + 1];
    size_t n;
} got;

static void cb(void *ud, const char *host, size_t len)
{
    got *g = ud;
    assert_int_equal(strlen(host), len);
    snprintf(g->h[g->n++], sizeof(g->h[0]), "%s", host);
}

static void test_hosts(void **state)
{
    (void)state;
    const char *t =
        "Visit HTTP://WWW.Example.COM/path?x=1 or <a href=\"https://user:pw@shop.test:8443/"
        "\">here</a>, again http://www.example.com. and http://192.0.2.1/ and "
        "xhttp://not.this.test/ and https://evil.example.co.uk/x http://nodot/ "
        "http://trailing.dot.test./";
    got g = {.n = 0};
    assert_int_equal(pc_url_hosts(t, strlen(t), 10, cb, &g), 4);
    assert_string_equal(g.h[0], "www.example.com");
    assert_string_equal(g.h[1], "shop.test");
    assert_string_equal(g.h[2], "evil.example.co.uk");
    assert_string_equal(g.h[3], "trailing.dot.test");
}

static void test_bounds(void **state)
{
    (void)state;
    char text[20000];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "http://h%d.example.test/ ", i);
    got g = {.n = 0};
    assert_int_equal(pc_url_hosts(text, n, 5, cb, &g), 5);
    g.n = 0;
    assert_int_equal(pc_url_hosts(text, n, 1000, cb, &g), 64); /* never more than 64 */
    /* cut off anywhere: no read past the end */
    for (size_t cut = 0; cut < 40; cut++) {
        g.n = 0;
        pc_url_hosts(text, cut, 10, cb, &g);
        assert_true(g.n <= 2);
    }
    /* a host too long to be a name is ignored */
    char longhost[600] = "http://";
    memset(longhost + 7, 'a', 500);
    memcpy(longhost + 507, ".test/", 7);
    g.n = 0;
    assert_int_equal(pc_url_hosts(longhost, strlen(longhost), 10, cb, &g), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
