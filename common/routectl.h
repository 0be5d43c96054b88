/* routectl.h: the routes' runtime state an operator sets through the admin
 * API (paused, and overrides of rate_per_s and max_in_flight), shared by
 * every ingress and worker of a namespace through the <ns>.admin stream.
 *
 * Each change appends the whole new state as one message (a snapshot:
 * {"v":1,"ts":<ms>,"by":"<key id>","routes":{"<name>":{"paused":true,
 * "rate_per_s":5,"max_in_flight":2},...}}; a route absent is running
 * without overrides). A reader starts at the stream's last chunk, which
 * stream retention never deletes, and follows: the last snapshot read is
 * the state. So the state survives every restart with no store but the
 * broker, and a change reaches every reader within a stream round trip.
 * Two changes made at the same instant through two ingress replicas: the
 * later snapshot wins whole (an operator's action is rare; the answer and
 * GET /v1/admin/routes show what holds).
 *
 * The reader is a thread with its own connection; its owner polls
 * routectl_fd and takes the state with routectl_take. */
#ifndef SLUICE_ROUTECTL_H
#define SLUICE_ROUTECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

/* A route's runtime state; indexed like cfg->routes. */
struct route_ctl {
    bool paused;
    double rate_per_s;  /* an override, or -1: the configured one */
    long max_in_flight; /* an override, or -1 */
};

/* routectl_clear sets n states to running without overrides. */
void routectl_clear(struct route_ctl *ctl, size_t n);
/* routectl_encode appends the snapshot of ctl (cfg->n_routes states) to out. */
__attribute__((warn_unused_result)) int routectl_encode(const struct cfg *cfg,
                                                        const struct route_ctl *ctl, const char *by,
                                                        int64_t ts_ms, struct buf *out);
/* routectl_decode reads a snapshot into ctl (cfg->n_routes states; routes
 * this configuration does not have are ignored). 0, or -1 when msg is not a
 * snapshot (ctl is then untouched). */
__attribute__((warn_unused_result)) int routectl_decode(const struct cfg *cfg, const char *msg,
                                                        size_t len, struct route_ctl *ctl);

struct routectl;

/* routectl_new starts the reader; cfg must outlive it. NULL on failure. */
struct routectl *routectl_new(const struct cfg *cfg, const char *name);
void routectl_free(struct routectl *r);
/* routectl_fd is readable when a new state was read (an eventfd). */
int routectl_fd(const struct routectl *r);
/* routectl_ready tells whether the reader has the state: it read the last
 * snapshot, or its consumer met an empty stream (nothing delivered within
 * ROUTECTL_SETTLE_MS of subscribing). Until then a worker starts no call. */
bool routectl_ready(const struct routectl *r);
/* routectl_take copies the state into ctl (cfg->n_routes) and empties the
 * fd; returns the number of snapshots read so far. */
uint64_t routectl_take(struct routectl *r, struct route_ctl *ctl);

#define ROUTECTL_SETTLE_MS 1000

#endif
