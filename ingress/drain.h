/* drain.h: how fast a lane empties, as the ingress sees it in the events
 * stream, for a queued request's position and estimated wait (docs/api.md).
 *
 * Every replica reads every event, so each counts the same arrivals (a
 * request first seen "queued") and departures (such a request's first
 * other state: a worker took it). A request that arrived as the n-th has
 * n - departed - 1 requests ahead of it if the lane is first in, first out:
 * priorities and several workers reorder it a little, so the position is
 * approximate. The drain rate is
 * the departures of the last DRAIN_WINDOW_S seconds, by the events' own
 * times, so a replica reading old events at start counts none of them.
 *
 * A plain value the caller owns and serialises (the status index, under its
 * lock); times are real-time milliseconds the caller supplies. */
#ifndef SLUICE_DRAIN_H
#define SLUICE_DRAIN_H

#include <stdint.h>

#define DRAIN_WINDOW_S 30
/* An arrival is remembered as a ticket of this many bits (the status index
 * packs it into its entries): positions are right while fewer than 2^20
 * requests arrive in one lane during one request's wait. */
#define DRAIN_TICKET_BITS 20

struct drain {
    uint32_t arrived;  /* arrivals counted so far (wraps; only differences matter) */
    uint32_t departed; /* departures of those */
    int64_t second[DRAIN_WINDOW_S];
    uint32_t count[DRAIN_WINDOW_S]; /* departures in second[i] */
};

/* drain_arrive counts an arrival and returns its ticket: below
 * 2^DRAIN_TICKET_BITS and never 0 (0 means "no arrival" to the caller). */
uint32_t drain_arrive(struct drain *d);
/* drain_depart counts the departure of an arrival, at its event's time. */
void drain_depart(struct drain *d, int64_t ts_ms);
/* drain_ahead is how many arrivals before ticket's have not departed yet,
 * floored at 0 (the lane may not be first in, first out). */
uint32_t drain_ahead(const struct drain *d, uint32_t ticket);
/* drain_rate is the departures per second over the window ending at now_ms,
 * or 0 when the window holds none (no rate is known). */
double drain_rate(const struct drain *d, int64_t now_ms);

#endif
