/* acks.h: how the worker settles a batch with the broker once every publish
 * its outcomes needed is confirmed. The broker handles one multiple ack as
 * one message to the queue's process, where individual acks cost one each:
 * under load that process is the broker's busiest (docs/performance.md), so
 * a batch is acked with one multiple ack of its newest delivery tag when
 * that settles exactly the batch's deliveries. Pure logic, tested without a
 * broker (tests/unit/test_acks.c). */
#ifndef SLUICE_ACKS_H
#define SLUICE_ACKS_H

#include <stdint.h>

#include "job.h"
#include "retry.h"

/* The deliveries the worker still holds besides the batch being settled:
 * batches in flight (a list through batch->next, which may include the batch
 * itself), the forming batch (may be NULL), the held retries and the jobs
 * waiting for their calls (n_lines lines, each linked through
 * job->wait_next; lines may be NULL when n_lines is 0). */
struct acks_others {
    const struct batch *inflight;
    const struct batch *forming;
    const struct retry_heap *held;
    struct job *const *lines;
    size_t n_lines;
};

/* acks_multiple_tag returns the newest delivery tag of b when one multiple
 * ack of it settles exactly b's deliveries: no delivery the worker still
 * holds outside b is older, and every job of b is to be acked (none is
 * dead-lettered with a nack). Else 0: ack (or nack) each delivery alone. */
uint64_t acks_multiple_tag(const struct batch *b, const struct acks_others *o);

#endif
