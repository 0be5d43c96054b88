/* clock.h: the two clocks sluice uses. Monotonic time measures durations and
 * deadlines (immune to clock steps); real time stamps events and IDs. */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdint.h>
#include <time.h>

int64_t clock_mono_ms(void);
int64_t clock_real_ms(void);
/* The same in microseconds, for latency measurements. */
int64_t clock_mono_us(void);
int64_t clock_real_us(void);
/* clock_mono_timespec converts a monotonic ms deadline for pthread_cond_timedwait
 * on a condition variable created with CLOCK_MONOTONIC. */
struct timespec clock_mono_timespec(int64_t mono_ms);
/* clock_rfc3339 writes "2026-11-23T10:00:00.123Z" (25 bytes with NUL) for real_ms. */
void clock_rfc3339(char out[32], int64_t real_ms);

#endif
