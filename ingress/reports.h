/* reports.h: the ingress's reader of the workers' reports (common/report.h)
 * into its view of the fleet (fleet.h), on a thread of its own with a broker
 * session of its own (common/session.h).
 *
 * On every connection it declares a queue of its own (exclusive,
 * auto-delete: the broker deletes it with the connection), bound to the
 * fanout exchange <ns>.reports, with x-message-ttl REPORT_STALE_MS and a
 * length limit, so that a replica that stalls or goes away leaves nothing
 * piling up on the broker, and consumes it. A message that is not a report
 * is skipped (and logged). */
#ifndef SLUICE_REPORTS_H
#define SLUICE_REPORTS_H

#include "config.h"
#include "fleet.h"

/* REPORTS_QUEUE_MAX bounds the reports waiting in a replica's queue: with
 * every worker reporting each second and the TTL, a healthy fleet never
 * comes near it; the oldest are dropped first. */
#define REPORTS_QUEUE_MAX 10000

struct reports;

/* reports_new starts the thread; cfg and fleet must outlive it. NULL on failure. */
struct reports *reports_new(const struct cfg *cfg, struct fleet *fleet);
void reports_free(struct reports *r);

#endif
