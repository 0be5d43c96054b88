/* ratelimit.h: the two shapes of a rate limit sluice enforces.
 *
 * A token bucket holds at most `burst` tokens and gains `rate` tokens per
 * second; a call takes one (a batch of n calls takes n). In any interval of T
 * seconds it admits at most burst + rate * T, which is the promise the docs
 * make for a route's rate_per_s and a key's rate_per_s.
 *
 * AIMD is the effective rate of a route whose backend pushes back (429 or 503
 * without Retry-After): each push halves it (at most once per second, since
 * the answers to one overload arrive together), and it then grows by a tenth
 * of its target each second until it is back at the target: the configured
 * rate, or, for a route with none, the rate it had when first cut (then the
 * route is unlimited again).
 *
 * Both are plain values the caller owns and serialises; times are monotonic
 * microseconds supplied by the caller, so tests drive them without sleeping. */
#ifndef SLUICE_RATELIMIT_H
#define SLUICE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct tbucket {
    double rate;  /* tokens per second; 0: unlimited */
    double burst; /* capacity, >= 1 */
    double tokens;
    int64_t at_us; /* when tokens was brought up to date */
};

/* tbucket_init starts full. rate 0 makes every take succeed; burst below 1
 * is taken as 1 (and as max(1, rate) when 0, the documented default). */
void tbucket_init(struct tbucket *b, double rate, double burst, int64_t now_us);
/* tbucket_set changes rate and burst, keeping the tokens earned so far (cut
 * to the new burst). */
void tbucket_set(struct tbucket *b, double rate, double burst, int64_t now_us);
/* tbucket_take takes n tokens and returns true when at least min(n, burst)
 * are there: a batch larger than the burst still passes, leaving a debt that
 * later takes wait for. Otherwise it takes nothing and returns false. */
bool tbucket_take(struct tbucket *b, double n, int64_t now_us);
/* tbucket_wait_us is how long until tbucket_take(b, n, ...) would succeed: 0
 * when it would now. */
int64_t tbucket_wait_us(struct tbucket *b, double n, int64_t now_us);
/* tbucket_tokens is the tokens available now (negative while in debt). */
double tbucket_tokens(struct tbucket *b, int64_t now_us);

struct aimd {
    double configured; /* the route's rate_per_s; 0: none */
    double rate;       /* effective; 0 while no cut is in force (then: configured) */
    double target;     /* what increases climb back to */
    int64_t cut_us;    /* the last decrease */
    int64_t step_us;   /* the last increase */
};

void aimd_init(struct aimd *a, double configured);
/* aimd_set_configured changes the configured rate (a runtime override); a cut
 * in force stays, bounded by the new rate. */
void aimd_set_configured(struct aimd *a, double configured, int64_t now_us);
/* aimd_decrease halves the effective rate. observed is the route's recent
 * call rate, the starting point when nothing limits it yet. A decrease within
 * a second of the previous one is ignored. */
void aimd_decrease(struct aimd *a, double observed, int64_t now_us);
/* aimd_rate applies the increases due by now and returns the rate in force:
 * 0 means unlimited. */
double aimd_rate(struct aimd *a, int64_t now_us);
/* aimd_cut tells whether a decrease is still in force. */
bool aimd_cut(const struct aimd *a);

#endif
