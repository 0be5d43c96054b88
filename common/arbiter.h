/* arbiter.h: who wins between a client's cancel and a worker's dispatch.
 *
 * Both go to one stream, "<namespace>.claims", whose order every reader
 * sees alike: a worker publishes a claim naming the requests it is about to
 * call, and calls them only once it has read its own claim back; the
 * ingress publishes a cancel and answers only once it has read it back.
 * Every reader feeds every message, in stream order, to its own arbiter,
 * which decides with nothing but the messages before:
 *   a cancel is effective unless the request was claimed before it;
 *   a claim of a request cancelled (effectively) before it is refused.
 * So the ingress that published a cancel and the worker that claimed the
 * request reach the same verdict without talking to each other: a request
 * answered "cancelled" is never called, and one a worker claimed first is
 * answered 409 not_cancellable.
 *
 *   {"v":1,"ts":<ms>,"claim":["<id>",...]}    {"v":1,"ts":<ms>,"cancel":"<id>"}
 *
 * What an arbiter remembers is bounded: claims for retention_ms (counted in
 * the messages' own times, so every reader forgets the same ones) and at
 * most max_claims of them (16 bytes each, oldest first); cancels likewise,
 * exactly (the ID itself, so that no hash collision can drop a request). A
 * reader starting later reads the stream from its first retained message
 * (the stream keeps the status retention), so it holds what the others do.
 * Not thread-safe: one reader owns it. */
#ifndef SLUICE_ARBITER_H
#define SLUICE_ARBITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ARBITER_MAX_CLAIM bounds the IDs of one claim (a worker batch is at most 1000). */
#define ARBITER_MAX_CLAIM 1000

struct arbiter;

/* arbiter_new returns NULL on ENOMEM or a zero bound. */
struct arbiter *arbiter_new(size_t max_claims, size_t max_cancels, int64_t retention_ms);
void arbiter_free(struct arbiter *a);

/* The messages; 0 or a buf error. */
__attribute__((warn_unused_result)) int arbiter_claim_msg(struct buf *b, const char *const *ids,
                                                          size_t n, int64_t ts_ms);
__attribute__((warn_unused_result)) int arbiter_cancel_msg(struct buf *b, const char *id,
                                                           int64_t ts_ms);

/* What feeding a message decided, reported per request. */
struct arbiter_sink {
    void *arg;
    /* on_claim: cancelled tells the claimer not to call the request. */
    void (*on_claim)(void *arg, const char *id, bool cancelled);
    /* on_cancel: effective tells the canceller it won. */
    void (*on_cancel)(void *arg, const char *id, bool effective);
};

/* arbiter_feed applies one message of the stream (in stream order) and
 * reports each verdict to sink (callbacks may be NULL). Returns 0, -1 when
 * the message is malformed (nothing is applied), or -ENOMEM (the message may
 * be half applied: the reader must start over, reconnecting). */
int arbiter_feed(struct arbiter *a, const char *msg, size_t len, const struct arbiter_sink *sink);

/* arbiter_claims is how many claims are remembered (for metrics). */
size_t arbiter_claims(const struct arbiter *a);

#endif
