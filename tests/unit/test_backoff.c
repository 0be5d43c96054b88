/* test_backoff.c: unit tests for retry delays (common/backoff.c): ceilings and
 * their saturation, jitter range and spread, the PRNG, and Retry-After forms. */
#include "backoff.h"

#include <check.h>
#include <limits.h>
#include <stdlib.h>

/* 1994-11-06T08:49:37Z, the date in RFC 9110's IMF-fixdate example. */
#define RFC_DATE ((time_t)784111777)

START_TEST(test_ceilings)
{
    static const long want[] = {100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000};
    for (int r = 1; r <= 9; r++)
        ck_assert_int_eq(backoff_ceiling_ms(100, 10000, r), want[r - 1]);
    for (int r = 10; r <= 1000; r++)
        ck_assert_int_eq(backoff_ceiling_ms(100, 10000, r), 10000);
}
END_TEST

START_TEST(test_ceiling_saturates)
{
    long prev = 0;
    for (int r = 1; r <= 1000; r++) {
        long c = backoff_ceiling_ms(3600000, LONG_MAX, r);
        ck_assert_int_ge(c, prev);
        prev = c;
    }
    ck_assert_int_eq(prev, LONG_MAX);
    ck_assert_int_eq(backoff_ceiling_ms(1, LONG_MAX, 63), LONG_MAX / 2 + 1);
    ck_assert_int_eq(backoff_ceiling_ms(1, LONG_MAX, 64), LONG_MAX);
    ck_assert_int_eq(backoff_ceiling_ms(3600000, 86400000, 1000), 86400000);
    ck_assert_int_eq(backoff_ceiling_ms(3600000, 86400000, 5), 57600000);
    ck_assert_int_eq(backoff_ceiling_ms(3600000, 86400000, INT_MAX), 86400000);
}
END_TEST

START_TEST(test_ceiling_edges)
{
    ck_assert_int_eq(backoff_ceiling_ms(100, 10000, 0), 100);
    ck_assert_int_eq(backoff_ceiling_ms(100, 10000, -3), 100);
    ck_assert_int_eq(backoff_ceiling_ms(0, 10000, 5), 0);
    ck_assert_int_eq(backoff_ceiling_ms(-100, 10000, 5), 0);
    ck_assert_int_eq(backoff_ceiling_ms(100, 0, 5), 0);
    ck_assert_int_eq(backoff_ceiling_ms(100, 50, 1), 50);
    ck_assert_int_eq(backoff_ceiling_ms(100, 100, 3), 100);
    ck_assert_int_eq(backoff_ceiling_ms(100, 399, 3), 399);
    ck_assert_int_eq(backoff_ceiling_ms(100, 400, 3), 400);
}
END_TEST

START_TEST(test_delay_range_and_spread)
{
    uint64_t state = 42;
    for (int r = 1; r <= 10; r++) {
        long ceiling = backoff_ceiling_ms(100, 10000, r);
        int low = 0, high = 0, top = 0, outside = 0;
        for (int i = 0; i < 10000; i++) {
            long d = backoff_delay_ms(100, 10000, r, backoff_rand(&state));
            /* Counted, not asserted per draw: 100,000 Check assertions
             * under the sanitizers outlast the test timeout on a busy machine. */
            outside += d < 0 || d > ceiling;
            if (d <= ceiling / 2)
                low++;
            else
                high++;
            if (d == ceiling) top++;
        }
        ck_assert_int_eq(outside, 0);
        /* Uniform over [0, ceiling]: each half gets about 5000 of 10000 draws. */
        ck_assert_int_gt(low, 4000);
        ck_assert_int_gt(high, 4000);
        if (ceiling <= 200) ck_assert_int_gt(top, 0);
    }
}
END_TEST

START_TEST(test_delay_edges)
{
    ck_assert_int_eq(backoff_delay_ms(0, 10000, 3, 12345), 0);
    ck_assert_int_eq(backoff_delay_ms(100, 10000, 1, 100), 100);
    ck_assert_int_eq(backoff_delay_ms(100, 10000, 1, 101), 0);
    ck_assert_int_eq(backoff_delay_ms(100, 10000, 1, UINT64_MAX), (long)(UINT64_MAX % 101));
    long d = backoff_delay_ms(1, LONG_MAX, 1000, UINT64_MAX);
    ck_assert_int_ge(d, 0);
}
END_TEST

START_TEST(test_rand)
{
    uint64_t s = 1;
    ck_assert_uint_eq(backoff_rand(&s), UINT64_C(0x47e4ce4b896cdd1d));
    ck_assert_uint_eq(backoff_rand(&s), UINT64_C(0xabcfa6a8e079651d));
    ck_assert_uint_eq(backoff_rand(&s), UINT64_C(0xb9d10d8feb731f57));

    uint64_t z = 0;
    uint64_t a = backoff_rand(&z);
    ck_assert_uint_ne(z, 0);
    uint64_t b = backoff_rand(&z);
    ck_assert_uint_ne(a, b);
    uint64_t z2 = 0;
    ck_assert_uint_eq(backoff_rand(&z2), a);
}
END_TEST

START_TEST(test_retry_after_seconds)
{
    ck_assert_int_eq(backoff_parse_retry_after("120", 0), 120000);
    ck_assert_int_eq(backoff_parse_retry_after("  120  ", 0), 120000);
    ck_assert_int_eq(backoff_parse_retry_after("\t5\t", 0), 5000);
    ck_assert_int_eq(backoff_parse_retry_after("0", 0), 0);
    ck_assert_int_eq(backoff_parse_retry_after("007", 0), 7000);
    ck_assert_int_eq(backoff_parse_retry_after("9223372036854775", 0), 9223372036854775000L);
}
END_TEST

START_TEST(test_retry_after_malformed)
{
    static const char *bad[] = {
        "",
        "   ",
        "-1",
        "+1",
        "1.5",
        "12a",
        "1 2",
        "0x10",
        "abc",
        "\n5",
        "9223372036854776",
        "99999999999999999999999",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT junk",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sunday",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(backoff_parse_retry_after(bad[i], RFC_DATE) == -1, "accepted '%s'", bad[i]);
    ck_assert_int_eq(backoff_parse_retry_after(NULL, 0), -1);
}
END_TEST

START_TEST(test_retry_after_date)
{
    const char *date = "Sun, 06 Nov 1994 08:49:37 GMT";
    ck_assert_int_eq(backoff_parse_retry_after(date, RFC_DATE - 37), 37000);
    ck_assert_int_eq(backoff_parse_retry_after(date, RFC_DATE - 86400), 86400000);
    ck_assert_int_eq(backoff_parse_retry_after(date, RFC_DATE), 0);
    ck_assert_int_eq(backoff_parse_retry_after(date, RFC_DATE + 3600), 0);
    ck_assert_int_eq(backoff_parse_retry_after("  Sun, 06 Nov 1994 08:49:37 GMT  ", RFC_DATE - 1),
                     1000);
}
END_TEST

static Suite *backoff_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("delays");
    tcase_add_test(tc, test_ceilings);
    tcase_add_test(tc, test_ceiling_saturates);
    tcase_add_test(tc, test_ceiling_edges);
    tcase_add_test(tc, test_delay_range_and_spread);
    tcase_add_test(tc, test_delay_edges);
    tcase_add_test(tc, test_rand);
    suite_add_tcase(s, tc);
    tc = tcase_create("retry_after");
    tcase_add_test(tc, test_retry_after_seconds);
    tcase_add_test(tc, test_retry_after_malformed);
    tcase_add_test(tc, test_retry_after_date);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(backoff_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
