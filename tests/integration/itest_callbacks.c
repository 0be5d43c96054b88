/* itest_callbacks.c: callbacks and aggregated results (issue 13), through
 * the real ingress, broker, worker and a second test backend as the
 * receiver, which keeps the body and signature of every call it gets
 * (--batch-dump): a callback delivered signed (verified by
 * tests/tools/verify_webhook.py) with the client's trace, retried after a
 * 503, its outcome in the request's status; results_url POSTed once per
 * batch with the batch's outcomes, with its first request's trace and a span
 * of its own, retried after a 503; the worker's log lines about both name
 * the request (for results the first and their number); a callback whose
 * worker is SIGKILLed mid-call delivered by another worker; a host not in
 * callback_hosts refused at submit (both forms); a loopback address refused
 * at connect time without allow_private_callbacks; a redirect from the
 * callback host not followed. */
#include <check.h>
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define CLIENT_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define CLIENT_SPAN "00f067aa0ba902b7"

struct rig {
    struct h_stack *s;
    struct h_proc *receiver;
    char url[256];  /* the receiver's base URL */
    char dump[512]; /* where it keeps what it got */
};

/* start: route "cb" may call back 127.0.0.1 (loopback allowed, as the
 * receiver is local) and sends its results there (each results call is
 * answered 503 once, counted by its webhook-id); route "guarded" lists
 * 127.0.0.1 too but does not allow private addresses. */
static void start(struct rig *r)
{
    char cmd[600];
    r->s = h_stack_new();
    snprintf(r->dump, sizeof r->dump, "%s/dump", h_stack_dir(r->s));
    snprintf(cmd, sizeof cmd, "mkdir -p %s", r->dump);
    ck_assert_int_eq(system(cmd), 0);
    const char *extra[] = {"--batch-dump", r->dump, NULL};
    r->receiver = h_backend_spawn(r->s, "receiver", 0, extra, r->url, sizeof r->url);
    h_stack_set(r->s, "log_level", "\"debug\"");
    h_stack_set(r->s, "routes.cb",
                "{\"upstreams\":[\"%s\"],\"max_attempts\":3,\"backoff_ms\":10,"
                "\"backoff_max_ms\":20,\"timeout_ms\":30000,\"signing_secrets\":[\"" SECRET "\"],"
                "\"callback_hosts\":[\"127.0.0.1\"],\"allow_private_callbacks\":true,"
                "\"results_url\":\"%s/flaky/1/503/results\"}",
                h_stack_backend_url(r->s), r->url);
    h_stack_set(r->s, "routes.guarded",
                "{\"upstreams\":[\"%s\"],\"max_attempts\":3,\"backoff_ms\":10,"
                "\"backoff_max_ms\":20,\"callback_hosts\":[\"127.0.0.1\"]}",
                h_stack_backend_url(r->s));
    h_stack_start(r->s, 1);
}

static void stop(struct rig *r)
{
    h_proc_stop(r->receiver, 5000);
    h_proc_free(r->receiver);
    h_stack_teardown(r->s);
}

/* wait_callback polls id's status until its callback is no longer pending
 * and returns the status (caller puts). */
static struct json_object *wait_callback(struct h_stack *s, const char *id)
{
    for (int i = 0; i < 1500; i++) {
        struct json_object *st = h_get_status(s, H_TOKEN, id, NULL);
        const char *cb = st && h_json_at(st, "callback.status")
                             ? json_object_get_string(h_json_at(st, "callback.status"))
                             : NULL;
        if (cb && strcmp(cb, "pending") != 0) return st;
        json_object_put(st);
        h_sleep_ms(20);
    }
    ck_abort_msg("the callback of %s never settled", id);
    return NULL;
}

/* receiver_calls is how many calls the receiver got with key (a
 * delivery's webhook-id). */
