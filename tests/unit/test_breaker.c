/* test_breaker.c: unit tests for the circuit breaker (common/breaker.c): both
 * triggers, the single half-open probe, the growing open period and its cap,
 * and the calls that started before a breaker opened. */
#include "breaker.h"

#include <check.h>
#include <stdlib.h>

static const struct breaker_policy consecutive = {
    .enabled = true, .consecutive_failures = 3, .open_ms = 1000, .max_open_ms = 5000};
static const struct breaker_policy ratio = {.enabled = true,
                                            .failure_ratio = 0.5,
                                            .window_s = 10,
                                            .min_calls = 10,
                                            .open_ms = 1000,
                                            .max_open_ms = 60000};

START_TEST(test_off_never_opens)
{
    struct breaker_policy off = {0};
    struct breaker b;
    ck_assert_int_eq(breaker_init(&b, &off), 0);
    for (int i = 0; i < 1000; i++) {
        ck_assert(breaker_allow(&b, i));
        breaker_record(&b, true, i);
    }
    ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_CLOSED);
    breaker_free(&b);
}
END_TEST

START_TEST(test_consecutive_opens)
{
    struct breaker b;
    ck_assert_int_eq(breaker_init(&b, &consecutive), 0);
    breaker_record(&b, true, 0);
    breaker_record(&b, true, 0);
    breaker_record(&b, false, 0); /* a success resets the run */
    breaker_record(&b, true, 0);
    breaker_record(&b, true, 0);
    ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
    breaker_record(&b, true, 100);
    ck_assert_int_eq(breaker_state(&b, 100), BREAKER_OPEN);
    ck_assert(!breaker_allow(&b, 100));
    ck_assert(!breaker_allow(&b, 1099));
    ck_assert_int_eq(breaker_next_ms(&b), 1100);
    breaker_free(&b);
}
END_TEST

START_TEST(test_one_probe)
{
    struct breaker b;
    ck_assert_int_eq(breaker_init(&b, &consecutive), 0);
    for (int i = 0; i < 3; i++)
        breaker_record(&b, true, 0);
    ck_assert_int_eq(breaker_state(&b, 1000), BREAKER_HALF_OPEN);
    ck_assert(breaker_allow(&b, 1000));
    ck_assert(!breaker_allow(&b, 1001)); /* one probe at a time */
    breaker_cancel(&b);                  /* it never ran */
    ck_assert(breaker_allow(&b, 1002));
    breaker_record(&b, false, 1050);
    ck_assert_int_eq(breaker_state(&b, 1050), BREAKER_CLOSED);
    ck_assert(breaker_allow(&b, 1051));
    ck_assert(breaker_allow(&b, 1051));
    breaker_free(&b);
}
END_TEST

START_TEST(test_reopen_doubles_to_cap)
{
    struct breaker b;
    ck_assert_int_eq(breaker_init(&b, &consecutive), 0);
    for (int i = 0; i < 3; i++)
        breaker_record(&b, true, 0);
    static const long want[] = {2000, 4000, 5000, 5000};
    int64_t now = 1000;
    for (int i = 0; i < 4; i++) {
        ck_assert(breaker_allow(&b, now));
        breaker_record(&b, true, now);
        ck_assert_int_eq(breaker_state(&b, now), BREAKER_OPEN);
        ck_assert_int_eq(breaker_next_ms(&b) - now, want[i]);
        now += want[i];
    }
    /* A success closes it and the next opening is short again. */
    ck_assert(breaker_allow(&b, now));
    breaker_record(&b, false, now);
    for (int i = 0; i < 3; i++)
        breaker_record(&b, true, now);
    ck_assert_int_eq(breaker_next_ms(&b) - now, 1000);
    ck_assert_int_eq(b.opened, 6);
    breaker_free(&b);
}
END_TEST

