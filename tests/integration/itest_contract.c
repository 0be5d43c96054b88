/* itest_contract.c: the client contract end to end (docs/api.md), against
 * the real broker, binaries and backend: idempotency keys (replays on
 * every replica and after a restart, reuse, a key still in progress),
 * listing, cancel (the arbiter between a cancel and a worker) and erasure,
 * a tenant's retention, per-key rates shared by two replicas and the queue
 * quota, and cached reads. */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FINAL_MS 30000
#define LIMITED_TOKEN "limited-token"
#define QUOTA_TOKEN "quota-token"
#define BRIEF_TOKEN "brief-token"

/* ---- helpers ---- */

/* call sends method to base + path with token and an optional extra header. */
static struct h_resp *call(const char *base, const char *method, const char *path,
                           const char *token, const char *extra, const char *body)
{
    char url[512], auth[128];
    const char *headers[4] = {NULL};
    size_t n = 0;
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    headers[n++] = auth;
    if (body && body[0] == '{') headers[n++] = "Content-Type: application/json";
    if (extra) headers[n++] = extra;
    return h_request(method, url, headers, body, body ? strlen(body) : 0);
}

static struct h_resp *post(const char *base, const char *token, const char *envelope)
{
    return call(base, "POST", "/v1/requests", token, NULL, envelope);
}

/* body_of parses r's body (caller puts) and checks its status. */
static struct json_object *body_of(struct h_resp *r, long status, const char *what)
{
    ck_assert_msg(r->status == status, "%s: answered %ld (want %ld) %s: %.400s", what, r->status,
                  status, r->err, r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "%s: not JSON: %.300s", what, r->body);
    return o;
}

/* json_of is body_of that frees r. */
static struct json_object *json_of(struct h_resp *r, long status, const char *what)
{
    struct json_object *o = body_of(r, status, what);
    h_resp_free(r);
    return o;
}

/* expect_code checks an error answer and frees r. */
static void expect_code(struct h_resp *r, long status, const char *code, const char *what)
{
    struct json_object *o = body_of(r, status, what);
    ck_assert_msg(!strcmp(h_json_str(o, "error.code"), code), "%s: %s, want %s", what,
                  h_json_str(o, "error.code"), code);
    json_object_put(o);
    h_resp_free(r);
}

/* accepted checks a 202, returns its id (caller frees) and frees r. */
static char *accepted(struct h_resp *r, const char *what)
{
    struct json_object *o = body_of(r, 202, what);
    char *id = strdup(h_json_str(o, "id"));
    json_object_put(o);
    h_resp_free(r);
    return id;
}

static const char *status_of(struct json_object *o)
{
    return h_json_str(o, "status");
}

/* wait_state polls id until its status is state (or final), returns it. */
static struct json_object *wait_state(struct h_stack *s, const char *id, const char *state)
{
    long long deadline = h_mono_ms() + FINAL_MS;
    for (;;) {
        long http = 0;
        struct json_object *o = h_get_status(s, H_TOKEN, id, &http);
        if (http == 200 && !strcmp(status_of(o), state)) return o;
        ck_assert_msg(h_mono_ms() < deadline, "%s never %s: %s", id, state,
                      o ? json_object_to_json_string(o) : "(none)");
        json_object_put(o);
        h_sleep_ms(20);
    }
}

