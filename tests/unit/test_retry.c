/* test_retry.c: the worker's heap of held retries and the rounding of retry
 * queue delays (worker/retry.c): order, ties, interleaved pushes and pops
 * against a sorted model, and growth past the first capacity. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"

static struct job *job_due(int64_t due)
{
    struct job *j = calloc(1, sizeof *j);
    ck_assert_ptr_nonnull(j);
    j->due_ms = due;
    return j;
}

START_TEST(test_order)
{
    static const int64_t dues[] = {50, 10, 40, 10, 30, 20, 60, 0};
    struct retry_heap h;
    retry_heap_init(&h);
    ck_assert_ptr_null(retry_heap_peek(&h));
    ck_assert_ptr_null(retry_heap_pop(&h));
    for (size_t i = 0; i < 8; i++)
        ck_assert_int_eq(retry_heap_push(&h, job_due(dues[i])), 0);
    ck_assert_int_eq(retry_heap_peek(&h)->due_ms, 0);
    int64_t prev = -1;
    for (int i = 0; i < 8; i++) {
        struct job *j = retry_heap_pop(&h);
        ck_assert_int_ge(j->due_ms, prev);
        prev = j->due_ms;
        free(j);
    }
    ck_assert_uint_eq(h.n, 0);
    retry_heap_free(&h);
}
END_TEST

/* Random pushes and pops, checked against a sorted array of the due times
 * the heap should hold. */
START_TEST(test_random)
{
    enum { STEPS = 20000, MAX = 4096 };
    int64_t *model = malloc(MAX * sizeof *model);
    size_t n = 0;
    struct retry_heap h;
    retry_heap_init(&h);
    unsigned seed = 99;
    for (int step = 0; step < STEPS; step++) {
        bool push = n == 0 || (n < MAX && rand_r(&seed) % 3 != 0);
        if (push) {
            int64_t due = rand_r(&seed) % 1000; /* many ties */
            ck_assert_int_eq(retry_heap_push(&h, job_due(due)), 0);
            size_t at = 0; /* insert in order */
            while (at < n && model[at] <= due)
                at++;
            memmove(model + at + 1, model + at, (n - at) * sizeof *model);
            model[at] = due;
            n++;
        } else {
            struct job *j = retry_heap_pop(&h);
            ck_assert_int_eq(j->due_ms, model[0]);
            memmove(model, model + 1, --n * sizeof *model);
            free(j);
        }
        ck_assert_uint_eq(h.n, n);
        if (n) ck_assert_int_eq(retry_heap_peek(&h)->due_ms, model[0]);
    }
    struct job *j;
    while ((j = retry_heap_pop(&h)))
        free(j);
    retry_heap_free(&h);
    free(model);
}
END_TEST

START_TEST(test_queue_delay)
{
    ck_assert_int_eq(retry_queue_delay_ms(0), 1000);
    ck_assert_int_eq(retry_queue_delay_ms(1), 1000);
    ck_assert_int_eq(retry_queue_delay_ms(1000), 1000);
    ck_assert_int_eq(retry_queue_delay_ms(1001), 2000);
    ck_assert_int_eq(retry_queue_delay_ms(59999), 60000);
    ck_assert_int_eq(retry_queue_delay_ms(-5), 1000);
}
END_TEST

static Suite *retry_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    tcase_set_timeout(tc, 30); /* random walks: slow under the sanitizers on a busy machine */
    tcase_add_test(tc, test_order);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_queue_delay);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(retry_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
