/* intake.h: what a worker consumes. Every route's lane, each with its own
 * prefetch (basic.qos per consumer), so that one lane's backlog never fills
 * the prefetch another lane needs: the worker's prefetch for an unlimited
 * route, and for a limited one (single active consumer) only what it can
 * start soon: max(2 x max_in_flight, burst, 10). Where they still exist, it
 * also drains a route's other lane (where its requests waited before its
 * limits changed) and the requests queue of releases before lanes
 * (docs/operations.md): both are probed when the connection opens. And the
 * deliveries queue, of callbacks and results (worker/deliver.h). */
#ifndef SLUICE_INTAKE_H
#define SLUICE_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mq.h"

struct intake;

/* intake_new names the queues of cfg (which must outlive it). NULL on ENOMEM. */
struct intake *intake_new(const struct cfg *cfg);
void intake_free(struct intake *in);

/* intake_start starts the consumers on a new connection. 0, or -1 (the
 * connection is then broken). */
__attribute__((warn_unused_result)) int intake_start(struct intake *in, struct mq *mq);
/* intake_stop cancels every consumer; deliveries already sent may still come. */
__attribute__((warn_unused_result)) int intake_stop(struct intake *in, struct mq *mq);

enum intake_source {
    INTAKE_LANE,       /* the lane of route *route */
    INTAKE_OTHER,      /* the other lane of route *route (its limits changed) */
    INTAKE_OLD,        /* the requests queue of an older release */
    INTAKE_DELIVERIES, /* the deliveries queue (worker/deliver.h) */
    INTAKE_UNKNOWN,    /* not a consumer of ours */
};
/* intake_source tells which queue a delivery to consumer tag came from. */
enum intake_source intake_source(const struct intake *in, const char *tag, size_t *route);
/* intake_gone handles the broker cancelling consumer tag (its queue was
 * deleted): true when nothing is lost (a drained old queue was removed),
 * false when a lane went and the connection must start over to declare it. */
bool intake_gone(struct intake *in, const char *tag);

/* intake_lane is the lane of route i. */
const char *intake_lane(const struct intake *in, size_t i);
/* intake_stats_queues is the queues whose depth the worker polls: every
 * lane in route order, then the dead queue (cfg->n_routes + 1 of them). */
const char *const *intake_stats_queues(const struct intake *in);
/* intake_prefetch is the prefetch of route r's lane. */
uint16_t intake_prefetch(const struct cfg *cfg, const struct cfg_route *r);

#endif
