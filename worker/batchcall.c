/* batchcall.c: batch delivery, one POST for many requests (see batchcall.h). */
#include "batchcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "backoff.h"
#include "base64.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "outbound.h"

#define ANSWER_MAX ((size_t)256 << 20)

struct batchcall {
    struct job **jobs; /* borrowed */
    size_t n;
    const struct cfg *cfg;
    struct batchcall_hooks hooks;
    CURL *easy;
    struct curl_slist *headers;
    struct buf body, answer;
    long retry_after_ms;
    char id[ID_LEN + 1];
    char trace_id[TRACE_ID_HEX + 1], span_id[TRACE_SPAN_HEX + 1];
    char error[CURL_ERROR_SIZE];
};

/* ---- the request document ---- */

static bool names_json(const char *content_type)
{
    return content_type && strstr(content_type, "json") != NULL;
}

static int append_body(struct buf *b, const struct envelope *e)
{
    const char *p = (const char *)e->body;
    size_t len = e->body_len;
    if (!len) return 0;
    if (names_json(e->content_type)) {
        struct json_object *o = json_parse(p, len, NULL, 0);
        if (o) {
            json_object_put(o);
            int rc = buf_appends(b, ",\"body\":");
            return rc ? rc : buf_append(b, p, len);
        }
    }
    if (json_utf8_valid(p, len)) {
        int rc = buf_appends(b, ",\"body_text\":");
        return rc ? rc : buf_append_json_string(b, p, len);
    }
    int rc = buf_appends(b, ",\"body_base64\":\"");
    if (rc == 0) rc = base64_append(b, p, len);
    return rc ? rc : buf_appends(b, "\"");
}

/* append_headers writes "Name: value" lines as a JSON object; a header
 * that is not UTF-8 is left out, as in a status document. */
static int append_headers(struct buf *b, const struct curl_slist *l)
{
    int rc = buf_appends(b, ",\"headers\":{");
    bool first = true;
    for (; rc == 0 && l; l = l->next) {
        const char *colon = strchr(l->data, ':');
        if (!colon) continue;
        size_t nlen = (size_t)(colon - l->data);
        const char *v = colon[1] == ' ' ? colon + 2 : colon + 1;
        if (!json_utf8_valid(l->data, nlen) || !json_utf8_valid(v, strlen(v))) continue;
        if (!first) rc = buf_appends(b, ",");
        first = false;
        if (rc == 0) rc = buf_append_json_string(b, l->data, nlen);
        if (rc == 0) rc = buf_appends(b, ":");
        if (rc == 0) rc = buf_append_json_string(b, v, strlen(v));
    }
    return rc ? rc : buf_appends(b, "}");
}

static int append_item(struct buf *b, struct job *job, int64_t now_s)
{
    const struct envelope *e = &job->env;
    struct trace t;
    const char *tracestate;
    struct curl_slist *h = NULL;
    outbound_trace(e, &t, &tracestate);
    memcpy(job->trace_id, t.trace_id, sizeof job->trace_id);
    struct outbound_call call = {.route = job->route,
                                 .headers = e->headers,
                                 .n_headers = e->n_headers,
                                 .content_type = e->content_type,
                                 .idempotency_key = e->id,
                                 .trace = &t,
                                 .tracestate = tracestate,
                                 .msg_id = e->id,
                                 .now_s = now_s,
                                 .no_signature = true};
    int rc = outbound_headers(&call, &h, job->span_id) < 0 ? -1 : 0;
    if (rc == 0) rc = buf_appendf(b, "{\"id\":\"%s\",\"method\":", e->id);
    if (rc == 0) rc = buf_append_json_string(b, e->method, strlen(e->method));
    if (rc == 0) rc = buf_appends(b, ",\"path\":");
    if (rc == 0) rc = buf_append_json_string(b, e->path, strlen(e->path));
    if (rc == 0) rc = buf_appends(b, ",\"query\":");
    if (rc == 0)
        rc = e->query ? buf_append_json_string(b, e->query, strlen(e->query))
                      : buf_appends(b, "null");
    if (rc == 0) rc = append_headers(b, h);
    if (rc == 0) rc = append_body(b, e);
    if (rc == 0) rc = buf_appends(b, "}");
    curl_slist_free_all(h);
    return rc;
}

int batchcall_request_body(struct buf *out, struct job **jobs, size_t n, int64_t now_s)
{
    int rc = buf_appends(out, "{\"requests\":[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i) rc = buf_appends(out, ",");
        if (rc == 0) rc = append_item(out, jobs[i], now_s);
    }
    if (rc == 0) rc = buf_appends(out, "]}");
    return rc ? -1 : 0;
}

/* ---- the answer ---- */

static void reset_outcome(struct job *job, size_t result_max)
{
    buf_free(&job->resp_body);
    buf_free(&job->resp_headers);
    buf_init(&job->resp_body, result_max);
    buf_init(&job->resp_headers, 64 * 1024);
    job->truncated = false;
    job->json_body = false;
    job->retry_after_ms = -1;
    job->http_status = 0;
    job->curl_code = CURLE_OK;
    job->curl_error[0] = '\0';
}

