/* cache.h: cached reads (docs/api.md "Cached reads"). On a route with
 * cache_ttl_s > 0, a GET or HEAD submission without an idempotency key has
 * a cache key: SHA-256 of tenant, route, method, path, query and the
 * route's cache_vary_headers. The key travels in the "queued" event, so
 * every replica learns which request answers it. A later identical
 * submission gets that request's ID, with nothing queued, when it is
 *   still queued, processing or retrying (request coalescing), or
 *   succeeded no longer than cache_ttl_s ago;
 * otherwise (failed, dead, cancelled, older, unknown) it is queued anew and
 * becomes the key's request. Thread-safe. */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "id.h"
#include "status_index.h"

#define CACHE_KEY_LEN 32 /* hex digits: 128 bits of the SHA-256 */

struct cache;

/* cache_new: cfg and index must outlive it; NULL on ENOMEM. */
struct cache *cache_new(const struct cfg *cfg, struct status_index *index);
void cache_free(struct cache *c);

/* cache_key writes e's cache key for route and returns true, or false when
 * e is not a cacheable read (route without cache, not GET or HEAD, an
 * idempotency key) or on ENOMEM. The vary headers are read from e's
 * forwarded headers, what the backend would see. */
bool cache_key(const struct cfg_route *route, const struct envelope *e,
               char out[CACHE_KEY_LEN + 1]);
/* cache_lookup finds the request that answers key for tenant on route:
 * true with its brief (see above), else false. */
bool cache_lookup(struct cache *c, const struct cfg_route *route, const char *key,
                  const char *tenant, int64_t now_ms, struct status_brief *out);
/* cache_note makes id the request of key (accepted here, or read from the
 * events stream). */
void cache_note(struct cache *c, const char *key, const char *id, const char *tenant,
                int64_t created_ms);
/* cache_expire forgets keys whose request is past the status retention. */
void cache_expire(struct cache *c, int64_t now_ms);

#endif
