/* test_ratelimit.c: unit tests for token buckets and AIMD (common/ratelimit.c):
 * the burst + rate * T bound over every window of a simulated minute, debts
 * left by batches, the wait until a token, and AIMD's cut, floor and climb. */
#include "ratelimit.h"

#include <check.h>
#include <stdlib.h>

#define S 1000000LL /* one second in microseconds */

START_TEST(test_bucket_starts_full)
{
    struct tbucket b;
    tbucket_init(&b, 10, 5, 0);
    for (int i = 0; i < 5; i++)
        ck_assert(tbucket_take(&b, 1, 0));
    ck_assert(!tbucket_take(&b, 1, 0));
    ck_assert_int_eq(tbucket_wait_us(&b, 1, 0), S / 10);
    ck_assert(!tbucket_take(&b, 1, S / 10 - 1));
    ck_assert(tbucket_take(&b, 1, S / 10));
}
END_TEST

START_TEST(test_bucket_default_burst)
{
    struct tbucket b;
    tbucket_init(&b, 20, 0, 0);
    ck_assert(b.burst == 20);
    tbucket_init(&b, 0.5, 0, 0);
    ck_assert(b.burst == 1);
    tbucket_init(&b, 3, 0.2, 0);
    ck_assert(b.burst == 1);
}
END_TEST

START_TEST(test_bucket_unlimited)
{
    struct tbucket b;
    tbucket_init(&b, 0, 0, 0);
    for (int i = 0; i < 100000; i++)
        ck_assert(tbucket_take(&b, 1, 0));
    ck_assert_int_eq(tbucket_wait_us(&b, 1000, 0), 0);
}
END_TEST

/* Greedy takes every millisecond for a minute: no window of one second may
 * hold more than burst + rate, and the total is burst + rate * 60. */
START_TEST(test_bucket_window_bound)
{
    static const double rates[] = {1, 7, 20, 333};
    static const double bursts[] = {1, 3, 20, 50};
    for (size_t k = 0; k < 4; k++) {
        struct tbucket b;
        tbucket_init(&b, rates[k], bursts[k], 0);
        static int per_ms[60000];
        long total = 0;
        for (int ms = 0; ms < 60000; ms++) {
            per_ms[ms] = 0;
            while (tbucket_take(&b, 1, (int64_t)ms * 1000))
                per_ms[ms]++;
            total += per_ms[ms];
        }
        long window = 0, worst = 0;
        for (int ms = 0; ms < 60000; ms++) {
            window += per_ms[ms];
            if (ms >= 1000) window -= per_ms[ms - 1000];
            if (window > worst) worst = window;
        }
        ck_assert_msg(worst <= (long)(bursts[k] + rates[k]), "rate %g burst %g: %ld in 1 s",
                      rates[k], bursts[k], worst);
        long want = (long)(bursts[k] + rates[k] * 59.999);
        ck_assert_msg(total >= want - 1 && total <= want + 1, "rate %g: %ld in 60 s, want %ld",
                      rates[k], total, want);
    }
}
END_TEST

START_TEST(test_bucket_batch_debt)
{
    struct tbucket b;
    tbucket_init(&b, 10, 10, 0);
    /* 100 at once passes with a full bucket of 10, leaving a debt of 90. */
    ck_assert(tbucket_take(&b, 100, 0));
    ck_assert(tbucket_tokens(&b, 0) < -89.9);
    ck_assert(!tbucket_take(&b, 1, 0));
    /* The next batch waits until the bucket is full again: 10 s. */
    ck_assert_int_eq(tbucket_wait_us(&b, 100, 0), 10 * S);
    ck_assert(!tbucket_take(&b, 100, 10 * S - 1));
    ck_assert(tbucket_take(&b, 100, 10 * S));
}
END_TEST