static long receiver_calls(const struct rig *r, const char *key)
{
    char url[512];
    snprintf(url, sizeof url, "%s/_calls?key=%s", r->url, key);
    struct h_resp *resp = h_request("GET", url, NULL, NULL, 0);
    struct json_object *o = h_resp_json(resp);
    ck_assert_msg(resp->status == 200 && o, "GET %s answered %ld", url, resp->status);
    long n = (long)h_json_int(o, "calls");
    json_object_put(o);
    h_resp_free(resp);
    return n;
}

/* log_has tells whether worker i's log has a line holding both a and b. */
static bool log_has(struct h_stack *s, int i, const char *a, const char *b)
{
    char name[32], line[8192];
    snprintf(name, sizeof name, "worker-%d.log", i);
    FILE *f = h_stack_open(s, name);
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, a) && strstr(line, b);
    fclose(f);
    return found;
}

/* wait_log waits up to 10 s for log_has(s, i, a, b). */
static bool wait_log(struct h_stack *s, int i, const char *a, const char *b)
{
    for (int tries = 0; tries < 500; tries++) {
        if (log_has(s, i, a, b)) return true;
        h_sleep_ms(20);
    }
    return false;
}

/* read_file returns the whole file (caller frees), or NULL. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

/* find_dump returns the webhook-id (caller frees) of the kept call whose
 * JSON body has member key equal to value (value NULL: has key at all). */
static char *find_dump(const struct rig *r, const char *key, const char *value)
{
    DIR *d = opendir(r->dump);
    ck_assert_ptr_nonnull(d);
    char *found = NULL;
    for (struct dirent *e; !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", r->dump, e->d_name);
        char *text = read_file(path);
        struct json_object *o = text ? json_tokener_parse(text) : NULL, *v;
        if (o && json_object_object_get_ex(o, key, &v) &&
            (!value || !strcmp(json_object_get_string(v), value)))
            found = strndup(e->d_name, n - 5);
        json_object_put(o);
        free(text);
    }
    closedir(d);
    return found;
}

/* verify checks the kept call wid's signature independently; returns its
 * traceparent (static). */
static const char *verify(const struct rig *r, const char *wid)
{
    static char lines[3][256];
    char path[1024], body[1024], log[1024];
    snprintf(path, sizeof path, "%s/%s.sig", r->dump, wid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 3; i++) {
        lines[i][0] = '\0';
        if (fgets(lines[i], sizeof lines[i], f)) lines[i][strcspn(lines[i], "\n")] = '\0';
    }
    fclose(f);
    snprintf(body, sizeof body, "%s/%s.json", r->dump, wid);
    snprintf(log, sizeof log, "%s/verify-%s.log", h_stack_dir(r->s), wid);
    char *argv[] = {
        "tests/tools/verify_webhook.py", (char *)wid, lines[0], lines[1], body, SECRET, NULL};
    ck_assert_msg(h_run("verify_webhook", log, argv, 30000) == 0,
                  "the callback's signature does not verify: see %s", log);
    return lines[2];
}

/* check_results_calls checks every results POST the receiver kept: signed,
 * with the trace of its first request (as that request's own call carried
 * it) and a span of its own; answered 503 once (results_url), retried and
 * delivered, as the worker's log says, naming the first request and how
 * many there were. */
