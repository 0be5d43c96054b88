/* wmetrics.c: the worker's metrics (see wmetrics.h). Names follow the
 * Prometheus conventions: base units (seconds), _total on counters. Per-route
 * series are laid out in arrays indexed like cfg->routes, plus one extra slot
 * for requests whose route is no longer configured. */
#include "wmetrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology.h"

enum outcome { OUT_SUCCEEDED, OUT_RETRYABLE, OUT_FAILED, N_OUT };
enum code_class { CODE_NONE, CODE_1XX, CODE_2XX, CODE_3XX, CODE_4XX, CODE_5XX, N_CODE };
enum final { FIN_SUCCEEDED, FIN_FAILED, FIN_DEAD, N_FIN };

static const char *const outcome_names[N_OUT] = {"succeeded", "retryable", "failed"};
static const char *const code_names[N_CODE] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const final_names[N_FIN] = {"succeeded", "failed", "dead"};

/* possible says which (outcome, code) pairs results.c can produce, so that
 * only those are declared: succeeded is 2xx; retryable is a transport error,
 * 408, 429 or 5xx; failed is a configuration error or another answer. */
static const bool possible[N_OUT][N_CODE] = {
    [OUT_SUCCEEDED] = {[CODE_2XX] = true},
    [OUT_RETRYABLE] = {[CODE_NONE] = true, [CODE_4XX] = true, [CODE_5XX] = true},
    [OUT_FAILED] = {[CODE_NONE] = true, [CODE_1XX] = true, [CODE_3XX] = true, [CODE_4XX] = true},
};

/* Backend latency from 1 ms to 30 s (route timeouts are 1..600 s, default 30). */
static const double seconds_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10,   30};
/* max_attempts is 1..100, default 4. */
static const double attempts_bounds[] = {1, 2, 3, 4, 5, 7, 10, 15, 20, 50, 100};
static const double batch_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
#define N_BOUNDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define UNKNOWN_ROUTE "(unknown)" /* not a valid route name, so it cannot collide */

#define H_CALLS                                                                                    \
    "Backend calls by route, outcome (succeeded, retryable, failed) and HTTP status class "        \
    "(code=\"none\" when no complete answer came: connection error, timeout)."
#define H_SECONDS "Backend call duration by route, in seconds (connect, send, whole answer)."
#define H_FINISHED                                                                                 \
    "Requests finished, by route and final state (route=\"" UNKNOWN_ROUTE "\": a route "           \
    "this worker does not know)."
#define H_ATTEMPTS "Backend calls made per finished request, by route."
#define H_RETRIES "Retries scheduled, by where they wait."
#define H_QUEUE_MESSAGES                                                                           \
    "Messages ready in the queue (a route's lane, or dead) at the last poll (every 5 s); every "   \
    "worker reports it."
#define H_QUEUE_CONSUMERS                                                                          \
    "Consumers of the queue at the last poll (every 5 s); on an unlimited route's lane, the "      \
    "connected workers; a limited route's lane (lane-sac.*) has one active among them."
#define H_LAG                                                                                      \
    "Consumer lag: now minus the creation time of the most recently delivered request "            \
    "(first attempts only), in whole seconds. AMQP 0.9.1 cannot peek at a queue's head, but "      \
    "a FIFO queue delivers its head next, so this is the age of the oldest waiting message "       \
    "as it leaves the queue (higher priorities overtake). 0 when every lane was empty at the "     \
    "last poll."
#define H_IN_FLIGHT_ROUTE "Backend calls of the route in progress in this worker."
#define H_WAITING                                                                                  \
    "Requests this worker holds for the route until its rate, max_in_flight or breakers let "      \
    "them start."
#define H_RATE                                                                                     \
    "The route's rate limit in calls per second (0: none): configured, and effective (lowered "    \
    "while the backend pushes back with 429 or 503)."
#define H_MAX_IN_FLIGHT "The route's max_in_flight (0: none)."
#define H_BREAKER "Circuit breaker of the upstream: 0 closed, 1 open, 2 half-open."
#define H_OPENED "Times the upstream's circuit breaker opened in this worker."

struct upstream_metrics {
    struct metric *state, *opened;
    long opened_seen; /* the breaker's count already added to opened */
};

