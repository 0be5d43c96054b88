/* itest_delivery.c: what every call carries (issue 13), through the real
 * ingress, broker, worker and test backend, read back from the backend's
 * echo: Standard Webhooks signatures verified by an independent
 * implementation (tests/tools/verify_webhook.py, Python's hmac) with two
 * secrets during a rotation, the client's trace continued with a span per
 * call (and a trace sluice starts, the same on every attempt), the trace in
 * the worker's log lines, and the route's set_headers and remove_headers;
 * batch delivery, and on a limited batch route one batch call in flight at
 * a time, items at the rate, a Retry-After holding the route. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define SECRET_NEW "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET_OLD "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define CLIENT_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define CLIENT_SPAN "00f067aa0ba902b7"

static struct h_stack *start(void)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "log_level", "\"debug\"");
    h_stack_set(s, "routes.signed",
                "{\"upstreams\":[\"%s\"],\"max_attempts\":3,\"backoff_ms\":10,"
                "\"backoff_max_ms\":20,\"signing_secrets\":[\"" SECRET_NEW "\",\"" SECRET_OLD
                "\"],\"set_headers\":{\"X-Env\":\"prod\",\"User-Agent\":\"sluice-test\"},"
                "\"remove_headers\":[\"X-Secret\"]}",
                h_stack_backend_url(s));
    h_stack_start(s, 1);
    return s;
}

/* verify runs the independent verifier on what the backend received. */
static void verify(struct h_stack *s, struct json_object *echo, const char *id,
                   const char *const secrets[])
{
    char path[512], log[512];
    snprintf(path, sizeof path, "%s/body.bin", h_stack_dir(s));
    snprintf(log, sizeof log, "%s/verify.log", h_stack_dir(s));
    const char *body = h_json_str(echo, "body_text");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(body, 1, strlen(body), f);
    fclose(f);
    ck_assert_str_eq(h_json_str(echo, "headers.webhook-id"), id);
    char *argv[12] = {"tests/tools/verify_webhook.py",
                      (char *)h_json_str(echo, "headers.webhook-id"),
                      (char *)h_json_str(echo, "headers.webhook-timestamp"),
                      (char *)h_json_str(echo, "headers.webhook-signature"), path};
    int n = 5;
    for (size_t i = 0; secrets[i]; i++)
        argv[n++] = (char *)secrets[i];
    argv[n] = NULL;
    ck_assert_msg(h_run("verify_webhook", log, argv, 30000) == 0,
                  "the signatures do not verify (%s): see %s",
                  h_json_str(echo, "headers.webhook-signature"), log);
}

/* log_has tells whether the worker's log has a line holding both a and b. */
static bool log_has(struct h_stack *s, const char *a, const char *b)
{
    FILE *f = h_stack_open(s, "worker-0.log");
    char line[8192];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, a) && strstr(line, b);
    fclose(f);
    return found;
}

