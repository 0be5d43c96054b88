/* reporter.h: the worker's report of its live state (common/report.h),
 * published every REPORT_EVERY_MS to the fanout exchange <ns>.reports, from
 * which every ingress replica answers GET /v1/admin/routes for the fleet.
 *
 * It has a broker session of its own, without confirms, which the worker's
 * loop polls like the consumer's (reporter_fd, reporter_timeout_ms,
 * reporter_run): a report is fire and forget (not mandatory: no ingress
 * bound is no error), and nothing about it can break the connection the
 * worker's calls and acks ride on. The rate of a route is its calls
 * completed over the last REPORTER_WINDOW reports' time. Belongs to the
 * worker's thread. */
#ifndef SLUICE_REPORTER_H
#define SLUICE_REPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "shaper.h"

#define REPORTER_WINDOW 5

struct reporter;

/* reporter_new: cfg and shaper (read at each report) must outlive it. NULL on failure. */
struct reporter *reporter_new(const struct cfg *cfg, const struct shaper *shaper);
/* reporter_free publishes a last report ("bye": the ingress forgets this
 * worker at once) if connected, and frees. NULL is a no-op. */
void reporter_free(struct reporter *r);

/* reporter_call counts a completed call of route (failed: for the breaker). */
void reporter_call(struct reporter *r, size_t route, bool failed);

int reporter_fd(const struct reporter *r);
int reporter_timeout_ms(const struct reporter *r, int64_t now_ms, int max_ms);
/* reporter_run does the session's share of a loop turn, and publishes a
 * report when one is due. now_ms is the monotonic clock. */
void reporter_run(struct reporter *r, int64_t now_ms);

#endif
