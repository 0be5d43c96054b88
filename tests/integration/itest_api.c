/* itest_api.c: the HTTP API of the ingress end to end. Round trips through
 * both submission forms reach the real backend with everything the client
 * sent; results come back in the encoding the backend's answer calls for; and
 * every refusal has its status code, its error code and queues nothing. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define FINAL_MS 30000
#define SMALL_BODY 1024 /* ingress.max_body_bytes of the errors stack */

/* ---- small helpers this file needs beyond the harness ---- */

/* call sends method to the ingress's path with a bearer token (none when
 * token is NULL), an optional Content-Type and an optional extra header. */
static struct h_resp *call(struct h_stack *s, const char *method, const char *path,
                           const char *token, const char *ctype, const char *extra,
                           const char *body, size_t len)
{
    char *url = NULL, auth[256], ct[512];
    const char *headers[4] = {NULL};
    size_t n = 0;
    ck_assert_int_gt(asprintf(&url, "%s%s", h_stack_url(s), path), 0);
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers[n++] = auth;
    }
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        headers[n++] = ct;
    }
    if (extra) headers[n++] = extra;
    struct h_resp *r = h_request(method, url, headers, body, len);
    free(url);
    return r;
}

static struct h_resp *post_envelope(struct h_stack *s, const char *token, const char *envelope)
{
    return call(s, "POST", "/v1/requests", token, "application/json", NULL, envelope,
                strlen(envelope));
}

/* expect_error checks an error answer (status, JSON content type and
 * {"error":{"code","message"}}) and frees r. what names the case. */
static void expect_error(struct h_resp *r, long status, const char *code, const char *what)
{
    ck_assert_msg(r->status == status, "%s: answered %ld (want %ld)%s%s: %.300s", what, r->status,
                  status, r->err[0] ? " " : "", r->err, r->body);
    const char *ctype = h_resp_header(r, "Content-Type");
    ck_assert_msg(ctype && strncmp(ctype, "application/json", 16) == 0,
                  "%s: Content-Type %s, want application/json", what, ctype ? ctype : "(none)");
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "%s: the error body is not JSON: %.300s", what, r->body);
    const char *got = h_json_str(o, "error.code");
    ck_assert_msg(strcmp(got, code) == 0, "%s: error.code \"%s\", want \"%s\" (%s)", what, got,
                  code, r->body);
    ck_assert_msg(strlen(h_json_str(o, "error.message")) > 0, "%s: empty error.message", what);
    json_object_put(o);
    h_resp_free(r);
}

/* expect_accepted checks a 202 answer (Location, status_url, status
 * "queued") and returns the id (caller frees); it frees r. */
static char *expect_accepted(struct h_resp *r, const char *what)
{
    ck_assert_msg(r->status == 202, "%s: answered %ld%s%s: %.300s", what, r->status,
                  r->err[0] ? " " : "", r->err, r->body);
    struct json_object *o = h_resp_json(r);
    ck_assert_msg(o != NULL, "%s: the 202 body is not JSON: %.300s", what, r->body);
    char *id = strdup(h_json_str(o, "id"));
    ck_assert_ptr_nonnull(id);
    ck_assert_uint_eq(strlen(id), 32);
    char want[128];
    snprintf(want, sizeof want, "/v1/requests/%s", id);
    ck_assert_str_eq(h_json_str(o, "status"), "queued");
    ck_assert_str_eq(h_json_str(o, "status_url"), want);
    const char *loc = h_resp_header(r, "Location");
    ck_assert_msg(loc && strcmp(loc, want) == 0, "%s: Location %s, want %s", what,
                  loc ? loc : "(none)", want);
    json_object_put(o);
    h_resp_free(r);
    return id;
}

/* wait_succeeded waits for id to be final, checks it succeeded after one
 * backend call with a 200, and returns the status (caller puts). */
static struct json_object *wait_succeeded(struct h_stack *s, const char *token, const char *id,
                                          const char *route)
{
    struct json_object *st = h_wait_final(s, token, id, FINAL_MS);
    const char *text = json_object_to_json_string(st);
    ck_assert_msg(strcmp(h_json_str(st, "status"), "succeeded") == 0, "not succeeded: %s", text);
    ck_assert_str_eq(h_json_str(st, "id"), id);
    ck_assert_str_eq(h_json_str(st, "route"), route);
    ck_assert_int_eq(h_json_int(st, "attempts"), 1);
    ck_assert_int_eq(h_json_int(st, "result.status"), 200);
    ck_assert_msg(h_json_at(st, "error") == NULL ||
                      json_object_is_type(h_json_at(st, "error"), json_type_null),
                  "a succeeded request has an error: %s", text);
    h_json_str(st, "created_at");
    h_json_str(st, "updated_at");
    h_json_str(st, "completed_at");
    ck_assert_msg(json_object_is_type(h_json_at(st, "result.truncated"), json_type_boolean) &&
                      !json_object_get_boolean(h_json_at(st, "result.truncated")),
                  "result.truncated is not false: %s", text);
    ck_assert_int_eq(h_backend_calls(s, id), 1);
    return st;
}

