/* breaker.h: a circuit breaker for one upstream.
 *
 * Closed, it lets every call through and counts failures (connect errors,
 * timeouts, 5xx: what the caller reports as failures). It opens after
 * `consecutive_failures` failures in a row, or when at least `min_calls`
 * calls of the last `window_s` seconds failed in a ratio of `failure_ratio`
 * or more. Open, it lets nothing through for open_ms; then it lets one probe
 * through (half-open). The probe's success closes it; its failure opens it
 * again for twice as long as the last time, up to max_open_ms.
 *
 * A closed breaker is on trial until a call succeeds, and again after each
 * failure: the caller then sends the upstream one call at a time, so that a
 * dead upstream costs consecutive_failures calls, not a whole batch of them.
 *
 * A breaker is a value the caller owns and serialises; times are monotonic
 * milliseconds supplied by the caller. */
#ifndef SLUICE_BREAKER_H
#define SLUICE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define BREAKER_MAX_WINDOW_S 3600

/* What opens and closes a breaker. A zero trigger is off; a policy with both
 * triggers off never opens (enabled is false). */
struct breaker_policy {
    bool enabled;
    long consecutive_failures;
    double failure_ratio; /* 0 < ratio <= 1 */
    long window_s;        /* 1..BREAKER_MAX_WINDOW_S */
    long min_calls;
    long open_ms;
    long max_open_ms;
};

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

/* A second of the failure-ratio window. */
struct breaker_slot {
    int64_t second;
    uint32_t calls, failures;
};

struct breaker {
    const struct breaker_policy *policy; /* borrowed: outlives the breaker */
    enum breaker_state state;
    long consecutive;
    int64_t open_until_ms;
    long open_ms;               /* the length of the current or last open period */
    bool probing;               /* half-open: the probe is under way */
    bool proven;                /* a call succeeded since it started or last closed */
    long opened;                /* times it opened, for metrics */
    struct breaker_slot *slots; /* window_s of them, owned; NULL without a ratio trigger */
};

/* breaker_init starts closed. Returns 0, or -1 when out of memory. */
__attribute__((warn_unused_result)) int breaker_init(struct breaker *b,
                                                     const struct breaker_policy *policy);
void breaker_free(struct breaker *b);

/* breaker_allow tells whether a call may start now. An open breaker whose
 * time is up turns half-open and allows exactly one call, the probe; the
 * caller must report its outcome with breaker_record (or breaker_cancel). */
bool breaker_allow(struct breaker *b, int64_t now_ms);
/* breaker_record reports the outcome of a call that breaker_allow let through. */
void breaker_record(struct breaker *b, bool failed, int64_t now_ms);
/* breaker_cancel reports that an allowed call never ran (so a probe slot is freed). */
void breaker_cancel(struct breaker *b);
/* breaker_state is the state now (an open breaker whose time is up reads half-open). */
enum breaker_state breaker_state(const struct breaker *b, int64_t now_ms);
/* breaker_on_trial tells whether a closed breaker's upstream should get one
 * call at a time: no call has succeeded yet, or the last one failed. */
bool breaker_on_trial(const struct breaker *b);
/* breaker_next_ms is when an open breaker next allows a probe (0 when not open). */
int64_t breaker_next_ms(const struct breaker *b);
const char *breaker_state_name(enum breaker_state s);

#endif
