/* itest_deadletters.c: the admin API's dead letters against the real
 * binaries and broker. Requests to a backend that is down die; an admin key
 * lists them (reason, last status, attempts), other keys get 403; once the
 * backend is up, a replay by ID and then by route sends them back to their
 * lane with fresh attempts, and their status shows the replay's outcome
 * (succeeded, "replays":1), also after an ingress restart (the generation
 * rule replayed from the events stream). A purge by ID and then of all
 * empties the dead queue and the listing; a replay while the backend is
 * still down makes the request dead again, listed again. The CLI lists,
 * replays and purges the same way (and exits 4 when no ingress answers), and
 * the ingress logs each replay and purge with the id of the key that asked.
 * A request whose holders keep dying is called in a batch of its own once
 * redelivered, apart from fresh requests, until delivery_limit makes it
 * dead. */
#include <check.h>
#include <dirent.h>
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

/* cli runs `sluice args...` with token against the stack's ingress, its
 * output in cli.out, and returns its exit status. */
static int cli(struct h_stack *s, const char *token, const char *const args[])
{
    return h_cli(s, "cli.out", NULL, token, args);
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

    /* The CLI's listing: a line per dead letter, then where the next page starts. */
    const char *list[] = {"dead", "list", "--route", "down", "--limit", "2", NULL};
    ck_assert_int_eq(cli(s, ADMIN, list), 0);
    char want[256];
    for (int i = 0; i < 2; i++) {
        snprintf(want, sizeof want, "%s  acme  down  ", ids[i]);
        ck_assert_msg(h_file_has(s, "cli.out", want), "sluice dead list has no line %s", want);
    }
    snprintf(want, sizeof want, "more: --after %s", ids[1]);
    ck_assert_msg(h_file_has(s, "cli.out", want), "sluice dead list has no line %s", want);
    ck_assert_msg(!h_file_has(s, "cli.out", ids[2]), "sluice dead list showed more than 2");
    /* No ingress there: exit 4, worth retrying later. */
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d", h_free_port());
    const char *all_dead[] = {"dead", "list", NULL};
    ck_assert_int_eq(h_cli(s, "cli-closed.out", closed, ADMIN, all_dead), 4);

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
    /* The rest through the CLI, by route. */
    const char *replay[] = {"dead", "replay", "--route", "down", NULL};
    ck_assert_int_eq(cli(s, ADMIN, replay), 0);
    snprintf(want, sizeof want, "replayed %d", N_DEAD - 2);
    ck_assert_msg(h_file_has(s, "cli.out", want), "sluice dead replay did not say %s", want);
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

    /* Each pass is logged with the id of the key that asked for it. */
    char by_route[128];
    snprintf(by_route, sizeof by_route, "admin: key \"ops\" replayed %d dead letters (route down)",
             N_DEAD - 2);
    const char *logged[] = {"admin: key \"ops\" replayed 2 dead letters (by id)", "", by_route, "",
                            NULL};
    h_expect_logged(s, "ingress.log", logged);

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

    /* Replay all while the backend is still down: dead again, listed again. */
    struct json_object *o =
        call_json(s, "POST", "/v1/admin/dead:replay", ADMIN, "{\"all\":true}", 200);
    ck_assert_int_eq(h_json_int(o, "replayed"), N_DEAD);
    json_object_put(o);
    for (int i = 0; i < N_DEAD; i++)
        expect_final(s, ids[i], "dead", 1);
    wait_queue(s, N_DEAD);
    ck_assert_int_eq(dead_count(s, ""), N_DEAD);

    /* One dead letter of another route, which a purge of "down" must leave. */
    char *other =
        h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/status/503\",\"max_attempts\":1}");
    expect_final(s, other, "dead", 0);
    wait_queue(s, N_DEAD + 1);

    /* Purge one by ID, then the route's. */
    char body[256];
    snprintf(body, sizeof body, "{\"ids\":[\"%s\"]}", ids[1]);
    o = call_json(s, "POST", "/v1/admin/dead:purge", ADMIN, body, 200);
    ck_assert_int_eq(h_json_int(o, "purged"), 1);
    json_object_put(o);
    wait_queue(s, N_DEAD);
    ck_assert_int_eq(dead_count(s, ""), N_DEAD);
    o = call_json(s, "POST", "/v1/admin/dead:purge", ADMIN, "{\"route\":\"down\"}", 200);
    ck_assert_int_eq(h_json_int(o, "purged"), N_DEAD - 1);
    json_object_put(o);
    wait_queue(s, 1);
    ck_assert_int_eq(dead_count(s, "?route=down"), 0);
    ck_assert_int_eq(dead_count(s, "?route=echo"), 1);
    /* The rest through the CLI, which wants --yes for a purge (exit 2). */
    const char *no[] = {"dead", "purge", "--all", NULL};
    ck_assert_int_eq(cli(s, ADMIN, no), 2);
    const char *yes[] = {"dead", "purge", "--all", "--yes", NULL};
    ck_assert_int_eq(cli(s, ADMIN_TOKEN, yes), 0);
    wait_queue(s, 0);
    ck_assert_int_eq(dead_count(s, ""), 0);
    /* The status stays what it was: dead. */
    expect_final(s, ids[2], "dead", 1);
    expect_final(s, other, "dead", 0);

    /* Each pass is logged with the id of the key that asked for it (the
     * page's token has none: it is named as such). */
    char by_route[128], all[128];
    snprintf(all, sizeof all, "admin: key \"ops\" replayed %d dead letters (all)", N_DEAD);
    snprintf(by_route, sizeof by_route, "admin: key \"ops\" purged %d dead letters (route down)",
             N_DEAD - 1);
    const char *logged[] = {
        all,      "", "admin: key \"ops\" purged 1 dead letters (by id)",       "",
        by_route, "", "admin: key \"admin_token\" purged 1 dead letters (all)", "",
        NULL};
    h_expect_logged(s, "ingress.log", logged);

    free(other);
    for (int i = 0; i < N_DEAD; i++)
        free(ids[i]);
    h_stack_teardown(s);
}
END_TEST

