/* deadlist.h: GET /v1/admin/dead?route=&tenant=&limit=&after= (docs/api.md
 * "Admin API"): the dead requests of every tenant that are still in the dead
 * letters (not purged, not replayed since), oldest first, in pages of limit
 * (default 100, at most 1000) joined by a cursor, the last item's ID. It is
 * served from the status index, which knows every dead request, its error
 * and its last backend answer from the events stream, so listing takes
 * nothing from the dead queue. One pass over the index under its read lock,
 * stopping once the page is full. */
#ifndef SLUICE_DEADLIST_H
#define SLUICE_DEADLIST_H

#include "buf.h"
#include "status_index.h"

#define DEADLIST_DEFAULT 100
#define DEADLIST_MAX 1000

/* deadlist_render appends the page that query (the raw query string after
 * '?', NULL when none) asks for to out:
 *   {"dead":[{"id","tenant","route","reason","last_status","attempts",
 *     "replays","dead_at","error"},...],"next_after":"<id>"|null}
 * Returns 0, -EINVAL with message (160 bytes: a malformed query), or a buf
 * error. */
__attribute__((warn_unused_result)) int deadlist_render(struct status_index *idx, const char *query,
                                                        struct buf *out, char message[160]);

#endif
