/* admit.c: the lines of jobs waiting for their calls (see admit.h). */
#include "admit.h"

#include <stdlib.h>

struct line {
    struct job *tail;
    size_t n;
};

struct admit {
    const struct cfg *cfg;
    struct shaper *shaper;
    struct job **heads; /* one per route */
    struct line *lines;
    uint64_t groups; /* the last group number given */
};

struct admit *admit_new(const struct cfg *cfg, struct shaper *sh)
{
    struct admit *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    a->cfg = cfg;
    a->shaper = sh;
    a->heads = calloc(cfg->n_routes + 1, sizeof(*a->heads));
    a->lines = calloc(cfg->n_routes + 1, sizeof(*a->lines));
    if (!a->heads || !a->lines) {
        admit_free(a);
        return NULL;
    }
    return a;
}

void admit_free(struct admit *a)
{
    if (!a) return;
    free(a->heads);
    free(a->lines);
    free(a);
}

static size_t route_of(const struct admit *a, const struct job *job)
{
    return (size_t)(job->route - a->cfg->routes);
}

void admit_push(struct admit *a, struct job *job, bool front)
{
    size_t i = route_of(a, job);
    struct line *l = &a->lines[i];
    job->wait_next = NULL;
    if (!a->heads[i]) {
        a->heads[i] = l->tail = job;
    } else if (front) {
        job->wait_next = a->heads[i];
        a->heads[i] = job;
    } else {
        l->tail->wait_next = job;
        l->tail = job;
    }
    l->n++;
}

static struct job *pop(struct admit *a, size_t i)
{
    struct job *job = a->heads[i];
    a->heads[i] = job->wait_next;
    if (!a->heads[i]) a->lines[i].tail = NULL;
    a->lines[i].n--;
    job->wait_next = NULL;
    return job;
}

/* join links to head, through wait_next, the jobs of route i's line that
 * ride head's call: on a route with batch_url, while the shaper has a rate
 * token for each, up to batch_max in all. */
static void join(struct admit *a, size_t i, struct job *head, int64_t now_us)
{
    const struct cfg_route *r = &a->cfg->routes[i];
    struct job *last = head;
    if (!r->batch_url || head->env.deliveries > 0) return;
    for (long n = 1; n < r->batch_max && a->heads[i] && a->heads[i]->env.deliveries == 0; n++) {
        if (!shaper_join(a->shaper, i, now_us)) return;
        struct job *job = pop(a, i);
        job->admitted = false;
        job->reason_sent = JOB_WAIT_NONE;
        job->group = head->group;
        last->wait_next = job;
        last = job;
    }
}

/* pump_line lets route i's jobs go while the shaper allows; returns when to
 * ask again (INT64_MAX: when a call ends). */
static int64_t pump_line(struct admit *a, size_t i, int64_t now_us, const struct admit_hooks *h)
{
    while (a->heads[i]) {
        struct shaper_call call;
        int64_t until;
        enum shaper_verdict v = shaper_admit(a->shaper, i, now_us, &call, &until);
        if (v == SHAPER_BLOCKED || v == SHAPER_PAUSED) {
            uint8_t why = v == SHAPER_PAUSED ? JOB_WAIT_PAUSED : JOB_WAIT_BREAKER;
            for (struct job *job = a->heads[i]; job; job = job->wait_next)
                if (job->reason_sent != why) {
                    job->reason_sent = why;
                    h->blocked(h->arg, job);
                }
        }
        if (v != SHAPER_GO) return until ? until : INT64_MAX;
        struct job *job = pop(a, i);
        job->call = call;
        job->admitted = true;
        job->reason_sent = JOB_WAIT_NONE;
        job->group = ++a->groups;
        join(a, i, job, now_us);
        h->go(h->arg, job);
    }
    return INT64_MAX;
}

int64_t admit_pump(struct admit *a, int64_t now_us, const struct admit_hooks *h)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < a->cfg->n_routes; i++) {
        int64_t at = pump_line(a, i, now_us, h);
        if (at < next) next = at;
    }
    return next;
}

size_t admit_waiting(const struct admit *a, size_t i)
{
    return a->lines[i].n;
}

struct job *const *admit_heads(const struct admit *a)
{
    return a->heads;
}

struct job *admit_take_all(struct admit *a)
{
    struct job *all = NULL, **tail = &all;
    for (size_t i = 0; i < a->cfg->n_routes; i++) {
        *tail = a->heads[i];
        if (a->lines[i].tail) tail = &a->lines[i].tail->wait_next;
        a->heads[i] = a->lines[i].tail = NULL;
        a->lines[i].n = 0;
    }
    return all;
}
