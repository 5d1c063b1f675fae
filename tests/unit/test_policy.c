/* test_policy.c — the policy layer (policies/policy.c) as tables: policy files that load or fail
 * with their exact "FILE:LINE: problem", cases and the policy that must apply to each (the
 * specificity rule of policy.h step by step), the equal-priority check of -t, and explain's
 * file:line for each setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/policy.h"

static char err[512];

static pc_policy_set *load(const char *text)
{
    err[0] = '\0';
    return pc_policy_load_mem("p.yaml", text, strlen(text), err, sizeof(err));
}

/* ---- loading: bad files and their errors ---- */

static const struct {
    const char *text, *error;
} bad[] = {
    {"name: x\n", "p.yaml:1: a policy file is a list of policies"},
    {"- name: a\n  colour: red\n", "p.yaml:2: colour: unknown key"},
    {"- name: a\n  match:\n    recipent: x.test\n", "p.yaml:3: match.recipent: unknown key"},
    {"- name: a\n  scores: { tag: 5, spam: 3 }\n", "p.yaml:2: scores.spam: unknown key"},
    {"- priority: 3\n", "p.yaml:1: name: required"},
    {"- name: a\n- name: a\n", "p.yaml:2: name: a is already the name of the policy at p.yaml:1"},
    {"- name: a\n  match: { direction: outbound }\n",
     "p.yaml:2: direction: expected one of inbound, submission"},
    {"- name: a\n  match: { recipient: [\"bad address@x\"] }\n", "p.yaml:2: recipient[0]: "},
    {"- name: a\n  match:\n    network: 10.0.0.0/33\n", "p.yaml:3: network"},
    {"- name: a\n  scores: { tag: 5, reject: 3 }\n",
     "p.yaml:2: scores.reject: must be greater than tag"},
    {"- name: a\n  message_size: lots\n", "p.yaml:2: message_size"},
    {"- name: a\n  priority: 1.5\n", "p.yaml:2: priority: a whole number"},
    {"- name: a\n  deny: { recipients: [x.test] }\n", "p.yaml:2: deny.recipients: unknown key"},
    {"- name: a\n  match: { user: [] }\n", "p.yaml:2: user: expected at least one value"},
    {"- name: a\n  allow: [x]\n", "p.yaml:2: allow: expected a map"},
};

static void test_bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pc_policy_set *s = load(bad[i].text);
        if (s || !strstr(err, bad[i].error))
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, bad[i].error, s ? "(loaded)" : err);
    }
}

/* ---- matching: one set, many cases ---- */

static const char *const SET =
    "- name: default\n"                                                /* 1 */
    "  scores: { tag: 5, reject: 10 }\n"                               /* 2 */
    "- name: example-domain\n"                                         /* 3 */
    "  match: { recipient: [example.test] }\n"                         /* 4 */
    "  scores: { reject: 8 }\n"                                        /* 5 */
    "- name: ceo\n"                                                    /* 6 */
    "  match: { recipient: [ceo@example.test] }\n"                     /* 7 */
    "- name: partner-to-example\n"                                     /* 8 */
    "  match: { recipient: [example.test], sender: [partner.test] }\n" /* 9 */
    "- name: submission\n"                                             /* 10 */
    "  match: { direction: submission }\n"                             /* 11 */
    "  message_size: 20M\n"                                            /* 12 */
    "- name: lan\n"                                                    /* 13 */
    "  match: { network: [10.0.0.0/8] }\n"                             /* 14 */
    "- name: lan-servers\n"                                            /* 15 */
    "  match: { network: [10.1.0.0/16] }\n"                            /* 16 */
    "- name: edge-listener\n"                                          /* 17 */
    "  priority: 5\n"                                                  /* 18 */
    "  match: { listener: edge }\n"                                    /* 19 */
    "- name: bob\n"                                                    /* 20 */
    "  match: { user: [bob], direction: submission }\n";               /* 21 */

static struct sockaddr_in ip4(const char *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, s, &a.sin_addr);
    return a;
}

