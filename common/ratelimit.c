/* ratelimit.c: token buckets and AIMD (see ratelimit.h). */
#include "ratelimit.h"

#include <math.h>

#define US_PER_S 1000000.0
/* AIMD_FLOOR keeps a pushed-back route moving: its calls are retried, not
 * lost, so one call a second is enough to notice the backend recovering. */
#define AIMD_FLOOR 1.0
#define AIMD_STEP_US 1000000
#define AIMD_STEPS 10 /* increases from a halving back to the target, at most */

static double default_burst(double rate, double burst)
{
    if (burst <= 0) burst = rate;
    return burst < 1 ? 1 : burst;
}

static void refill(struct tbucket *b, int64_t now_us)
{
    if (now_us <= b->at_us) return;
    b->tokens += b->rate * (double)(now_us - b->at_us) / US_PER_S;
    if (b->tokens > b->burst) b->tokens = b->burst;
    b->at_us = now_us;
}

void tbucket_init(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    b->rate = rate > 0 ? rate : 0;
    b->burst = default_burst(b->rate, burst);
    b->tokens = b->burst;
    b->at_us = now_us;
}

void tbucket_set(struct tbucket *b, double rate, double burst, int64_t now_us)
{
    refill(b, now_us);
    b->rate = rate > 0 ? rate : 0;
    b->burst = default_burst(b->rate, burst);
    if (b->rate == 0 || b->tokens > b->burst) b->tokens = b->burst;
}

static double needed(const struct tbucket *b, double n)
{
    return n < b->burst ? n : b->burst;
}

bool tbucket_take(struct tbucket *b, double n, int64_t now_us)
{
    if (b->rate == 0) return true;
    refill(b, now_us);
    /* The epsilon absorbs the rounding of many small refills. */
    if (b->tokens + 1e-9 < needed(b, n)) return false;
    b->tokens -= n;
    return true;
}

int64_t tbucket_wait_us(struct tbucket *b, double n, int64_t now_us)
{
    if (b->rate == 0) return 0;
    refill(b, now_us);
    double missing = needed(b, n) - b->tokens;
    if (missing <= 1e-9) return 0;
    return (int64_t)ceil(missing / b->rate * US_PER_S);
}

double tbucket_tokens(struct tbucket *b, int64_t now_us)
{
    if (b->rate == 0) return b->burst;
    refill(b, now_us);
    return b->tokens;
}

void aimd_init(struct aimd *a, double configured)
{
    *a = (struct aimd){.configured = configured > 0 ? configured : 0};
}

void aimd_set_configured(struct aimd *a, double configured, int64_t now_us)
{
    a->configured = configured > 0 ? configured : 0;
    if (!aimd_cut(a)) return;
    aimd_rate(a, now_us);
    if (a->configured > 0) {
        a->target = a->configured;
        if (a->rate > a->configured) a->rate = a->configured;
    }
}

void aimd_decrease(struct aimd *a, double observed, int64_t now_us)
{
    if (aimd_cut(a) && now_us - a->cut_us < AIMD_STEP_US) return;
    double base = aimd_rate(a, now_us);
    if (base == 0) base = observed > AIMD_FLOOR ? observed : AIMD_FLOOR;
    if (!aimd_cut(a)) a->target = a->configured > 0 ? a->configured : base;
    a->rate = base / 2 > AIMD_FLOOR ? base / 2 : AIMD_FLOOR;
    a->cut_us = a->step_us = now_us;
}

double aimd_rate(struct aimd *a, int64_t now_us)
{
    if (!aimd_cut(a)) return a->configured;
    int64_t steps = (now_us - a->step_us) / AIMD_STEP_US;
    if (steps > 0) {
        a->rate += (double)steps * a->target / AIMD_STEPS;
        a->step_us += steps * AIMD_STEP_US;
        if (a->rate >= a->target) a->rate = 0; /* recovered: the configured rate again */
    }
    return a->rate > 0 ? a->rate : a->configured;
}

bool aimd_cut(const struct aimd *a)
{
    return a->rate > 0;
}
