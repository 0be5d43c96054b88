/* itest_statusmem.c: status memory bounded in bytes (ingress.max_status_bytes)
 * against the real broker. With a small bound, the first requests' results
 * leave the ingress's memory; a GET reads each back from the events stream
 * and answers the very document it answered before; an erased result stays
 * erased; a restarted ingress, which rebuilds its index from the stream,
 * answers the same. A read-back that fails (the broker stopped while the
 * ingress runs) answers 503 not_ready with Retry-After, and the same GET
 * answers the document once the broker is back. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N 24
#define BOUND 16384 /* about ten of these results */

/* get_doc GETs id's status and returns its body text (caller frees), checking 200. */
static char *get_doc(struct h_stack *s, const char *id)
{
    long http = 0;
    struct json_object *o = h_get_status(s, H_TOKEN, id, &http);
    ck_assert_msg(http == 200 && o, "GET %s: %ld", id, http);
    char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return text;
}

/* metric reads a counter of the ingress's /metrics, 0 when absent. */
static long metric(struct h_stack *s, const char *name)
{
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", h_stack_url(s));
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    ck_assert_int_eq(r->status, 200);
    char line[128];
    snprintf(line, sizeof line, "\n%s ", name); /* not its # HELP or # TYPE line */
    const char *p = strstr(r->body, line);
    long v = p ? strtol(p + strlen(line), NULL, 10) : 0;
    h_resp_free(r);
    return v;
}

static void erase_result(struct h_stack *s, const char *id)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s/v1/requests/%s/result", h_stack_url(s), id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", H_TOKEN);
    const char *headers[] = {auth, NULL};
    struct h_resp *r = h_request("DELETE", url, headers, NULL, 0);
    ck_assert_msg(r->status == 200, "erase: %ld %s", r->status, r->body);
    h_resp_free(r);
}

/* submit_all makes n echo requests of ~1.5 KiB results final on s and
 * keeps each one's id and first status document (caller frees both). */
static void submit_all(struct h_stack *s, int n, char *ids[], char *docs[])
{
    char pad[1201];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < n; i++) {
        char env[1500];
        snprintf(
            env, sizeof env,
            "{\"route\":\"echo\",\"method\":\"POST\",\"path\":\"/m%d\",\"body\":{\"pad\":\"%s\"}}",
            i, pad);
        ids[i] = h_submit(s, H_TOKEN, env);
        json_object_put(h_wait_final(s, H_TOKEN, ids[i], 30000));
        docs[i] = get_doc(s, ids[i]); /* the newest result: in memory */
        ck_assert_ptr_nonnull(strstr(docs[i], "\"result\":"));
    }
}

START_TEST(test_results_read_back)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "ingress.max_status_bytes", "%d", BOUND);
    h_stack_start(s, 1);
    char *ids[N], *docs[N];
    submit_all(s, N, ids, docs);
    h_sleep_ms(1500); /* the gauges are set once a second */
    ck_assert_int_eq(metric(s, "sluice_ingress_result_readbacks_total"), 0);
    /* The first ones left memory: read back, the same documents. */
    for (int i = 0; i < N; i++) {
        char *again = get_doc(s, ids[i]);
        ck_assert_str_eq(again, docs[i]);
        free(again);
    }
    ck_assert_int_ge(metric(s, "sluice_ingress_status_results_let_go"), N / 2);
    long reads = metric(s, "sluice_ingress_result_readbacks_total");
    ck_assert_msg(reads >= N / 2, "only %ld results were read back", reads);
    ck_assert_int_eq(metric(s, "sluice_ingress_result_readback_failures_total"), 0);

    /* An erased one does not come back from the stream. */
    erase_result(s, ids[0]);
    char *erased = get_doc(s, ids[0]);
    ck_assert_ptr_null(strstr(erased, "\"result\""));
    ck_assert_ptr_nonnull(strstr(erased, "\"erased\":true"));
    free(erased);

    /* A restarted ingress rebuilds the index from the stream, bound included. */
    h_stack_restart_ingress(s);
    for (int i = 0; i < N; i++) {
        char *again = get_doc(s, ids[i]);
        if (i == 0) {
            ck_assert_ptr_null(strstr(again, "\"result\""));
            ck_assert_ptr_nonnull(strstr(again, "\"erased\":true"));
        } else {
            ck_assert_str_eq(again, docs[i]);
        }
        free(again);
    }
    ck_assert_int_ge(metric(s, "sluice_ingress_result_readbacks_total"), N / 2);
    for (int i = 0; i < N; i++) {
        free(ids[i]);
        free(docs[i]);
    }
    h_stack_teardown(s);
}
END_TEST

/* get_raw GETs id's status and returns the whole answer (caller frees). */
static struct h_resp *get_raw(struct h_stack *s, const char *id)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s/v1/requests/%s", h_stack_url(s), id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", H_TOKEN);
    const char *headers[] = {auth, NULL};
    return h_request("GET", url, headers, NULL, 0);
}

START_TEST(test_failed_read_back)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "ingress.max_status_bytes", "%d", BOUND);
    h_stack_start(s, 1);
    char *ids[N], *docs[N];
    submit_all(s, N, ids, docs);
    char ready[256];
    snprintf(ready, sizeof ready, "%s/readyz", h_stack_url(s));

    /* The broker stops while the ingress runs: results still in memory are
     * answered, a let-go one cannot be read back. */
    h_broker_pause();
    h_wait_http(ready, 503, 30000, h_stack_ingress(s));
    free(get_doc(s, ids[N - 1]));
    struct h_resp *r = get_raw(s, ids[0]);
    ck_assert_msg(r->status == 503, "read-back with the broker down: %ld %s", r->status, r->body);
    ck_assert_ptr_nonnull(strstr(r->body, "\"not_ready\""));
    const char *ra = h_resp_header(r, "Retry-After");
    ck_assert_msg(ra && strtol(ra, NULL, 10) >= 1, "503 without a Retry-After");
    h_resp_free(r);
    ck_assert_int_ge(metric(s, "sluice_ingress_result_readback_failures_total"), 1);

    /* Back: the same GET answers the document it answered before. */
    h_broker_resume();
    long long deadline = h_mono_ms() + 60000;
    while ((r = get_raw(s, ids[0]))->status != 200 && h_mono_ms() < deadline) {
        ck_assert_msg(r->status == 503, "while reconnecting: %ld %s", r->status, r->body);
        h_resp_free(r);
        h_sleep_ms(200);
    }
    ck_assert_msg(r->status == 200, "after the broker came back: %ld %s", r->status, r->body);
    h_resp_free(r);
    char *again = get_doc(s, ids[0]);
    ck_assert_str_eq(again, docs[0]);
    free(again);
    for (int i = 0; i < N; i++) {
        free(ids[i]);
        free(docs[i]);
    }
    h_stack_teardown(s);
}
END_TEST

static Suite *statusmem_suite(void)
{
    Suite *s = suite_create("statusmem");
    TCase *tc = tcase_create("read_back");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_results_read_back);
    tcase_add_test(tc, test_failed_read_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(statusmem_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
