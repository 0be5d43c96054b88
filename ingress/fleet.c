/* fleet.c: the latest report of each worker, and their sums (see fleet.h). */
#include "fleet.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A worker's place: its latest report and when it came. */
struct slot {
    struct report *rep; /* NULL: free */
    int64_t seen_ms;    /* monotonic */
    int64_t real_ms;    /* the real clock then: open_ms counts from it */
};

struct fleet {
    const struct cfg *cfg;
    pthread_mutex_t lock;
    struct slot *slots;
    size_t n, max; /* slots[0..n) used, some of them free */
    int64_t stale_ms;
    uint64_t refused;
};

struct fleet *fleet_new(const struct cfg *cfg, size_t max_workers, int64_t stale_ms)
{
    struct fleet *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->slots = calloc(max_workers ? max_workers : 1, sizeof *f->slots);
    if (!f->slots) {
        free(f);
        return NULL;
    }
    f->cfg = cfg;
    f->max = max_workers;
    f->stale_ms = stale_ms;
    pthread_mutex_init(&f->lock, NULL);
    return f;
}

void fleet_free(struct fleet *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++)
        report_free(f->cfg, f->slots[i].rep);
    free(f->slots);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static bool live(const struct fleet *f, const struct slot *s, int64_t now_ms)
{
    return s->rep && now_ms - s->seen_ms < f->stale_ms;
}

/* place finds the slot of worker, or else a free or stale one (whose
 * report is handed to *old); NULL when every slot holds a live worker. */
static struct slot *place(struct fleet *f, const char *worker, int64_t now_ms, struct report **old)
{
    struct slot *spare = NULL;
    for (size_t i = 0; i < f->n; i++) {
        struct slot *s = &f->slots[i];
        if (s->rep && !strcmp(s->rep->worker, worker)) return s;
        if (!spare && !live(f, s, now_ms)) spare = s;
    }
    if (!spare && f->n < f->max) spare = &f->slots[f->n++];
    if (spare) {
        *old = spare->rep;
        spare->rep = NULL;
    }
    return spare;
}

struct report *fleet_put(struct fleet *f, struct report *rep, int64_t now_ms, int64_t real_ms)
{
    struct report *back = NULL;
    pthread_mutex_lock(&f->lock);
    struct slot *s = place(f, rep->worker, now_ms, &back);
    if (!s) {
        f->refused++;
        back = rep;
    } else if (rep->bye) {
        report_free(f->cfg, s->rep);
        s->rep = NULL;
        report_free(f->cfg, back);
        back = rep;
    } else {
        if (s->rep) back = s->rep;
        s->rep = rep;
        s->seen_ms = now_ms;
        s->real_ms = real_ms;
    }
    pthread_mutex_unlock(&f->lock);
    return back;
}

/* worse tells whether state a is worse than b: open, half_open, closed. */
static bool worse(enum breaker_state a, enum breaker_state b)
{
    static const int rank[] = {[BREAKER_CLOSED] = 0, [BREAKER_HALF_OPEN] = 1, [BREAKER_OPEN] = 2};
    return rank[a] > rank[b];
}

static void add_upstream(struct fleet_upstream *fu, const struct report_upstream *up,
                         int64_t real_ms)
{
    if (worse(up->state, fu->state)) fu->state = up->state;
    if (up->state == BREAKER_HALF_OPEN) fu->half_open++;
    if (up->state != BREAKER_OPEN) return;
    fu->open++;
    if (real_ms + up->open_ms > fu->open_until_ms) fu->open_until_ms = real_ms + up->open_ms;
}

void fleet_route(struct fleet *f, size_t route, int64_t now_ms, struct fleet_route *out)
{
    size_t n_ups = f->cfg->routes[route].n_upstreams;
    out->workers = 0;
    out->in_flight = 0;
    out->rate = out->failure_rate = 0;
    for (size_t u = 0; u < n_ups; u++)
        out->ups[u] = (struct fleet_upstream){.state = BREAKER_CLOSED};
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n; i++) {
        const struct slot *s = &f->slots[i];
        if (!live(f, s, now_ms)) continue;
        const struct report_route *rr = &s->rep->routes[route];
        out->workers++;
        out->in_flight += rr->in_flight;
        out->rate += rr->rate;
        out->failure_rate += rr->failure_rate;
        for (size_t u = 0; u < n_ups; u++)
            add_upstream(&out->ups[u], &rr->ups[u], s->real_ms);
    }
    pthread_mutex_unlock(&f->lock);
}

size_t fleet_workers(struct fleet *f, int64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n; i++)
        n += live(f, &f->slots[i], now_ms);
    pthread_mutex_unlock(&f->lock);
    return n;
}

uint64_t fleet_refused(struct fleet *f)
{
    pthread_mutex_lock(&f->lock);
    uint64_t n = f->refused;
    pthread_mutex_unlock(&f->lock);
    return n;
}
