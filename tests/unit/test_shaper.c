/* test_shaper.c: per-route admission of backend calls (worker/shaper.c),
 * on a simulated clock: the rate with its burst in every window,
 * max_in_flight, items joining a batch call (a rate token each, no call in
 * flight), least calls in flight with round robin among equals, the
 * breakers (trial calls, opening, the single probe, a route blocked when
 * every upstream is open), Retry-After holds and AIMD cuts. */
#include <check.h>
#include <stdlib.h>

#include "shaper.h"

#define MS 1000LL
#define S 1000000LL

static char *two_ups[] = {"http://a", "http://b"};
static char *one_up[] = {"http://a"};

static struct cfg cfg_of(struct cfg_route *r)
{
    return (struct cfg){.routes = r, .n_routes = 1};
}

static struct cfg_route route(char **ups, size_t n)
{
    return (struct cfg_route){.name = "r",
                              .upstreams = ups,
                              .n_upstreams = n,
                              .backoff_ms = 100,
                              .backoff_max_ms = 10000};
}

static const struct shaper_outcome ok = {.retry_after_ms = -1};
static const struct shaper_outcome fail = {.failed = true, .retry_after_ms = -1};

/* go admits a call at now and returns its upstream, failing the test if it may not start. */
static size_t go(struct shaper *s, int64_t now, struct shaper_call *call)
{
    int64_t until;
    enum shaper_verdict v = shaper_admit(s, 0, now, call, &until);
    ck_assert_msg(v == SHAPER_GO, "verdict %d at %lld us", v, (long long)now);
    return call->upstream;
}

static enum shaper_verdict verdict(struct shaper *s, int64_t now, int64_t *until)
{
    struct shaper_call call;
    return shaper_admit(s, 0, now, &call, until);
}

START_TEST(test_rate_and_burst)
{
    struct cfg_route r = route(one_up, 1);
    r.rate_per_s = 20;
    r.burst = 5;
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    ck_assert_ptr_nonnull(s);
    /* Admit as fast as allowed for 10 s: the calls of every 1 s window stay
     * within rate + burst, and the whole run within burst + rate x 10. */
    int64_t now = 0, until, starts[400];
    int n = 0;
    struct shaper_call call;
    while (now < 10 * S && n < 400) {
        enum shaper_verdict v = shaper_admit(s, 0, now, &call, &until);
        if (v == SHAPER_GO) {
            starts[n++] = now;
            shaper_done(s, 0, &call, &ok, now);
            continue;
        }
        ck_assert_int_eq(v, SHAPER_WAIT);
        ck_assert_int_gt(until, now);
        now = until;
    }
    ck_assert_int_le(n, 5 + 20 * 10 + 1);
    ck_assert_int_ge(n, 20 * 10);
    for (int i = 0; i < n; i++) {
        int in_window = 0;
        for (int j = i; j < n && starts[j] < starts[i] + S; j++)
            in_window++;
        ck_assert_msg(in_window <= 25, "%d calls in the second from %lld us", in_window,
                      (long long)starts[i]);
    }
    ck_assert(shaper_rate(s, 0, now) == 20);
    shaper_free(s);
}
END_TEST

/* An operator's state: a pause stops every new call until resumed; the
 * overrides replace the configured limits until removed. */
START_TEST(test_control)
{
    struct cfg_route r = route(one_up, 1);
    r.max_in_flight = 3;
    r.rate_per_s = 1000;
    r.burst = 100;
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call a, b;
    int64_t until;
    struct route_ctl ctl = {.paused = true, .rate_per_s = -1, .max_in_flight = -1};
    shaper_control(s, 0, &ctl, 0);
    ck_assert(shaper_paused(s, 0));
    ck_assert_int_eq(verdict(s, 0, &until), SHAPER_PAUSED);
    ctl.paused = false;
    ctl.max_in_flight = 1;
    shaper_control(s, 0, &ctl, 0);
    go(s, 0, &a);
    ck_assert_int_eq(verdict(s, 0, &until), SHAPER_WAIT);
    shaper_done(s, 0, &a, &ok, 1 * MS);
    /* A rate override of 1/s with the configured burst of 100... */
    ctl.rate_per_s = 1;
    shaper_control(s, 0, &ctl, 1 * MS);
    ck_assert_double_eq_tol(shaper_rate(s, 0, 1 * MS), 1, 1e-9);
    /* ... and back to the configuration. */
    routectl_clear(&ctl, 1);
    shaper_control(s, 0, &ctl, 2 * MS);
    ck_assert_double_eq_tol(shaper_rate(s, 0, 2 * MS), 1000, 1e-9);
    go(s, 2 * MS, &a);
    go(s, 2 * MS, &b);
    shaper_done(s, 0, &a, &ok, 3 * MS);
    shaper_done(s, 0, &b, &ok, 3 * MS);
    shaper_free(s);
}
END_TEST

