/* wmetrics.h: the worker's Prometheus metrics. Every series is declared at
 * start, one per configured route and label value, so the event loop only
 * indexes arrays (by the route's position in cfg->routes) and bumps atomics.
 * The registry (common/metrics.h) owns the metrics; struct wmetrics only
 * holds pointers to them and belongs to the consumer's thread. */
#ifndef SLUICE_WMETRICS_H
#define SLUICE_WMETRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "admit.h"
#include "config.h"
#include "job.h"
#include "metrics.h"
#include "shaper.h"

struct wmetrics;

/* wmetrics_new declares every worker metric in m for the routes of cfg (both
 * must outlive it). NULL on ENOMEM. */
struct wmetrics *wmetrics_new(const struct cfg *cfg, struct metrics *m);
void wmetrics_free(struct wmetrics *w);

/* wmetrics_call counts a finished backend call of job, after results_settle:
 * its outcome, HTTP status class and duration (job->call_seconds). */
void wmetrics_call(struct wmetrics *w, const struct job *job);
/* wmetrics_final counts a request that reached its final state, with its attempts. */
void wmetrics_final(struct wmetrics *w, const struct job *job);
/* wmetrics_delivered updates the consumer lag from a delivered job;
 * now_ms is the real-time clock. */
void wmetrics_delivered(struct wmetrics *w, const struct job *job, int64_t now_ms);
/* wmetrics_queue records what the broker said about queue i: route i's lane,
 * or the dead queue when i is cfg->n_routes. When every lane was empty at
 * its last poll the lag is reset too: nothing waits, so the oldest message
 * is 0 s old. */
void wmetrics_queue(struct wmetrics *w, size_t i, uint32_t messages, uint32_t consumers);
/* wmetrics_shaping refreshes the per-route shaping gauges: calls in flight,
 * jobs waiting, configured and effective rates, breaker states. */
void wmetrics_shaping(struct wmetrics *w, struct shaper *s, const struct admit *a, int64_t now_us);

void wmetrics_retry(struct wmetrics *w, bool queued); /* held in the worker, or queued */
void wmetrics_batch(struct wmetrics *w, size_t n);
void wmetrics_in_flight(struct wmetrics *w, int64_t delta);
void wmetrics_held(struct wmetrics *w, size_t n);
void wmetrics_connected(struct wmetrics *w, bool up);
void wmetrics_malformed(struct wmetrics *w);

#endif
