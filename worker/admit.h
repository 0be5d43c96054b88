/* admit.h: where a worker's jobs wait for their call to be allowed. Each
 * route has a first-in, first-out line of jobs in delivery order (its
 * lane's priority order); admit_pump lets them go as the shaper (shaper.h)
 * allows: at the route's rate, within its max_in_flight, to an upstream
 * whose breaker is closed. A waiting job stays unacked, so a crash loses
 * nothing, and spends no attempt. Belongs to the consumer's thread; the
 * jobs stay the consumer's (admit only links them). */
#ifndef SLUICE_ADMIT_H
#define SLUICE_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "shaper.h"

struct admit;

/* admit_new makes a line per route of cfg; both cfg and sh must outlive
 * it. NULL on ENOMEM. */
struct admit *admit_new(const struct cfg *cfg, struct shaper *sh);
/* admit_free frees the lines, not the jobs still in them (admit_take_all first). */
void admit_free(struct admit *a);

/* admit_push puts job (whose route is configured) at the back of its
 * route's line, or at the front: a held retry that is due again. */
void admit_push(struct admit *a, struct job *job, bool front);

struct admit_hooks {
    void *arg;
    /* go takes a job whose call may start now (job->call says where), with
     * the jobs that join its call linked through wait_next (NULL-terminated):
     * on a route with batch_url, up to batch_max - 1 more jobs of the line,
     * each with a rate token (shaper_join) but no admission of its own
     * (admitted false), all with the head's job->group. The owner sends a
     * group as one batch call, so the route's batch calls in flight are its
     * calls in flight. A job delivered before without an outcome (called
     * alone, consumer.c) neither joins nor is joined. */
    void (*go)(void *arg, struct job *job);
    /* blocked tells once per wait and reason (job->reason_sent: the route
     * is paused, or) that job waits because every upstream of
     * its route has an open breaker. */
    void (*blocked)(void *arg, struct job *job);
};

/* admit_pump lets every job go that may at now_us (monotonic), in line
 * order per route (a group at a time), and returns when it should run again at the latest
 * (INT64_MAX: only when something changes, a call ending or a job coming). */
int64_t admit_pump(struct admit *a, int64_t now_us, const struct admit_hooks *h);

/* admit_waiting is the number of jobs waiting for route i. */
size_t admit_waiting(const struct admit *a, size_t i);
/* admit_heads is every line's first job (NULL when empty), cfg->n_routes of
 * them, each line linked through job->wait_next: for the ack guard. */
struct job *const *admit_heads(const struct admit *a);
/* admit_take_all empties every line and returns their jobs linked through
 * job->wait_next. */
struct job *admit_take_all(struct admit *a);

#endif
