/* keylimits.h: per-key limits (docs/api.md "Per-key limits").
 *
 * Rate: a key with rate_per_s > 0 has a token bucket (common/ratelimit.h)
 * of burst tokens (default max(1, rate)) refilled at rate_per_s; each
 * submission takes one. Several ingress replicas share one key's budget:
 * each publishes a heartbeat on the events stream every LIMITS_HEARTBEAT_MS
 * and each runs its bucket at rate / n and burst / n (at least 1), n the
 * replicas heard from within LIMITS_ALIVE_MS (itself included). A client
 * spread evenly over the replicas (what a balancer does) gets the key's
 * rate; one that sticks to a single replica gets its share only.
 *
 * Queue quota: a key with max_queued > 0 admits a submission only while its
 * tenant has fewer requests not yet final: those the status index knows
 * plus those this replica is publishing.
 *
 * Thread-safe. */
#ifndef SLUICE_KEYLIMITS_H
#define SLUICE_KEYLIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "status_index.h"

#define LIMITS_HEARTBEAT_MS 2000
#define LIMITS_ALIVE_MS 6500 /* three heartbeats and a half */

struct limits;

/* limits_new: cfg, index and metrics (NULL: none) must outlive it;
 * instance is this replica's id. NULL on ENOMEM. */
struct limits *limits_new(const struct cfg *cfg, struct status_index *index,
                          struct metrics *metrics, const char *instance);
void limits_free(struct limits *l);

/* limits_heartbeat notes that replica instance was alive at ts_ms (its
 * clock); now_ms is this one's. */
void limits_heartbeat(struct limits *l, const char *instance, int64_t ts_ms, int64_t now_ms);
/* limits_replicas is how many replicas share the keys' rates now. */
int limits_replicas(struct limits *l, int64_t now_ms);

/* What a limited key's answers say (RateLimit-* headers). */
struct limit_info {
    bool limited;       /* the key has a rate: send the headers */
    long limit;         /* the key's burst (RateLimit-Limit) */
    long remaining;     /* whole tokens left across the replicas (RateLimit-Remaining) */
    long reset_s;       /* seconds until the bucket is full again (RateLimit-Reset) */
    long retry_after_s; /* seconds until a token (Retry-After), at least 1 */
};

/* limits_rate takes a token for one submission of key at now_ms (wall
 * clock, for the heartbeats) and now_us (monotonic, for the bucket): true,
 * or false when there is none (429 rate_limited). It fills info. */
bool limits_rate(struct limits *l, const struct cfg_key *key, int64_t now_ms, int64_t now_us,
                 struct limit_info *info);
/* limits_queue admits one more request of tenant (key's, or its token's)
 * not yet final, and counts it pending until limits_done: true, or false
 * past key's max_queued. */
bool limits_queue(struct limits *l, const struct cfg_key *key, const char *tenant);
/* limits_done ends a submission limits_queue admitted. */
void limits_done(struct limits *l, const struct cfg_key *key);
/* limits_peek fills info without taking anything (other answers of the key). */
void limits_peek(struct limits *l, const struct cfg_key *key, int64_t now_ms, int64_t now_us,
                 struct limit_info *info);

#endif
