/* itest_resilience.c: the gateway under load and under faults. A burst of
 * concurrent submissions, workers killed or stopped in the middle of a batch,
 * ingress restarts and crashes, the broker going away and coming back, and two
 * ingress replicas sharing the status. Every test checks the promises of
 * DESIGN.md: a 202 is durable, nothing accepted is lost, a request the broker
 * never took is answered 503 and never reaches a backend, and any ingress
 * serves any status.
 *
 * Helpers the harness lacks live here as static functions: run_all (many
 * requests through one libcurl multi handle), wait_all_final (status polling
 * for many ids), access_lines (counting lines of the backend's access log),
 * edge_client (a forked client submitting while the broker goes down). */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PARALLEL 64
#define XFER_TIMEOUT_MS 30000L
#define RESP_MAX ((size_t)1 << 20)

/* ---- many HTTP requests at once ---- */

/* xfer is one request for run_all and, once run, its answer. */
struct xfer {
    const char *method;
    char url[256];
    char *body; /* request body (owned), or NULL */
    const char *token;
    long status; /* 0 when there was no answer; err says why */
    char *resp;  /* NUL-terminated, owned */
    size_t resp_len;
    char location[128];
    char retry_after[32];
    char err[CURL_ERROR_SIZE];
    struct curl_slist *headers;
};

static size_t xfer_body(char *data, size_t size, size_t n, void *cls)
{
    struct xfer *x = cls;
    size_t len = size * n;
    if (x->resp_len + len > RESP_MAX) return 0;
    char *p = realloc(x->resp, x->resp_len + len + 1);
    if (!p) return 0;
    memcpy(p + x->resp_len, data, len);
    x->resp = p;
    x->resp_len += len;
    p[x->resp_len] = '\0';
    return len;
}

/* copy_header copies the value of the header line data into out when its name is name. */
static void copy_header(const char *data, size_t len, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(data, name, n) != 0 || data[n] != ':') return;
    const char *v = data + n + 1;
    size_t vlen = len - n - 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    snprintf(out, outlen, "%.*s", (int)vlen, v);
}

static size_t xfer_header(char *data, size_t size, size_t n, void *cls)
{
    struct xfer *x = cls;
    size_t len = size * n;
    copy_header(data, len, "Location", x->location, sizeof x->location);
    copy_header(data, len, "Retry-After", x->retry_after, sizeof x->retry_after);
    return len;
}

static void xfer_start(CURLM *m, struct xfer *x)
{
    char auth[256];
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", x->token);
    x->headers = curl_slist_append(NULL, "Expect:");
    x->headers = curl_slist_append(x->headers, auth);
    if (x->body) x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    ck_assert_ptr_nonnull(x->headers);
    curl_easy_setopt(c, CURLOPT_URL, x->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, XFER_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, xfer_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, xfer_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    if (x->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body));
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body);
    }
    ck_assert_int_eq(curl_multi_add_handle(m, c), CURLM_OK);
}

static void xfer_done(CURLM *m, CURLMsg *msg)
{
    struct xfer *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    ck_assert_ptr_nonnull(x);
    if (msg->data.result == CURLE_OK)
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &x->status);
    else if (!x->err[0])
        snprintf(x->err, sizeof x->err, "%s", curl_easy_strerror(msg->data.result));
    curl_multi_remove_handle(m, msg->easy_handle);
    curl_easy_cleanup(msg->easy_handle);
    curl_slist_free_all(x->headers);
    x->headers = NULL;
}

/* run_all sends every request of xs, at most parallel at a time, through one
 * multi handle so that connections are kept alive and reused, and returns
 * when all are answered (or failed: status 0). Answers of an earlier run are
 * dropped first, so an array can be run again. */
static void run_all(struct xfer *xs, size_t n, long parallel)
{
    CURLM *m = curl_multi_init();
    ck_assert_ptr_nonnull(m);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, parallel);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, parallel);
    size_t next = 0;
    long active = 0;
    while (next < n || active > 0) {
        while (active < parallel && next < n) {
            struct xfer *x = &xs[next++];
            free(x->resp);
            x->resp = NULL;
            x->resp_len = 0;
            x->status = 0;
            x->location[0] = x->retry_after[0] = x->err[0] = '\0';
            xfer_start(m, x);
            active++;
        }
        int running;
        ck_assert_int_eq(curl_multi_perform(m, &running), CURLM_OK);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer_done(m, msg);
            active--;
        }
        if (active > 0) ck_assert_int_eq(curl_multi_poll(m, NULL, 0, 100, NULL), CURLM_OK);
    }
    curl_multi_cleanup(m);
}

static void xfers_free(struct xfer *xs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(xs[i].body);
        free(xs[i].resp);
    }
    free(xs);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && s, "out of memory");
    return s;
}

static struct json_object *parse_body(const struct xfer *x)
{
    return x->resp ? json_tokener_parse(x->resp) : NULL;
}

/* submit_all POSTs n envelopes (made by envelope(i, arg)) to base/v1/requests
 * with PARALLEL connections, checks that every one is answered 202 with a
 * Location naming the id and {"status":"queued"}, and returns the ids (caller
 * frees with ids_free). */
static char **submit_all(const char *base, size_t n, char *(*envelope)(size_t i, const void *arg),
                         const void *arg)
{
    struct xfer *xs = calloc(n, sizeof *xs);
    char **ids = calloc(n, sizeof *ids);
    ck_assert_ptr_nonnull(xs);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < n; i++) {
        xs[i].method = "POST";
        xs[i].token = H_TOKEN;
        xs[i].body = envelope(i, arg);
        snprintf(xs[i].url, sizeof xs[i].url, "%s/v1/requests", base);
    }
    run_all(xs, n, PARALLEL);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(xs[i].status == 202, "submission %zu of %zu answered %ld %s: %.300s", i, n,
                      xs[i].status, xs[i].err, xs[i].resp ? xs[i].resp : "");
        struct json_object *o = parse_body(&xs[i]);
        ck_assert_msg(o != NULL, "submission %zu: the 202 body is not JSON: %.300s", i,
                      xs[i].resp ? xs[i].resp : "");
        ck_assert_str_eq(h_json_str(o, "status"), "queued");
        ids[i] = strdup(h_json_str(o, "id"));
        ck_assert_ptr_nonnull(ids[i]);
        ck_assert_uint_eq(strlen(ids[i]), 32);
        char want[96];
        snprintf(want, sizeof want, "/v1/requests/%s", ids[i]);
        ck_assert_str_eq(xs[i].location, want);
        ck_assert_str_eq(h_json_str(o, "status_url"), want);
        json_object_put(o);
    }
    /* Two submissions must never share an id. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            ck_assert_str_ne(ids[i], ids[j]);
    xfers_free(xs, n);
    return ids;
}

static void ids_free(char **ids, size_t n)
{
    for (size_t i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
}

static bool final_state(const char *st)
{
    return !strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "dead");
}

/* wait_all_final polls GET base/v1/requests/<id> for every id, PARALLEL at a
 * time, until each is final, and fills out[i] with its status (caller puts).
 * Fails the test after timeout_ms, naming how many were not final and the
 * last answer for one of them. */
