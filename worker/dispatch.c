/* dispatch.c: backend calls over the libcurl multi interface (see dispatch.h). */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "json.h"
#include "log.h"
#include "outbound.h"

/* other_call is a call dispatch_add_call added; few run at once. */
struct other_call {
    CURL *easy;
    void (*done)(void *arg, CURL *e, CURLcode code);
    void (*drop)(void *arg);
    void *arg;
    struct other_call *next;
};

struct dispatch {
    const struct cfg *cfg;
    CURLM *multi;
    struct other_call *others;
};

struct dispatch *dispatch_new(const struct cfg *cfg)
{
    struct dispatch *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->cfg = cfg;
    d->multi = curl_multi_init();
    if (!d->multi) {
        dispatch_free(d);
        return NULL;
    }
    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, cfg->worker.max_host_connections);
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, cfg->worker.max_host_connections * 4);
    return d;
}

void dispatch_free(struct dispatch *d)
{
    if (!d) return;
    dispatch_drop_calls(d);
    if (d->multi) curl_multi_cleanup(d->multi);
    free(d);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct job *job = arg;
    size_t n = size * nmemb;
    size_t room = job->resp_body.max - job->resp_body.len;
    if (n > room) job->truncated = true;
    /* A body past the cap is read and dropped, so the connection stays reusable. */
    if (room && buf_append(&job->resp_body, data, n < room ? n : room) < 0) job->truncated = true;
    return n;
}

/* on_header keeps each response header as a JSON member "name":"value". */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct job *job = arg;
    size_t n = size * nmemb;
    const char *colon = memchr(data, ':', n);
    if (!colon || colon == data) return n; /* the status line or the blank end */
    size_t name_len = (size_t)(colon - data);
    const char *v = colon + 1, *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t value_len = (size_t)(end - v);
    if (name_len == 12 && strncasecmp(data, "Content-Type", 12) == 0)
        job->json_body = memmem(v, value_len, "json", 4) != NULL;
    if (name_len == 11 && strncasecmp(data, "Retry-After", 11) == 0 && value_len < 64) {
        char value[64];
        memcpy(value, v, value_len);
        value[value_len] = '\0';
        job->retry_after_ms = backoff_parse_retry_after(value, time(NULL));
    }
    /* The headers end up in a JSON document: a header that is not UTF-8 is
     * left out rather than making the whole batch's events message invalid. */
    if (!json_utf8_valid(data, name_len) || !json_utf8_valid(v, value_len)) return n;
    struct buf *h = &job->resp_headers;
    int rc = (h->len ? buf_append(h, ",", 1) : 0);
    if (rc == 0) rc = buf_append_json_string(h, data, name_len);
    if (rc == 0) rc = buf_append(h, ":", 1);
    if (rc == 0) rc = buf_append_json_string(h, v, value_len);
    (void)rc; /* headers past the cap are dropped; the buffer resets itself */
    return n;
}

/* build_headers writes the call's headers (outbound.h) and notes its trace. */
static int build_headers(struct job *job)
{
    struct trace t;
    const char *tracestate;
    outbound_trace(&job->env, &t, &tracestate);
    memcpy(job->trace_id, t.trace_id, sizeof job->trace_id);
    struct outbound_call call = {
        .route = job->route,
        .headers = job->env.headers,
        .n_headers = job->env.n_headers,
        .content_type = job->env.content_type,
        .idempotency_key = job->env.id,
        .trace = &t,
        .tracestate = tracestate,
        .msg_id = job->env.id,
        .body = job->env.body,
        .body_len = job->env.body_len,
        .now_s = (int64_t)time(NULL),
    };
    if (outbound_headers(&call, &job->req_headers, job->span_id) < 0) return -1;
    /* No "Expect: 100-continue" round trip, and no Accept header curl invents. */
    struct curl_slist *l = curl_slist_append(job->req_headers, "Expect:");
    if (!l) return -1;
    job->req_headers = l;
    return 0;
}

static int build_url(struct job *job, char **url)
{
    const struct cfg_route *r = job->route;
    const char *base = r->upstreams[job->call.upstream % r->n_upstreams];
    const char *q = job->env.query;
    return asprintf(url, "%s%s%s%s", base, job->env.path, q ? "?" : "", q ? q : "") < 0 ? -1 : 0;
}

