/* metrics.c: a Prometheus registry rendered in text format 0.0.4. Metrics
 * are declared before threads start and never removed, so the list needs no
 * lock; updates are relaxed atomics because a scrape needs each value to be
 * whole, not a snapshot consistent across metrics. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_LEN 32

enum kind { COUNTER, GAUGE, HISTOGRAM };
static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct metric {
    struct metric *next; /* declaration order */
    enum kind kind;
    const char *name;
    const char *help;
    char *labels; /* owned copy, or NULL */
    _Atomic uint64_t count;
    _Atomic int64_t gauge;
    _Atomic bool floating; /* a gauge set by metric_set_float: its value is in sum_bits */
    /* Histograms: buckets[i] counts observations in (bounds[i-1], bounds[i]]
     * and buckets[n] those above the last bound; rendering accumulates them.
     * The sum is a double kept as its bits and updated by a CAS loop, so it
     * keeps full precision whatever the unit of the observations. */
    int n;
    double *bounds;
    _Atomic uint64_t *buckets;
    _Atomic uint64_t sum_bits;
};

struct metrics {
    struct metric *head, *tail;
};

struct metrics *metrics_new(void)
{
    return calloc(1, sizeof(struct metrics));
}

static void metric_free(struct metric *x)
{
    free(x->labels);
    free(x->bounds);
    free(x->buckets);
    free(x);
}

void metrics_free(struct metrics *m)
{
    if (!m) return;
    for (struct metric *x = m->head, *next; x; x = next) {
        next = x->next;
        metric_free(x);
    }
    free(m);
}

static struct metric *metric_alloc(enum kind kind, const char *name, const char *help,
                                   const char *labels)
{
    struct metric *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->kind = kind;
    x->name = name;
    x->help = help;
    atomic_init(&x->count, 0);
    atomic_init(&x->gauge, 0);
    atomic_init(&x->floating, false);
    atomic_init(&x->sum_bits, 0); /* the bits of 0.0 */
    if (labels && !(x->labels = strdup(labels))) {
        free(x);
        return NULL;
    }
    return x;
}

static struct metric *metric_link(struct metrics *m, struct metric *x)
{
    if (m->tail)
        m->tail->next = x;
    else
        m->head = x;
    m->tail = x;
    return x;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels)
{
    struct metric *x = metric_alloc(COUNTER, name, help, labels);
    return x ? metric_link(m, x) : NULL;
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels)
{
    struct metric *x = metric_alloc(GAUGE, name, help, labels);
    return x ? metric_link(m, x) : NULL;
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, int n)
{
    if (n < 0) return NULL;
    struct metric *x = metric_alloc(HISTOGRAM, name, help, labels);
    if (!x) return NULL;
    x->n = n;
    x->buckets = malloc(((size_t)n + 1) * sizeof *x->buckets);
    x->bounds = n > 0 ? malloc((size_t)n * sizeof *x->bounds) : NULL;
    if (!x->buckets || (n > 0 && !x->bounds)) {
        metric_free(x);
        return NULL;
    }
    if (n > 0) memcpy(x->bounds, bounds, (size_t)n * sizeof *x->bounds);
    for (int i = 0; i <= n; i++)
        atomic_init(&x->buckets[i], 0);
    return metric_link(m, x);
}

void metric_add(struct metric *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->count, n, memory_order_relaxed);
}

void metric_set(struct metric *g, int64_t v)
{
    atomic_store_explicit(&g->gauge, v, memory_order_relaxed);
}

void metric_set_float(struct metric *g, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    atomic_store_explicit(&g->sum_bits, bits, memory_order_relaxed);
    atomic_store_explicit(&g->floating, true, memory_order_relaxed);
}

void metric_gauge_add(struct metric *g, int64_t d)
{
    atomic_fetch_add_explicit(&g->gauge, d, memory_order_relaxed);
}

void metric_observe(struct metric *h, double v)
{
    int i = 0;
    while (i < h->n && !(v <= h->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed), new;
    do {
        double sum;
        memcpy(&sum, &old, sizeof sum);
        sum += v;
        memcpy(&new, &sum, sizeof new);
    } while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, new, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* format_double writes the shortest text that reads back as v, as
 * Prometheus clients do: le="0.005", not le="0.0050000000000000001". */
static void format_double(double v, char out[NUM_LEN])
{
    if (isnan(v)) {
        snprintf(out, NUM_LEN, "NaN");
    } else if (isinf(v)) {
        snprintf(out, NUM_LEN, v > 0 ? "+Inf" : "-Inf");
    } else if (v == trunc(v) && fabs(v) < 1e15) {
        snprintf(out, NUM_LEN, "%.0f", v); /* %g would write 10 as 1e+01 */
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, NUM_LEN, "%.*g", prec, v);
            if (strtod(out, NULL) == v) break;
        }
    }
}