static void fail_item(struct job *job, CURLcode code, const char *why)
{
    job->http_status = 0;
    job->curl_code = code == CURLE_OK ? CURLE_RECV_ERROR : code;
    snprintf(job->curl_error, sizeof job->curl_error, "%s", why);
}

/* keep appends what fits of p (n bytes) to the job's answer body. */
static void keep(struct job *job, const void *p, size_t n)
{
    size_t room = job->resp_body.max - job->resp_body.len;
    if (n > room) job->truncated = true;
    if (room && buf_append(&job->resp_body, p, n < room ? n : room) < 0) job->truncated = true;
}

static void item_headers(struct job *job, struct json_object *headers)
{
    struct buf *h = &job->resp_headers;
    if (!json_object_is_type(headers, json_type_object)) return;
    json_object_object_foreach(headers, name, v)
    {
        if (!json_object_is_type(v, json_type_string)) continue;
        const char *value = json_object_get_string(v);
        if (strcasecmp(name, "Retry-After") == 0)
            job->retry_after_ms = backoff_parse_retry_after(value, time(NULL));
        int rc = h->len ? buf_appends(h, ",") : 0;
        if (rc == 0) rc = buf_append_json_string(h, name, strlen(name));
        if (rc == 0) rc = buf_appends(h, ":");
        if (rc == 0) rc = buf_append_json_string(h, value, strlen(value));
        (void)rc; /* headers past the cap are dropped */
    }
}

/* item_apply sets job's outcome from its item; false when the item is not
 * one (then the job is failed as missing). */
static bool item_apply(struct job *job, struct json_object *item)
{
    struct json_object *status, *v;
    if (!json_object_object_get_ex(item, "status", &status) ||
        !json_object_is_type(status, json_type_int) || json_object_get_int(status) < 100 ||
        json_object_get_int(status) > 599)
        return false;
    job->http_status = json_object_get_int(status);
    if (json_object_object_get_ex(item, "headers", &v)) item_headers(job, v);
    if (json_object_object_get_ex(item, "body", &v)) {
        const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        job->json_body = true;
        keep(job, s, strlen(s));
    } else if (json_object_object_get_ex(item, "body_text", &v) &&
               json_object_is_type(v, json_type_string)) {
        keep(job, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    } else if (json_object_object_get_ex(item, "body_base64", &v) &&
               json_object_is_type(v, json_type_string)) {
        size_t n = (size_t)json_object_get_string_len(v), len = 0;
        unsigned char *raw = malloc(base64_decoded_max(n) + 1);
        if (raw && !base64_decode(json_object_get_string(v), n, raw, &len)) keep(job, raw, len);
        free(raw);
    }
    return true;
}

/* find returns the item of results whose "id" is id, or NULL. */
static struct json_object *find(struct json_object *results, const char *id)
{
    size_t n = json_object_array_length(results);
    for (size_t i = 0; i < n; i++) {
        struct json_object *item = json_object_array_get_idx(results, i), *v;
        if (json_object_is_type(item, json_type_object) &&
            json_object_object_get_ex(item, "id", &v) && json_object_is_type(v, json_type_string) &&
            strcmp(json_object_get_string(v), id) == 0)
            return item;
    }
    return NULL;
}

void batchcall_apply(struct job **jobs, size_t n, CURLcode code, long status, const char *body,
                     size_t len, size_t result_max)
{
    char why[CURL_ERROR_SIZE];
    struct json_object *doc = NULL, *results = NULL;
    if (code != CURLE_OK)
        snprintf(why, sizeof why, "the batch call failed: %s", curl_easy_strerror(code));
    else if (status < 200 || status > 299)
        snprintf(why, sizeof why, "the batch call answered %ld", status);
    else if (!(doc = json_parse(body ? body : "", len, NULL, 0)) ||
             !json_object_object_get_ex(doc, "results", &results) ||
             !json_object_is_type(results, json_type_array))
        snprintf(why, sizeof why, "the batch answer is not {\"results\":[...]}");
    for (size_t i = 0; i < n; i++) {
        struct job *job = jobs[i];
        reset_outcome(job, result_max);
        if (!results) {
            fail_item(job, code, why);
            continue;
        }
        struct json_object *item = find(results, job->env.id);
        if (!item || !item_apply(job, item)) {
            reset_outcome(job, result_max);
            fail_item(job, CURLE_OK,
                      item ? "its item in the batch answer is malformed"
                           : "missing from the batch answer");
        }
    }
    json_object_put(doc);
}

/* ---- the call ---- */

static void batchcall_free(struct batchcall *bc)
{
    if (!bc) return;
    if (bc->easy) curl_easy_cleanup(bc->easy);
    curl_slist_free_all(bc->headers);
    buf_free(&bc->body);
    buf_free(&bc->answer);
    free(bc->jobs);
    free(bc);
}

static size_t on_answer(char *data, size_t size, size_t nmemb, void *arg)
{
    struct batchcall *bc = arg;
    size_t n = size * nmemb;
    return buf_append(&bc->answer, data, n) == 0 ? n : 0; /* too big: the call fails */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct batchcall *bc = arg;
    size_t n = size * nmemb;
    char value[64];
    if (n > 12 && n < 12 + sizeof value && strncasecmp(data, "Retry-After:", 12) == 0) {
        size_t len = n - 12;
        /* The line ends in CRLF, which the parser refuses as trailing junk. */
        while (len && (data[12 + len - 1] == '\r' || data[12 + len - 1] == '\n'))
            len--;
        memcpy(value, data + 12, len);
        value[len] = '\0';
        bc->retry_after_ms = backoff_parse_retry_after(value, time(NULL));
    }
    return n;
}

static void on_drop(void *arg)
{
    batchcall_free(arg);
}

static void on_done(void *arg, CURL *e, CURLcode code)
{
    struct batchcall *bc = arg;
    long status = 0;
    curl_off_t us = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us);
    bool ok = code == CURLE_OK && status >= 200 && status < 300;
    log_at(ok ? LOG_DEBUG : LOG_INFO,
           "batch call %s of %zu requests (trace %s, span %s) %s %ld in %.3f s%s%s", bc->id, bc->n,
           bc->trace_id, bc->span_id, code == CURLE_OK ? "answered" : "failed", status,
           (double)us / 1e6, code == CURLE_OK ? "" : ": ",
           code == CURLE_OK ? "" : (bc->error[0] ? bc->error : curl_easy_strerror(code)));
    bc->hooks.call_over(bc->hooks.arg, bc->jobs, bc->n,
                        code != CURLE_OK && code != CURLE_URL_MALFORMAT &&
                            code != CURLE_UNSUPPORTED_PROTOCOL,
                        status, bc->retry_after_ms);
    batchcall_apply(bc->jobs, bc->n, code, status, bc->answer.data, bc->answer.len,
                    (size_t)bc->cfg->worker.result_max_bytes);
    for (size_t i = 0; i < bc->n; i++) {
        struct job *job = bc->jobs[i];
        job->call_seconds = (double)us / 1e6;
        bool item_ok = job->curl_code == CURLE_OK && job->http_status / 100 == 2;
        if (job->curl_code == CURLE_OK)
            log_at(item_ok ? LOG_DEBUG : LOG_INFO,
                   "call for request %s (attempt %d, trace %s, span %s) in batch call %s "
                   "answered %ld",
                   job->env.id, job->env.attempts + 1, job->trace_id, job->span_id, bc->id,
                   job->http_status);
        else
            log_info("call for request %s (attempt %d, trace %s, span %s) in batch call %s "
                     "failed: %s",
                     job->env.id, job->env.attempts + 1, job->trace_id, job->span_id, bc->id,
                     job->curl_error);
        bc->hooks.job_done(bc->hooks.arg, job);
    }
    batchcall_free(bc);
}

