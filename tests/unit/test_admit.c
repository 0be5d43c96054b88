/* test_admit.c: the lines of jobs waiting for their calls (worker/admit.c):
 * first in, first out per route, a due retry at the front, one route's limit
 * never holding another's jobs, the breaker_open notice given once per
 * wait, taking every job back, and a batch route's groups (one admitted
 * call, batch_max jobs at most, a rate token each). */
#include <check.h>
#include <stdlib.h>

#include "admit.h"

#define MS 1000LL

static char *ups[] = {"http://a"};

struct seen {
    uint64_t went[64];
    size_t n_went;
    uint64_t blocked[16];
    size_t n_blocked;
    size_t group_len[32]; /* jobs in each group let go, in order */
    size_t n_groups;
};

/* on_go records a group: its head, admitted, then the jobs joining its
 * call, none admitted, all of the head's group. */
static void on_go(void *arg, struct job *job)
{
    struct seen *s = arg;
    ck_assert(job->admitted);
    ck_assert_uint_ne(job->group, 0);
    uint64_t group = job->group;
    size_t n = 0;
    for (struct job *next; job; job = next, n++) {
        next = job->wait_next;
        ck_assert(n == 0 || !job->admitted);
        ck_assert_uint_eq(job->group, group);
        s->went[s->n_went++] = job->delivery_tag;
        job_free(job); /* the test's consumer: done with it */
    }
    s->group_len[s->n_groups++] = n;
}

static void on_blocked(void *arg, struct job *job)
{
    struct seen *s = arg;
    s->blocked[s->n_blocked++] = job->delivery_tag;
}

static struct job *job_of(struct cfg *c, size_t route, uint64_t tag)
{
    struct job *j = job_new(tag);
    ck_assert_ptr_nonnull(j);
    j->route = &c->routes[route];
    return j;
}

START_TEST(test_order_and_independence)
{
    struct cfg_route r[2] = {
        {.name = "slow", .upstreams = ups, .n_upstreams = 1, .max_in_flight = 1},
        {.name = "fast", .upstreams = ups, .n_upstreams = 1},
    };
    struct cfg c = {.routes = r, .n_routes = 2};
    struct shaper *sh = shaper_new(&c);
    struct admit *a = admit_new(&c, sh);
    struct seen s = {0};
    struct admit_hooks h = {.arg = &s, .go = on_go, .blocked = on_blocked};
    for (uint64_t t = 1; t <= 3; t++)
        admit_push(a, job_of(&c, 0, t), false);
    for (uint64_t t = 4; t <= 5; t++)
        admit_push(a, job_of(&c, 1, t), false);
    admit_push(a, job_of(&c, 0, 9), true); /* a due retry goes first */
    ck_assert_uint_eq(admit_waiting(a, 0), 4);
    ck_assert_int_eq(admit_pump(a, 0, &h), INT64_MAX); /* next: when a call ends */
    /* slow lets one call out (max_in_flight 1); fast is not held behind it. */
    ck_assert_uint_eq(s.n_went, 3);
    ck_assert_uint_eq(s.went[0], 9);
    ck_assert_uint_eq(s.went[1], 4);
    ck_assert_uint_eq(s.went[2], 5);
    ck_assert_uint_eq(admit_waiting(a, 0), 3);
    ck_assert_uint_eq(admit_waiting(a, 1), 0);
    ck_assert_uint_eq(admit_heads(a)[0]->delivery_tag, 1);
    ck_assert_ptr_null(admit_heads(a)[1]);
    struct shaper_call call = {.upstream = 0};
    struct shaper_outcome ok = {.retry_after_ms = -1};
    shaper_done(sh, 0, &call, &ok, 1 * MS);
    admit_pump(a, 1 * MS, &h);
    ck_assert_uint_eq(s.n_went, 4);
    ck_assert_uint_eq(s.went[3], 1);
    /* What is left comes back in line order. */
    struct job *all = admit_take_all(a);
    ck_assert_uint_eq(all->delivery_tag, 2);
    ck_assert_uint_eq(all->wait_next->delivery_tag, 3);
    ck_assert_ptr_null(all->wait_next->wait_next);
    ck_assert_uint_eq(admit_waiting(a, 0), 0);
    job_free(all->wait_next);
    job_free(all);
    admit_free(a);
    shaper_free(sh);
}
END_TEST

