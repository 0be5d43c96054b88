/* control.h: the ingress's control thread. Over a broker session of its own
 * it does what clients ask of requests already queued, and keeps this
 * replica counted:
 *   cancel  publishes a cancel on the claims stream and, once it reads it
 *           back, takes the arbiter's verdict (common/arbiter.h): effective
 *           (the request becomes "cancelled" here at once and on every
 *           replica through a final event; no worker will call it) or not
 *           (a worker claimed it first: 409);
 *   erase   publishes an erasure of a final request's result and error on
 *           the events stream and answers once the broker confirmed it;
 *   heartbeats  every LIMITS_HEARTBEAT_MS on the events stream, so that the
 *           replicas share the keys' rates (keylimits.h).
 * It reads the claims stream from its start, as every worker does, so its
 * arbiter decides as theirs do. */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include <stdbool.h>

#include "config.h"
#include "metrics.h"
#include "status_index.h"

struct control;

/* control_new starts the thread; cfg and index must outlive it. Its events
 * messages carry instance as app_id, like the publisher's. NULL on failure. */
struct control *control_new(const struct cfg *cfg, struct metrics *metrics,
                            struct status_index *index, const char *instance);
/* control_drain stops the thread, answering 503 to everything in flight;
 * later operations are refused. Call before stopping HTTP, and control_free
 * after. */
void control_drain(struct control *c);
void control_free(struct control *c);

/* control_done_fn is called once per accepted operation, from the control
 * thread: 200 (cancelled, or erased), 409 (a worker claimed it first), 503
 * (the broker did not take it in time; a cancel's outcome is then unknown
 * until the status says, and asking again is safe). */
typedef void (*control_done_fn)(void *arg, int status);

/* control_cancel asks for the cancellation of b (of tenant, queued); 0, or
 * -1 when not connected (done is then never called). */
__attribute__((warn_unused_result)) int control_cancel(struct control *c,
                                                       const struct status_brief *b,
                                                       const char *tenant, control_done_fn done,
                                                       void *arg);
/* control_erase asks for the erasure of b's result and error (b is final). */
__attribute__((warn_unused_result)) int control_erase(struct control *c,
                                                      const struct status_brief *b,
                                                      const char *tenant, control_done_fn done,
                                                      void *arg);

#endif