static void wait_all_final(const char *base, char **ids, size_t n, int timeout_ms,
                           struct json_object **out)
{
    long long deadline = h_mono_ms() + timeout_ms;
    struct xfer *xs = calloc(n, sizeof *xs);
    size_t *which = calloc(n, sizeof *which);
    ck_assert_ptr_nonnull(xs);
    ck_assert_ptr_nonnull(which);
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (out[i]) continue;
            which[k] = i;
            xs[k].method = "GET";
            xs[k].token = H_TOKEN;
            snprintf(xs[k].url, sizeof xs[k].url, "%s/v1/requests/%s", base, ids[i]);
            k++;
        }
        if (k == 0) break;
        run_all(xs, k, PARALLEL);
        size_t pending = 0;
        char last[400] = "";
        for (size_t j = 0; j < k; j++) {
            struct json_object *o = parse_body(&xs[j]);
            struct json_object *st = o ? h_json_at(o, "status") : NULL;
            if (xs[j].status == 200 && json_object_is_type(st, json_type_string) &&
                final_state(json_object_get_string(st))) {
                out[which[j]] = o;
                continue;
            }
            pending++;
            snprintf(last, sizeof last, "%s -> %ld %s", ids[which[j]], xs[j].status,
                     xs[j].resp ? xs[j].resp : xs[j].err);
            json_object_put(o);
        }
        if (pending == 0) break;
        ck_assert_msg(h_mono_ms() < deadline, "%zu of %zu requests not final within %d ms; e.g. %s",
                      pending, n, timeout_ms, last);
        h_sleep_ms(100);
    }
    xfers_free(xs, n);
    free(which);
}

static void statuses_free(struct json_object **st, size_t n)
{
    for (size_t i = 0; st && i < n; i++)
        json_object_put(st[i]);
    free(st);
}

/* access_lines counts the calls in the backend's access log whose path
 * starts with prefix ("<unix_ms> <METHOD> <path> <key>" per line). */
static long access_lines(struct h_stack *s, const char *prefix)
{
    char line[1024];
    FILE *f = h_backend_access_log(s);
    long n = 0;
    size_t plen = strlen(prefix);
    while (fgets(line, sizeof line, f)) {
        char *p = strchr(line, ' ');
        p = p ? strchr(p + 1, ' ') : NULL;
        if (p && strncmp(p + 1, prefix, plen) == 0) n++;
    }
    fclose(f);
    return n;
}

/* wait_queue_empty waits for "<namespace>.<suffix>" to hold no ready message:
 * acks follow the result's confirm, so they may trail the final status. */
static void wait_queue_empty(struct h_stack *s, const char *suffix, int timeout_ms)
{
    long long deadline = h_mono_ms() + timeout_ms;
    long n;
    while ((n = h_queue_messages(s, suffix)) != 0) {
        ck_assert_msg(h_mono_ms() < deadline, "queue %s.%s still holds %ld message(s) after %d ms",
                      h_stack_namespace(s), suffix, n, timeout_ms);
        h_sleep_ms(100);
    }
}

/* set_route points route name at the backend path prefix (e.g. "/delay/400"). */
static void set_route(struct h_stack *s, const char *name, const char *prefix, int max_attempts)
{
    char path[64];
    snprintf(path, sizeof path, "routes.%s", name);
    h_stack_set(s, path,
                "{\"upstreams\":[\"%s%s\"],\"timeout_ms\":5000,\"max_attempts\":%d,"
                "\"backoff_ms\":20,\"backoff_max_ms\":200}",
                h_stack_backend_url(s), prefix, max_attempts);
}

static char *route_envelope(size_t i, const void *route)
{
    return xasprintf(
        "{\"route\":\"%s\",\"method\":\"POST\",\"path\":\"/r%zu\",\"body\":{\"i\":%zu}}",
        (const char *)route, i, i);
}

/* wait_backend_calls polls /_stats every 5 ms until the backend has seen at
 * least one call and returns the count. */
static long wait_backend_calls(struct h_stack *s, int timeout_ms)
{
    long long deadline = h_mono_ms() + timeout_ms;
    long n;
    while ((n = h_backend_requests(s)) == 0) {
        ck_assert_msg(h_mono_ms() < deadline, "the backend saw no call within %d ms", timeout_ms);
        h_sleep_ms(5);
    }
    return n;
}

/* ---- burst ---- */

#define BURST_N 2000

static char *burst_envelope(size_t i, const void *arg)
{
    (void)arg;
    return xasprintf("{\"route\":\"echo\",\"method\":\"POST\",\"path\":\"/burst/%zu\","
                     "\"body\":{\"i\":%zu}}",
                     i, i);
}

START_TEST(test_burst)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 2);

    long long t0 = h_mono_ms();
    char **ids = submit_all(h_stack_url(s), BURST_N, burst_envelope, NULL);
    long long t1 = h_mono_ms();
    struct json_object **st = calloc(BURST_N, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), ids, BURST_N, 120000, st);
    fprintf(stderr, "burst: %d submissions in %lld ms, all final after %lld ms\n", BURST_N, t1 - t0,
            h_mono_ms() - t0);

    for (size_t i = 0; i < BURST_N; i++) {
        char path[32];
        snprintf(path, sizeof path, "/burst/%zu", i);
        ck_assert_msg(!strcmp(h_json_str(st[i], "status"), "succeeded"), "request %zu: %s", i,
                      json_object_to_json_string(st[i]));
        ck_assert_int_eq(h_json_int(st[i], "attempts"), 1);
        ck_assert_int_eq(h_json_int(st[i], "result.status"), 200);
        /* Each status carries the answer to its own request, not another's. */
        ck_assert_str_eq(h_json_str(st[i], "result.body.path"), path);
        ck_assert_str_eq(h_json_str(st[i], "result.body.headers.idempotency-key"), ids[i]);
    }
    /* Nothing crashed, so nothing is delivered twice: one call per request. */
    ck_assert_int_eq(h_backend_requests(s), BURST_N);
    wait_queue_empty(s, "lane.echo", 10000);
    ck_assert_int_eq(h_queue_messages(s, "dead"), 0);

    statuses_free(st, BURST_N);
    ids_free(ids, BURST_N);
    h_stack_teardown(s);
}
END_TEST

