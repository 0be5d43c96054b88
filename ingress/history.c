/* history.c: the routes' recent samples for the status page's charts (see
 * history.h). A sample stores differences, so what the ring holds is
 * bounded by its shape alone, whatever the counters do. */
#include "history.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* One route's part of one sample: the requests of its period, and the
 * backlog at its end (-1: unknown). */
struct cell {
    uint32_t accepted, succeeded, failed;
    int32_t backlog;
};

struct history {
    pthread_mutex_t lock;
    char **names;
    size_t n, capacity;
    int64_t period_ms;
    struct history_counts *last; /* the previous record's counters, per route */
    int64_t last_mono;           /* when they were taken; meaningful once started */
    int64_t due_mono;            /* when the next sample is due */
    bool started;
    int64_t *real_ms, *span_ms; /* per sample: its end (real time) and its length */
    struct cell *cells;         /* capacity x n, sample-major */
    size_t head, count;         /* head: where the next sample goes */
};

void history_free(struct history *h)
{
    if (!h) return;
    for (size_t i = 0; h->names && i < h->n; i++)
        free(h->names[i]);
    free(h->names);
    free(h->last);
    free(h->real_ms);
    free(h->span_ms);
    free(h->cells);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

struct history *history_new(const char *const *names, size_t n, size_t capacity, int64_t period_ms)
{
    if (capacity < 2 || period_ms <= 0 || (n && !names)) return NULL;
    struct history *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return NULL;
    }
    h->n = n, h->capacity = capacity, h->period_ms = period_ms;
    h->names = calloc(n + 1, sizeof *h->names);
    h->last = calloc(n + 1, sizeof *h->last);
    h->real_ms = calloc(capacity, sizeof *h->real_ms);
    h->span_ms = calloc(capacity, sizeof *h->span_ms);
    h->cells = calloc(capacity * (n + 1), sizeof *h->cells);
    bool ok = h->names && h->last && h->real_ms && h->span_ms && h->cells;
    for (size_t i = 0; ok && i < n; i++)
        ok = (h->names[i] = strdup(names[i])) != NULL;
    if (!ok) {
        history_free(h);
        return NULL;
    }
    return h;
}

bool history_due(struct history *h, int64_t mono_ms)
{
    pthread_mutex_lock(&h->lock);
    bool due = !h->started || mono_ms >= h->due_mono;
    pthread_mutex_unlock(&h->lock);
    return due;
}

bool history_started(struct history *h)
{
    pthread_mutex_lock(&h->lock);
    bool started = h->started;
    pthread_mutex_unlock(&h->lock);
    return started;
}

/* clamp_backlog keeps a backlog in a cell's range (-1: unknown). */
static int32_t clamp_backlog(int64_t b)
{
    return b < 0 ? -1 : b > INT32_MAX ? INT32_MAX : (int32_t)b;
}

void history_record(struct history *h, int64_t mono_ms, int64_t real_ms,
                    const struct history_counts *counts)
{
    pthread_mutex_lock(&h->lock);
    if (h->started) {
        struct cell *row = &h->cells[h->head * h->n];
        for (size_t i = 0; i < h->n; i++) {
            /* Unsigned differences are right across a counter's wrap. */
            row[i] = (struct cell){counts[i].accepted - h->last[i].accepted,
                                   counts[i].succeeded - h->last[i].succeeded,
                                   counts[i].failed - h->last[i].failed,
                                   clamp_backlog(counts[i].backlog)};
        }
        h->real_ms[h->head] = real_ms;
        h->span_ms[h->head] = mono_ms - h->last_mono > 0 ? mono_ms - h->last_mono : 1;
        h->head = (h->head + 1) % h->capacity;
        if (h->count < h->capacity) h->count++;
    }
    memcpy(h->last, counts, h->n * sizeof *counts);
    /* Samples stay on the grid the baseline set (a late tick makes one
     * sample longer and the next shorter), unless a whole period was
     * missed: then the grid starts again from now. */
    h->due_mono = h->started ? h->due_mono + h->period_ms : mono_ms + h->period_ms;
    if (h->due_mono <= mono_ms) h->due_mono = mono_ms + h->period_ms;
    h->last_mono = mono_ms;
    h->started = true;
    pthread_mutex_unlock(&h->lock);
}

