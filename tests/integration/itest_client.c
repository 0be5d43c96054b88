/* itest_client.c: the client contract of issue 11 end to end, against the
 * real broker, binaries and backend: long-poll (GET /v1/requests/<id>?wait=S
 * answers at the final state or at the deadline, many waiters at once, no
 * wait for what cannot be waited on, everyone answered at shutdown), batch
 * submission (mixed items, the limit, a broker that stops confirming), and
 * strict JSON through the API. */
#include <check.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FINAL_MS 30000
#define CONFIRM_TIMEOUT_MS 1000
#define N_WAITERS 10

/* ---- HTTP helpers beyond the harness ---- */

static struct h_resp *call(struct h_stack *s, const char *method, const char *path,
                           const char *token, const char *body)
{
    char url[1024], auth[256];
    const char *headers[3] = {NULL};
    size_t n = 0;
    snprintf(url, sizeof url, "%s%s", h_stack_url(s), path);
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers[n++] = auth;
    }
    if (body) headers[n++] = "Content-Type: application/json";
    return h_request(method, url, headers, body, body ? strlen(body) : 0);
}

/* get_wait GETs the status of id with ?<query> and says how long it took. */
static struct h_resp *get_wait(struct h_stack *s, const char *token, const char *id,
                               const char *query, long long *ms)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/requests/%s%s%s", id, query ? "?" : "", query ? query : "");
    long long t0 = h_mono_ms();
    struct h_resp *r = call(s, "GET", path, token, NULL);
    *ms = h_mono_ms() - t0;
    return r;
}

/* expect_code checks an answer's status and error code, then frees it. */
static void expect_code(struct h_resp *r, long status, const char *code, const char *what)
{
    ck_assert_msg(r->status == status, "%s: answered %ld, want %ld: %.300s", what, r->status,
                  status, r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o, "%s: not JSON: %.300s", what, r->body);
    ck_assert_msg(strcmp(h_json_str(o, "error.code"), code) == 0, "%s: %s, want %s", what, r->body,
                  code);
    json_object_put(o);
    h_resp_free(r);
}

/* status_of returns the "status" of a 200 status answer and frees it. */
static char *status_of(struct h_resp *r, const char *what)
{
    ck_assert_msg(r->status == 200, "%s: answered %ld: %.300s", what, r->status, r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o, "%s: not JSON: %.300s", what, r->body);
    char *st = strdup(h_json_str(o, "status"));
    json_object_put(o);
    h_resp_free(r);
    return st;
}

static bool is_final(const char *st)
{
    return !strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "dead");
}

/* Concurrent long-polls through one curl multi handle. */
struct poll_one {
    CURL *h;
    char *body;
    size_t len;
    long status;
    long long done_ms; /* h_mono_ms() when the answer was complete; 0 before */
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct poll_one *q = arg;
    char *b = realloc(q->body, q->len + size * n + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b + q->len, p, size * n);
    q->len += size * n;
    b[q->len] = '\0';
    q->body = b;
    return size * n;
}

/* polls_start starts n GETs of url at once; polls_finish runs them to the end. */
static CURLM *polls_start(struct poll_one *q, size_t n, const char *url, struct curl_slist *hdr)
{
    CURLM *m = curl_multi_init();
    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i < n; i++) {
        memset(&q[i], 0, sizeof q[i]);
        q[i].h = curl_easy_init();
        curl_easy_setopt(q[i].h, CURLOPT_URL, url);
        curl_easy_setopt(q[i].h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(q[i].h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(q[i].h, CURLOPT_WRITEDATA, &q[i]);
        curl_easy_setopt(q[i].h, CURLOPT_PRIVATE, &q[i]);
        curl_easy_setopt(q[i].h, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(q[i].h, CURLOPT_NOPROXY, "*");
        curl_multi_add_handle(m, q[i].h);
    }
    int running = 0;
    curl_multi_perform(m, &running);
    return m;
}

/* polls_run drives m for up to ms, recording answers as they complete;
 * returns how many are still running. */
static int polls_run(CURLM *m, long ms)
{
    long long end = h_mono_ms() + ms;
    int running = 1;
    while (running && h_mono_ms() < end) {
        curl_multi_poll(m, NULL, 0, 50, NULL);
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            struct poll_one *q;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &q->status);
            q->done_ms = h_mono_ms();
        }
    }
    return running;
}

