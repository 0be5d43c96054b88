/* event.h: the codec of the events stream. Every state change of a request is
 * an event; events travel aggregated, one stream message per publish batch:
 *   {"v":1,"events":[{"id":"..","state":"queued","tenant":"..","route":"..",
 *     "created":<ms>,"ts":<ms>,"attempts":0,"result":{..},"error":{..},
 *     "reason":"breaker_open"}, ...]}
 * and a start-up marker {"v":1,"marker":"<nonce>"} lets a consumer know it has
 * caught up with the stream. result and error are optional JSON objects kept
 * as text (the worker builds them, the ingress serves them verbatim).
 * reason, optional, says why a request that is not final waits (a worker
 * holds it while every upstream of its route has an open breaker): at most
 * EVENT_REASON_MAX bytes of [a-z_].
 *
 * A "queued" event may carry "fp", the fingerprint of a request submitted
 * with an idempotency key, and "ck", the cache key of a cacheable read
 * (ingress/idempotency.h, ingress/cache.h). An event with "erase":true is a
 * privacy erasure of a final request's result and error. A heartbeat
 * {"v":1,"heartbeat":"<instance>","ts":<ms>} says an ingress replica is
 * alive (ingress/limits.h shares a key's rate among the live ones).
 * "replays":N names the generation of a request an operator replayed from
 * the dead letters, and "purge":true says its dead letter is gone. */
#ifndef SLUICE_EVENT_H
#define SLUICE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum req_state {
    ST_QUEUED = 0,
    ST_PROCESSING,
    ST_RETRYING,
    ST_SUCCEEDED,
    ST_FAILED,
    ST_DEAD,
    ST_CANCELLED, /* cancelled by its client before any worker started it */
};
#define ST_FINAL(s) ((s) >= ST_SUCCEEDED)

/* A state change; all pointers are borrowed from whoever built it. */
struct status_update {
    const char *id; /* ID_LEN characters */
    enum req_state state;
    const char *tenant;
    const char *route;
    int64_t created_ms;
    int64_t ts_ms;
    int attempts;
    const char *result_json; /* NULL or a JSON object */
    size_t result_len;
    const char *error_json; /* NULL or a JSON object */
    size_t error_len;
    const char *reason; /* NULL or why it waits, e.g. "breaker_open" */
    const char *fp;     /* NULL or the idempotency fingerprint (queued events) */
    const char *ck;     /* NULL or the cache key (queued events) */
    bool erase;         /* erase the result and error of this final request */
    /* replays is the request's generation: how many times an operator sent
     * it back from the dead letters ("replays":N, absent when 0). An event
     * of a newer generation replaces a final state; an older one is stale
     * (ingress/status_index.h). */
    int replays;
    bool purge; /* its dead letter was purged: no longer listed as dead */
    /* The delivery of a final request's callback_url (worker/deliver.h):
     * CB_NONE, or its state and the calls made so far ("callback":"pending",
     * "callback_attempts":N). A final event of a request with a callback
     * says pending; callback_only marks the worker's later progress events,
     * which change nothing but the callback of a request already final. */
    int callback;
    int callback_attempts;
    bool callback_only;
};

enum { CB_NONE, CB_PENDING, CB_SUCCEEDED, CB_FAILED };
/* EVENT_MAX_CB_ATTEMPTS bounds callback_attempts (the status index keeps 7 bits). */
#define EVENT_MAX_CB_ATTEMPTS 127
/* event_callback_name is "pending", "succeeded" or "failed" (NULL for CB_NONE). */
const char *event_callback_name(int callback);

/* EVENT_TAG_MAX bounds fp and ck: short printable tokens. */
#define EVENT_TAG_MAX 64
#define EVENT_REASON_MAX 32
/* EVENT_MAX_REPLAYS bounds a request's generation (the status index keeps 15 bits). */
#define EVENT_MAX_REPLAYS 32767

const char *event_state_name(enum req_state s);
/* event_state_parse returns the state named name, or -1. */
int event_state_parse(const char *name);

/* Building a message: begin, append each update, end. Return 0 or a buf error. */
__attribute__((warn_unused_result)) int event_begin(struct buf *b);
__attribute__((warn_unused_result)) int event_append(struct buf *b, const struct status_update *u);
__attribute__((warn_unused_result)) int event_end(struct buf *b);
__attribute__((warn_unused_result)) int event_marker(struct buf *b, const char *nonce);
__attribute__((warn_unused_result)) int event_heartbeat(struct buf *b, const char *instance,
                                                        int64_t ts_ms);

/* event_parse calls on_update for each event of a message, or on_marker for a
 * marker. The update's pointers are valid only during the call. Returns the
 * number of events, or -1 when the message is malformed (nothing is called for
 * a malformed event; well-formed ones before it may have been). */
typedef void (*event_update_fn)(void *arg, const struct status_update *u);
typedef void (*event_marker_fn)(void *arg, const char *nonce);
typedef void (*event_heartbeat_fn)(void *arg, const char *instance, int64_t ts_ms);
int event_parse(const char *msg, size_t len, event_update_fn on_update, event_marker_fn on_marker,
                void *arg);
/* event_parse_all is event_parse that also reports heartbeats (any
 * callback may be NULL); event_parse skips them. */
struct event_sink {
    void *arg;
    event_update_fn on_update;
    event_marker_fn on_marker;
    event_heartbeat_fn on_heartbeat;
};
int event_parse_all(const char *msg, size_t len, const struct event_sink *sink);

#endif
