/* test_results.c: what a finished backend call means (worker/results.c):
 * 2xx succeeded; 408, 429, 5xx and transport errors are retried until
 * max_attempts (the route's, or the envelope's when lower), then dead; other
 * answers fail at once; a Retry-After replaces the jitter, capped by
 * backoff_max_ms; a delay under retry_hold_max_ms is held in the worker,
 * longer ones go to a retry queue. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "results.h"

static struct cfg cfg;
static struct cfg_route route;

static void setup(void)
{
    route = (struct cfg_route){.name = "r",
                               .timeout_ms = 1000,
                               .max_attempts = 3,
                               .backoff_ms = 100,
                               .backoff_max_ms = 1000};
    cfg = (struct cfg){.routes = &route, .n_routes = 1};
    cfg.worker.retry_hold_max_ms = 500;
}

/* call makes a job that made `attempts` calls before this one, and whose
 * call ended with curl code cc and HTTP status (0: no answer). */
static struct job *call(int attempts, CURLcode cc, long status, long retry_after_ms)
{
    struct job *j = job_new(1);
    ck_assert_ptr_nonnull(j);
    j->route = &route;
    j->env.attempts = attempts;
    j->curl_code = cc;
    j->http_status = status;
    j->retry_after_ms = retry_after_ms;
    buf_init(&j->resp_body, 1024);
    buf_init(&j->resp_headers, 1024);
    if (status) ck_assert_int_eq(buf_appends(&j->resp_body, "{\"ok\":1}"), 0);
    j->json_body = true;
    return j;
}

static const char *error_code(const struct job *j, char *out, size_t len)
{
    ck_assert_ptr_nonnull(j->error_json);
    struct json_object *o = json_tokener_parse(j->error_json), *c;
    ck_assert_ptr_nonnull(o);
    ck_assert(json_object_object_get_ex(o, "code", &c));
    snprintf(out, len, "%s", json_object_get_string(c));
    json_object_put(o);
    return out;
}

START_TEST(test_succeeded)
{
    struct job *j = call(0, CURLE_OK, 201, -1);
    results_settle(j, &cfg, 42);
    ck_assert_int_eq(j->state, ST_SUCCEEDED);
    ck_assert_int_eq(j->next, NEXT_FINAL);
    ck_assert_int_eq(j->env.attempts, 1);
    ck_assert_ptr_nonnull(strstr(j->result_json, "\"status\":201"));
    ck_assert_ptr_null(j->error_json);
    job_free(j);
}
END_TEST

START_TEST(test_retryable_answers)
{
    static const long statuses[] = {408, 429, 500, 502, 503, 599};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        struct job *j = call(0, CURLE_OK, statuses[i], -1);
        results_settle(j, &cfg, (uint64_t)i * 7919);
        ck_assert_msg(j->state == ST_RETRYING, "%ld not retried", statuses[i]);
        ck_assert_int_ge(j->delay_ms, 0);
        ck_assert_int_le(j->delay_ms, backoff_ceiling_ms(100, 1000, 1));
        ck_assert_int_eq(j->next, NEXT_HOLD); /* at most 100 ms: held */
        job_free(j);
    }
}
END_TEST

START_TEST(test_failed_answers)
{
    static const long statuses[] = {301, 400, 401, 404, 409, 422};
    char code[64];
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        struct job *j = call(0, CURLE_OK, statuses[i], -1);
        results_settle(j, &cfg, 1);
        ck_assert_msg(j->state == ST_FAILED, "%ld not failed", statuses[i]);
        ck_assert_int_eq(j->next, NEXT_FINAL);
        ck_assert_str_eq(error_code(j, code, sizeof code), "backend_rejected");
        ck_assert_ptr_nonnull(j->result_json); /* the backend's answer is kept */
        job_free(j);
    }
}
END_TEST

START_TEST(test_exhausted)
{
    char code[64];
    struct job *j = call(2, CURLE_OK, 503, -1); /* the third of 3 calls */
    results_settle(j, &cfg, 1);
    ck_assert_int_eq(j->state, ST_DEAD);
    ck_assert_int_eq(j->next, NEXT_FINAL);
    ck_assert_int_eq(j->env.attempts, 3);
    ck_assert_str_eq(error_code(j, code, sizeof code), "retries_exhausted");
    job_free(j);
    /* The envelope's max_attempts lowers the route's. */
    j = call(0, CURLE_OK, 503, -1);
    j->env.max_attempts = 1;
    results_settle(j, &cfg, 1);
    ck_assert_int_eq(j->state, ST_DEAD);
    job_free(j);
    /* ... and never raises it. */
    j = call(2, CURLE_OK, 503, -1);
    j->env.max_attempts = 10;
    results_settle(j, &cfg, 1);
    ck_assert_int_eq(j->state, ST_DEAD);
    job_free(j);
}
END_TEST

