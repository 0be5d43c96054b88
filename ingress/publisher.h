/* publisher.h: the ingress's path to the broker. Handlers hand over validated
 * envelopes; one publisher thread publishes whatever has accumulated as a
 * group (each request, then one "queued" events message for the group) over
 * its broker session (common/session.h) and shares the confirm round trip
 * among them (group commit). A reaper thread answers 503 for any request
 * whose confirm does not come within the deadline, even when the publisher
 * thread is stuck writing to a blocked broker. */
#ifndef SLUICE_PUBLISHER_H
#define SLUICE_PUBLISHER_H

#include <stdbool.h>

#include "activity.h"
#include "config.h"
#include "envelope.h"
#include "lanes.h"
#include "metrics.h"
#include "session.h"
#include "status_index.h"

struct publisher;

/* pub_done_fn is called exactly once per accepted submission, from a
 * publisher-owned thread, with 202 when the broker confirmed the persistent
 * message, 503 when it did not (down, nack, unroutable, timeout), or 500
 * when the message cannot travel over AMQP at all (a header past AMQP's
 * limits): that one fails alone, the connection and the other requests are
 * unaffected. */
typedef void (*pub_done_fn)(void *arg, int status);

/* publisher_new starts the threads; they connect (and reconnect) by themselves.
 * cfg, metrics, index and lanes must outlive the publisher; each request goes
 * to its route's lane, and the publisher thread polls the lanes' depths into
 * lanes. Its events messages carry
 * instance (this process's id) as app_id, so the events reader of the same
 * process can skip what it already knows. NULL on failure. */
struct publisher *publisher_new(const struct cfg *cfg, struct metrics *metrics,
                                struct status_index *index, struct activity *activity,
                                struct lanes *lanes, const char *instance);
/* publisher_new_with is publisher_new over another session implementation:
 * tests put a fake broker behind it. */
struct publisher *publisher_new_with(const struct cfg *cfg, struct metrics *metrics,
                                     struct status_index *index, struct activity *activity,
                                     struct lanes *lanes, const char *instance,
                                     const struct session_iface *si);
/* publisher_drain refuses new submissions and waits until every pending one
 * is answered (by its confirm, or by the deadline). Call before stopping HTTP. */
void publisher_drain(struct publisher *p);
/* publisher_free answers 503 to everything still pending, stops the threads, frees. */
void publisher_free(struct publisher *p);

/* publisher_ready tells whether the broker connection is up with topology declared. */
bool publisher_ready(struct publisher *p);

/* publisher_submit takes ownership of *env (left empty) and will call done(arg,
 * status). Returns 0, or -1 when the broker is not connected: then done is never
 * called and *env is untouched. */
__attribute__((warn_unused_result)) int publisher_submit(struct publisher *p, struct envelope *env,
                                                         pub_done_fn done, void *arg);

/* pub_group_fn is called exactly once per accepted group, when every item
 * is settled, from a publisher-owned thread: statuses[i] is item i's verdict
 * as pub_done_fn's status (202, 503 or 500). statuses belongs to the
 * publisher and is valid during the call only. */
typedef void (*pub_group_fn)(void *arg, const int *statuses, size_t n);

/* publisher_submit_group hands over envs[0..n-1] (1 <= n <= PUB_GROUP_MAX)
 * at once, so they are published in one group and share its confirm round
 * trip, and calls done once when all are settled. Each item succeeds or
 * fails on its own (a lost connection fails those not yet confirmed). It
 * takes ownership of every *envs[i] (left empty). Returns 0, or -1 when the
 * broker is not connected or the publisher drains: then done is never
 * called and the envelopes are untouched. */
#define PUB_GROUP_MAX 1000
__attribute__((warn_unused_result)) int publisher_submit_group(struct publisher *p,
                                                               struct envelope *const envs[],
                                                               size_t n, pub_group_fn done,
                                                               void *arg);

#endif
