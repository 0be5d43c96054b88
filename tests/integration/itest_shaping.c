/* itest_shaping.c: traffic shaping against the real broker, binaries and
 * backends. Lanes: a route's backlog never delays another route; a limited
 * route's rate and max_in_flight hold across three workers, and when the
 * worker holding its lane is killed another takes over within the
 * documented overshoot. Breakers: a dead upstream costs few calls while the
 * healthy one takes its share; a route whose only upstream is down keeps its
 * requests waiting (reason breaker_open) without spending attempts, and
 * completes them once the backend is back. Backpressure: a 429 with
 * Retry-After holds the whole route. Topology: a retry comes back to its own
 * lane, an older release's requests queue is drained, and a route whose
 * limits change drains its old lane. Each test runs its scenarios at once,
 * on routes of their own, to keep the suite short. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "harness.h"
#include "id.h"
#include "mq.h"
#include "topology.h"

#define FINAL_MS 60000

/* ---- helpers ---- */

/* submit_n submits n requests to route with paths "/<tag>/<i>" and returns their ids. */
static char **submit_n(struct h_stack *s, const char *route, const char *tag, int n)
{
    char **ids = calloc((size_t)n, sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < n; i++) {
        char env[256];
        snprintf(env, sizeof env, "{\"route\":\"%s\",\"path\":\"/%s/%d\"}", route, tag, i);
        ids[i] = h_submit(s, H_TOKEN, env);
    }
    return ids;
}

