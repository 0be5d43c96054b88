/* test_arbiter.c: the verdicts between cancels and claims, fed the same
 * message sequences every reader of the claims stream sees: the order
 * decides, replicas agree, and memory stays bounded. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter.h"
#include "id.h"

#define T0 INT64_C(1795428000000)
#define HOUR INT64_C(3600000)

static const char alphabet[] = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

static void make_id(unsigned long n, char out[ID_LEN + 1])
{
    memset(out, 'A', ID_LEN);
    out[ID_LEN] = '\0';
    for (int i = ID_LEN - 1; i >= 0 && n > 0; i--, n /= 64)
        out[i] = alphabet[n % 64];
}

/* What the sink heard. */
struct heard {
    int claims, refused, cancels, effective;
    char last[ID_LEN + 1];
};

static void on_claim(void *arg, const char *id, bool cancelled)
{
    struct heard *h = arg;
    h->claims++;
    h->refused += cancelled;
    memcpy(h->last, id, ID_LEN + 1);
}

static void on_cancel(void *arg, const char *id, bool effective)
{
    struct heard *h = arg;
    h->cancels++;
    h->effective += effective;
    memcpy(h->last, id, ID_LEN + 1);
}

static struct heard feed_claim(struct arbiter *a, const char *const *ids, size_t n, int64_t ts)
{
    struct buf b;
    struct heard h = {0};
    const struct arbiter_sink sink = {&h, on_claim, on_cancel};
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(arbiter_claim_msg(&b, ids, n, ts), 0);
    ck_assert_int_eq(arbiter_feed(a, b.data, b.len, &sink), 0);
    buf_free(&b);
    return h;
}

static bool feed_cancel(struct arbiter *a, const char *id, int64_t ts)
{
    struct buf b;
    struct heard h = {0};
    const struct arbiter_sink sink = {&h, on_claim, on_cancel};
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(arbiter_cancel_msg(&b, id, ts), 0);
    ck_assert_int_eq(arbiter_feed(a, b.data, b.len, &sink), 0);
    buf_free(&b);
    ck_assert_int_eq(h.cancels, 1);
    ck_assert_str_eq(h.last, id);
    return h.effective == 1;
}

START_TEST(test_order_decides)
{
    struct arbiter *a = arbiter_new(1000, 1000, HOUR);
    char x[ID_LEN + 1], y[ID_LEN + 1], z[ID_LEN + 1];
    make_id(1, x);
    make_id(2, y);
    make_id(3, z);
    /* Cancel before any claim: effective, and the later claim is refused. */
    ck_assert(feed_cancel(a, x, T0));
    const char *batch[] = {x, y};
    struct heard h = feed_claim(a, batch, 2, T0 + 1);
    ck_assert_int_eq(h.claims, 2);
    ck_assert_int_eq(h.refused, 1);
    /* Claimed first: the cancel loses, and so does every later one. */
    ck_assert(!feed_cancel(a, y, T0 + 2));
    ck_assert(!feed_cancel(a, y, T0 + 3));
    /* A second cancel of a cancelled request is still effective (idempotent),
     * and a redelivered copy's claim is refused again. */
    ck_assert(feed_cancel(a, x, T0 + 4));
    const char *again[] = {x};
    ck_assert_int_eq(feed_claim(a, again, 1, T0 + 5).refused, 1);
    /* A request nobody touched stays cancellable. */
    ck_assert(feed_cancel(a, z, T0 + 6));
    arbiter_free(a);
}
END_TEST

