/* itest_routes.c: the admin API's routes against the real binaries, two
 * workers and the broker. A pause reaches both workers within 2 s: no call
 * starts, submissions are still accepted (202) and wait with the reason
 * "paused"; it survives a restart of both workers and of the ingress; a
 * resume lets them all through. A max_in_flight override reaches the route's
 * worker within 2 s (the backend sees one call at a time instead of up to
 * 10), survives the restarts, and its removal brings the configured limit
 * back; a rate_per_s override likewise slows the calls the backend sees per
 * second, across a restart, until it is cleared. Plain keys get 403. The CLI
 * pauses, resumes, sets and clears (exit 4 when no ingress answers), and the
 * ingress logs each change with the admin key's id. A paused route's
 * waiting requests show as its backlog. GET /v1/admin/routes shows the
 * fleet as the workers report it: calls in flight against a slow backend, the rate of
 * completions, a breaker open while its upstream is away and closed once it
 * is back, a killed worker gone after the reports' timeout and a stopped
 * one at once. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ADMIN "ops-token-0123456789"
#define N_REQ 10
#define HELD 4         /* test_pause_resume: requests its 2 workers hold (prefetch 2) */
#define SETTLE_MS 2000 /* the promise: fleet-wide within 2 s */

/* stack makes a stack with the limited route "lim" and the admin key "ops";
 * the caller starts it with 2 workers. */
static struct h_stack *stack(void)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "routes.lim",
                "{\"upstreams\":[\"%s\"],\"max_in_flight\":10,\"rate_per_s\":1000,\"burst\":100}",
                h_stack_backend_url(s));
    h_stack_add_key(s, "ops", ADMIN, "ops", "[\"*\"]");
    h_stack_set(s, "keys.2.admin", "true");
    return s;
}

static struct json_object *call(struct h_stack *s, const char *method, const char *path,
                                const char *token, const char *body, long want)
{
    char url[512], auth[128];
    snprintf(url, sizeof url, "%s%s", h_stack_url(s), path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    struct h_resp *r = h_request(method, url, headers, body, body ? strlen(body) : 0);
    ck_assert_msg(r->status == want, "%s %s: %ld, want %ld (%s%s)", method, path, r->status, want,
                  r->body, r->err);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "%s %s: not JSON: %s", method, path, r->body);
    h_resp_free(r);
    return o;
}

/* route_doc returns route's document from GET /v1/admin/routes (caller puts the whole). */
static struct json_object *route_doc(struct h_stack *s, const char *route, struct json_object **all)
{
    *all = call(s, "GET", "/v1/admin/routes", ADMIN, NULL, 200);
    struct json_object *routes = h_json_at(*all, "routes");
    for (size_t i = 0; i < json_object_array_length(routes); i++) {
        struct json_object *r = json_object_array_get_idx(routes, i);
        if (!strcmp(h_json_str(r, "name"), route)) return r;
    }
    ck_abort_msg("no route %s in %s", route, json_object_to_json_string(*all));
    return NULL;
}

static void expect_state(struct h_stack *s, const char *route, const char *state)
{
    struct json_object *all;
    struct json_object *r = route_doc(s, route, &all);
    ck_assert_msg(!strcmp(h_json_str(r, "state"), state), "%s: %s, want %s", route,
                  json_object_to_json_string(r), state);
    json_object_put(all);
}

/* cli runs `sluice --url <ingress> --token <token> args...` with its output
 * in cli.log and returns its exit code. */
static int cli(struct h_stack *s, const char *token, const char *a1, const char *a2, const char *a3,
               const char *a4, const char *a5)
{
    const char *args[] = {a1, a2, a3, a4, a5, NULL};
    return h_cli(s, "cli.log", NULL, token, args);
}

static void restart_all(struct h_stack *s)
{
    h_stack_stop_worker(s, 0);
    h_stack_stop_worker(s, 1);
    h_stack_restart_ingress(s);
    h_stack_add_worker(s);
    h_stack_add_worker(s);
}

static void submit(struct h_stack *s, const char *route, const char *path, char *ids[], int n)
{
    char env[256];
    snprintf(env, sizeof env, "{\"route\":\"%s\",\"path\":\"%s\"}", route, path);
    for (int i = 0; i < n; i++)
        ids[i] = h_submit(s, H_TOKEN, env);
}

static void expect_succeeded(struct h_stack *s, char *ids[], int n)
{
    for (int i = 0; i < n; i++) {
        struct json_object *o = h_wait_final(s, H_TOKEN, ids[i], 30000);
        ck_assert_str_eq(h_json_str(o, "status"), "succeeded");
        json_object_put(o);
        free(ids[i]);
    }
}