/* post_chunked POSTs body to /v1/requests with Transfer-Encoding: chunked,
 * in 256-byte chunks, so the ingress can only count the body as it comes. */
static struct h_resp *post_chunked(struct h_stack *s, const char *token, const char *body)
{
    char url[512], auth[256];
    snprintf(url, sizeof url, "%s/v1/requests", h_stack_url(s));
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    return h_request_chunked("POST", url, headers, body, strlen(body), 256);
}

/* envelope_with_text makes {"route":"echo","body_text":"xxx..."} of about
 * total bytes (caller frees). */
static char *envelope_with_text(size_t total)
{
    static const char head[] = "{\"route\":\"echo\",\"body_text\":\"", tail[] = "\"}";
    size_t fill = total - (sizeof head - 1) - (sizeof tail - 1);
    char *e = malloc(total + 1);
    ck_assert_ptr_nonnull(e);
    memcpy(e, head, sizeof head - 1);
    memset(e + sizeof head - 1, 'x', fill);
    memcpy(e + sizeof head - 1 + fill, tail, sizeof tail);
    ck_assert_uint_eq(strlen(e), total);
    return e;
}

/* raw_request writes req (a whole HTTP/1.1 request, which should say
 * "Connection: close") to the ingress as it is, so the request line can hold
 * what libcurl would normalise or cut (dot segments, '#'), and reads the
 * answer to the end. */
static struct h_resp *raw_request(struct h_stack *s, const char *req, size_t len)
{
    struct h_resp *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    long port = strtol(strrchr(h_stack_url(s), ':') + 1, NULL, 10);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, req + off, len - off);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
    size_t cap = 65536, got = 0;
    char *in = malloc(cap + 1);
    ck_assert_ptr_nonnull(in);
    for (ssize_t n; got < cap && (n = read(fd, in + got, cap - got)) > 0;)
        got += (size_t)n;
    in[got] = '\0';
    close(fd);
    if (sscanf(in, "HTTP/1.1 %ld", &r->status) != 1) {
        snprintf(r->err, sizeof r->err, "no HTTP answer (%zu bytes)", got);
        r->status = 0;
    }
    char *body = strstr(in, "\r\n\r\n");
    body = body ? body + 4 : in + got;
    r->headers = calloc(64, sizeof *r->headers);
    ck_assert_ptr_nonnull(r->headers);
    for (char *line = strstr(in, "\r\n"); line && line + 2 < body && r->n_headers < 64;) {
        line += 2;
        char *eol = strstr(line, "\r\n"), *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            r->headers[r->n_headers].name = strndup(line, (size_t)(colon - line));
            r->headers[r->n_headers++].value = strndup(colon + 2, (size_t)(eol - colon - 2));
        }
        line = eol;
    }
    r->len = strlen(body);
    r->body = strdup(body);
    ck_assert_ptr_nonnull(r->body);
    free(in);
    return r;
}

/* raw_submit sends "<method> <target>" with the default token, one extra
 * header line (may be NULL) and a small JSON body. */
static struct h_resp *raw_submit(struct h_stack *s, const char *method, const char *target,
                                 const char *extra)
{
    size_t cap = strlen(method) + strlen(target) + (extra ? strlen(extra) : 0) + 512;
    char *req = malloc(cap);
    ck_assert_ptr_nonnull(req);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " H_TOKEN
                     "\r\n%s%sContent-Type: application/json\r\nContent-Length: 2\r\n"
                     "Connection: close\r\n\r\n{}",
                     method, target, extra ? extra : "", extra ? "\r\n" : "");
    ck_assert(n > 0 && (size_t)n < cap);
    struct h_resp *r = raw_request(s, req, (size_t)n);
    free(req);
    return r;
}

/* expect_refused checks a 400 invalid_request whose message names field. */
static void expect_refused(struct h_resp *r, const char *field, const char *what)
{
    struct json_object *o = r->status == 400 ? h_resp_json(r) : NULL;
    const char *msg = o ? h_json_str(o, "error.message") : "";
    ck_assert_msg(r->status == 400 && o &&
                      strcmp(h_json_str(o, "error.code"), "invalid_request") == 0 &&
                      strncmp(msg, field, strlen(field)) == 0,
                  "%s: answered %ld %s (want 400 invalid_request naming %s)", what, r->status,
                  r->status ? r->body : r->err, field);
    json_object_put(o);
    h_resp_free(r);
}

/* access_log_has tells whether the backend's access log has a call
 * "<METHOD> <path>" (path with its query, as the backend saw it). */
static bool access_log_has(struct h_stack *s, const char *method, const char *path)
{
    size_t cap = 32768;
    char *line = malloc(cap);
    ck_assert_ptr_nonnull(line);
    bool found = false;
    FILE *f = h_backend_access_log(s);
    while (!found && fgets(line, (int)cap, f)) {
        char *m = strchr(line, ' '), *p = m ? strchr(m + 1, ' ') : NULL;
        if (!p) continue;
        *p = '\0';
        char *end = strchr(p + 1, ' ');
        if (end) *end = '\0';
        found = strcmp(m + 1, method) == 0 && strcmp(p + 1, path) == 0;
    }
    fclose(f);
    free(line);
    return found;
}