START_TEST(test_readers_agree)
{
    /* Two readers fed the same interleaving reach the same verdicts, which
     * is what lets an ingress and a worker agree without talking. */
    struct arbiter *ingress = arbiter_new(5000, 5000, HOUR),
                   *worker = arbiter_new(5000, 5000, HOUR);
    char ids[200][ID_LEN + 1];
    for (int i = 0; i < 200; i++)
        make_id(100 + (unsigned long)i, ids[i]);
    int won = 0;
    for (int i = 0; i < 200; i++) {
        bool cancel_first = i % 3 == 0;
        const char *one[] = {ids[i]};
        struct arbiter *rd[2] = {ingress, worker};
        bool verdict[2], refused[2];
        for (int r = 0; r < 2; r++) {
            if (cancel_first) verdict[r] = feed_cancel(rd[r], ids[i], T0 + i);
            refused[r] = feed_claim(rd[r], one, 1, T0 + i).refused == 1;
            if (!cancel_first) verdict[r] = feed_cancel(rd[r], ids[i], T0 + i);
        }
        ck_assert_int_eq(verdict[0], verdict[1]);
        ck_assert_int_eq(refused[0], refused[1]);
        /* Effective exactly when the claim is refused: cancelled means never called. */
        ck_assert_int_eq(verdict[0], refused[0]);
        won += verdict[0];
    }
    ck_assert_int_eq(won, 67);
    arbiter_free(ingress);
    arbiter_free(worker);
}
END_TEST

START_TEST(test_retention_and_bound)
{
    struct arbiter *a = arbiter_new(100, 10, HOUR);
    char x[ID_LEN + 1], id[ID_LEN + 1];
    make_id(7, x);
    const char *one[] = {x};
    feed_claim(a, one, 1, T0);
    /* An hour of other messages later, the claim is forgotten. */
    make_id(8, id);
    ck_assert(feed_cancel(a, id, T0 + HOUR + 1));
    ck_assert(feed_cancel(a, x, T0 + HOUR + 2));
    /* At most max_claims are remembered, the oldest forgotten first. */
    for (unsigned long i = 0; i < 1000; i++) {
        make_id(1000 + i, id);
        const char *c[] = {id};
        feed_claim(a, c, 1, T0 + 2 * HOUR);
    }
    ck_assert_uint_eq(arbiter_claims(a), 100);
    make_id(1000, id);
    ck_assert(feed_cancel(a, id, T0 + 2 * HOUR)); /* forgotten: cancellable again */
    make_id(1999, id);
    ck_assert(!feed_cancel(a, id, T0 + 2 * HOUR));
    arbiter_free(a);
}
END_TEST

static const char *const malformed[] = {
    "",
    "{}",
    "{\"v\":1,\"ts\":1}",
    "{\"v\":2,\"ts\":1,\"cancel\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    "{\"v\":1,\"cancel\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    "{\"v\":1,\"ts\":-1,\"cancel\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    "{\"v\":1,\"ts\":1,\"cancel\":\"short\"}",
    "{\"v\":1,\"ts\":1,\"cancel\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.\"}",
    "{\"v\":1,\"ts\":1,\"claim\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    "{\"v\":1,\"ts\":1,\"claim\":[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",5]}",
    "{\"v\":1,\"ts\":1,\"claim\":[],\"cancel\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    "{\"v\":1,\"ts\":1,\"claim\":[]} x",
};

START_TEST(test_malformed_applies_nothing)
{
    struct arbiter *a = arbiter_new(10, 10, HOUR);
    struct heard h = {0};
    const struct arbiter_sink sink = {&h, on_claim, on_cancel};
    const char *m = malformed[_i];
    ck_assert_msg(arbiter_feed(a, m, strlen(m), &sink) == -1, "accepted: %s", m);
    ck_assert_int_eq(h.claims + h.cancels, 0);
    /* A claim whose second ID is bad applies not even the first. */
    const char *bad = "{\"v\":1,\"ts\":1,\"claim\":[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\",\"x\"]}";
    ck_assert_int_eq(arbiter_feed(a, bad, strlen(bad), &sink), -1);
    ck_assert_uint_eq(arbiter_claims(a), 0);
    arbiter_free(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arbiter");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_order_decides);
    tcase_add_test(tc, test_readers_agree);
    tcase_add_test(tc, test_retention_and_bound);
    tcase_add_loop_test(tc, test_malformed_applies_nothing, 0,
                        (int)(sizeof malformed / sizeof malformed[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
