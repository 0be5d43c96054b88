/* test_nodes.c: the node list of amqp_url (common/nodes.c): one URL and
 * lists, spaces around commas, what is refused (and that no message repeats
 * a URL, which holds a password), labels without credentials, a random start
 * that reaches every node, and the rotation that wraps around. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "nodes.h"

#define SECRET "hunter2"

START_TEST(test_one_url)
{
    struct nodes ns;
    char err[128] = "";
    ck_assert_int_eq(nodes_parse(&ns, "amqp://guest:guest@127.0.0.1:5672/", err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 1);
    ck_assert_str_eq(nodes_url(&ns), "amqp://guest:guest@127.0.0.1:5672/");
    ck_assert_str_eq(nodes_label(&ns), "127.0.0.1:5672");
    nodes_start(&ns, 12345);
    nodes_next(&ns);
    ck_assert_str_eq(nodes_label(&ns), "127.0.0.1:5672");
    nodes_free(&ns);
    nodes_free(&ns); /* a freed list is empty: freeing again is harmless */
}
END_TEST

START_TEST(test_list)
{
    struct nodes ns;
    char err[128] = "";
    const char *list = "amqp://u:" SECRET "@mq-1:5672/vh, amqps://u:" SECRET "@mq-2/ ,\t"
                       "amqp://mq-3:5673";
    ck_assert_int_eq(nodes_parse(&ns, list, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, 3);
    ck_assert_str_eq(ns.urls[0], "amqp://u:" SECRET "@mq-1:5672/vh");
    ck_assert_str_eq(ns.urls[1], "amqps://u:" SECRET "@mq-2/");
    ck_assert_str_eq(ns.urls[2], "amqp://mq-3:5673");
    /* Labels name the node for logs: no user, no password, the default port filled in. */
    ck_assert_str_eq(ns.labels[0], "mq-1:5672");
    ck_assert_str_eq(ns.labels[1], "mq-2:5671");
    ck_assert_str_eq(ns.labels[2], "mq-3:5673");
    ck_assert_uint_eq(ns.cur, 0);
    nodes_free(&ns);
    ck_assert_uint_eq(ns.n, 0);
}
END_TEST

static const char *const bad_lists[] = {
    "",
    " ",
    ",",
    "amqp://u:" SECRET "@a/,",
    ",amqp://u:" SECRET "@a/",
    "amqp://u:" SECRET "@a/,,amqp://u:" SECRET "@b/",
    "amqp://u:" SECRET "@a/ amqp://u:" SECRET "@b/",
    "http://u:" SECRET "@a/",
    "amqp://u:" SECRET "@a/,http://u:" SECRET "@b/",
    "amqp://",
    "amqp://u:" SECRET "@a:99999/",
    "amqp://u:" SECRET "@a:port/",
    "AMQP://a/",
};

START_TEST(test_refused)
{
    const char *list = bad_lists[_i];
    struct nodes ns;
    char err[128] = "";
    ck_assert_msg(nodes_parse(&ns, list, err, sizeof err) == -1, "accepted \"%s\"", list);
    ck_assert_msg(err[0], "no message for \"%s\"", list);
    ck_assert_msg(!strstr(err, SECRET), "message \"%s\" repeats a password", err);
    ck_assert_uint_eq(ns.n, 0);
    ck_assert(!nodes_valid(list));
}
END_TEST

START_TEST(test_too_many)
{
    char list[NODES_MAX * 32 + 64] = "";
    size_t len = 0;
    for (int i = 0; i <= NODES_MAX; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%samqp://mq-%d/", i ? "," : "", i);
    struct nodes ns;
    char err[128];
    ck_assert_int_eq(nodes_parse(&ns, list, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "more than"));
    *strrchr(list, ',') = '\0'; /* NODES_MAX of them */
    ck_assert_int_eq(nodes_parse(&ns, list, err, sizeof err), 0);
    ck_assert_uint_eq(ns.n, NODES_MAX);
    nodes_free(&ns);
}
END_TEST

/* A fleet started together spreads: random starts reach every node about
 * as often. */
START_TEST(test_random_start_spreads)
{
    struct nodes ns;
    char err[128];
    ck_assert_int_eq(nodes_parse(&ns, "amqp://a/,amqp://b/,amqp://c/", err, sizeof err), 0);
    int count[3] = {0};
    uint64_t rnd = 42;
    for (int i = 0; i < 3000; i++) {
        nodes_start(&ns, backoff_rand(&rnd));
        count[ns.cur]++;
    }
    for (int i = 0; i < 3; i++)
        ck_assert_msg(count[i] > 800 && count[i] < 1200, "node %d started %d times of 3000", i,
                      count[i]);
    nodes_free(&ns);
}
END_TEST

/* From any start, next visits every node once before coming back. */
START_TEST(test_rotation_wraps)
{
    struct nodes ns;
    char err[128];
    ck_assert_int_eq(nodes_parse(&ns, "amqp://a/,amqp://b/,amqp://c/", err, sizeof err), 0);
    for (uint64_t start = 0; start < 3; start++) {
        nodes_start(&ns, start);
        ck_assert_uint_eq(ns.cur, start);
        const char *first = nodes_label(&ns);
        int seen[3] = {0};
        for (int i = 0; i < 3; i++) {
            seen[ns.cur]++;
            nodes_next(&ns);
        }
        ck_assert_int_eq(seen[0] + seen[1] + seen[2], 3);
        ck_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
        ck_assert_str_eq(nodes_label(&ns), first);
        nodes_next(&ns);
        ck_assert_uint_eq(ns.cur, (start + 1) % 3);
    }
    ck_assert_str_eq(nodes_url(&ns), "amqp://a/");
    nodes_free(&ns);
}
END_TEST

static Suite *nodes_suite(void)
{
    Suite *s = suite_create("nodes");
    TCase *tc = tcase_create("nodes");
    tcase_add_test(tc, test_one_url);
    tcase_add_test(tc, test_list);
    tcase_add_loop_test(tc, test_refused, 0, sizeof bad_lists / sizeof bad_lists[0]);
    tcase_add_test(tc, test_too_many);
    tcase_add_test(tc, test_random_start_spreads);
    tcase_add_test(tc, test_rotation_wraps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nodes_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
