/* bench.h: helpers shared by the measurement tools of `make bench`
 * (bench/load.c, bench/flood.c): command-line numbers with range checks,
 * nearest-rank percentiles and RFC 3339 timestamps (clocks: common/clock.h).
 * Everything reports to stderr under the tool's name and keeps no state. */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "clock.h"

/* bench_parse_long stores in *out the integer s, which must lie in [min, max];
 * otherwise it prints "<prog>: <opt>: ..." and returns -1. */
__attribute__((warn_unused_result)) int
bench_parse_long(const char *prog, const char *opt, const char *s, long min, long max, long *out);
/* bench_parse_double is bench_parse_long for a finite decimal number. */
__attribute__((warn_unused_result)) int bench_parse_double(const char *prog, const char *opt,
                                                           const char *s, double min, double max,
                                                           double *out);

/* bench_append_percentiles sorts v (n values) in place and appends
 * {"p50":..,"p99":..} (and "max" when with_max) with three decimals, or null
 * when n is 0. A percentile is the nearest rank: the ceil(p/100 * n)-th
 * smallest value. Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int bench_append_percentiles(struct buf *b, double *v, size_t n,
                                                                 bool with_max);
/* bench_percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
 * sorted (n > 0 values, ascending). */
double bench_percentile(const double *sorted, size_t n, double p);

/* bench_rfc3339_ms parses "2026-11-23T10:43:50.386Z" (UTC, milliseconds, the
 * form sluice serves) into Unix milliseconds. Returns 0, or -1 if malformed. */
__attribute__((warn_unused_result)) int bench_rfc3339_ms(const char *s, int64_t *out);

#endif