/* metric_value reads one unlabelled sample of base's /metrics, or -1. */
static long metric_value(const char *base, const char *name)
{
    char url[256];
    snprintf(url, sizeof url, "%s/metrics", base);
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    long v = -1;
    size_t n = strlen(name);
    for (const char *p = r->body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ') v = strtol(p + n + 1, NULL, 10);
    h_resp_free(r);
    return v;
}

/* ---- idempotency ---- */

#define ORDER                                                                                      \
    "{\"route\":\"echo\",\"path\":\"/orders\",\"body\":{\"n\":1},\"idempotency_key\":\"k-1\"}"

struct bg_post {
    const char *base, *envelope;
    long status;
};

static void *bg_post(void *arg)
{
    struct bg_post *b = arg;
    struct h_resp *r = post(b->base, H_TOKEN, b->envelope);
    b->status = r->status;
    h_resp_free(r);
    return NULL;
}

START_TEST(test_idempotency)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "ingress.confirm_timeout_ms", "1500");
    h_stack_start(s, 1);
    const char *a = h_stack_url(s);

    /* The first answer, then the same one again without a second publish. */
    char *id = accepted(post(a, H_TOKEN, ORDER), "first");
    struct h_resp *r = post(a, H_TOKEN, ORDER);
    ck_assert_msg(r->status == 202, "replay answered %ld: %s", r->status, r->body);
    const char *replayed = h_resp_header(r, "Idempotent-Replayed");
    ck_assert_msg(replayed && !strcmp(replayed, "true"), "no Idempotent-Replayed: true");
    struct json_object *o = body_of(r, 202, "replay");
    ck_assert_str_eq(h_json_str(o, "id"), id);
    ck_assert_str_eq(status_of(o), "queued"); /* the original answer, word for word */
    json_object_put(o);
    h_resp_free(r);
    /* The same key for another request; another tenant's same key. */
    expect_code(post(a, H_TOKEN,
                     "{\"route\":\"echo\",\"path\":\"/orders\",\"body\":{\"n\":2},"
                     "\"idempotency_key\":\"k-1\"}"),
                422, "idempotency_key_reused", "reused key");
    /* The envelope form's Idempotency-Key header is the same key. */
    char *by_header = accepted(call(a, "POST", "/v1/requests", H_TOKEN, "Idempotency-Key: k-1",
                                    "{\"route\":\"echo\",\"path\":\"/orders\",\"body\":{\"n\":1}}"),
                               "the key as a header");
    ck_assert_str_eq(by_header, id);
    free(by_header);
    expect_code(call(a, "POST", "/v1/requests", H_TOKEN, "Idempotency-Key: k-2", ORDER), 400,
                "invalid_request", "header and field differ");
    char *other = accepted(post(a, H_OTHER_TOKEN, ORDER), "other tenant");
    ck_assert_str_ne(other, id);
    /* The transparent form's header, headers in another order alike. */
    char *t = accepted(
        call(a, "PUT", "/v1/routes/echo/things/1", H_TOKEN, "Idempotency-Key: t-1", "plain"),
        "transparent");
    char *t2 = accepted(
        call(a, "PUT", "/v1/routes/echo/things/1", H_TOKEN, "Idempotency-Key: t-1", "plain"),
        "transparent replay");
    ck_assert_str_eq(t, t2);
    expect_code(
        call(a, "POST", "/v1/routes/echo/things/1", H_TOKEN, "Idempotency-Key: t-1", "plain"), 422,
        "idempotency_key_reused", "transparent, other method");

    /* One call reached the backend, carrying the tracking ID as its key. */
    o = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_str_eq(status_of(o), "succeeded");
    json_object_put(o);
    o = h_wait_final(s, H_TOKEN, t, FINAL_MS);
    json_object_put(o);
    ck_assert_int_eq(h_backend_calls(s, id), 1);
    ck_assert_int_eq(h_backend_calls(s, t), 1);

    /* Another replica, and this one restarted, answer the same. */
    char b[64];
    struct h_proc *rb = h_start_replica(s, 2, b, sizeof b);
    r = post(b, H_TOKEN, ORDER);
    ck_assert_msg(r->status == 202 && h_resp_header(r, "Idempotent-Replayed"), "replica B: %ld %s",
                  r->status, r->body);
    o = body_of(r, 202, "replica B");
    ck_assert_str_eq(h_json_str(o, "id"), id);
    json_object_put(o);
    h_resp_free(r);
    h_stack_restart_ingress(s);
    char *again = accepted(post(a, H_TOKEN, ORDER), "after a restart");
    ck_assert_str_eq(again, id);
    ck_assert_int_eq(h_backend_calls(s, id), 1);

    /* A key whose first request still waits for its confirm: 409; the
     * first then gets 503, and the key is free for the retry. */
    const char *slow = "{\"route\":\"echo\",\"path\":\"/frozen\",\"idempotency_key\":\"k-frozen\"}";
    struct bg_post first = {a, slow, 0};
    pthread_t th;
    pid_t guard = h_broker_freeze(20000);
    ck_assert_int_eq(pthread_create(&th, NULL, bg_post, &first), 0);
    h_sleep_ms(300);
    expect_code(post(a, H_TOKEN, slow), 409, "idempotency_in_progress", "key in progress");
    pthread_join(th, NULL);
    h_broker_thaw(guard);
    ck_assert_int_eq(first.status, 503);
    char ready[128];
    snprintf(ready, sizeof ready, "%s/readyz", a);
    h_wait_http(ready, 200, 30000, h_stack_ingress(s));
    char *retried = accepted(post(a, H_TOKEN, slow), "retry after 503");
    o = h_wait_final(s, H_TOKEN, retried, FINAL_MS);
    json_object_put(o);
    /* The broker may have stored the first publish too: one ID either way. */
    ck_assert_int_le(h_backend_calls(s, retried), 2);

    h_proc_stop(rb, H_STOP_TIMEOUT_MS);
    h_proc_assert_clean(rb);
    h_proc_free(rb);
    free(retried);
    free(again);
    free(t);
    free(t2);
    free(other);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* ---- listing ---- */

