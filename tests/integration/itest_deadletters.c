/* itest_deadletters.c: the admin API's dead letters against the real
 * binaries and broker. Requests to a backend that is down die; an admin key
 * lists them (reason, last status, attempts), other keys get 403; once the
 * backend is up, a replay by ID and then by route sends them back to their
 * lane with fresh attempts, and their status shows the replay's outcome
 * (succeeded, "replays":1), also after an ingress restart (the generation
 * rule replayed from the events stream). A purge by ID and then of all
 * empties the dead queue and the listing; a replay while the backend is
 * still down makes the request dead again, listed again. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ADMIN "ops-token-0123456789"
#define ADMIN_TOKEN "page-token-0123456789"
#define N_DEAD 5
#define DEAD_WAIT_MS 30000

/* stack starts a stack with route "down" to a port nothing listens on
 * (written to port), an admin key "ops" and the page's admin token. */
static struct h_stack *stack(int *port)
{
    struct h_stack *s = h_stack_new();
    *port = h_free_port();
    h_stack_set(s, "routes.down",
                "{\"upstreams\":[\"http://127.0.0.1:%d\"],\"timeout_ms\":2000,\"max_attempts\":2,"
                "\"backoff_ms\":50,\"backoff_max_ms\":100}",
                *port);
    h_stack_add_key(s, "ops", ADMIN, "ops", "[\"*\"]");
    h_stack_set(s, "keys.2.admin", "true");
    h_stack_set(s, "admin_token", "\"%s\"", ADMIN_TOKEN);
    h_stack_start(s, 1);
    return s;
}

static struct h_resp *call(struct h_stack *s, const char *method, const char *path,
                           const char *token, const char *body)
{
    char url[512], auth[128];
    snprintf(url, sizeof url, "%s%s", h_stack_url(s), path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    return h_request(method, url, headers, body, body ? strlen(body) : 0);
}

/* call_json asserts the answer's status and returns its JSON (caller puts). */
static struct json_object *call_json(struct h_stack *s, const char *method, const char *path,
                                     const char *token, const char *body, long want)
{
    struct h_resp *r = call(s, method, path, token, body);
    ck_assert_msg(r->status == want, "%s %s: %ld, want %ld (%s%s)", method, path, r->status, want,
                  r->body, r->err);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "%s %s: not JSON: %s", method, path, r->body);
    h_resp_free(r);
    return o;
}

static void submit_dead(struct h_stack *s, char *ids[], int n)
{
    for (int i = 0; i < n; i++)
        ids[i] = h_submit(s, H_TOKEN, "{\"route\":\"down\",\"path\":\"/x\"}");
    for (int i = 0; i < n; i++) {
        struct json_object *o = h_wait_final(s, H_TOKEN, ids[i], DEAD_WAIT_MS);
        ck_assert_str_eq(h_json_str(o, "status"), "dead");
        json_object_put(o);
    }
}

/* dead_count lists route's dead letters (one page) and returns how many. */
static long dead_count(struct h_stack *s, const char *query)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/admin/dead%s", query);
    struct json_object *o = call_json(s, "GET", path, ADMIN, NULL, 200);
    long n = (long)json_object_array_length(h_json_at(o, "dead"));
    json_object_put(o);
    return n;
}

/* wait_queue waits until the dead queue holds want messages. */
static void wait_queue(struct h_stack *s, long want)
{
    long long end = h_mono_ms() + 10000;
    long n;
    while ((n = h_queue_messages(s, "dead")) != want && h_mono_ms() < end)
        h_sleep_ms(50);
    ck_assert_msg(n == want, "the dead queue holds %ld, want %ld", n, want);
}

static void expect_final(struct h_stack *s, const char *id, const char *state, int replays)
{
    long long end = h_mono_ms() + DEAD_WAIT_MS;
    struct json_object *o = NULL;
    for (;;) {
        o = h_get_status(s, H_TOKEN, id, NULL);
        struct json_object *st = h_json_at(o, "status"), *rp = h_json_at(o, "replays");
        if (st && !strcmp(json_object_get_string(st), state) &&
            (rp ? json_object_get_int(rp) : 0) == replays)
            break;
        ck_assert_msg(h_mono_ms() < end, "%s: %s, want %s with replays %d", id,
                      json_object_to_json_string(o), state, replays);
        json_object_put(o);
        h_sleep_ms(50);
    }
    json_object_put(o);
}

