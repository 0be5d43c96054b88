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
 * EVENT_REASON_MAX bytes of [a-z_]. */
#ifndef SLUICE_EVENT_H
#define SLUICE_EVENT_H

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
};

#define EVENT_REASON_MAX 32

const char *event_state_name(enum req_state s);
/* event_state_parse returns the state named name, or -1. */
int event_state_parse(const char *name);

/* Building a message: begin, append each update, end. Return 0 or a buf error. */
__attribute__((warn_unused_result)) int event_begin(struct buf *b);
__attribute__((warn_unused_result)) int event_append(struct buf *b, const struct status_update *u);
__attribute__((warn_unused_result)) int event_end(struct buf *b);
__attribute__((warn_unused_result)) int event_marker(struct buf *b, const char *nonce);

/* event_parse calls on_update for each event of a message, or on_marker for a
 * marker. The update's pointers are valid only during the call. Returns the
 * number of events, or -1 when the message is malformed (nothing is called for
 * a malformed event; well-formed ones before it may have been). */
typedef void (*event_update_fn)(void *arg, const struct status_update *u);
typedef void (*event_marker_fn)(void *arg, const char *nonce);
int event_parse(const char *msg, size_t len, event_update_fn on_update, event_marker_fn on_marker,
                void *arg);

#endif