START_TEST(test_listing)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    const char *a = h_stack_url(s);
    char *ids[7], env[128];
    for (int i = 0; i < 7; i++) {
        snprintf(env, sizeof env, "{\"route\":\"echo\",\"path\":\"%s\",\"query\":\"i=%d\"}",
                 i < 2 ? "/status/404" : "/ok", i);
        ids[i] = h_submit(s, H_TOKEN, env);
    }
    char *theirs = h_submit(s, H_OTHER_TOKEN, "{\"route\":\"echo\"}");
    for (int i = 0; i < 7; i++)
        json_object_put(h_wait_final(s, H_TOKEN, ids[i], FINAL_MS));

    /* Pages of 3, newest first, every request once. */
    char path[256] = "/v1/requests?limit=3";
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        struct h_resp *r = call(a, "GET", path, H_TOKEN, NULL, NULL);
        struct json_object *o = body_of(r, 200, path);
        h_resp_free(r);
        struct json_object *items = h_json_at(o, "requests");
        for (size_t k = 0; k < json_object_array_length(items); k++, seen++) {
            struct json_object *it = json_object_array_get_idx(items, k);
            ck_assert_str_eq(h_json_str(it, "id"), ids[6 - seen]);
            ck_assert_msg(!h_json_at(it, "result"), "a listed item has its result");
        }
        struct json_object *next = h_json_at(o, "next_after");
        if (!next) {
            json_object_put(o);
            break;
        }
        snprintf(path, sizeof path, "/v1/requests?limit=3&after=%s", json_object_get_string(next));
        json_object_put(o);
    }
    ck_assert_int_eq(seen, 7);
    /* Filters; another tenant's list. */
    struct h_resp *r = call(a, "GET", "/v1/requests?status=failed&route=echo", H_TOKEN, NULL, NULL);
    struct json_object *o = body_of(r, 200, "failed");
    ck_assert_int_eq(json_object_array_length(h_json_at(o, "requests")), 2);
    json_object_put(o);
    h_resp_free(r);
    r = call(a, "GET", "/v1/requests", H_OTHER_TOKEN, NULL, NULL);
    o = body_of(r, 200, "globex");
    ck_assert_int_eq(json_object_array_length(h_json_at(o, "requests")), 1);
    ck_assert_str_eq(h_json_str(o, "requests.0.id"), theirs);
    json_object_put(o);
    h_resp_free(r);
    expect_code(call(a, "GET", "/v1/requests?limit=5000", H_TOKEN, NULL, NULL), 400,
                "invalid_request", "limit too large");
    expect_code(call(a, "GET", "/v1/requests?after=nope", H_TOKEN, NULL, NULL), 400,
                "invalid_request", "bad cursor");
    for (int i = 0; i < 7; i++)
        free(ids[i]);
    free(theirs);
    h_stack_teardown(s);
}
END_TEST

/* ---- cancel and erase ---- */

#define N_CANCEL 20

static struct h_resp *delete_req(struct h_stack *s, const char *id, const char *suffix)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/requests/%s%s", id, suffix);
    return call(h_stack_url(s), "DELETE", path, H_TOKEN, NULL, NULL);
}