/* ---- redeliveries ---- */

#define N_FRESH 4
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* item_calls asks the backend at url how many batch items carried id. */
static long item_calls(const char *url, const char *id)
{
    char q[256];
    snprintf(q, sizeof q, "%s/_calls?key=%s", url, id);
    struct h_resp *r = h_request("GET", q, NULL, NULL, 0);
    ck_assert_msg(r->status == 200, "GET %s: %ld %s", q, r->status, r->err);
    struct json_object *o = h_resp_json(r);
    long n = (long)h_json_int(o, "calls");
    json_object_put(o);
    h_resp_free(r);
    return n;
}

/* wait_calls waits until the backend has seen n calls of id: a worker
 * holds it in a call. */
static void wait_calls(const char *url, const char *id, long n)
{
    long long end = h_mono_ms() + 20000;
    while (item_calls(url, id) < n) {
        ck_assert_msg(h_mono_ms() < end, "%s: fewer than %ld calls", id, n);
        h_sleep_ms(20);
    }
}

/* wait_paused waits until request id's status says it waits for its
 * paused route: a worker holds it. */
static void wait_paused(struct h_stack *s, const char *id)
{
    long long end = h_mono_ms() + 20000;
    for (;;) {
        struct json_object *o = h_get_status(s, H_TOKEN, id, NULL), *why = h_json_at(o, "reason");
        bool paused = why && !strcmp(json_object_get_string(why), "paused");
        ck_assert_msg(paused || h_mono_ms() < end, "%s does not wait for its paused route: %s", id,
                      json_object_to_json_string(o));
        json_object_put(o);
        if (paused) return;
        h_sleep_ms(50);
    }
}

/* batch_calls reads the batch calls the backend kept in dir (one
 * <webhook-id>.json each): how many carried id, how many of those carried
 * more than id, and the most of fresh[0..n) any one call carried (and
 * whether such a call also carried id). */
struct batch_seen {
    int with_id, id_with_others, most_fresh;
    bool fresh_with_id;
};
static struct batch_seen batch_calls(const char *dir, const char *id, char *const fresh[], int n)
{
    struct batch_seen seen = {0};
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".json")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct json_object *doc = json_object_from_file(path), *reqs;
        ck_assert_msg(doc && json_object_object_get_ex(doc, "requests", &reqs), "%s: no requests",
                      path);
        size_t items = json_object_array_length(reqs);
        bool has_id = false;
        int fresh_here = 0;
        for (size_t i = 0; i < items; i++) {
            const char *item = h_json_str(json_object_array_get_idx(reqs, i), "id");
            has_id |= !strcmp(item, id);
            for (int k = 0; k < n; k++)
                fresh_here += !strcmp(item, fresh[k]);
        }
        if (has_id) {
            seen.with_id++;
            seen.id_with_others += items > 1;
            seen.fresh_with_id |= fresh_here > 0;
        }
        if (fresh_here > seen.most_fresh) seen.most_fresh = fresh_here;
        json_object_put(doc);
    }
    closedir(d);
    return seen;
}

