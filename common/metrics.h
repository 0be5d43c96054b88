/* metrics.h: a small Prometheus registry. Metrics are declared once at start
 * (before threads run), then updated lock-free with atomics from any thread and
 * rendered in the text exposition format. The registry owns every metric. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdint.h>

#include "buf.h"

struct metrics;
struct metric;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Declaring: name and help are string literals (not copied); labels is a
 * pre-rendered label set such as "code=\"400\"" (copied) or NULL. Several metrics may
 * share a name with different labels; they render under one HELP/TYPE. Return
 * NULL only on ENOMEM. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels);
/* bounds: n >= 0 ascending upper bounds (copied), +Inf is implicit; NULL also
 * when n < 0. */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, int n);

void metric_add(struct metric *c, uint64_t n); /* counters */
void metric_set(struct metric *g, int64_t v);  /* gauges */
/* metric_set_float makes g a gauge of fractional values (a rate) from now on. */
void metric_set_float(struct metric *g, double v);
void metric_gauge_add(struct metric *g, int64_t d);
void metric_observe(struct metric *h, double v); /* histograms */

/* metrics_render appends the exposition text; returns 0 or the buf error. */
__attribute__((warn_unused_result)) int metrics_render(struct metrics *m, struct buf *out);

#endif
