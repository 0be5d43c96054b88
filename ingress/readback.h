/* readback.h: reads a result that the status index let go of (past
 * ingress.max_status_bytes) back from the events stream. Each read is one
 * broker round trip on a connection of its own: a consumer on
 * "<namespace>.events" starting at the offset the index remembered, the
 * first message at that offset decoded (common/event.h) for the request's
 * final event, the consumer cancelled. There is one such connection per
 * HTTP thread (ingress.threads, at most 8), since a read holds the thread
 * that serves it: reads run that many at once, each on a free connection
 * (rabbitmq-c is not thread-safe, so one read per connection at a time);
 * each is opened on first use and again after a failure, trying the next
 * node of amqp_url.
 * Thread-safe; never called with the index's lock held. */
#ifndef SLUICE_READBACK_H
#define SLUICE_READBACK_H

#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "metrics.h"
#include "status_index.h"

struct readback;

/* readback_new returns NULL on ENOMEM or an unusable amqp_url; cfg and
 * metrics must outlive it. It connects only when first asked. */
struct readback *readback_new(const struct cfg *cfg, struct metrics *metrics);
void readback_free(struct readback *rb);

/* readback_render appends id's status document to out, reading its result
 * back from the stream when it left memory. Returns 0, -ENOENT (unknown or
 * another tenant's), -EAGAIN (the read-back failed or timed out: the caller
 * answers 503 with Retry-After; never a document without the result), or a
 * buf error. rb may be NULL (no read-back: -EAGAIN for such a result). */
__attribute__((warn_unused_result)) int readback_render(struct readback *rb,
                                                        struct status_index *idx, const char *id,
                                                        const char *tenant, struct buf *out);

/* readback_fetch reads the message at offset and copies the result of id's
 * final event in it into *result (malloc'd, NUL-terminated; NULL when that
 * event has none). 0, -ENOENT (no final event of id there), or -EIO. */
__attribute__((warn_unused_result)) int readback_fetch(struct readback *rb, int64_t offset,
                                                       const char *id, char **result);

#endif
