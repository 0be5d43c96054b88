/* deliver.c: callbacks and aggregated results (see deliver.h). */
#include "deliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "clock.h"
#include "envelope.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "netguard.h"
#include "outbound.h"
#include "outurl.h"
#include "results.h"
#include "retry.h"
#include "topology.h"

#define KIND_HEADER "x-sluice-delivery"
#define KIND_MAX 32
/* A results delivery's number of requests, for its log lines (the first
 * request's ID rides as the idempotency key). */
#define ITEMS_HEADER "x-sluice-delivery-items"
#define SUBJECT_MAX 96
#define ANSWER_MAX 4096 /* the answer is only logged */
#define TIME_LEN 64

struct deliver {
    const struct cfg *cfg;
    struct session *session;
    struct dispatch *dispatch;
    struct deliver_hooks hooks;
    char queue[TOPO_NAME_MAX], delay[TOPO_NAME_MAX];
    uint64_t rnd;
};

/* One delivery call in progress. */
struct call {
    struct deliver *dv;
    struct batch *b; /* the owner's, holding the placeholder job */
    struct envelope env;
    const struct cfg_route *route;
    char kind[KIND_MAX];
    char subject[SUBJECT_MAX]; /* whose outcome it carries, for the log lines */
    char items[24];            /* a results delivery's ITEMS_HEADER, or "" */
    CURL *easy;
    struct curl_slist *headers;
    char trace_id[TRACE_ID_HEX + 1], span_id[TRACE_SPAN_HEX + 1];
    char error[CURL_ERROR_SIZE];
    size_t answered;
    bool guarded; /* netguard refused the address: retrying will not help */
};

struct deliver *deliver_new(const struct cfg *cfg, struct session *session, struct dispatch *d,
                            const struct deliver_hooks *hooks)
{
    struct deliver *dv = calloc(1, sizeof *dv);
    if (!dv) return NULL;
    dv->cfg = cfg;
    dv->session = session;
    dv->dispatch = d;
    dv->hooks = *hooks;
    dv->rnd = (uint64_t)clock_mono_us() | 1;
    topo_name(cfg, TOPO_DELIVERIES, dv->queue, sizeof dv->queue);
    topo_name(cfg, TOPO_DELAY, dv->delay, sizeof dv->delay);
    return dv;
}

void deliver_free(struct deliver *dv)
{
    free(dv);
}

const char *deliver_queue(const struct deliver *dv)
{
    return dv->queue;
}

/* ---- the status document ---- */