static int build(struct batchcall *bc, const struct cfg_route *r)
{
    struct trace t;
    int64_t now_s = (int64_t)time(NULL);
    if (id_new(bc->id, now_s * 1000) < 0 || trace_new(&t) < 0) return -1;
    memcpy(bc->trace_id, t.trace_id, sizeof bc->trace_id);
    if (batchcall_request_body(&bc->body, bc->jobs, bc->n, now_s) < 0) return -1;
    struct outbound_call call = {.route = r,
                                 .content_type = "application/json",
                                 .trace = &t,
                                 .msg_id = bc->id,
                                 .body = bc->body.data,
                                 .body_len = bc->body.len,
                                 .now_s = now_s};
    if (outbound_headers(&call, &bc->headers, bc->span_id) < 0) return -1;
    struct curl_slist *l = curl_slist_append(bc->headers, "Expect:");
    if (!l) return -1;
    bc->headers = l;
    CURL *e = bc->easy = curl_easy_init();
    if (!e) return -1;
    curl_easy_setopt(e, CURLOPT_URL, r->batch_url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, bc->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bc->body.len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, bc->body.data);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, bc);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, bc);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, bc->error);
    return 0;
}

int batchcall_start(struct dispatch *d, const struct cfg *cfg, struct job **jobs, size_t n,
                    const struct batchcall_hooks *hooks)
{
    struct batchcall *bc = calloc(1, sizeof *bc);
    if (!bc) return -1;
    bc->cfg = cfg;
    bc->hooks = *hooks;
    bc->n = n;
    bc->retry_after_ms = -1;
    buf_init(&bc->body, SIZE_MAX / 2);
    buf_init(&bc->answer, ANSWER_MAX);
    bc->jobs = malloc(n * sizeof *bc->jobs);
    if (!bc->jobs) goto err;
    memcpy(bc->jobs, jobs, n * sizeof *jobs);
    if (build(bc, jobs[0]->route) < 0) goto err;
    if (dispatch_add_call(d, bc->easy, on_done, on_drop, bc) < 0) goto err;
    return 0;
err:
    batchcall_free(bc);
    return -1;
}