/* route_backlog returns route's backlog in GET /v1/admin/routes (-1: null). */
static long long route_backlog(struct h_stack *s, const char *route)
{
    struct json_object *all, *r = route_doc(s, route, &all), *b = h_json_at(r, "backlog");
    long long n = b && !json_object_is_type(b, json_type_null) ? json_object_get_int64(b) : -1;
    json_object_put(all);
    return n;
}

START_TEST(test_pause_resume)
{
    struct h_stack *s = stack();
    /* Each worker holds at most 2 requests (HELD in all): the others of a
     * paused route wait in its lane, where the ingress counts them as its
     * backlog. */
    h_stack_set(s, "worker.batch_size", "1");
    h_stack_set(s, "worker.prefetch", "%d", HELD / 2);
    h_stack_start(s, 2);
    char *ids[N_REQ];
    json_object_put(call(s, "POST", "/v1/admin/routes/echo:pause", H_TOKEN, NULL, 403));
    json_object_put(call(s, "POST", "/v1/admin/routes/nosuch:pause", ADMIN, NULL, 404));
    submit(s, "echo", "/warm", ids, 1);
    expect_succeeded(s, ids, 1);

    /* Paused through the CLI, which prints the route's new state. */
    ck_assert_int_eq(cli(s, ADMIN, "routes", "pause", "echo", NULL, NULL), 0);
    ck_assert_msg(h_file_has(s, "cli.log", "echo                 paused "),
                  "sluice routes pause did not print echo paused");
    h_sleep_ms(SETTLE_MS);
    long before = h_backend_requests(s);
    long long t0 = h_mono_ms();
    submit(s, "echo", "/paused", ids, N_REQ);
    /* The lane's depth is refreshed every 5 s: the backlog shows within 7. */
    long long backlog;
    while ((backlog = route_backlog(s, "echo")) < N_REQ - HELD && h_mono_ms() - t0 < 7000)
        h_sleep_ms(200);
    ck_assert_msg(backlog >= N_REQ - HELD && backlog <= N_REQ,
                  "a paused echo with %d waiting shows a backlog of %lld", N_REQ, backlog);
    if (h_mono_ms() - t0 < 3000) h_sleep_ms((long)(3000 - (h_mono_ms() - t0)));
    ck_assert_int_eq(h_backend_requests(s), before);
    /* The workers holding them say why they wait. */
    int paused = 0;
    for (int i = 0; i < N_REQ; i++) {
        struct json_object *o = h_get_status(s, H_TOKEN, ids[i], NULL);
        ck_assert_str_eq(h_json_str(o, "status"), "queued");
        struct json_object *why = h_json_at(o, "reason");
        if (why && !strcmp(json_object_get_string(why), "paused")) paused++;
        json_object_put(o);
    }
    ck_assert_int_gt(paused, 0);
    expect_state(s, "echo", "paused");

    /* Every process restarted: still paused. */
    restart_all(s);
    expect_state(s, "echo", "paused");
    h_sleep_ms(3000);
    ck_assert_int_eq(h_backend_requests(s), before);

    /* No ingress there: exit 4, worth retrying later. */
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d", h_free_port());
    const char *resume[] = {"routes", "resume", "echo", NULL};
    ck_assert_int_eq(h_cli(s, "cli-closed.log", closed, ADMIN, resume), 4);
    ck_assert_int_eq(h_backend_requests(s), before);

    ck_assert_int_eq(cli(s, ADMIN, "routes", "resume", "echo", NULL, NULL), 0);
    ck_assert_msg(h_file_has(s, "cli.log", "echo                 running "),
                  "sluice routes resume did not print echo running");
    t0 = h_mono_ms();
    expect_succeeded(s, ids, N_REQ);
    ck_assert_int_lt(h_mono_ms() - t0, 10000);

    /* Both changes logged with the admin key's id. */
    const char *logged[] = {"admin: key \"ops\" set the routes' state",
                            "\"routes\":{\"echo\":{\"paused\":true}}}",
                            "admin: key \"ops\" set the routes' state", "\"routes\":{}}", NULL};
    h_expect_logged(s, "ingress.log", logged);
    h_stack_teardown(s);
}
END_TEST

/* most_at_once submits n calls of 300 ms to route lim and returns the most
 * the backend answered at once. */
static long most_at_once(struct h_stack *s, int n)
{
    char *ids[N_REQ];
    h_backend_stat(h_stack_backend_url(s), "max_in_flight", true);
    submit(s, "lim", "/delay/300", ids, n);
    expect_succeeded(s, ids, n);
    return h_backend_stat(h_stack_backend_url(s), "max_in_flight", false);
}