/* long_text returns n copies of ch (caller frees). */
static char *long_text(char ch, size_t n)
{
    char *t = malloc(n + 1);
    ck_assert_ptr_nonnull(t);
    memset(t, ch, n);
    t[n] = '\0';
    return t;
}

/* ---- round trips ---- */

/* The envelope form: everything the envelope names reaches the backend, the
 * backend sees the tracking id as Idempotency-Key, and results come back as
 * JSON, text or base64 depending on the backend's answer. */
START_TEST(test_envelope_round_trip)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);

    const char *env = "{\"route\":\"echo\",\"method\":\"PATCH\",\"path\":\"/things/42\","
                      "\"query\":\"a=1&b=two\",\"headers\":{\"X-Custom\":\"hello there\"},"
                      "\"body_text\":\"payload text\"}";
    char *id = expect_accepted(post_envelope(s, H_TOKEN, env), "envelope round trip");
    struct json_object *st = wait_succeeded(s, H_TOKEN, id, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "PATCH");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/things/42");
    ck_assert_str_eq(h_json_str(st, "result.body.query"), "a=1&b=two");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.x-custom"), "hello there");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.idempotency-key"), id);
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "payload text");
    ck_assert_int_eq(h_json_int(st, "result.body.calls"), 1);
    ck_assert_msg(h_json_at(st, "result.body.headers.authorization") == NULL,
                  "the client's Authorization reached the backend: %s",
                  json_object_to_json_string(st));
    json_object_put(st);
    free(id);

    /* A JSON body travels as JSON; the defaults are POST and "/". */
    id = expect_accepted(post_envelope(s, H_TOKEN, "{\"route\":\"echo\",\"body\":{\"k\":[1,2]}}"),
                         "envelope with a JSON body");
    st = wait_succeeded(s, H_TOKEN, id, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "POST");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/");
    ck_assert_str_eq(h_json_str(st, "result.body.query"), "");
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "{\"k\":[1,2]}");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.idempotency-key"), id);
    json_object_put(st);
    free(id);

    /* A text answer comes back as body_text. */
    id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"method\":\"GET\",\"path\":\"/text\"}");
    st = wait_succeeded(s, H_TOKEN, id, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body_text"), "plain text");
    ck_assert_ptr_null(h_json_at(st, "result.body"));
    ck_assert_ptr_null(h_json_at(st, "result.body_base64"));
    json_object_put(st);
    free(id);

    /* Bytes that are not text come back as body_base64. */
    id = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"method\":\"GET\",\"path\":\"/binary\"}");
    st = wait_succeeded(s, H_TOKEN, id, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body_base64"), "AP8A/g==");
    ck_assert_ptr_null(h_json_at(st, "result.body"));
    ck_assert_ptr_null(h_json_at(st, "result.body_text"));
    json_object_put(st);
    free(id);

    /* A response header that is not UTF-8 is left out of the result; the
     * status (and the rest of its batch) still arrives. */
    id =
        h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"method\":\"GET\",\"path\":\"/latin1-header\"}");
    st = wait_succeeded(s, H_TOKEN, id, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body_text"), "latin1");
    ck_assert_ptr_null(h_json_at(st, "result.headers.X-Latin1"));
    ck_assert_str_eq(h_json_str(st, "result.headers.Content-Type"), "text/plain");
    json_object_put(st);
    free(id);

    h_stack_teardown(s);
}
END_TEST

/* The transparent form: the raw method, path, query, body and headers
 * become the backend call, with and without a body. */
START_TEST(test_transparent_round_trip)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);

    static const char body[] = "{\"name\":\"widget\",\"n\":7}";
    const char *headers[] = {"Authorization: Bearer " H_TOKEN, "Content-Type: application/json",
                             "X-Custom: abc", "X-Priority: high", NULL};
    char url[512];
    snprintf(url, sizeof url, "%s/v1/routes/echo/items/7?x=1", h_stack_url(s));
    char *id =
        expect_accepted(h_request("PUT", url, headers, body, strlen(body)), "transparent PUT");
    struct json_object *st = wait_succeeded(s, H_TOKEN, id, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "PUT");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/items/7");
    ck_assert_str_eq(h_json_str(st, "result.body.query"), "x=1");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.x-custom"), "abc");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.content-type"), "application/json");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.idempotency-key"), id);
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), body);
    const char *text = json_object_to_json_string(st);
    ck_assert_msg(h_json_at(st, "result.body.headers.authorization") == NULL,
                  "the client's Authorization reached the backend: %s", text);
    ck_assert_msg(h_json_at(st, "result.body.headers.x-priority") == NULL,
                  "X-Priority reached the backend: %s", text);
    json_object_put(st);
    free(id);

    /* GET without a body, and a path with a query of two parameters. */
    const char *get_headers[] = {"Authorization: Bearer " H_TOKEN, "X-Custom: def", NULL};
    snprintf(url, sizeof url, "%s/v1/routes/echo/search?q=z&page=2", h_stack_url(s));
    id = expect_accepted(h_request("GET", url, get_headers, NULL, 0), "transparent GET");
    st = wait_succeeded(s, H_TOKEN, id, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body.method"), "GET");
    ck_assert_str_eq(h_json_str(st, "result.body.path"), "/search");
    ck_assert_str_eq(h_json_str(st, "result.body.query"), "q=z&page=2");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.x-custom"), "def");
    ck_assert_str_eq(h_json_str(st, "result.body.headers.idempotency-key"), id);
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "");
    json_object_put(st);
    free(id);

    h_stack_teardown(s);
}
END_TEST