static void format_time(int64_t ms, char out[TIME_LEN])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&t, &tm)) {
        snprintf(out, TIME_LEN, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int deliver_doc(struct buf *out, const struct job *job, int64_t now_ms)
{
    const struct envelope *e = &job->env;
    char created[TIME_LEN], done[TIME_LEN];
    format_time(e->created_ms, created);
    format_time(now_ms, done);
    int rc = buf_appendf(out, "{\"id\":\"%s\",\"route\":", e->id);
    if (!rc) rc = buf_append_json_string(out, e->route, strlen(e->route));
    if (!rc)
        rc = buf_appendf(out,
                         ",\"status\":\"%s\",\"attempts\":%d,\"created_at\":\"%s\","
                         "\"updated_at\":\"%s\",\"completed_at\":\"%s\"",
                         event_state_name(job->state), e->attempts, created, done, done);
    if (!rc) rc = buf_appends(out, ",\"result\":");
    if (!rc) rc = job->result_json ? buf_appends(out, job->result_json) : buf_appends(out, "null");
    if (!rc) rc = buf_appends(out, ",\"error\":");
    if (!rc) rc = job->error_json ? buf_appends(out, job->error_json) : buf_appends(out, "null");
    if (!rc && e->replays) rc = buf_appendf(out, ",\"replays\":%d", e->replays);
    return rc ? rc : buf_appends(out, "}");
}

/* ---- publishing delivery messages ---- */

/* add_header adds key = value to props' headers, with memory from pool. */
static int add_header(amqp_basic_properties_t *props, amqp_pool_t *pool, const char *key,
                      const char *value)
{
    amqp_table_t *t = &props->headers;
    amqp_table_entry_t *e = amqp_pool_alloc(pool, ((size_t)t->num_entries + 1) * sizeof(*e));
    if (!e) return -1;
    for (int i = 0; i < t->num_entries; i++)
        e[i] = t->entries[i];
    e[t->num_entries] = (amqp_table_entry_t){
        .key = amqp_cstring_bytes(key),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(value)}};
    t->entries = e;
    t->num_entries++;
    props->_flags |= AMQP_BASIC_HEADERS_FLAG;
    return 0;
}

/* publish sends env (a delivery message of kind, of items requests when
 * not NULL) to the deliveries queue, or after delay_ms (> 0) through the
 * delay exchange, tracked by b. */
static int publish(struct deliver *dv, const struct envelope *env, const char *kind,
                   const char *items, long delay_ms, struct batch *b)
{
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    char delay[24];
    const char *exchange = "";
    init_amqp_pool(&pool, 4096);
    int rc =
        envelope_to_amqp(env, &pool, &props) < 0 || add_header(&props, &pool, KIND_HEADER, kind) < 0
            ? SESSION_REFUSED
            : SESSION_OK;
    if (rc == SESSION_OK && items && add_header(&props, &pool, ITEMS_HEADER, items) < 0)
        rc = SESSION_REFUSED;
    if (rc == SESSION_OK && delay_ms > 0) {
        long ms = retry_queue_delay_ms(delay_ms);
        snprintf(delay, sizeof delay, "%ld", ms);
        exchange = dv->delay;
        if (session_declare_retry(dv->session, ms) < 0)
            rc = SESSION_DOWN;
        else if (add_header(&props, &pool, TOPO_DELAY_HEADER, delay) < 0)
            rc = SESSION_REFUSED;
    }
    if (rc == SESSION_OK)
        rc = session_publish(dv->session, exchange, dv->queue, &props, env->body, env->body_len, b);
    if (rc == SESSION_OK && b) b->unconfirmed++;
    /* Lost with the connection: the delivery must come back, never be acked. */
    if (rc == SESSION_DOWN && b) b->refused = true;
    empty_amqp_pool(&pool);
    return rc;
}

/* trace_headers gives env the trace of the request job: its traceparent
 * (the client's or the derived one) and the client's tracestate. */
static int trace_headers(struct envelope *env, const struct job *job)
{
    struct trace t;
    const char *state;
    char parent[TRACEPARENT_LEN + 8];
    outbound_trace(&job->env, &t, &state);
    snprintf(parent, sizeof parent, "00-%s-%s-%02x", t.trace_id, t.span_id, t.flags);
    return envelope_trace_headers(env, parent, state);
}

/* message fills env as a delivery for the request(s) of job (the first of
 * them for results): url, body (taken), and job's ID as the idempotency key,
 * which names the request in the delivery's log lines and, for a callback,
 * in its progress events. */
static int message(struct envelope *env, const struct job *job, const char *url, struct buf *body)
{
    envelope_init(env);
    env->route = strdup(job->env.route);
    env->method = strdup("POST");
    env->path = strdup("/");
    env->tenant = strdup(job->env.tenant);
    env->callback_url = strdup(url);
    env->content_type = strdup("application/json");
    env->idempotency_key = strdup(job->env.id);
    env->created_ms = job->env.created_ms;
    env->replays = job->env.replays;
    env->priority = ENV_PRIORITY_DEFAULT;
    if (!env->route || !env->method || !env->path || !env->tenant || !env->callback_url ||
        !env->content_type || !env->idempotency_key)
        return -1;
    if (id_new(env->id, clock_real_ms()) < 0 || trace_headers(env, job) < 0) return -1;
    size_t n = 0;
    env->body = (unsigned char *)buf_take(body, &n);
    env->body_len = n;
    return 0;
}

static bool final_job(const struct job *job)
{
    return job->next == NEXT_FINAL && ST_FINAL(job->state) && job->route;
}

static void send_message(struct deliver *dv, struct envelope *env, const char *kind,
                         const char *items, struct batch *b)
{
    int rc = publish(dv, env, kind, items, 0, b);
    if (rc == SESSION_REFUSED)
        log_error("delivery %s (%s) of route %s cannot be published: left out", env->id, kind,
                  env->route);
}

static void publish_callback(struct deliver *dv, struct job *job, struct batch *b, int64_t now)
{
    struct buf body;
    struct envelope env;
    char kind[KIND_MAX];
    buf_init(&body, SIZE_MAX / 2);
    envelope_init(&env);
    if (deliver_doc(&body, job, now) < 0 || message(&env, job, job->env.callback_url, &body) < 0) {
        session_break(dv->session, "out of memory building a callback");
        goto out;
    }
    snprintf(kind, sizeof kind, "callback %s", event_state_name(job->state));
    send_message(dv, &env, kind, NULL, b);
out:
    buf_free(&body);
    envelope_free(&env);
}

/* publish_results sends one results message for the final jobs of route r in b. */
static void publish_results(struct deliver *dv, const struct cfg_route *r, struct batch *b,
                            int64_t now)
{
    struct buf body;
    struct envelope env;
    const struct job *first = NULL;
    size_t n = 0;
    char items[24];
    buf_init(&body, SIZE_MAX / 2);
    envelope_init(&env);
    int rc = buf_appends(&body, "{\"results\":[");
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        const struct job *job = b->jobs[i];
        if (!final_job(job) || job->route != r) continue;
        if (first) rc = buf_appends(&body, ",");
        if (!first) first = job;
        n++;
        if (rc == 0) rc = deliver_doc(&body, job, now);
    }
    if (rc == 0) rc = buf_appends(&body, "]}");
    if (rc != 0 || message(&env, first, r->results_url, &body) < 0) {
        session_break(dv->session, "out of memory building a results delivery");
        goto out;
    }
    snprintf(items, sizeof items, "%zu", n);
    send_message(dv, &env, "results", items, b);
out:
    buf_free(&body);
    envelope_free(&env);
}