static void polls_free(CURLM *m, struct poll_one *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, q[i].h);
        curl_easy_cleanup(q[i].h);
        free(q[i].body);
    }
    curl_multi_cleanup(m);
}

/* start_stack starts a stack with one worker; extra is more of the ingress
 * object's members. Route "private" exists, and H_OTHER_TOKEN may not use it. */
static struct h_stack *start_stack(const char *extra)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "routes.private", "{\"upstreams\":[\"%s\"]}", h_stack_backend_url(s));
    h_stack_set(s, "ingress",
                "{\"threads\":2,\"max_body_bytes\":1048576,\"status_retention_s\":86400,"
                "\"max_status_entries\":1000000,\"confirm_timeout_ms\":%d%s}",
                CONFIRM_TIMEOUT_MS, extra);
    h_stack_start(s, 1);
    return s;
}

/* ---- long-poll ---- */

/* One stack, every case of a single wait: it returns at the final state
 * (not at its deadline), at the deadline with the status as it is (even
 * past connection_timeout_s, and cut to max_wait_s), at once for a final,
 * unknown or other tenant's request, and refuses a malformed wait. */
START_TEST(test_long_poll)
{
    struct h_stack *s = start_stack(",\"connection_timeout_s\":2,\"max_wait_s\":5");
    long long ms;

    /* Early on the final state: the backend takes 1.5 s, the wait allows 5. */
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/delay/1500\"}");
    char *st = status_of(get_wait(s, H_TOKEN, id, "wait=5", &ms), "wait for a final state");
    ck_assert_msg(!strcmp(st, "succeeded"), "wait answered %s", st);
    ck_assert_msg(ms >= 1000 && ms < 4500, "the wait took %lld ms, want about 1500", ms);
    fprintf(stderr, "long-poll: final after %lld ms (backend 1500 ms)\n", ms);
    free(st);
    /* Final already: at once. */
    free(status_of(get_wait(s, H_TOKEN, id, "wait=5", &ms), "wait on a final request"));
    ck_assert_msg(ms < 1000, "waiting on a final request took %lld ms", ms);
    /* wait=0 and no wait answer at once. */
    free(status_of(get_wait(s, H_TOKEN, id, "wait=0", &ms), "wait=0"));
    ck_assert_msg(ms < 1000, "wait=0 took %lld ms", ms);
    free(id);

    /* Time is up first: the status as it is, after 3 s, past the 2 s
     * connection timeout (a resumed connection is not closed as idle). */
    id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/delay/9000\"}");
    st = status_of(get_wait(s, H_TOKEN, id, "wait=3", &ms), "wait past the deadline");
    ck_assert_msg(!is_final(st), "a 9 s request is %s after 3 s", st);
    ck_assert_msg(ms >= 2900 && ms < 6000, "wait=3 took %lld ms", ms);
    free(st);
    /* Cut to max_wait_s (5). */
    st = status_of(get_wait(s, H_TOKEN, id, "wait=3600", &ms), "a wait over max_wait_s");
    ck_assert_msg(ms >= 4900 && ms < 8000, "wait=3600 with max_wait_s 5 took %lld ms", ms);
    free(st);

    /* No wait for what cannot be waited on: another tenant's, unknown. */
    expect_code(get_wait(s, H_OTHER_TOKEN, id, "wait=5", &ms), 404, "not_found",
                "another tenant's id");
    ck_assert_msg(ms < 1000, "another tenant's id waited %lld ms", ms);
    expect_code(get_wait(s, H_TOKEN, "-P77-JEamh1cGyWBMKDa1FT6xIQqtSvk", "wait=5", &ms), 404,
                "not_found", "an unknown id");
    ck_assert_msg(ms < 1000, "an unknown id waited %lld ms", ms);

    /* A malformed wait, or another parameter, is refused. */
    static const char *const bad[] = {
        "wait=",      "wait=-1", "wait=1.5", "wait=abc",
        "wait=1&x=2", "x=1",     "wait",     "wait=99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_code(get_wait(s, H_TOKEN, id, bad[i], &ms), 400, "invalid_request", bad[i]);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* Ten clients wait on one request at once and are all answered when it is
 * final; meanwhile a client of another request keeps waiting. */
START_TEST(test_long_poll_many)
{
    struct h_stack *s = start_stack("");
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/delay/2000\"}");
    char *other = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/delay/20000\"}");
    char url[512], auth[256];
    snprintf(url, sizeof url, "%s/v1/requests/%s?wait=20", h_stack_url(s), id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", H_TOKEN);
    struct curl_slist hdr = {.data = auth, .next = NULL};
    struct poll_one q[N_WAITERS + 1];
    long long t0 = h_mono_ms();
    CURLM *m = polls_start(q, N_WAITERS, url, &hdr);
    snprintf(url, sizeof url, "%s/v1/requests/%s?wait=20", h_stack_url(s), other);
    CURLM *m2 = polls_start(&q[N_WAITERS], 1, url, &hdr);
    ck_assert_int_eq(polls_run(m, 15000), 0);
    long long last = 0;
    for (int i = 0; i < N_WAITERS; i++) {
        ck_assert_msg(q[i].status == 200, "waiter %d: %ld %s", i, q[i].status, q[i].body);
        ck_assert_msg(strstr(q[i].body, "\"status\":\"succeeded\""), "waiter %d: %s", i, q[i].body);
        if (q[i].done_ms > last) last = q[i].done_ms;
    }
    fprintf(stderr, "long-poll: %d waiters answered %lld ms after they started (backend 2000)\n",
            N_WAITERS, last - t0);
    ck_assert_msg(last - t0 < 10000, "the waiters took %lld ms", last - t0);
    ck_assert_int_eq(polls_run(m2, 200), 1); /* the other request's waiter still waits */
    polls_free(m2, &q[N_WAITERS], 1);
    polls_free(m, q, N_WAITERS);
    free(id);
    free(other);
    h_stack_teardown(s);
}
END_TEST