static void check_results_calls(const struct rig *r)
{
    DIR *d = opendir(r->dump);
    ck_assert_ptr_nonnull(d);
    int checked = 0;
    size_t most = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
        char path[1024], wid[64], tp[64], line[256];
        snprintf(path, sizeof path, "%s/%s", r->dump, e->d_name);
        snprintf(wid, sizeof wid, "%.*s", (int)(n - 5), e->d_name);
        char *text = read_file(path);
        struct json_object *o = text ? json_tokener_parse(text) : NULL, *res;
        free(text);
        if (!o || !json_object_object_get_ex(o, "results", &res)) {
            json_object_put(o);
            continue;
        }
        struct json_object *first = json_object_array_get_idx(res, 0);
        const char *first_tp = h_json_str(first, "result.body.headers.traceparent");
        snprintf(tp, sizeof tp, "%s", verify(r, wid));
        ck_assert_uint_eq(strlen(tp), 55);
        ck_assert_msg(strncmp(tp, first_tp, 36) == 0,
                      "results call %s has traceparent %s, its first request %s", wid, tp,
                      first_tp);
        ck_assert_msg(strncmp(tp + 36, first_tp + 36, 16) != 0,
                      "results call %s has the span of its first request's call", wid);
        snprintf(line, sizeof line, "results delivery %s for %zu requests from %s (call 2", wid,
                 json_object_array_length(res), h_json_str(first, "id"));
        ck_assert_msg(wait_log(r->s, 0, line, "answered 200: delivered"), "no line \"%s ...\"",
                      line);
        ck_assert_int_eq(receiver_calls(r, wid), 2);
        if (json_object_array_length(res) > most) most = json_object_array_length(res);
        json_object_put(o);
        checked++;
    }
    closedir(d);
    ck_assert_int_ge(checked, 2);
    /* The four submitted together share one (its first's trace is not the others'). */
    ck_assert_uint_ge(most, 2);
}

START_TEST(test_callback_signed_retried_and_results)
{
    struct rig r;
    start(&r);
    char env[1024];
    /* The receiver answers the first call 503 (counted by webhook-id). */
    snprintf(env, sizeof env,
             "{\"route\":\"cb\",\"path\":\"/ok\",\"body\":{\"n\":1},"
             "\"callback_url\":\"%s/flaky/1/503\","
             "\"headers\":{\"traceparent\":\"00-" CLIENT_TRACE "-" CLIENT_SPAN "-01\"}}",
             r.url);
    char *id = h_submit(r.s, H_TOKEN, env);
    struct json_object *st = wait_callback(r.s, id);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_str_eq(h_json_str(st, "callback.status"), "succeeded");
    ck_assert_int_eq(h_json_int(st, "callback.attempts"), 2);
    json_object_put(st);

    /* What the receiver got: the final status document, signed, traced. */
    char *wid = find_dump(&r, "id", id);
    ck_assert_msg(wid != NULL, "the receiver kept no callback for %s", id);
    ck_assert_str_ne(wid, id); /* webhook-id: the delivery's own ID */
    const char *tp = verify(&r, wid);
    ck_assert_int_eq(strncmp(tp, "00-" CLIENT_TRACE "-", 36), 0);
    ck_assert_int_ne(strncmp(tp + 36, CLIENT_SPAN, 16), 0);
    /* The worker's lines about it name the delivery, the request, the trace. */
    char line[256];
    snprintf(line, sizeof line, "callback succeeded delivery %s for request %s (call 1, trace %s",
             wid, id, CLIENT_TRACE);
    ck_assert_msg(log_has(r.s, 0, line, "answered 503: retrying"), "no line \"%s ...\"", line);
    snprintf(line, sizeof line, "callback succeeded delivery %s for request %s (call 2, trace %s",
             wid, id, CLIENT_TRACE);
    ck_assert_msg(log_has(r.s, 0, line, "answered 200: delivered"), "no line \"%s ...\"", line);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.json", r.dump, wid);
    char *text = read_file(path);
    struct json_object *doc = json_tokener_parse(text);
    ck_assert_str_eq(h_json_str(doc, "status"), "succeeded");
    ck_assert_str_eq(h_json_str(doc, "route"), "cb");
    ck_assert_int_eq(h_json_int(doc, "result.status"), 200);
    ck_assert_str_eq(h_json_str(doc, "result.body.path"), "/ok");
    ck_assert_str_eq(h_json_str(doc, "id"), id);
    ck_assert_int_eq(h_backend_stat(r.url, "requests", false) >= 2, 1);
    json_object_put(doc);
    free(text);
    free(wid);

    /* results_url: each request of route cb in exactly one results POST,
     * whose documents are all of route cb. The four more arrive together
     * (one submission), so that a results POST carries several. */
    char *ids[5];
    ids[0] = id;
    char url[512];
    snprintf(url, sizeof url, "%s/v1/requests:batch", h_stack_url(r.s));
    const char *batch = "{\"requests\":[{\"route\":\"cb\",\"path\":\"/ok\",\"body\":{\"n\":1}},"
                        "{\"route\":\"cb\",\"path\":\"/ok\",\"body\":{\"n\":2}},"
                        "{\"route\":\"cb\",\"path\":\"/ok\",\"body\":{\"n\":3}},"
                        "{\"route\":\"cb\",\"path\":\"/ok\",\"body\":{\"n\":4}}]}";
    const char *bh[] = {"Authorization: Bearer " H_TOKEN, "Content-Type: application/json", NULL};
    struct h_resp *resp = h_request("POST", url, bh, batch, strlen(batch));
    struct json_object *accepted = h_resp_json(resp);
    ck_assert_msg(accepted, "batch answered %ld: %s", resp->status, resp->body);
    for (int i = 1; i < 5; i++) {
        char at[32];
        snprintf(at, sizeof at, "results.%d.id", i - 1);
        ids[i] = strdup(h_json_str(accepted, at));
    }
    json_object_put(accepted);
    h_resp_free(resp);
    for (int i = 1; i < 5; i++)
        json_object_put(h_wait_final(r.s, H_TOKEN, ids[i], 30000));
    for (int i = 0; i < 5; i++) {
        int seen = 0;
        for (int tries = 0; tries < 500 && !seen; tries++) {
            DIR *d = opendir(r.dump);
            for (struct dirent *e; (e = readdir(d));) {
                size_t n = strlen(e->d_name);
                if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) continue;
                snprintf(path, sizeof path, "%s/%s", r.dump, e->d_name);
                char *t = read_file(path);
                struct json_object *o = t ? json_tokener_parse(t) : NULL, *res;
                if (o && json_object_object_get_ex(o, "results", &res)) {
                    for (size_t k = 0; k < json_object_array_length(res); k++) {
                        struct json_object *item = json_object_array_get_idx(res, k);
                        ck_assert_str_eq(h_json_str(item, "route"), "cb");
                        if (!strcmp(h_json_str(item, "id"), ids[i])) {
                            seen++;
                            ck_assert_str_eq(h_json_str(item, "status"), "succeeded");
                            char wid2[64];
                            snprintf(wid2, sizeof wid2, "%.*s", (int)(n - 5), e->d_name);
                            (void)verify(&r, wid2);
                        }
                    }
                }
                json_object_put(o);
                free(t);
            }
            closedir(d);
            if (!seen) h_sleep_ms(20);
        }
        ck_assert_msg(seen == 1, "request %d is in %d results POSTs, not 1", i, seen);
    }
    check_results_calls(&r);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
    stop(&r);
}
END_TEST

