/* test_acks.c: the multiple-ack guard (worker/acks.c). A batch is settled
 * with one multiple ack of its newest tag only when no delivery the worker
 * still holds outside it is older (another batch in flight, the forming
 * batch, a held retry, a job waiting for its call) and none of its own jobs
 * is to be dead-lettered. */
#include <check.h>
#include <stdlib.h>

#include "acks.h"

/* batch_of makes a batch of jobs with the given tags (0 ends the list). */
static struct batch *batch_of(const uint64_t *tags)
{
    struct batch *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    for (; *tags; tags++)
        ck_assert_int_eq(batch_push(b, job_new(*tags)), 0);
    return b;
}

START_TEST(test_alone)
{
    struct batch *b = batch_of((const uint64_t[]){3, 1, 7, 5, 0});
    struct acks_others o = {.inflight = b};
    ck_assert_uint_eq(acks_multiple_tag(b, &o), 7);
    batch_free(b);
}
END_TEST

START_TEST(test_older_batch_in_flight)
{
    struct batch *old = batch_of((const uint64_t[]){2, 9, 0});
    struct batch *b = batch_of((const uint64_t[]){4, 6, 0});
    b->next = old;
    struct acks_others o = {.inflight = b};
    ck_assert_uint_eq(acks_multiple_tag(b, &o), 0); /* 2 is older than 6 */
    /* Settling old instead: b's 4 and 6 are older than old's newest, 9. */
    ck_assert_uint_eq(acks_multiple_tag(old, &o), 0);
    batch_free(old);
    batch_free(b);
}
END_TEST

START_TEST(test_newer_elsewhere)
{
    struct batch *b = batch_of((const uint64_t[]){1, 2, 3, 0});
    struct batch *later = batch_of((const uint64_t[]){4, 5, 0});
    struct batch *forming = batch_of((const uint64_t[]){6, 0});
    struct retry_heap held;
    retry_heap_init(&held);
    struct job *h = job_new(8);
    ck_assert_int_eq(retry_heap_push(&held, h), 0);
    later->next = b;
    struct acks_others o = {.inflight = later, .forming = forming, .held = &held};
    ck_assert_uint_eq(acks_multiple_tag(b, &o), 3);
    retry_heap_pop(&held);
    job_free(h);
    retry_heap_free(&held);
    batch_free(b);
    batch_free(later);
    batch_free(forming);
}
END_TEST

START_TEST(test_older_held_or_forming)
{
    struct batch *b = batch_of((const uint64_t[]){5, 6, 0});
    struct batch *forming = batch_of((const uint64_t[]){4, 0});
    struct acks_others o = {.inflight = b, .forming = forming};
    ck_assert_uint_eq(acks_multiple_tag(b, &o), 0);
    struct retry_heap held;
    retry_heap_init(&held);
    struct job *h = job_new(1); /* a held retry delivered before the batch */
    ck_assert_int_eq(retry_heap_push(&held, h), 0);
    struct acks_others o2 = {.inflight = b, .held = &held};
    ck_assert_uint_eq(acks_multiple_tag(b, &o2), 0);
    retry_heap_pop(&held);
    job_free(h);
    retry_heap_free(&held);
    batch_free(b);
    batch_free(forming);
}
END_TEST

START_TEST(test_dead_letter_job)
{
    struct batch *b = batch_of((const uint64_t[]){1, 2, 0});
    b->jobs[0]->dead_letter = true; /* nacked alone: no multiple ack may cover it */
    struct acks_others o = {.inflight = b};
    ck_assert_uint_eq(acks_multiple_tag(b, &o), 0);
    batch_free(b);
}
END_TEST

START_TEST(test_older_waiting)
{
    struct batch *b = batch_of((const uint64_t[]){5, 6, 0});
    struct job *w1 = job_new(9), *w2 = job_new(3), *w3 = job_new(8);
    w1->wait_next = w2; /* one line holds 9 then 3, another 8 */
    struct job *lines[3] = {w1, NULL, w3};
    struct acks_others o = {.inflight = b, .lines = lines, .n_lines = 3};
    ck_assert_uint_eq(acks_multiple_tag(b, &o), 0); /* 3 waits, older than 6 */
    w1->wait_next = NULL;
    ck_assert_uint_eq(acks_multiple_tag(b, &o), 6); /* only newer ones wait */
    job_free(w1);
    job_free(w2);
    job_free(w3);
    batch_free(b);
}
END_TEST

static Suite *acks_suite(void)
{
    Suite *s = suite_create("acks");
    TCase *tc = tcase_create("acks");
    tcase_add_test(tc, test_alone);
    tcase_add_test(tc, test_older_batch_in_flight);
    tcase_add_test(tc, test_newer_elsewhere);
    tcase_add_test(tc, test_older_held_or_forming);
    tcase_add_test(tc, test_dead_letter_job);
    tcase_add_test(tc, test_older_waiting);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(acks_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
