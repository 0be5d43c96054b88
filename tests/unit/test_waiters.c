/* test_waiters.c: unit tests for the long-poll waiters (ingress/waiters.c):
 * a wake answers every waiter of its ID at once and no other, a deadline
 * answers its waiter when it passes (in deadline order, whatever the order
 * of adding), each waiter is answered exactly once even when a wake and its
 * deadline meet, and draining answers everyone and refuses newcomers. */
#include "waiters.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "id.h"

#define MAX_CALLS 4000

/* One waiter's record: how often and how it was answered, and when. */
struct call {
    atomic_int calls;
    atomic_bool final;
    atomic_llong at_ms;
    int64_t deadline_ms;
};

static void on_done(void *arg, bool final)
{
    struct call *c = arg;
    atomic_store(&c->final, final);
    atomic_store(&c->at_ms, clock_mono_ms());
    atomic_fetch_add(&c->calls, 1);
}

static void make_id(char id[ID_LEN + 1], int n)
{
    snprintf(id, ID_LEN + 1, "-P77-JEamh1cGyWBMKDa1FT6xIQ%05d", n);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* wait_calls waits up to ms for c to have been called once. */
static bool wait_calls(struct call *c, long ms)
{
    int64_t end = clock_mono_ms() + ms;
    while (atomic_load(&c->calls) == 0 && clock_mono_ms() < end)
        sleep_ms(1);
    return atomic_load(&c->calls) > 0;
}

START_TEST(test_wake_answers_every_waiter_of_the_id)
{
    struct waiters *w = waiters_new(NULL);
    ck_assert_ptr_nonnull(w);
    static struct call same[10], other;
    char id[ID_LEN + 1], id2[ID_LEN + 1];
    make_id(id, 1);
    make_id(id2, 2);
    int64_t far = clock_mono_ms() + 60000;
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(waiters_add(w, id, far, on_done, &same[i]), 0);
    ck_assert_int_eq(waiters_add(w, id2, far, on_done, &other), 0);
    ck_assert_uint_eq(waiters_count(w), 11);
    waiters_wake(w, id);
    for (int i = 0; i < 10; i++) {
        ck_assert(wait_calls(&same[i], 5000));
        ck_assert(atomic_load(&same[i].final));
    }
    sleep_ms(50);
    ck_assert_int_eq(atomic_load(&other.calls), 0);
    ck_assert_uint_eq(waiters_count(w), 1);
    /* A second wake of the same ID finds nobody; an unknown ID neither. */
    waiters_wake(w, id);
    waiters_wake(w, "-P77-JEamh1cGyWBMKDa1FT6xIQ99999");
    waiters_free(w); /* answers the other one, not final */
    ck_assert_int_eq(atomic_load(&other.calls), 1);
    ck_assert(!atomic_load(&other.final));
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(atomic_load(&same[i].calls), 1);
}
END_TEST

START_TEST(test_deadline)
{
    struct waiters *w = waiters_new(NULL);
    static struct call c;
    char id[ID_LEN + 1];
    make_id(id, 3);
    int64_t start = clock_mono_ms();
    ck_assert_int_eq(waiters_add(w, id, start + 100, on_done, &c), 0);
    ck_assert(wait_calls(&c, 5000));
    ck_assert(!atomic_load(&c.final));
    ck_assert_int_ge(atomic_load(&c.at_ms), start + 100);
    ck_assert_uint_eq(waiters_count(w), 0);
    waiters_free(w);
    ck_assert_int_eq(atomic_load(&c.calls), 1);
}
END_TEST

/* Many waiters with shuffled deadlines, half of them woken, some woken just
 * as their deadline passes: each is answered once, a woken one at once and
 * a timed-out one not before its deadline. */
START_TEST(test_many)
{
    static struct call calls[MAX_CALLS];
    struct waiters *w = waiters_new(NULL);
    uint64_t seed = 0x9E3779B97F4A7C15u;
    int64_t start = clock_mono_ms();
    char id[ID_LEN + 1];
    for (int i = 0; i < MAX_CALLS; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        calls[i].deadline_ms = start + 300 + (int64_t)(seed % 400);
        make_id(id, i % 1000); /* four waiters per ID */
        ck_assert_int_eq(waiters_add(w, id, calls[i].deadline_ms, on_done, &calls[i]), 0);
    }
    for (int i = 0; i < 500; i += 2) {
        make_id(id, i);
        waiters_wake(w, id);
    }
    int64_t woken = clock_mono_ms();
    sleep_ms(500 - (woken - start)); /* then wake more, racing their deadlines */
    for (int i = 1; i < 1000; i += 2) {
        make_id(id, i);
        waiters_wake(w, id);
    }
    int64_t end = clock_mono_ms() + 10000;
    while (waiters_count(w) > 0 && clock_mono_ms() < end)
        sleep_ms(5);
    ck_assert_uint_eq(waiters_count(w), 0);
    waiters_free(w);
    for (int i = 0; i < MAX_CALLS; i++) {
        ck_assert_int_eq(atomic_load(&calls[i].calls), 1);
        int n = i % 1000;
        bool woken_first = n < 500 && n % 2 == 0 && calls[i].deadline_ms > woken;
        if (woken_first) ck_assert(atomic_load(&calls[i].final));
        if (!atomic_load(&calls[i].final))
            ck_assert_int_ge(atomic_load(&calls[i].at_ms), calls[i].deadline_ms);
    }
}
END_TEST

START_TEST(test_drain)
{
    static struct call a, b, late;
    struct waiters *w = waiters_new(NULL);
    char id[ID_LEN + 1];
    make_id(id, 7);
    int64_t far = clock_mono_ms() + 60000;
    ck_assert_int_eq(waiters_add(w, id, far, on_done, &a), 0);
    ck_assert_int_eq(waiters_add(w, id, far + 1, on_done, &b), 0);
    waiters_drain(w);
    /* drain returns once every callback has returned. */
    ck_assert_int_eq(atomic_load(&a.calls), 1);
    ck_assert_int_eq(atomic_load(&b.calls), 1);
    ck_assert(!atomic_load(&a.final));
    ck_assert_int_eq(waiters_add(w, id, far, on_done, &late), -1);
    waiters_free(w);
    ck_assert_int_eq(atomic_load(&late.calls), 0);
}
END_TEST

/* A callback may run before waiters_add returns, and may add again. */
static struct waiters *readd_w;
static struct call readd_second;
static void readd(void *arg, bool final)
{
    on_done(arg, final);
    char id[ID_LEN + 1];
    make_id(id, 9);
    ck_assert_int_eq(waiters_add(readd_w, id, clock_mono_ms(), on_done, &readd_second), 0);
}

START_TEST(test_callback_adds)
{
    static struct call first;
    readd_w = waiters_new(NULL);
    char id[ID_LEN + 1];
    make_id(id, 8);
    ck_assert_int_eq(waiters_add(readd_w, id, clock_mono_ms(), readd, &first), 0);
    ck_assert(wait_calls(&readd_second, 5000));
    waiters_free(readd_w);
    ck_assert_int_eq(atomic_load(&first.calls), 1);
}
END_TEST

static Suite *waiters_suite(void)
{
    Suite *s = suite_create("waiters");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wake_answers_every_waiter_of_the_id);
    tcase_add_test(tc, test_deadline);
    tcase_add_test(tc, test_many);
    tcase_add_test(tc, test_drain);
    tcase_add_test(tc, test_callback_adds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(waiters_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
