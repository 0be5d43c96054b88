/* listing.h: GET /v1/requests?status=&route=&limit=&after= (docs/api.md
 * "Listing"): a tenant's requests, newest first by creation time (then by
 * ID), in pages of limit (default 50, at most 1000) joined by an opaque
 * cursor. Items are status documents without their result (GET the request
 * for it). A page is made by one pass over the tenant's entries of the
 * status index (under its read lock), keeping the best limit + 1 in a heap:
 * about 10 ms per million entries held. */
#ifndef SLUICE_LISTING_H
#define SLUICE_LISTING_H

#include "buf.h"
#include "status_index.h"

#define LISTING_DEFAULT 50
#define LISTING_MAX 1000

/* A refusal of the query: 400 invalid_request with this message. */
struct listing_error {
    char message[160];
};

/* listing_render appends the page that query (the raw query string after
 * '?', NULL when none) asks for of tenant's requests to out:
 *   {"requests":[...],"next_after":"<cursor>"|null}
 * Returns 0, -EINVAL with err (a malformed query), or a buf error. */
__attribute__((warn_unused_result)) int listing_render(struct status_index *idx, const char *tenant,
                                                       const char *query, struct buf *out,
                                                       struct listing_error *err);

#endif
