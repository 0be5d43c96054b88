/* fleet.h: the ingress's view of the worker fleet, made of the latest
 * report of each worker (common/report.h), for GET /v1/admin/routes.
 *
 * It keeps at most max_workers workers; a worker not heard from for
 * stale_ms no longer counts and its place can be taken; a worker's "bye"
 * removes it at once. A route's view sums the live workers' calls in
 * flight and rates, and gives each upstream the worst state any of them
 * sees (open, then half_open, then closed) with how many see it open or
 * half-open. Pure bookkeeping with times supplied by the caller, tested
 * without a broker (tests/unit/test_fleet.c); the reader of the reports is
 * ingress/reports.h. Thread-safe: one thread puts, HTTP threads read. */
#ifndef SLUICE_FLEET_H
#define SLUICE_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "report.h"

#define FLEET_MAX_WORKERS 1024

struct fleet;

/* fleet_new: cfg must outlive it. NULL on ENOMEM. */
struct fleet *fleet_new(const struct cfg *cfg, size_t max_workers, int64_t stale_ms);
void fleet_free(struct fleet *f);

/* fleet_put takes rep, read at now_ms (monotonic) and real_ms (the real
 * clock), as its worker's latest, and gives back a report the caller owns
 * (to read the next one into): the worker's previous one, or that of the
 * silent worker whose place it took, rep itself when it was a bye or there
 * is no room, or NULL (make a new one). rep must be made for the fleet's cfg. */
struct report *fleet_put(struct fleet *f, struct report *rep, int64_t now_ms, int64_t real_ms);

/* A route's upstream as the fleet sees it. */
struct fleet_upstream {
    enum breaker_state state; /* the worst any live worker sees */
    size_t open, half_open;   /* how many live workers see it so */
    int64_t open_until_ms;    /* real time the last of them stays open; 0 when none is open */
};

struct fleet_route {
    size_t workers; /* live workers */
    long in_flight;
    double rate, failure_rate;
    struct fleet_upstream *ups; /* the caller's: cfg's n_upstreams of the route */
};

/* fleet_route fills out (whose ups the caller provides) with route's view at now_ms. */
void fleet_route(struct fleet *f, size_t route, int64_t now_ms, struct fleet_route *out);
/* fleet_workers counts the live workers at now_ms. */
size_t fleet_workers(struct fleet *f, int64_t now_ms);
/* fleet_refused counts the reports refused for want of room. */
uint64_t fleet_refused(struct fleet *f);

#endif
