/* test_confirms.c: matching publisher confirms to publishes (common/confirms.c):
 * single and multiple acks, out of order, nacks, returns before their ack,
 * loss of the connection, callbacks that track new publishes, and a random
 * walk checked against a plain model: every publish is reported once. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "confirms.h"

#define N 4096

/* got[token] counts reports per token; last[token] is the last outcome. */
struct seen {
    int got[N];
    enum confirm_outcome last[N];
    struct confirms *c; /* for the callback that tracks more */
    uint64_t next_seq;
    int adds_left;
};

static void on(void *arg, void *token, enum confirm_outcome o)
{
    struct seen *s = arg;
    uintptr_t t = (uintptr_t)token;
    ck_assert_uint_lt(t, N);
    s->got[t]++;
    s->last[t] = o;
    /* Track a new publish from inside the callback, as the worker may. */
    if (s->adds_left > 0) {
        s->adds_left--;
        uint64_t seq = s->next_seq++;
        ck_assert_int_eq(confirms_add(s->c, seq, (void *)(uintptr_t)seq, NULL, 0), 0);
    }
}

static void add(struct confirms *c, uint64_t seq, const char *id)
{
    amqp_bytes_t b = {.len = id ? strlen(id) : 0, .bytes = (void *)id};
    ck_assert_int_eq(confirms_add(c, seq, (void *)(uintptr_t)seq, id ? &b : NULL, (int64_t)seq), 0);
}

static const char *ID_A = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static const char *ID_B = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

START_TEST(test_multiple_and_single)
{
    struct confirms c;
    struct seen *s = calloc(1, sizeof *s);
    confirms_init(&c);
    for (uint64_t q = 1; q <= 6; q++)
        add(&c, q, NULL);
    confirms_ack(&c, 4, false, true, on, s); /* out of order */
    ck_assert_int_eq(s->got[4], 1);
    confirms_ack(&c, 3, true, true, on, s);
    for (int q = 1; q <= 4; q++)
        ck_assert_int_eq(s->got[q], 1);
    ck_assert_uint_eq(confirms_pending(&c), 2);
    confirms_ack(&c, 4, false, true, on, s);  /* again: ignored */
    confirms_ack(&c, 99, false, true, on, s); /* unknown: ignored */
    ck_assert_int_eq(s->got[4], 1);
    confirms_ack(&c, 6, true, false, on, s);
    ck_assert_int_eq(s->last[5], CONFIRM_NACKED);
    ck_assert_int_eq(s->last[6], CONFIRM_NACKED);
    ck_assert_uint_eq(confirms_pending(&c), 0);
    confirms_free(&c);
    free(s);
}
END_TEST

START_TEST(test_return_then_ack)
{
    struct confirms c;
    struct seen *s = calloc(1, sizeof *s);
    confirms_init(&c);
    add(&c, 1, ID_A);
    add(&c, 2, ID_B);
    add(&c, 3, NULL);
    add(&c, 4, ID_B); /* the same ID twice: the oldest unsettled is returned first */
    ck_assert(confirms_return(&c, (amqp_bytes_t){.len = 32, .bytes = (void *)ID_B}));
    ck_assert(!confirms_return(&c, (amqp_bytes_t){.len = 5, .bytes = "short"}));
    confirms_ack(&c, 4, true, true, on, s);
    ck_assert_int_eq(s->last[1], CONFIRM_ACKED);
    ck_assert_int_eq(s->last[2], CONFIRM_RETURNED);
    ck_assert_int_eq(s->last[3], CONFIRM_ACKED);
    ck_assert_int_eq(s->last[4], CONFIRM_ACKED);
    /* A returned message the broker also nacks is still reported returned. */
    add(&c, 5, ID_A);
    ck_assert(confirms_return(&c, (amqp_bytes_t){.len = 32, .bytes = (void *)ID_A}));
    confirms_ack(&c, 5, false, false, on, s);
    ck_assert_int_eq(s->last[5], CONFIRM_RETURNED);
    confirms_free(&c);
    free(s);
}
END_TEST

