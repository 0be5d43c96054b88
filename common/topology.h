/* topology.h: sluice's AMQP topology, built from the configuration in one
 * place: every exchange and queue with its arguments, and their names. Both
 * binaries declare it, idempotently, on every connection (common/session.c
 * does it); the worker declares a retry queue the first time it needs that
 * delay. A new kind of queue is a change in topology.c alone. The table of
 * names and arguments is in docs/architecture.md ("AMQP topology"). */
#ifndef SLUICE_TOPOLOGY_H
#define SLUICE_TOPOLOGY_H

#include <stddef.h>

#include "config.h"
#include "mq.h"

/* Names of the fixed exchanges and queues. TOPO_OLD_REQUESTS is the
 * requests queue (and direct exchange) of releases before lanes: never
 * declared now, only drained where it still exists (docs/operations.md). */
enum topo_queue {
    TOPO_OLD_REQUESTS,
    TOPO_DEAD,
    TOPO_EVENTS,
    TOPO_DELAY,
    TOPO_CLAIMS,
    TOPO_ADMIN,
    TOPO_DELIVERIES, /* callback and results deliveries (worker/deliver.h) */
    TOPO_REPORTS,    /* the fanout exchange of the workers' reports (common/report.h) */
};

/* TOPO_NAME_MAX bounds a name: the namespace (at most 64 bytes, see
 * config.c), a kind and a route name (at most 64 bytes). */
#define TOPO_NAME_MAX 160

/* TOPO_DELAY_HEADER is the header a retry is published with to the delay
 * exchange: its value, the delay in ms as text, picks the delay queue. */
#define TOPO_DELAY_HEADER "x-sluice-delay"

/* topo_name writes "<namespace>.<suffix>" of q to out. */
void topo_name(const struct cfg *cfg, enum topo_queue q, char *out, size_t outlen);
/* topo_lane_name writes the name of route r's lane: "<namespace>.lane.<route>",
 * or "<namespace>.lane-sac.<route>" for a limited route (cfg_route_limited),
 * whose lane has a single active consumer. The two kinds have other
 * arguments, so they are other queues: changing a route's limits moves its
 * new requests to the other lane (docs/operations.md). */
void topo_lane_name(const struct cfg *cfg, const struct cfg_route *r, char *out, size_t outlen);
/* topo_other_lane_name writes the name of the lane r would have with the
 * opposite kind of limits: where its requests waited before a change. */
void topo_other_lane_name(const struct cfg *cfg, const struct cfg_route *r, char *out,
                          size_t outlen);
/* topo_delay_name writes "<namespace>.delay.<delay_ms>" to out. */
void topo_delay_name(const struct cfg *cfg, long delay_ms, char *out, size_t outlen);

/* topo_declare declares the dead queue, the delay exchange, every route's
 * lane (dead-lettering to the dead queue), the deliveries queue, the events
 * stream and the claims stream (common/arbiter.h), of
 * cfg->queue_type. -1 with err on failure (an unknown queue type, arguments
 * that differ from an existing queue's: the connection is then broken). */
__attribute__((warn_unused_result)) int topo_declare(struct mq *mq, const struct cfg *cfg,
                                                     char *err, size_t errlen);
/* topo_declare_retry declares the delay queue of delay_ms, bound to the
 * delay exchange by TOPO_DELAY_HEADER: a retry published there with its
 * lane's name as routing key waits delay_ms, then the broker dead-letters
 * it through the default exchange with that routing key, into its lane. */
__attribute__((warn_unused_result)) int topo_declare_retry(struct mq *mq, const struct cfg *cfg,
                                                           long delay_ms, char *err, size_t errlen);

#endif