/* append_help escapes backslashes and newlines, the two the format reserves in HELP. */
static int append_help(struct buf *out, const char *help)
{
    int rc = 0;
    for (const char *p = help; *p && !rc; p++) {
        if (*p == '\\')
            rc = buf_append(out, "\\\\", 2);
        else if (*p == '\n')
            rc = buf_append(out, "\\n", 2);
        else
            rc = buf_append(out, p, 1);
    }
    return rc;
}

static int render_header(struct buf *out, const struct metric *x)
{
    int rc = buf_appendf(out, "# HELP %s ", x->name);
    if (!rc) rc = append_help(out, x->help);
    if (!rc) rc = buf_appendf(out, "\n# TYPE %s %s\n", x->name, kind_names[x->kind]);
    return rc;
}

/* series appends the series name with suffix and its labels, le included when
 * given, up to the space before the value. */
static int series(struct buf *out, const struct metric *x, const char *suffix, const char *le)
{
    if (!le && !x->labels) return buf_appendf(out, "%s%s ", x->name, suffix);
    if (!le) return buf_appendf(out, "%s%s{%s} ", x->name, suffix, x->labels);
    return buf_appendf(out, "%s%s{%s%sle=\"%s\"} ", x->name, suffix, x->labels ? x->labels : "",
                       x->labels ? "," : "", le);
}

static int render_histogram(struct buf *out, const struct metric *x)
{
    char num[NUM_LEN];
    uint64_t total = 0;
    int rc = 0;
    for (int i = 0; i <= x->n && !rc; i++) {
        /* The count is the sum of the buckets read, so it always equals +Inf. */
        total += atomic_load_explicit(&x->buckets[i], memory_order_relaxed);
        if (i < x->n)
            format_double(x->bounds[i], num);
        else
            snprintf(num, sizeof num, "+Inf");
        rc = series(out, x, "_bucket", num);
        if (!rc) rc = buf_appendf(out, "%" PRIu64 "\n", total);
    }
    uint64_t bits = atomic_load_explicit(&x->sum_bits, memory_order_relaxed);
    double sum;
    memcpy(&sum, &bits, sizeof sum);
    format_double(sum, num);
    if (!rc) rc = series(out, x, "_sum", NULL);
    if (!rc) rc = buf_appendf(out, "%s\n", num);
    if (!rc) rc = series(out, x, "_count", NULL);
    if (!rc) rc = buf_appendf(out, "%" PRIu64 "\n", total);
    return rc;
}

static int render_metric(struct buf *out, const struct metric *x)
{
    int rc;
    switch (x->kind) {
    case COUNTER:
        rc = series(out, x, "", NULL);
        return rc ? rc
                  : buf_appendf(out, "%" PRIu64 "\n",
                                atomic_load_explicit(&x->count, memory_order_relaxed));
    case GAUGE:
        rc = series(out, x, "", NULL);
        if (!rc && atomic_load_explicit(&x->floating, memory_order_relaxed)) {
            uint64_t bits = atomic_load_explicit(&x->sum_bits, memory_order_relaxed);
            double v;
            char num[NUM_LEN];
            memcpy(&v, &bits, sizeof v);
            format_double(v, num);
            return buf_appendf(out, "%s\n", num);
        }
        return rc ? rc
                  : buf_appendf(out, "%" PRId64 "\n",
                                atomic_load_explicit(&x->gauge, memory_order_relaxed));
    default:
        return render_histogram(out, x);
    }
}

static bool declared_before(const struct metrics *m, const struct metric *x)
{
    for (const struct metric *y = m->head; y != x; y = y->next)
        if (strcmp(y->name, x->name) == 0) return true;
    return false;
}

int metrics_render(struct metrics *m, struct buf *out)
{
    int rc = 0;
    /* A family is rendered whole where its name first appears, because the
     * format wants all series of a name together under one HELP and TYPE. */
    for (const struct metric *x = m->head; x && !rc; x = x->next) {
        if (declared_before(m, x)) continue;
        rc = render_header(out, x);
        for (const struct metric *y = x; y && !rc; y = y->next)
            if (strcmp(y->name, x->name) == 0) rc = render_metric(out, y);
    }
    return rc;
}