START_TEST(test_max_in_flight)
{
    struct cfg_route r = route(one_up, 1);
    r.max_in_flight = 2;
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call a, b;
    int64_t until;
    go(s, 0, &a);
    go(s, 0, &b);
    ck_assert_int_eq(shaper_in_flight(s, 0), 2);
    ck_assert_int_eq(verdict(s, 0, &until), SHAPER_WAIT);
    ck_assert_int_eq(until, 0); /* until a call ends */
    shaper_done(s, 0, &a, &ok, 1 * MS);
    go(s, 1 * MS, &a);
    shaper_done(s, 0, &a, &ok, 2 * MS);
    shaper_done(s, 0, &b, &ok, 2 * MS);
    ck_assert_int_eq(shaper_in_flight(s, 0), 0);
    shaper_free(s);
}
END_TEST

/* A batch call: one call in flight, each item joining it one rate token. */
START_TEST(test_join)
{
    struct cfg_route r = route(one_up, 1);
    r.rate_per_s = 10;
    r.burst = 5;
    r.max_in_flight = 1;
    r.backoff_max_ms = 3000;
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call a;
    int64_t until;
    go(s, 0, &a);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(shaper_join(s, 0, 0), "item %d found no token", i + 2);
    /* The burst is spent: the sixth item waits for a call of its own. */
    ck_assert(!shaper_join(s, 0, 0));
    ck_assert_int_eq(shaper_in_flight(s, 0), 1);
    shaper_done(s, 0, &a, &ok, 10 * MS);
    /* The bucket refills at 10/s: the next call at 100 ms, with no item
     * beside it until 200 ms. */
    ck_assert_int_eq(verdict(s, 10 * MS, &until), SHAPER_WAIT);
    ck_assert_int_eq(until, 100 * MS);
    go(s, 100 * MS, &a);
    ck_assert(!shaper_join(s, 0, 199 * MS));
    ck_assert(shaper_join(s, 0, 200 * MS));
    /* Items of a call cut the rate as calls do: a Retry-After holds them. */
    struct shaper_outcome o = shaper_outcome_of(false, 503, 1000);
    shaper_done(s, 0, &a, &o, 300 * MS);
    ck_assert(!shaper_join(s, 0, 1299 * MS));
    ck_assert_int_eq(verdict(s, 1299 * MS, &until), SHAPER_WAIT);
    ck_assert_int_eq(until, 1300 * MS);
    ck_assert_int_eq(shaper_in_flight(s, 0), 0);
    /* Items per second never pass rate + burst. */
    int64_t now = 2 * S;
    int items = 0;
    while (now < 12 * S) {
        if (shaper_admit(s, 0, now, &a, &until) != SHAPER_GO) {
            now = until ? until : now + MS;
            continue;
        }
        items++;
        while (shaper_join(s, 0, now))
            items++;
        shaper_done(s, 0, &a, &ok, now + 50 * MS);
        now += 50 * MS;
    }
    ck_assert_msg(items <= 5 + 10 * 10 + 1, "%d items in 10 s at 10/s, burst 5", items);
    ck_assert_int_ge(items, 10 * 10);
    /* Paused: nothing joins. */
    struct route_ctl ctl = {.paused = true, .rate_per_s = -1, .max_in_flight = -1};
    shaper_control(s, 0, &ctl, 20 * S);
    ck_assert(!shaper_join(s, 0, 20 * S));
    shaper_free(s);
}
END_TEST

