/* test_history.c: the routes' history ring behind the status page's charts
 * (ingress/history.c): the first record is a baseline, rates per second
 * from the counters' differences over each sample's real length, a full
 * ring that forgets its oldest sample, counters that wrap, an unknown
 * backlog, and one route's document. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"

#define T0 1795000000000LL /* some real-time millisecond */

static const char *const NAMES[] = {"echo", "slow"};

/* render returns h's document (of route, NULL: all), which the caller frees. */
static char *render(struct history *h, const char *route)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(history_render(h, route, &b), 0);
    return b.data;
}

static void has(const char *doc, const char *part)
{
    if (!strstr(doc, part)) ck_abort_msg("%s is not in %s", part, doc);
}

START_TEST(test_baseline_then_rates)
{
    struct history *h = history_new(NAMES, 2, 10, 5000);
    ck_assert_ptr_nonnull(h);
    ck_assert(history_due(h, 0));
    ck_assert(!history_started(h));
    struct history_counts c[2] = {{100, 50, 5, -1}, {0, 0, 0, 3}};
    history_record(h, 1000, T0, c);
    ck_assert(history_started(h));
    char *doc = render(h, NULL);
    /* The baseline is no sample: what came before it is not this period's. */
    has(doc, "\"period_s\":5,\"capacity\":10,\"times\":[],\"seconds\":[],\"routes\":[{\"route\":"
             "\"echo\",\"accepted_per_s\":[],");
    free(doc);
    ck_assert(!history_due(h, 5999));
    ck_assert(history_due(h, 6000));
    c[0] = (struct history_counts){110, 55, 7, 7};
    c[1] = (struct history_counts){0, 0, 0, 3};
    history_record(h, 6000, T0 + 5000, c);
    doc = render(h, NULL);
    has(doc, "\"times\":[\"2026-11-18T11:06:45.000Z\"],\"seconds\":[5.000]");
    has(doc, "{\"route\":\"echo\",\"accepted_per_s\":[2],\"completed_per_s\":[1],"
             "\"failed_per_s\":[0.4],\"backlog\":[7]}");
    has(doc, "{\"route\":\"slow\",\"accepted_per_s\":[0],\"completed_per_s\":[0],"
             "\"failed_per_s\":[0],\"backlog\":[3]}");
    free(doc);
    /* A tick a little late makes a longer sample, due again on the grid. */
    c[0].accepted += 24;
    ck_assert(!history_due(h, 10999));
    ck_assert(history_due(h, 11000));
    history_record(h, 12000, T0 + 11000, c);
    ck_assert(!history_due(h, 15999));
    ck_assert(history_due(h, 16000));
    /* A tick a period late spreads the period's requests over its real
     * length and starts the grid again. */
    c[0].accepted += 30;
    history_record(h, 22000, T0 + 21000, c);
    ck_assert(!history_due(h, 26999));
    ck_assert(history_due(h, 27000));
    doc = render(h, "echo");
    has(doc, "\"seconds\":[5.000,6.000,10.000]");
    has(doc, "\"accepted_per_s\":[2,4,3]");
    ck_assert_ptr_null(strstr(doc, "slow"));
    free(doc);
    history_free(h);
}
END_TEST

START_TEST(test_ring_keeps_the_newest)
{
    struct history *h = history_new(NAMES, 1, 4, 1000);
    ck_assert_ptr_nonnull(h);
    struct history_counts c = {0, 0, 0, 0};
    history_record(h, 0, T0, &c);
    /* Ten samples, the k-th with k accepted and a backlog of k: a ring of
     * four keeps 7..10, oldest first. */
    for (uint32_t k = 1; k <= 10; k++) {
        c.accepted += k;
        c.backlog = k;
        history_record(h, (int64_t)k * 1000, T0 + k * 1000, &c);
    }
    char *doc = render(h, NULL);
    has(doc, "\"accepted_per_s\":[7,8,9,10]");
    has(doc, "\"backlog\":[7,8,9,10]");
    free(doc);
    history_free(h);
}
END_TEST

START_TEST(test_wrap_and_unknown_backlog)
{
    struct history *h = history_new(NAMES, 1, 4, 1000);
    ck_assert_ptr_nonnull(h);
    struct history_counts c = {UINT32_MAX - 1, UINT32_MAX, 0, 5};
    history_record(h, 0, T0, &c);
    c = (struct history_counts){3, 1, 0, -1};
    history_record(h, 1000, T0 + 1000, &c);
    char *doc = render(h, NULL);
    has(doc, "\"accepted_per_s\":[5],\"completed_per_s\":[2],\"failed_per_s\":[0],"
             "\"backlog\":[null]");
    free(doc);
    history_free(h);
}
END_TEST

START_TEST(test_unknown_route_and_bad_shape)
{
    struct history *h = history_new(NAMES, 2, 4, 1000);
    ck_assert_ptr_nonnull(h);
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(history_render(h, "nope", &b), -ENOENT);
    buf_free(&b);
    history_free(h);
    history_free(NULL);
    ck_assert_ptr_null(history_new(NAMES, 2, 1, 1000));
    ck_assert_ptr_null(history_new(NAMES, 2, 4, 0));
}
END_TEST

static Suite *history_suite(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("history");
    tcase_add_test(tc, test_baseline_then_rates);
    tcase_add_test(tc, test_ring_keeps_the_newest);
    tcase_add_test(tc, test_wrap_and_unknown_backlog);
    tcase_add_test(tc, test_unknown_route_and_bad_shape);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(history_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