void deliver_publish(struct deliver *dv, struct batch *b)
{
    int64_t now = clock_real_ms();
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        if (final_job(job) && job->env.callback_url) publish_callback(dv, job, b, now);
    }
    /* One results message per route with results_url: at the first of its jobs. */
    for (size_t i = 0; i < b->n; i++) {
        const struct job *job = b->jobs[i];
        if (!final_job(job) || !job->route->results_url) continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = final_job(b->jobs[k]) && b->jobs[k]->route == job->route;
        if (!seen) publish_results(dv, job->route, b, now);
    }
}

/* ---- delivering ---- */

static void call_free(struct call *c)
{
    if (!c) return;
    if (c->easy) curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    envelope_free(&c->env);
    free(c);
}

static size_t on_answer(char *data, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    (void)data;
    c->answered += size * nmemb;
    return size * nmemb;
}

static bool is_callback(const struct call *c)
{
    return strncmp(c->kind, "callback ", 9) == 0;
}

/* progress publishes the callback's state after a call as its request's
 * events update (tracked by the call's batch). */
static void progress(struct call *c, int state)
{
    struct deliver *dv = c->dv;
    int st = event_state_parse(c->kind + 9);
    struct buf msg;
    if (st < 0 || !ST_FINAL(st) || !c->env.idempotency_key) return;
    struct status_update u = {.id = c->env.idempotency_key,
                              .state = (enum req_state)st,
                              .tenant = c->env.tenant,
                              .route = c->env.route,
                              .created_ms = c->env.created_ms,
                              .ts_ms = clock_real_ms(),
                              .replays = c->env.replays,
                              .callback = state,
                              .callback_attempts = c->env.attempts,
                              .callback_only = true};
    buf_init(&msg, SIZE_MAX / 2);
    int rc = event_begin(&msg);
    if (!rc) rc = event_append(&msg, &u);
    if (!rc) rc = event_end(&msg);
    if (rc) {
        session_break(dv->session, "out of memory building a callback event");
    } else {
        rc = session_publish_events(dv->session, &msg, NULL, c->b);
        if (rc == SESSION_OK) c->b->unconfirmed++;
        if (rc == SESSION_DOWN) c->b->refused = true;
    }
    buf_free(&msg);
}