/* ---- priorities ---- */

#define PRIO_EACH 4 /* requests per priority level in test_priority_order */

/* called_prio reads the backend's access log ("<unix_ms> <METHOD> <path>
 * <key>") in call order, and for every call to a path "/prio/<p>/<n>" writes
 * p to prio and n to seq; it returns how many there were. */
static int called_prio(struct h_stack *s, int *prio, int *seq, int max)
{
    char line[4096];
    FILE *f = h_backend_access_log(s);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, " /prio/");
        if (!p) continue;
        ck_assert_int_lt(n, max);
        ck_assert_msg(sscanf(p, " /prio/%d/%d", &prio[n], &seq[n]) == 2, "bad access log line: %s",
                      line);
        n++;
    }
    fclose(f);
    return n;
}

/* With no worker running, requests are queued in increasing priority (0,
 * low = 1, normal = 5, high = 9 through the envelope, then X-Priority: high
 * through the transparent form); one worker with batch_size 1 and prefetch 1
 * must then call them in decreasing priority, in submission order within a
 * priority. A queue without x-max-priority would call them in submission
 * order. Quorum queues have no priorities on RabbitMQ 3.10
 * (docs/clustering.md): there the test only checks that every request went
 * through once. Last, the queues' arguments: classic queues are version 2 and lazy. */
START_TEST(test_priority_order)
{
    static const char *const levels[] = {"0", "\"low\"", "\"normal\"", "\"high\"", NULL};
    static const int values[] = {0, 1, 5, 9, 9}; /* NULL above: X-Priority: high */
    enum { N_LEVELS = sizeof levels / sizeof levels[0], N = N_LEVELS * PRIO_EACH };
    bool quorum = h_quorum_mode();
    struct h_stack *s = h_stack_new();
    /* h_stack_set cannot take a bare number (json-c's tokener waits for
     * more digits), so the worker object is given whole. */
    h_stack_set(s, "worker",
                "{\"batch_size\":1,\"batch_linger_ms\":0,\"prefetch\":1,"
                "\"metrics_listen\":\"127.0.0.1:0\",\"retry_hold_max_ms\":1000}");
    h_stack_start(s, 0);

    char *ids[N];
    for (int n = 0; n < N; n++) {
        int l = n / PRIO_EACH;
        char what[96], path[64];
        snprintf(path, sizeof path, "/prio/%d/%d", values[l], n);
        snprintf(what, sizeof what, "request %s", path);
        if (levels[l]) {
            char env[256];
            snprintf(env, sizeof env, "{\"route\":\"echo\",\"path\":\"%s\",\"priority\":%s}", path,
                     levels[l]);
            ids[n] = expect_accepted(post_envelope(s, H_TOKEN, env), what);
        } else {
            char url[512];
            snprintf(url, sizeof url, "%s/v1/routes/echo%s", h_stack_url(s), path);
            const char *headers[] = {"Authorization: Bearer " H_TOKEN, "X-Priority: high", NULL};
            ids[n] = expect_accepted(h_request("POST", url, headers, "{}", 2), what);
        }
    }
    ck_assert_int_eq(h_queue_messages(s, "lane.echo"), N);
    ck_assert_int_eq(h_backend_requests(s), 0);

    h_stack_add_worker(s);
    for (int n = 0; n < N; n++) {
        json_object_put(wait_succeeded(s, H_TOKEN, ids[n], "echo"));
        free(ids[n]);
    }

    int prio[N + 1], seq[N + 1];
    ck_assert_int_eq(called_prio(s, prio, seq, N + 1), N);
    char order[8 * N + 1] = "";
    for (int i = 0; i < N; i++)
        snprintf(order + strlen(order), sizeof order - strlen(order), " %d/%d", prio[i], seq[i]);
    if (quorum) {
        printf(
            "test_priority_order: quorum mode, order not checked; calls (priority/submitted)%s\n",
            order);
    } else {
        for (int i = 1; i < N; i++)
            ck_assert_msg(prio[i] < prio[i - 1] || (prio[i] == prio[i - 1] && seq[i] > seq[i - 1]),
                          "call %d (priority %d, submitted %d) came after priority %d, submitted "
                          "%d; calls (priority/submitted):%s",
                          i + 1, prio[i], seq[i], prio[i - 1], seq[i - 1], order);
    }

    /* The classic queues are version 2 and lazy; quorum queues take neither argument. */
    char *requests = h_queue_arguments(s, "lane.echo"), *dead = h_queue_arguments(s, "dead");
    ck_assert_msg(requests && dead, "no %s.lane.echo or %s.dead on the broker",
                  h_stack_namespace(s), h_stack_namespace(s));
    if (quorum) {
        ck_assert_msg(!strstr(requests, "x-queue-version") && !strstr(dead, "x-queue-version") &&
                          !strstr(requests, "x-queue-mode") && !strstr(dead, "x-queue-mode"),
                      "a quorum queue has classic arguments: requests %s, dead %s", requests, dead);
    } else {
        ck_assert_msg(strstr(requests, "{\"x-queue-version\",2}") &&
                          strstr(requests, "{\"x-queue-mode\",\"lazy\"}") &&
                          strstr(requests, "{\"x-max-priority\",9}"),
                      "lane arguments: %s", requests);
        ck_assert_msg(strstr(dead, "{\"x-queue-version\",2}") &&
                          strstr(dead, "{\"x-queue-mode\",\"lazy\"}"),
                      "dead queue arguments: %s", dead);
    }
    free(requests);
    free(dead);
    h_stack_teardown(s);
}
END_TEST