START_TEST(test_cancel_and_erase)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "routes.slow", "{\"upstreams\":[\"%s\"]}", h_stack_backend_url(s));
    h_stack_start(s, 0); /* no worker yet: every request stays queued */

    char *ids[N_CANCEL], env[128];
    for (int i = 0; i < N_CANCEL; i++) {
        snprintf(env, sizeof env, "{\"route\":\"echo\",\"path\":\"/c/%d\"}", i);
        ids[i] = h_submit(s, H_TOKEN, env);
    }
    for (int i = 0; i < N_CANCEL; i += 2) {
        struct json_object *o = json_of(delete_req(s, ids[i], ""), 200, "cancel");
        ck_assert_str_eq(status_of(o), "cancelled");
        ck_assert_str_eq(h_json_str(o, "id"), ids[i]);
        h_json_str(o, "completed_at");
        json_object_put(o);
    }
    /* Cancelling again answers the same; another tenant's ID is unknown. */
    struct h_resp *r = delete_req(s, ids[0], "");
    json_object_put(body_of(r, 200, "cancel again"));
    h_resp_free(r);
    char path[128];
    snprintf(path, sizeof path, "/v1/requests/%s", ids[1]);
    expect_code(call(h_stack_url(s), "DELETE", path, H_OTHER_TOKEN, NULL, NULL), 404, "not_found",
                "another tenant's cancel");

    /* The workers come: they call exactly the others. */
    long before = h_backend_requests(s);
    h_stack_add_worker(s);
    for (int i = 0; i < N_CANCEL; i++) {
        struct json_object *o = h_wait_final(s, H_TOKEN, ids[i], FINAL_MS);
        ck_assert_str_eq(status_of(o), i % 2 ? "succeeded" : "cancelled");
        json_object_put(o);
        ck_assert_int_eq(h_backend_calls(s, ids[i]), i % 2);
    }
    ck_assert_int_eq(h_backend_requests(s) - before, N_CANCEL / 2);

    /* A finished request, and one a worker is calling, cannot be cancelled. */
    expect_code(delete_req(s, ids[1], ""), 409, "not_cancellable", "finished");
    char *slow = h_submit(s, H_TOKEN, "{\"route\":\"slow\",\"path\":\"/delay/3000\"}");
    json_object_put(wait_state(s, slow, "processing"));
    expect_code(delete_req(s, slow, ""), 409, "not_cancellable", "processing");
    expect_code(delete_req(s, slow, "/result"), 409, "not_final", "erase while processing");

    /* Erasure: the result and error go, state and times stay. */
    struct json_object *o = json_of(delete_req(s, ids[1], "/result"), 200, "erase");
    ck_assert_str_eq(status_of(o), "succeeded");
    ck_assert_msg(!h_json_at(o, "result"), "the result survived its erasure");
    ck_assert_msg(json_object_get_boolean(h_json_at(o, "erased")), "not marked erased");
    h_json_str(o, "completed_at");
    json_object_put(o);

    /* Both survive a restart: they are events on the stream. */
    h_stack_restart_ingress(s);
    long http;
    o = h_get_status(s, H_TOKEN, ids[1], &http);
    ck_assert_int_eq(http, 200);
    ck_assert_msg(!h_json_at(o, "result"), "the erased result came back: %s",
                  json_object_to_json_string(o));
    json_object_put(o);
    o = h_get_status(s, H_TOKEN, ids[0], &http);
    ck_assert_str_eq(status_of(o), "cancelled");
    json_object_put(o);
    json_object_put(h_wait_final(s, H_TOKEN, slow, FINAL_MS));
    ck_assert_int_eq(h_backend_calls(s, slow), 1);
    ck_assert_int_eq(h_queue_messages(s, "lane.echo"), 0);
    ck_assert_int_eq(h_queue_messages(s, "lane.slow"), 0);

    free(slow);
    for (int i = 0; i < N_CANCEL; i++)
        free(ids[i]);
    h_stack_teardown(s);
}
END_TEST

/* A tenant's retention shorter than the global one drops its statuses early. */
START_TEST(test_tenant_retention)
{
    struct h_stack *s = h_stack_new();
    h_stack_add_key(s, "brief", BRIEF_TOKEN, "brief", "[\"echo\"]");
    h_stack_set(s, "keys.2.status_retention_s", "1");
    h_stack_start(s, 1);
    char *mine = h_submit(s, BRIEF_TOKEN, "{\"route\":\"echo\"}");
    char *acme = h_submit(s, H_TOKEN, "{\"route\":\"echo\"}");
    json_object_put(h_wait_final(s, H_TOKEN, acme, FINAL_MS));
    long long deadline = h_mono_ms() + 20000;
    long http = 200;
    while (http != 404 && h_mono_ms() < deadline) {
        struct json_object *o = h_get_status(s, BRIEF_TOKEN, mine, &http);
        json_object_put(o);
        if (http != 404) h_sleep_ms(200);
    }
    ck_assert_msg(http == 404, "brief's status outlived its retention (%ld)", http);
    json_object_put(h_get_status(s, H_TOKEN, acme, &http));
    ck_assert_int_eq(http, 200);
    free(mine);
    free(acme);
    h_stack_teardown(s);
}
END_TEST

/* ---- per-key limits ---- */

#define RATE 20
#define BURST 10
#define RATE_SECONDS 5

