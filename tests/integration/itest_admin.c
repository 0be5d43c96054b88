/* itest_admin.c: the ingress's status page against the real binaries. Without
 * an admin_token neither the page nor its API exists (404); with one, the page
 * is served to anyone (it holds no data), the summary only to its token, and
 * after a succeeded, a failed and a dead request the summary's outcomes per
 * route, recent failures, throughput counter and queue depths are exact. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ADMIN_TOKEN "admin-token-0123456789"
#define ADMIN_KEY "admin-key-0123456789" /* an API key with "admin": true */
#define SUMMARY_WAIT_MS 15000            /* queue depths are polled every 5 s */
#define HISTORY_WAIT_MS 20000            /* a sample every 5 s, after a baseline */

static struct h_resp *get(struct h_stack *s, const char *path, const char *auth)
{
    char url[256];
    const char *headers[] = {auth, NULL};
    snprintf(url, sizeof url, "%s%s", h_stack_url(s), path);
    return h_request("GET", url, auth ? headers : NULL, NULL, 0);
}

static void expect_status(struct h_stack *s, const char *path, const char *auth, long want)
{
    struct h_resp *r = get(s, path, auth);
    ck_assert_msg(r->status == want, "GET %s with %s: %ld, want %ld (%s%s)", path,
                  auth ? auth : "no Authorization", r->status, want, r->body, r->err);
    h_resp_free(r);
}

static struct json_object *summary(struct h_stack *s)
{
    struct h_resp *r = get(s, "/admin/summary", "Authorization: Bearer " ADMIN_TOKEN);
    ck_assert_msg(r->status == 200, "summary: %ld %s%s", r->status, r->body, r->err);
    const char *type = h_resp_header(r, "Content-Type");
    ck_assert_msg(type && strcmp(type, "application/json") == 0, "summary type %s", type);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "summary is not JSON: %s", r->body);
    h_resp_free(r);
    return o;
}

START_TEST(test_off_without_token)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 0);
    expect_status(s, "/", NULL, 404);
    expect_status(s, "/admin/summary", NULL, 404);
    expect_status(s, "/admin/summary", "Authorization: Bearer " ADMIN_TOKEN, 404);
    expect_status(s, "/admin/summary", "Authorization: Bearer ", 404);
    expect_status(s, "/healthz", NULL, 200);
    h_stack_teardown(s);
}
END_TEST

static void check_page(struct h_stack *s)
{
    struct h_resp *r = get(s, "/", NULL);
    ck_assert_msg(r->status == 200, "GET /: %ld %s", r->status, r->err);
    const char *type = h_resp_header(r, "Content-Type");
    const char *csp = h_resp_header(r, "Content-Security-Policy");
    ck_assert_msg(type && strcmp(type, "text/html; charset=utf-8") == 0, "page type %s", type);
    ck_assert_msg(csp && strstr(csp, "default-src 'none'"), "page policy %s", csp);
    ck_assert_msg(strstr(r->body, "<title>sluice status</title>"), "not the page: %.200s", r->body);
    ck_assert_msg(strstr(r->body, "/admin/summary"), "the page does not poll the summary");
    ck_assert_msg(!strstr(r->body, ADMIN_TOKEN), "the page holds the token");
    h_resp_free(r);
}

static void check_auth(struct h_stack *s)
{
    expect_status(s, "/admin/summary", NULL, 401);
    expect_status(s, "/admin/summary", "Authorization: Bearer wrong", 401);
    expect_status(s, "/admin/summary", "Authorization: Bearer " ADMIN_TOKEN "x", 401);
    expect_status(s, "/admin/summary", "Authorization: Bearer admin-token-012345678", 401);
    /* An API key opens the page only when it is an admin key. */
    expect_status(s, "/admin/summary", "Authorization: Bearer " H_TOKEN, 403);
    expect_status(s, "/admin/summary", "Authorization: Bearer " ADMIN_KEY, 200);
    expect_status(s, "/v1/admin/history", "Authorization: Bearer " H_TOKEN, 403);
    expect_status(s, "/v1/admin/history?route=nope", "Authorization: Bearer " ADMIN_KEY, 404);
    expect_status(s, "/v1/admin/history?tenant=acme", "Authorization: Bearer " ADMIN_KEY, 400);
    expect_status(s, "/admin/summary", "Authorization: Basic " ADMIN_TOKEN, 401);
    /* API keys and the admin token are separate: one does not open the other. */
    expect_status(s, "/v1/requests/0123456789abcdef0123456789abcdef",
                  "Authorization: Bearer " ADMIN_TOKEN, 401);
    expect_status(s, "/admin/summary", "Authorization: bearer " ADMIN_TOKEN, 200);
}

