/* poison.h: a delivery the worker cannot decode as a request. Dead-lettering
 * it silently would leave its client's status "queued" forever; when its ID
 * and tenant can still be read, poison_job makes a job that is already
 * settled as dead with the error malformed_message, so the worker publishes
 * that final status before it dead-letters the delivery (nack without
 * requeue). Tested without a broker (tests/unit/test_poison.c). */
#ifndef SLUICE_POISON_H
#define SLUICE_POISON_H

#include <amqp.h>
#include <stdbool.h>
#include <stdint.h>

#include "job.h"

/* poison_job returns the job of the delivery msg (tag) whose decoding failed
 * with why: ID from message_id, tenant and route from x-sluice-tenant and
 * x-sluice-route (route "" when unreadable), creation time from
 * x-sluice-created or the timestamp (else now_real_ms), state dead,
 * dead_letter set. NULL when the ID or the tenant cannot be read (or on
 * ENOMEM): then nobody can be told, and the delivery is simply dead-lettered. */
struct job *poison_job(const amqp_message_t *msg, uint64_t tag, const char *why,
                       int64_t now_real_ms);

/* What a worker does with a delivery, by its redelivered flag and the
 * deliveries counted so far (envelope.h): a fresh one is called as usual; a
 * redelivered one (its previous holder died or lost its connection while
 * holding it) is counted, by republishing it to its lane with the count one
 * higher, so that classic queues, which count nothing, count too; once the
 * count reaches limit (cfg delivery_limit) it is dead with the error
 * delivery_limit. A counted message is called in a batch of its own, so that
 * a message that kills workers cannot take other requests down with it. */
enum poison_verdict { POISON_FRESH, POISON_COUNT, POISON_DEAD };
enum poison_verdict poison_redelivery(bool redelivered, int deliveries, long limit);
/* poison_again tells whether a delivery was delivered before: the broker's
 * redelivered flag, or a quorum queue's x-delivery-count header above 0
 * (quorum queues do not always set the flag for a message returned by a
 * consumer that went away). */
bool poison_again(bool redelivered, const amqp_basic_properties_t *props);

#endif
