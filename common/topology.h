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

/* The queues every connection declares. TOPO_REQUESTS names both the
 * requests exchange and the queue bound to it. */
enum topo_queue { TOPO_REQUESTS, TOPO_DEAD, TOPO_EVENTS, TOPO_CLAIMS };

/* TOPO_NAME_MAX bounds a name: the namespace (at most 64 bytes, see
 * config.c) and a suffix. */
#define TOPO_NAME_MAX 160

/* topo_name writes "<namespace>.<suffix>" of q to out. */
void topo_name(const struct cfg *cfg, enum topo_queue q, char *out, size_t outlen);
/* topo_retry_name writes "<namespace>.retry.<delay_ms>" to out. */
void topo_retry_name(const struct cfg *cfg, long delay_ms, char *out, size_t outlen);

/* topo_declare declares the requests exchange and queue (dead-lettering to
 * the dead queue), the dead queue, the events stream and the claims stream
 * (common/arbiter.h), of cfg->queue_type.
 * -1 with err on failure (an unknown queue type, arguments that differ from
 * an existing queue's: the connection is then broken). */
__attribute__((warn_unused_result)) int topo_declare(struct mq *mq, const struct cfg *cfg,
                                                     char *err, size_t errlen);
/* topo_declare_retry declares the retry queue of delay_ms, whose messages
 * expire after delay_ms back into the requests exchange. */
__attribute__((warn_unused_result)) int topo_declare_retry(struct mq *mq, const struct cfg *cfg,
                                                           long delay_ms, char *err, size_t errlen);

#endif