/* final_state submits envelope and waits for want; the id goes to out. */
static void final_state(struct h_stack *s, const char *envelope, const char *want, char out[33])
{
    char *id = h_submit(s, H_TOKEN, envelope);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, 30000);
    ck_assert_str_eq(h_json_str(st, "status"), want);
    snprintf(out, 33, "%s", id);
    json_object_put(st);
    free(id);
}

static void check_route(struct json_object *sum, int i, const char *name, int ok, int failed,
                        int dead)
{
    char path[64];
    snprintf(path, sizeof path, "routes.%d", i);
    struct json_object *r = h_json_at(sum, path);
    ck_assert_msg(r != NULL, "no %s in %s", path, json_object_to_json_string(sum));
    ck_assert_str_eq(h_json_str(r, "route"), name);
    ck_assert_int_eq(h_json_int(r, "succeeded"), ok);
    ck_assert_int_eq(h_json_int(r, "failed"), failed);
    ck_assert_int_eq(h_json_int(r, "dead"), dead);
}

static void check_failure(struct json_object *sum, int i, const char *id, const char *route,
                          const char *state, const char *code)
{
    char path[64];
    snprintf(path, sizeof path, "recent_failures.%d", i);
    struct json_object *f = h_json_at(sum, path);
    ck_assert_msg(f != NULL, "no %s in %s", path, json_object_to_json_string(sum));
    ck_assert_str_eq(h_json_str(f, "id"), id);
    ck_assert_str_eq(h_json_str(f, "route"), route);
    ck_assert_str_eq(h_json_str(f, "state"), state);
    ck_assert_str_eq(h_json_str(f, "code"), code);
    const char *t = h_json_str(f, "time");
    ck_assert_msg(strlen(t) == 24 && t[10] == 'T' && t[23] == 'Z', "time \"%s\"", t);
}

/* settled waits until the summary shows both routes' outcomes and the queue
 * depths polled after the dead request was dead-lettered. */
static struct json_object *settled(struct h_stack *s)
{
    long long deadline = h_mono_ms() + SUMMARY_WAIT_MS;
    for (;;) {
        struct json_object *sum = summary(s);
        struct json_object *dead = h_json_at(sum, "queues.dead");
        struct json_object *routes = h_json_at(sum, "routes");
        if (routes && json_object_array_length(routes) == 2 && dead &&
            json_object_is_type(dead, json_type_int) && json_object_get_int64(dead) == 1)
            return sum;
        ck_assert_msg(h_mono_ms() < deadline, "summary never settled: %s",
                      json_object_to_json_string(sum));
        json_object_put(sum);
        h_sleep_ms(200);
    }
}

/* check_history waits for the routes' history to hold the three requests:
 * each sample's rates per second times its length in seconds, summed, are
 * the requests of each kind. */
static void check_history(struct h_stack *s)
{
    long long deadline = h_mono_ms() + HISTORY_WAIT_MS;
    for (;;) {
        struct h_resp *r = get(s, "/v1/admin/history", "Authorization: Bearer " ADMIN_KEY);
        ck_assert_msg(r->status == 200, "history: %ld %s%s", r->status, r->body, r->err);
        struct json_object *h = h_resp_json(r);
        ck_assert_msg(h != NULL, "history is not JSON: %s", r->body);
        h_resp_free(r);
        ck_assert_int_eq(h_json_int(h, "period_s"), 5);
        ck_assert_int_eq(h_json_int(h, "capacity"), 180);
        double sums[2][3] = {{0}};
        struct json_object *secs = h_json_at(h, "seconds");
        ck_assert_msg(secs != NULL, "no seconds");
        const char *series[] = {"accepted_per_s", "completed_per_s", "failed_per_s"};
        for (int route = 0; route < 2; route++)
            for (int k = 0; k < 3; k++) {
                char path[64];
                snprintf(path, sizeof path, "routes.%d.%s", route, series[k]);
                struct json_object *a = h_json_at(h, path);
                ck_assert_msg(a != NULL, "no %s", path);
                for (size_t i = 0; i < json_object_array_length(a); i++)
                    sums[route][k] += json_object_get_double(json_object_array_get_idx(a, i)) *
                                      json_object_get_double(json_object_array_get_idx(secs, i));
            }
        ck_assert_str_eq(h_json_str(h, "routes.0.route"), "echo");
        bool done = sums[0][0] > 1.99 && sums[0][1] > 0.99 && sums[0][2] > 0.99 &&
                    sums[1][0] > 0.99 && sums[1][2] > 0.99;
        if (done) {
            /* 2, 1, 1 and 1, 0, 1, but for the rounding of the rates. */
            ck_assert_msg(sums[0][0] < 2.01 && sums[0][1] < 1.01 && sums[0][2] < 1.01 &&
                              sums[1][0] < 1.01 && sums[1][1] == 0 && sums[1][2] < 1.01,
                          "history counts too much: %s", json_object_to_json_string(h));
            json_object_put(h);
            return;
        }
        ck_assert_msg(h_mono_ms() < deadline, "history never showed the requests: %s",
                      json_object_to_json_string(h));
        json_object_put(h);
        h_sleep_ms(500);
    }
}