START_TEST(test_bucket_set_keeps_tokens)
{
    struct tbucket b;
    tbucket_init(&b, 10, 10, 0);
    ck_assert(tbucket_take(&b, 6, 0));
    tbucket_set(&b, 2, 2, 0);
    ck_assert(tbucket_tokens(&b, 0) <= 2.0001);
    tbucket_set(&b, 100, 100, 0);
    ck_assert(tbucket_tokens(&b, 0) < 2.0001); /* no free refill from a raise */
    ck_assert(tbucket_tokens(&b, S) > 99.99);
}
END_TEST

START_TEST(test_aimd_no_cut)
{
    struct aimd a;
    aimd_init(&a, 20);
    ck_assert(aimd_rate(&a, 0) == 20);
    ck_assert(!aimd_cut(&a));
    aimd_init(&a, 0);
    ck_assert(aimd_rate(&a, 5 * S) == 0);
}
END_TEST

START_TEST(test_aimd_halves_and_climbs)
{
    struct aimd a;
    aimd_init(&a, 20);
    aimd_decrease(&a, 0, 10 * S);
    ck_assert(aimd_rate(&a, 10 * S) == 10);
    /* The answers to one overload arrive together: one cut a second. */
    aimd_decrease(&a, 0, 10 * S + S / 2);
    ck_assert(aimd_rate(&a, 10 * S + S / 2) == 10);
    /* A second later the rate has climbed by a tenth of the target (2/s) to
     * 12 when the next push halves it. */
    aimd_decrease(&a, 0, 11 * S);
    ck_assert(aimd_rate(&a, 11 * S) == 6);
    ck_assert(aimd_rate(&a, 12 * S) == 8);
    ck_assert(aimd_rate(&a, 14 * S) == 12);
    ck_assert(aimd_cut(&a));
    ck_assert(aimd_rate(&a, 30 * S) == 20);
    ck_assert(!aimd_cut(&a));
}
END_TEST

START_TEST(test_aimd_floor)
{
    struct aimd a;
    aimd_init(&a, 4);
    for (int i = 0; i < 10; i++)
        aimd_decrease(&a, 0, (int64_t)i * S);
    ck_assert(aimd_rate(&a, 9 * S) >= 1);
    ck_assert(aimd_rate(&a, 9 * S) <= 1.5);
}
END_TEST

START_TEST(test_aimd_unlimited_route)
{
    struct aimd a;
    aimd_init(&a, 0);
    aimd_decrease(&a, 300, 0);
    ck_assert(aimd_rate(&a, 0) == 150);
    ck_assert(aimd_rate(&a, 4 * S) == 270);
    ck_assert(aimd_cut(&a));
    ck_assert(aimd_rate(&a, 5 * S) == 0); /* recovered: unlimited again */
    ck_assert(!aimd_cut(&a));
    /* With nothing observed the cut starts from the floor. */
    aimd_decrease(&a, 0, 100 * S);
    ck_assert(aimd_rate(&a, 100 * S) == 1);
}
END_TEST

START_TEST(test_aimd_override)
{
    struct aimd a;
    aimd_init(&a, 100);
    aimd_decrease(&a, 0, 0);
    ck_assert(aimd_rate(&a, 0) == 50);
    aimd_set_configured(&a, 10, 0);
    ck_assert(aimd_rate(&a, 0) == 10);
    ck_assert(aimd_rate(&a, 100 * S) == 10);
    ck_assert(!aimd_cut(&a));
}
END_TEST

static Suite *ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("tbucket");
    tcase_add_test(tc, test_bucket_starts_full);
    tcase_add_test(tc, test_bucket_default_burst);
    tcase_add_test(tc, test_bucket_unlimited);
    tcase_add_test(tc, test_bucket_window_bound);
    tcase_add_test(tc, test_bucket_batch_debt);
    tcase_add_test(tc, test_bucket_set_keeps_tokens);
    suite_add_tcase(s, tc);
    tc = tcase_create("aimd");
    tcase_add_test(tc, test_aimd_no_cut);
    tcase_add_test(tc, test_aimd_halves_and_climbs);
    tcase_add_test(tc, test_aimd_floor);
    tcase_add_test(tc, test_aimd_unlimited_route);
    tcase_add_test(tc, test_aimd_override);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ratelimit_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