/* ---- one client's message the broker cannot carry ---- */

#define BAD_N 30
#define GOOD_CLIENTS 8

/* ingress_metric returns the value of an unlabelled sample on the ingress's /metrics. */
static long long ingress_metric(struct h_stack *s, const char *name)
{
    char url[160];
    snprintf(url, sizeof url, "%s/metrics", h_stack_url(s));
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    ck_assert_msg(r->status == 200, "GET %s answered %ld", url, r->status);
    size_t len = strlen(name);
    long long v = -1;
    for (const char *p = r->body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && p[len] == ' ') v = strtoll(p + len + 1, NULL, 10);
    ck_assert_msg(v >= 0, "no sample %s on %s", name, url);
    h_resp_free(r);
    return v;
}

/* One client sends envelopes with a 256-byte header name, past what an AMQP
 * table key can hold, while eight others submit ordinary requests. Whether
 * the edge refuses it or the publisher fails that message alone, the other
 * clients all get 202 and the publisher's connection never drops (before:
 * the failed publish was taken for a lost connection, and every request in
 * flight was answered 503). */
START_TEST(test_one_bad_client)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    char name[257];
    memset(name, 'h', 256);
    name[256] = '\0';
    size_t n = BAD_N * 6, bad_sent = 0; /* every sixth is bad */
    struct xfer *xs = calloc(n, sizeof *xs);
    ck_assert_ptr_nonnull(xs);
    for (size_t i = 0; i < n; i++) {
        xs[i].method = "POST";
        xs[i].token = H_TOKEN;
        snprintf(xs[i].url, sizeof xs[i].url, "%s/v1/requests", h_stack_url(s));
        if (i % 6 == 0) {
            xs[i].body = xasprintf("{\"route\":\"echo\",\"path\":\"/bad/%zu\","
                                   "\"headers\":{\"%s\":\"v\"}}",
                                   i, name);
            bad_sent++;
        } else {
            xs[i].body = xasprintf("{\"route\":\"echo\",\"path\":\"/good/%zu\"}", i);
        }
    }
    run_all(xs, n, GOOD_CLIENTS + 1);
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 6 == 0) {
            ck_assert_msg(xs[i].status >= 400 && xs[i].status != 202,
                          "the bad request %zu answered %ld %s", i, xs[i].status, xs[i].err);
            continue;
        }
        ck_assert_msg(xs[i].status == 202, "good request %zu answered %ld %s: %.300s", i,
                      xs[i].status, xs[i].err, xs[i].resp ? xs[i].resp : "");
        good++;
    }
    fprintf(stderr, "one bad client: %zu bad refused, %zu good accepted\n", bad_sent, good);
    ck_assert_int_eq(ingress_metric(s, "sluice_ingress_broker_reconnects_total"), 0);
    xfers_free(xs, n);
    h_stack_teardown(s);
}
END_TEST

/* ---- workers killed or stopped mid-batch ---- */

#define MIDBATCH_N 150

START_TEST(test_worker_sigkill_mid_batch)
{
    struct h_stack *s = h_stack_new();
    set_route(s, "slow", "/delay/400", 4);
    /* The worker starts once the queue is full, so that the kill surely lands
     * while a batch of 400 ms calls is in flight. */
    h_stack_start(s, 0);
    char **ids = submit_all(h_stack_url(s), MIDBATCH_N, route_envelope, "slow");
    int w0 = h_stack_add_worker(s);
    long seen = wait_backend_calls(s, 30000);
    h_stack_kill_worker(s, w0);
    long at_kill = h_backend_requests(s);
    fprintf(stderr, "sigkill: backend saw %ld call(s) before the kill, %ld at it\n", seen, at_kill);
    ck_assert_msg(at_kill > 0 && at_kill < MIDBATCH_N, "the kill was not mid-batch: %ld calls",
                  at_kill);

    h_stack_add_worker(s);
    struct json_object **st = calloc(MIDBATCH_N, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), ids, MIDBATCH_N, 60000, st);
    long total = 0;
    for (size_t i = 0; i < MIDBATCH_N; i++) {
        ck_assert_msg(!strcmp(h_json_str(st[i], "status"), "succeeded"), "request %zu: %s", i,
                      json_object_to_json_string(st[i]));
        ck_assert_int_eq(h_json_int(st[i], "result.status"), 200);
        long calls = h_backend_calls(s, ids[i]);
        long long attempts = h_json_int(st[i], "attempts");
        ck_assert_msg(calls >= 1, "request %s succeeded with no backend call", ids[i]);
        ck_assert_msg(attempts >= 1 && attempts <= calls,
                      "request %s: attempts %lld but %ld backend call(s)", ids[i], attempts, calls);
        total += calls;
    }
    ck_assert_int_eq(h_backend_requests(s), total);
    fprintf(stderr, "sigkill: %ld backend calls in all for %d requests\n", total, MIDBATCH_N);
    /* The calls in flight at the kill had no result yet: they are made again. */
    ck_assert_msg(total >= MIDBATCH_N + 1,
                  "%ld calls for %d requests: the calls lost with the killed worker were not "
                  "made again",
                  total, MIDBATCH_N);
    wait_queue_empty(s, "lane.slow", 10000);
    ck_assert_int_eq(h_queue_messages(s, "dead"), 0);

    statuses_free(st, MIDBATCH_N);
    ids_free(ids, MIDBATCH_N);
    h_stack_teardown(s);
}
END_TEST