/* A request whose holders keep dying (SIGKILLed during its call) is counted
 * by the workers themselves, classic queues included: with delivery_limit 2
 * it is dead after its second lost delivery, with the reason
 * delivery_limit, and listed as a dead letter. Redelivered, it is called in
 * a batch of its own: fresh requests let through with it go together in
 * another batch and succeed while its call still hangs. The route delivers
 * in batch calls (one POST per worker batch), so the backend's copy of
 * each call shows who rode with whom. */
START_TEST(test_delivery_limit)
{
    struct h_stack *s = h_stack_new();
    char url[128], dump[512], cmd[600];
    snprintf(dump, sizeof dump, "%s/dump", h_stack_dir(s));
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dump);
    ck_assert_int_eq(system(cmd), 0);
    const char *extra[] = {"--batch-dump", dump, NULL};
    struct h_proc *backend = h_backend_spawn(s, "bat", 0, extra, url, sizeof url);
    /* Signed, so that the backend keeps each batch call under its webhook-id. */
    h_stack_set(s, "routes.bat",
                "{\"upstreams\":[\"%s\"],\"batch_url\":\"%s/batch\",\"timeout_ms\":60000,"
                "\"signing_secrets\":[\"" SECRET "\"]}",
                url, url);
    h_stack_set(s, "delivery_limit", "2");
    h_stack_add_key(s, "ops", ADMIN, "ops", "[\"*\"]");
    h_stack_set(s, "keys.2.admin", "true");
    h_stack_start(s, 1);
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"bat\",\"path\":\"/delay/20000\"}");
    wait_calls(url, id, 1);
    h_stack_kill_worker(s, 0);
    /* Fresh requests join it in the lane while no worker runs. The route
     * is paused meanwhile, so that the next worker holds them all, and the
     * redelivered one (republished with one delivery counted), before it
     * calls any: on the resume they are let through together, and only
     * the rule keeps the redelivered one out of the fresh ones' batch. */
    json_object_put(call_json(s, "POST", "/v1/admin/routes/bat:pause", ADMIN, NULL, 200));
    char *fresh[N_FRESH];
    for (int i = 0; i < N_FRESH; i++)
        fresh[i] = h_submit(s, H_TOKEN, "{\"route\":\"bat\",\"path\":\"/ok\"}");
    int w = h_stack_add_worker(s);
    wait_paused(s, id);
    for (int i = 0; i < N_FRESH; i++)
        wait_paused(s, fresh[i]);
    json_object_put(call_json(s, "POST", "/v1/admin/routes/bat:resume", ADMIN, NULL, 200));
    /* Redelivered, then called again. */
    wait_calls(url, id, 2);
    /* The fresh ones are done long before its call of 20 s: not in its batch. */
    for (int i = 0; i < N_FRESH; i++) {
        struct json_object *st = h_wait_final(s, H_TOKEN, fresh[i], 10000);
        ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
        json_object_put(st);
    }
    struct batch_seen seen = batch_calls(dump, id, fresh, N_FRESH);
    ck_assert_msg(seen.with_id == 2 && seen.id_with_others == 0 && !seen.fresh_with_id,
                  "%s was called in %d batch calls, %d of them with other requests (fresh ones: "
                  "%d); want 2 calls of its own",
                  id, seen.with_id, seen.id_with_others, seen.fresh_with_id);
    /* They were batched together, as it would have been with them. */
    ck_assert_msg(seen.most_fresh == N_FRESH, "the fresh requests went in calls of at most %d",
                  seen.most_fresh);

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
    for (int i = 0; i < N_FRESH; i++)
        free(fresh[i]);
    free(id);
    /* Killed: a stop would wait for the call of 20 s it is still answering. */
    h_proc_kill(backend);
    h_proc_free(backend);
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
