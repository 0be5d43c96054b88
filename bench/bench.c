/* bench.c: helpers shared by the benchmark tools (see bench.h). */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_parse_long(const char *prog, const char *opt, const char *s, long min, long max,
                     long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s: %s: '%s' is not an integer between %ld and %ld\n", prog, opt, s, min,
                max);
        return -1;
    }
    *out = v;
    return 0;
}

int bench_parse_double(const char *prog, const char *opt, const char *s, double min, double max,
                       double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "%s: %s: '%s' is not a number between %g and %g\n", prog, opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

int bench_append_percentiles(struct buf *b, double *v, size_t n, bool with_max)
{
    if (n == 0) return buf_appends(b, "null");
    qsort(v, n, sizeof *v, cmp_double);
    int rc = buf_appendf(b, "{\"p50\":%.3f,\"p99\":%.3f", bench_percentile(v, n, 50),
                         bench_percentile(v, n, 99));
    if (!rc && with_max) rc = buf_appendf(b, ",\"max\":%.3f", v[n - 1]);
    return rc ? rc : buf_appends(b, "}");
}

int bench_rfc3339_ms(const char *s, int64_t *out)
{
    int year, mon, day, hour, min, sec, ms, used = 0;
    if (strlen(s) != 24 || s[23] != 'Z') return -1;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%n", &year, &mon, &day, &hour, &min, &sec, &ms,
               &used) != 7 ||
        used != 23)
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || min < 0 ||
        min > 59 || sec < 0 || sec > 60 || ms < 0)
        return -1;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}
