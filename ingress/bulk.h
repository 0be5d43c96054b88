/* bulk.h: the document of a batch submission (POST /v1/requests:batch),
 * {"requests":[envelope, ...]}, taken apart into its envelopes' texts, and
 * its answer, {"results":[...]} in the same order, put together. What
 * happens to each envelope in between (the envelope builder, the route's
 * authorization, one group to the publisher) is the handler's (handlers.c);
 * this module knows neither HTTP nor the broker, so its unit test needs
 * neither. */
#ifndef SLUICE_BULK_H
#define SLUICE_BULK_H

#include <stddef.h>

#include "buf.h"
#include "envelope.h"
#include "id.h"

#define BULK_MAX 100 /* envelopes per batch */

/* One envelope of the batch and what became of it. */
struct bulk_item {
    const char *text; /* the envelope's JSON text, inside the request body */
    size_t len;
    struct envelope env; /* built by the handler; owned by the batch until handed over */
    char id[ID_LEN + 1]; /* the tracking ID, kept once env is handed over */
    int status;          /* 0 while undecided, 202 accepted, else the error's HTTP status */
    const char *code;    /* the error's code (a string literal) */
    char message[256];
};

struct bulk {
    size_t n;
    struct bulk_item items[BULK_MAX];
    size_t sent[BULK_MAX]; /* indexes of the items handed to the publisher, in order */
    size_t n_sent;
    void *owner; /* the handler's: the request waiting for the answer */
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
/* bulk_item_fail records an item's error (code is a string literal). */
void bulk_item_fail(struct bulk_item *it, int status, const char *code, const char *message);
/* bulk_render appends {"results":[...]} to out, and sets *status to the
 * answer's: 202 when any item was accepted, else the first item's error.
 * Every item must be decided. Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int bulk_render(const struct bulk *b, struct buf *out,
                                                    int *status);

#endif
