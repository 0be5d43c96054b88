/* shaper.h: when a route's next backend call may start, and to which
 * upstream. Per route it keeps a token bucket at the effective rate
 * (rate_per_s and burst, cut by AIMD while the backend pushes back), the
 * calls in flight against max_in_flight, a hold until a Retry-After, and a
 * circuit breaker per upstream; a call goes to the healthy upstream with the
 * fewest calls in flight, round robin among equals.
 *
 * One worker shapes a limited route for the whole fleet: its lane has a
 * single active consumer (common/topology.h), so these per-worker limits
 * are the fleet's. Routes are indexed like cfg->routes. Pure logic with
 * times supplied by the caller (monotonic microseconds), tested without a
 * broker or a backend in tests/unit/test_shaper.c. Belongs to one thread. */
#ifndef SLUICE_SHAPER_H
#define SLUICE_SHAPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "config.h"
#include "routectl.h"

struct shaper;

/* shaper_new keeps state for every route of cfg (which must outlive it).
 * NULL on ENOMEM. */
struct shaper *shaper_new(const struct cfg *cfg);
void shaper_free(struct shaper *s);

enum shaper_verdict {
    SHAPER_GO,      /* start the call now, to *upstream; report it with shaper_done */
    SHAPER_WAIT,    /* a limit: ask again at *until_us, or when a call of the route ends (0) */
    SHAPER_BLOCKED, /* every upstream's breaker is open: ask again at *until_us, or when a
                       probe ends (0) */
    SHAPER_PAUSED,  /* an operator paused the route: ask again after shaper_control */
};

/* A started call, as shaper_admit hands it out and shaper_done takes it back. */
struct shaper_call {
    size_t upstream;
    bool probe; /* the half-open probe of its upstream's breaker */
};

/* shaper_admit tells whether a call of route may start at now_us. GO counts
 * it in flight and takes a token: shaper_done must follow, once. */
enum shaper_verdict shaper_admit(struct shaper *s, size_t route, int64_t now_us,
                                 struct shaper_call *call, int64_t *until_us);

/* shaper_join lets one more item ride the call shaper_admit just started
 * for route (a batch call: batch delivery, batchcall.h). A batch call counts
 * as one call in flight, and each of its items as one call toward the rate,
 * so an item joining takes one token of the bucket and nothing else: no
 * call in flight, no upstream, no breaker trial. It never waits: false when
 * no whole token is there now (or the route is held or paused), and the
 * item then waits for a call of its own. */
bool shaper_join(struct shaper *s, size_t route, int64_t now_us);

/* What a call's answer says about its backend. */
struct shaper_outcome {
    bool cancelled;      /* the call never ran: undo its admission */
    bool failed;         /* for the breaker: a connect error, a timeout, a 5xx */
    bool pushback;       /* 429 or 503: the backend asks for less */
    long retry_after_ms; /* with pushback: its Retry-After, or -1 */
};

/* shaper_outcome_of classifies a finished call: transport_error is a curl
 * error other than a bad URL, status the HTTP status (0 without an answer). */
struct shaper_outcome shaper_outcome_of(bool transport_error, long status, long retry_after_ms);

/* shaper_done ends a call shaper_admit started. A pushback with Retry-After
 * holds every new call of the route until then (capped by the route's
 * backoff_max_ms); without it, the route's effective rate is halved and
 * climbs back step by step (common/ratelimit.h). */
void shaper_done(struct shaper *s, size_t route, const struct shaper_call *call,
                 const struct shaper_outcome *o, int64_t now_us);

/* shaper_control applies an operator's state of route (routectl.h): paused
 * (no call starts; those in flight finish), and overrides of rate_per_s and
 * max_in_flight (-1: the configured ones). */
void shaper_control(struct shaper *s, size_t route, const struct route_ctl *ctl, int64_t now_us);
bool shaper_paused(const struct shaper *s, size_t route);

/* shaper_reset forgets every call in flight (the connection was lost and
 * the worker dropped them); breakers and rates stay. */
void shaper_reset(struct shaper *s);

/* For metrics. shaper_rate is the effective rate (0: unlimited). */
double shaper_rate(struct shaper *s, size_t route, int64_t now_us);
long shaper_in_flight(const struct shaper *s, size_t route);
enum breaker_state shaper_breaker(const struct shaper *s, size_t route, size_t upstream,
                                  int64_t now_us);
/* shaper_breaker_next_ms is when an open breaker next lets a probe through
 * (monotonic ms; 0 when it is not open). */
int64_t shaper_breaker_next_ms(const struct shaper *s, size_t route, size_t upstream);
long shaper_breaker_opened(const struct shaper *s, size_t route, size_t upstream);

#endif
