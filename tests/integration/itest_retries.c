/* itest_retries.c: the worker's verdicts and retries against the real
 * backend. Each request's final state, attempt count and backend call count
 * are exact; dead requests land in "<namespace>.dead"; transport errors are
 * told apart; retries wait in the worker or in a retry queue, and a
 * backend's Retry-After sets the delay. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "harness.h"
#include "id.h"

#define FINAL_MS 30000
#define DEAD_WAIT_MS 10000
#define MAX_IDS 8
#define ID_CHARS 32
#define ADMIN "ops-token-0123456789" /* an admin key's token */

/* ---- small helpers this file needs beyond the harness ---- */

/* broker_open connects to the test broker with rabbitmq-c and opens channel 1. */
static amqp_connection_state_t broker_open(void)
{
    char *url = strdup(h_amqp_url());
    ck_assert_ptr_nonnull(url);
    struct amqp_connection_info ci;
    amqp_default_connection_info(&ci);
    ck_assert_msg(amqp_parse_url(url, &ci) == AMQP_STATUS_OK, "bad AMQP URL %s", h_amqp_url());
    if (!*ci.vhost) ci.vhost = "/"; /* "amqp://h:p/" parses to an empty vhost */
    amqp_connection_state_t conn = amqp_new_connection();
    ck_assert_ptr_nonnull(conn);
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    ck_assert_ptr_nonnull(sock);
    struct timeval tv = {.tv_sec = 10};
    ck_assert_msg(amqp_socket_open_noblock(sock, ci.host, ci.port, &tv) == AMQP_STATUS_OK,
                  "cannot connect to the broker at %s:%d", ci.host, ci.port);
    amqp_rpc_reply_t r =
        amqp_login(conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "AMQP login failed");
    amqp_channel_open(conn, 1);
    ck_assert_msg(amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL,
                  "AMQP channel.open failed");
    free(url);
    return conn;
}

static void broker_close(amqp_connection_state_t conn)
{
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

/* take_messages removes every message of "<namespace>.<suffix>" and writes
 * their message_ids to ids; it returns how many there were. */
static int take_messages(struct h_stack *s, const char *suffix, char ids[][ID_CHARS + 1], int max)
{
    char q[256];
    snprintf(q, sizeof q, "%s.%s", h_stack_namespace(s), suffix);
    amqp_connection_state_t conn = broker_open();
    int n = 0;
    for (;;) {
        amqp_rpc_reply_t r = amqp_basic_get(conn, 1, amqp_cstring_bytes(q), 1);
        ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "basic.get on %s failed", q);
        if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) break;
        amqp_message_t m;
        r = amqp_read_message(conn, 1, &m, 0);
        ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "reading a message of %s failed", q);
        ck_assert_msg(n < max, "more than %d messages in %s", max, q);
        const amqp_bytes_t *mid = &m.properties.message_id;
        bool has_id = (m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) && mid->len == ID_CHARS;
        if (has_id) memcpy(ids[n], mid->bytes, ID_CHARS);
        ids[n][has_id ? ID_CHARS : 0] = '\0';
        n++;
        amqp_destroy_message(&m);
        amqp_maybe_release_buffers(conn);
    }
    broker_close(conn);
    return n;
}

/* expect_dead waits until the dead queue holds n messages, then checks that
 * it holds exactly the requests named by want, and empties it. */
static void expect_dead(struct h_stack *s, const char *const want[], int n)
{
    long long deadline = h_mono_ms() + DEAD_WAIT_MS;
    long count;
    while ((count = h_queue_messages(s, "dead")) < n && h_mono_ms() < deadline)
        h_sleep_ms(50);
    ck_assert_msg(count == n, "%s.dead holds %ld messages, want %d", h_stack_namespace(s), count,
                  n);
    char got[MAX_IDS][ID_CHARS + 1];
    ck_assert_int_eq(take_messages(s, "dead", got, MAX_IDS), n);
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int j = 0; j < n && !found; j++)
            found = strcmp(got[j], want[i]) == 0;
        ck_assert_msg(found, "request %s is not in %s.dead (first there: \"%s\")", want[i],
                      h_stack_namespace(s), got[0]);
    }
}