START_TEST(test_signed_traced_and_rewritten)
{
    struct h_stack *s = start();
    char *id = h_submit(s, H_TOKEN,
                        "{\"route\":\"signed\",\"path\":\"/hook\",\"body\":{\"a\":1},"
                        "\"headers\":{\"X-Secret\":\"s3\",\"X-Keep\":\"k\",\"User-Agent\":\"c\","
                        "\"traceparent\":\"00-" CLIENT_TRACE "-" CLIENT_SPAN "-01\","
                        "\"tracestate\":\"vendor=x\"}}");
    struct json_object *st = h_wait_final(s, H_TOKEN, id, 30000);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    struct json_object *echo = h_json_at(st, "result.body");
    ck_assert_ptr_nonnull(echo);

    /* Signed with both secrets, verified independently, in their order. */
    const char *both[] = {SECRET_NEW, SECRET_OLD, NULL};
    verify(s, echo, id, both);

    /* The client's trace, a span of the worker's own, its tracestate. */
    const char *tp = h_json_str(echo, "headers.traceparent");
    ck_assert_uint_eq(strlen(tp), 55);
    ck_assert_int_eq(strncmp(tp, "00-" CLIENT_TRACE "-", 36), 0);
    ck_assert_int_ne(strncmp(tp + 36, CLIENT_SPAN, 16), 0);
    ck_assert_str_eq(h_json_str(echo, "headers.tracestate"), "vendor=x");

    /* set_headers replaced and added, remove_headers removed, the rest kept. */
    ck_assert_str_eq(h_json_str(echo, "headers.user-agent"), "sluice-test");
    ck_assert_str_eq(h_json_str(echo, "headers.x-env"), "prod");
    ck_assert_str_eq(h_json_str(echo, "headers.x-keep"), "k");
    ck_assert_ptr_null(h_json_at(echo, "headers.x-secret"));
    ck_assert_str_eq(h_json_str(echo, "headers.idempotency-key"), id);

    /* The worker's line about the call names the request and its trace. */
    ck_assert_msg(log_has(s, id, CLIENT_TRACE), "no log line with %s and its trace", id);

    json_object_put(st);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* Without a traceparent sluice starts a trace: every attempt continues it. */
START_TEST(test_trace_started_kept_across_attempts)
{
    struct h_stack *s = start();
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"signed\",\"path\":\"/flaky/1/503\"}");
    struct json_object *st = h_wait_final(s, H_TOKEN, id, 30000);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_int_eq(h_json_int(st, "attempts"), 2);
    struct json_object *echo = h_json_at(st, "result.body");
    const char *tp = h_json_str(echo, "headers.traceparent");
    char trace[33], span[17];
    ck_assert_uint_eq(strlen(tp), 55);
    memcpy(trace, tp + 3, 32);
    trace[32] = '\0';
    memcpy(span, tp + 36, 16);
    span[16] = '\0';
    /* The first attempt's line (the 503) has the same trace, another span. */
    char first[128], second[128];
    snprintf(first, sizeof first, "attempt 1, trace %s, span", trace);
    snprintf(second, sizeof second, "attempt 2, trace %s, span %s", trace, span);
    ck_assert_msg(log_has(s, id, first), "attempt 1 of %s not logged with trace %s", id, trace);
    ck_assert_msg(log_has(s, id, second), "attempt 2 of %s not logged with %s", id, second);
    ck_assert_msg(!log_has(s, first, span), "both attempts had span %s", span);
    const char *one[] = {SECRET_NEW, SECRET_OLD, NULL};
    verify(s, echo, id, one);
    json_object_put(st);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* The transparent form: the client's traceparent header travels too, and a
 * body that is not JSON is signed exactly as sent. */
START_TEST(test_transparent_form)
{
    struct h_stack *s = start();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/routes/signed/t?q=1", h_stack_url(s));
    const char *headers[] = {"Authorization: Bearer " H_TOKEN, "Content-Type: text/plain",
                             "traceparent: 00-" CLIENT_TRACE "-" CLIENT_SPAN "-00", NULL};
    const char *body = "caf\xc3\xa9 & \"quotes\"\n";
    struct h_resp *r = h_request("PUT", url, headers, body, strlen(body));
    ck_assert_int_eq(r->status, 202);
    struct json_object *a = h_resp_json(r);
    char *id = strdup(h_json_str(a, "id"));
    json_object_put(a);
    h_resp_free(r);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, 30000);
    struct json_object *echo = h_json_at(st, "result.body");
    ck_assert_str_eq(h_json_str(echo, "body_text"), body);
    const char *tp = h_json_str(echo, "headers.traceparent");
    ck_assert_int_eq(strncmp(tp, "00-" CLIENT_TRACE "-", 36), 0);
    ck_assert_str_eq(tp + 53, "00"); /* the client's flags: not sampled */
    const char *both[] = {SECRET_NEW, SECRET_OLD, NULL};
    verify(s, echo, id, both);
    /* A verifier holding only the old secret finds its signature too. */
    const char *old_only[] = {SECRET_OLD, NULL};
    char path[512], log[512];
    snprintf(path, sizeof path, "%s/body.bin", h_stack_dir(s));
    snprintf(log, sizeof log, "%s/verify-wrong.log", h_stack_dir(s));
    char *argv[] = {"tests/tools/verify_webhook.py",
                    id,
                    (char *)h_json_str(echo, "headers.webhook-timestamp"),
                    (char *)h_json_str(echo, "headers.webhook-signature"),
                    path,
                    (char *)old_only[0],
                    NULL};
    ck_assert_msg(h_run("verify_webhook", log, argv, 30000) != 0,
                  "one secret verified two signatures: the verifier checks nothing");
    json_object_put(st);
    free(id);

    /* The envelope form: a traceparent HTTP header on the submission. */
    snprintf(url, sizeof url, "%s/v1/requests", h_stack_url(s));
    const char *env = "{\"route\":\"signed\",\"path\":\"/e\"}";
    const char *env_headers[] = {"Authorization: Bearer " H_TOKEN, "Content-Type: application/json",
                                 "traceparent: 00-" CLIENT_TRACE "-" CLIENT_SPAN "-01", NULL};
    r = h_request("POST", url, env_headers, env, strlen(env));
    ck_assert_int_eq(r->status, 202);
    a = h_resp_json(r);
    id = strdup(h_json_str(a, "id"));
    json_object_put(a);
    h_resp_free(r);
    st = h_wait_final(s, H_TOKEN, id, 30000);
    tp = h_json_str(st, "result.body.headers.traceparent");
    ck_assert_int_eq(strncmp(tp, "00-" CLIENT_TRACE "-", 36), 0);
    json_object_put(st);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* ---- batch delivery ---- */

#define BATCH_N 24

/* batch_stack starts a stack whose route "bulk" takes batches of up to 10
 * from a backend that dumps each batch call's body (and signature) into
 * <dir>/dump and answers after delay_ms ("0": at once); batch_query is
 * appended to its batch URL, limits (members) to the route. No worker yet;
 * the backend's base URL goes to url. */
static struct h_stack *batch_stack(struct h_proc **backend, const char *batch_query,
                                   const char *limits, const char *delay_ms, char url[256])
{
    struct h_stack *s = h_stack_new();
    char dump[512], cmd[600];
    snprintf(dump, sizeof dump, "%s/dump", h_stack_dir(s));
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dump);
    ck_assert_int_eq(system(cmd), 0);
    const char *extra[] = {"--batch-dump", dump, "--delay-ms", delay_ms, NULL};
    *backend = h_backend_spawn(s, "bulk", 0, extra, url, 256);
    h_stack_set(s, "log_level", "\"debug\"");
    h_stack_set(s, "routes.bulk",
                "{\"upstreams\":[\"%s\"],\"batch_url\":\"%s/batch%s\",\"batch_max\":10,"
                "\"max_attempts\":3,\"backoff_ms\":10,%s,"
                "\"signing_secrets\":[\"" SECRET_NEW "\"],\"set_headers\":{\"X-Env\":\"prod\"}}",
                url, url, batch_query, limits);
    h_stack_start(s, 0);
    return s;
}

