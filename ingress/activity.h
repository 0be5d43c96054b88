/* activity.h: what the status page shows about the recent life of this
 * ingress: accepted requests per second, the depth of the requests and dead
 * queues, final outcomes per route and the most recent failures. Writers are
 * the HTTP threads (responses), the events thread (outcomes) and the
 * publisher thread (queue depths); readers are the HTTP threads rendering
 * /admin/summary. Every function is thread-safe. */
#ifndef SLUICE_ACTIVITY_H
#define SLUICE_ACTIVITY_H

#include <stdint.h>

#include "buf.h"
#include "event.h"

/* How many failed or dead requests the page lists, newest first. */
#define ACTIVITY_RECENT_FAILURES 20

struct activity;

/* activity_new returns NULL on ENOMEM; activity_free(NULL) is a no-op. */
struct activity *activity_new(void);
void activity_free(struct activity *a);

/* activity_count_response counts one HTTP answer; 202s are accepted requests. */
void activity_count_response(struct activity *a, int status);
/* activity_note counts the final state of a request (other states are
 * ignored) under its route, and remembers it among the recent failures when
 * it failed or died. The caller notes each request's first final state once.
 * u's pointers are only read during the call. */
void activity_note(struct activity *a, const struct status_update *u);
/* activity_outcomes gives the final states counted so far under route:
 * *succeeded, and *failed with failed and dead together (0 and 0 for a
 * route not seen yet). */
void activity_outcomes(struct activity *a, const char *route, uint64_t *succeeded,
                       uint64_t *failed);
/* activity_set_queue_depth records the ready messages of the requests and
 * dead queues, as polled by the publisher at real time now_ms. */
void activity_set_queue_depth(struct activity *a, uint32_t requests, uint32_t dead, int64_t now_ms);

/* activity_render appends the members "throughput", "queues", "routes" and
 * "recent_failures" of the summary document (no braces) to out, and takes a
 * throughput sample at monotonic time mono_ms. Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int activity_render(struct activity *a, struct buf *out,
                                                        int64_t mono_ms);

#endif
