/* history.h: the last fifteen minutes of each route, for the status page's
 * charts (GET /v1/admin/history): a ring of HISTORY_SAMPLES samples taken
 * every HISTORY_PERIOD_MS, each holding per route the requests accepted,
 * succeeded and failed (failed or dead) during its period and the lane's
 * backlog at its end. The memory is fixed at creation (samples x routes x
 * 16 bytes); the oldest sample makes room for the newest.
 *
 * One thread records (the events thread, from its tick, with counters the
 * ingress keeps anyway: cumulative, so a late tick loses nothing, it only
 * spreads over a longer period); any thread renders. Thread-safe. */
#ifndef SLUICE_HISTORY_H
#define SLUICE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HISTORY_PERIOD_MS 5000
#define HISTORY_SAMPLES 180

/* The counters of one route at a sample's time. The three counts are
 * cumulative and may wrap (only differences are kept); backlog is the
 * lane's ready messages, or -1 when unknown. */
struct history_counts {
    uint32_t accepted, succeeded, failed;
    int64_t backlog;
};

struct history;

/* history_new keeps capacity samples (at least 2) of the n routes named
 * names[0..n-1] (copied), one every period_ms (> 0). NULL on ENOMEM or bad
 * arguments; history_free(NULL) is a no-op. */
struct history *history_new(const char *const *names, size_t n, size_t capacity, int64_t period_ms);
void history_free(struct history *h);

/* history_due tells the recording thread whether a sample is due at
 * monotonic time mono_ms: every period_ms from the first record on (the
 * baseline), or now when none was taken yet. */
bool history_due(struct history *h, int64_t mono_ms);
/* history_started tells whether the first record (the baseline) was made. */
bool history_started(struct history *h);
/* history_record takes a sample at monotonic mono_ms and real time real_ms
 * from counts[0..n-1]. The first call only sets the baseline the next
 * sample's differences start from; a later one appends a sample. */
void history_record(struct history *h, int64_t mono_ms, int64_t real_ms,
                    const struct history_counts *counts);

/* history_render appends the document of GET /v1/admin/history (docs/api.md),
 * oldest sample first, with every route, or only the one named route when
 * route is not NULL. Returns 0, -ENOENT (no such route) or a buf error. */
__attribute__((warn_unused_result)) int history_render(struct history *h, const char *route,
                                                       struct buf *out);

#endif