/* call_times reads the backend's access log ("<unix_ms> <METHOD> <path>
 * <key>") and writes the times of the calls with Idempotency-Key id. */
static int call_times(struct h_stack *s, const char *id, long long *times, int max)
{
    char line[4096];
    FILE *f = h_backend_access_log(s);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *key = strrchr(line, ' ');
        if (!key || strcmp(key + 1, id) != 0) continue;
        ck_assert_int_lt(n, max);
        char *end;
        times[n++] = strtoll(line, &end, 10);
        ck_assert_msg(end != line && *end == ' ', "bad access log line: %s", line);
    }
    fclose(f);
    return n;
}

/* worker_metric returns the value of the sample whose name and labels are
 * exactly sample (e.g. "x_total{a=\"b\"}") on worker i's /metrics. */
static long long worker_metric(struct h_stack *s, int i, const char *sample)
{
    char url[128];
    h_stack_metrics_url(s, i, url, sizeof url - 8);
    strncat(url, "/metrics", sizeof url - strlen(url) - 1);
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    ck_assert_msg(r->status == 200, "GET %s answered %ld", url, r->status);
    size_t len = strlen(sample);
    const char *p = r->body;
    long long v = -1;
    while (p && *p) {
        if (strncmp(p, sample, len) == 0 && p[len] == ' ') {
            v = strtoll(p + len + 1, NULL, 10);
            break;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    ck_assert_msg(v >= 0, "no sample %s in %s:\n%s", sample, url, r->body);
    h_resp_free(r);
    return v;
}

/* final submits envelope, waits for its final state and checks state,
 * attempts and backend calls. It returns the status (caller puts) and the
 * id in id. */
static struct json_object * final(struct h_stack *s, const char *envelope, const char *state,
                                  long long attempts, long calls, char id[ID_CHARS + 1])
{
    char *got = h_submit(s, H_TOKEN, envelope);
    snprintf(id, ID_CHARS + 1, "%s", got);
    free(got);
    struct json_object *st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    const char *text = json_object_to_json_string(st);
    ck_assert_msg(strcmp(h_json_str(st, "status"), state) == 0, "%s: want %s, got %s", envelope,
                  state, text);
    ck_assert_msg(h_json_int(st, "attempts") == attempts, "%s: want %lld attempts, got %s",
                  envelope, attempts, text);
    long n = h_backend_calls(s, id);
    ck_assert_msg(n == calls, "%s: the backend saw %ld calls, want %ld (%s)", envelope, n, calls,
                  text);
    h_json_str(st, "completed_at");
    return st;
}

/* error_code returns error.code of a status, failing if it is missing or empty. */
static const char *error_code(struct json_object *st)
{
    const char *code = h_json_str(st, "error.code");
    ck_assert_msg(*code && *h_json_str(st, "error.message"), "empty error in %s",
                  json_object_to_json_string(st));
    return code;
}

static void set_route(struct h_stack *s, const char *name, const char *upstream, long timeout_ms,
                      int max_attempts, long backoff_ms, long backoff_max_ms)
{
    char path[64];
    snprintf(path, sizeof path, "routes.%s", name);
    h_stack_set(s, path,
                "{\"upstreams\":[\"%s\"],\"timeout_ms\":%ld,\"max_attempts\":%d,"
                "\"backoff_ms\":%ld,\"backoff_max_ms\":%ld}",
                upstream, timeout_ms, max_attempts, backoff_ms, backoff_max_ms);
}

/* ---- tests ---- */

/* Verdicts on what the backend answers, with retries held in the worker:
 * recovering after failures, a non-retryable answer, exhausted retries (with
 * the route's and with the envelope's max_attempts), and Retry-After. */
START_TEST(test_verdicts)
{
    struct h_stack *s = h_stack_new();
    const char *be = h_stack_backend_url(s);
    set_route(s, "echo", be, 5000, 4, 100, 10000);
    set_route(s, "three", be, 5000, 3, 50, 200);
    h_stack_start(s, 1);
    char id[ID_CHARS + 1];

    /* Two 503s, then the echo: succeeded on the third call. */
    struct json_object *st =
        final(s, "{\"route\":\"echo\",\"path\":\"/flaky/2/503\"}", "succeeded", 3, 3, id);
    ck_assert_int_eq(h_json_int(st, "result.status"), 200);
    ck_assert_int_eq(h_json_int(st, "result.body.calls"), 3);
    ck_assert_str_eq(h_json_str(st, "result.body.headers.idempotency-key"), id);
    json_object_put(st);

    /* A 404 is final at once, and the backend's answer is the result. */
    st = final(s, "{\"route\":\"echo\",\"path\":\"/status/404\"}", "failed", 1, 1, id);
    ck_assert_int_eq(h_json_int(st, "result.status"), 404);
    ck_assert_int_eq(h_json_int(st, "result.body.status"), 404);
    error_code(st);
    json_object_put(st);
    ck_assert_int_eq(h_queue_messages(s, "dead"), 0);

    /* 503 every time on a route of 3 attempts: dead, and dead-lettered. */
    st = final(s, "{\"route\":\"three\",\"path\":\"/status/503\"}", "dead", 3, 3, id);
    ck_assert_int_eq(h_json_int(st, "result.status"), 503);
    error_code(st);
    json_object_put(st);
    const char *dead1[] = {id};
    expect_dead(s, dead1, 1);

    /* The envelope's max_attempts lowers the route's 4 to 2. */
    st = final(s, "{\"route\":\"echo\",\"path\":\"/status/500\",\"max_attempts\":2}", "dead", 2, 2,
               id);
    ck_assert_int_eq(h_json_int(st, "result.status"), 500);
    error_code(st);
    json_object_put(st);
    const char *dead2[] = {id};
    expect_dead(s, dead2, 1);

    /* 429 with Retry-After: 1, then the echo. The route's own backoff would
     * wait at most 100 ms; the backend asked for a second. */
    st = final(s, "{\"route\":\"echo\",\"path\":\"/retry-after/1\"}", "succeeded", 2, 2, id);
    ck_assert_int_eq(h_json_int(st, "result.status"), 200);
    json_object_put(st);
    long long t[4];
    ck_assert_int_eq(call_times(s, id, t, 4), 2);
    ck_assert_msg(t[1] - t[0] >= 900, "Retry-After: 1 not honoured: calls %lld ms apart",
                  t[1] - t[0]);
    ck_assert_int_eq(h_queue_messages(s, "dead"), 0);

    h_stack_teardown(s);
}
END_TEST

/* No answer at all: a refused connection and a backend slower than the
 * route's timeout both end dead, each with its own error code. */
START_TEST(test_transport_errors)
{
    struct h_stack *s = h_stack_new();
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d", h_free_port());
    set_route(s, "closed", closed, 2000, 3, 50, 200);
    set_route(s, "slow", h_stack_backend_url(s), 300, 2, 50, 200);
    h_stack_start(s, 1);

    char *refused = h_submit(s, H_TOKEN, "{\"route\":\"closed\",\"path\":\"/x\"}");
    char *slow = h_submit(s, H_TOKEN, "{\"route\":\"slow\",\"path\":\"/delay/2000\"}");

    struct json_object *st = h_wait_final(s, H_TOKEN, refused, FINAL_MS);
    const char *text = json_object_to_json_string(st);
    ck_assert_msg(strcmp(h_json_str(st, "status"), "dead") == 0, "closed port: %s", text);
    ck_assert_int_eq(h_json_int(st, "attempts"), 3);
    ck_assert_str_eq(error_code(st), "backend_unreachable");
    ck_assert_msg(h_json_at(st, "result.status") == NULL, "a result without an answer: %s", text);
    json_object_put(st);

    st = h_wait_final(s, H_TOKEN, slow, FINAL_MS);
    text = json_object_to_json_string(st);
    ck_assert_msg(strcmp(h_json_str(st, "status"), "dead") == 0, "slow backend: %s", text);
    ck_assert_int_eq(h_json_int(st, "attempts"), 2);
    ck_assert_str_eq(error_code(st), "backend_timeout");
    ck_assert_msg(h_json_at(st, "result.status") == NULL, "a result without an answer: %s", text);
    json_object_put(st);
    ck_assert_int_eq(h_backend_calls(s, slow), 2);
    ck_assert_int_eq(h_backend_calls(s, refused), 0);

    const char *dead[] = {refused, slow};
    expect_dead(s, dead, 2);
    free(refused);
    free(slow);
    h_stack_teardown(s);
}
END_TEST

/* A retry due later than worker.retry_hold_max_ms waits in a broker retry
 * queue (delays rounded up to whole seconds) instead of the worker. */
START_TEST(test_retry_queue)
{
    struct h_stack *s = h_stack_new();
    /* h_stack_set cannot take a bare number (json-c's tokener waits for
     * more digits), so the worker object is given whole. */
    h_stack_set(s, "worker",
                "{\"batch_size\":100,\"batch_linger_ms\":5,\"prefetch\":200,"
                "\"metrics_listen\":\"127.0.0.1:0\",\"retry_hold_max_ms\":0}");
    set_route(s, "echo", h_stack_backend_url(s), 5000, 4, 1500, 1500);
    h_stack_start(s, 1);
    char id[ID_CHARS + 1];

    long long t0 = h_mono_ms();
    struct json_object *st =
        final(s, "{\"route\":\"echo\",\"path\":\"/flaky/1/503\"}", "succeeded", 2, 2, id);
    long long took = h_mono_ms() - t0;
    ck_assert_int_eq(h_json_int(st, "result.status"), 200);
    json_object_put(st);
    ck_assert_msg(took >= 1000, "a retry through a retry queue took only %lld ms", took);
    long long t[4];
    ck_assert_int_eq(call_times(s, id, t, 4), 2);
    ck_assert_msg(t[1] - t[0] >= 950, "the calls were only %lld ms apart", t[1] - t[0]);
    long in_1s = h_queue_messages(s, "delay.1000"), in_2s = h_queue_messages(s, "delay.2000");
    ck_assert_msg(in_1s >= 0 || in_2s >= 0, "no delay queue %s.delay.1000 or .2000 (%ld, %ld)",
                  h_stack_namespace(s), in_1s, in_2s);
    /* A classic delay queue is version 2 and lazy (common/topology.c); a quorum one refuses both.
     */
    char *args = h_queue_arguments(s, in_2s >= 0 ? "delay.2000" : "delay.1000");
    bool quorum = h_quorum_mode();
    ck_assert_msg(args && (strstr(args, "{\"x-queue-version\",2}") != NULL) == !quorum &&
                      (strstr(args, "{\"x-queue-mode\",\"lazy\"}") != NULL) == !quorum,
                  "retry queue arguments: %s", args ? args : "(no queue)");
    free(args);
    ck_assert_int_eq(worker_metric(s, 0, "sluice_worker_retries_total{where=\"queue\"}"), 1);
    ck_assert_int_eq(worker_metric(s, 0, "sluice_worker_retries_total{where=\"worker\"}"), 0);
    ck_assert_int_eq(h_queue_messages(s, "dead"), 0);

    h_stack_teardown(s);
}
END_TEST

/* publish_raw publishes body with props to the lane of route echo, as a
 * broken producer would. */
static void publish_raw(struct h_stack *s, amqp_basic_properties_t *props, const char *body)
{
    char lane[256];
    snprintf(lane, sizeof lane, "%s.lane.echo", h_stack_namespace(s));
    amqp_connection_state_t conn = broker_open();
    ck_assert_int_eq(amqp_basic_publish(conn, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(lane),
                                        1, 0, props, amqp_cstring_bytes(body)),
                     AMQP_STATUS_OK);
    broker_close(conn);
}

/* A message in a lane that is not a valid request (here: no
 * method), whose ID and tenant the worker can read. Its client must learn
 * that it is dead (error malformed_message) instead of seeing "queued"
 * forever, the admin API lists it as a dead letter of that reason, and the
 * message lands in the dead queue, uncalled. Then raw garbage (no ID, no
 * headers) lands there too. The worker lives through both (no crash loop)
 * and calls the next request. */
START_TEST(test_malformed_message)
{
    struct h_stack *s = h_stack_new();
    h_stack_add_key(s, "ops", ADMIN, "ops", "[\"*\"]");
    h_stack_set(s, "keys.2.admin", "true");
    h_stack_start(s, 1);
    char id[ID_CHARS + 1];
    ck_assert_int_eq(id_new(id, (int64_t)h_mono_ms()), 0);
    amqp_table_entry_t e[] = {
        {.key = amqp_cstring_bytes("x-sluice-tenant"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("acme")}},
        {.key = amqp_cstring_bytes("x-sluice-route"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("echo")}},
        {.key = amqp_cstring_bytes("x-sluice-path"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("/p")}},
    };
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_MESSAGE_ID_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG |
                                               AMQP_BASIC_HEADERS_FLAG,
                                     .message_id = amqp_cstring_bytes(id),
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT,
                                     .headers = {.num_entries = 3, .entries = e}};
    publish_raw(s, &props, "{}");

    struct json_object *st = h_wait_final(s, H_TOKEN, id, FINAL_MS);
    ck_assert_msg(!strcmp(h_json_str(st, "status"), "dead"), "want dead, got %s",
                  json_object_to_json_string(st));
    ck_assert_str_eq(error_code(st), "malformed_message");
    ck_assert_str_eq(h_json_str(st, "route"), "echo");
    json_object_put(st);
    ck_assert_int_eq(h_backend_calls(s, id), 0);
    /* The operator finds it among the dead letters, with its reason. */
    char url[256];
    snprintf(url, sizeof url, "%s/v1/admin/dead", h_stack_url(s));
    const char *auth[] = {"Authorization: Bearer " ADMIN, NULL};
    struct h_resp *r = h_request("GET", url, auth, NULL, 0);
    st = h_resp_json(r);
    ck_assert_msg(r->status == 200 && st, "GET /v1/admin/dead: %ld %s", r->status, r->body);
    ck_assert_msg(json_object_array_length(h_json_at(st, "dead")) == 1 &&
                      !strcmp(h_json_str(st, "dead.0.id"), id) &&
                      !strcmp(h_json_str(st, "dead.0.reason"), "malformed_message"),
                  "GET /v1/admin/dead: %s", r->body);
    json_object_put(st);
    h_resp_free(r);
    const char *const want[] = {id};
    expect_dead(s, want, 1);

    /* Garbage with nothing to read: no ID, no headers. */
    amqp_basic_properties_t bare = {._flags = 0};
    publish_raw(s, &bare, "\x01 not a request");
    long long end = h_mono_ms() + DEAD_WAIT_MS;
    while (h_queue_messages(s, "dead") < 1 && h_mono_ms() < end)
        h_sleep_ms(50);
    char got[MAX_IDS][ID_CHARS + 1];
    ck_assert_int_eq(take_messages(s, "dead", got, MAX_IDS), 1);
    ck_assert_str_eq(got[0], "");

    /* The same worker goes on with the next request. */
    ck_assert_msg(h_proc_running(h_stack_worker(s, 0)), "the worker died of a malformed message");
    ck_assert_int_eq(worker_metric(s, 0, "sluice_worker_malformed_total"), 2);
    char ok[ID_CHARS + 1];
    json_object_put(final(s, "{\"route\":\"echo\",\"path\":\"/after\"}", "succeeded", 1, 1, ok));
    ck_assert_msg(h_proc_running(h_stack_worker(s, 0)), "the worker died of a malformed message");
    h_stack_teardown(s);
}
END_TEST

static Suite *retries_suite(void)
{
    Suite *s = suite_create("retries");
    TCase *tc = tcase_create("retries");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_verdicts);
    tcase_add_test(tc, test_transport_errors);
    tcase_add_test(tc, test_retry_queue);
    tcase_add_test(tc, test_malformed_message);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(retries_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
