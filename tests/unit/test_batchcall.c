/* test_batchcall.c: unit tests for batch delivery's documents
 * (worker/batchcall.c): the request document (bodies as JSON, text or
 * base64, headers as a single call's, an item's own trace) and how an
 * answer is given to each job (found by id, missing, malformed, a whole
 * call that failed), checked through results_settle's verdicts. */
#include "batchcall.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "results.h"

static struct cfg cfg;

static struct job *job(const char *id, const char *ctype, const char *body)
{
    struct job *j = job_new(1);
    snprintf(j->env.id, sizeof j->env.id, "%s", id);
    j->env.method = strdup("POST");
    j->env.path = strdup("/p");
    j->env.route = strdup("r");
    j->env.content_type = ctype ? strdup(ctype) : NULL;
    j->env.body = (unsigned char *)strdup(body);
    j->env.body_len = strlen(body);
    j->route = cfg_route_find(&cfg, "r", 1);
    return j;
}

static void setup(void)
{
    char err[256];
    const char *doc = "{\"routes\":{\"r\":{\"upstreams\":[\"http://b\"],\"batch_url\":"
                      "\"http://b/batch\",\"max_attempts\":3,\"set_headers\":{\"X-A\":\"1\"}}}}";
    ck_assert_msg(cfg_load_string(&cfg, doc, "t.json", err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
    cfg_free(&cfg);
}

START_TEST(test_request_document)
{
    struct job *jobs[3] = {job("A", "application/json", "{\"x\":1}"), job("B", "text/plain", "hi"),
                           job("C", NULL, "\xff\x00")};
    jobs[2]->env.body_len = 2;
    struct buf b;
    buf_init(&b, 1 << 20);
    ck_assert_int_eq(batchcall_request_body(&b, jobs, 3, 1), 0);
    struct json_object *d = json_parse(b.data, b.len, NULL, 0);
    ck_assert_ptr_nonnull(d);
    struct json_object *reqs, *item, *v;
    ck_assert(json_object_object_get_ex(d, "requests", &reqs));
    ck_assert_uint_eq(json_object_array_length(reqs), 3);
    item = json_object_array_get_idx(reqs, 0);
    ck_assert(json_object_object_get_ex(item, "body", &v));
    ck_assert_int_eq(json_object_get_int(json_object_object_get(v, "x")), 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(item, "id")), "A");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(item, "method")), "POST");
    ck_assert(json_object_object_get_ex(item, "headers", &v));
    ck_assert_str_eq(json_object_get_string(json_object_object_get(v, "X-A")), "1");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(v, "Idempotency-Key")), "A");
    ck_assert_ptr_null(json_object_object_get(v, "webhook-signature"));
    const char *tp = json_object_get_string(json_object_object_get(v, "traceparent"));
    ck_assert_uint_eq(strlen(tp), 55);
    ck_assert_int_eq(strncmp(tp + 3, jobs[0]->trace_id, 32), 0);
    item = json_object_array_get_idx(reqs, 1);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(item, "body_text")), "hi");
    item = json_object_array_get_idx(reqs, 2);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(item, "body_base64")), "/wA=");
    json_object_put(d);
    buf_free(&b);
    for (int i = 0; i < 3; i++)
        job_free(jobs[i]);
}
END_TEST

START_TEST(test_answer_applied)
{
    struct job *jobs[4] = {job("A", NULL, ""), job("B", NULL, ""), job("C", NULL, ""),
                           job("D", NULL, "")};
    const char *answer =
        "{\"results\":[{\"id\":\"B\",\"status\":503,\"headers\":{\"Retry-After\":\"1\"}},"
        "{\"id\":\"A\",\"status\":200,\"headers\":{\"X-R\":\"y\"},\"body\":{\"ok\":true}},"
        "{\"id\":\"D\",\"status\":\"x\"}]}";
    batchcall_apply(jobs, 4, CURLE_OK, 200, answer, strlen(answer), 1 << 20);
    ck_assert_int_eq(jobs[0]->http_status, 200);
    ck_assert(jobs[0]->json_body);
    ck_assert_str_eq(jobs[0]->resp_body.data, "{\"ok\":true}");
    ck_assert_int_eq(jobs[1]->http_status, 503);
    ck_assert_int_eq(jobs[1]->retry_after_ms, 1000);
    ck_assert_int_ne(jobs[2]->curl_code, CURLE_OK); /* missing */
    ck_assert_str_eq(jobs[2]->curl_error, "missing from the batch answer");
    ck_assert_int_ne(jobs[3]->curl_code, CURLE_OK); /* malformed */
    results_settle(jobs[0], &cfg, 1);
    ck_assert_int_eq(jobs[0]->state, ST_SUCCEEDED);
    ck_assert_ptr_nonnull(strstr(jobs[0]->result_json, "\"X-R\":\"y\""));
    ck_assert_ptr_nonnull(strstr(jobs[0]->result_json, "\"body\":{\"ok\":true}"));
    for (int i = 1; i < 4; i++) {
        results_settle(jobs[i], &cfg, 1);
        ck_assert_int_eq(jobs[i]->state, ST_RETRYING);
    }
    for (int i = 0; i < 4; i++)
        job_free(jobs[i]);
}
END_TEST

START_TEST(test_failed_call_retries_every_item)
{
    struct job *jobs[2] = {job("A", NULL, ""), job("B", NULL, "")};
    batchcall_apply(jobs, 2, CURLE_OK, 500, "{\"results\":[]}", 14, 1 << 20);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(jobs[i]->curl_error, "the batch call answered 500");
        results_settle(jobs[i], &cfg, 1);
        ck_assert_int_eq(jobs[i]->state, ST_RETRYING);
    }
    batchcall_apply(jobs, 2, CURLE_COULDNT_CONNECT, 0, NULL, 0, 1 << 20);
    ck_assert_int_eq(jobs[0]->curl_code, CURLE_COULDNT_CONNECT);
    batchcall_apply(jobs, 2, CURLE_OK, 200, "[1]", 3, 1 << 20);
    ck_assert_ptr_nonnull(strstr(jobs[1]->curl_error, "results"));
    /* An answer past result_max is cut and marked truncated. */
    const char *big = "{\"results\":[{\"id\":\"A\",\"status\":200,\"body_text\":\"0123456789\"}]}";
    batchcall_apply(jobs, 1, CURLE_OK, 200, big, strlen(big), 4);
    ck_assert(jobs[0]->truncated);
    ck_assert_uint_eq(jobs[0]->resp_body.len, 4);
    for (int i = 0; i < 2; i++)
        job_free(jobs[i]);
}
END_TEST

static Suite *batchcall_suite(void)
{
    Suite *s = suite_create("batchcall");
    TCase *tc = tcase_create("batchcall");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_request_document);
    tcase_add_test(tc, test_answer_applied);
    tcase_add_test(tc, test_failed_call_retries_every_item);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(batchcall_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
