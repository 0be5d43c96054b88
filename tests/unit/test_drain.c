/* test_drain.c: lane arrivals and departures (ingress/drain.c): positions
 * in first-in first-out order, floored when the lane reorders, tickets that
 * wrap past 2^20 arrivals, and the drain rate over its window by the
 * events' own times. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "drain.h"

#define T0 1795000000000LL /* some real-time millisecond */

START_TEST(test_positions)
{
    struct drain d;
    memset(&d, 0, sizeof d);
    uint32_t t[5];
    for (int i = 0; i < 5; i++)
        t[i] = drain_arrive(&d);
    ck_assert_uint_ne(t[0], 0);
    ck_assert_uint_eq(drain_ahead(&d, t[0]), 0);
    ck_assert_uint_eq(drain_ahead(&d, t[4]), 4);
    drain_depart(&d, T0);
    drain_depart(&d, T0);
    ck_assert_uint_eq(drain_ahead(&d, t[4]), 2);
    ck_assert_uint_eq(drain_ahead(&d, t[2]), 0);
    /* A later arrival left first (a higher priority): the earlier ones are
     * floored at 0, never "negative". */
    drain_depart(&d, T0);
    drain_depart(&d, T0);
    ck_assert_uint_eq(drain_ahead(&d, t[2]), 0);
    ck_assert_uint_eq(drain_ahead(&d, t[4]), 0);
}
END_TEST

START_TEST(test_ticket_wraps)
{
    struct drain d;
    memset(&d, 0, sizeof d);
    const uint32_t n = (UINT32_C(1) << DRAIN_TICKET_BITS) + 1000;
    uint32_t last = 0, bad = 0;
    /* More arrivals than a ticket holds, each departing but the last 100:
     * tickets wrap (never 0, always within their bits), positions stay right. */
    for (uint32_t i = 0; i < n; i++) {
        last = drain_arrive(&d);
        if (last == 0 || last >= UINT32_C(1) << DRAIN_TICKET_BITS) bad++;
        if (i < n - 100) drain_depart(&d, T0);
    }
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_eq(drain_ahead(&d, last), 99);
}
END_TEST

START_TEST(test_rate_window)
{
    struct drain d;
    memset(&d, 0, sizeof d);
    ck_assert(drain_rate(&d, T0) == 0); /* nothing departed: unknown */
    for (int s = 0; s < 10; s++)
        for (int i = 0; i < 4; i++)
            drain_depart(&d, T0 + s * 1000 + i * 10);
    /* 40 departures over the 10 seconds since the first. */
    ck_assert_double_eq_tol(drain_rate(&d, T0 + 9500), 4.0, 1e-9);
    /* Seconds later without departures dilute it... */
    ck_assert_double_eq_tol(drain_rate(&d, T0 + 19500), 2.0, 1e-9);
    /* ...until the window has moved past them all. */
    ck_assert(drain_rate(&d, T0 + 9000 + DRAIN_WINDOW_S * 1000 + 500) == 0);
    /* Events read long after they happened (a replica starting) count nothing now. */
    struct drain old;
    memset(&old, 0, sizeof old);
    drain_depart(&old, T0 - 3600 * 1000);
    ck_assert(drain_rate(&old, T0) == 0);
}
END_TEST

static Suite *drain_suite(void)
{
    Suite *s = suite_create("drain");
    TCase *tc = tcase_create("drain");
    tcase_add_test(tc, test_positions);
    tcase_add_test(tc, test_ticket_wraps);
    tcase_add_test(tc, test_rate_window);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(drain_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