/* A callback whose receiver hangs on its first call, and the worker making
 * that call SIGKILLed: the delivery was never acked, so the broker gives it
 * to the other worker, whose call is delivered; the status says so. */
START_TEST(test_callback_survives_worker_kill)
{
    struct rig r;
    start(&r);
    char env[1024];
    snprintf(env, sizeof env,
             "{\"route\":\"cb\",\"path\":\"/ok\",\"callback_url\":\"%s/stall/1/20000\"}", r.url);
    char *id = h_submit(r.s, H_TOKEN, env);
    /* The receiver logs a call when it starts answering it. */
    char log[1024];
    snprintf(log, sizeof log, "%s/receiver-access.log", h_stack_dir(r.s));
    bool calling = false;
    for (int tries = 0; tries < 1500 && !calling; tries++) {
        char *access = read_file(log);
        calling = access && strstr(access, "/stall/1/20000");
        free(access);
        if (!calling) h_sleep_ms(20);
    }
    ck_assert_msg(calling, "the callback of %s was never called", id);
    h_stack_add_worker(r.s);
    h_stack_kill_worker(r.s, 0);
    struct json_object *st = wait_callback(r.s, id);
    ck_assert_str_eq(h_json_str(st, "callback.status"), "succeeded");
    json_object_put(st);
    /* Called twice under one webhook-id: the hung call, then worker 1's. */
    char *wid = find_dump(&r, "id", id);
    ck_assert_ptr_nonnull(wid);
    ck_assert_int_eq(receiver_calls(&r, wid), 2);
    ck_assert_msg(log_has(r.s, 1, wid, "answered 200: delivered"), "worker 1 did not deliver %s",
                  wid);
    free(wid);
    free(id);
    /* Not stopped politely: its first answer still sleeps. */
    h_proc_kill(r.receiver);
    h_proc_free(r.receiver);
    h_stack_teardown(r.s);
}
END_TEST

