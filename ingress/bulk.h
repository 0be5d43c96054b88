/* bulk.h: the document of a batch submission (POST /v1/requests:batch),
 * {"requests":[envelope, ...]}, taken apart into its envelopes' texts, and
 * its answer, {"results":[...]} in the same order, put together. What
 * happens to each envelope in between (the envelope builder, the route's
 * authorization, the client contract, one group to the publisher) is
 * batch.c's;
 * this module knows neither HTTP nor the broker, so its unit test needs
 * neither. */
#ifndef SLUICE_BULK_H
#define SLUICE_BULK_H

#include <stdbool.h>
#include <stddef.h>

#include "answer.h"
#include "buf.h"
#include "envelope.h"

#define BULK_MAX 100 /* envelopes per batch */

/* One envelope of the batch and what became of it. */
struct bulk_item {
    const char *text; /* the envelope's JSON text, inside the request body */
    size_t len;
    struct envelope env; /* built by the handler; owned by the batch until handed over */
    int status;          /* 0 while undecided, else the HTTP status a single submit answers */
    char *doc;           /* its result in the answer (malloc'd), once decided */
    long retry_after_s;  /* a 429's or 503's Retry-After, else 0 */
};

struct bulk {
    size_t n;
    struct bulk_item items[BULK_MAX];
};

/* bulk_new returns an empty batch (NULL on ENOMEM); bulk_free frees it
 * and every envelope it still owns. NULL is a no-op. */
struct bulk *bulk_new(void);
void bulk_free(struct bulk *b);

/* bulk_split reads body (len bytes, strict JSON: json.h's rules) into b's
 * items: their texts only, in order. Returns 0, or -1 with err (400
 * invalid_json for a document that is not one JSON object, 400
 * invalid_request for a missing or malformed "requests", an unknown field,
 * or more than BULK_MAX envelopes); b is then unusable but must be freed. */
__attribute__((warn_unused_result)) int bulk_split(struct bulk *b, const char *body, size_t len,
                                                   struct env_error *err);
/* bulk_item_fail records an item's error {"error":{code,message},"status"}. */
void bulk_item_fail(struct bulk_item *it, int status, const char *code, const char *message);
/* bulk_item_answer records as it's result what a single submit answers, a
 * (whose body it takes): a 2xx body as it is, with "replayed":true when
 * replayed (a single submit's Idempotent-Replayed header), an error body
 * with its "status" added, and a's Retry-After. */
void bulk_item_answer(struct bulk_item *it, struct answer *a, bool replayed);
/* bulk_render appends {"results":[...]} to out, and sets *status to the
 * answer's: 202 when any item was accepted, else the first item's error,
 * and *retry_after_s to the longest Retry-After of the items (0: none).
 * Every item must be decided. Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int bulk_render(const struct bulk *b, struct buf *out,
                                                    int *status, long *retry_after_s);

#endif
