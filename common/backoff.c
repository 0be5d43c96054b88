/* backoff.c: retry delays with full jitter, a tiny per-thread PRNG for the
 * jitter, and the parser for a backend's Retry-After header. */
#include "backoff.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* BACKOFF_SEED replaces a zero state, the one state xorshift never leaves. */
#define BACKOFF_SEED UINT64_C(0x9E3779B97F4A7C15)

long backoff_ceiling_ms(long base_ms, long cap_ms, int retry)
{
    if (base_ms <= 0 || cap_ms <= 0) return 0;
    if (base_ms >= cap_ms) return cap_ms;
    int shift = retry > 1 ? retry - 1 : 0;
    /* Compare before shifting, so that base << shift is only computed when it
     * is at most cap and cannot overflow. */
    if (shift >= (int)(sizeof(long) * CHAR_BIT) - 1 || base_ms > (cap_ms >> shift)) return cap_ms;
    return base_ms << shift;
}

long backoff_delay_ms(long base_ms, long cap_ms, int retry, uint64_t rnd)
{
    long ceiling = backoff_ceiling_ms(base_ms, cap_ms, retry);
    return (long)(rnd % ((uint64_t)ceiling + 1));
}

uint64_t backoff_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : BACKOFF_SEED;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

static const char *skip_spaces(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* seconds_to_ms converts a non-negative delay, or returns -1 if it overflows. */
static long seconds_to_ms(long long s)
{
    return s > LONG_MAX / 1000 ? -1 : (long)s * 1000;
}

/* parse_delta reads delta-seconds: digits only, so "-1" and "+1" are refused. */
static long parse_delta(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *skip_spaces(end) != '\0') return -1;
    return seconds_to_ms(v);
}

/* parse_date reads an IMF-fixdate (RFC 9110 section 5.6.7). strptime's %a and
 * %b follow LC_TIME, which sluice leaves at the C locale. */
static long parse_date(const char *s, time_t now)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *skip_spaces(end) != '\0') return -1;
    time_t when = timegm(&tm);
    return when <= now ? 0 : seconds_to_ms((long long)(when - now));
}

long backoff_parse_retry_after(const char *value, time_t now)
{
    if (!value) return -1;
    const char *s = skip_spaces(value);
    if (*s >= '0' && *s <= '9') return parse_delta(s);
    if (*s >= 'A' && *s <= 'Z') return parse_date(s, now);
    return -1;
}