START_TEST(test_rate_shared_by_replicas)
{
    struct h_stack *s = h_stack_new();
    h_stack_add_key(s, "limited", LIMITED_TOKEN, "lim", "[\"echo\"]");
    h_stack_set(s, "keys.2.rate_per_s", "%d", RATE);
    h_stack_set(s, "keys.2.burst", "%d", BURST);
    h_stack_start(s, 1);
    char b[64];
    struct h_proc *rb = h_start_replica(s, 2, b, sizeof b);
    const char *bases[2] = {h_stack_url(s), b};
    /* Both count two replicas before the clock starts. */
    long long deadline = h_mono_ms() + 20000;
    while ((metric_value(bases[0], "sluice_ingress_replicas") != 2 ||
            metric_value(bases[1], "sluice_ingress_replicas") != 2) &&
           h_mono_ms() < deadline)
        h_sleep_ms(100);
    ck_assert_int_eq(metric_value(bases[0], "sluice_ingress_replicas"), 2);
    h_sleep_ms(1000); /* both buckets full again after the heartbeats' first split */

    /* A client spread over both: the key's rate holds within 10%. */
    int ok = 0, limited = 0;
    long long t0 = h_mono_ms();
    for (int i = 0; h_mono_ms() - t0 < RATE_SECONDS * 1000; i++) {
        struct h_resp *r = post(bases[i % 2], LIMITED_TOKEN, "{\"route\":\"echo\"}");
        ck_assert_msg(r->status == 202 || r->status == 429, "answered %ld", r->status);
        ck_assert_msg(h_resp_header(r, "RateLimit-Limit") &&
                          h_resp_header(r, "RateLimit-Remaining") &&
                          h_resp_header(r, "RateLimit-Reset"),
                      "an answer of a limited key lacks RateLimit headers");
        ok += r->status == 202;
        if (r->status != 429) {
            h_resp_free(r);
            continue;
        }
        const char *ra = h_resp_header(r, "Retry-After");
        ck_assert_msg(ra && strtol(ra, NULL, 10) >= 1, "429 without Retry-After");
        if (!limited++)
            expect_code(r, 429, "rate_limited", "past the rate");
        else
            h_resp_free(r);
    }
    double took = (double)(h_mono_ms() - t0) / 1000.0, want = BURST + RATE * took;
    fprintf(stderr,
            "rate: %d accepted, %d limited in %.2f s over 2 replicas (limit %.0f: %.1f%%)\n", ok,
            limited, took, want, 100.0 * ok / want);
    ck_assert_msg(ok >= 0.9 * want && ok <= 1.1 * want, "%d accepted, want %.0f +- 10%%", ok, want);
    ck_assert_int_gt(limited, 0);
    /* Other answers of the key carry the headers; other keys' do not. */
    struct h_resp *r = call(bases[0], "GET", "/v1/requests?limit=1", LIMITED_TOKEN, NULL, NULL);
    ck_assert_str_eq(h_resp_header(r, "RateLimit-Limit"), "10");
    h_resp_free(r);
    r = post(bases[0], H_TOKEN, "{\"route\":\"echo\"}");
    ck_assert_ptr_null(h_resp_header(r, "RateLimit-Limit"));
    h_resp_free(r);

    h_proc_stop(rb, H_STOP_TIMEOUT_MS);
    h_proc_assert_clean(rb);
    h_proc_free(rb);
    h_stack_teardown(s);
}
END_TEST

#define SLOW_1500 "{\"route\":\"slow\",\"path\":\"/delay/1500\"}"

START_TEST(test_queue_quota)
{
    struct h_stack *s = h_stack_new();
    h_stack_add_key(s, "quota", QUOTA_TOKEN, "q", "[\"slow\"]");
    h_stack_set(s, "keys.2.max_queued", "3");
    h_stack_set(s, "routes.slow", "{\"upstreams\":[\"%s\"]}", h_stack_backend_url(s));
    h_stack_start(s, 1);
    const char *a = h_stack_url(s);
    char *ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = accepted(post(a, QUOTA_TOKEN, SLOW_1500), "within the quota");
    expect_code(post(a, QUOTA_TOKEN, SLOW_1500), 429, "quota_exceeded", "past it");
    for (int i = 0; i < 3; i++) {
        long long deadline = h_mono_ms() + FINAL_MS;
        long http;
        for (;;) {
            struct json_object *o = h_get_status(s, QUOTA_TOKEN, ids[i], &http);
            bool done = http == 200 && !strcmp(status_of(o), "succeeded");
            json_object_put(o);
            if (done) break;
            ck_assert_msg(h_mono_ms() < deadline, "%s never succeeded", ids[i]);
            h_sleep_ms(50);
        }
    }
    char *after = accepted(post(a, QUOTA_TOKEN, SLOW_1500), "once they finished");
    free(after);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
    h_stack_teardown(s);
}
END_TEST

/* ---- cached reads ---- */

