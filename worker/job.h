/* job.h: a request inside the worker, from delivery to ack, and the batch it
 * travels in. consumer.c owns both; dispatch.c and results.c fill in the call
 * and its outcome, poison.c makes the job of a delivery that is not a valid
 * request, acks.c decides how a batch is acked. */
#ifndef SLUICE_JOB_H
#define SLUICE_JOB_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "envelope.h"
#include "event.h"
#include "shaper.h"
#include "trace.h"

struct batch;

/* Why a job waits for its call, as its status says (job->reason_sent). */
enum { JOB_WAIT_NONE, JOB_WAIT_BREAKER, JOB_WAIT_PAUSED };

/* What the worker does with a request once its call is over. */
enum job_next {
    NEXT_FINAL,       /* succeeded, failed or dead: publish the result, then ack */
    NEXT_HOLD,        /* retry soon: keep it (unacked) and call again when due */
    NEXT_RETRY_QUEUE, /* retry later: republish to a delay queue, then ack */
    NEXT_REROUTE,     /* it came from a queue that is not its lane: republish it there */
};

struct job {
    struct envelope env; /* env.attempts counts the calls made so far */
    uint64_t delivery_tag;
    const struct cfg_route *route; /* NULL if the route is no longer configured */
    struct batch *batch;           /* the batch it is settling in, or NULL while held */

    /* Admission (admit.h): waiting in its route's line, then a call the
     * shaper counts until it ends. */
    struct job *wait_next;
    struct shaper_call call;
    bool admitted;       /* call is counted by the shaper: report its end */
    uint8_t reason_sent; /* JOB_WAIT_*: why its status says it waits */
    /* The admission group (admit.h) it was let go in, 0 for none: on a route
     * with batch_url, the jobs of one group share one batch call and the one
     * admission a member of it holds (admitted). */
    uint64_t group;

    /* The backend call (dispatch.c). */
    CURL *easy;
    struct curl_slist *req_headers;
    struct buf resp_body;
    struct buf resp_headers; /* JSON object members: "name":"value",... */
    bool json_body;          /* the answer's Content-Type names JSON */
    long retry_after_ms;     /* the answer's Retry-After, or -1 */
    bool truncated;
    long http_status; /* 0 when no HTTP answer came */
    CURLcode curl_code;
    char curl_error[CURL_ERROR_SIZE];
    double call_seconds; /* how long the finished call took, from curl */
    bool in_batch_call;  /* its call is an item of a batch call (batchcall.h) */
    /* The call's trace (outbound.h), for the log lines about it. */
    char trace_id[TRACE_ID_HEX + 1];
    char span_id[TRACE_SPAN_HEX + 1];

    /* The outcome (results.c). */
    enum req_state state;
    enum job_next next;
    long delay_ms;     /* NEXT_HOLD / NEXT_RETRY_QUEUE */
    char *result_json; /* owned, NULL if none */
    char *error_json;  /* owned, NULL if none */

    int64_t due_ms; /* NEXT_HOLD: monotonic time of the next call */
    /* A retry this worker held: its delivery no longer tells how many calls
     * were made, so it leaves through a delay queue, never by a requeue. */
    bool retried_here;
    /* Settle with a nack without requeue, so the broker dead-letters the
     * delivery as it came: it could not be decoded, or not re-encoded for
     * its retry or dead copy. */
    bool dead_letter;
};

/* A batch: dispatched together, settled together with one events message,
 * acked together once every publish it made is confirmed (acks.h). */
struct batch {
    struct job **jobs;
    size_t n, cap;
    size_t calling;      /* calls still running */
    int unconfirmed;     /* publishes not yet confirmed */
    bool refused;        /* a publish was nacked or returned: requeue instead of ack */
    bool deliveries_due; /* its callbacks and results go out once its events are confirmed */
    int64_t first_ms;    /* when its first job joined (for batch_linger_ms) */
    struct batch *next;
};

/* job_new returns an empty job for delivery tag, or NULL on ENOMEM. */
struct job *job_new(uint64_t delivery_tag);
/* job_free frees the job and what it owns (not its curl handle: dispatch's). */
void job_free(struct job *job);
/* batch_push appends job and makes b its batch; -1 on ENOMEM. */
__attribute__((warn_unused_result)) int batch_push(struct batch *b, struct job *job);
/* batch_free frees b and its jobs. NULL is a no-op. */
void batch_free(struct batch *b);

#endif
