/* outbox.h: what the worker publishes about its jobs, over its broker
 * session: events messages (one per batch, or for jobs that wait), a copy
 * of a request for its retry (to the delay exchange, addressed to its lane),
 * to the dead queue, or to its lane (a request that came from elsewhere).
 * A copy or events message tracked by a batch counts in its unconfirmed
 * publishes; the session reports the confirm with the batch as token. */
#ifndef SLUICE_OUTBOX_H
#define SLUICE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "intake.h"
#include "job.h"
#include "session.h"

struct outbox;

/* outbox_new publishes over session for cfg, naming lanes as in (all must
 * outlive it). NULL on ENOMEM. */
struct outbox *outbox_new(const struct cfg *cfg, struct session *session, const struct intake *in);
void outbox_free(struct outbox *o);

/* outbox_events publishes the events of the n jobs as one message: in
 * state, or each job's own when state < 0, with reason when not NULL. Jobs
 * being rerouted are left out (nothing about them changed). With track, b
 * waits for its confirm. A failure breaks the session. */
void outbox_events(struct outbox *o, struct job *const *jobs, size_t n, int state,
                   const char *reason, struct batch *track);

/* What a copy of a request is for. */
enum outbox_copy {
    COPY_RETRY, /* wait job->delay_ms in a delay queue, then back to its lane */
    COPY_DEAD,  /* the dead queue */
    COPY_LANE,  /* its route's lane, now */
};
/* outbox_copy publishes a copy of job's request, tracked by job->batch.
 * Returns a session_publish status (SESSION_REFUSED: it cannot be re-encoded). */
int outbox_copy(struct outbox *o, struct job *job, enum outbox_copy what);

#endif