START_TEST(test_ratio_needs_min_calls)
{
    struct breaker b;
    ck_assert_int_eq(breaker_init(&b, &ratio), 0);
    for (int i = 0; i < 9; i++)
        breaker_record(&b, true, 0); /* 9 of 9 failed, but fewer than min_calls */
    ck_assert_int_eq(breaker_state(&b, 0), BREAKER_CLOSED);
    breaker_record(&b, true, 0);
    ck_assert_int_eq(breaker_state(&b, 0), BREAKER_OPEN);
    breaker_free(&b);
}
END_TEST

START_TEST(test_ratio_window_slides)
{
    struct breaker b;
    ck_assert_int_eq(breaker_init(&b, &ratio), 0);
    /* One call in three fails for a minute: never opens. */
    for (int64_t ms = 0; ms < 60000; ms += 100)
        breaker_record(&b, (ms / 100) % 3 == 0, ms);
    ck_assert_int_eq(breaker_state(&b, 60000), BREAKER_CLOSED);
    /* Old failures leave the window: 20 s of success, then 5 failures of 10
     * calls within the window opens it; they would not have with the old
     * successes still counted. */
    for (int64_t ms = 60000; ms < 80000; ms += 100)
        breaker_record(&b, false, ms);
    for (int i = 0; i < 5; i++)
        breaker_record(&b, false, 95000);
    ck_assert_int_eq(breaker_state(&b, 95000), BREAKER_CLOSED);
    for (int i = 0; i < 5; i++)
        breaker_record(&b, true, 95500);
    ck_assert_int_eq(breaker_state(&b, 95500), BREAKER_OPEN);
    breaker_free(&b);
}
END_TEST

START_TEST(test_late_outcomes_ignored)
{
    struct breaker b;
    ck_assert_int_eq(breaker_init(&b, &consecutive), 0);
    for (int i = 0; i < 3; i++)
        breaker_record(&b, true, 0);
    /* Calls that started before it opened report while open: no change. */
    breaker_record(&b, false, 10);
    ck_assert_int_eq(breaker_state(&b, 10), BREAKER_OPEN);
    ck_assert_int_eq(breaker_next_ms(&b), 1000);
    breaker_free(&b);
}
END_TEST

START_TEST(test_trial)
{
    struct breaker b;
    struct breaker_policy off = {0};
    ck_assert_int_eq(breaker_init(&b, &consecutive), 0);
    ck_assert(breaker_on_trial(&b)); /* nothing proven yet */
    breaker_record(&b, false, 0);
    ck_assert(!breaker_on_trial(&b));
    breaker_record(&b, true, 0); /* a failure: one call at a time again */
    ck_assert(breaker_on_trial(&b));
    breaker_record(&b, false, 0);
    ck_assert(!breaker_on_trial(&b));
    for (int i = 0; i < 3; i++)
        breaker_record(&b, true, 10);
    ck_assert(!breaker_on_trial(&b)); /* open: it gets no call at all */
    ck_assert(breaker_allow(&b, 1010));
    breaker_record(&b, false, 1020); /* the probe succeeded */
    ck_assert_int_eq(breaker_state(&b, 1020), BREAKER_CLOSED);
    ck_assert(!breaker_on_trial(&b));
    breaker_free(&b);
    ck_assert_int_eq(breaker_init(&b, &off), 0);
    ck_assert(!breaker_on_trial(&b)); /* no breaker, no trial */
    breaker_free(&b);
}
END_TEST

static Suite *breaker_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("breaker");
    tcase_add_test(tc, test_off_never_opens);
    tcase_add_test(tc, test_consecutive_opens);
    tcase_add_test(tc, test_one_probe);
    tcase_add_test(tc, test_reopen_doubles_to_cap);
    tcase_add_test(tc, test_ratio_needs_min_calls);
    tcase_add_test(tc, test_ratio_window_slides);
    tcase_add_test(tc, test_late_outcomes_ignored);
    tcase_add_test(tc, test_trial);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(breaker_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