struct route_metrics {
    struct metric *calls[N_OUT][N_CODE]; /* NULL where !possible */
    struct metric *seconds;
    struct metric *attempts;
    struct metric *finished[N_FIN];
    struct metric *in_flight, *waiting, *rate_configured, *rate_effective, *max_in_flight;
    struct upstream_metrics *ups;
};

/* A polled queue: route i's lane, or the dead queue at cfg->n_routes. */
struct queue_metrics {
    struct metric *messages, *consumers;
    bool empty;
};

struct wmetrics {
    const struct cfg *cfg;
    struct route_metrics *routes; /* cfg->n_routes + 1: the last is UNKNOWN_ROUTE */
    struct metric *retries_held, *retries_queued;
    struct metric *batch_size, *in_flight, *held, *connected, *malformed, *lag;
    struct queue_metrics *queues; /* cfg->n_routes + 1 */
};

/* declare_route declares the series of one route; known is false for the
 * unknown-route slot, which only counts finished requests. */
static int declare_route(struct route_metrics *r, struct metrics *m, const char *name, bool known)
{
    char l[160];
    bool ok = true;
    for (int s = 0; s < N_FIN; s++) {
        snprintf(l, sizeof l, "route=\"%s\",state=\"%s\"", name, final_names[s]);
        ok = ok &&
             (r->finished[s] = metrics_counter(m, "sluice_worker_requests_total", H_FINISHED, l));
    }
    if (!known) return ok ? 0 : -1;
    for (int o = 0; o < N_OUT; o++)
        for (int c = 0; c < N_CODE; c++) {
            if (!possible[o][c]) continue;
            snprintf(l, sizeof l, "route=\"%s\",outcome=\"%s\",code=\"%s\"", name, outcome_names[o],
                     code_names[c]);
            ok = ok && (r->calls[o][c] =
                            metrics_counter(m, "sluice_worker_backend_calls_total", H_CALLS, l));
        }
    snprintf(l, sizeof l, "route=\"%s\"", name);
    ok = ok && (r->seconds = metrics_histogram(m, "sluice_worker_backend_seconds", H_SECONDS, l,
                                               seconds_bounds, N_BOUNDS(seconds_bounds)));
    ok = ok && (r->attempts = metrics_histogram(m, "sluice_worker_attempts", H_ATTEMPTS, l,
                                                attempts_bounds, N_BOUNDS(attempts_bounds)));
    return ok ? 0 : -1;
}

/* declare_queue declares the gauges of queue name (the namespace left out). */
static int declare_queue(struct queue_metrics *q, struct metrics *m, const struct cfg *cfg,
                         const char *name)
{
    char l[200];
    size_t ns = strlen(cfg->namespace) + 1;
    snprintf(l, sizeof l, "queue=\"%s\"", strlen(name) > ns ? name + ns : name);
    q->messages = metrics_gauge(m, "sluice_queue_messages", H_QUEUE_MESSAGES, l);
    q->consumers = metrics_gauge(m, "sluice_queue_consumers", H_QUEUE_CONSUMERS, l);
    q->empty = true;
    return q->messages && q->consumers ? 0 : -1;
}

static int declare_queues(struct wmetrics *w, struct metrics *m)
{
    const struct cfg *cfg = w->cfg;
    char name[TOPO_NAME_MAX];
    w->queues = calloc(cfg->n_routes + 1, sizeof(*w->queues));
    if (!w->queues) return -1;
    for (size_t i = 0; i <= cfg->n_routes; i++) {
        if (i < cfg->n_routes)
            topo_lane_name(cfg, &cfg->routes[i], name, sizeof name);
        else
            topo_name(cfg, TOPO_DEAD, name, sizeof name);
        if (declare_queue(&w->queues[i], m, cfg, name) < 0) return -1;
    }
    w->lag = metrics_gauge(m, "sluice_worker_queue_lag_seconds", H_LAG, NULL);
    return w->lag ? 0 : -1;
}

/* upstream_label writes an upstream's base URL without its user
 * information, which may hold a password. */
static void upstream_label(const char *url, char *out, size_t len)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (at && (!slash || at < slash))
        snprintf(out, len, "%.*s%s", (int)(host - url), url, at + 1);
    else
        snprintf(out, len, "%s", url);
    for (char *p = out; *p; p++)
        if (*p == '"' || *p == '\\' || *p == '\n') *p = '_'; /* label values stay quoted */
}

