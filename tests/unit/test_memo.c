/* test_memo.c: the bounded map with expiry behind idempotency keys and
 * cached reads: replace, expiry, eviction of the oldest at the bound,
 * read-modify-write, and churn far past the bound. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memo.h"

static void key_of(unsigned n, unsigned char k[MEMO_KEY])
{
    memset(k, 0, MEMO_KEY);
    snprintf((char *)k, MEMO_KEY, "key-%u", n);
}

static void value_of(unsigned n, unsigned char v[MEMO_VALUE])
{
    memset(v, 0, MEMO_VALUE);
    snprintf((char *)v, MEMO_VALUE, "value-%u", n);
}

static bool has(struct memo *m, unsigned n, unsigned want, int64_t now)
{
    unsigned char k[MEMO_KEY], v[MEMO_VALUE], w[MEMO_VALUE];
    key_of(n, k);
    value_of(want, w);
    return memo_get(m, k, v, now) && memcmp(v, w, MEMO_VALUE) == 0;
}

static void put(struct memo *m, unsigned n, unsigned value, int64_t expires)
{
    unsigned char k[MEMO_KEY], v[MEMO_VALUE];
    key_of(n, k);
    value_of(value, v);
    ck_assert_int_eq(memo_put(m, k, v, expires), 0);
}

START_TEST(test_put_get_replace_del)
{
    struct memo *m = memo_new(10);
    put(m, 1, 100, 1000);
    put(m, 2, 200, 1000);
    ck_assert(has(m, 1, 100, 0));
    ck_assert(has(m, 2, 200, 999));
    ck_assert(!has(m, 2, 200, 1000)); /* expired at its time */
    put(m, 1, 101, 5000);
    ck_assert(has(m, 1, 101, 2000));
    ck_assert_uint_eq(memo_count(m), 2);
    unsigned char k[MEMO_KEY];
    key_of(2, k);
    memo_del(m, k);
    ck_assert(!has(m, 2, 200, 0));
    key_of(3, k);
    memo_del(m, k); /* absent: nothing */
    ck_assert_uint_eq(memo_count(m), 1);
    memo_free(m);
    memo_free(NULL);
    ck_assert_ptr_null(memo_new(0));
}
END_TEST

START_TEST(test_expire_from_oldest)
{
    struct memo *m = memo_new(100);
    for (unsigned i = 0; i < 10; i++)
        put(m, i, i, 100 + i);
    memo_expire(m, 104);
    ck_assert_uint_eq(memo_count(m), 5);
    ck_assert(!has(m, 4, 4, 0));
    ck_assert(has(m, 5, 5, 0));
    memo_free(m);
}
END_TEST

START_TEST(test_bound_evicts_oldest)
{
    struct memo *m = memo_new(50);
    for (unsigned i = 0; i < 1000; i++)
        put(m, i, i, 1 << 30);
    ck_assert_uint_eq(memo_count(m), 50);
    ck_assert(!has(m, 949, 949, 0));
    for (unsigned i = 950; i < 1000; i++)
        ck_assert(has(m, i, i, 0));
    /* Replacing keys churns dead slots without losing live ones. */
    for (unsigned round = 0; round < 20; round++)
        for (unsigned i = 990; i < 1000; i++)
            put(m, i, i + round, 1 << 30);
    for (unsigned i = 990; i < 1000; i++)
        ck_assert(has(m, i, i + 19, 0));
    memo_free(m);
}
END_TEST

static bool bump(void *value, void *arg)
{
    unsigned char *v = value;
    (*(int *)arg)++;
    v[0] = 'V';
    return true;
}

START_TEST(test_update)
{
    struct memo *m = memo_new(10);
    put(m, 1, 1, 100);
    int calls = 0;
    unsigned char k[MEMO_KEY], v[MEMO_VALUE];
    key_of(1, k);
    ck_assert(memo_update(m, k, 50, bump, &calls));
    ck_assert(memo_get(m, k, v, 50));
    ck_assert_int_eq(v[0], 'V');
    ck_assert(!memo_update(m, k, 100, bump, &calls)); /* expired */
    key_of(2, k);
    ck_assert(!memo_update(m, k, 0, bump, &calls));
    ck_assert_int_eq(calls, 1);
    memo_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memo");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_put_get_replace_del);
    tcase_add_test(tc, test_expire_from_oldest);
    tcase_add_test(tc, test_bound_evicts_oldest);
    tcase_add_test(tc, test_update);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