static void stop_backend(struct h_proc *p)
{
    h_proc_stop(p, 5000);
    h_proc_free(p);
}

START_TEST(test_batch_delivery)
{
    struct h_proc *backend;
    char url[256];
    struct h_stack *s = batch_stack(&backend, "", "\"backoff_max_ms\":50", "0", url);
    char *ids[BATCH_N], env[512];
    for (int i = 0; i < BATCH_N; i++) {
        const char *path = i == 3   ? "/missing"
                           : i == 5 ? "/flaky/1/503"
                           : i == 7 ? "/status/404"
                                    : "/ok";
        snprintf(env, sizeof env,
                 "{\"route\":\"bulk\",\"path\":\"%s\",\"query\":\"i=%d\",\"body\":{\"i\":%d},"
                 "\"headers\":{\"X-Item\":\"%d\"}}",
                 path, i, i, i);
        ids[i] = h_submit(s, H_TOKEN, env);
    }
    h_stack_add_worker(s);
    for (int i = 0; i < BATCH_N; i++) {
        struct json_object *st = h_wait_final(s, H_TOKEN, ids[i], 30000);
        const char *want = i == 3 ? "dead" : i == 7 ? "failed" : "succeeded";
        ck_assert_msg(!strcmp(h_json_str(st, "status"), want), "request %d is %s, not %s", i,
                      h_json_str(st, "status"), want);
        if (i == 3) {
            /* Missing from every answer: retried alone, up to max_attempts. */
            ck_assert_int_eq(h_json_int(st, "attempts"), 3);
        } else if (i == 5) {
            ck_assert_int_eq(h_json_int(st, "attempts"), 2);
        } else if (i == 7) {
            ck_assert_int_eq(h_json_int(st, "result.status"), 404);
        } else {
            /* The item as the backend got it: body, headers, trace. */
            ck_assert_int_eq(h_json_int(st, "attempts"), 1);
            ck_assert_int_eq(h_json_int(st, "result.body.body.i"), i);
            ck_assert_str_eq(h_json_str(st, "result.body.method"), "POST");
            char q[16];
            snprintf(q, sizeof q, "i=%d", i);
            ck_assert_str_eq(h_json_str(st, "result.body.query"), q);
            ck_assert_str_eq(h_json_str(st, "result.body.headers.X-Env"), "prod");
            ck_assert_str_eq(h_json_str(st, "result.body.headers.Idempotency-Key"), ids[i]);
            const char *tp = h_json_str(st, "result.body.headers.traceparent");
            char trace[33];
            ck_assert_uint_eq(strlen(tp), 55);
            snprintf(trace, sizeof trace, "%.32s", tp + 3);
            ck_assert_msg(log_has(s, ids[i], trace), "no log line with %s and trace %s", ids[i],
                          trace);
            ck_assert_ptr_null(h_json_at(st, "result.body.headers.webhook-signature"));
        }
        json_object_put(st);
    }

    /* Fewer calls than requests, none above batch_max, each signed. */
    char path[512];
    snprintf(path, sizeof path, "%s/bulk-access.log", h_stack_dir(s));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int calls = 0, items = 0;
    while (fgets(line, sizeof line, f)) {
        const char *n = strstr(line, "items=");
        if (!n) continue;
        int k = (int)strtol(n + 6, NULL, 10);
        ck_assert_int_le(k, 10);
        calls++;
        items += k;
    }
    fclose(f);
    ck_assert_int_eq(items, BATCH_N + 1 + 2); /* a retry of 5, two of 3 */
    ck_assert_int_lt(calls, items / 2);
    snprintf(path, sizeof path, "ls %s/dump/*.json | head -1 > %s/first", h_stack_dir(s),
             h_stack_dir(s));
    ck_assert_int_eq(system(path), 0);
    FILE *first = h_stack_open(s, "first");
    char body[512], sig[512], ts[64], msg_id[128];
    ck_assert_ptr_nonnull(fgets(body, sizeof body, first));
    fclose(first);
    body[strcspn(body, "\n")] = '\0';
    const char *slash = strrchr(body, '/');
    snprintf(msg_id, sizeof msg_id, "%.*s", (int)(strlen(slash + 1) - 5), slash + 1);
    snprintf(path, sizeof path, "%.*s.sig", (int)(strlen(body) - 5), body);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(ts, sizeof ts, f));
    ck_assert_ptr_nonnull(fgets(sig, sizeof sig, f));
    fclose(f);
    ts[strcspn(ts, "\n")] = '\0';
    sig[strcspn(sig, "\n")] = '\0';
    char log[512];
    snprintf(log, sizeof log, "%s/verify-batch.log", h_stack_dir(s));
    char *argv[] = {"tests/tools/verify_webhook.py", msg_id, ts, sig, body, SECRET_NEW, NULL};
    ck_assert_msg(h_run("verify_webhook", log, argv, 30000) == 0,
                  "the batch call's signature does not verify: see %s", log);
    for (int i = 0; i < BATCH_N; i++)
        free(ids[i]);
    stop_backend(backend);
    h_stack_teardown(s);
}
END_TEST

