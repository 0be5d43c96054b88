/* submit.h: the last step of both submission forms, once the envelope is
 * built and its route authorized: the client contract (docs/api.md), in
 * this order, then the hand-off to the publisher.
 *   1. the key's rate (429 rate_limited, keylimits.h);
 *   2. the idempotency key: the derived ID, and a repeat answered from
 *      memory (202 replayed, 409, 422; idempotency.h);
 *   3. a cacheable read answered by the request that already holds it
 *      (202 cached; cache.h);
 *   4. the tenant's queue quota (429 quota_exceeded);
 *   5. the publisher (202 once the broker confirmed, else 503).
 * Every answer of a rate-limited key carries the RateLimit-* headers. */
#ifndef SLUICE_SUBMIT_H
#define SLUICE_SUBMIT_H

#include <stdbool.h>

#include "envelope.h"
#include "handlers.h"

/* submit_publish answers r's submission env: false with a, the answer to
 * send now, or true when the answer is pending (r->answer, then resume).
 * env stays the caller's (emptied when the publisher took it). */
__attribute__((warn_unused_result)) bool submit_publish(struct request *r, struct envelope *env,
                                                        struct answer *a);

#endif