START_TEST(test_worker_sigterm_in_flight)
{
    struct h_stack *s = h_stack_new();
    set_route(s, "slow", "/delay/300", 4);
    /* h_stack_set cannot take a bare number (the harness's parse_text refuses
     * "10000"), so the whole worker object is written, defaults included. */
    h_stack_set(s, "worker",
                "{\"batch_size\":100,\"batch_linger_ms\":5,\"prefetch\":200,"
                "\"metrics_listen\":\"127.0.0.1:0\",\"retry_hold_max_ms\":1000,"
                "\"shutdown_grace_ms\":10000}");
    h_stack_start(s, 0);
    char **ids = submit_all(h_stack_url(s), MIDBATCH_N, route_envelope, "slow");
    int w0 = h_stack_add_worker(s);
    wait_backend_calls(s, 30000);
    long long t0 = h_mono_ms();
    h_stack_stop_worker(s, w0); /* SIGTERM; fails unless the exit status is 0 */
    long long took = h_mono_ms() - t0;
    long at_exit = h_backend_requests(s);
    fprintf(stderr, "sigterm: the worker exited after %lld ms, %ld call(s) made\n", took, at_exit);
    ck_assert_msg(took < 12000, "the worker took %lld ms to stop (grace 10000 ms)", took);
    ck_assert_msg(at_exit > 0, "no call was in flight");

    /* Whatever the stopped worker left is for the next one. */
    h_stack_add_worker(s);
    struct json_object **st = calloc(MIDBATCH_N, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), ids, MIDBATCH_N, 60000, st);
    for (size_t i = 0; i < MIDBATCH_N; i++) {
        ck_assert_msg(!strcmp(h_json_str(st[i], "status"), "succeeded"), "request %zu: %s", i,
                      json_object_to_json_string(st[i]));
        ck_assert_int_eq(h_json_int(st[i], "result.status"), 200);
        ck_assert_int_eq(h_json_int(st[i], "attempts"), 1);
        /* A graceful stop finishes the calls in flight and reports them: none
         * is lost, none is made twice. */
        ck_assert_msg(h_backend_calls(s, ids[i]) == 1, "request %s: %ld backend calls", ids[i],
                      h_backend_calls(s, ids[i]));
    }
    ck_assert_int_eq(h_backend_requests(s), MIDBATCH_N);
    wait_queue_empty(s, "lane.slow", 10000);

    statuses_free(st, MIDBATCH_N);
    ids_free(ids, MIDBATCH_N);
    h_stack_teardown(s);
}
END_TEST

#define HELD_N 50

START_TEST(test_worker_sigterm_held_retries)
{
    struct h_stack *s = h_stack_new();
    /* The first call of each request answers 503; its retry, due within
     * 0..900 ms, waits inside the worker (retry_hold_max_ms is 1000). */
    h_stack_set(s, "routes.flaky",
                "{\"upstreams\":[\"%s/flaky/1/503\"],\"timeout_ms\":5000,\"max_attempts\":3,"
                "\"backoff_ms\":900,\"backoff_max_ms\":900}",
                h_stack_backend_url(s));
    h_stack_start(s, 0);
    char **ids = submit_all(h_stack_url(s), HELD_N, route_envelope, "flaky");
    int w0 = h_stack_add_worker(s);
    long long deadline = h_mono_ms() + 30000;
    while (h_backend_requests(s) < HELD_N) {
        ck_assert_msg(h_mono_ms() < deadline, "the first calls were not all made");
        h_sleep_ms(5);
    }
    h_sleep_ms(50); /* the batch settles: its retries are now held */
    long at_term = h_backend_requests(s);
    h_stack_stop_worker(s, w0);
    long at_exit = h_backend_requests(s);
    fprintf(stderr, "held retries: %ld call(s) at SIGTERM, %ld when the worker had exited\n",
            at_term, at_exit);
    ck_assert_msg(at_term < 2 * HELD_N, "every retry was made before SIGTERM");

    h_stack_add_worker(s);
    struct json_object **st = calloc(HELD_N, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), ids, HELD_N, 60000, st);
    for (size_t i = 0; i < HELD_N; i++) {
        ck_assert_msg(!strcmp(h_json_str(st[i], "status"), "succeeded"), "request %zu: %s", i,
                      json_object_to_json_string(st[i]));
        ck_assert_int_eq(h_json_int(st[i], "result.status"), 200);
        /* The held retry went to a retry queue at the stop, not back to the
         * start: one failed call, one good one. */
        ck_assert_msg(h_json_int(st[i], "attempts") == 2 && h_backend_calls(s, ids[i]) == 2,
                      "request %s: attempts %lld, %ld backend calls (want 2 and 2): %s", ids[i],
                      h_json_int(st[i], "attempts"), h_backend_calls(s, ids[i]),
                      json_object_to_json_string(st[i]));
    }
    ck_assert_int_eq(h_backend_requests(s), 2 * HELD_N);
    wait_queue_empty(s, "lane.flaky", 10000);
    ck_assert_int_eq(h_queue_messages(s, "dead"), 0);

    statuses_free(st, HELD_N);
    ids_free(ids, HELD_N);
    h_stack_teardown(s);
}
END_TEST

#define AFTER_N 20

/* A worker acks a settled batch with one multiple ack only when no older
 * delivery is still its own. older_delivery_survives_kill makes one such
 * older delivery (route "first", whose backend path is prefix), settles
 * AFTER_N newer requests meanwhile, SIGKILLs the worker while the first is
 * still pending (its status pending_state), and checks that another worker
 * still carries it out: were it acked along with a newer batch, it would be
 * lost. */