START_TEST(test_page_and_summary)
{
    struct h_stack *s = h_stack_new();
    const char *be = h_stack_backend_url(s);
    h_stack_set(s, "admin_token", "\"%s\"", ADMIN_TOKEN);
    h_stack_set(s, "routes.once", "{\"upstreams\":[\"%s\"],\"max_attempts\":1}", be);
    h_stack_add_key(s, "ops", ADMIN_KEY, "ops", "[\"*\"]");
    h_stack_set(s, "keys.2.admin", "true");
    h_stack_start(s, 1);
    check_page(s);
    check_auth(s);

    struct json_object *sum = summary(s);
    ck_assert_int_eq(json_object_array_length(h_json_at(sum, "routes")), 0);
    ck_assert_int_eq(json_object_array_length(h_json_at(sum, "recent_failures")), 0);
    ck_assert_int_eq(h_json_int(sum, "throughput.accepted_total"), 0);
    json_object_put(sum);

    char ok[33], failed[33], dead[33];
    final_state(s, "{\"route\":\"echo\",\"path\":\"/hello\"}", "succeeded", ok);
    final_state(s, "{\"route\":\"echo\",\"path\":\"/status/404\"}", "failed", failed);
    final_state(s, "{\"route\":\"once\",\"path\":\"/status/503\"}", "dead", dead);

    sum = settled(s);
    check_route(sum, 0, "echo", 1, 1, 0);
    check_route(sum, 1, "once", 0, 0, 1);
    ck_assert_int_eq(json_object_array_length(h_json_at(sum, "recent_failures")), 2);
    check_failure(sum, 0, dead, "once", "dead", "retries_exhausted");
    check_failure(sum, 1, failed, "echo", "failed", "backend_rejected");
    ck_assert_int_eq(h_json_int(sum, "throughput.accepted_total"), 3);
    ck_assert_int_eq(h_json_int(sum, "queues.requests"), 0);
    ck_assert_msg(
        json_object_is_type(h_json_at(sum, "throughput.accepted_per_s"), json_type_double),
        "accepted_per_s is not a number");
    ck_assert_msg(json_object_get_boolean(h_json_at(sum, "broker_connected")), "broker down?");
    ck_assert_str_eq(h_json_str(sum, "namespace"), h_stack_namespace(s));
    /* Each route's lane: its name, no limits, an empty backlog once polled. */
    char lane[128];
    snprintf(lane, sizeof lane, "%s.lane.echo", h_stack_namespace(s));
    ck_assert_str_eq(h_json_str(sum, "lanes.0.route"), "echo");
    ck_assert_str_eq(h_json_str(sum, "lanes.0.lane"), lane);
    ck_assert(!json_object_get_boolean(h_json_at(sum, "lanes.0.limited")));
    ck_assert_int_eq(h_json_int(sum, "lanes.0.backlog"), 0);
    ck_assert_int_eq(json_object_array_length(h_json_at(sum, "lanes")), 2);
    json_object_put(sum);
    check_history(s);

    h_stack_teardown(s);
}
END_TEST

/* The token is a secret: it must not reach the ingress's log. Checked on a
 * stack of its own, after a clean stop, so the whole log is there. */
START_TEST(test_token_not_logged)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "admin_token", "\"%s\"", ADMIN_TOKEN);
    h_stack_set(s, "log_level", "\"debug\"");
    h_stack_start(s, 0);
    expect_status(s, "/admin/summary", "Authorization: Bearer wrong-token-0123456789", 401);
    expect_status(s, "/admin/summary", "Authorization: Bearer " ADMIN_TOKEN, 200);
    char log[512];
    snprintf(log, sizeof log, "%s", h_proc_log(h_stack_ingress(s)));
    h_proc_stop(h_stack_ingress(s), H_STOP_TIMEOUT_MS);
    FILE *f = fopen(log, "r");
    ck_assert_msg(f != NULL, "cannot read %s", log);
    char line[4096];
    size_t lines = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        ck_assert_msg(!strstr(line, ADMIN_TOKEN), "the token is in the log: %s", line);
    }
    fclose(f);
    ck_assert_msg(lines > 0, "the ingress logged nothing at all");
    h_stack_teardown(s);
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("admin");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_off_without_token);
    tcase_add_test(tc, test_page_and_summary);
    tcase_add_test(tc, test_token_not_logged);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(admin_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