/* at is the position of the k-th sample held, oldest first. */
static size_t at(const struct history *h, size_t k)
{
    return (h->head + h->capacity - h->count + k) % h->capacity;
}

enum series { S_ACCEPTED, S_SUCCEEDED, S_FAILED, S_BACKLOG };

/* render_series appends one route's series as a JSON array: a rate per
 * second for the counts, the backlog as is (null when unknown). */
static int render_series(const struct history *h, size_t route, enum series s, struct buf *out)
{
    int rc = buf_appends(out, "[");
    for (size_t k = 0; !rc && k < h->count; k++) {
        size_t j = at(h, k);
        const struct cell *c = &h->cells[j * h->n + route];
        uint32_t v = s == S_ACCEPTED ? c->accepted : s == S_SUCCEEDED ? c->succeeded : c->failed;
        const char *sep = k ? "," : "";
        if (s == S_BACKLOG)
            rc = c->backlog < 0 ? buf_appendf(out, "%snull", sep)
                                : buf_appendf(out, "%s%ld", sep, (long)c->backlog);
        else
            rc = buf_appendf(out, "%s%.6g", sep, (double)v * 1000.0 / (double)h->span_ms[j]);
    }
    return rc ? rc : buf_appends(out, "]");
}

static int render_route(const struct history *h, size_t i, bool first, struct buf *out)
{
    int rc = buf_appends(out, first ? "{\"route\":" : ",{\"route\":");
    if (!rc) rc = buf_append_json_string(out, h->names[i], strlen(h->names[i]));
    if (!rc) rc = buf_appends(out, ",\"accepted_per_s\":");
    if (!rc) rc = render_series(h, i, S_ACCEPTED, out);
    if (!rc) rc = buf_appends(out, ",\"completed_per_s\":");
    if (!rc) rc = render_series(h, i, S_SUCCEEDED, out);
    if (!rc) rc = buf_appends(out, ",\"failed_per_s\":");
    if (!rc) rc = render_series(h, i, S_FAILED, out);
    if (!rc) rc = buf_appends(out, ",\"backlog\":");
    if (!rc) rc = render_series(h, i, S_BACKLOG, out);
    return rc ? rc : buf_appends(out, "}");
}

/* render_times appends each sample's end and length: rate x length is the
 * count of its period. */
static int render_times(const struct history *h, struct buf *out)
{
    int rc = buf_appends(out, "\"times\":[");
    for (size_t k = 0; !rc && k < h->count; k++) {
        char t[32];
        clock_rfc3339(t, h->real_ms[at(h, k)]);
        rc = buf_appendf(out, "%s\"%s\"", k ? "," : "", t);
    }
    if (!rc) rc = buf_appends(out, "],\"seconds\":[");
    for (size_t k = 0; !rc && k < h->count; k++)
        rc = buf_appendf(out, "%s%.3f", k ? "," : "", (double)h->span_ms[at(h, k)] / 1000.0);
    return rc ? rc : buf_appends(out, "]");
}

int history_render(struct history *h, const char *route, struct buf *out)
{
    pthread_mutex_lock(&h->lock);
    size_t only = h->n;
    for (size_t i = 0; route && i < h->n && only == h->n; i++)
        if (strcmp(h->names[i], route) == 0) only = i;
    int rc = route && only == h->n ? -ENOENT : 0;
    if (!rc)
        rc = buf_appendf(out, "{\"period_s\":%g,\"capacity\":%zu,", (double)h->period_ms / 1000.0,
                         h->capacity);
    if (!rc) rc = render_times(h, out);
    if (!rc) rc = buf_appends(out, ",\"routes\":[");
    bool first = true;
    for (size_t i = 0; !rc && i < h->n; i++) {
        if (route && i != only) continue;
        rc = render_route(h, i, first, out);
        first = false;
    }
    if (!rc) rc = buf_appends(out, "]}");
    pthread_mutex_unlock(&h->lock);
    return rc;
}
