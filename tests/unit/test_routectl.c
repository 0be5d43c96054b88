/* test_routectl.c: the routes' runtime state as the admin stream carries
 * it: a snapshot holds only what differs from the configuration, reads back
 * as written, ignores routes this configuration lacks, and a malformed one
 * changes nothing. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "routectl.h"

static char *ups[] = {"http://a"};

static struct cfg two_routes(struct cfg_route r[2])
{
    r[0] = (struct cfg_route){.name = "orders", .upstreams = ups, .n_upstreams = 1};
    r[1] = (struct cfg_route){.name = "billing", .upstreams = ups, .n_upstreams = 1};
    return (struct cfg){.routes = r, .n_routes = 2};
}

START_TEST(test_round_trip)
{
    struct cfg_route r[2];
    struct cfg c = two_routes(r);
    struct route_ctl ctl[2], back[2];
    routectl_clear(ctl, 2);
    ctl[1].paused = true;
    ctl[1].rate_per_s = 2.5;
    ctl[1].max_in_flight = 3;
    struct buf b;
    buf_init(&b, 4096);
    ck_assert_int_eq(routectl_encode(&c, ctl, "ops", 1000, &b), 0);
    ck_assert_str_eq(b.data, "{\"v\":1,\"ts\":1000,\"by\":\"ops\",\"routes\":{\"billing\":{"
                             "\"paused\":true,\"rate_per_s\":2.5,\"max_in_flight\":3}}}");
    back[0].paused = true; /* overwritten: absent means running */
    ck_assert_int_eq(routectl_decode(&c, b.data, b.len, back), 0);
    ck_assert(!back[0].paused);
    ck_assert(back[0].rate_per_s < 0 && back[0].max_in_flight < 0);
    ck_assert(back[1].paused);
    ck_assert_double_eq(back[1].rate_per_s, 2.5);
    ck_assert_int_eq(back[1].max_in_flight, 3);
    buf_free(&b);
}
END_TEST

START_TEST(test_malformed)
{
    struct cfg_route r[2];
    struct cfg c = two_routes(r);
    struct route_ctl ctl[2];
    routectl_clear(ctl, 2);
    ctl[0].paused = true;
    const char *bad[] = {"",
                         "[]",
                         "{\"v\":2,\"routes\":{}}",
                         "{\"v\":1}",
                         "{\"v\":1,\"routes\":{\"orders\":{\"paused\":1}}}",
                         "{\"v\":1,\"routes\":{\"orders\":{\"rate_per_s\":-1}}}",
                         "{\"v\":1,\"routes\":{\"orders\":{\"max_in_flight\":1.5}}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(routectl_decode(&c, bad[i], strlen(bad[i]), ctl), -1);
        ck_assert(ctl[0].paused);
    }
    const char *other = "{\"v\":1,\"routes\":{\"elsewhere\":{\"paused\":true}}}";
    ck_assert_int_eq(routectl_decode(&c, other, strlen(other), ctl), 0);
    ck_assert(!ctl[0].paused && !ctl[1].paused);
}
END_TEST

static Suite *routectl_suite(void)
{
    Suite *s = suite_create("routectl");
    TCase *tc = tcase_create("routectl");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_malformed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(routectl_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
