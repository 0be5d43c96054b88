/* clock.c: monotonic and real-time clocks in milliseconds (see clock.h). */
#include "clock.h"

#include <stdio.h>

static int64_t read_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_mono_ms(void)
{
    return read_us(CLOCK_MONOTONIC) / 1000;
}

int64_t clock_real_ms(void)
{
    return read_us(CLOCK_REALTIME) / 1000;
}

int64_t clock_mono_us(void)
{
    return read_us(CLOCK_MONOTONIC);
}

int64_t clock_real_us(void)
{
    return read_us(CLOCK_REALTIME);
}

struct timespec clock_mono_timespec(int64_t mono_ms)
{
    return (struct timespec){.tv_sec = mono_ms / 1000, .tv_nsec = (mono_ms % 1000) * 1000000};
}

void clock_rfc3339(char out[32], int64_t real_ms)
{
    time_t s = (time_t)(real_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned ms = (unsigned)((real_ms % 1000 + 1000) % 1000);
    snprintf(out + n, 32 - n, ".%03uZ", ms);
}
