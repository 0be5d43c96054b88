/* itest_metrics.c: the worker's /metrics against real traffic. Requests that
 * succeed, fail, die after retries and die unreachable go through a real
 * stack, and the test checks the exact per-route counters and histogram
 * counts, the queue gauges the worker polls from the broker (depth of the
 * requests and dead queues, fleet size) and the consumer lag. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FINAL_MS 30000
#define POLL_MS 12000 /* the worker polls the queues every 5 s */

/* scrape returns worker i's /metrics text (caller frees). */
static char *scrape(struct h_stack *s, int i)
{
    char base[96], url[128];
    h_stack_metrics_url(s, i, base, sizeof base);
    snprintf(url, sizeof url, "%s/metrics", base);
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    ck_assert_msg(r->status == 200, "GET %s answered %ld %s", url, r->status, r->err);
    char *text = strdup(r->body);
    ck_assert_ptr_nonnull(text);
    h_resp_free(r);
    return text;
}

/* find reads the value of series (name with its labels, exactly as
 * rendered) from text; false when the series is not there. */
static bool find(const char *text, const char *series, double *value)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            char *end;
            *value = strtod(p + n + 1, &end);
            return end != p + n + 1;
        }
    }
    return false;
}

static double value(const char *text, const char *series)
{
    double v = 0;
    ck_assert_msg(find(text, series, &v), "/metrics lacks %s:\n%s", series, text);
    return v;
}

static void expect(const char *text, const char *series, double want)
{
    double got = value(text, series);
    ck_assert_msg(got == want, "%s is %g, expected %g", series, got, want);
}

/* wait_value scrapes worker i until series equals want; fails after POLL_MS. */
static void wait_value(struct h_stack *s, int i, const char *series, double want)
{
    long long deadline = h_mono_ms() + POLL_MS;
    double got = -1;
    for (;;) {
        char *text = scrape(s, i);
        got = value(text, series);
        free(text);
        if (got == want) return;
        ck_assert_msg(h_mono_ms() < deadline, "%s stayed %g, expected %g", series, got, want);
        h_sleep_ms(200);
    }
}

static void submit_final(struct h_stack *s, const char *envelope, const char *state)
{
    char *id = h_submit(s, H_TOKEN, envelope);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), state);
    json_object_put(st);
    free(id);
}

static void set_route(struct h_stack *s, const char *name, const char *upstream, int max_attempts)
{
    char path[64];
    snprintf(path, sizeof path, "routes.%s", name);
    h_stack_set(s, path,
                "{\"upstreams\":[\"%s\"],\"timeout_ms\":5000,\"max_attempts\":%d,"
                "\"backoff_ms\":50,\"backoff_max_ms\":200}",
                upstream, max_attempts);
}

#define CALLS "sluice_worker_backend_calls_total"
#define ECHO_CALLS(outcome, code) CALLS "{route=\"echo\",outcome=\"" outcome "\",code=\"" code "\"}"
#define FINISHED(route, state)                                                                     \
    "sluice_worker_requests_total{route=\"" route "\",state=\"" state "\"}"