static void older_delivery_survives_kill(const char *prefix, const char *pending_state)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "routes.first",
                "{\"upstreams\":[\"%s%s\"],\"timeout_ms\":10000,\"max_attempts\":3,"
                "\"backoff_ms\":20,\"backoff_max_ms\":10000}",
                h_stack_backend_url(s), prefix);
    set_route(s, "echo", "", 2);
    h_stack_set(s, "worker",
                "{\"batch_size\":100,\"batch_linger_ms\":5,\"prefetch\":200,"
                "\"metrics_listen\":\"127.0.0.1:0\",\"retry_hold_max_ms\":10000,"
                "\"shutdown_grace_ms\":10000}");
    h_stack_start(s, 0);
    char **first = submit_all(h_stack_url(s), 1, route_envelope, "first");
    int w0 = h_stack_add_worker(s);
    wait_backend_calls(s, 30000);
    long long first_at = h_mono_ms();

    char **ids = submit_all(h_stack_url(s), AFTER_N, route_envelope, "echo");
    struct json_object **st = calloc(AFTER_N, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), ids, AFTER_N, 30000, st);
    statuses_free(st, AFTER_N);
    wait_queue_empty(s, "lane.echo", 10000); /* every ready message delivered */
    h_sleep_ms(300);                         /* the newer batches' acks reach the broker */
    long http = 0;
    struct json_object *o = h_get_status(s, H_TOKEN, first[0], &http);
    ck_assert_msg(http == 200 && o && !strcmp(h_json_str(o, "status"), pending_state),
                  "the first request is not %s: %ld %s", pending_state, http,
                  o ? json_object_to_json_string(o) : "");
    json_object_put(o);
    ck_assert_msg(h_mono_ms() - first_at < 4500, "too slow: the first request may be done");
    h_stack_kill_worker(s, w0);

    h_stack_add_worker(s);
    st = calloc(1, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), first, 1, 30000, st);
    ck_assert_msg(!strcmp(h_json_str(st[0], "status"), "succeeded"), "%s",
                  json_object_to_json_string(st[0]));
    ck_assert_int_eq(h_backend_calls(s, first[0]), 2);
    wait_queue_empty(s, "lane.echo", 10000);

    statuses_free(st, 1);
    ids_free(ids, AFTER_N);
    ids_free(first, 1);
    h_stack_teardown(s);
}

/* The first call answers 429 with Retry-After: 5, so the retry is held in
 * the worker (retry_hold_max_ms is 10 s) for 5 s. */
START_TEST(test_worker_sigkill_held_retry_kept)
{
    older_delivery_survives_kill("/retry-after/5", "retrying");
}
END_TEST

/* A 6 s call keeps an older batch in flight while newer ones settle. */
START_TEST(test_worker_sigkill_older_batch_kept)
{
    older_delivery_survives_kill("/delay/6000", "processing");
}
END_TEST

/* ---- ingress restarts ---- */

#define RESTART_N 8

/* restart_envelope mixes outcomes: succeeded (JSON and text), failed, dead. */
static char *restart_envelope(size_t i, const void *arg)
{
    (void)arg;
    static const char *const paths[] = {"/x", "/text", "/status/404", "/status/503"};
    const char *route = i % 4 == 3 ? "twice" : "echo";
    return xasprintf("{\"route\":\"%s\",\"path\":\"%s\",\"query\":\"i=%zu\"}", route, paths[i % 4],
                     i);
}

static void assert_same_statuses(struct h_stack *s, char **ids, struct json_object **before,
                                 size_t n, const char *when)
{
    for (size_t i = 0; i < n; i++) {
        long http = 0;
        struct json_object *now = h_get_status(s, H_TOKEN, ids[i], &http);
        ck_assert_msg(http == 200 && now, "%s: GET %s answered %ld", when, ids[i], http);
        ck_assert_msg(json_object_equal(now, before[i]), "%s: status of %s changed:\n%s\nwas\n%s",
                      when, ids[i], json_object_to_json_string(now),
                      json_object_to_json_string(before[i]));
        json_object_put(now);
    }
}

START_TEST(test_ingress_restart_keeps_status)
{
    struct h_stack *s = h_stack_new();
    set_route(s, "twice", "", 2);
    set_route(s, "slow", "/delay/2500", 2);
    h_stack_start(s, 1);
    char **ids = submit_all(h_stack_url(s), RESTART_N, restart_envelope, NULL);
    struct json_object **st = calloc(RESTART_N, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), ids, RESTART_N, 30000, st);
    static const char *const want[] = {"succeeded", "succeeded", "failed", "dead"};
    static const int want_attempts[] = {1, 1, 1, 2};
    static const int want_http[] = {200, 200, 404, 503};
    for (size_t i = 0; i < RESTART_N; i++) {
        ck_assert_str_eq(h_json_str(st[i], "status"), want[i % 4]);
        ck_assert_int_eq(h_json_int(st[i], "attempts"), want_attempts[i % 4]);
        ck_assert_int_eq(h_json_int(st[i], "result.status"), want_http[i % 4]);
        h_json_str(st[i], "completed_at");
    }
    ck_assert_str_eq(h_json_str(st[1], "result.body_text"), "plain text");

    /* These are still being called while the ingress restarts. */
    char **busy = submit_all(h_stack_url(s), 5, route_envelope, "slow");
    h_stack_restart_ingress(s);
    assert_same_statuses(s, ids, st, RESTART_N, "after a clean restart");
    for (size_t i = 0; i < 5; i++) {
        long http = 0;
        struct json_object *o = h_get_status(s, H_TOKEN, busy[i], &http);
        ck_assert_msg(http == 200, "in-progress %s unknown after the restart: %ld", busy[i], http);
        json_object_put(o);
    }
    struct json_object *busy_st[5];
    wait_all_final(h_stack_url(s), busy, 5, 30000, busy_st);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_str_eq(h_json_str(busy_st[i], "status"), "succeeded");
        ck_assert_int_eq(h_json_int(busy_st[i], "attempts"), 1);
        json_object_put(busy_st[i]);
    }
    ids_free(busy, 5);
    long http = 0;
    struct json_object *o = h_get_status(s, H_OTHER_TOKEN, ids[0], &http);
    ck_assert_int_eq(http, 404); /* still another tenant's */
    json_object_put(o);

    h_stack_kill_ingress(s);
    h_stack_start_ingress(s);
    assert_same_statuses(s, ids, st, RESTART_N, "after SIGKILL and start");

    /* The restarted ingress takes new work too. */
    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\"}");
    o = h_wait_final(s, H_TOKEN, id, 30000);
    ck_assert_str_eq(h_json_str(o, "status"), "succeeded");
    json_object_put(o);
    free(id);

    statuses_free(st, RESTART_N);
    ids_free(ids, RESTART_N);
    h_stack_teardown(s);
}
END_TEST

/* ---- the broker goes away ---- */

#define PRE_PAUSE_N 20
#define DOWN_N 50
#define CONFIRM_TIMEOUT_MS 2000
#define ANSWER_MARGIN_MS 1000

/* submit_while_down sends one submission (envelope form for even i,
 * transparent form for odd i) and checks it is refused with 503
 * broker_unavailable and Retry-After; returns how long the answer took. */