START_TEST(test_blocked_told_once)
{
    struct cfg_route r = {
        .name = "r",
        .upstreams = ups,
        .n_upstreams = 1,
        .breaker = {
            .enabled = true, .consecutive_failures = 1, .open_ms = 1000, .max_open_ms = 1000}};
    struct cfg c = {.routes = &r, .n_routes = 1};
    struct shaper *sh = shaper_new(&c);
    struct admit *a = admit_new(&c, sh);
    struct seen s = {0};
    struct admit_hooks h = {.arg = &s, .go = on_go, .blocked = on_blocked};
    struct shaper_call call;
    int64_t until;
    ck_assert_int_eq(shaper_admit(sh, 0, 0, &call, &until), SHAPER_GO);
    struct shaper_outcome fail = {.failed = true, .retry_after_ms = -1};
    shaper_done(sh, 0, &call, &fail, 0); /* the only upstream's breaker opens */
    admit_push(a, job_of(&c, 0, 1), false);
    admit_push(a, job_of(&c, 0, 2), false);
    ck_assert_int_eq(admit_pump(a, 10 * MS, &h), 1000 * MS);
    ck_assert_uint_eq(s.n_blocked, 2);
    admit_push(a, job_of(&c, 0, 3), false);
    admit_pump(a, 20 * MS, &h);
    ck_assert_uint_eq(s.n_blocked, 3); /* only the newcomer */
    ck_assert_uint_eq(s.blocked[2], 3);
    ck_assert_uint_eq(s.n_went, 0);
    admit_pump(a, 1000 * MS, &h); /* the probe goes, the rest wait for it */
    ck_assert_uint_eq(s.n_went, 1);
    ck_assert_uint_eq(s.went[0], 1);
    ck_assert_uint_eq(s.n_blocked, 3);
    for (struct job *j = admit_take_all(a), *next; j; j = next) {
        next = j->wait_next;
        job_free(j);
    }
    admit_free(a);
    shaper_free(sh);
}
END_TEST

/* On a route with batch_url, the head of the line takes the call and up to
 * batch_max - 1 more jobs join it, each with a rate token: one call in
 * flight carries them all. */
START_TEST(test_batch_groups)
{
    struct cfg_route r[2] = {
        {.name = "bulk",
         .upstreams = ups,
         .n_upstreams = 1,
         .batch_url = "http://a/batch",
         .batch_max = 4,
         .max_in_flight = 1,
         .rate_per_s = 10,
         .burst = 6},
        {.name = "open",
         .upstreams = ups,
         .n_upstreams = 1,
         .batch_url = "http://a/batch",
         .batch_max = 3},
    };
    struct cfg c = {.routes = r, .n_routes = 2};
    struct shaper *sh = shaper_new(&c);
    struct admit *a = admit_new(&c, sh);
    struct seen s = {0};
    struct admit_hooks h = {.arg = &s, .go = on_go, .blocked = on_blocked};
    for (uint64_t t = 1; t <= 10; t++)
        admit_push(a, job_of(&c, 0, t), false);
    ck_assert_int_eq(admit_pump(a, 0, &h), INT64_MAX);
    /* batch_max jobs in one call; the route's one call is out. */
    ck_assert_uint_eq(s.n_groups, 1);
    ck_assert_uint_eq(s.group_len[0], 4);
    ck_assert_uint_eq(s.went[3], 4);
    ck_assert_int_eq(shaper_in_flight(sh, 0), 1);
    ck_assert_uint_eq(admit_waiting(a, 0), 6);
    struct shaper_call call = {.upstream = 0};
    struct shaper_outcome ok = {.retry_after_ms = -1};
    shaper_done(sh, 0, &call, &ok, 1 * MS);
    /* Two tokens of the burst of 6 are left: a call of two. */
    admit_pump(a, 1 * MS, &h);
    ck_assert_uint_eq(s.n_groups, 2);
    ck_assert_uint_eq(s.group_len[1], 2);
    shaper_done(sh, 0, &call, &ok, 2 * MS);
    /* The bucket is empty: the next call when a token comes (10/s), alone. */
    int64_t at = admit_pump(a, 2 * MS, &h);
    ck_assert_int_ge(at, 100 * MS);
    ck_assert_int_le(at, 101 * MS);
    ck_assert_uint_eq(s.n_groups, 2);
    admit_pump(a, at, &h);
    ck_assert_uint_eq(s.n_groups, 3);
    ck_assert_uint_eq(s.group_len[2], 1);
    shaper_done(sh, 0, &call, &ok, 100 * MS);
    /* A job delivered before without an outcome neither joins nor is
     * joined: it is called alone. */
    struct job *again = job_of(&c, 0, 20);
    again->env.deliveries = 1;
    admit_push(a, again, true);
    admit_pump(a, 1000 * MS, &h); /* 9 tokens: the job alone */
    ck_assert_uint_eq(s.n_groups, 4);
    ck_assert_uint_eq(s.group_len[3], 1);
    ck_assert_uint_eq(s.went[s.n_went - 1], 20);
    shaper_done(sh, 0, &call, &ok, 1000 * MS);
    admit_pump(a, 1000 * MS, &h); /* the three left, together */
    ck_assert_uint_eq(s.n_groups, 5);
    ck_assert_uint_eq(s.group_len[4], 3);
    ck_assert_uint_eq(admit_waiting(a, 0), 0);
    /* An unlimited batch route: every waiting job goes, batch_max a call. */
    for (uint64_t t = 30; t < 37; t++)
        admit_push(a, job_of(&c, 1, t), false);
    admit_pump(a, 1000 * MS, &h);
    ck_assert_uint_eq(s.n_groups, 8);
    ck_assert_uint_eq(s.group_len[5], 3);
    ck_assert_uint_eq(s.group_len[6], 3);
    ck_assert_uint_eq(s.group_len[7], 1);
    admit_free(a);
    shaper_free(sh);
}
END_TEST

static Suite *admit_suite(void)
{
    Suite *s = suite_create("admit");
    TCase *tc = tcase_create("admit");
    tcase_add_test(tc, test_order_and_independence);
    tcase_add_test(tc, test_blocked_told_once);
    tcase_add_test(tc, test_batch_groups);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(admit_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
