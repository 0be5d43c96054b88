/* test_keylimits.c: per-key limits without a server: the bucket's admissions
 * over time, its share among live replicas, the headers' figures, and the
 * queue quota from the status index plus what is pending here. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keylimits.h"

#define T0 INT64_C(1795428000000)
#define SEC INT64_C(1000000)

static const char DOC[] =
    "{\"keys\":["
    "{\"id\":\"fast\",\"tenant\":\"acme\",\"rate_per_s\":10,\"burst\":20,\"secret_sha256\":"
    "\"a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720\"},"
    "{\"id\":\"quota\",\"tenant\":\"acme\",\"max_queued\":3,\"secret_sha256\":"
    "\"863d63c0bd3a94bfca84ed2063a7355a226faff82ca50b90158bf183aa1a9e61\"},"
    "{\"id\":\"free\",\"tenant\":\"globex\",\"secret_sha256\":"
    "\"7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c\"}]}";

static struct cfg cfg;
static struct status_index *idx;

static void setup(void)
{
    char err[256];
    ck_assert_msg(cfg_load_string(&cfg, DOC, "t", err, sizeof err) == 0, "%s", err);
    idx = status_index_new(1000, 3600000);
}

static void teardown(void)
{
    status_index_free(idx);
    cfg_free(&cfg);
}

/* admitted counts the admissions of key over seconds at n calls a second. */
static int admitted(struct limits *l, const struct cfg_key *k, int seconds, int per_s,
                    int64_t start_us)
{
    int ok = 0;
    struct limit_info info;
    for (int i = 0; i < seconds * per_s; i++) {
        int64_t t = start_us + (int64_t)i * SEC / per_s;
        ok += limits_rate(l, k, T0, t, &info);
    }
    return ok;
}

START_TEST(test_bucket)
{
    struct limits *l = limits_new(&cfg, idx, NULL, "self");
    const struct cfg_key *fast = &cfg.keys[0], *free_key = &cfg.keys[2];
    /* 10 s at 100 calls/s: the burst plus the rate times the time. */
    int n = admitted(l, fast, 10, 100, 1000 * SEC);
    ck_assert_int_ge(n, 20 + 100 - 1);
    ck_assert_int_le(n, 20 + 100 + 1);
    struct limit_info info;
    while (limits_rate(l, fast, T0, 1010 * SEC, &info)) {
    }
    ck_assert(info.limited);
    ck_assert_int_eq(info.limit, 20);
    ck_assert_int_eq(info.remaining, 0);
    ck_assert_int_eq(info.retry_after_s, 1);
    ck_assert_int_eq(info.reset_s, 2); /* 20 tokens at 10/s */
    limits_peek(l, fast, T0, 1011 * SEC + SEC / 2, &info);
    ck_assert_int_eq(info.remaining, 15);
    /* A key without a rate is never limited and has no headers. */
    ck_assert_int_eq(admitted(l, free_key, 1, 1000, 0), 1000);
    limits_peek(l, free_key, T0, 0, &info);
    ck_assert(!info.limited);
    limits_free(l);
}
END_TEST

START_TEST(test_shared_by_replicas)
{
    struct limits *l = limits_new(&cfg, idx, NULL, "self");
    const struct cfg_key *fast = &cfg.keys[0];
    ck_assert_int_eq(limits_replicas(l, T0), 1);
    limits_heartbeat(l, "other", T0, T0);
    limits_heartbeat(l, "self", T0, T0);            /* its own never counts twice */
    limits_heartbeat(l, "ancient", T0 - 60000, T0); /* replayed from the stream */
    ck_assert_int_eq(limits_replicas(l, T0 + 1000), 2);
    /* Two replicas: this one runs at half the rate and half the burst. */
    int n = admitted(l, fast, 10, 100, 1000 * SEC);
    ck_assert_int_ge(n, 10 + 50 - 1);
    ck_assert_int_le(n, 10 + 50 + 1);
    struct limit_info info;
    limits_peek(l, fast, T0, 1030 * SEC, &info);
    ck_assert_int_eq(info.limit, 20);
    ck_assert_int_eq(info.remaining, 20); /* 10 local tokens stand for 20 */
    /* The other goes silent: after LIMITS_ALIVE_MS this one takes it all. */
    ck_assert_int_eq(limits_replicas(l, T0 + LIMITS_ALIVE_MS + 1), 1);
    limits_free(l);
}
END_TEST

START_TEST(test_quota)
{
    struct limits *l = limits_new(&cfg, idx, NULL, "self");
    const struct cfg_key *quota = &cfg.keys[1];
    struct limit_info info;
    char id[ID_LEN + 1];
    /* Two open requests in the index and one pending here fill the quota of 3. */
    for (int i = 0; i < 2; i++) {
        snprintf(id, sizeof id, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%c", (char)('0' + i));
        struct status_update u = {.id = id,
                                  .state = ST_QUEUED,
                                  .tenant = "acme",
                                  .route = "r",
                                  .created_ms = T0,
                                  .ts_ms = T0};
        ck_assert_int_eq(status_index_apply(idx, &u), 0);
    }
    ck_assert(limits_rate(l, quota, T0, 0, &info));
    ck_assert(!info.limited);
    ck_assert(limits_queue(l, quota, quota->tenant));
    ck_assert(!limits_queue(l, quota, quota->tenant));
    /* A key of the same tenant without max_queued is not held back, and
     * what it has pending counts towards the tenant's quota. */
    ck_assert(limits_queue(l, &cfg.keys[0], cfg.keys[0].tenant));
    limits_done(l, quota);
    ck_assert(!limits_queue(l, quota, quota->tenant));
    limits_done(l, &cfg.keys[0]);
    limits_done(l, quota);
    snprintf(id, sizeof id, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0");
    struct status_update done = {.id = id,
                                 .state = ST_SUCCEEDED,
                                 .tenant = "acme",
                                 .route = "r",
                                 .created_ms = T0,
                                 .ts_ms = T0 + 1};
    ck_assert_int_eq(status_index_apply(idx, &done), 0);
    ck_assert(limits_queue(l, quota, quota->tenant));
    limits_done(l, quota);
    limits_free(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bucket);
    tcase_add_test(tc, test_shared_by_replicas);
    tcase_add_test(tc, test_quota);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