START_TEST(test_lose)
{
    struct confirms c;
    struct seen *s = calloc(1, sizeof *s);
    confirms_init(&c);
    for (uint64_t q = 1; q <= 300; q++) /* past the first capacity */
        add(&c, q, NULL);
    confirms_ack(&c, 150, false, true, on, s);
    confirms_lose(&c, on, s);
    for (int q = 1; q <= 300; q++) {
        ck_assert_int_eq(s->got[q], 1);
        ck_assert_int_eq(s->last[q], q == 150 ? CONFIRM_ACKED : CONFIRM_LOST);
    }
    ck_assert_uint_eq(confirms_pending(&c), 0);
    confirms_free(&c);
    free(s);
}
END_TEST

START_TEST(test_callback_adds)
{
    struct confirms c;
    struct seen *s = calloc(1, sizeof *s);
    confirms_init(&c);
    s->c = &c;
    for (uint64_t q = 1; q <= 64; q++) /* a full ring: the callback's adds grow it */
        add(&c, q, NULL);
    s->next_seq = 65;
    s->adds_left = 100;
    confirms_ack(&c, 64, true, true, on, s);
    for (int q = 1; q <= 64; q++)
        ck_assert_int_eq(s->got[q], 1);
    ck_assert_uint_eq(confirms_pending(&c), 64);
    s->adds_left = 0;
    confirms_ack(&c, 1000, true, true, on, s);
    for (int q = 65; q <= 128; q++)
        ck_assert_int_eq(s->got[q], 1);
    confirms_free(&c);
    free(s);
}
END_TEST

/* A random walk of publishes, single and multiple acks and nacks, checked
 * against a model: each publish is reported once, with its outcome. */
START_TEST(test_random)
{
    struct confirms c;
    struct seen *s = calloc(1, sizeof *s);
    bool *settled = calloc(N, sizeof *settled);
    confirms_init(&c);
    unsigned seed = 12345;
    uint64_t next = 1;
    for (int step = 0; step < 20000 && next < N; step++) {
        int r = rand_r(&seed) % 10;
        if (r < 5 || next == 1) {
            add(&c, next++, NULL);
            continue;
        }
        uint64_t tag = 1 + (uint64_t)rand_r(&seed) % (next - 1);
        bool multiple = r >= 8, ok = r != 9;
        confirms_ack(&c, tag, multiple, ok, on, s);
        for (uint64_t q = multiple ? 1 : tag; q <= tag; q++)
            settled[q] = true;
        if (step % 64 == 0)
            for (uint64_t q = 1; q < next; q++)
                ck_assert_int_eq(s->got[q], settled[q] ? 1 : 0);
    }
    confirms_lose(&c, on, s);
    for (uint64_t q = 1; q < next; q++) {
        ck_assert_int_eq(s->got[q], 1);
        if (!settled[q]) ck_assert_int_eq(s->last[q], CONFIRM_LOST);
    }
    confirms_free(&c);
    free(settled);
    free(s);
}
END_TEST

START_TEST(test_oldest)
{
    struct confirms c;
    struct seen *s = calloc(1, sizeof *s);
    int64_t sent = -1;
    confirms_init(&c);
    ck_assert(!confirms_oldest(&c, &sent));
    for (uint64_t q = 1; q <= 3; q++)
        add(&c, q, NULL); /* sent at q */
    confirms_ack(&c, 1, false, true, on, s);
    ck_assert(confirms_oldest(&c, &sent));
    ck_assert_int_eq(sent, 2);
    /* Its neighbour's ack out of order leaves the oldest as it was. */
    confirms_ack(&c, 3, false, true, on, s);
    ck_assert(confirms_oldest(&c, &sent));
    ck_assert_int_eq(sent, 2);
    confirms_ack(&c, 2, false, false, on, s);
    ck_assert(!confirms_oldest(&c, &sent));
    confirms_free(&c);
    free(s);
}
END_TEST

static Suite *confirms_suite(void)
{
    Suite *s = suite_create("confirms");
    TCase *tc = tcase_create("confirms");
    tcase_set_timeout(tc, 30); /* random walks: slow under the sanitizers on a busy machine */
    tcase_add_test(tc, test_multiple_and_single);
    tcase_add_test(tc, test_oldest);
    tcase_add_test(tc, test_return_then_ack);
    tcase_add_test(tc, test_lose);
    tcase_add_test(tc, test_callback_adds);
    tcase_add_test(tc, test_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(confirms_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