static const struct {
    const char *listener;
    pc_direction dir;
    const char *from, *rcpt, *user, *ip, *want;
} cases[] = {
    /* nothing more specific: the default (no match keys) */
    {"mx", PC_DIR_INBOUND, "a@other.test", "x@else.test", NULL, "192.0.2.1", "default"},
    /* a domain beats the default (one key against none) */
    {"mx", PC_DIR_INBOUND, "a@other.test", "x@example.test", NULL, "192.0.2.1", "example-domain"},
    /* an address beats a domain (same number of keys) */
    {"mx", PC_DIR_INBOUND, "a@other.test", "CEO@Example.TEST", NULL, "192.0.2.1", "ceo"},
    /* two keys beat one, even when one of them is a domain and the other policy's an address */
    {"mx", PC_DIR_INBOUND, "a@partner.test", "x@example.test", NULL, "192.0.2.1",
     "partner-to-example"},
    {"mx", PC_DIR_INBOUND, "a@partner.test", "ceo@example.test", NULL, "192.0.2.1",
     "partner-to-example"},
    /* the null sender matches no sender list */
    {"mx", PC_DIR_INBOUND, "", "x@example.test", NULL, "192.0.2.1", "example-domain"},
    /* the longer prefix wins */
    {"mx", PC_DIR_INBOUND, "a@o.test", "x@else.test", NULL, "10.1.2.3", "lan-servers"},
    {"mx", PC_DIR_INBOUND, "a@o.test", "x@else.test", NULL, "10.2.2.3", "lan"},
    /* equal specificity (one key each, neither an address, a domain or a network): priority */
    {"edge", PC_DIR_SUBMISSION, "a@o.test", "x@else.test", NULL, "192.0.2.1", "edge-listener"},
    /* a recipient's domain is more specific than a listener, whatever the priority */
    {"edge", PC_DIR_INBOUND, "a@o.test", "x@example.test", NULL, "192.0.2.1", "example-domain"},
    /* equal specificity and priority: file order (example-domain comes before submission) */
    {"mx", PC_DIR_SUBMISSION, "a@o.test", "x@example.test", NULL, "192.0.2.1", "example-domain"},
    {"mx", PC_DIR_SUBMISSION, "a@o.test", "x@else.test", NULL, "192.0.2.1", "submission"},
    /* user and direction: two keys */
    {"mx", PC_DIR_SUBMISSION, "bob@o.test", "x@example.test", "bob", "192.0.2.1", "bob"},
    {"mx", PC_DIR_INBOUND, "bob@o.test", "x@else.test", "bob", "192.0.2.1", "default"},
};

static void test_match_table(void **state)
{
    (void)state;
    pc_policy_set *s = load(SET);
    assert_non_null(s);
    assert_int_equal(pc_policy_count(s), 9);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_in a = ip4(cases[i].ip);
        pc_policy_case c = {.listener = cases[i].listener,
                            .direction = cases[i].dir,
                            .sender = cases[i].from,
                            .rcpt = cases[i].rcpt,
                            .user = cases[i].user,
                            .ip = (struct sockaddr *)&a};
        const pc_policy *p = pc_policy_match(s, &c);
        if (!p || strcmp(p->name, cases[i].want))
            fail_msg("case %zu: want %s, got %s", i, cases[i].want, p ? p->name : "(none)");
    }
    pc_policy_free(s);
}

static void test_no_policy_matches(void **state)
{
    (void)state;
    pc_policy_set *s = load("- name: only\n  match: { recipient: [x.test] }\n");
    assert_non_null(s);
    pc_policy_case c = {
        .listener = "mx", .direction = PC_DIR_INBOUND, .sender = "", .rcpt = "a@y.test"};
    assert_null(pc_policy_match(s, &c));
    pc_policy_free(s);
    assert_non_null(s = load("")); /* an empty file is an empty list */
    assert_int_equal(pc_policy_count(s), 0);
    pc_policy_free(s);
}

/* ---- the check of -t ---- */

static const struct {
    const char *text, *error; /* error NULL: valid */
} checks[] = {
    {"- name: a\n- name: b\n", "p.yaml:2: policy b and policy a (p.yaml:1) have the same priority"},
    {"- name: a\n- name: b\n  priority: 1\n", NULL},
    {"- name: a\n  match: { recipient: [x.test] }\n- name: b\n  match: { recipient: [X.test, "
     "y.test] }\n",
     "p.yaml:3: policy b and policy a"},
    /* an address and a domain never tie: the address wins */
    {"- name: a\n  match: { recipient: [u@x.test] }\n- name: b\n  match: { recipient: [x.test] }\n",
     NULL},
    /* different domains never match the same recipient */
    {"- name: a\n  match: { recipient: [x.test] }\n- name: b\n  match: { recipient: [y.test] }\n",
     NULL},
    /* one key each, different keys: a recipient in x.test from s.test matches both equally */
    {"- name: a\n  match: { recipient: [x.test] }\n- name: b\n  match: { sender: [s.test] }\n",
     NULL},
    {"- name: a\n  match: { listener: mx }\n- name: b\n  match: { user: [bob] }\n",
     "p.yaml:3: policy b and policy a"},
    {"- name: a\n  match: { direction: inbound }\n- name: b\n  match: { direction: submission }\n",
     NULL},
    {"- name: a\n  match: { network: 10.0.0.0/8 }\n- name: b\n  match: { network: 10.0.0.0/16 }\n",
     NULL},
    {"- name: a\n  match: { network: 10.0.0.0/8 }\n- name: b\n  match: { network: [10.9.0.0/8] }\n",
     "p.yaml:3: policy b and policy a"},
    {"- name: a\n  match: { listener: nosuch }\n",
     "p.yaml:2: policy a: match.listener: no listener is named nosuch"},
};

