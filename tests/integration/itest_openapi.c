/* itest_openapi.c: docs/openapi.yaml against the running binaries. One
 * request per documented error answer, each made to happen for real (the
 * request guard, authentication, routes, the envelope's rules, idempotency,
 * rate and quota, cancel and erase, a frozen and a stopped broker); every
 * (status, error.code) the ingress answered is collected and compared with
 * the document's (scripts/check-openapi.py --pairs): each documented pair
 * was answered, and each answered pair is documented.
 *
 * A new endpoint's codes: add its responses to docs/openapi.yaml and, for a
 * code no request below makes yet, one request to provoke(). */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MAX_PAIRS 64
#define LIMITED_TOKEN "limited-token"
#define QUOTA_TOKEN "quota-token"
#define ADMIN_TOKEN "admin-token"

/* Documented answers no request can make on demand, and why. */
static const struct {
    long status;
    const char *code, *why;
} UNPROVOKED[] = {
    {500, "internal_error",
     "out of memory, or the broker refusing one message it cannot carry: the unit tests "
     "(test_publisher, test_envelope) make those"},
};

struct pair {
    long status;
    char code[48];
};

struct pairs {
    struct pair p[MAX_PAIRS];
    size_t n;
};

static bool has(const struct pairs *s, long status, const char *code)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i].status == status && !strcmp(s->p[i].code, code)) return true;
    return false;
}

static void add(struct pairs *s, long status, const char *code)
{
    if (has(s, status, code)) return;
    ck_assert_uint_lt(s->n, MAX_PAIRS);
    s->p[s->n].status = status;
    snprintf(s->p[s->n].code, sizeof s->p[s->n].code, "%s", code);
    s->n++;
}

/* documented reads the document's pairs. */
static void documented(struct pairs *doc)
{
    FILE *f = popen("python3 scripts/check-openapi.py --pairs", "r");
    ck_assert_msg(f != NULL, "cannot run scripts/check-openapi.py");
    long status;
    char code[48];
    while (fscanf(f, "%ld %47s", &status, code) == 2)
        add(doc, status, code);
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_uint_gt(doc->n, 10);
}

static struct pairs seen; /* what the ingress answered */

/* note records r's error, the batch's first item's for a batch, and frees r. */
static void note(struct h_resp *r, long want)
{
    ck_assert_msg(r->status == want, "answered %ld, want %ld: %.300s", r->status, want, r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "%ld: not JSON: %.300s", r->status, r->body);
    const char *path = h_json_at(o, "results") ? "results.0.error.code" : "error.code";
    add(&seen, r->status, h_json_str(o, path));
    json_object_put(o);
    h_resp_free(r);
}

/* note_raw records an answer read from a raw socket: its status line and
 * the code in its body. */
static void note_raw(const char *answer, long want)
{
    long status = 0;
    ck_assert_msg(sscanf(answer, "HTTP/1.%*d %ld", &status) == 1, "no status line: %.200s", answer);
    ck_assert_msg(status == want, "answered %ld, want %ld: %.300s", status, want, answer);
    const char *c = strstr(answer, "\"code\":\"");
    ck_assert_msg(c != NULL, "no error code in %.300s", answer);
    c += 8;
    char code[48];
    size_t n = strcspn(c, "\"");
    snprintf(code, sizeof code, "%.*s", (int)(n < sizeof code ? n : sizeof code - 1), c);
    add(&seen, status, code);
}