#define READ_PATHS 20
#define READS_EACH 10

/* read_item GETs /v1/routes/cached/<path> (transparent) and returns the 202's body. */
static struct json_object *read_item(struct h_stack *s, const char *path, const char *accept)
{
    char p[128];
    snprintf(p, sizeof p, "/v1/routes/cached%s", path);
    struct h_resp *r = call(h_stack_url(s), "GET", p, H_TOKEN, accept, NULL);
    struct json_object *o = body_of(r, 202, p);
    h_resp_free(r);
    return o;
}

static bool is_cached(struct json_object *o)
{
    return json_object_get_boolean(h_json_at(o, "cached"));
}

START_TEST(test_cached_reads)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "routes.cached",
                "{\"upstreams\":[\"%s\"],\"cache_ttl_s\":60,\"cache_vary_headers\":[\"Accept\"]}",
                h_stack_backend_url(s));
    h_stack_set(s, "routes.brief", "{\"upstreams\":[\"%s\"],\"cache_ttl_s\":1}",
                h_stack_backend_url(s));
    h_stack_start(s, 0);

    /* Without workers: identical reads share the queued request. */
    struct json_object *first = read_item(s, "/items/1", "Accept: application/json");
    char *id = strdup(h_json_str(first, "id"));
    ck_assert_msg(!is_cached(first), "the first read is not cached");
    json_object_put(first);
    struct json_object *o = read_item(s, "/items/1", "Accept: application/json");
    ck_assert_str_eq(h_json_str(o, "id"), id);
    ck_assert(is_cached(o));
    ck_assert_str_eq(status_of(o), "queued");
    json_object_put(o);
    o = read_item(s, "/items/1", "Accept: text/plain"); /* a vary header differs */
    ck_assert_str_ne(h_json_str(o, "id"), id);
    json_object_put(o);
    char *p1 = accepted(
        call(h_stack_url(s), "POST", "/v1/routes/cached/items/1", H_TOKEN, NULL, "x"), "POST");
    char *p2 =
        accepted(call(h_stack_url(s), "POST", "/v1/routes/cached/items/1", H_TOKEN, NULL, "x"),
                 "POST again");
    ck_assert_str_ne(p1, p2); /* only reads are cached */

    /* Once it succeeded, it answers from the cache. */
    h_stack_add_worker(s);
    json_object_put(h_wait_final(s, H_TOKEN, id, FINAL_MS));
    o = read_item(s, "/items/1", "Accept: application/json");
    ck_assert_str_eq(h_json_str(o, "id"), id);
    ck_assert_str_eq(status_of(o), "succeeded");
    json_object_put(o);
    ck_assert_int_eq(h_backend_calls(s, id), 1);

    /* A repeated-read workload: 20 items read 10 times each. */
    long before = h_backend_requests(s);
    char *last[READ_PATHS] = {NULL};
    for (int round = 0; round < READS_EACH; round++)
        for (int i = 0; i < READ_PATHS; i++) {
            char p[64];
            snprintf(p, sizeof p, "/catalog/%d", i);
            o = read_item(s, p, NULL);
            free(last[i]);
            last[i] = strdup(h_json_str(o, "id"));
            json_object_put(o);
        }
    for (int i = 0; i < READ_PATHS; i++) {
        json_object_put(h_wait_final(s, H_TOKEN, last[i], FINAL_MS));
        free(last[i]);
    }
    long calls = h_backend_requests(s) - before;
    fprintf(stderr, "cache: %d reads, %ld backend calls (%.0f%% saved)\n", READ_PATHS * READS_EACH,
            calls, 100.0 - 100.0 * calls / (READ_PATHS * READS_EACH));
    ck_assert_int_eq(calls, READ_PATHS);

    /* Past the TTL, a read is queued again. */
    char *b1 =
        accepted(call(h_stack_url(s), "GET", "/v1/routes/brief/x", H_TOKEN, NULL, NULL), "brief");
    json_object_put(h_wait_final(s, H_TOKEN, b1, FINAL_MS));
    h_sleep_ms(1200);
    char *b2 = accepted(call(h_stack_url(s), "GET", "/v1/routes/brief/x", H_TOKEN, NULL, NULL),
                        "brief again");
    ck_assert_str_ne(b1, b2);

    free(b1);
    free(b2);
    free(p1);
    free(p2);
    free(id);
    h_stack_teardown(s);
}
END_TEST

/* ---- a batch's items get the contract ---- */