static void ids_free(char **ids, int n)
{
    for (int i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* wait_succeeded waits for every id to succeed and returns their attempts in all. */
static long wait_succeeded(struct h_stack *s, char **ids, int n, int timeout_ms)
{
    long attempts = 0;
    long long deadline = h_mono_ms() + timeout_ms;
    for (int i = 0; i < n; i++) {
        long long left = deadline - h_mono_ms();
        struct json_object *st = h_wait_final(s, H_TOKEN, ids[i], left > 1000 ? (int)left : 1000);
        ck_assert_msg(!strcmp(h_json_str(st, "status"), "succeeded"), "request %d: %s", i,
                      json_object_to_json_string(st));
        attempts += (long)h_json_int(st, "attempts");
        json_object_put(st);
    }
    return attempts;
}

/* metric reads sample (name and labels) from worker i's /metrics; -1 if absent. */
static double metric(struct h_stack *s, int i, const char *sample)
{
    char url[128];
    h_stack_metrics_url(s, i, url, sizeof url - 8);
    strncat(url, "/metrics", sizeof url - strlen(url) - 1);
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    ck_assert_msg(r->status == 200, "GET %s answered %ld", url, r->status);
    size_t len = strlen(sample);
    double v = -1;
    for (const char *p = r->body; p && *p;) {
        if (strncmp(p, sample, len) == 0 && p[len] == ' ') {
            v = strtod(p + len + 1, NULL);
            break;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    h_resp_free(r);
    return v;
}

/* call_times reads the start times (ms) of the calls whose path starts with
 * prefix from an access log ("<time> <METHOD> <path> <key>", time in units
 * per ms). */
static int call_times(FILE *f, const char *prefix, long long per_ms, long long *out, int max)
{
    char line[1024], method[16], path[512], key[128];
    long long t;
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lld %15s %511s %127s", &t, method, path, key) == 4 &&
            !strncmp(path, prefix, strlen(prefix)) && n < max)
            out[n++] = t / per_ms;
    fclose(f);
    return n;
}

/* max_per_window is the most calls of times (ascending, ms) within any 1000 ms from
 * index from to index to. */
static int max_per_window(const long long *t, int from, int to)
{
    int best = 0;
    for (int i = from, j = from; i < to; i++) {
        while (j < to && t[j] < t[i] + 1000)
            j++;
        if (j - i > best) best = j - i;
    }
    return best;
}

static void set_route(struct h_stack *s, const char *name, const char *fmt_extra, const char *ups)
{
    char path[64];
    snprintf(path, sizeof path, "routes.%s", name);
    h_stack_set(s, path,
                "{\"upstreams\":[%s],\"timeout_ms\":5000,\"max_attempts\":4,\"backoff_ms\":50,"
                "\"backoff_max_ms\":10000%s}",
                ups, fmt_extra);
}

/* ---- lanes, limits and a handover ---- */

#define LIMITED_N 300
#define SLOW_N 200
#define ECHO_N 100

START_TEST(test_limits_lanes_handover)
{
    struct h_stack *s = h_stack_new();
    char b1[64], ups[128];
    const char *delay[] = {"--delay-ms", "200", NULL};
    struct h_proc *limited_backend = h_backend_spawn(s, "limited", 0, delay, b1, sizeof b1);
    snprintf(ups, sizeof ups, "\"%s\"", b1);
    set_route(s, "limited", ",\"rate_per_s\":20,\"max_in_flight\":5", ups);
    snprintf(ups, sizeof ups, "\"%s\"", h_stack_backend_url(s));
    set_route(s, "slowlane", ",\"rate_per_s\":2", ups);
    h_stack_start(s, 3);

    long long t_limited = h_mono_ms();
    char **limited = submit_n(s, "limited", "l", LIMITED_N);
    char **slow = submit_n(s, "slowlane", "s", SLOW_N);

    /* Head of line: a route submitted after 200 requests of a 2/s route
     * does not wait behind them. */
    long long t_echo = h_mono_ms();
    char **echo = submit_n(s, "echo", "e", ECHO_N);
    wait_succeeded(s, echo, ECHO_N, 30000);
    long long echo_ms = h_mono_ms() - t_echo;
    fprintf(stderr, "shaping: %d echo requests behind a 2/s backlog took %lld ms\n", ECHO_N,
            echo_ms);
    ck_assert_msg(echo_ms < 10000, "echo took %lld ms behind another route's backlog", echo_ms);

    /* The last slowlane request is far back in its lane, with an estimate. */
    long http = 0;
    struct json_object *st = h_get_status(s, H_TOKEN, slow[SLOW_N - 1], &http);
    ck_assert_msg(http == 200 && !strcmp(h_json_str(st, "status"), "queued"), "%s",
                  json_object_to_json_string(st));
    long long pos = h_json_int(st, "queue_position");
    struct json_object *wait = h_json_at(st, "estimated_wait_s");
    ck_assert_msg(pos > SLOW_N / 2 && pos < SLOW_N, "queue_position %lld", pos);
    ck_assert_msg(wait && json_object_get_double(wait) > pos / 8.0 &&
                      json_object_get_double(wait) < pos * 2.0,
                  "estimated_wait_s for position %lld: %s", pos, json_object_to_json_string(st));
    json_object_put(st);

    /* The worker shaping the limited route, the one with its calls, is
     * killed 6 s into the run. */
    while (h_mono_ms() < t_limited + 6000)
        h_sleep_ms(50);
    long before = h_backend_stat(b1, "max_in_flight", true);
    fprintf(stderr, "shaping: at most %ld calls at once before the kill\n", before);
    ck_assert_msg(before <= 5, "the backend saw %ld calls at once (max_in_flight 5)", before);
    int holder = -1;
    for (int i = 0; i < 3 && holder < 0; i++)
        if (metric(s, i, "sluice_worker_route_in_flight{route=\"limited\"}") > 0) holder = i;
    ck_assert_msg(holder >= 0, "no worker is calling the limited route");
    for (int i = 0; i < 3; i++)
        if (i != holder)
            ck_assert(metric(s, i, "sluice_worker_route_in_flight{route=\"limited\"}") == 0);
    h_stack_kill_worker(s, holder);
    wait_succeeded(s, limited, LIMITED_N, FINAL_MS);
    long after = h_backend_stat(b1, "max_in_flight", false);
    fprintf(stderr, "shaping: at most %ld calls at once after the kill\n", after);
    ck_assert_msg(after <= 10, "the backend saw %ld calls at once after the handover", after);

    long long t[LIMITED_N * 2];
    int n = call_times(h_stack_open(s, "limited-access.log"), "/l/", 1000, t, LIMITED_N * 2);
    ck_assert_int_ge(n, LIMITED_N);
    long long span = t[n - 1] - t[0];
    /* The first 5 s of calls, all before the kill (the submissions and the
     * head-of-line check took longer than that). */
    int early_n = 0;
    while (early_n < n && t[early_n] < t[0] + 5000)
        early_n++;
    int early = max_per_window(t, 0, early_n), all = max_per_window(t, 0, n);
    fprintf(stderr,
            "shaping: %d calls in %lld ms (%.1f/s), %d in the first 5 s; most in 1 s: %d "
            "before the kill, %d overall\n",
            n, span, n * 1000.0 / (double)span, early_n, early, all);
    ck_assert_msg(early <= 40, "%d calls in one second (rate 20 + burst 20)", early);
    ck_assert_msg(early_n >= 100 && early_n <= 120, "%d calls in 5 s at 20/s with a burst of 20",
                  early_n);
    ck_assert_msg(all <= 60, "%d calls in one second with a handover (rate + 2 bursts)", all);
    ck_assert_msg(span >= 13000 && span <= 22000, "300 calls at 20/s took %lld ms", span);

    ids_free(limited, LIMITED_N);
    ids_free(slow, SLOW_N);
    ids_free(echo, ECHO_N);
    h_proc_stop(limited_backend, H_STOP_TIMEOUT_MS);
    h_proc_free(limited_backend);
    h_stack_teardown(s);
}
END_TEST

/* ---- breakers and backpressure ---- */

#define HALFDEAD_N 60
#define DOWN_N 20
#define RA_N 5

START_TEST(test_breakers_and_backpressure)
{
    struct h_stack *s = h_stack_new();
    int dead_port = h_free_port(), down_port = h_free_port();
    char ups[256];
    snprintf(ups, sizeof ups, "\"http://127.0.0.1:%d\",\"%s\"", dead_port, h_stack_backend_url(s));
    set_route(s, "halfdead",
              ",\"breaker\":{\"consecutive_failures\":3,\"open_ms\":2000,\"max_open_ms\":8000}",
              ups);
    snprintf(ups, sizeof ups, "\"http://127.0.0.1:%d\"", down_port);
    h_stack_set(s, "routes.down",
                "{\"upstreams\":[%s],\"timeout_ms\":5000,\"max_attempts\":30,\"backoff_ms\":100,"
                "\"backoff_max_ms\":500,\"breaker\":{\"consecutive_failures\":2,\"open_ms\":500,"
                "\"max_open_ms\":1000}}",
                ups);
    snprintf(ups, sizeof ups, "\"%s\"", h_stack_backend_url(s));
    set_route(s, "ra", ",\"max_in_flight\":1", ups);
    h_stack_set(
        s, "routes.pushy",
        "{\"upstreams\":[\"%s\"],\"max_attempts\":1,\"backoff_ms\":50,\"backoff_max_ms\":100}",
        h_stack_backend_url(s));
    h_stack_start(s, 1);

    /* The only upstream of "down" is not there: its breaker opens after two
     * failures, and the requests then wait without calls. */
    char **down = submit_n(s, "down", "d", DOWN_N);
    long long down_at = h_mono_ms();
    /* 429 with Retry-After: 2 holds the route "ra" (one call at a time). */
    char *first = h_submit(s, H_TOKEN, "{\"route\":\"ra\",\"path\":\"/retry-after/2\"}");
    char **ra = submit_n(s, "ra", "ra-ok", RA_N);
    /* One dead upstream, one healthy: the healthy one takes the share. */
    char **half = submit_n(s, "halfdead", "h", HALFDEAD_N);
    char *pushy[3];
    for (int i = 0; i < 3; i++)
        pushy[i] = h_submit(s, H_TOKEN, "{\"route\":\"pushy\",\"path\":\"/status/503\"}");

    long half_attempts = wait_succeeded(s, half, HALFDEAD_N, FINAL_MS);
    fprintf(stderr, "breakers: %ld attempts for %d requests, one upstream dead\n", half_attempts,
            HALFDEAD_N);
    ck_assert_msg(half_attempts - HALFDEAD_N <= 6, "%ld calls wasted on the dead upstream",
                  half_attempts - HALFDEAD_N);
    char sample[256];
    snprintf(
        sample, sizeof sample,
        "sluice_worker_breaker_opened_total{route=\"halfdead\",upstream=\"http://127.0.0.1:%d\"}",
        dead_port);
    /* The shaping metrics are refreshed every 250 ms, and the breaker may
     * open with the last calls (when the requests were all waiting at once,
     * the dead upstream gets its third call only as the healthy one drains). */
    long long opened_by = h_mono_ms() + 2000;
    while (metric(s, 0, sample) < 1 && h_mono_ms() < opened_by)
        h_sleep_ms(50);
    ck_assert_msg(metric(s, 0, sample) >= 1, "%s: %g", sample, metric(s, 0, sample));

    wait_succeeded(s, &first, 1, FINAL_MS);
    wait_succeeded(s, ra, RA_N, FINAL_MS);
    long long t[16];
    int n = call_times(h_backend_access_log(s), "/retry-after/", 1, t, 16);
    long long after[16];
    int m = call_times(h_backend_access_log(s), "/ra-ok/", 1, after, 16);
    ck_assert_int_ge(n, 2);
    ck_assert_int_eq(m, RA_N);
    fprintf(stderr, "backpressure: 429 at %lld, next call of the route %lld ms later\n", t[0],
            after[0] - t[0]);
    for (int i = 0; i < m; i++)
        ck_assert_msg(after[i] >= t[0] + 1999, "a call %lld ms after the 429 with Retry-After: 2",
                      after[i] - t[0]);
    ck_assert_msg(t[1] >= t[0] + 1999, "the retry came %lld ms after its 429", t[1] - t[0]);

    /* 503 without Retry-After cuts the route's effective rate. */
    for (int i = 0; i < 3; i++) {
        struct json_object *st = h_wait_final(s, H_TOKEN, pushy[i], FINAL_MS);
        ck_assert_str_eq(h_json_str(st, "status"), "dead");
        json_object_put(st);
    }
    double cut =
        metric(s, 0, "sluice_worker_route_rate_per_second{route=\"pushy\",kind=\"effective\"}");
    ck_assert_msg(cut > 0, "effective rate of a pushed-back unlimited route: %g", cut);

    /* "down": every request waits behind the open breaker, most never called. */
    long long deadline = h_mono_ms() + 20000;
    int waiting = 0;
    while (waiting < DOWN_N - 4 && h_mono_ms() < deadline) {
        waiting = 0;
        for (int i = 0; i < DOWN_N; i++) {
            struct json_object *st = h_get_status(s, H_TOKEN, down[i], NULL);
            struct json_object *reason = h_json_at(st, "reason");
            waiting += reason && !strcmp(json_object_get_string(reason), "breaker_open");
            json_object_put(st);
        }
        if (waiting < DOWN_N - 4) h_sleep_ms(100);
    }
    ck_assert_msg(waiting >= DOWN_N - 4, "only %d requests say breaker_open", waiting);
    struct json_object *st = h_get_status(s, H_TOKEN, down[DOWN_N - 1], NULL);
    fprintf(stderr, "breakers: a waiting request: %s\n", json_object_to_json_string(st));
    json_object_put(st);
    ck_assert(metric(s, 0, "sluice_worker_route_waiting{route=\"down\"}") >= DOWN_N - 4);
    h_sleep_ms(2500);
    long spent = 0;
    for (int i = 0; i < DOWN_N; i++) {
        st = h_get_status(s, H_TOKEN, down[i], NULL);
        spent += (long)h_json_int(st, "attempts");
        json_object_put(st);
    }
    long long outage = h_mono_ms() - down_at;
    /* Two failures open it, then one probe each open period (500 ms, then 1 s). */
    fprintf(stderr, "breakers: %ld attempts spent in a %lld ms outage\n", spent, outage);
    ck_assert_msg(spent <= 2 + outage / 1000 + 2, "%ld attempts spent in %lld ms", spent, outage);

    char url[64];
    struct h_proc *back = h_backend_spawn(s, "down", down_port, NULL, url, sizeof url);
    long long back_at = h_mono_ms();
    wait_succeeded(s, down, DOWN_N, FINAL_MS);
    long long recovered = h_mono_ms() - back_at;
    fprintf(stderr, "breakers: every waiting request done %lld ms after the backend came back\n",
            recovered);
    ck_assert_msg(recovered < 8000, "%lld ms to recover", recovered);

    ids_free(down, DOWN_N);
    ids_free(ra, RA_N);
    ids_free(half, HALFDEAD_N);
    for (int i = 0; i < 3; i++)
        free(pushy[i]);
    free(first);
    h_proc_stop(back, H_STOP_TIMEOUT_MS);
    h_proc_free(back);
    h_stack_teardown(s);
}
END_TEST

/* ---- topology: retries, upgrades, limit changes ---- */

/* request_message fills props and pool with a valid request of route to path. */
static void request_message(struct envelope *e, const char *route, const char *path,
                            amqp_pool_t *pool, amqp_basic_properties_t *props)
{
    envelope_init(e);
    e->route = strdup(route);
    e->method = strdup("POST");
    e->path = strdup(path);
    e->tenant = strdup("acme");
    ck_assert(e->route && e->method && e->path && e->tenant);
    e->created_ms = (int64_t)time(NULL) * 1000;
    ck_assert_int_eq(id_new(e->id, e->created_ms), 0);
    ck_assert_int_eq(envelope_to_amqp(e, pool, props), 0);
}

static struct mq *broker(void)
{
    struct mq *mq = NULL;
    char err[512];
    ck_assert_msg(mq_open(&mq, h_amqp_url(), "itest", 10000, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(mq_confirm_select(mq), 0);
    return mq;
}

/* old_release declares the requests queue and a retry queue as the release
 * before lanes did, and puts 3 requests in the first, 1 in the second. */
static void old_release(struct h_stack *s, char ids[4][ID_LEN + 1])
{
    const char *ns = h_stack_namespace(s);
    char q[128], retry[128], dead[128], err[512];
    snprintf(q, sizeof q, "%s.requests", ns);
    snprintf(retry, sizeof retry, "%s.retry.1000", ns);
    snprintf(dead, sizeof dead, "%s.dead", ns);
    bool quorum = h_quorum_mode();
    amqp_table_entry_t a[8], r[8];
    int na = 0, nr = 0;
#define STR(t, n, k, v)                                                                            \
    t[n++] = (amqp_table_entry_t)                                                                  \
    {                                                                                              \
        amqp_cstring_bytes(k),                                                                     \
        {                                                                                          \
            .kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(v)                     \
        }                                                                                          \
    }
#define I64(t, n, k, v)                                                                            \
    t[n++] = (amqp_table_entry_t)                                                                  \
    {                                                                                              \
        amqp_cstring_bytes(k),                                                                     \
        {                                                                                          \
            .kind = AMQP_FIELD_KIND_I64, .value.i64 = v                                            \
        }                                                                                          \
    }
    if (quorum) {
        STR(a, na, "x-queue-type", "quorum");
        STR(a, na, "x-dead-letter-strategy", "at-least-once");
        STR(a, na, "x-overflow", "reject-publish");
        I64(a, na, "x-delivery-limit", 20);
        STR(r, nr, "x-queue-type", "quorum");
        STR(r, nr, "x-dead-letter-strategy", "at-least-once");
        STR(r, nr, "x-overflow", "reject-publish");
    } else {
        I64(a, na, "x-queue-version", 2);
        STR(a, na, "x-queue-mode", "lazy");
        I64(a, na, "x-max-priority", 9);
        I64(r, nr, "x-queue-version", 2);
        STR(r, nr, "x-queue-mode", "lazy");
    }
    STR(a, na, "x-dead-letter-exchange", "");
    STR(a, na, "x-dead-letter-routing-key", dead);
    I64(r, nr, "x-message-ttl", 1000);
    STR(r, nr, "x-dead-letter-exchange", q);
    STR(r, nr, "x-dead-letter-routing-key", q);
#undef STR
#undef I64
    struct mq *mq = broker();
    ck_assert_msg(mq_declare_exchange(mq, q, "direct", err, sizeof err) == 0 &&
                      mq_declare_queue(mq, q, (amqp_table_t){na, a}, err, sizeof err) == 0 &&
                      mq_bind(mq, q, q, q, amqp_empty_table, err, sizeof err) == 0 &&
                      mq_declare_queue(mq, retry, (amqp_table_t){nr, r}, err, sizeof err) == 0,
                  "%s", err);
    for (int i = 0; i < 4; i++) {
        struct envelope e;
        amqp_pool_t pool;
        amqp_basic_properties_t props;
        init_amqp_pool(&pool, 4096);
        request_message(&e, "echo", i < 3 ? "/old/q" : "/old/retry", &pool, &props);
        memcpy(ids[i], e.id, ID_LEN + 1);
        uint64_t seq;
        ck_assert_int_eq(i < 3 ? mq_publish(mq, q, q, &props, "{}", 2, &seq)
                               : mq_publish(mq, "", retry, &props, "{}", 2, &seq),
                         0);
        envelope_free(&e);
        empty_amqp_pool(&pool);
    }
    mq_close(mq);
}

START_TEST(test_retry_lane_upgrade_limit_change)
{
    struct h_stack *s = h_stack_new();
    char ups[128];
    snprintf(ups, sizeof ups, "\"%s\"", h_stack_backend_url(s));
    set_route(s, "other", "", ups);
    set_route(s, "chg", "", ups);
    char old[4][ID_LEN + 1];
    old_release(s, old);
    h_stack_start(s, 0);

    /* A retry published to the delay exchange, addressed to the lane of
     * "other", comes back to that lane and no other. */
    struct cfg cfg = {.namespace = (char *)h_stack_namespace(s),
                      .queue_type = h_quorum_mode() ? "quorum" : "classic",
                      .delivery_limit = 20};
    struct mq *mq = broker();
    char err[512], exchange[128], lane[128];
    ck_assert_msg(topo_declare_retry(mq, &cfg, 1000, err, sizeof err) == 0, "%s", err);
    topo_name(&cfg, TOPO_DELAY, exchange, sizeof exchange);
    snprintf(lane, sizeof lane, "%s.lane.other", h_stack_namespace(s));
    struct envelope e;
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    init_amqp_pool(&pool, 4096);
    request_message(&e, "other", "/delayed", &pool, &props);
    amqp_table_entry_t h[32];
    ck_assert_int_lt(props.headers.num_entries, 31);
    memcpy(h, props.headers.entries, (size_t)props.headers.num_entries * sizeof *h);
    h[props.headers.num_entries] = (amqp_table_entry_t){
        amqp_cstring_bytes(TOPO_DELAY_HEADER),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("1000")}};
    props.headers = (amqp_table_t){props.headers.num_entries + 1, h};
    uint64_t seq;
    ck_assert_int_eq(mq_publish(mq, exchange, lane, &props, "{}", 2, &seq), 0);
    char delayed[ID_LEN + 1];
    memcpy(delayed, e.id, sizeof delayed);
    envelope_free(&e);
    empty_amqp_pool(&pool);
    mq_close(mq);

    /* Requests of "chg" wait in its lane while it is unlimited. */
    char **chg = submit_n(s, "chg", "c", 4);
    long long deadline = h_mono_ms() + 10000;
    while (h_queue_messages(s, "lane.other") != 1 && h_mono_ms() < deadline)
        h_sleep_ms(100);
    ck_assert_int_eq(h_queue_messages(s, "lane.other"), 1);
    ck_assert_int_eq(h_queue_messages(s, "lane.echo"), 0);
    ck_assert_int_eq(h_queue_messages(s, "lane.chg"), 4);
    /* The old retry queue's message expired into the old requests queue. */
    while (h_queue_messages(s, "requests") != 4 && h_mono_ms() < deadline)
        h_sleep_ms(100);
    ck_assert_int_eq(h_queue_messages(s, "requests"), 4);

    /* "chg" becomes limited: its requests now go to lane-sac.chg, and the
     * workers drain lane.chg. */
    set_route(s, "chg", ",\"rate_per_s\":5", ups);
    h_stack_restart_ingress(s);
    h_stack_add_worker(s);
    char **later = submit_n(s, "chg", "c2", 2);
    wait_succeeded(s, chg, 4, FINAL_MS);
    wait_succeeded(s, later, 2, FINAL_MS);
    char *args = h_queue_arguments(s, "lane-sac.chg");
    ck_assert_msg(args && strstr(args, "x-single-active-consumer"), "lane-sac.chg: %s",
                  args ? args : "(none)");
    free(args);

    /* The older release's requests, and its retry, are carried out. */
    for (int i = 0; i < 4; i++) {
        char *id = old[i];
        ck_assert_int_eq(wait_succeeded(s, &id, 1, FINAL_MS), 1);
    }
    char *d = delayed;
    wait_succeeded(s, &d, 1, FINAL_MS);
    ck_assert_int_eq(h_queue_messages(s, "requests"), 0);
    ck_assert_int_eq(h_queue_messages(s, "lane.chg"), 0);
    ck_assert_int_eq(h_queue_messages(s, "dead"), 0);

    ids_free(chg, 4);
    ids_free(later, 2);
    h_stack_teardown(s);
}
END_TEST

static Suite *shaping_suite(void)
{
    Suite *s = suite_create("shaping");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_limits_lanes_handover);
    suite_add_tcase(s, tc);
    tc = tcase_create("breakers");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_breakers_and_backpressure);
    suite_add_tcase(s, tc);
    tc = tcase_create("topology");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_retry_lane_upgrade_limit_change);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(shaping_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