START_TEST(test_transport_errors)
{
    char code[64];
    struct job *j = call(0, CURLE_COULDNT_CONNECT, 0, -1);
    results_settle(j, &cfg, 5);
    ck_assert_int_eq(j->state, ST_RETRYING);
    ck_assert_ptr_null(j->result_json);
    job_free(j);
    j = call(2, CURLE_OPERATION_TIMEDOUT, 0, -1);
    results_settle(j, &cfg, 5);
    ck_assert_int_eq(j->state, ST_DEAD);
    ck_assert_str_eq(error_code(j, code, sizeof code), "backend_timeout");
    job_free(j);
    j = call(2, CURLE_COULDNT_CONNECT, 0, -1);
    results_settle(j, &cfg, 5);
    ck_assert_str_eq(error_code(j, code, sizeof code), "backend_unreachable");
    job_free(j);
    /* A malformed upstream URL is a configuration error: retrying cannot help. */
    j = call(0, CURLE_URL_MALFORMAT, 0, -1);
    results_settle(j, &cfg, 5);
    ck_assert_int_eq(j->state, ST_FAILED);
    ck_assert_str_eq(error_code(j, code, sizeof code), "backend_unreachable");
    job_free(j);
}
END_TEST

START_TEST(test_retry_after)
{
    /* Honoured as given, replacing the jitter... */
    struct job *j = call(0, CURLE_OK, 429, 300);
    results_settle(j, &cfg, 123456789);
    ck_assert_int_eq(j->delay_ms, 300);
    ck_assert_int_eq(j->next, NEXT_HOLD); /* under retry_hold_max_ms (500) */
    job_free(j);
    /* ... up to backoff_max_ms, then in a retry queue. */
    j = call(0, CURLE_OK, 503, 60000);
    results_settle(j, &cfg, 1);
    ck_assert_int_eq(j->delay_ms, 1000);
    ck_assert_int_eq(j->next, NEXT_RETRY_QUEUE);
    job_free(j);
    /* Zero means now. */
    j = call(0, CURLE_OK, 503, 0);
    results_settle(j, &cfg, 1);
    ck_assert_int_eq(j->delay_ms, 0);
    ck_assert_int_eq(j->next, NEXT_HOLD);
    job_free(j);
}
END_TEST

START_TEST(test_hold_or_queue)
{
    /* Later retries have higher ceilings: with backoff 100..1000 ms and a
     * hold limit of 500 ms, some delays are held and some are queued. */
    int held = 0, queued = 0;
    uint64_t rnd = 77;
    route.max_attempts = 10;
    for (int i = 0; i < 2000; i++) {
        struct job *j = call(4, CURLE_OK, 503, -1); /* the 5th call: ceiling 1000 ms */
        results_settle(j, &cfg, backoff_rand(&rnd));
        ck_assert_int_le(j->delay_ms, backoff_ceiling_ms(100, 1000, 5));
        bool hold = j->delay_ms < 500;
        ck_assert_int_eq(j->next, hold ? NEXT_HOLD : NEXT_RETRY_QUEUE);
        held += hold;
        queued += !hold;
        job_free(j);
    }
    ck_assert_int_gt(held, 0);
    ck_assert_int_gt(queued, 0);
}
END_TEST

START_TEST(test_fail)
{
    char code[64];
    struct job *j = job_new(1);
    results_fail(j, "unknown_route", "gone");
    ck_assert_int_eq(j->state, ST_DEAD);
    ck_assert_int_eq(j->next, NEXT_FINAL);
    ck_assert_str_eq(error_code(j, code, sizeof code), "unknown_route");
    job_free(j);
}
END_TEST

static Suite *results_suite(void)
{
    Suite *s = suite_create("results");
    TCase *tc = tcase_create("results");
    tcase_set_timeout(tc, 30); /* random walks: slow under the sanitizers on a busy machine */
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_succeeded);
    tcase_add_test(tc, test_retryable_answers);
    tcase_add_test(tc, test_failed_answers);
    tcase_add_test(tc, test_exhausted);
    tcase_add_test(tc, test_transport_errors);
    tcase_add_test(tc, test_retry_after);
    tcase_add_test(tc, test_hold_or_queue);
    tcase_add_test(tc, test_fail);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(results_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
