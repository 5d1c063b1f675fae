/* fuzz_policy.c — libFuzzer target for the policy layer: each input is one policy file (YAML),
 * loaded, checked as -t checks it, then matched and explained for a few fixed cases; any result is
 * fine, a crash, a leak or undefined behaviour is not. */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policies/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    char err[512];
    if (!null && !(null = fopen("/dev/null", "w")))
        return 0;
    pc_policy_set *s = pc_policy_load_mem("fuzz.yaml", data, size, err, sizeof(err));
    if (!s)
        return 0;
    const char *const listeners[] = {"mx", "submission"};
    (void)pc_policy_check(s, listeners, 2, err, sizeof(err));
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET, "10.1.2.3", &v4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
    const pc_policy_case cases[] = {
        {"mx", PC_DIR_INBOUND, "a@example.test", "b@example.test", NULL, (struct sockaddr *)&v4},
        {"submission", PC_DIR_SUBMISSION, "", "postmaster", "bob", (struct sockaddr *)&v6},
        {NULL, PC_DIR_ANY, NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        (void)pc_policy_match(s, &cases[i]);
        (void)pc_policy_explain(s, &cases[i], null);
    }
    pc_policy_free(s);
    return 0;
}