/* ---- rate_per_s overrides: calls per second at a backend of its own ---- */

#define RATE_CONF 100 /* route "rated": the configured rate, and so its burst */
#define RATE_LOW 4    /* the override: a burst of 4, then 4 calls a second */
#define RATE_N 12     /* calls per measure: 2 s at RATE_LOW, at once at RATE_CONF */

/* rated_span submits RATE_N requests to route "rated" at once (one batch
 * submission, so the rate is the worker's, not the test's), waits for them,
 * and returns the milliseconds between the first and the last call the
 * backend saw. tag is their path, which tells them apart in its log. */
static long long rated_span(struct h_stack *s, const char *tag)
{
    char body[2048] = "{\"requests\":[", url[256], auth[128];
    for (int i = 0; i < RATE_N; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body),
                 "%s{\"route\":\"rated\",\"path\":\"/%s\"}", i ? "," : "", tag);
    strncat(body, "]}", sizeof body - strlen(body) - 1);
    snprintf(url, sizeof url, "%s/v1/requests:batch", h_stack_url(s));
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", H_TOKEN);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    struct h_resp *r = h_request("POST", url, headers, body, strlen(body));
    struct json_object *doc = h_resp_json(r);
    ck_assert_msg(doc && h_json_at(doc, "results"), "batch submit: %ld %s", r->status, r->body);
    h_resp_free(r);
    char *ids[RATE_N];
    for (int i = 0; i < RATE_N; i++) {
        char at[32];
        snprintf(at, sizeof at, "results.%d.id", i);
        ids[i] = strdup(h_json_str(doc, at));
    }
    json_object_put(doc);
    expect_succeeded(s, ids, RATE_N);
    /* The backend's log: "<unix_us> <METHOD> <path> <key>". */
    char want[64], line[512];
    snprintf(want, sizeof want, " /%s ", tag);
    long long first = -1, last = -1;
    int n = 0;
    FILE *f = h_stack_open(s, "rated-access.log");
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, want)) continue;
        long long t = strtoll(line, NULL, 10);
        if (first < 0 || t < first) first = t;
        if (t > last) last = t;
        n++;
    }
    fclose(f);
    ck_assert_int_eq(n, RATE_N);
    long long span = (last - first) / 1000;
    /* The rate past the first RATE_LOW calls (the override's burst). */
    fprintf(stderr, "rated %s: %d calls in %lld ms (%.1f/s after the first %d)\n", tag, n, span,
            span > 0 ? (n - RATE_LOW) * 1000.0 / (double)span : 0.0, RATE_LOW);
    return span;
}

/* expect_rate checks route "rated"'s override and effective rate in GET
 * /v1/admin/routes (override -1: none). */
static void expect_rate(struct h_stack *s, int override, int effective)
{
    struct json_object *all, *r = route_doc(s, "rated", &all);
    struct json_object *o = h_json_at(r, "override.rate_per_s");
    ck_assert_msg(override < 0 ? o == NULL : o && json_object_get_int(o) == override,
                  "rated: %s, want override %d", json_object_to_json_string(r), override);
    ck_assert_int_eq(h_json_int(r, "effective.rate_per_s"), effective);
    json_object_put(all);
}