/* ---- refusals ---- */

/* Every refusal answers its status and error code, and none of them queues
 * anything: the backend serves exactly the requests that were accepted. */
START_TEST(test_errors)
{
    struct h_stack *s = h_stack_new();
    /* h_stack_set cannot take a bare number (json-c's tokener waits for
     * more digits), so the ingress object is given whole. */
    h_stack_set(s, "ingress",
                "{\"listen\":\"127.0.0.1:0\",\"threads\":2,\"max_body_bytes\":%d,"
                "\"status_retention_s\":86400,\"max_status_entries\":1000000,"
                "\"confirm_timeout_ms\":5000}",
                SMALL_BODY);
    h_stack_set(s, "routes.private",
                "{\"upstreams\":[\"%s\"],\"timeout_ms\":5000,\"max_attempts\":1,"
                "\"backoff_ms\":100,\"backoff_max_ms\":1000}",
                h_stack_backend_url(s));
    h_stack_start(s, 1);

    /* Two accepted requests, one per tenant, to look up across tenants; and
     * a chunked envelope within the cap, to show chunking alone is fine. */
    char *acme = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/acme\"}");
    char *globex = h_submit(s, H_OTHER_TOKEN, "{\"route\":\"echo\",\"path\":\"/globex\"}");
    char *chunked = expect_accepted(
        post_chunked(s, H_TOKEN, "{\"route\":\"echo\",\"body_text\":\"small and chunked\"}"),
        "chunked envelope within max_body_bytes");
    json_object_put(wait_succeeded(s, H_TOKEN, acme, "echo"));
    json_object_put(wait_succeeded(s, H_OTHER_TOKEN, globex, "echo"));
    struct json_object *st = wait_succeeded(s, H_TOKEN, chunked, "echo");
    ck_assert_str_eq(h_json_str(st, "result.body.body_text"), "small and chunked");
    json_object_put(st);
    long before = h_backend_requests(s);
    ck_assert_int_eq(before, 3);

    /* 400 invalid_json */
    expect_error(post_envelope(s, H_TOKEN, "{\"route\":"), 400, "invalid_json", "truncated JSON");
    expect_error(post_envelope(s, H_TOKEN, "route=echo"), 400, "invalid_json", "not JSON");
    expect_error(call(s, "POST", "/v1/requests", H_TOKEN, "application/json", NULL, "", 0), 400,
                 "invalid_json", "empty body");

    /* 400 invalid_request */
    expect_error(post_envelope(s, H_TOKEN, "{\"route\":\"echo\",\"priority\":10}"), 400,
                 "invalid_request", "priority 10");
    expect_error(post_envelope(s, H_TOKEN, "{\"route\":\"echo\",\"priority\":\"urgent\"}"), 400,
                 "invalid_request", "priority \"urgent\"");
    expect_error(post_envelope(s, H_TOKEN, "{\"method\":\"GET\",\"path\":\"/x\"}"), 400,
                 "invalid_request", "missing route");
    expect_error(post_envelope(s, H_TOKEN, "{\"route\":\"echo\",\"bogus\":1}"), 400,
                 "invalid_request", "unknown field");
    char url[512];
    snprintf(url, sizeof url, "%s/v1/routes/echo/x", h_stack_url(s));
    const char *bad_prio[] = {"Authorization: Bearer " H_TOKEN, "X-Priority: urgent", NULL};
    expect_error(h_request("POST", url, bad_prio, "{}", 2), 400, "invalid_request",
                 "transparent X-Priority: urgent");

    /* 401 unauthorized */
    expect_error(post_envelope(s, NULL, "{\"route\":\"echo\"}"), 401, "unauthorized", "no token");
    expect_error(post_envelope(s, "wrong-token", "{\"route\":\"echo\"}"), 401, "unauthorized",
                 "wrong token");
    expect_error(call(s, "POST", "/v1/routes/echo/x", "wrong-token", NULL, NULL, "{}", 2), 401,
                 "unauthorized", "transparent, wrong token");
    char path[128];
    snprintf(path, sizeof path, "/v1/requests/%s", acme);
    expect_error(call(s, "GET", path, NULL, NULL, NULL, NULL, 0), 401, "unauthorized",
                 "status without a token");

    /* 403 route_forbidden */
    expect_error(post_envelope(s, H_OTHER_TOKEN, "{\"route\":\"private\"}"), 403, "route_forbidden",
                 "other-token on route private (envelope)");
    expect_error(
        call(s, "POST", "/v1/routes/private/x", H_OTHER_TOKEN, "application/json", NULL, "{}", 2),
        403, "route_forbidden", "other-token on route private (transparent)");

    /* 404 unknown_route */
    expect_error(post_envelope(s, H_TOKEN, "{\"route\":\"nosuch\"}"), 404, "unknown_route",
                 "unknown route (envelope)");
    expect_error(call(s, "POST", "/v1/routes/nosuch/x", H_TOKEN, "application/json", NULL, "{}", 2),
                 404, "unknown_route", "unknown route (transparent)");

    /* 404 not_found: unknown ids, malformed ids, and ids of another tenant,
     * while each tenant still sees its own. */
    long http = 0;
    expect_error(call(s, "GET", "/v1/requests/0123456789ABCDEFGHIJKLMNOPQRSTUV", H_TOKEN, NULL,
                      NULL, NULL, 0),
                 404, "not_found", "random valid-looking id");
    char twisted[40];
    snprintf(twisted, sizeof twisted, "%s", acme);
    twisted[31] = twisted[31] == 'a' ? 'b' : 'a';
    snprintf(path, sizeof path, "/v1/requests/%s", twisted);
    expect_error(call(s, "GET", path, H_TOKEN, NULL, NULL, NULL, 0), 404, "not_found",
                 "a real id with its last character changed");
    expect_error(call(s, "GET", "/v1/requests/not-an-id", H_TOKEN, NULL, NULL, NULL, 0), 404,
                 "not_found", "malformed id");
    expect_error(call(s, "GET", "/v1/requests/0123456789ABCDEFGHIJKLMNOPQRST!!", H_TOKEN, NULL,
                      NULL, NULL, 0),
                 404, "not_found", "id with characters outside the alphabet");
    snprintf(path, sizeof path, "/v1/requests/%sX", acme);
    expect_error(call(s, "GET", path, H_TOKEN, NULL, NULL, NULL, 0), 404, "not_found",
                 "a real id with one character too many");
    snprintf(path, sizeof path, "/v1/requests/%s", acme);
    expect_error(call(s, "GET", path, H_OTHER_TOKEN, NULL, NULL, NULL, 0), 404, "not_found",
                 "acme's id asked by globex");
    snprintf(path, sizeof path, "/v1/requests/%s", globex);
    expect_error(call(s, "GET", path, H_TOKEN, NULL, NULL, NULL, 0), 404, "not_found",
                 "globex's id asked by acme");
    st = h_get_status(s, H_OTHER_TOKEN, globex, &http);
    ck_assert_int_eq(http, 200);
    ck_assert_str_eq(h_json_str(st, "id"), globex);
    json_object_put(st);

    /* 405 method_not_allowed */
    expect_error(call(s, "DELETE", "/v1/requests", H_TOKEN, NULL, NULL, NULL, 0), 405,
                 "method_not_allowed", "DELETE /v1/requests");
    expect_error(call(s, "GET", "/v1/requests", H_TOKEN, NULL, NULL, NULL, 0), 405,
                 "method_not_allowed", "GET /v1/requests");
    snprintf(path, sizeof path, "/v1/requests/%s", acme);
    expect_error(call(s, "DELETE", path, H_TOKEN, NULL, NULL, NULL, 0), 405, "method_not_allowed",
                 "DELETE /v1/requests/<id>");

    /* 413 body_too_large: by Content-Length before reading, and by counting
     * a chunked body that declares no length. */
    char *big = envelope_with_text(2 * SMALL_BODY);
    expect_error(post_envelope(s, H_TOKEN, big), 413, "body_too_large",
                 "Content-Length beyond max_body_bytes");
    expect_error(
        call(s, "POST", "/v1/routes/echo/x", H_TOKEN, "application/json", NULL, big, strlen(big)),
        413, "body_too_large", "transparent, Content-Length beyond max_body_bytes");
    expect_error(post_chunked(s, H_TOKEN, big), 413, "body_too_large",
                 "chunked body beyond max_body_bytes");
    free(big);
    big = envelope_with_text(SMALL_BODY + 1);
    expect_error(post_chunked(s, H_TOKEN, big), 413, "body_too_large",
                 "chunked body one byte beyond max_body_bytes");
    free(big);

    /* 415 unsupported_media_type */
    expect_error(call(s, "POST", "/v1/requests", H_TOKEN, "text/plain", NULL,
                      "{\"route\":\"echo\"}", strlen("{\"route\":\"echo\"}")),
                 415, "unsupported_media_type", "text/plain envelope");

    /* Nothing refused reached the backend: a sentinel submitted after them
     * all is the only new request it serves. */
    char *sentinel = h_submit(s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/sentinel\"}");
    json_object_put(wait_succeeded(s, H_TOKEN, sentinel, "echo"));
    h_sleep_ms(300);
    ck_assert_int_eq(h_backend_requests(s), before + 1);

    free(sentinel);
    free(acme);
    free(globex);
    free(chunked);
    h_stack_teardown(s);
}
END_TEST