START_TEST(test_list_and_replay)
{
    int port;
    struct h_stack *s = stack(&port);
    char *ids[N_DEAD];
    submit_dead(s, ids, N_DEAD);
    wait_queue(s, N_DEAD);

    /* Only admin keys (or the page's token) may look. */
    struct h_resp *r = call(s, "GET", "/v1/admin/dead", H_TOKEN, NULL);
    ck_assert_msg(r->status == 403 && strstr(r->body, "admin_forbidden"), "plain key: %ld %s",
                  r->status, r->body);
    h_resp_free(r);
    r = call(s, "GET", "/v1/admin/dead", ADMIN_TOKEN, NULL);
    ck_assert_msg(r->status == 200, "admin token: %ld %s", r->status, r->body);
    h_resp_free(r);

    struct json_object *o =
        call_json(s, "GET", "/v1/admin/dead?route=down&limit=2", ADMIN, NULL, 200);
    ck_assert_int_eq(json_object_array_length(h_json_at(o, "dead")), 2);
    ck_assert_str_eq(h_json_str(o, "dead.0.id"), ids[0]);
    ck_assert_str_eq(h_json_str(o, "dead.0.tenant"), "acme");
    ck_assert_str_eq(h_json_str(o, "dead.0.route"), "down");
    ck_assert_int_eq(h_json_int(o, "dead.0.attempts"), 2);
    ck_assert_msg(h_json_at(o, "dead.0.reason") && h_json_at(o, "dead.0.dead_at"), "%s",
                  json_object_to_json_string(o));
    char after[256];
    snprintf(after, sizeof after, "/v1/admin/dead?route=down&limit=10&after=%s",
             h_json_str(o, "next_after"));
    json_object_put(o);
    o = call_json(s, "GET", after, ADMIN, NULL, 200);
    ck_assert_int_eq(json_object_array_length(h_json_at(o, "dead")), N_DEAD - 2);
    ck_assert_str_eq(h_json_str(o, "dead.0.id"), ids[2]);
    ck_assert_msg(json_object_get_type(h_json_at(o, "next_after")) == json_type_null, "%s",
                  json_object_to_json_string(o));
    json_object_put(o);
    ck_assert_int_eq(dead_count(s, "?route=echo"), 0);

    /* The backend comes back: a replay by ID, then the rest by route. */
    char url[128];
    struct h_proc *backend = h_backend_spawn(s, "back", port, NULL, url, sizeof url);
    char body[256];
    snprintf(body, sizeof body, "{\"ids\":[\"%s\",\"%s\"]}", ids[0], ids[1]);
    o = call_json(s, "POST", "/v1/admin/dead:replay", ADMIN, body, 200);
    ck_assert_int_eq(h_json_int(o, "replayed"), 2);
    json_object_put(o);
    expect_final(s, ids[0], "succeeded", 1);
    expect_final(s, ids[1], "succeeded", 1);
    ck_assert_int_eq(dead_count(s, ""), N_DEAD - 2);
    o = call_json(s, "POST", "/v1/admin/dead:replay", ADMIN, "{\"route\":\"down\"}", 200);
    ck_assert_int_eq(h_json_int(o, "replayed"), N_DEAD - 2);
    json_object_put(o);
    for (int i = 0; i < N_DEAD; i++)
        expect_final(s, ids[i], "succeeded", 1);
    ck_assert_int_eq(dead_count(s, ""), 0);
    wait_queue(s, 0);
    ck_assert_int_eq(h_backend_stat(url, "requests", false), N_DEAD); /* one call each */

    /* The outcome survives a restart: the stream is read again from its start. */
    h_stack_restart_ingress(s);
    expect_final(s, ids[0], "succeeded", 1);
    expect_final(s, ids[N_DEAD - 1], "succeeded", 1);
    ck_assert_int_eq(dead_count(s, ""), 0);

    h_proc_stop(backend, 5000);
    h_proc_free(backend);
    for (int i = 0; i < N_DEAD; i++)
        free(ids[i]);
    h_stack_teardown(s);
}
END_TEST