static struct h_resp *call(struct h_stack *s, const char *method, const char *path,
                           const char *token, const char *extra, const char *body)
{
    char url[4096], auth[128];
    const char *headers[4] = {NULL};
    size_t n = 0;
    snprintf(url, sizeof url, "%s%s", h_stack_url(s), path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    if (token) headers[n++] = auth;
    if (body && body[0] == '{') headers[n++] = "Content-Type: application/json";
    if (extra) headers[n++] = extra;
    return h_request(method, url, headers, body, body ? strlen(body) : 0);
}

static struct h_resp *post(struct h_stack *s, const char *token, const char *envelope)
{
    return call(s, "POST", "/v1/requests", token, NULL, envelope);
}

static char *accepted(struct h_resp *r)
{
    ck_assert_msg(r->status == 202, "answered %ld: %.300s", r->status, r->body);
    struct json_object *o = h_resp_json(r);
    char *id = strdup(h_json_str(o, "id"));
    json_object_put(o);
    h_resp_free(r);
    return id;
}

/* raw sends text on a new connection and returns the answer (static). */
static const char *raw(struct h_stack *s, const char *text, int ms)
{
    static char answer[8192];
    int fd = h_dial(h_stack_port(s));
    h_send_all(fd, text);
    int rc = h_read_answer(fd, answer, sizeof answer, ms);
    close(fd);
    ck_assert_msg(rc >= 0, "no answer to %.100s", text);
    return answer;
}

/* ---- the requests ---- */

static void the_guard(struct h_stack *s)
{
    char path[1200] = "/v1/requests/";
    memset(path + 13, 'a', 1100);
    path[1113] = '\0';
    note(call(s, "GET", path, H_TOKEN, NULL, NULL), 414);
    char big[2200] = "X-Big: ";
    memset(big + 7, 'b', 2100);
    big[2107] = '\0';
    note(call(s, "GET", "/healthz", NULL, big, NULL), 431);
    note_raw(raw(s,
                 "POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                 "Content-Length: 3\r\n\r\n{}",
                 5000),
             400);
    /* Half a request: answered when request_timeout_s (1 s) is up. */
    note_raw(raw(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 10000), 408);
    note(call(s, "GET", "/nowhere", H_TOKEN, NULL, NULL), 404);
    note(call(s, "POST", "/nowhere", H_TOKEN, NULL, "x"), 405);
    note(call(s, "DELETE", "/v1/requests", H_TOKEN, NULL, NULL), 405);
}

static void the_submissions(struct h_stack *s)
{
    note(post(s, NULL, "{\"route\":\"echo\"}"), 401);
    note(post(s, H_TOKEN, "{\"route\":"), 400);
    note(post(s, H_TOKEN, "{\"route\":\"echo\",\"bogus\":1}"), 400);
    note(post(s, H_TOKEN, "{\"route\":\"echo\",\"callback_url\":\"http://elsewhere.example/\"}"),
         400);
    note(post(s, H_OTHER_TOKEN, "{\"route\":\"slow\"}"), 403);
    note(post(s, H_TOKEN, "{\"route\":\"nope\"}"), 404);
    note(call(s, "POST", "/v1/requests", H_TOKEN, "Content-Type: text/plain", "x"), 415);
    note_raw(raw(s,
                 "POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " H_TOKEN
                 "\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n",
                 5000),
             413);
    note(call(s, "GET", "/v1/routes/echo/x", H_TOKEN, "X-Priority: urgent", NULL), 400);
    free(accepted(post(s, H_TOKEN, "{\"route\":\"echo\",\"idempotency_key\":\"o-1\"}")));
    note(post(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/2\",\"idempotency_key\":\"o-1\"}"), 422);
    free(accepted(post(s, LIMITED_TOKEN, "{\"route\":\"echo\"}")));
    note(post(s, LIMITED_TOKEN, "{\"route\":\"echo\"}"), 429);
    /* The batch answers its first item's error when none was accepted. */
    note(call(s, "POST", "/v1/requests:batch", H_TOKEN, NULL,
              "{\"requests\":[{\"route\":\"nope\"}]}"),
         404);
    note(call(s, "POST", "/v1/requests:batch", H_TOKEN, NULL, "{\"requests\":[]}"), 400);
}

static void the_requests(struct h_stack *s)
{
    note(call(s, "GET", "/v1/requests/-P77-JEamh1cGyWBMKDa1FT6xIQqt000", H_TOKEN, NULL, NULL), 404);
    note(
        call(s, "GET", "/v1/requests/-P77-JEamh1cGyWBMKDa1FT6xIQqt000?wait=x", H_TOKEN, NULL, NULL),
        400);
    note(call(s, "GET", "/v1/requests?limit=0", H_TOKEN, NULL, NULL), 400);
    /* The quota key's one request is slow: not final, and the key is full. */
    char *slow = accepted(post(s, QUOTA_TOKEN, "{\"route\":\"slow\",\"path\":\"/delay/3000\"}"));
    note(post(s, QUOTA_TOKEN, "{\"route\":\"slow\"}"), 429);
    char path[128];
    snprintf(path, sizeof path, "/v1/requests/%s/result", slow);
    note(call(s, "DELETE", path, QUOTA_TOKEN, NULL, NULL), 409);
    char *done = h_submit(s, H_TOKEN, "{\"route\":\"echo\"}");
    json_object_put(h_wait_final(s, H_TOKEN, done, 30000));
    snprintf(path, sizeof path, "/v1/requests/%s", done);
    note(call(s, "DELETE", path, H_TOKEN, NULL, NULL), 409);
    free(done);
    free(slow);
}

/* The admin API: a plain key, an unlimited route's override. */
static void the_admin(struct h_stack *s)
{
    note(call(s, "GET", "/v1/admin/dead", H_TOKEN, NULL, NULL), 403);
    note(call(s, "GET", "/v1/admin/dead?limit=0", ADMIN_TOKEN, NULL, NULL), 400);
    note(call(s, "POST", "/v1/admin/dead:replay", ADMIN_TOKEN, NULL, "{\"route\":\"nope\"}"), 400);
    note(call(s, "POST", "/v1/admin/routes/nope:pause", ADMIN_TOKEN, NULL, NULL), 404);
    note(call(s, "GET", "/v1/admin/routes/echo", ADMIN_TOKEN, NULL, NULL), 405);
    note(call(s, "PATCH", "/v1/admin/routes/echo", ADMIN_TOKEN, NULL, "{\"max_in_flight\":1}"),
         409);
}

struct bg {
    struct h_stack *s;
    struct h_resp *r;
};

static void *bg_post(void *arg)
{
    struct bg *b = arg;
    b->r = post(b->s, H_TOKEN, "{\"route\":\"echo\",\"idempotency_key\":\"frozen\"}");
    return NULL;
}

/* A frozen broker: the first of a key waits for its confirm (the second is
 * 409), then gets 503. A stopped broker: not ready. */
static void the_broker(struct h_stack *s)
{
    struct bg first = {s, NULL};
    pthread_t th;
    pid_t guard = h_broker_freeze(20000);
    ck_assert_int_eq(pthread_create(&th, NULL, bg_post, &first), 0);
    h_sleep_ms(300);
    note(post(s, H_TOKEN, "{\"route\":\"echo\",\"idempotency_key\":\"frozen\"}"), 409);
    pthread_join(th, NULL);
    h_broker_thaw(guard);
    note(first.r, 503);
    char ready[128];
    snprintf(ready, sizeof ready, "%s/readyz", h_stack_url(s));
    h_wait_http(ready, 200, 30000, h_stack_ingress(s));

    h_broker_pause();
    long long deadline = h_mono_ms() + 15000;
    struct h_resp *r;
    while ((r = call(s, "GET", "/readyz", NULL, NULL, NULL))->status != 503 &&
           h_mono_ms() < deadline) {
        h_resp_free(r);
        h_sleep_ms(100);
    }
    note(r, 503);
    h_broker_resume();
    h_wait_http(ready, 200, 30000, h_stack_ingress(s));
}

START_TEST(test_openapi_codes)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "ingress.request_timeout_s", "1");
    h_stack_set(s, "ingress.confirm_timeout_ms", "1500");
    h_stack_set(s, "ingress.max_url_bytes", "1024");
    h_stack_set(s, "ingress.max_header_bytes", "2048");
    h_stack_set(s, "routes.slow", "{\"upstreams\":[\"%s\"]}", h_stack_backend_url(s));
    h_stack_add_key(s, "limited", LIMITED_TOKEN, "lim", "[\"echo\"]");
    h_stack_set(s, "keys.2.rate_per_s", "0.01"); /* no token comes back during the test */
    h_stack_set(s, "keys.2.burst", "1");
    h_stack_add_key(s, "quota", QUOTA_TOKEN, "q", "[\"slow\"]");
    h_stack_set(s, "keys.3.max_queued", "1");
    h_stack_add_key(s, "ops", ADMIN_TOKEN, "ops", "[\"echo\"]");
    h_stack_set(s, "keys.4.admin", "true");
    h_stack_start(s, 1);

    the_guard(s);
    the_submissions(s);
    the_requests(s);
    the_admin(s);
    the_broker(s);

    struct pairs doc = {0};
    documented(&doc);
    int missing = 0;
    for (size_t i = 0; i < seen.n; i++)
        if (!has(&doc, seen.p[i].status, seen.p[i].code)) {
            fprintf(stderr, "answered but not documented: %ld %s\n", seen.p[i].status,
                    seen.p[i].code);
            missing++;
        }
    for (size_t i = 0; i < doc.n; i++) {
        bool exempt = false;
        for (size_t k = 0; k < sizeof UNPROVOKED / sizeof UNPROVOKED[0]; k++)
            exempt |= UNPROVOKED[k].status == doc.p[i].status &&
                      !strcmp(UNPROVOKED[k].code, doc.p[i].code);
        if (exempt || has(&seen, doc.p[i].status, doc.p[i].code)) continue;
        fprintf(stderr, "documented but never answered: %ld %s\n", doc.p[i].status, doc.p[i].code);
        missing++;
    }
    fprintf(stderr, "openapi: %zu documented pairs, %zu answered\n", doc.n, seen.n);
    ck_assert_int_eq(missing, 0);
    h_stack_teardown(s);
}
END_TEST

static Suite *openapi_suite(void)
{
    Suite *s = suite_create("openapi");
    TCase *tc = tcase_create("openapi");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_openapi_codes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(openapi_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
