/* retry.h: where a retry waits. Retries due within retry_hold_max_ms wait in
 * the worker (a min-heap of due times whose top is the event loop's timeout;
 * the message stays unacked, so a crash loses nothing); later ones wait in a
 * broker queue "<ns>.retry.<ms>" whose TTL sends them back to the requests
 * queue. Delays are rounded up to whole seconds there, so a handful of queues
 * serve every delay. */
#ifndef SLUICE_RETRY_H
#define SLUICE_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

struct retry_heap {
    struct job **jobs;
    size_t n, cap;
};

void retry_heap_init(struct retry_heap *h);
/* retry_heap_free frees the array, not the jobs (their owner does). */
void retry_heap_free(struct retry_heap *h);
__attribute__((warn_unused_result)) int retry_heap_push(struct retry_heap *h, struct job *job);
/* retry_heap_peek returns the job due first, or NULL. */
struct job *retry_heap_peek(const struct retry_heap *h);
struct job *retry_heap_pop(struct retry_heap *h);

/* retry_queue_delay_ms rounds a delay up to the retry queue that serves it. */
long retry_queue_delay_ms(long delay_ms);

#endif
