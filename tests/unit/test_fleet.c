/* test_fleet.c: the ingress's view of the fleet (ingress/fleet.h): sums of
 * the live workers' calls in flight and rates; each upstream's worst
 * breaker state with how many workers see it open; a worker's newer report
 * replaces its older; a silent worker stops counting after stale_ms and
 * its place is taken; a bye removes it at once; a full table refuses
 * newcomers rather than grow. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "fleet.h"

#define STALE 5000

static char *ups[] = {"http://a:1", "http://b:2"};
static struct cfg_route routes[1] = {{.name = "orders", .upstreams = ups, .n_upstreams = 2}};
static struct cfg cfg = {.routes = routes, .n_routes = 1};

static struct report *rep(const char *worker, long in_flight, double rate, enum breaker_state a,
                          int64_t open_ms)
{
    struct report *r = report_new(&cfg);
    ck_assert_ptr_nonnull(r);
    snprintf(r->worker, sizeof r->worker, "%s", worker);
    r->routes[0].in_flight = in_flight;
    r->routes[0].rate = rate;
    r->routes[0].failure_rate = rate / 2;
    r->routes[0].ups[0] = (struct report_upstream){.state = a, .open_ms = open_ms};
    return r;
}

/* put hands r to f and frees what comes back. */
static void put(struct fleet *f, struct report *r, int64_t now)
{
    report_free(&cfg, fleet_put(f, r, now, 1000000 + now));
}

static struct fleet_route view(struct fleet *f, int64_t now, struct fleet_upstream u[2])
{
    struct fleet_route fr = {.ups = u};
    fleet_route(f, 0, now, &fr);
    return fr;
}

START_TEST(test_sums_and_worst)
{
    struct fleet *f = fleet_new(&cfg, 8, STALE);
    struct fleet_upstream u[2];
    struct fleet_route fr = view(f, 0, u);
    ck_assert_int_eq(fr.workers, 0);
    ck_assert_int_eq(u[0].state, BREAKER_CLOSED);
    ck_assert_int_eq(u[0].open_until_ms, 0);

    put(f, rep("w1", 2, 1.5, BREAKER_HALF_OPEN, 0), 100);
    put(f, rep("w2", 3, 2.0, BREAKER_OPEN, 700), 200);
    put(f, rep("w3", 0, 0, BREAKER_OPEN, 300), 300);
    fr = view(f, 400, u);
    ck_assert_int_eq(fr.workers, 3);
    ck_assert_int_eq(fleet_workers(f, 400), 3);
    ck_assert_int_eq(fr.in_flight, 5);
    ck_assert_double_eq_tol(fr.rate, 3.5, 1e-9);
    ck_assert_double_eq_tol(fr.failure_rate, 1.75, 1e-9);
    ck_assert_int_eq(u[0].state, BREAKER_OPEN);
    ck_assert_int_eq(u[0].open, 2);
    ck_assert_int_eq(u[0].half_open, 1);
    /* The last to close: w2's, 700 ms after its report came (real 1000200). */
    ck_assert_int_eq(u[0].open_until_ms, 1000200 + 700);
    ck_assert_int_eq(u[1].state, BREAKER_CLOSED);
    ck_assert_int_eq(u[1].open, 0);

    /* w2 and w3 recover: their newer reports replace the older ones. */
    put(f, rep("w2", 1, 2.0, BREAKER_CLOSED, 0), 1200);
    put(f, rep("w3", 0, 0, BREAKER_CLOSED, 0), 1300);
    fr = view(f, 1400, u);
    ck_assert_int_eq(fr.workers, 3);
    ck_assert_int_eq(fr.in_flight, 3);
    ck_assert_int_eq(u[0].state, BREAKER_HALF_OPEN);
    ck_assert_int_eq(u[0].open, 0);
    ck_assert_int_eq(u[0].open_until_ms, 0);
    fleet_free(f);
}
END_TEST

START_TEST(test_stale_and_bye)
{
    struct fleet *f = fleet_new(&cfg, 8, STALE);
    struct fleet_upstream u[2];
    put(f, rep("w1", 2, 1, BREAKER_OPEN, 100), 0);
    put(f, rep("w2", 3, 1, BREAKER_CLOSED, 0), 3000);
    struct fleet_route fr = view(f, STALE - 1, u);
    ck_assert_int_eq(fr.workers, 2);
    /* w1 silent for 5 s: gone from every sum. */
    fr = view(f, STALE, u);
    ck_assert_int_eq(fr.workers, 1);
    ck_assert_int_eq(fr.in_flight, 3);
    ck_assert_int_eq(u[0].state, BREAKER_CLOSED);
    /* It comes back: it counts again. */
    put(f, rep("w1", 1, 1, BREAKER_CLOSED, 0), 6000);
    ck_assert_int_eq(fleet_workers(f, 6000), 2);
    /* w2 stops: its bye removes it before it would go stale. */
    struct report *bye = rep("w2", 0, 0, BREAKER_CLOSED, 0);
    bye->bye = true;
    struct report *back = fleet_put(f, bye, 6100, 0);
    ck_assert_ptr_eq(back, bye);
    report_free(&cfg, back);
    fr = view(f, 6100, u);
    ck_assert_int_eq(fr.workers, 1);
    ck_assert_int_eq(fr.in_flight, 1);
    fleet_free(f);
}
END_TEST

START_TEST(test_bounded)
{
    struct fleet *f = fleet_new(&cfg, 2, STALE);
    put(f, rep("w1", 1, 0, BREAKER_CLOSED, 0), 0);
    put(f, rep("w2", 1, 0, BREAKER_CLOSED, 0), 0);
    /* Full of live workers: a third is refused, and given back. */
    struct report *w3 = rep("w3", 1, 0, BREAKER_CLOSED, 0);
    ck_assert_ptr_eq(fleet_put(f, w3, 1000, 0), w3);
    ck_assert_int_eq(fleet_refused(f), 1);
    ck_assert_int_eq(fleet_workers(f, 1000), 2);
    /* A known worker still gets in, and its older report comes back. */
    struct report *w1 = rep("w1", 4, 0, BREAKER_CLOSED, 0);
    struct report *old = fleet_put(f, w1, 1000, 0);
    ck_assert_ptr_nonnull(old);
    ck_assert_ptr_ne(old, w1);
    report_free(&cfg, old);
    /* Once w2 is stale, w3 takes its place (w2's report comes back to reuse). */
    old = fleet_put(f, w3, STALE + 1, 0);
    ck_assert_ptr_nonnull(old);
    ck_assert_str_eq(old->worker, "w2");
    report_free(&cfg, old);
    struct fleet_upstream u[2];
    struct fleet_route fr = view(f, STALE + 1, u);
    ck_assert_int_eq(fr.workers, 2);
    ck_assert_int_eq(fr.in_flight, 5);
    fleet_free(f);
}
END_TEST

static Suite *fleet_suite(void)
{
    Suite *s = suite_create("fleet");
    TCase *tc = tcase_create("fleet");
    tcase_add_test(tc, test_sums_and_worst);
    tcase_add_test(tc, test_stale_and_bye);
    tcase_add_test(tc, test_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fleet_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
