/* batch.h: POST /v1/requests:batch, many envelopes in one request
 * (docs/api.md "Batch submit"). Each item runs what a single submit runs,
 * in order: the envelope builder, the route's authorization, then the
 * client contract of submit.h (its rate token, its idempotency key, a
 * cached read, the queue quota). The items that pass are published as one
 * confirmed group; every item's result is what a single submit would
 * answer, in place. */
#ifndef SLUICE_BATCH_H
#define SLUICE_BATCH_H

#include <stdbool.h>

#include "handlers.h"

/* batch_submit answers r, whose body is the batch: false with a, the answer
 * to send now, or true when it is pending (r->answer, then resume). */
__attribute__((warn_unused_result)) bool batch_submit(struct request *r, struct answer *a);

#endif