/* A batch call that fails whole: every item is retried on its own. */
START_TEST(test_batch_call_failed_whole)
{
    struct h_proc *backend;
    char url[256];
    struct h_stack *s = batch_stack(&backend, "?fail_first=1", "\"backoff_max_ms\":50", "0", url);
    char *ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = h_submit(s, H_TOKEN, "{\"route\":\"bulk\",\"path\":\"/ok\"}");
    h_stack_add_worker(s);
    int retried = 0;
    for (int i = 0; i < 5; i++) {
        struct json_object *st = h_wait_final(s, H_TOKEN, ids[i], 30000);
        ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
        ck_assert_int_le(h_json_int(st, "attempts"), 2);
        retried += h_json_int(st, "attempts") == 2;
        json_object_put(st);
        free(ids[i]);
    }
    /* The first call failed whole: its items (at least one) took 2 attempts. */
    ck_assert_int_ge(retried, 1);
    stop_backend(backend);
    h_stack_teardown(s);
}
END_TEST

/* ---- a limited batch route ---- */

#define LIMITED_N 60
#define LIMITED_RATE 25
#define LIMITED_BURST 10
#define LIMITED_DELAY_MS 200

/* batch_call is one batch call as the backend's access log has it. */
struct batch_call {
    long long us; /* when it arrived */
    int items;
};