static void set_method(CURL *e, struct job *job)
{
    const char *m = job->env.method;
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(m, "GET") == 0 && job->env.body_len == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        /* POSTFIELDS sends the body for any method; CUSTOMREQUEST names it. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->env.body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, job->env.body ? (char *)job->env.body : "");
        if (strcmp(m, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
}

int dispatch_start(struct dispatch *d, struct job *job)
{
    char *url = NULL;
    int rc = -1;
    long timeout = job->route->timeout_ms;
    if (job->env.timeout_ms > 0 && job->env.timeout_ms < timeout) timeout = job->env.timeout_ms;
    buf_init(&job->resp_body, (size_t)d->cfg->worker.result_max_bytes);
    buf_init(&job->resp_headers, 64 * 1024);
    job->truncated = false;
    job->json_body = false;
    job->retry_after_ms = -1;
    job->http_status = 0;
    job->curl_error[0] = '\0';
    job->curl_code = CURLE_OUT_OF_MEMORY;
    job->easy = curl_easy_init();
    if (!job->easy || build_url(job, &url) < 0 || build_headers(job) < 0) goto out;
    CURL *e = job->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* The envelope refuses dot segments already; as is, curl could never
     * move a path above its route's base URL even if one slipped through. */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, job->req_headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, job);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job->curl_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, job);
    set_method(e, job);
    if (curl_multi_add_handle(d->multi, e) != CURLM_OK) goto out;
    rc = 0;
out:
    if (rc < 0) dispatch_abort(d, job);
    free(url);
    return rc;
}

static void release(struct job *job)
{
    curl_easy_cleanup(job->easy);
    job->easy = NULL;
    curl_slist_free_all(job->req_headers);
    job->req_headers = NULL;
}

void dispatch_abort(struct dispatch *d, struct job *job)
{
    if (!job->easy) return;
    curl_multi_remove_handle(d->multi, job->easy);
    release(job);
    buf_free(&job->resp_body);
    buf_free(&job->resp_headers);
}

int dispatch_wait(struct dispatch *d, struct curl_waitfd *extra, unsigned n, int timeout_ms)
{
    long curl_timeout = -1;
    curl_multi_timeout(d->multi, &curl_timeout);
    if (curl_timeout >= 0 && curl_timeout < timeout_ms) timeout_ms = (int)curl_timeout;
    for (unsigned i = 0; i < n; i++)
        extra[i].revents = 0;
    int ready = 0;
    return curl_multi_poll(d->multi, extra, n, timeout_ms, &ready) == CURLM_OK ? ready : -1;
}

/* log_call writes the line about a finished call, with its request's
 * tracking ID and trace, so that an operator can find the call in the
 * backend's traces: at debug level when it succeeded, else at info. */
static void log_call(const struct job *job)
{
    bool ok = job->curl_code == CURLE_OK && job->http_status >= 200 && job->http_status < 300;
    if (job->curl_code != CURLE_OK)
        log_at(ok ? LOG_DEBUG : LOG_INFO,
               "call for request %s (attempt %d, trace %s, span %s) failed: %s", job->env.id,
               job->env.attempts + 1, job->trace_id, job->span_id,
               job->curl_error[0] ? job->curl_error : curl_easy_strerror(job->curl_code));
    else
        log_at(ok ? LOG_DEBUG : LOG_INFO,
               "call for request %s (attempt %d, trace %s, span %s) answered %ld in %.3f s",
               job->env.id, job->env.attempts + 1, job->trace_id, job->span_id, job->http_status,
               job->call_seconds);
}

int dispatch_add_call(struct dispatch *d, CURL *easy,
                      void (*done)(void *arg, CURL *e, CURLcode code), void (*drop)(void *arg),
                      void *arg)
{
    struct other_call *o = calloc(1, sizeof *o);
    if (!o) return -1;
    *o = (struct other_call){
        .easy = easy, .done = done, .drop = drop, .arg = arg, .next = d->others};
    if (curl_multi_add_handle(d->multi, easy) != CURLM_OK) {
        free(o);
        return -1;
    }
    d->others = o;
    return 0;
}

/* take_other unlinks the other call of easy, or returns NULL when easy is a job's. */
static struct other_call *take_other(struct dispatch *d, CURL *easy)
{
    for (struct other_call **pp = &d->others; *pp; pp = &(*pp)->next)
        if ((*pp)->easy == easy) {
            struct other_call *o = *pp;
            *pp = o->next;
            return o;
        }
    return NULL;
}

void dispatch_drop_calls(struct dispatch *d)
{
    while (d->others) {
        struct other_call *o = d->others;
        d->others = o->next;
        curl_multi_remove_handle(d->multi, o->easy);
        o->drop(o->arg);
        free(o);
    }
}

void dispatch_run(struct dispatch *d, void (*done)(void *arg, struct job *job), void *arg)
{
    int still;
    curl_multi_perform(d->multi, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(d->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        struct other_call *o = take_other(d, msg->easy_handle);
        if (o) {
            CURL *e = msg->easy_handle;
            CURLcode code = msg->data.result;
            curl_multi_remove_handle(d->multi, e);
            o->done(o->arg, e, code);
            free(o);
            continue;
        }
        struct job *job = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&job);
        job->curl_code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &job->http_status);
        curl_off_t us = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME_T, &us);
        job->call_seconds = (double)us / 1e6;
        curl_multi_remove_handle(d->multi, msg->easy_handle);
        release(job);
        log_call(job);
        done(arg, job);
    }
}