/* declare_shaping declares a route's shaping gauges and its upstreams' breakers. */
static int declare_shaping(struct route_metrics *r, struct metrics *m, const struct cfg_route *cr)
{
    char l[600], up[400];
    snprintf(l, sizeof l, "route=\"%s\"", cr->name);
    r->in_flight = metrics_gauge(m, "sluice_worker_route_in_flight", H_IN_FLIGHT_ROUTE, l);
    r->waiting = metrics_gauge(m, "sluice_worker_route_waiting", H_WAITING, l);
    r->max_in_flight = metrics_gauge(m, "sluice_worker_route_max_in_flight", H_MAX_IN_FLIGHT, l);
    snprintf(l, sizeof l, "route=\"%s\",kind=\"configured\"", cr->name);
    r->rate_configured = metrics_gauge(m, "sluice_worker_route_rate_per_second", H_RATE, l);
    snprintf(l, sizeof l, "route=\"%s\",kind=\"effective\"", cr->name);
    r->rate_effective = metrics_gauge(m, "sluice_worker_route_rate_per_second", H_RATE, l);
    r->ups = calloc(cr->n_upstreams, sizeof(*r->ups));
    if (!r->in_flight || !r->waiting || !r->max_in_flight || !r->rate_configured ||
        !r->rate_effective || !r->ups)
        return -1;
    metric_set(r->max_in_flight, cr->max_in_flight);
    metric_set_float(r->rate_configured, cr->rate_per_s);
    metric_set_float(r->rate_effective, cr->rate_per_s);
    for (size_t u = 0; u < cr->n_upstreams; u++) {
        upstream_label(cr->upstreams[u], up, sizeof up);
        snprintf(l, sizeof l, "route=\"%s\",upstream=\"%s\"", cr->name, up);
        r->ups[u].state = metrics_gauge(m, "sluice_worker_breaker_state", H_BREAKER, l);
        r->ups[u].opened = metrics_counter(m, "sluice_worker_breaker_opened_total", H_OPENED, l);
        if (!r->ups[u].state || !r->ups[u].opened) return -1;
    }
    return 0;
}

static int declare_worker(struct wmetrics *w, struct metrics *m)
{
    w->retries_held =
        metrics_counter(m, "sluice_worker_retries_total", H_RETRIES, "where=\"worker\"");
    w->retries_queued =
        metrics_counter(m, "sluice_worker_retries_total", H_RETRIES, "where=\"queue\"");
    w->batch_size =
        metrics_histogram(m, "sluice_worker_batch_size", "Requests per dispatched batch.", NULL,
                          batch_bounds, N_BOUNDS(batch_bounds));
    w->in_flight = metrics_gauge(m, "sluice_worker_in_flight", "Backend calls in progress.", NULL);
    w->held =
        metrics_gauge(m, "sluice_worker_held_retries", "Retries waiting in this worker.", NULL);
    w->connected =
        metrics_gauge(m, "sluice_worker_broker_connected", "1 when connected to the broker.", NULL);
    w->malformed = metrics_counter(m, "sluice_worker_malformed_total",
                                   "Messages that were not sluice requests (dead-lettered).", NULL);
    return w->retries_held && w->retries_queued && w->batch_size && w->in_flight && w->held &&
                   w->connected && w->malformed
               ? 0
               : -1;
}

struct wmetrics *wmetrics_new(const struct cfg *cfg, struct metrics *m)
{
    struct wmetrics *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->cfg = cfg;
    w->routes = calloc(cfg->n_routes + 1, sizeof(*w->routes));
    if (!w->routes) goto err;
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (declare_route(&w->routes[i], m, cfg->routes[i].name, true) < 0 ||
            declare_shaping(&w->routes[i], m, &cfg->routes[i]) < 0)
            goto err;
    if (declare_route(&w->routes[cfg->n_routes], m, UNKNOWN_ROUTE, false) < 0 ||
        declare_worker(w, m) < 0 || declare_queues(w, m) < 0)
        goto err;
    return w;
err:
    wmetrics_free(w); /* what was declared stays in (and is freed with) the registry */
    return NULL;
}

void wmetrics_free(struct wmetrics *w)
{
    if (!w) return;
    for (size_t i = 0; w->routes && i < w->cfg->n_routes; i++)
        free(w->routes[i].ups);
    free(w->routes);
    free(w->queues);
    free(w);
}

