/* batchcall.h: batch delivery. A route with batch_url receives its requests
 * of one worker batch as POSTs of up to batch_max requests each:
 *   {"requests":[{"id","method","path","query","headers":{...},
 *                 "body" | "body_text" | "body_base64"}...]}
 * (bodies as the status shows them: JSON embedded, UTF-8 text, else
 * base64; headers as a single call would send them, each item with its own
 * Idempotency-Key and traceparent), and answers
 *   {"results":[{"id","status","headers":{...},"body" | "body_text" | "body_base64"}...]}
 * Each item's answer is given to its job as a single call's would be, so
 * results.c judges it alike (2xx succeeded; 408, 429, 5xx retried; other
 * answers failed). An item missing from the answer (or malformed), and
 * every item of a batch call that failed whole (no answer, a non-2xx
 * answer, not that document), gets a retryable failure: each is retried on
 * its own schedule with the route's backoff, in whatever batch it then
 * joins. The batch call itself is signed (webhook-id: a delivery ID of its
 * own) and carries a traceparent of a trace of its own.
 *
 * Ownership: a batchcall borrows its jobs (they stay in their worker batch)
 * and frees itself after calling back. */
#ifndef SLUICE_BATCHCALL_H
#define SLUICE_BATCHCALL_H

#include "dispatch.h"
#include "job.h"

/* What the owner hears back: per job, its call is over (its outcome set as
 * dispatch_run sets a single call's), and once per batch call, before the
 * jobs, how the batch call itself went (for the route's shaper), with the
 * call's jobs. */
struct batchcall_hooks {
    void *arg;
    void (*call_over)(void *arg, struct job **jobs, size_t n, bool transport_error, long status,
                      long retry_after_ms);
    void (*job_done)(void *arg, struct job *job);
};

/* batchcall_start POSTs jobs[0..n) (n <= route's batch_max, one route with
 * batch_url) to the route's batch_url. Returns 0, or -1 when the call could
 * not start (hooks never called; the jobs are untouched). */
__attribute__((warn_unused_result)) int batchcall_start(struct dispatch *d, const struct cfg *cfg,
                                                        struct job **jobs, size_t n,
                                                        const struct batchcall_hooks *hooks);
/* A batch call still running when the connection is lost is stopped with
 * dispatch_drop_calls, without calling back (its jobs are dropped). */

/* The pure parts, unit-tested. batchcall_request_body appends the request
 * document of jobs[0..n) to out; -1 on failure. */
__attribute__((warn_unused_result)) int batchcall_request_body(struct buf *out, struct job **jobs,
                                                               size_t n, int64_t now_s);
/* batchcall_apply gives each job its outcome from the batch call's answer
 * (curl code, HTTP status, body of len bytes), with answers cut at
 * result_max bytes. */
void batchcall_apply(struct job **jobs, size_t n, CURLcode code, long status, const char *body,
                     size_t len, size_t result_max);

#endif
