/* wmetrics.c: the worker's metrics (see wmetrics.h). Names follow the
 * Prometheus conventions: base units (seconds), _total on counters. Per-route
 * series are laid out in arrays indexed like cfg->routes, plus one extra slot
 * for requests whose route is no longer configured. */
#include "wmetrics.h"

#include <stdio.h>
#include <stdlib.h>

enum outcome { OUT_SUCCEEDED, OUT_RETRYABLE, OUT_FAILED, N_OUT };
enum code_class { CODE_NONE, CODE_1XX, CODE_2XX, CODE_3XX, CODE_4XX, CODE_5XX, N_CODE };
enum final { FIN_SUCCEEDED, FIN_FAILED, FIN_DEAD, N_FIN };

static const char *const outcome_names[N_OUT] = {"succeeded", "retryable", "failed"};
static const char *const code_names[N_CODE] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const final_names[N_FIN] = {"succeeded", "failed", "dead"};
static const char *const queue_names[WM_N_QUEUES] = {"requests", "dead"};

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
    "Messages ready in the queue at the last poll (every 5 s); every worker reports it."
#define H_QUEUE_CONSUMERS                                                                          \
    "Consumers of the queue at the last poll (every 5 s); on requests this is the number of "      \
    "connected workers."
#define H_LAG                                                                                      \
    "Consumer lag: now minus the creation time of the most recently delivered request "            \
    "(first attempts only), in whole seconds. AMQP 0.9.1 cannot peek at a queue's head, but "      \
    "a FIFO queue delivers its head next, so this is the age of the oldest waiting message "       \
    "as it leaves the queue (higher priorities overtake). 0 when the requests queue was "          \
    "empty at the last poll."

struct route_metrics {
    struct metric *calls[N_OUT][N_CODE]; /* NULL where !possible */
    struct metric *seconds;
    struct metric *attempts;
    struct metric *finished[N_FIN];
};

struct wmetrics {
    const struct cfg *cfg;
    struct route_metrics *routes; /* cfg->n_routes + 1: the last is UNKNOWN_ROUTE */
    struct metric *retries_held, *retries_queued;
    struct metric *batch_size, *in_flight, *held, *connected, *malformed, *lag;
    struct metric *queue_messages[WM_N_QUEUES], *queue_consumers[WM_N_QUEUES];
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

static int declare_queues(struct wmetrics *w, struct metrics *m)
{
    char l[64];
    bool ok = true;
    for (int q = 0; q < WM_N_QUEUES; q++) {
        snprintf(l, sizeof l, "queue=\"%s\"", queue_names[q]);
        ok = ok && (w->queue_messages[q] =
                        metrics_gauge(m, "sluice_queue_messages", H_QUEUE_MESSAGES, l));
        ok = ok && (w->queue_consumers[q] =
                        metrics_gauge(m, "sluice_queue_consumers", H_QUEUE_CONSUMERS, l));
    }
    ok = ok && (w->lag = metrics_gauge(m, "sluice_worker_queue_lag_seconds", H_LAG, NULL));
    return ok ? 0 : -1;
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
        if (declare_route(&w->routes[i], m, cfg->routes[i].name, true) < 0) goto err;
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
    free(w->routes);
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

void wmetrics_queue(struct wmetrics *w, enum wm_queue q, uint32_t messages, uint32_t consumers)
{
    metric_set(w->queue_messages[q], messages);
    metric_set(w->queue_consumers[q], consumers);
    if (q == WM_REQUESTS && messages == 0) metric_set(w->lag, 0);
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
