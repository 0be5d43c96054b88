/* deliver.h: callbacks and aggregated results (issue 13), durable in the
 * broker like any request. When a batch settles, every request of it that
 * reached its final state with a callback_url gets a delivery message (its
 * final status document) and every route of it with results_url one (the
 * final status documents of the batch's requests of that route), published
 * to the deliveries queue in the batch's confirm group: the batch's
 * deliveries are acked only once those are confirmed, so a delivery is
 * never lost and never holds the acks longer than that confirm.
 *
 * Workers consume the deliveries queue and POST each message's body to its
 * URL on the dispatch multi handle, with the outbound safety of an
 * allowlisted host (worker/netguard.h: no redirects, no proxy, no private
 * addresses unless the route's allow_private_callbacks), signed with the
 * route's signing_secrets (webhook-id: the delivery's own ID), with the
 * request's trace and a span of its own. A 2xx succeeds; 408, 429, 5xx and
 * transport errors are retried with the route's backoff through the delay
 * exchange (back to the deliveries queue) up to the route's max_attempts
 * calls; anything else (a redirect included) fails. A callback's progress
 * is an events update (callback_only) that its request's status shows.
 *
 * A delivery message is an envelope (common/envelope.h): id = the delivery
 * ID, route and tenant of the request(s), idempotency_key = the request's
 * ID (callbacks) or the first request's (results), callback_url = the URL
 * called, attempts = calls made, created_ms and replays those of the
 * request, traceparent/tracestate headers, body = the JSON to POST; plus the
 * header x-sluice-delivery: "callback <final state>" or "results", and for
 * results x-sluice-delivery-items: the number of requests. Every log line
 * about a delivery names it, its request (or first request and count), its
 * trace and span. */
#ifndef SLUICE_DELIVER_H
#define SLUICE_DELIVER_H

#include <stdbool.h>

#include "config.h"
#include "dispatch.h"
#include "job.h"
#include "mq.h"
#include "session.h"

struct deliver;

/* settled(arg, b) runs when the delivery of b (a batch of one placeholder
 * job for the delivery message, see deliver_take) made its publishes (its
 * unconfirmed count says how many): the owner acks b once they are
 * confirmed, at once when there are none. */
struct deliver_hooks {
    void *arg;
    void (*settled)(void *arg, struct batch *b);
};

/* deliver_new delivers for cfg over session and d (all must outlive it). */
struct deliver *deliver_new(const struct cfg *cfg, struct session *session, struct dispatch *d,
                            const struct deliver_hooks *hooks);
void deliver_free(struct deliver *dv);

/* deliver_queue is the deliveries queue's name. */
const char *deliver_queue(const struct deliver *dv);

/* deliver_publish publishes the callback and results messages of b's jobs
 * that are final (tracked by b). A message the broker cannot carry is
 * logged and left out; a lost connection breaks the session. */
void deliver_publish(struct deliver *dv, struct batch *b);

/* deliver_take starts the call of the delivery message msg, whose
 * placeholder job (its delivery tag) is b's only job. Returns 0 (settled
 * runs later), or -1 when msg is no delivery (the owner drops it). */
__attribute__((warn_unused_result)) int deliver_take(struct deliver *dv, const amqp_message_t *msg,
                                                     struct batch *b);

/* deliver_doc appends job's final status document, as GET /v1/requests/<id>
 * shows it, to out. Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int deliver_doc(struct buf *out, const struct job *job,
                                                    int64_t now_ms);

#endif