static long long submit_while_down(struct h_stack *s, int i)
{
    char url[256], auth[128], body[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", H_TOKEN);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    if (i % 2 == 0) {
        snprintf(url, sizeof url, "%s/v1/requests", h_stack_url(s));
        snprintf(body, sizeof body, "{\"route\":\"refused\",\"path\":\"/e%d\"}", i);
    } else {
        snprintf(url, sizeof url, "%s/v1/routes/refused/t%d", h_stack_url(s), i);
        snprintf(body, sizeof body, "{\"i\":%d}", i);
    }
    long long t0 = h_mono_ms();
    struct h_resp *r = h_request("POST", url, headers, body, strlen(body));
    long long took = h_mono_ms() - t0;
    ck_assert_msg(r->status == 503, "submission %d while the broker is down answered %ld%s%s: %s",
                  i, r->status, r->err[0] ? " " : "", r->err, r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "the 503 body is not JSON: %s", r->body);
    ck_assert_str_eq(h_json_str(o, "error.code"), "broker_unavailable");
    h_json_str(o, "error.message");
    const char *ra = h_resp_header(r, "Retry-After");
    ck_assert_msg(ra != NULL, "503 without Retry-After");
    char *end;
    long secs = strtol(ra, &end, 10);
    ck_assert_msg(*ra && !*end && secs >= 1 && secs <= 3600, "bad Retry-After \"%s\"", ra);
    ck_assert_msg(took <= CONFIRM_TIMEOUT_MS + ANSWER_MARGIN_MS,
                  "submission %d took %lld ms to be refused (confirm timeout %d ms)", i, took,
                  CONFIRM_TIMEOUT_MS);
    json_object_put(o);
    h_resp_free(r);
    return took;
}

/* edge_client forks a client that submits to route echo (path /edge/<i>)
 * every 20 ms, while the broker goes down, until stop_edge_client. Each
 * answer is a line "<i> <http status> <ms taken> <id or ->" of out. It uses
 * no Check assertion: it is not the test process. */
static pid_t edge_client(struct h_stack *s, const char *out, int *stop_fd)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid > 0) {
        close(fds[0]);
        *stop_fd = fds[1];
        return pid;
    }
    close(fds[1]);
    FILE *f = fopen(out, "w");
    if (!f) _exit(1);
    char url[256], auth[128], body[128];
    snprintf(url, sizeof url, "%s/v1/requests", h_stack_url(s));
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", H_TOKEN);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    for (int i = 0;; i++) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, 0) != 0) break; /* the parent closed the pipe */
        snprintf(body, sizeof body, "{\"route\":\"echo\",\"path\":\"/edge/%d\"}", i);
        long long t0 = h_mono_ms();
        struct h_resp *r = h_request("POST", url, headers, body, strlen(body));
        long long took = h_mono_ms() - t0;
        const char *id = r->status == 202 ? strstr(r->body, "\"id\":\"") : NULL;
        fprintf(f, "%d %ld %lld %.32s\n", i, r->status, took, id ? id + 6 : "-");
        fflush(f);
        h_resp_free(r);
        h_sleep_ms(20);
    }
    fclose(f);
    _exit(0);
}

static void stop_edge_client(pid_t pid, int stop_fd)
{
    close(stop_fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the edge client failed (%d)",
                  status);
}

/* edge_accepted reads the edge client's answers: each is 202 or 503 and came
 * within the confirm timeout and a margin. It returns the ids answered 202
 * (caller frees with ids_free) and their number in *n. */
static char **edge_accepted(const char *path, size_t *n, int *refused)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no answers from the edge client in %s", path);
    char **ids = NULL, id[64];
    int i;
    long status;
    long long took;
    *n = 0;
    *refused = 0;
    while (fscanf(f, "%d %ld %lld %63s", &i, &status, &took, id) == 4) {
        ck_assert_msg(status == 202 || status == 503,
                      "edge submission %d answered %ld while the broker went down", i, status);
        ck_assert_msg(took <= CONFIRM_TIMEOUT_MS + ANSWER_MARGIN_MS,
                      "edge submission %d took %lld ms (confirm timeout %d ms)", i, took,
                      CONFIRM_TIMEOUT_MS);
        if (status == 503) {
            (*refused)++;
            continue;
        }
        ck_assert_uint_eq(strlen(id), 32);
        ids = realloc(ids, (*n + 1) * sizeof *ids);
        ck_assert_ptr_nonnull(ids);
        ids[*n] = strdup(id);
        ck_assert_ptr_nonnull(ids[*n]);
        (*n)++;
    }
    fclose(f);
    return ids;
}