/* outcome decides what a finished call means: 1 succeeded, 0 retry, -1
 * failed (a redirect is an answer like any other 3xx: failed, not followed). */
static int outcome(CURLcode code, long status, bool guarded)
{
    if (code == CURLE_OK && status >= 200 && status < 300) return 1;
    if (code == CURLE_OK) return status == 408 || status == 429 || status >= 500 ? 0 : -1;
    /* A refused address or an unusable URL will not change by retrying. */
    return guarded || code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL ? -1 : 0;
}

static void on_done(void *arg, CURL *e, CURLcode code)
{
    struct call *c = arg;
    struct deliver *dv = c->dv;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    c->env.attempts++;
    int verdict = outcome(code, status, c->guarded);
    int max = c->route ? c->route->max_attempts : 1;
    if (verdict == 0 && c->env.attempts >= max) verdict = -1;
    log_at(verdict > 0 ? LOG_DEBUG : LOG_INFO,
           "%s delivery %s for %s (call %d, trace %s, span %s) to %s %s %ld%s%s: %s", c->kind,
           c->env.id, c->subject, c->env.attempts, c->trace_id, c->span_id, c->env.callback_url,
           code == CURLE_OK ? "answered" : "failed", status, code == CURLE_OK ? "" : ": ",
           code == CURLE_OK ? "" : (c->error[0] ? c->error : curl_easy_strerror(code)),
           verdict > 0    ? "delivered"
           : verdict == 0 ? "retrying"
                          : "failed");
    if (verdict == 0) {
        long delay = backoff_delay_ms(c->route->backoff_ms, c->route->backoff_max_ms,
                                      c->env.attempts, backoff_rand(&dv->rnd));
        if (publish(dv, &c->env, c->kind, c->items[0] ? c->items : NULL, delay < 1 ? 1 : delay,
                    c->b) == SESSION_REFUSED)
            verdict = -1;
    }
    if (is_callback(c))
        progress(c, verdict > 0 ? CB_SUCCEEDED : verdict == 0 ? CB_PENDING : CB_FAILED);
    struct batch *b = c->b;
    call_free(c);
    dv->hooks.settled(dv->hooks.arg, b);
}

static void on_drop(void *arg)
{
    call_free(arg); /* the batch is the owner's, freed with its connection */
}

/* refused settles a delivery that cannot be called at all as failed. */
static void refused(struct call *c, const char *why)
{
    log_warn("%s delivery %s for %s (trace %s) to %s refused: %s", c->kind, c->env.id, c->subject,
             c->trace_id, c->env.callback_url ? c->env.callback_url : "(none)", why);
    c->env.attempts++;
    if (is_callback(c)) progress(c, CB_FAILED);
    struct deliver *dv = c->dv;
    struct batch *b = c->b;
    call_free(c);
    dv->hooks.settled(dv->hooks.arg, b);
}

static int build(struct call *c)
{
    struct trace t;
    const char *state;
    outbound_trace(&c->env, &t, &state);
    memcpy(c->trace_id, t.trace_id, sizeof c->trace_id);
    struct outbound_call oc = {.route = c->route,
                               .content_type = "application/json",
                               .trace = &t,
                               .tracestate = state,
                               .msg_id = c->env.id,
                               .body = c->env.body,
                               .body_len = c->env.body_len,
                               .now_s = (int64_t)time(NULL)};
    if (outbound_headers(&oc, &c->headers, c->span_id) < 0) return -1;
    struct curl_slist *l = curl_slist_append(c->headers, "Expect:");
    if (!l) return -1;
    c->headers = l;
    CURL *e = c->easy = curl_easy_init();
    if (!e || netguard_easy(e, c->route->allow_private_callbacks) < 0) return -1;
    if (!c->route->allow_private_callbacks &&
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &c->guarded) != CURLE_OK)
        return -1;
    curl_easy_setopt(e, CURLOPT_URL, c->env.callback_url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->route->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->route->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->env.body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->env.body ? (char *)c->env.body : "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->error);
    return 0;
}