/* ---- what the message format can carry ---- */

/* Seven inputs of the transparent form that the ingress used to answer 202
 * although the worker could not decode the message they made, so they stayed
 * "queued" forever. Each is now either refused with a 400 naming the field,
 * or accepted and delivered as sent. */
START_TEST(test_transparent_inputs_decodable)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    long before = h_backend_requests(s);

    char *key = long_text('k', 256), hdr[512];
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", key);
    expect_refused(
        call(s, "POST", "/v1/routes/echo/idem", H_TOKEN, "application/json", hdr, "{}", 2),
        "Idempotency-Key", "a 256-byte Idempotency-Key");
    free(key);
    expect_refused(call(s, "POST", "/v1/routes/echo/idem", H_TOKEN, "application/json",
                        "Idempotency-Key: caf\xc3\xa9", "{}", 2),
                   "Idempotency-Key", "a non-ASCII Idempotency-Key");
    expect_refused(raw_submit(s, "POST", "/v1/routes/echo/a#b", NULL), "path",
                   "a raw '#' in the path");
    char *target = long_text('p', 9001);
    memcpy(target, "/v1/routes/echo/", 16);
    expect_refused(call(s, "POST", target, H_TOKEN, "application/json", NULL, "{}", 2), "path",
                   "a path of 9,000 bytes");
    memcpy(target, "/v1/routes/echo/q?", 18);
    expect_refused(call(s, "POST", target, H_TOKEN, "application/json", NULL, "{}", 2), "query",
                   "a query of 9,000 bytes");
    free(target);

    /* HTTP methods are tokens (RFC 9110): any token of up to 32 characters
     * reaches the backend as sent. */
    static const char *const methods[] = {"ABCDEFGHIJKLMNOPQRSTU", "M-SEARCH"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char *id = expect_accepted(call(s, methods[i], "/v1/routes/echo/method", H_TOKEN,
                                        "application/json", NULL, "{}", 2),
                                   methods[i]);
        struct json_object *st = wait_succeeded(s, H_TOKEN, id, "echo");
        ck_assert_str_eq(h_json_str(st, "result.body.method"), methods[i]);
        ck_assert_msg(access_log_has(s, methods[i], "/method"), "the backend saw no %s /method",
                      methods[i]);
        json_object_put(st);
        free(id);
    }
    expect_refused(call(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG", "/v1/routes/echo/m", H_TOKEN,
                        "application/json", NULL, "{}", 2),
                   "method", "a 33-character method");
    ck_assert_int_eq(h_backend_requests(s), before + 2);
    h_stack_teardown(s);
}
END_TEST