/* batch_item returns results[i] of a batch answer (borrowed). */
static struct json_object *batch_item(struct json_object *o, size_t i)
{
    char path[32];
    snprintf(path, sizeof path, "results.%zu", i);
    struct json_object *it = h_json_at(o, path);
    ck_assert_msg(it, "no results[%zu]", i);
    return it;
}

static void expect_item_code(struct json_object *o, size_t i, long status, const char *code)
{
    struct json_object *it = batch_item(o, i);
    ck_assert_msg(h_json_int(it, "status") == status && !strcmp(h_json_str(it, "error.code"), code),
                  "results[%zu] is %s, want %ld %s", i, json_object_to_json_string(it), status,
                  code);
}

static bool item_flag(struct json_object *o, size_t i, const char *name)
{
    return json_object_get_boolean(h_json_at(batch_item(o, i), name));
}

static const char *item_id(struct json_object *o, size_t i)
{
    struct json_object *it = batch_item(o, i);
    ck_assert_msg(h_json_at(it, "id") && !h_json_at(it, "error"), "results[%zu] is %s", i,
                  json_object_to_json_string(it));
    return h_json_str(it, "id");
}

#define BATCH_PATH "/v1/requests:batch"
#define KEYED(key, n)                                                                              \
    "{\"route\":\"echo\",\"path\":\"/b\",\"body\":{\"n\":" #n "},\"idempotency_key\":\"" key "\"}"
#define GET_ITEM "{\"route\":\"cached\",\"method\":\"GET\",\"path\":\"/items/7\"}"
#define SLOW_ITEM "{\"route\":\"slow\",\"path\":\"/delay/1500\"}"

/* Each item of a batch runs a single submit's contract, in order, answered
 * in place: a key replayed from a single submit, a key reused for another
 * request (422), two items of one key (the second replays the first, or
 * 422), a key's rate (429 rate_limited in place, the RateLimit headers on
 * the answer), the queue quota (429 quota_exceeded) and a cached read. */
static struct h_stack *batch_stack(void)
{
    struct h_stack *s = h_stack_new();
    h_stack_add_key(s, "limited", LIMITED_TOKEN, "lim", "[\"echo\"]");
    h_stack_set(s, "keys.2.rate_per_s", "0.01"); /* no token comes back during the test */
    h_stack_set(s, "keys.2.burst", "3");
    h_stack_add_key(s, "quota", QUOTA_TOKEN, "q", "[\"slow\"]");
    h_stack_set(s, "keys.3.max_queued", "3");
    h_stack_set(s, "routes.slow", "{\"upstreams\":[\"%s\"]}", h_stack_backend_url(s));
    h_stack_set(s, "routes.cached", "{\"upstreams\":[\"%s\"],\"cache_ttl_s\":60}",
                h_stack_backend_url(s));
    h_stack_start(s, 0); /* no workers: everything stays queued */
    return s;
}

START_TEST(test_batch_keys)
{
    struct h_stack *s = batch_stack();
    const char *a = h_stack_url(s);
    char *first = accepted(post(a, H_TOKEN, KEYED("b-1", 1)), "a single submit");
    struct json_object *o =
        json_of(call(a, "POST", BATCH_PATH, H_TOKEN, NULL,
                     "{\"requests\":[" KEYED("b-1", 1) "," KEYED("b-1", 2) "," KEYED(
                         "b-2", 1) "," KEYED("b-2", 1) "," KEYED("b-2", 3) "]}"),
                202, "a batch of keyed items");
    ck_assert_str_eq(item_id(o, 0), first);
    ck_assert_msg(item_flag(o, 0, "replayed"), "the repeat of a single submit is replayed");
    expect_item_code(o, 1, 422, "idempotency_key_reused");
    char *second = strdup(item_id(o, 2));
    ck_assert_msg(!item_flag(o, 2, "replayed"), "the key's first item is new");
    ck_assert_msg(h_json_at(batch_item(o, 2), "queue_position"), "an accepted item's position");
    ck_assert_str_eq(item_id(o, 3), second);
    ck_assert(item_flag(o, 3, "replayed"));
    expect_item_code(o, 4, 422, "idempotency_key_reused");
    json_object_put(o);
    /* Nothing was published twice; a later single submit replays the item. */
    struct h_resp *r = post(a, H_TOKEN, KEYED("b-2", 1));
    ck_assert_str_eq(h_resp_header(r, "Idempotent-Replayed"), "true");
    free(accepted(r, "a single submit after the batch"));
    size_t listed = 0;
    for (long long until = h_mono_ms() + 5000; listed < 2 && h_mono_ms() < until;) {
        o = json_of(call(a, "GET", "/v1/requests?limit=100", H_TOKEN, NULL, NULL), 200, "list");
        listed = json_object_array_length(h_json_at(o, "requests"));
        json_object_put(o);
        h_sleep_ms(50);
    }
    h_sleep_ms(300);
    o = json_of(call(a, "GET", "/v1/requests?limit=100", H_TOKEN, NULL, NULL), 200, "listing");
    ck_assert_uint_eq(json_object_array_length(h_json_at(o, "requests")), 2);
    json_object_put(o);
    free(second);
    free(first);
    h_stack_teardown(s);
}
END_TEST

