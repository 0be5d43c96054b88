/* status_index.h: the in-memory index id -> status that lets any ingress
 * replica answer for any request. It is fed by the events stream (and by the
 * local publisher the moment a 202 is sent), bounded by max_entries (oldest
 * evicted first) and by retention (entries created earlier are dropped).
 * Thread-safe: one writer at a time, many readers (internal rwlock). */
#ifndef SLUICE_STATUS_INDEX_H
#define SLUICE_STATUS_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"

struct status_index;

/* status_index_new returns NULL on ENOMEM, or when max_entries is 0 or above
 * 2^30, or retention_ms is negative. */
struct status_index *status_index_new(size_t max_entries, int64_t retention_ms);
void status_index_free(struct status_index *idx);

/* status_index_apply merges one update. Rules: an unknown ID is created from
 * any update (events of one request may arrive out of order across
 * publishers); "queued" without a reason (the ingress's) never overwrites an
 * existing entry; the first final
 * state is kept and every later event of that ID ignored (a redelivery must
 * not flip a result already served); otherwise a final state always applies
 * and a non-final one only if not older than the entry; attempts and updated
 * time only grow. An applied state brings its result and error (or none).
 * Updates whose created time is older than the retention (counted back from
 * the last status_index_expire time) are ignored. Returns 0, -ENOMEM, or
 * -EINVAL when id is not a valid ID, tenant or route is NULL or the state unknown. */
__attribute__((warn_unused_result)) int status_index_apply(struct status_index *idx,
                                                           const struct status_update *u);

/* status_index_render appends the status document of id (see docs/api.md) to out
 * if it exists and belongs to tenant. Returns 0, -ENOENT (unknown, or another
 * tenant's: the caller answers 404 either way), or a buf error. */
__attribute__((warn_unused_result)) int
status_index_render(struct status_index *idx, const char *id, const char *tenant, struct buf *out);
/* status_index_position gives, for a request of tenant still queued in its
 * lane, how many requests are ahead of it and its estimated wait in seconds
 * at real time now_ms (negative: no drain rate known), as its status
 * document shows them (see drain.h). 0, or -ENOENT when it is unknown,
 * another tenant's or no longer queued. */
int status_index_position(struct status_index *idx, const char *id, const char *tenant,
                          int64_t now_ms, uint32_t *position, double *wait_s);
/* status_index_drain_rate is the requests of route that left its lane per
 * second lately (drain.h), or 0 when none did. */
double status_index_drain_rate(struct status_index *idx, const char *route, int64_t now_ms);
/* status_index_state returns the state of id for tenant, or -ENOENT. */
int status_index_state(struct status_index *idx, const char *id, const char *tenant);

/* status_index_expire drops the entries created before now_ms - retention. */
void status_index_expire(struct status_index *idx, int64_t now_ms);
size_t status_index_count(struct status_index *idx);
/* status_index_bytes returns the heap bytes the index holds (for metrics and benchmarks). */
size_t status_index_bytes(struct status_index *idx);

#endif