#define GOOD_CLIENTS 8
#define BAD_ROUNDS 10

struct good_client {
    struct h_stack *s;
    volatile bool *stop;
    int sent, accepted;
    long last_other; /* the last answer other than 202 */
};

/* good_client submits small envelopes until told to stop (and at least 20). */
static void *good_client_run(void *arg)
{
    struct good_client *c = arg;
    while (!*c->stop || c->sent < 20) {
        struct h_resp *r = post_envelope(c->s, H_TOKEN, "{\"route\":\"echo\",\"path\":\"/good\"}");
        c->sent++;
        if (r->status == 202)
            c->accepted++;
        else
            c->last_other = r->status;
        h_resp_free(r);
    }
    return NULL;
}

/* An AMQP header table key and the content_type property are short strings
 * (at most 255 bytes), and a content header must fit in one frame. A request
 * that breaks either is refused with a 400, in both forms, and the clients
 * submitting meanwhile all get their 202: one client's request does not
 * drop the broker connection under everyone. */
START_TEST(test_amqp_limits)
{
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 1);
    volatile bool stop = false;
    struct good_client clients[GOOD_CLIENTS];
    pthread_t threads[GOOD_CLIENTS];
    for (int i = 0; i < GOOD_CLIENTS; i++) {
        clients[i] = (struct good_client){.s = s, .stop = &stop};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, good_client_run, &clients[i]), 0);
    }

    char *ctype = long_text('c', 300), *name = long_text('n', 256), hdr[512];
    memcpy(ctype, "text/", 5);
    char *env_ctype = NULL, *env_name = NULL, *env_big = NULL;
    ck_assert_int_gt(
        asprintf(&env_ctype, "{\"route\":\"echo\",\"headers\":{\"Content-Type\":\"%s\"}}", ctype),
        0);
    ck_assert_int_gt(asprintf(&env_name, "{\"route\":\"echo\",\"headers\":{\"%s\":\"v\"}}", name),
                     0);
    /* 20 headers of 8 KiB: each within the limits, together past a frame. */
    char *value = long_text('v', 8000);
    size_t cap = 20 * 8100 + 64, off = 0;
    env_big = malloc(cap);
    ck_assert_ptr_nonnull(env_big);
    off += (size_t)snprintf(env_big, cap, "{\"route\":\"echo\",\"headers\":{");
    for (int i = 0; i < 20; i++)
        off +=
            (size_t)snprintf(env_big + off, cap - off, "%s\"X-%d\":\"%s\"", i ? "," : "", i, value);
    snprintf(env_big + off, cap - off, "}}");
    for (int round = 0; round < BAD_ROUNDS; round++) {
        expect_refused(call(s, "POST", "/v1/routes/echo/x", H_TOKEN, ctype, NULL, "{}", 2),
                       "Content-Type", "transparent, a 300-byte Content-Type");
        snprintf(hdr, sizeof hdr, "%s: v", name);
        expect_refused(call(s, "POST", "/v1/routes/echo/x", H_TOKEN, NULL, hdr, "{}", 2), "headers",
                       "transparent, a 256-byte header name");
        expect_refused(post_envelope(s, H_TOKEN, env_ctype), "headers.Content-Type",
                       "envelope, a 300-byte Content-Type");
        expect_refused(post_envelope(s, H_TOKEN, env_name), "headers",
                       "envelope, a 256-byte header name");
        expect_refused(post_envelope(s, H_TOKEN, env_big), "headers",
                       "envelope, 160 KB of headers");
    }
    stop = true;
    int sent = 0;
    for (int i = 0; i < GOOD_CLIENTS; i++) {
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
        ck_assert_msg(clients[i].accepted == clients[i].sent,
                      "client %d: %d of %d answered 202 (another answer: %ld)", i,
                      clients[i].accepted, clients[i].sent, clients[i].last_other);
        sent += clients[i].sent;
    }
    printf("test_amqp_limits: %d refused while %d clients had %d requests accepted\n",
           5 * BAD_ROUNDS, GOOD_CLIENTS, sent);
    free(ctype);
    free(name);
    free(value);
    free(env_ctype);
    free(env_name);
    free(env_big);
    h_stack_teardown(s);
}
END_TEST

