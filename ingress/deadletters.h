/* deadletters.h: replaying and purging the dead letters, on a thread of
 * the ingress's own with a broker connection of its own (a pass blocks on
 * broker round trips, which no HTTP thread may).
 *
 * A pass takes the dead queue's messages one by one (basic.get), up to the
 * count the queue had when it began, in chunks of DL_CHUNK: each selected
 * message goes back to its route's lane with fresh attempts and its
 * generation (x-sluice-replays) one higher (a replay), or nowhere (a
 * purge); every other message goes back to the dead queue as it came. Once
 * the broker confirmed every publish of a chunk, one events message tells
 * the status of each selected request (queued again with "replays":N, or
 * purged), and once that is confirmed too, the chunk's messages are acked.
 * A process dying in between loses nothing: the unacked messages return to
 * the dead queue, and a message already republished is then there twice
 * (at least once, like every delivery in sluice). */
#ifndef SLUICE_DEADLETTERS_H
#define SLUICE_DEADLETTERS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "id.h"

#define DL_CHUNK 100
#define DL_NAME_MAX 128 /* CFG_NAME_MAX: a route or tenant name */

struct deadletters;

enum dl_action { DL_REPLAY, DL_PURGE, DL_PUBLISH_ADMIN };

/* Which dead letters a pass selects: every one, a route's, or by ID. */
struct dl_select {
    bool all;
    char route[DL_NAME_MAX + 1]; /* "" unless selecting by route */
    char (*ids)[ID_LEN + 1];     /* owned, sorted by dl_select_sort */
    size_t n_ids;
};

/* dl_select_sort sorts sel's IDs so that dl_selected can search them. */
void dl_select_sort(struct dl_select *sel);
/* dl_selected tells whether the dead letter of request id, of route, is
 * selected (id and route may be NULL when the message could not be read:
 * only "all" selects it). */
bool dl_selected(const struct dl_select *sel, const char *id, const char *route);

/* dl_done_fn is called once per accepted pass, from the pass's thread:
 * status 200 with count (replayed or purged), or 503 with the count done
 * before the broker failed (message says so). */
typedef void (*dl_done_fn)(void *arg, int status, long count, const char *message);

/* deadletters_new starts the thread; cfg must outlive it. NULL on failure. */
struct deadletters *deadletters_new(const struct cfg *cfg);
/* deadletters_drain answers 503 to every pass not yet begun, lets the one
 * running finish its chunk and stop (it answers 200 with how many it did:
 * the rest are still dead), and joins the thread. */
void deadletters_drain(struct deadletters *d);
void deadletters_free(struct deadletters *d);

/* deadletters_submit queues a pass of action over sel (taken, whatever the
 * result) for the key named who (logged). 0, or -1 when draining or out of
 * memory (done is then never called). */
__attribute__((warn_unused_result)) int deadletters_submit(struct deadletters *d,
                                                           enum dl_action action,
                                                           struct dl_select *sel, const char *who,
                                                           dl_done_fn done, void *arg);

/* deadletters_publish_admin publishes msg (taken: a routectl.h snapshot)
 * on the admin stream on the same thread, answering 200 once the broker
 * confirmed it, 503 otherwise. 0, or -1 as deadletters_submit. */
__attribute__((warn_unused_result)) int deadletters_publish_admin(struct deadletters *d,
                                                                  struct buf *msg, const char *who,
                                                                  dl_done_fn done, void *arg);

#endif