/* read_header copies the string header name of props into out (cap
 * bytes with its NUL); false when it is missing or does not fit. */
static bool read_header(const amqp_basic_properties_t *props, const char *name, char *out,
                        size_t cap)
{
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG)) return false;
    for (int i = 0; i < props->headers.num_entries; i++) {
        const amqp_table_entry_t *en = &props->headers.entries[i];
        if (en->key.len != strlen(name) || memcmp(en->key.bytes, name, en->key.len)) continue;
        if (en->value.kind != AMQP_FIELD_KIND_UTF8 || en->value.value.bytes.len >= cap)
            return false;
        memcpy(out, en->value.value.bytes.bytes, en->value.value.bytes.len);
        out[en->value.value.bytes.len] = '\0';
        return true;
    }
    return false;
}

/* read_kind copies the x-sluice-delivery header of props into kind. */
static bool read_kind(const amqp_basic_properties_t *props, char kind[KIND_MAX])
{
    return read_header(props, KIND_HEADER, kind, KIND_MAX) &&
           (strcmp(kind, "results") == 0 || strncmp(kind, "callback ", 9) == 0);
}

/* name_subject writes whose outcome c carries: "request <id>", or for
 * results "<n> requests from <first id>" (messages of earlier releases carry
 * neither for results), and the call's trace ID, for every log line about
 * the delivery, a refusal before the call included. */
static void name_subject(struct call *c, const amqp_basic_properties_t *props)
{
    const char *id = c->env.idempotency_key, *state;
    struct trace t;
    outbound_trace(&c->env, &t, &state); /* the trace build() gives the call */
    memcpy(c->trace_id, t.trace_id, sizeof c->trace_id);
    if (!read_header(props, ITEMS_HEADER, c->items, sizeof c->items)) c->items[0] = '\0';
    if (is_callback(c))
        snprintf(c->subject, sizeof c->subject, "request %s", id ? id : "(unknown)");
    else if (id && c->items[0])
        snprintf(c->subject, sizeof c->subject, "%s requests from %s", c->items, id);
    else
        snprintf(c->subject, sizeof c->subject, "its requests");
}

int deliver_take(struct deliver *dv, const amqp_message_t *msg, struct batch *b)
{
    struct env_error err;
    struct call *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->dv = dv;
    c->b = b;
    envelope_init(&c->env);
    if (!read_kind(&msg->properties, c->kind) ||
        envelope_from_amqp(&c->env, &msg->properties, msg->body, &err) < 0 ||
        !c->env.callback_url) {
        log_error("dropping a message of the deliveries queue that is no delivery");
        call_free(c);
        return -1;
    }
    name_subject(c, &msg->properties);
    c->route = cfg_route_find(dv->cfg, c->env.route, strlen(c->env.route));
    const char *why = NULL;
    /* The allowlists may have changed since the message was made. */
    if (!c->route)
        why = "its route is no longer configured";
    else if (is_callback(c))
        why = outurl_refusal(c->env.callback_url, &c->route->callback_hosts);
    else if (!c->route->results_url || strcmp(c->route->results_url, c->env.callback_url) != 0)
        why = "the route's results_url changed";
    if (why) {
        refused(c, why);
        return 0;
    }
    if (build(c) < 0 || dispatch_add_call(dv->dispatch, c->easy, on_done, on_drop, c) < 0) {
        refused(c, "the call cannot be made (out of memory?)");
        return 0;
    }
    return 0;
}