START_TEST(test_override)
{
    struct h_stack *s = stack();
    char rated_url[128];
    struct h_proc *rated = h_backend_spawn(s, "rated", 0, NULL, rated_url, sizeof rated_url);
    h_stack_set(s, "routes.rated", "{\"upstreams\":[\"%s\"],\"rate_per_s\":%d}", rated_url,
                RATE_CONF);
    h_stack_start(s, 2);
    json_object_put(call(s, "PATCH", "/v1/admin/routes/echo", ADMIN, "{\"max_in_flight\":1}", 409));
    json_object_put(call(s, "PATCH", "/v1/admin/routes/lim", ADMIN, "{\"max_in_flight\":0}", 400));
    json_object_put(call(s, "PATCH", "/v1/admin/routes/lim", ADMIN, "{\"burst\":1}", 400));
    json_object_put(
        call(s, "PATCH", "/v1/admin/routes/lim", H_TOKEN, "{\"max_in_flight\":1}", 403));
    ck_assert_int_gt(most_at_once(s, N_REQ), 1);

    /* Through the CLI: exit 3 for a plain key, 2 for a bad option, 0 then. */
    ck_assert_int_eq(cli(s, H_TOKEN, "routes", "set", "lim", "--max-in-flight", "1"), 3);
    ck_assert_int_eq(cli(s, ADMIN, "routes", "set", "lim", "--max-in-flight", "0"), 2);
    ck_assert_int_eq(cli(s, ADMIN, "routes", "set", "lim", "--max-in-flight", "1"), 0);
    ck_assert_int_eq(cli(s, ADMIN, "routes", "set", "rated", "--rate", "4"), 0);
    ck_assert_int_eq(cli(s, ADMIN, "routes", "list", NULL, NULL, NULL), 0);
    struct json_object *all;
    struct json_object *o = route_doc(s, "lim", &all);
    ck_assert_int_eq(h_json_int(o, "effective.max_in_flight"), 1);
    ck_assert_int_eq(h_json_int(o, "configured.max_in_flight"), 10);
    json_object_put(all);
    expect_rate(s, RATE_LOW, RATE_LOW);
    h_sleep_ms(SETTLE_MS);
    ck_assert_int_eq(most_at_once(s, N_REQ), 1);
    /* 4 at once, then 4 a second: 2 s for 12 (at 100/s: all at once). */
    long long span = rated_span(s, "low");
    ck_assert_msg(span >= 1600, "rate %d/s: %d calls within %lld ms", RATE_LOW, RATE_N, span);

    restart_all(s);
    span = rated_span(s, "restarted");
    ck_assert_msg(span >= 1600, "rate %d/s after restarts: %d calls within %lld ms", RATE_LOW,
                  RATE_N, span);
    struct json_object *r = route_doc(s, "lim", &all);
    ck_assert_int_eq(h_json_int(r, "override.max_in_flight"), 1);
    json_object_put(all);
    ck_assert_int_eq(most_at_once(s, 6), 1);

    o = call(s, "DELETE", "/v1/admin/routes/lim/override", ADMIN, NULL, 200);
    ck_assert_int_eq(h_json_int(o, "effective.max_in_flight"), 10);
    json_object_put(o);
    ck_assert_int_eq(cli(s, ADMIN, "routes", "set", "rated", "--clear", NULL), 0);
    expect_rate(s, -1, RATE_CONF);
    h_sleep_ms(SETTLE_MS);
    ck_assert_int_gt(most_at_once(s, N_REQ), 1);
    span = rated_span(s, "cleared");
    ck_assert_msg(span < 800, "rate %d/s again: %d calls took %lld ms", RATE_CONF, RATE_N, span);

    /* Each change logged with the admin key's id. */
    const char *logged[] = {"admin: key \"ops\" set the routes' state",
                            "\"lim\":{\"paused\":false,\"max_in_flight\":1}",
                            "admin: key \"ops\" set the routes' state",
                            "\"rated\":{\"paused\":false,\"rate_per_s\":4}", NULL};
    h_expect_logged(s, "ingress.log", logged);
    h_proc_stop(rated, 5000);
    h_proc_free(rated);
    h_stack_teardown(s);
}
END_TEST

/* ---- the fleet's view: breakers, calls in flight, rates ---- */

/* fleet_of returns route's "fleet" object from GET /v1/admin/routes (the
 * caller puts *all). */
static struct json_object *fleet_of(struct h_stack *s, const char *route, struct json_object **all)
{
    struct json_object *f = h_json_at(route_doc(s, route, all), "fleet");
    ck_assert_msg(f && json_object_is_type(f, json_type_object), "%s: no fleet in %s", route,
                  json_object_to_json_string(*all));
    return f;
}

/* wait_fleet polls route's fleet view every 100 ms until path (under
 * "fleet") satisfies ok, for at most ms; returns how long it took, or
 * fails the test with the last view. */
static long long wait_fleet(struct h_stack *s, const char *route, const char *path,
                            bool (*ok)(struct json_object *v), long long ms)
{
    long long t0 = h_mono_ms();
    for (;;) {
        struct json_object *all, *f = fleet_of(s, route, &all);
        struct json_object *v = h_json_at(f, path);
        bool done = v && ok(v);
        if (done || h_mono_ms() - t0 > ms) {
            ck_assert_msg(done, "%s fleet.%s not as wanted within %lld ms: %s", route, path, ms,
                          json_object_to_json_string(f));
            fprintf(stderr, "fleet: %s after %lld ms: %s\n", path, h_mono_ms() - t0,
                    json_object_to_json_string(f));
            json_object_put(all);
            return h_mono_ms() - t0;
        }
        json_object_put(all);
        h_sleep_ms(100);
    }
}