/* Suspended connections never time out in libmicrohttpd: a stopping
 * ingress answers every waiter (its current status) before it stops, and
 * exits cleanly. */
START_TEST(test_long_poll_shutdown)
{
    struct h_stack *s = start_stack("");
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/delay/20000\"}");
    char url[512], auth[256];
    snprintf(url, sizeof url, "%s/v1/requests/%s?wait=60", h_stack_url(s), id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", H_TOKEN);
    struct curl_slist hdr = {.data = auth, .next = NULL};
    struct poll_one q[3];
    CURLM *m = polls_start(q, 3, url, &hdr);
    ck_assert_int_eq(polls_run(m, 500), 3);
    long long t0 = h_mono_ms();
    h_proc_term(h_stack_ingress(s));
    ck_assert_int_eq(polls_run(m, 10000), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(q[i].status == 200, "waiter %d: %ld %s", i, q[i].status, q[i].body);
        ck_assert_msg(q[i].done_ms - t0 < 5000, "waiter %d answered %lld ms after SIGTERM", i,
                      q[i].done_ms - t0);
    }
    h_proc_wait(h_stack_ingress(s), H_STOP_TIMEOUT_MS);
    h_proc_assert_clean(h_stack_ingress(s));
    polls_free(m, q, 3);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* ---- batch ---- */

/* result_at returns results[i] of a batch answer (borrowed). */
static struct json_object *result_at(struct json_object *o, size_t i)
{
    char path[32];
    snprintf(path, sizeof path, "results.%zu", i);
    struct json_object *r = h_json_at(o, path);
    ck_assert_msg(r, "no results[%zu]", i);
    return r;
}

static void expect_item_error(struct json_object *o, size_t i, long status, const char *code)
{
    struct json_object *r = result_at(o, i);
    ck_assert_msg(h_json_int(r, "status") == status && !strcmp(h_json_str(r, "error.code"), code),
                  "results[%zu] is %s, want %ld %s", i, json_object_to_json_string(r), status,
                  code);
    ck_assert(strlen(h_json_str(r, "error.message")) > 0);
}

static const char *expect_item_accepted(struct json_object *o, size_t i)
{
    struct json_object *r = result_at(o, i);
    ck_assert_msg(!strcmp(h_json_str(r, "status"), "queued"), "results[%zu] is %s", i,
                  json_object_to_json_string(r));
    const char *id = h_json_str(r, "id");
    char want[128];
    snprintf(want, sizeof want, "/v1/requests/%s", id);
    ck_assert_str_eq(h_json_str(r, "status_url"), want);
    return id;
}

static struct json_object *post_batch(struct h_stack *s, const char *token, const char *doc,
                                      long want)
{
    struct h_resp *r = call(s, "POST", "/v1/requests:batch", token, doc);
    ck_assert_msg(r->status == want, "batch answered %ld, want %ld: %.500s", r->status, want,
                  r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o, "batch answer not JSON: %.300s", r->body);
    h_resp_free(r);
    return o;
}

/* Invalid items fail alone, in their place; the valid ones are delivered.
 * Then 100 items, 101, and documents refused whole. */
START_TEST(test_batch)
{
    struct h_stack *s = start_stack("");
    /* H_OTHER_TOKEN may use "echo" only. */
    struct json_object *o = post_batch(
        s, H_OTHER_TOKEN,
        "{\"requests\":[{\"route\":\"echo\",\"path\":\"/b0\"},{\"route\":\"nope\"},"
        "{\"route\":\"echo\",\"colour\":1},7,{\"route\":\"echo\",\"path\":\"/b4\",\"priority\":"
        "\"high\"},{\"route\":\"echo\",\"method\":\"G T\"}]}",
        202);
    ck_assert_uint_eq(json_object_array_length(h_json_at(o, "results")), 6);
    char *ids[2] = {strdup(expect_item_accepted(o, 0)), strdup(expect_item_accepted(o, 4))};
    expect_item_error(o, 1, 404, "unknown_route");
    expect_item_error(o, 2, 400, "invalid_request");
    expect_item_error(o, 3, 400, "invalid_json");
    expect_item_error(o, 5, 400, "invalid_request");
    json_object_put(o);
    for (int i = 0; i < 2; i++) {
        struct json_object *st = h_wait_final(s, H_OTHER_TOKEN, ids[i], FINAL_MS);
        ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
        ck_assert_str_eq(h_json_str(st, "result.body.path"), i ? "/b4" : "/b0");
        json_object_put(st);
        free(ids[i]);
    }
    /* Nothing accepted: the answer's code is the first item's error's. */
    o = post_batch(s, H_OTHER_TOKEN, "{\"requests\":[{\"route\":\"private\"},{\"route\":\"x y\"}]}",
                   403);
    expect_item_error(o, 0, 403, "route_forbidden");
    json_object_put(o);

    /* 100 items: all accepted, distinct IDs, all delivered. */
    size_t cap = 100 * 64 + 64, len = 0;
    char *doc = malloc(cap);
    len += (size_t)snprintf(doc, cap, "{\"requests\":[");
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(doc + len, cap - len, "%s{\"route\":\"echo\",\"path\":\"/n%d\"}",
                                i ? "," : "", i);
    snprintf(doc + len, cap - len, "]}");
    o = post_batch(s, H_TOKEN, doc, 202);
    char *last = NULL;
    for (size_t i = 0; i < 100; i++) {
        const char *id = expect_item_accepted(o, i);
        ck_assert_msg(!last || strcmp(last, id) != 0, "a repeated id");
        free(last);
        last = strdup(id);
    }
    struct json_object *st = h_wait_final(s, H_TOKEN, last, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/n99");
    json_object_put(st);
    free(last);
    json_object_put(o);
    /* 101 items: refused whole. */
    snprintf(doc + len, cap - len, ",{\"route\":\"echo\"}]}");
    expect_code(call(s, "POST", "/v1/requests:batch", H_TOKEN, doc), 400, "invalid_request",
                "101 items");
    free(doc);
    expect_code(call(s, "POST", "/v1/requests:batch", H_TOKEN, "{\"requests\":[]}"), 400,
                "invalid_request", "no items");
    expect_code(call(s, "POST", "/v1/requests:batch", H_TOKEN, "{\"requests\":[{}"), 400,
                "invalid_json", "truncated");
    expect_code(call(s, "GET", "/v1/requests:batch", H_TOKEN, NULL), 405, "method_not_allowed",
                "GET of the batch endpoint");
    expect_code(call(s, "POST", "/v1/requests:batch", NULL, "{\"requests\":[]}"), 401,
                "unauthorized", "no key");
    h_stack_teardown(s);
}
END_TEST

/* A broker that stops confirming: every item of the group is answered 503
 * (at confirm_timeout_ms), and so is the batch, with Retry-After. */
START_TEST(test_batch_broker_down)
{
    struct h_stack *s = start_stack("");
    h_broker_pause();
    struct h_resp *r = call(s, "POST", "/v1/requests:batch", H_TOKEN,
                            "{\"requests\":[{\"route\":\"echo\"},{\"route\":\"echo\"},"
                            "{\"route\":\"nope\"}]}");
    h_broker_resume();
    ck_assert_msg(r->status == 503, "batch answered %ld: %s", r->status, r->body);
    ck_assert_ptr_nonnull(h_resp_header(r, "Retry-After"));
    struct json_object *o = h_resp_json(r);
    expect_item_error(o, 0, 503, "broker_unavailable");
    expect_item_error(o, 1, 503, "broker_unavailable");
    expect_item_error(o, 2, 404, "unknown_route");
    json_object_put(o);
    h_resp_free(r);
    h_stack_teardown(s);
}
END_TEST

/* ---- strict JSON ---- */

/* What json-c let through is 400 invalid_json naming the problem, in both
 * the envelope and the batch; and a backend's JSON answer the events reader
 * could not read is kept as text instead of stalling the status. */
START_TEST(test_strict_json)
{
    struct h_stack *s = start_stack("");
    static const struct {
        const char *doc, *why;
    } cases[] = {
        {"{\"route\":\"echo\",\"route\":\"other\"}", "duplicate key \\\"route\\\" at offset "},
        {"{\"route\":\"echo\",\"body\":{\"a\":{\"b\":1,\"b\":2}}}", "duplicate key \\\"b\\\""},
        {"{\"route\":\"echo\",\"body\":\"\\ud800\"}", "lone surrogate escape"},
        {"{\"route\":\"echo\",\"body\":\"\\udc00\"}", "lone surrogate escape"},
        {"{\"route\":\"echo\",\"body\":1.}", "a number needs a digit after its point"},
        {"{\"route\":\"echo\",\"body\":-.5}", "a number needs a digit before its point"},
        {"{\"route\":\"echo\",\"body\":-00}", "leading zero in a number"},
        {"{\"route\":\"echo\",\"body_text\":\"a\tb\"}", "raw control character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_resp *r = call(s, "POST", "/v1/requests", H_TOKEN, cases[i].doc);
        ck_assert_msg(r->status == 400 && strstr(r->body, "invalid_json") &&
                          strstr(r->body, cases[i].why),
                      "%s: %ld %s", cases[i].doc, r->status, r->body);
        h_resp_free(r);
        char batch[512];
        snprintf(batch, sizeof batch, "{\"requests\":[{\"route\":\"echo\"},%s]}", cases[i].doc);
        r = call(s, "POST", "/v1/requests:batch", H_TOKEN, batch);
        ck_assert_msg(r->status == 400 && strstr(r->body, "invalid_json") &&
                          strstr(r->body, cases[i].why),
                      "batch %s: %ld %s", batch, r->status, r->body);
        h_resp_free(r);
    }
    ck_assert_int_eq(h_backend_requests(s), 0);

    /* A backend answering a lone surrogate as JSON: kept as body_text. */
    char *id = h_submit(s, H_TOKEN,
                        "{\"route\":\"echo\",\"path\":\"/raw\",\"headers\":{\"Content-Type\":"
                        "\"application/json\"},\"body_text\":\"{\\\"a\\\":\\\"\\\\ud800\\\"}\"}");
    struct json_object *st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_str_eq(h_json_str(st, "result.body_text"), "{\"a\":\"\\ud800\"}");
    json_object_put(st);
    free(id);
    h_stack_teardown(s);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("long-poll");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_long_poll);
    tcase_add_test(tc, test_long_poll_many);
    tcase_add_test(tc, test_long_poll_shutdown);
    suite_add_tcase(s, tc);
    tc = tcase_create("batch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_batch);
    tcase_add_test(tc, test_batch_broker_down);
    tcase_add_test(tc, test_strict_json);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(client_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