START_TEST(test_broker_down_and_back)
{
    struct h_stack *s = h_stack_new();
    set_route(s, "slow", "/delay/1500", 4);
    set_route(s, "refused", "/refused", 4);
    /* The whole ingress object, defaults included: see the sigterm test. */
    h_stack_set(s, "ingress",
                "{\"threads\":2,\"max_body_bytes\":1048576,\"status_retention_s\":86400,"
                "\"max_status_entries\":1000000,\"confirm_timeout_ms\":%d}",
                CONFIRM_TIMEOUT_MS);
    h_stack_start(s, 1);
    char ingress_ready[128], worker_base[96], worker_ready[128];
    snprintf(ingress_ready, sizeof ingress_ready, "%s/readyz", h_stack_url(s));
    h_stack_metrics_url(s, 0, worker_base, sizeof worker_base);
    snprintf(worker_ready, sizeof worker_ready, "%s/readyz", worker_base);
    h_wait_http(worker_ready, 200, 10000, h_stack_worker(s, 0));

    /* Accepted just before the pause: some are in flight when it comes. */
    char **ids = submit_all(h_stack_url(s), PRE_PAUSE_N, route_envelope, "slow");
    /* A client keeps submitting while the broker goes down: whatever it got a
     * 202 for must complete later. */
    char edge_path[4096];
    snprintf(edge_path, sizeof edge_path, "%s/edge.txt", h_stack_dir(s));
    int stop_fd;
    pid_t edge = edge_client(s, edge_path, &stop_fd);
    h_sleep_ms(200);
    long long t0 = h_mono_ms();
    h_broker_pause();
    long long paused = h_mono_ms();
    h_wait_http(ingress_ready, 503, 15000, h_stack_ingress(s));
    h_wait_http(worker_ready, 503, 15000, h_stack_worker(s, 0));
    h_sleep_ms(200);
    stop_edge_client(edge, stop_fd);
    size_t n_edge;
    int edge_refused;
    char **edge_ids = edge_accepted(edge_path, &n_edge, &edge_refused);
    fprintf(stderr, "broker: the edge client got %zu 202 and %d 503 answers\n", n_edge,
            edge_refused);
    ck_assert_msg(n_edge > 0 && edge_refused > 0, "the edge client did not see the transition");
    fprintf(stderr, "broker: pause took %lld ms, both /readyz 503 after %lld ms more\n",
            paused - t0, h_mono_ms() - paused);

    /* The ingress lives on, and still serves the status of accepted work. */
    char healthz[128];
    snprintf(healthz, sizeof healthz, "%s/healthz", h_stack_url(s));
    h_wait_http(healthz, 200, 1000, h_stack_ingress(s));
    long http = 0;
    struct json_object *o = h_get_status(s, H_TOKEN, ids[0], &http);
    ck_assert_msg(http == 200, "status while the broker is down answered %ld", http);
    json_object_put(o);

    long long worst = 0;
    for (int i = 0; i < DOWN_N; i++) {
        long long took = submit_while_down(s, i);
        if (took > worst) worst = took;
        h_sleep_ms(60);
    }
    ck_assert_int_eq(h_proc_running(h_stack_ingress(s)), true);
    fprintf(stderr, "broker: %d submissions refused, slowest answer %lld ms\n", DOWN_N, worst);

    h_broker_resume();
    long long resumed = h_mono_ms();
    h_wait_http(ingress_ready, 200, 30000, h_stack_ingress(s));
    int left = (int)(30000 - (h_mono_ms() - resumed));
    h_wait_http(worker_ready, 200, left > 0 ? left : 1, h_stack_worker(s, 0));
    fprintf(stderr, "broker: both /readyz 200 %lld ms after the resume\n", h_mono_ms() - resumed);

    char *id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/after\"}");
    o = h_wait_final(s, H_TOKEN, id, 30000);
    ck_assert_str_eq(h_json_str(o, "status"), "succeeded");
    ck_assert_int_eq(h_json_int(o, "attempts"), 1);
    ck_assert_int_eq(h_backend_calls(s, id), 1);
    json_object_put(o);
    free(id);

    struct json_object **st = calloc(PRE_PAUSE_N, sizeof *st);
    ck_assert_ptr_nonnull(st);
    wait_all_final(h_stack_url(s), ids, PRE_PAUSE_N, 60000, st);
    for (size_t i = 0; i < PRE_PAUSE_N; i++) {
        ck_assert_msg(!strcmp(h_json_str(st[i], "status"), "succeeded"), "request %zu: %s", i,
                      json_object_to_json_string(st[i]));
        ck_assert_int_ge(h_backend_calls(s, ids[i]), 1);
    }
    if (n_edge > 0) {
        struct json_object **edge_st = calloc(n_edge, sizeof *edge_st);
        ck_assert_ptr_nonnull(edge_st);
        wait_all_final(h_stack_url(s), edge_ids, n_edge, 30000, edge_st);
        for (size_t i = 0; i < n_edge; i++) {
            ck_assert_msg(!strcmp(h_json_str(edge_st[i], "status"), "succeeded"),
                          "edge request %s: %s", edge_ids[i],
                          json_object_to_json_string(edge_st[i]));
            ck_assert_int_ge(h_backend_calls(s, edge_ids[i]), 1);
        }
        statuses_free(edge_st, n_edge);
    }
    ids_free(edge_ids, n_edge);
    /* A 503 while not ready means nothing was queued: no refused submission
     * ever reaches the backend, and no message is left behind. */
    wait_queue_empty(s, "lane.echo", 10000);
    ck_assert_int_eq(access_lines(s, "/refused"), 0);

    statuses_free(st, PRE_PAUSE_N);
    ids_free(ids, PRE_PAUSE_N);
    h_stack_teardown(s);
}
END_TEST

/* thaw_guard forks a process that sends SIGCONT to pid after ms, so that a
 * failing test never leaves the broker frozen for the tests after it. */
static pid_t thaw_guard(pid_t pid, long ms)
{
    fflush(NULL);
    pid_t g = fork();
    ck_assert_int_ge(g, 0);
    if (g == 0) {
        h_sleep_ms(ms);
        kill(pid, SIGCONT);
        _exit(0);
    }
    return g;
}

#define FROZEN_N 10

START_TEST(test_broker_frozen)
{
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "ingress",
                "{\"threads\":2,\"max_body_bytes\":1048576,\"status_retention_s\":86400,"
                "\"max_status_entries\":1000000,\"confirm_timeout_ms\":%d}",
                CONFIRM_TIMEOUT_MS);
    h_stack_start(s, 1);
    char *before = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/before\"}");
    struct json_object *o = h_wait_final(s, H_TOKEN, before, 30000);
    json_object_put(o);

    /* A frozen broker keeps its connections open but confirms nothing: only
     * the confirm timeout can answer the clients. */
    pid_t beam = h_broker_beam_pid();
    pid_t guard = thaw_guard(beam, 30000);
    ck_assert_int_eq(kill(beam, SIGSTOP), 0);
    struct xfer *xs = calloc(FROZEN_N, sizeof *xs);
    ck_assert_ptr_nonnull(xs);
    for (size_t i = 0; i < FROZEN_N; i++) {
        xs[i].method = "POST";
        xs[i].token = H_TOKEN;
        xs[i].body = xasprintf("{\"route\":\"echo\",\"path\":\"/frozen/%zu\"}", i);
        snprintf(xs[i].url, sizeof xs[i].url, "%s/v1/requests", h_stack_url(s));
    }
    long long t0 = h_mono_ms();
    run_all(xs, FROZEN_N, FROZEN_N);
    long long took = h_mono_ms() - t0;
    kill(beam, SIGCONT);
    kill(guard, SIGKILL);
    waitpid(guard, NULL, 0);
    fprintf(stderr, "frozen broker: %d submissions answered in %lld ms\n", FROZEN_N, took);
    for (size_t i = 0; i < FROZEN_N; i++) {
        ck_assert_msg(xs[i].status == 503,
                      "submission %zu to a frozen broker answered %ld %s: %.300s", i, xs[i].status,
                      xs[i].err, xs[i].resp ? xs[i].resp : "");
        struct json_object *e = parse_body(&xs[i]);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(h_json_str(e, "error.code"), "broker_unavailable");
        ck_assert_msg(xs[i].retry_after[0], "503 without Retry-After");
        json_object_put(e);
    }
    ck_assert_msg(took <= CONFIRM_TIMEOUT_MS + ANSWER_MARGIN_MS,
                  "the refusals took %lld ms (confirm timeout %d ms)", took, CONFIRM_TIMEOUT_MS);
    xfers_free(xs, FROZEN_N);

    /* Thawed, the gateway works again. */
    char ready[128];
    snprintf(ready, sizeof ready, "%s/readyz", h_stack_url(s));
    h_wait_http(ready, 200, 30000, h_stack_ingress(s));
    char *after = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/after\"}");
    o = h_wait_final(s, H_TOKEN, after, 30000);
    ck_assert_str_eq(h_json_str(o, "status"), "succeeded");
    ck_assert_int_eq(h_backend_calls(s, after), 1);
    json_object_put(o);
    free(after);
    free(before);
    h_stack_teardown(s);
}
END_TEST