static void test_check_table(void **state)
{
    (void)state;
    const char *const listeners[] = {"mx", "submission"};
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        pc_policy_set *s = load(checks[i].text);
        if (!s)
            fail_msg("case %zu: does not load: %s", i, err);
        err[0] = '\0';
        int r = pc_policy_check(s, listeners, 2, err, sizeof(err));
        if (checks[i].error ? r == 0 || !strstr(err, checks[i].error) : r != 0)
            fail_msg("case %zu: want %s, got %s", i, checks[i].error ? checks[i].error : "valid",
                     r ? err : "valid");
        pc_policy_free(s);
    }
}

/* ---- explain ---- */

static void test_explain(void **state)
{
    (void)state;
    pc_policy_set *s = load(SET);
    assert_non_null(s);
    struct sockaddr_in a = ip4("192.0.2.1");
    pc_policy_case c = {.listener = "mx",
                        .direction = PC_DIR_INBOUND,
                        .sender = "a@o.test",
                        .rcpt = "x@example.test",
                        .ip = (struct sockaddr *)&a};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    const pc_policy *p = pc_policy_explain(s, &c, f);
    fclose(f);
    assert_non_null(p);
    assert_string_equal(p->name, "example-domain");
    assert_non_null(strstr(buf, "policy: example-domain (p.yaml:3)\n"));
    assert_non_null(strstr(buf, "  scores.reject: 8 (p.yaml:5)\n"));
    assert_non_null(strstr(buf, "  scores.tag: (not set: the listener's)\n"));
    assert_non_null(strstr(buf, "  also matched: default (p.yaml:1), lost: more match keys\n"));
    free(buf);
    pc_policy_free(s);
}

static void test_settings(void **state)
{
    (void)state;
    pc_policy_set *s =
        load("- name: a\n"
             "  allow: { senders: [friend@x.test, y.test], networks: [192.0.2.0/24] }\n"
             "  deny: { senders: [\"@spam.test\"] }\n"
             "  message_size: 1M\n");
    assert_non_null(s);
    const pc_policy *p = pc_policy_at(s, 0);
    assert_int_equal(p->message_size, 1024 * 1024);
    assert_true(pc_policy_addr_in(&p->allow_senders, "Friend@X.test"));
    assert_true(pc_policy_addr_in(&p->allow_senders, "anyone@y.test"));
    assert_false(pc_policy_addr_in(&p->allow_senders, "other@x.test"));
    assert_false(pc_policy_addr_in(&p->allow_senders, ""));
    assert_true(pc_policy_addr_in(&p->deny_senders, "a@spam.test"));
    assert_false(pc_policy_addr_in(&p->deny_senders, "a@notspam.test"));
    assert_false(p->has_scores);
    assert_int_equal(p->set_at[PC_PSET_MESSAGE_SIZE]->line, 4);
    pc_policy_free(s);
}

static void test_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/pc_test_policy.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300];
    const char *files[][2] = {{"20-b.yaml", "- name: b\n  priority: 1\n"},
                              {"10-a.yaml", "- name: a\n"},
                              {"notes.txt", "not yaml: ["}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(files[i][1], f);
        fclose(f);
    }
    pc_policy_set *s = pc_policy_load_dir(dir, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(pc_policy_count(s), 2);
    assert_string_equal(pc_policy_at(s, 0)->name, "a"); /* files in name order */
    assert_non_null(strstr(pc_policy_at(s, 1)->at->file, "20-b.yaml"));
    pc_policy_free(s);
    snprintf(path, sizeof(path), "%s/30-c.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("- name: c\n  match: { sender: [] }\n", f);
    fclose(f);
    assert_null(pc_policy_load_dir(dir, err, sizeof(err)));
    assert_non_null(strstr(err, "30-c.yaml:2: sender: expected at least one value"));
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        unlink(path);
    }
    unlink(path), snprintf(path, sizeof(path), "%s/30-c.yaml", dir), unlink(path);
    rmdir(dir);
    assert_null(pc_policy_load_dir("/nonexistent/policies", err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_no_policy_matches),
        cmocka_unit_test(test_check_table),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