static bool is_two(struct json_object *v)
{
    return json_object_get_int(v) == 2;
}
static bool is_one(struct json_object *v)
{
    return json_object_get_int(v) == 1;
}
static bool is_zero(struct json_object *v)
{
    return json_object_get_int(v) == 0;
}
static bool positive(struct json_object *v)
{
    return json_object_get_double(v) > 0;
}
static bool is_open(struct json_object *v)
{
    return !strcmp(json_object_get_string(v), "open");
}
static bool is_closed(struct json_object *v)
{
    return !strcmp(json_object_get_string(v), "closed");
}

#define SLOW_N 6
#define DOWN_N 10

START_TEST(test_fleet_view)
{
    struct h_stack *s = h_stack_new();
    int down_port = h_free_port();
    /* "down"'s only upstream is not there until the test starts it: two
     * failures in a row open a worker's breaker, whose requests then wait. */
    h_stack_set(s, "routes.down",
                "{\"upstreams\":[\"http://127.0.0.1:%d\"],\"timeout_ms\":5000,"
                "\"max_attempts\":50,\"backoff_ms\":100,\"backoff_max_ms\":500,"
                "\"breaker\":{\"consecutive_failures\":2,\"open_ms\":1000,\"max_open_ms\":2000}}",
                down_port);
    h_stack_add_key(s, "ops", ADMIN, "ops", "[\"*\"]");
    h_stack_set(s, "keys.2.admin", "true");
    h_stack_start(s, 2);
    wait_fleet(s, "echo", "workers", is_two, 5000);

    /* Calls of 2 s under way show in flight; once done, the rate. */
    char *ids[SLOW_N];
    submit(s, "echo", "/delay/2000", ids, SLOW_N);
    wait_fleet(s, "echo", "in_flight", positive, 3000);
    expect_succeeded(s, ids, SLOW_N);
    wait_fleet(s, "echo", "completed_per_s", positive, 3000);
    wait_fleet(s, "echo", "in_flight", is_zero, 3000);

    /* The backend of "down" is away: its breaker shows open. */
    char *down[DOWN_N];
    submit(s, "down", "/d", down, DOWN_N);
    wait_fleet(s, "down", "upstreams.0.breaker", is_open, 5000);
    struct json_object *all, *f = fleet_of(s, "down", &all);
    ck_assert_int_ge(h_json_int(f, "upstreams.0.workers_open"), 1);
    ck_assert_ptr_nonnull(h_json_at(f, "upstreams.0.open_until"));
    ck_assert(json_object_is_type(h_json_at(f, "upstreams.0.open_until"), json_type_string));
    json_object_put(all);
    /* The CLI prints the fleet's columns, and a line for the breaker. */
    ck_assert_int_eq(cli(s, ADMIN, "routes", "list", NULL, NULL, NULL), 0);
    char line[512], want[128];
    bool columns = false, breaker = false;
    snprintf(want, sizeof want, "  breaker http://127.0.0.1:%d ", down_port);
    FILE *out = h_stack_open(s, "cli.log");
    while (fgets(line, sizeof line, out)) {
        columns |=
            !strncmp(line, "down ", 5) && strstr(line, " in_flight ") && strstr(line, " workers 2");
        breaker |= !strncmp(line, want, strlen(want));
    }
    fclose(out);
    ck_assert_msg(columns && breaker, "sluice routes list: columns %d, breaker line %d", columns,
                  breaker);

    /* It comes back: every request succeeds and the breakers close. */
    char url[64];
    struct h_proc *back = h_backend_spawn(s, "down", down_port, NULL, url, sizeof url);
    expect_succeeded(s, down, DOWN_N);
    wait_fleet(s, "down", "upstreams.0.breaker", is_closed, 5000);

    /* A killed worker says nothing more: it leaves the view after the
     * reports' timeout. One stopped says goodbye: it leaves at once. */
    h_stack_kill_worker(s, 1);
    long long gone = wait_fleet(s, "echo", "workers", is_one, 9000);
    ck_assert_msg(gone >= 2000, "a killed worker left the view after %lld ms", gone);
    h_stack_stop_worker(s, 0);
    gone = wait_fleet(s, "echo", "workers", is_zero, 2000);
    ck_assert_msg(gone < 1500, "a stopped worker left the view after %lld ms", gone);

    h_proc_stop(back, 5000);
    h_proc_free(back);
    h_stack_teardown(s);
}
END_TEST

static Suite *routes_suite(void)
{
    Suite *s = suite_create("routes");
    TCase *tc = tcase_create("routes");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_pause_resume);
    tcase_add_test(tc, test_override);
    tcase_add_test(tc, test_fleet_view);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(routes_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