START_TEST(test_refusals)
{
    struct rig r;
    start(&r);
    char url[512], env[1024];

    /* A host not in callback_hosts: 400 at submit, in both forms. */
    snprintf(url, sizeof url, "%s/v1/requests", h_stack_url(r.s));
    const char *bad = "{\"route\":\"cb\",\"callback_url\":\"http://evil.example/x\"}";
    const char *headers[] = {"Authorization: Bearer " H_TOKEN, "Content-Type: application/json",
                             NULL};
    struct h_resp *resp = h_request("POST", url, headers, bad, strlen(bad));
    ck_assert_int_eq(resp->status, 400);
    struct json_object *a = h_resp_json(resp);
    ck_assert_str_eq(h_json_str(a, "error.code"), "callback_not_allowed");
    json_object_put(a);
    h_resp_free(resp);
    snprintf(url, sizeof url, "%s/v1/routes/cb/x", h_stack_url(r.s));
    const char *theaders[] = {"Authorization: Bearer " H_TOKEN,
                              "X-Callback-Url: http://127.0.0.1.evil.example/x", NULL};
    resp = h_request("POST", url, theaders, "", 0);
    ck_assert_int_eq(resp->status, 400);
    a = h_resp_json(resp);
    ck_assert_str_eq(h_json_str(a, "error.code"), "callback_not_allowed");
    json_object_put(a);
    h_resp_free(resp);

    /* A listed host that is a loopback address, on a route that does not
     * allow private callbacks: refused when connecting, not retried; the
     * receiver never sees it. */
    long before = h_backend_stat(r.url, "requests", false);
    snprintf(env, sizeof env, "{\"route\":\"guarded\",\"callback_url\":\"%s/hook\"}", r.url);
    char *id = h_submit(r.s, H_TOKEN, env);
    struct json_object *st = wait_callback(r.s, id);
    ck_assert_str_eq(h_json_str(st, "status"), "succeeded");
    ck_assert_str_eq(h_json_str(st, "callback.status"), "failed");
    ck_assert_int_eq(h_json_int(st, "callback.attempts"), 1);
    ck_assert_int_eq(h_backend_stat(r.url, "requests", false), before);
    json_object_put(st);
    free(id);

    /* A redirect from the callback host: failed, the Location not called. */
    snprintf(env, sizeof env, "{\"route\":\"cb\",\"callback_url\":\"%s/redirect\"}", r.url);
    id = h_submit(r.s, H_TOKEN, env);
    st = wait_callback(r.s, id);
    ck_assert_str_eq(h_json_str(st, "callback.status"), "failed");
    ck_assert_int_eq(h_json_int(st, "callback.attempts"), 1);
    json_object_put(st);
    char log[1024];
    snprintf(log, sizeof log, "%s/receiver-access.log", h_stack_dir(r.s));
    char *access = read_file(log);
    ck_assert_ptr_nonnull(access);
    ck_assert_ptr_nonnull(strstr(access, "/redirect"));
    ck_assert_ptr_null(strstr(access, "/redirected"));
    free(access);
    free(id);
    stop(&r);
}
END_TEST

static Suite *callbacks_suite(void)
{
    Suite *s = suite_create("callbacks");
    TCase *tc = tcase_create("callbacks");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_callback_signed_retried_and_results);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_callback_survives_worker_kill);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(callbacks_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