static struct route_metrics *route_of(struct wmetrics *w, const struct job *job)
{
    size_t i = job->route ? (size_t)(job->route - w->cfg->routes) : w->cfg->n_routes;
    return &w->routes[i];
}

/* code_of is the class of a complete HTTP answer; a status past 599 is
 * counted as 5xx, since results.c retries it like one. */
static enum code_class code_of(const struct job *job)
{
    long s = job->http_status;
    if (job->curl_code != CURLE_OK || s < 100) return CODE_NONE;
    return s >= 600 ? CODE_5XX : (enum code_class)(s / 100);
}

void wmetrics_call(struct wmetrics *w, const struct job *job)
{
    struct route_metrics *r = route_of(w, job);
    enum outcome o = job->state == ST_SUCCEEDED ? OUT_SUCCEEDED
                     : job->state == ST_FAILED  ? OUT_FAILED
                                                : OUT_RETRYABLE;
    struct metric *calls = r->calls[o][code_of(job)];
    if (calls) metric_add(calls, 1);
    if (r->seconds) metric_observe(r->seconds, job->call_seconds);
}

void wmetrics_final(struct wmetrics *w, const struct job *job)
{
    struct route_metrics *r = route_of(w, job);
    if (job->state == ST_SUCCEEDED)
        metric_add(r->finished[FIN_SUCCEEDED], 1);
    else if (job->state == ST_FAILED)
        metric_add(r->finished[FIN_FAILED], 1);
    else if (job->state == ST_DEAD)
        metric_add(r->finished[FIN_DEAD], 1);
    if (r->attempts) metric_observe(r->attempts, (double)job->env.attempts);
}

void wmetrics_delivered(struct wmetrics *w, const struct job *job, int64_t now_ms)
{
    /* A retry's creation time is its first attempt's: its wait was on purpose. */
    if (job->env.attempts > 0 || job->env.created_ms <= 0) return;
    int64_t lag = now_ms - job->env.created_ms;
    metric_set(w->lag, lag > 0 ? lag / 1000 : 0);
}

void wmetrics_queue(struct wmetrics *w, size_t i, uint32_t messages, uint32_t consumers)
{
    struct queue_metrics *q = &w->queues[i];
    metric_set(q->messages, messages);
    metric_set(q->consumers, consumers);
    if (i == w->cfg->n_routes) return;
    q->empty = messages == 0;
    bool all_empty = true;
    for (size_t j = 0; j < w->cfg->n_routes && all_empty; j++)
        all_empty = w->queues[j].empty;
    if (all_empty) metric_set(w->lag, 0);
}

void wmetrics_shaping(struct wmetrics *w, struct shaper *s, const struct admit *a, int64_t now_us)
{
    for (size_t i = 0; i < w->cfg->n_routes; i++) {
        struct route_metrics *r = &w->routes[i];
        metric_set(r->in_flight, shaper_in_flight(s, i));
        metric_set(r->waiting, (int64_t)admit_waiting(a, i));
        metric_set_float(r->rate_effective, shaper_rate(s, i, now_us));
        for (size_t u = 0; u < w->cfg->routes[i].n_upstreams; u++) {
            struct upstream_metrics *up = &r->ups[u];
            long opened = shaper_breaker_opened(s, i, u);
            metric_set(up->state, (int64_t)shaper_breaker(s, i, u, now_us));
            if (opened > up->opened_seen)
                metric_add(up->opened, (uint64_t)(opened - up->opened_seen));
            up->opened_seen = opened;
        }
    }
}

void wmetrics_retry(struct wmetrics *w, bool queued)
{
    metric_add(queued ? w->retries_queued : w->retries_held, 1);
}

void wmetrics_batch(struct wmetrics *w, size_t n)
{
    metric_observe(w->batch_size, (double)n);
}

void wmetrics_in_flight(struct wmetrics *w, int64_t delta)
{
    metric_gauge_add(w->in_flight, delta);
}

void wmetrics_held(struct wmetrics *w, size_t n)
{
    metric_set(w->held, (int64_t)n);
}

void wmetrics_connected(struct wmetrics *w, bool up)
{
    metric_set(w->connected, up ? 1 : 0);
}

void wmetrics_malformed(struct wmetrics *w)
{
    metric_add(w->malformed, 1);
}