/* read_batch_calls reads the bulk backend's access log into calls (at most
 * max) and returns how many there are. */
static int read_batch_calls(struct h_stack *s, struct batch_call *calls, int max)
{
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/bulk-access.log", h_stack_dir(s));
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        const char *items = strstr(line, "items=");
        if (!items) continue;
        calls[n].us = strtoll(line, NULL, 10);
        calls[n++].items = (int)strtol(items + 6, NULL, 10);
    }
    fclose(f);
    return n;
}

/* A batch route with max_in_flight 1 and a rate: a batch call is one call
 * in flight and each item one call toward the rate, so batches are whole
 * calls of many items, one at a time, at the rate in items; the first
 * call's 503 with Retry-After: 1 holds the route a second. */
START_TEST(test_batch_limited)
{
    struct h_proc *backend;
    char url[256], limits[256], delay[16];
    snprintf(limits, sizeof limits,
             "\"backoff_max_ms\":2000,\"max_in_flight\":1,\"rate_per_s\":%d,\"burst\":%d",
             LIMITED_RATE, LIMITED_BURST);
    snprintf(delay, sizeof delay, "%d", LIMITED_DELAY_MS);
    struct h_stack *s = batch_stack(&backend, "?fail_first=1&retry_after=1", limits, delay, url);
    char *ids[LIMITED_N];
    for (int i = 0; i < LIMITED_N; i++)
        ids[i] = h_submit(s, H_TOKEN, "{\"route\":\"bulk\",\"path\":\"/ok\"}");
    h_stack_add_worker(s);
    for (int i = 0; i < LIMITED_N; i++) {
        struct json_object *st = h_wait_final(s, H_TOKEN, ids[i], 60000);
        ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
        json_object_put(st);
        free(ids[i]);
    }
    /* One batch call at a time, as the backend saw them. */
    ck_assert_int_eq(h_backend_stat(url, "max_in_flight", false), 1);
    struct batch_call calls[LIMITED_N * 3];
    int n = read_batch_calls(s, calls, LIMITED_N * 3), items = 0, most = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_int_le(calls[i].items, 10);
        items += calls[i].items;
        if (calls[i].items > most) most = calls[i].items;
    }
    /* Batches of many: the first takes the whole burst. */
    ck_assert_msg(most >= LIMITED_BURST, "%d calls of at most %d items", n, most);
    ck_assert_int_ge(items, LIMITED_N);
    /* The 503 with Retry-After: 1 held the route: no call for 1 s after it. */
    ck_assert_int_ge(n, 2);
    ck_assert_msg(calls[1].us - calls[0].us >= 1000000,
                  "the second call came %lld ms after the 503", (calls[1].us - calls[0].us) / 1000);
    /* Items in any 1 s: at most burst + rate (the bucket's bound on the
     * admissions), plus what 200 ms of variation between an admission and
     * its arrival at the backend (the claim) can add at the rate. */
    int bound = LIMITED_BURST + LIMITED_RATE + LIMITED_RATE / 5, busiest = 0;
    for (int i = 0; i < n; i++) {
        int in_window = 0;
        for (int k = i; k < n && calls[k].us < calls[i].us + 1000000; k++)
            in_window += calls[k].items;
        if (in_window > busiest) busiest = in_window;
    }
    printf("limited batch route: %d items in %d calls, at most %d a call, %d in the busiest "
           "second (bound %d), %.1f s from the first call to the last\n",
           items, n, most, busiest, bound, (double)(calls[n - 1].us - calls[0].us) / 1e6);
    ck_assert_msg(busiest <= bound, "%d items in one second (bound %d)", busiest, bound);
    stop_backend(backend);
    h_stack_teardown(s);
}
END_TEST

static Suite *delivery_suite(void)
{
    Suite *s = suite_create("delivery");
    TCase *tc = tcase_create("calls");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_signed_traced_and_rewritten);
    tcase_add_test(tc, test_trace_started_kept_across_attempts);
    tcase_add_test(tc, test_transparent_form);
    suite_add_tcase(s, tc);
    tc = tcase_create("batch");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_batch_delivery);
    tcase_add_test(tc, test_batch_call_failed_whole);
    tcase_add_test(tc, test_batch_limited);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(delivery_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
