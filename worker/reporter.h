/* reporter.h: the worker's report of its live state (common/report.h),
 * published every REPORT_EVERY_MS to the fanout exchange <ns>.reports, from
 * which every ingress replica answers GET /v1/admin/routes for the fleet.
 *
 * It publishes on the gate's broker session (gate_session: the claims
 * connection, without publisher confirms) with session_publish_transient
 * (untracked, not mandatory: no ingress bound is no error); a report may be
 * lost, the next replaces it. A session of its own was tried and dropped:
 * its reconnects, which block the worker's loop up to the connect and
 * declare timeouts, slowed a cluster failover enough to lose track of
 * requests (itest_cluster). The consumer's session was tried and dropped
 * too: with reports on its confirm channel a chaos soak lost the status of
 * 44 requests after a node kill (called once, acked, no final event); with
 * the same seed and no reports there, none (itest_soak, SOAK_SEED=941275). The rate of a route is
 * its calls completed over the last REPORTER_WINDOW reports' time. Belongs to the worker's thread.
 */
#ifndef SLUICE_REPORTER_H
#define SLUICE_REPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "session.h"
#include "shaper.h"

#define REPORTER_WINDOW 5

struct reporter;

/* reporter_new: cfg and shaper (read at each report) must outlive it. NULL on failure. */
struct reporter *reporter_new(const struct cfg *cfg, const struct shaper *shaper);
void reporter_free(struct reporter *r);
/* reporter_bye publishes a last report ("bye": the ingress forgets this
 * worker at once) on s if it is up. */
void reporter_bye(struct reporter *r, struct session *s);

/* reporter_call counts a completed call of route (failed: for the breaker). */
void reporter_call(struct reporter *r, size_t route, bool failed);

/* reporter_timeout_ms is how long until the next report is due, at most max_ms. */
int reporter_timeout_ms(const struct reporter *r, int64_t now_ms, int max_ms);
/* reporter_run publishes a report on s when one is due. now_ms is the
 * monotonic clock. */
void reporter_run(struct reporter *r, struct session *s, int64_t now_ms);

#endif
