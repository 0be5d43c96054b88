/* drain.c: lane arrival and departure counting (see drain.h). */
#include "drain.h"

#define TICKET_MASK ((UINT32_C(1) << DRAIN_TICKET_BITS) - 1)

uint32_t drain_arrive(struct drain *d)
{
    /* Ticket 0 means "none": that arrival number is skipped, and counted as
     * departed at once so that positions stay right. */
    if ((++d->arrived & TICKET_MASK) == 0) {
        d->departed++;
        ++d->arrived;
    }
    return d->arrived & TICKET_MASK;
}

void drain_depart(struct drain *d, int64_t ts_ms)
{
    int64_t s = ts_ms / 1000;
    int i = (int)(s % DRAIN_WINDOW_S);
    d->departed++;
    if (d->second[i] != s) {
        d->second[i] = s;
        d->count[i] = 0;
    }
    d->count[i]++;
}

uint32_t drain_ahead(const struct drain *d, uint32_t ticket)
{
    /* The arrival number the ticket stands for: the latest one with these
     * low bits. Unsigned differences survive the counters' wrapping; one
     * past half the range means more departed than arrived before it. */
    uint32_t seq = d->arrived - ((d->arrived - ticket) & TICKET_MASK);
    uint32_t ahead = seq - 1 - d->departed;
    return ahead < UINT32_C(0x80000000) ? ahead : 0;
}

double drain_rate(const struct drain *d, int64_t now_ms)
{
    int64_t now = now_ms / 1000, oldest = now + 1;
    uint64_t n = 0;
    for (int i = 0; i < DRAIN_WINDOW_S; i++) {
        /* A worker's clock a little ahead of ours still counts as now. */
        if (d->count[i] == 0 || d->second[i] <= now - DRAIN_WINDOW_S || d->second[i] > now + 5)
            continue;
        n += d->count[i];
        if (d->second[i] < oldest) oldest = d->second[i];
    }
    if (n == 0) return 0;
    /* Over the seconds since the oldest departure counted: a lane that began
     * draining 3 s ago is not diluted by 27 s of nothing before. */
    int64_t span = now - oldest + 1;
    if (span < 1) span = 1;
    return (double)n / (double)span;
}