/* ---- two ingress replicas ---- */

static struct h_proc *start_replica(struct h_stack *s, char *url, size_t len)
{
    char bin[256], config[4096], log[4096], listen[64], ready[128];
    int port = h_free_port();
    snprintf(bin, sizeof bin, "%s/sluice-ingress", h_bin_dir());
    snprintf(config, sizeof config, "%s/config.json", h_stack_dir(s));
    snprintf(log, sizeof log, "%s/ingress-2.log", h_stack_dir(s));
    snprintf(listen, sizeof listen, "SLUICE_LISTEN=127.0.0.1:%d", port);
    char *argv[] = {bin, "--config", config, NULL};
    char *env[] = {listen, NULL};
    struct h_proc *p = h_spawn("ingress-2", log, argv, env);
    snprintf(url, len, "http://127.0.0.1:%d", port);
    snprintf(ready, sizeof ready, "%s/readyz", url);
    h_wait_http(ready, 200, H_READY_TIMEOUT_MS, p);
    return p;
}

/* get_json GETs base/v1/requests/<id> with token; the caller puts the result. */
static struct json_object *get_json(const char *base, const char *token, const char *id, long *http)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s/v1/requests/%s", base, id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    struct h_resp *r = h_request("GET", url, headers, NULL, 0);
    struct json_object *o = h_resp_json(r);
    *http = r->status;
    h_resp_free(r);
    return o;
}

/* wait_final_at polls base until id is final there and returns its status. */
static struct json_object *wait_final_at(const char *base, const char *id, int timeout_ms)
{
    long long deadline = h_mono_ms() + timeout_ms;
    for (;;) {
        long http = 0;
        struct json_object *o = get_json(base, H_TOKEN, id, &http);
        struct json_object *st = o ? h_json_at(o, "status") : NULL;
        if (http == 200 && json_object_is_type(st, json_type_string) &&
            final_state(json_object_get_string(st)))
            return o;
        ck_assert_msg(h_mono_ms() < deadline, "%s/v1/requests/%s not final within %d ms: %ld %s",
                      base, id, timeout_ms, http, o ? json_object_to_json_string(o) : "");
        json_object_put(o);
        h_sleep_ms(20);
    }
}

START_TEST(test_two_ingress_replicas)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    char url_b[64];
    struct h_proc *b = start_replica(s, url_b, sizeof url_b);
    const char *url_a = h_stack_url(s);

    char *ids_a[2], *ids_b[2];
    ids_a[0] = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/via-a\"}");
    char **through_b = submit_all(url_b, 2, route_envelope, "echo");
    ids_b[0] = through_b[0];
    ids_b[1] = through_b[1];
    ids_a[1] = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/via-a-2\"}");

    /* Submitted through one replica, the final status is the same through the other. */
    const char *const bases[2] = {url_a, url_b};
    char **ids[2] = {ids_a, ids_b};
    for (int from = 0; from < 2; from++) {
        for (int k = 0; k < 2; k++) {
            const char *id = ids[from][k];
            struct json_object *here = wait_final_at(bases[from], id, 30000);
            struct json_object *there = wait_final_at(bases[1 - from], id, 10000);
            ck_assert_str_eq(h_json_str(here, "status"), "succeeded");
            ck_assert_msg(json_object_equal(here, there), "replicas disagree on %s:\n%s\n%s", id,
                          json_object_to_json_string(here), json_object_to_json_string(there));
            long http = 0;
            struct json_object *o = get_json(bases[1 - from], H_OTHER_TOKEN, id, &http);
            ck_assert_int_eq(http, 404); /* another tenant's, on the other replica too */
            ck_assert_str_eq(h_json_str(o, "error.code"), "not_found");
            json_object_put(o);
            json_object_put(here);
            json_object_put(there);
            ck_assert_int_eq(h_backend_calls(s, id), 1);
        }
    }

    h_proc_stop(b, H_STOP_TIMEOUT_MS);
    h_proc_assert_clean(b);
    h_proc_free(b);
    free(ids_a[0]);
    free(ids_a[1]);
    ids_free(through_b, 2);
    h_stack_teardown(s);
}
END_TEST

static Suite *resilience_suite(void)
{
    Suite *s = suite_create("resilience");
    /* Cases tagged "tsan" also run against the ThreadSanitizer build of the
     * binaries (make tsan-test): they are the ones where the publisher thread,
     * the reaper and the HTTP threads race for the same requests. */
    struct {
        const char *name;
        const TTest *test;
        const char *tags;
    } cases[] = {
        {"burst", test_burst, NULL},
        {"one_bad_client", test_one_bad_client, NULL},
        {"worker_sigkill", test_worker_sigkill_mid_batch, NULL},
        {"worker_sigterm", test_worker_sigterm_in_flight, NULL},
        {"worker_sigterm_held", test_worker_sigterm_held_retries, NULL},
        {"worker_sigkill_held", test_worker_sigkill_held_retry_kept, NULL},
        {"worker_sigkill_older", test_worker_sigkill_older_batch_kept, NULL},
        {"ingress_restart", test_ingress_restart_keeps_status, NULL},
        {"broker_down", test_broker_down_and_back, "tsan"},
        {"broker_frozen", test_broker_frozen, "tsan"},
        {"replicas", test_two_ingress_replicas, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        if (cases[i].tags) tcase_set_tags(tc, cases[i].tags);
        tcase_set_timeout(tc, 180);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resilience_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
