/* status_index.h: the in-memory index id -> status that lets any ingress
 * replica answer for any request. It is fed by the events stream (and by the
 * local publisher the moment a 202 is sent), bounded by max_entries (oldest
 * evicted first) and by retention (entries created earlier are dropped);
 * the results it holds are bounded in bytes (status_index_set_max_bytes).
 * Thread-safe: one writer at a time, many readers (internal rwlock). */
#ifndef SLUICE_STATUS_INDEX_H
#define SLUICE_STATUS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"
#include "id.h"

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
 * not flip a result already served) -- within a generation: an event of a
 * later generation (u->replays, a replay from the dead letters) starts the
 * entry anew, and one of an earlier generation is ignored; a purge marks a
 * dead entry of its generation purged; otherwise a final state always applies
 * and a non-final one only if not older than the entry; attempts and updated
 * time only grow. An applied state brings its result and error (or none).
 * An erasure (u->erase) of a final entry of the same tenant drops its result
 * and error and marks it "erased"; it never creates an entry.
 * Updates whose created time is older than the retention (counted back from
 * the last status_index_expire time) are ignored. Returns 0, -ENOMEM, or
 * -EINVAL when id is not a valid ID, tenant or route is NULL or the state unknown. */
__attribute__((warn_unused_result)) int status_index_apply(struct status_index *idx,
                                                           const struct status_update *u);

/* status_index_apply_at is status_index_apply for an update read from the
 * events stream at offset (negative: unknown). A final state's result is
 * then allowed to leave memory past the byte bound, since it can be read
 * back from there; one without a known offset always stays. */
__attribute__((warn_unused_result)) int
status_index_apply_at(struct status_index *idx, const struct status_update *u, int64_t offset);

/* status_index_set_max_bytes bounds the bytes of results the index holds
 * (0: no bound, the default). Past it, results leave memory oldest entry
 * first (in arrival order) and only the offset of the stream message that
 * carried each stays; errors, states and entries stay. */
void status_index_set_max_bytes(struct status_index *idx, size_t max_bytes);

/* What the byte bound has done, for metrics and benchmarks. */
struct status_text_stats {
    size_t text_bytes; /* results and errors in memory, with malloc's overhead */
    size_t held;       /* bytes of results counted against the bound */
    uint64_t spilled;  /* results that left memory so far */
};
void status_index_text_stats(struct status_index *idx, struct status_text_stats *out);

/* status_final_fn is told the ID of a request whose first final state was
 * just applied, after the index's lock is released. */
typedef void (*status_final_fn)(void *arg, const char *id);
/* status_index_on_final sets the hook every apply calls when it makes a
 * request final, whoever applies it (the events reader, or this replica
 * itself): long-poll waiters are woken through it. Set it before any thread
 * applies updates. */
void status_index_on_final(struct status_index *idx, status_final_fn fn, void *arg);

/* status_index_render appends the status document of id (see docs/api.md) to out
 * if it exists and belongs to tenant. Returns 0, -ENOENT (unknown, or another
 * tenant's: the caller answers 404 either way), -EAGAIN (its result left
 * memory: see status_index_render_at), or a buf error. */
__attribute__((warn_unused_result)) int
status_index_render(struct status_index *idx, const char *id, const char *tenant, struct buf *out);
/* status_index_render_at is status_index_render that, when id's result has
 * left memory, appends nothing and returns -EAGAIN with *offset, the stream
 * offset of the message whose final event carries it. The caller reads it
 * back (without holding anything of the index) and renders with
 * status_index_render_with. status_index_render answers -EAGAIN likewise. */
__attribute__((warn_unused_result)) int status_index_render_at(struct status_index *idx,
                                                               const char *id, const char *tenant,
                                                               struct buf *out, int64_t *offset);
/* status_index_render_with renders id with result (NUL-terminated JSON, or
 * NULL when the event read had none), the text read back from offset. The
 * entry is looked up again: an erasure applied meanwhile wins (rendered
 * erased, without it), a result back in memory is used instead, and an
 * entry whose result is now at another offset gives -EAGAIN. 0, -ENOENT,
 * -EAGAIN or a buf error. */
__attribute__((warn_unused_result)) int status_index_render_with(struct status_index *idx,
                                                                 const char *id, const char *tenant,
                                                                 int64_t offset, const char *result,
                                                                 struct buf *out);
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
/* status_index_arrivals is how many requests of route this replica has
 * seen arrive in its lane so far (drain.h: a request first seen queued, or
 * queued again by a replay), counted from the events stream so every
 * replica counts the whole fleet's; it wraps. 0 for an unknown route. */
uint32_t status_index_arrivals(struct status_index *idx, const char *route);
/* status_index_render_ex is status_index_render without the result when
 * with_result is false (listings). */
__attribute__((warn_unused_result)) int status_index_render_ex(struct status_index *idx,
                                                               const char *id, const char *tenant,
                                                               bool with_result, struct buf *out);
/* status_index_state returns the state of id for tenant, or -ENOENT. */
int status_index_state(struct status_index *idx, const char *id, const char *tenant);

/* A short copy of an entry. route borrows the index's interned name, which
 * lives as long as the index. */
struct status_brief {
    char id[ID_LEN + 1];
    enum req_state state;
    int attempts;
    int64_t created_ms, updated_ms; /* updated_ms is the completion time once final */
    const char *route;
    const char *tenant; /* interned like route */
    int replays;        /* its generation (replays from the dead letters) */
    bool purged;        /* dead, and its dead letter purged */
    /* The result and error texts (NULL: none, or a result that left memory
     * under max_status_bytes), valid only during a visit (status_index_scan_all):
     * they belong to the entry. */
    const char *result, *error;
};
/* status_index_brief fills out for id if it belongs to tenant; 0 or -ENOENT. */
int status_index_brief(struct status_index *idx, const char *id, const char *tenant,
                       struct status_brief *out);
/* status_index_scan calls visit for every entry of tenant, oldest first,
 * under the read lock: visit must not call into the index. */
typedef void (*status_visit_fn)(void *arg, const struct status_brief *b);
void status_index_scan(struct status_index *idx, const char *tenant, status_visit_fn visit,
                       void *arg);
/* status_index_scan_all calls visit for the entries of every tenant,
 * oldest first, from the one after the entry of ID after (NULL, or an ID
 * no longer known: from the oldest), until visit returns false. Under the
 * read lock: visit must not call into the index. */
typedef bool (*status_scan_fn)(void *arg, const struct status_brief *b);
void status_index_scan_all(struct status_index *idx, const char *after, status_scan_fn visit,
                           void *arg);
/* status_index_open returns how many of tenant's requests are not final. */
size_t status_index_open(struct status_index *idx, const char *tenant);
/* status_index_set_retention gives tenant a retention shorter than the
 * index's (a longer one is ignored): its entries are dropped once created
 * longer ago, at the next status_index_expire. 0, -ENOMEM or -EINVAL. */
__attribute__((warn_unused_result)) int
status_index_set_retention(struct status_index *idx, const char *tenant, int64_t retention_ms);

/* status_index_expire drops the entries created before now_ms - retention. */
void status_index_expire(struct status_index *idx, int64_t now_ms);
size_t status_index_count(struct status_index *idx);
/* status_index_bytes returns the heap bytes the index holds (for metrics and benchmarks). */
size_t status_index_bytes(struct status_index *idx);

#endif
