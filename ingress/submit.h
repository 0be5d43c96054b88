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

#define SUBMIT_NOT_CONFIRMED                                                                       \
    "the broker did not confirm the request (down, refused or too slow); retry later"
#define SUBMIT_BROKER_DOWN "the message broker is unavailable; nothing was queued, retry later"

/* submit_publish answers r's submission env: false with a, the answer to
 * send now, or true when the answer is pending (r->answer, then resume).
 * env stays the caller's (emptied when the publisher took it). */
__attribute__((warn_unused_result)) bool submit_publish(struct request *r, struct envelope *env,
                                                        struct answer *a);

/* The same steps for a submission that is not a whole request (an item of
 * a batch, ingress/batch.c), who's, through app. sub holds what it must
 * release once answered; it starts zeroed.
 *
 * submit_contract runs steps 1-4 for env: true when env is to be published
 * (sub then holds its pending count and key: settle it once, with
 * submit_verdict or submit_settle), or false with a, the answer (a replay,
 * a cached read, 409, 422, 429, 500, 503), sub holding nothing. */
__attribute__((warn_unused_result)) bool submit_contract(struct app *app,
                                                         const struct principal *who,
                                                         struct submission *sub,
                                                         struct envelope *env, struct answer *a);
/* submit_verdict settles sub with the publisher's status (202, 500, 503)
 * and fills a with what a single submit answers then. -1 when the 202 with
 * its queue position could not be made (out of memory): a is then unset,
 * and sub settled all the same. */
int submit_verdict(struct app *app, const struct principal *who, struct submission *sub, int status,
                   struct answer *a);
/* submit_settle releases what sub holds; accepted: the broker has it. */
void submit_settle(struct app *app, const struct principal *who, struct submission *sub,
                   bool accepted);
/* submit_replay fills a with the replayed 202 of the request id of tenant. */
void submit_replay(struct app *app, const char *tenant, const char *id, struct answer *a);
/* submit_refuse_reused fills a with the 422 of a key used for another request. */
void submit_refuse_reused(struct answer *a);

#endif