START_TEST(test_purge_and_dead_again)
{
    int port;
    struct h_stack *s = stack(&port);
    char *ids[N_DEAD];
    submit_dead(s, ids, N_DEAD);
    wait_queue(s, N_DEAD);

    struct h_resp *r = call(s, "POST", "/v1/admin/dead:purge", H_TOKEN, "{\"all\":true}");
    ck_assert_msg(r->status == 403, "plain key purges: %ld %s", r->status, r->body);
    h_resp_free(r);
    const char *bad[] = {"{}",
                         "{\"all\":false}",
                         "{\"all\":true,\"route\":\"down\"}",
                         "{\"ids\":[\"nope\"]}",
                         "{\"route\":\"nosuch\"}",
                         "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        json_object_put(call_json(s, "POST", "/v1/admin/dead:purge", ADMIN, bad[i], 400));
    wait_queue(s, N_DEAD);

    /* A replay while the backend is still down: dead again, listed again. */
    char body[256];
    snprintf(body, sizeof body, "{\"ids\":[\"%s\"]}", ids[0]);
    struct json_object *o = call_json(s, "POST", "/v1/admin/dead:replay", ADMIN, body, 200);
    ck_assert_int_eq(h_json_int(o, "replayed"), 1);
    json_object_put(o);
    expect_final(s, ids[0], "dead", 1);
    wait_queue(s, N_DEAD);
    ck_assert_int_eq(dead_count(s, ""), N_DEAD);

    /* Purge one by ID, then all. */
    snprintf(body, sizeof body, "{\"ids\":[\"%s\"]}", ids[1]);
    o = call_json(s, "POST", "/v1/admin/dead:purge", ADMIN, body, 200);
    ck_assert_int_eq(h_json_int(o, "purged"), 1);
    json_object_put(o);
    wait_queue(s, N_DEAD - 1);
    ck_assert_int_eq(dead_count(s, ""), N_DEAD - 1);
    /* The rest through the CLI, which wants --yes for a purge (exit 2). */
    char bin[512], log[512];
    snprintf(bin, sizeof bin, "%s/sluice", h_bin_dir());
    snprintf(log, sizeof log, "%s/cli.log", h_stack_dir(s));
    char *no[] = {bin,     "--url", (char *)h_stack_url(s), "--token", ADMIN, "dead", "purge",
                  "--all", NULL};
    ck_assert_int_eq(h_run("sluice", log, no, 30000), 2);
    char *yes[] = {
        bin,     "--url", (char *)h_stack_url(s), "--token", ADMIN_TOKEN, "dead", "purge", "--all",
        "--yes", NULL};
    ck_assert_int_eq(h_run("sluice", log, yes, 30000), 0);
    wait_queue(s, 0);
    ck_assert_int_eq(dead_count(s, ""), 0);
    /* The status stays what it was: dead. */
    expect_final(s, ids[2], "dead", 0);

    for (int i = 0; i < N_DEAD; i++)
        free(ids[i]);
    h_stack_teardown(s);
}
END_TEST

/* wait_calls waits until the backend has seen n calls of id (its
 * Idempotency-Key): a worker holds it in a call. */
static void wait_calls(struct h_stack *s, const char *id, long n)
{
    long long end = h_mono_ms() + 20000;
    while (h_backend_calls(s, id) < n) {
        ck_assert_msg(h_mono_ms() < end, "%s: fewer than %ld calls", id, n);
        h_sleep_ms(20);
    }
}

/* A request whose holders keep dying (SIGKILLed during its call) is counted
 * by the workers themselves, classic queues included: with delivery_limit 2
 * it is dead after its second lost delivery, with the reason
 * delivery_limit, and listed as a dead letter; a request beside it is not
 * harmed. */
START_TEST(test_delivery_limit)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "delivery_limit", "2");
    h_stack_add_key(s, "ops", ADMIN, "ops", "[\"*\"]");
    h_stack_set(s, "keys.2.admin", "true");
    h_stack_start(s, 1);
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/delay/20000\"}");
    wait_calls(s, id, 1);
    h_stack_kill_worker(s, 0);
    int w = h_stack_add_worker(s);
    /* Redelivered: counted (republished with one delivery), then called again. */
    wait_calls(s, id, 2);
    h_stack_kill_worker(s, w);
    h_stack_add_worker(s);
    struct json_object *o = h_wait_final(s, H_TOKEN, id, 20000);
    ck_assert_str_eq(h_json_str(o, "status"), "dead");
    ck_assert_str_eq(h_json_str(o, "error.code"), "delivery_limit");
    json_object_put(o);
    wait_queue(s, 1);
    o = call_json(s, "GET", "/v1/admin/dead", ADMIN, NULL, 200);
    ck_assert_str_eq(h_json_str(o, "dead.0.id"), id);
    ck_assert_str_eq(h_json_str(o, "dead.0.reason"), "delivery_limit");
    json_object_put(o);
    /* The workers still work. */
    char *ok = h_submit(s, H_TOKEN, "{\"route\":\"echo\"}");
    o = h_wait_final(s, H_TOKEN, ok, 20000);
    ck_assert_str_eq(h_json_str(o, "status"), "succeeded");
    json_object_put(o);
    free(ok);
    free(id);
    h_stack_teardown(s);
}
END_TEST

static Suite *deadletters_suite(void)
{
    Suite *s = suite_create("deadletters");
    TCase *tc = tcase_create("deadletters");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_list_and_replay);
    tcase_add_test(tc, test_purge_and_dead_again);
    tcase_add_test(tc, test_delivery_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(deadletters_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