START_TEST(test_least_in_flight_round_robin)
{
    struct cfg_route r = route(two_ups, 2);
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call k[6];
    /* Equal loads: round robin. */
    ck_assert_uint_eq(go(s, 0, &k[0]), 0);
    ck_assert_uint_eq(go(s, 0, &k[1]), 1);
    ck_assert_uint_eq(go(s, 0, &k[2]), 0);
    ck_assert_uint_eq(go(s, 0, &k[3]), 1);
    /* Upstream 1's calls end: it has the fewest, it gets the next two. */
    shaper_done(s, 0, &k[1], &ok, 1);
    shaper_done(s, 0, &k[3], &ok, 1);
    ck_assert_uint_eq(go(s, 2, &k[4]), 1);
    ck_assert_uint_eq(go(s, 2, &k[5]), 1);
    shaper_free(s);
}
END_TEST

START_TEST(test_breaker_trial_and_open)
{
    struct cfg_route r = route(two_ups, 2);
    r.breaker = (struct breaker_policy){
        .enabled = true, .consecutive_failures = 2, .open_ms = 1000, .max_open_ms = 4000};
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call a, b, k;
    int64_t until;
    /* Nothing proven yet: one call per upstream at a time. */
    ck_assert_uint_eq(go(s, 0, &a), 0);
    ck_assert_uint_eq(go(s, 0, &b), 1);
    ck_assert_int_eq(verdict(s, 0, &until), SHAPER_WAIT);
    shaper_done(s, 0, &b, &ok, 10 * MS); /* b proves upstream 1 */
    ck_assert_uint_eq(go(s, 10 * MS, &b), 1);
    ck_assert_uint_eq(go(s, 10 * MS, &k), 1); /* 0 is still on trial with a call out */
    shaper_done(s, 0, &a, &fail, 20 * MS);    /* upstream 0 is down: 1 failure */
    ck_assert_uint_eq(go(s, 20 * MS, &a), 0); /* its next trial call */
    shaper_done(s, 0, &a, &fail, 30 * MS);    /* 2 in a row: open */
    ck_assert_int_eq(shaper_breaker(s, 0, 0, 30 * MS), BREAKER_OPEN);
    ck_assert_int_eq(shaper_breaker_opened(s, 0, 0), 1);
    for (int i = 0; i < 5; i++) { /* everything goes to upstream 1 */
        struct shaper_call x;
        ck_assert_uint_eq(go(s, 40 * MS, &x), 1);
    }
    /* After open_ms, upstream 0 is due for its probe, and has the fewest calls. */
    ck_assert_uint_eq(go(s, 1030 * MS, &a), 0);
    ck_assert(a.probe);
    struct shaper_call x;
    ck_assert_uint_eq(go(s, 1030 * MS, &x), 1); /* one probe at a time */
    /* A call that started before the breaker opened says nothing now. */
    shaper_done(s, 0, &k, &ok, 1040 * MS);
    ck_assert_int_eq(shaper_breaker(s, 0, 0, 1040 * MS), BREAKER_HALF_OPEN);
    shaper_done(s, 0, &a, &fail, 1050 * MS); /* the probe failed: open twice as long */
    ck_assert_int_eq(shaper_breaker(s, 0, 0, 3000 * MS), BREAKER_OPEN);
    ck_assert_int_eq(shaper_breaker(s, 0, 0, 3051 * MS), BREAKER_HALF_OPEN);
    shaper_free(s);
}
END_TEST

START_TEST(test_blocked_when_all_open)
{
    struct cfg_route r = route(one_up, 1);
    r.breaker = (struct breaker_policy){
        .enabled = true, .consecutive_failures = 1, .open_ms = 500, .max_open_ms = 500};
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call a;
    int64_t until;
    go(s, 0, &a);
    shaper_done(s, 0, &a, &fail, 100 * MS);
    ck_assert_int_eq(verdict(s, 200 * MS, &until), SHAPER_BLOCKED);
    ck_assert_int_eq(until, 600 * MS); /* when the probe may go */
    go(s, 600 * MS, &a);
    ck_assert(a.probe);
    ck_assert_int_eq(verdict(s, 600 * MS, &until), SHAPER_BLOCKED);
    ck_assert_int_eq(until, 0); /* until the probe ends */
    /* A probe that never ran frees the slot for another. */
    shaper_done(s, 0, &a, &(struct shaper_outcome){.cancelled = true}, 601 * MS);
    go(s, 601 * MS, &a);
    shaper_done(s, 0, &a, &ok, 700 * MS); /* it succeeded: closed */
    ck_assert_int_eq(shaper_breaker(s, 0, 0, 700 * MS), BREAKER_CLOSED);
    go(s, 700 * MS, &a);
    shaper_free(s);
}
END_TEST

