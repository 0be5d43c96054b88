/* backoff.h: retry delays. Exponential backoff with full jitter: the n-th retry
 * waits a uniformly random time in [0, min(cap, base * 2^(n-1))] ms, which
 * spreads a fleet's retries instead of synchronising them. A backend's
 * Retry-After replaces the random delay, still bounded by the cap. */
#ifndef SLUICE_BACKOFF_H
#define SLUICE_BACKOFF_H

#include <stdint.h>
#include <time.h>

/* backoff_ceiling_ms is min(cap_ms, base_ms * 2^(retry-1)) for retry >= 1, without overflow. */
long backoff_ceiling_ms(long base_ms, long cap_ms, int retry);
/* backoff_delay_ms picks the jittered delay for the retry-th retry; rnd is a
 * uniformly random 64-bit value supplied by the caller (see backoff_rand). */
long backoff_delay_ms(long base_ms, long cap_ms, int retry, uint64_t rnd);
/* backoff_rand returns the next value of a xorshift64* generator whose state the
 * caller owns (one per thread); seed *state with any non-zero value. */
uint64_t backoff_rand(uint64_t *state);
/* backoff_parse_retry_after parses an HTTP Retry-After value (delta-seconds or an
 * IMF-fixdate) relative to now (Unix seconds). Returns the delay in ms (>= 0),
 * or -1 when the value is absent or malformed. */
long backoff_parse_retry_after(const char *value, time_t now);

#endif
