/* poison.h: a delivery the worker cannot decode as a request. Dead-lettering
 * it silently would leave its client's status "queued" forever; when its ID
 * and tenant can still be read, poison_job makes a job that is already
 * settled as dead with the error malformed_message, so the worker publishes
 * that final status before it dead-letters the delivery (nack without
 * requeue). Tested without a broker (tests/unit/test_poison.c). */
#ifndef SLUICE_POISON_H
#define SLUICE_POISON_H

#include <amqp.h>
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

#endif