/* A rate-limited key: each item takes a token. */
START_TEST(test_batch_rate)
{
    struct h_stack *s = batch_stack();
    const char *a = h_stack_url(s);
    struct h_resp *r =
        call(a, "POST", BATCH_PATH, LIMITED_TOKEN, NULL,
             "{\"requests\":[{\"route\":\"echo\"},{\"route\":\"echo\"},{\"route\":\"echo\"},{"
             "\"route\":\"echo\"},{\"route\":\"echo\"}]}");
    ck_assert_str_eq(h_resp_header(r, "RateLimit-Limit"), "3");
    ck_assert_ptr_nonnull(h_resp_header(r, "RateLimit-Remaining"));
    struct json_object *o = json_of(r, 202, "a batch past the burst");
    for (size_t i = 0; i < 3; i++)
        (void)item_id(o, i);
    expect_item_code(o, 3, 429, "rate_limited");
    expect_item_code(o, 4, 429, "rate_limited");
    json_object_put(o);
    r = call(a, "POST", BATCH_PATH, LIMITED_TOKEN, NULL, "{\"requests\":[{\"route\":\"echo\"}]}");
    ck_assert_msg(r->status == 429, "a batch without tokens: %ld %s", r->status, r->body);
    ck_assert_msg(h_resp_header(r, "Retry-After") &&
                      strtol(h_resp_header(r, "Retry-After"), NULL, 10) >= 1,
                  "429 without Retry-After");
    ck_assert_ptr_nonnull(h_resp_header(r, "RateLimit-Reset"));
    h_resp_free(r);
    h_stack_teardown(s);
}
END_TEST

/* The queue quota counts the batch's own items. */
START_TEST(test_batch_quota)
{
    struct h_stack *s = batch_stack();
    const char *a = h_stack_url(s);
    struct json_object *o =
        json_of(call(a, "POST", BATCH_PATH, QUOTA_TOKEN, NULL,
                     "{\"requests\":[" SLOW_ITEM "," SLOW_ITEM "," SLOW_ITEM "," SLOW_ITEM "]}"),
                202, "a batch past the quota");
    for (size_t i = 0; i < 3; i++)
        (void)item_id(o, i);
    expect_item_code(o, 3, 429, "quota_exceeded");
    json_object_put(o);
    h_stack_teardown(s);
}
END_TEST

/* A cached read: the second batch's GET is the first's request. */
START_TEST(test_batch_cached)
{
    struct h_stack *s = batch_stack();
    const char *a = h_stack_url(s);
    struct json_object *o = json_of(
        call(a, "POST", BATCH_PATH, H_TOKEN, NULL, "{\"requests\":[" GET_ITEM "]}"), 202, "a read");
    char *read = strdup(item_id(o, 0));
    ck_assert(!item_flag(o, 0, "cached"));
    json_object_put(o);
    o = json_of(call(a, "POST", BATCH_PATH, H_TOKEN, NULL,
                     "{\"requests\":[" GET_ITEM ",{\"route\":\"echo\"}]}"),
                202, "the read again");
    ck_assert_str_eq(item_id(o, 0), read);
    ck_assert(item_flag(o, 0, "cached"));
    ck_assert_str_ne(item_id(o, 1), read);
    json_object_put(o);

    free(read);
    h_stack_teardown(s);
}
END_TEST

static Suite *contract_suite(void)
{
    Suite *s = suite_create("contract");
    TCase *tc = tcase_create("contract");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_idempotency);
    tcase_add_test(tc, test_listing);
    tcase_add_test(tc, test_cancel_and_erase);
    tcase_add_test(tc, test_tenant_retention);
    tcase_add_test(tc, test_rate_shared_by_replicas);
    tcase_add_test(tc, test_queue_quota);
    tcase_add_test(tc, test_cached_reads);
    suite_add_tcase(s, tc);
    tc = tcase_create("batch");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_batch_keys);
    tcase_add_test(tc, test_batch_rate);
    tcase_add_test(tc, test_batch_quota);
    tcase_add_test(tc, test_batch_cached);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(contract_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