START_TEST(test_per_route_counts)
{
    struct h_stack *s = h_stack_new();
    set_route(s, "echo", h_stack_backend_url(s), 4);
    set_route(s, "idle", h_stack_backend_url(s), 4);
    set_route(s, "closed", "http://127.0.0.1:1", 1);
    h_stack_start(s, 1);

    submit_final(s, "{\"route\":\"echo\",\"path\":\"/hello\"}", "succeeded");
    submit_final(s, "{\"route\":\"echo\",\"path\":\"/status/404\"}", "failed");
    submit_final(s, "{\"route\":\"echo\",\"path\":\"/status/503\",\"max_attempts\":2}", "dead");
    submit_final(s, "{\"route\":\"closed\",\"path\":\"/x\"}", "dead");

    char *m = scrape(s, 0);
    expect(m, ECHO_CALLS("succeeded", "2xx"), 1);
    expect(m, ECHO_CALLS("failed", "4xx"), 1);
    expect(m, ECHO_CALLS("retryable", "5xx"), 2);
    expect(m, ECHO_CALLS("retryable", "4xx"), 0);
    expect(m, ECHO_CALLS("retryable", "none"), 0);
    expect(m, CALLS "{route=\"closed\",outcome=\"retryable\",code=\"none\"}", 1);
    expect(m, CALLS "{route=\"closed\",outcome=\"succeeded\",code=\"2xx\"}", 0);
    expect(m, CALLS "{route=\"idle\",outcome=\"succeeded\",code=\"2xx\"}", 0);

    expect(m, FINISHED("echo", "succeeded"), 1);
    expect(m, FINISHED("echo", "failed"), 1);
    expect(m, FINISHED("echo", "dead"), 1);
    expect(m, FINISHED("closed", "dead"), 1);
    expect(m, FINISHED("closed", "succeeded"), 0);
    expect(m, FINISHED("idle", "dead"), 0);
    expect(m, "sluice_worker_retries_total{where=\"worker\"}", 1);

    /* Four calls on echo, each timed; the local backend answers in well under 5 s. */
    expect(m, "sluice_worker_backend_seconds_count{route=\"echo\"}", 4);
    expect(m, "sluice_worker_backend_seconds_bucket{route=\"echo\",le=\"5\"}", 4);
    double sum = value(m, "sluice_worker_backend_seconds_sum{route=\"echo\"}");
    ck_assert_msg(sum > 0 && sum < 20, "echo's call seconds add up to %g", sum);
    expect(m, "sluice_worker_backend_seconds_count{route=\"closed\"}", 1);
    expect(m, "sluice_worker_backend_seconds_count{route=\"idle\"}", 0);

    /* Attempts of the three finished echo requests: 1, 1 and 2. */
    expect(m, "sluice_worker_attempts_count{route=\"echo\"}", 3);
    expect(m, "sluice_worker_attempts_sum{route=\"echo\"}", 4);
    expect(m, "sluice_worker_attempts_bucket{route=\"echo\",le=\"1\"}", 2);
    expect(m, "sluice_worker_attempts_bucket{route=\"echo\",le=\"2\"}", 3);
    expect(m, "sluice_worker_attempts_bucket{route=\"echo\",le=\"+Inf\"}", 3);
    expect(m, "sluice_worker_attempts_count{route=\"closed\"}", 1);

    /* The queue gauges come from the broker: one consumer (this worker), an
     * empty lane, and the two dead requests once polled. */
    expect(m, "sluice_queue_consumers{queue=\"lane.echo\"}", 1);
    expect(m, "sluice_queue_consumers{queue=\"dead\"}", 0);
    expect(m, "sluice_queue_messages{queue=\"lane.echo\"}", 0);
    ck_assert(value(m, "sluice_worker_queue_lag_seconds") >= 0);
    free(m);
    wait_value(s, 0, "sluice_queue_messages{queue=\"dead\"}", 2);

    /* A second worker is seen by the first one's next poll. */
    h_stack_add_worker(s);
    wait_value(s, 0, "sluice_queue_consumers{queue=\"lane.echo\"}", 2);
    wait_value(s, 1, "sluice_queue_consumers{queue=\"lane.echo\"}", 2);
    h_stack_teardown(s);
}
END_TEST

/* A request that waited in the queue for a worker shows as lag, which
 * returns to 0 once a poll finds the requests queue empty. */
START_TEST(test_queue_lag)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 0);
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/late\"}");
    h_sleep_ms(2500);
    h_stack_add_worker(s);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    json_object_put(st);

    char *m = scrape(s, 0);
    double lag = value(m, "sluice_worker_queue_lag_seconds");
    ck_assert_msg(lag >= 2 && lag < 30, "lag %g s after a 2.5 s wait", lag);
    free(m);
    wait_value(s, 0, "sluice_worker_queue_lag_seconds", 0);
    free(id);
    h_stack_teardown(s);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("worker");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_per_route_counts);
    tcase_add_test(tc, test_queue_lag);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