/* A request's path stays under its route's base path: dot segments, raw or
 * percent-encoded, are refused in both forms, while names that merely hold
 * dots go through. The backend's access log shows nothing outside the base. */
START_TEST(test_dot_segments)
{
    static const char *const bad[] = {
        "/../outside",
        "/./../outside",
        "/%2e%2e/outside",
        "/%2E%2e/outside",
        "/.%2e/outside",
        "/%2e./outside",
        "/x/../../outside",
        "/x/%2E%2E/%2e%2e/outside",
        "/..",
        "/.",
        "/x/.",
        "/x/..",
        "/x/./y",
        "/%2e",
        "/..%2Foutside",
        "/..%5coutside",
    };
    static const char *const good[] = {"/inside/x", "/.well-known/y", "/a..b/..c/c../...",
                                       "/%2e%2e%2e/x"};
    struct h_stack *s = h_stack_new();
    h_stack_set(s, "routes.based",
                "{\"upstreams\":[\"%s/base\"],\"timeout_ms\":5000,\"max_attempts\":1,"
                "\"backoff_ms\":100,\"backoff_max_ms\":1000}",
                h_stack_backend_url(s));
    h_stack_start(s, 1);

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char env[256], target[256];
        snprintf(env, sizeof env, "{\"route\":\"based\",\"path\":\"%s\"}", bad[i]);
        expect_refused(post_envelope(s, H_TOKEN, env), "path", env);
        snprintf(target, sizeof target, "/v1/routes/based%s", bad[i]);
        expect_refused(raw_submit(s, "POST", target, NULL), "path", target);
    }
    /* The key of route echo alone cannot reach another path of its backend either. */
    expect_refused(post_envelope(s, H_OTHER_TOKEN, "{\"route\":\"echo\",\"path\":\"/../bad/x\"}"),
                   "path", "other-token, /../bad/x through echo");

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char env[256], target[256], want[256];
        snprintf(env, sizeof env, "{\"route\":\"based\",\"path\":\"%s\"}", good[i]);
        char *id = expect_accepted(post_envelope(s, H_TOKEN, env), env);
        json_object_put(wait_succeeded(s, H_TOKEN, id, "based"));
        free(id);
        snprintf(target, sizeof target, "/v1/routes/based%s", good[i]);
        id = expect_accepted(raw_submit(s, "POST", target, NULL), target);
        json_object_put(wait_succeeded(s, H_TOKEN, id, "based"));
        free(id);
        snprintf(want, sizeof want, "/base%s", good[i]);
        ck_assert_msg(access_log_has(s, "POST", want), "the backend saw no POST %s", want);
    }

    char line[4096];
    FILE *f = h_backend_access_log(s);
    while (fgets(line, sizeof line, f)) {
        const char *path = strchr(strchr(line, ' ') + 1, ' ') + 1;
        ck_assert_msg(strncmp(path, "/base/", 6) == 0 || strncmp(path, "/_", 2) == 0,
                      "the backend was called outside /base: %s", line);
    }
    fclose(f);
    h_stack_teardown(s);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_envelope_round_trip);
    tcase_add_test(tc, test_transparent_round_trip);
    tcase_add_test(tc, test_priority_order);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    /* What the accept path refuses so that everything it accepts is delivered. */
    tc = tcase_create("accept");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_transparent_inputs_decodable);
    tcase_add_test(tc, test_amqp_limits);
    tcase_add_test(tc, test_dot_segments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