START_TEST(test_retry_after_holds)
{
    struct cfg_route r = route(one_up, 1);
    r.backoff_max_ms = 3000;
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call a, b;
    int64_t until;
    go(s, 0, &a);
    go(s, 0, &b);
    struct shaper_outcome o = shaper_outcome_of(false, 429, 2000);
    ck_assert(o.pushback && !o.failed);
    shaper_done(s, 0, &a, &o, 10 * MS);
    ck_assert_int_eq(verdict(s, 10 * MS, &until), SHAPER_WAIT);
    ck_assert_int_eq(until, 2010 * MS);
    ck_assert_int_eq(verdict(s, 2009 * MS, &until), SHAPER_WAIT);
    /* A longer Retry-After is capped by backoff_max_ms. */
    o = shaper_outcome_of(false, 503, 60000);
    ck_assert(o.pushback && o.failed);
    shaper_done(s, 0, &b, &o, 100 * MS);
    ck_assert_int_eq(verdict(s, 100 * MS, &until), SHAPER_WAIT);
    ck_assert_int_eq(until, 3100 * MS);
    go(s, 3100 * MS, &a);
    shaper_free(s);
}
END_TEST

START_TEST(test_aimd_cut)
{
    struct cfg_route r = route(one_up, 1); /* no rate of its own */
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call k[100];
    /* 40 calls in its first second, then a 503 without Retry-After. */
    for (int i = 0; i < 40; i++)
        go(s, i * 25 * MS, &k[i]);
    for (int i = 1; i < 40; i++)
        shaper_done(s, 0, &k[i], &ok, 1000 * MS);
    struct shaper_outcome o = shaper_outcome_of(false, 503, -1);
    shaper_done(s, 0, &k[0], &o, 1100 * MS);
    ck_assert_double_eq_tol(shaper_rate(s, 0, 1100 * MS), 20, 1e-9); /* half of 40/s */
    /* At 20/s, with a burst cut to 20, about 20 + 20 x 2 calls in 2 s. */
    int64_t now = 1100 * MS, until;
    int n = 0;
    struct shaper_call x;
    while (now < 3100 * MS) {
        if (shaper_admit(s, 0, now, &x, &until) == SHAPER_GO) {
            n++;
            shaper_done(s, 0, &x, &ok, now);
        } else {
            now = until;
        }
    }
    ck_assert_msg(n >= 40 && n <= 62, "%d calls in 2 s at 20/s", n);
    /* It climbs back by a tenth of 40/s a second, then is unlimited again. */
    ck_assert(shaper_rate(s, 0, 30 * S) == 0);
    shaper_free(s);
}
END_TEST

START_TEST(test_reset)
{
    struct cfg_route r = route(one_up, 1);
    r.max_in_flight = 1;
    r.breaker = (struct breaker_policy){
        .enabled = true, .consecutive_failures = 1, .open_ms = 500, .max_open_ms = 500};
    struct cfg c = cfg_of(&r);
    struct shaper *s = shaper_new(&c);
    struct shaper_call a;
    int64_t until;
    go(s, 0, &a);
    shaper_done(s, 0, &a, &fail, 0);
    go(s, 600 * MS, &a); /* the probe, then the connection is lost */
    shaper_reset(s);
    ck_assert_int_eq(shaper_in_flight(s, 0), 0);
    go(s, 601 * MS, &a); /* the probe slot is free again */
    ck_assert(a.probe);
    ck_assert_int_eq(verdict(s, 601 * MS, &until), SHAPER_BLOCKED); /* that probe is out */
    shaper_free(s);
}
END_TEST

static Suite *shaper_suite(void)
{
    Suite *s = suite_create("shaper");
    TCase *tc = tcase_create("shaper");
    tcase_add_test(tc, test_rate_and_burst);
    tcase_add_test(tc, test_max_in_flight);
    tcase_add_test(tc, test_join);
    tcase_add_test(tc, test_least_in_flight_round_robin);
    tcase_add_test(tc, test_breaker_trial_and_open);
    tcase_add_test(tc, test_blocked_when_all_open);
    tcase_add_test(tc, test_retry_after_holds);
    tcase_add_test(tc, test_aimd_cut);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_control);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(shaper_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
