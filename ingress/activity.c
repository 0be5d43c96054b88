/* activity.c: the counters behind the status page (see activity.h). The
 * response and queue counters are atomics, written on hot paths without a
 * lock; outcomes, failures and throughput samples sit behind one mutex,
 * taken once per final event and once per summary read. */
#include "activity.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "id.h"
#include "json.h"

/* Routes come from the events stream, which other configurations may feed:
 * past this many distinct names, outcomes are counted under OTHER_ROUTE so a
 * stream full of odd names cannot grow the table without bound. */
#define MAX_ROUTES 256
#define OTHER_ROUTE "(other routes)"
#define MAX_CODE 64
#define SAMPLES 16
/* Throughput is averaged over the samples of this window; when none is that
 * recent (nobody read the page for a while), over the time since the last read. */
#define WINDOW_MS 10000
#define MIN_SAMPLE_GAP_MS 1000

struct route_outcomes {
    char *name;
    uint64_t succeeded, failed, dead;
};

struct failure {
    char id[ID_LEN + 1];
    char *route;
    enum req_state state;
    char code[MAX_CODE + 1];
    int64_t ts_ms;
};

struct sample {
    int64_t mono_ms;
    uint64_t accepted;
};

struct activity {
    atomic_uint_fast64_t accepted;
    atomic_int_fast64_t q_requests, q_dead, q_time_ms; /* q_time_ms 0: never polled */
    pthread_mutex_t lock;
    struct route_outcomes routes[MAX_ROUTES + 1]; /* the last is OTHER_ROUTE */
    size_t n_routes;
    struct failure failures[ACTIVITY_RECENT_FAILURES]; /* ring */
    size_t n_failures, next_failure;
    struct sample samples[SAMPLES]; /* ring */
    size_t n_samples, next_sample;
};

struct activity *activity_new(void)
{
    struct activity *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    a->routes[MAX_ROUTES].name = strdup(OTHER_ROUTE);
    if (!a->routes[MAX_ROUTES].name || pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a->routes[MAX_ROUTES].name);
        free(a);
        return NULL;
    }
    atomic_init(&a->accepted, 0);
    atomic_init(&a->q_requests, 0);
    atomic_init(&a->q_dead, 0);
    atomic_init(&a->q_time_ms, 0);
    return a;
}

void activity_free(struct activity *a)
{
    if (!a) return;
    for (size_t i = 0; i <= MAX_ROUTES; i++)
        free(a->routes[i].name);
    for (size_t i = 0; i < ACTIVITY_RECENT_FAILURES; i++)
        free(a->failures[i].route);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

void activity_count_response(struct activity *a, int status)
{
    if (status == 202) atomic_fetch_add(&a->accepted, 1);
}

void activity_set_queue_depth(struct activity *a, uint32_t requests, uint32_t dead, int64_t now_ms)
{
    atomic_store(&a->q_requests, requests);
    atomic_store(&a->q_dead, dead);
    atomic_store(&a->q_time_ms, now_ms);
}

/* route_slot finds or adds the counters of route; the caller holds the lock.
 * When the table is full, or a name cannot be copied, the overflow slot. */
static struct route_outcomes *route_slot(struct activity *a, const char *route)
{
    for (size_t i = 0; i < a->n_routes; i++)
        if (strcmp(a->routes[i].name, route) == 0) return &a->routes[i];
    if (a->n_routes == MAX_ROUTES) return &a->routes[MAX_ROUTES];
    char *name = strdup(route);
    if (!name) return &a->routes[MAX_ROUTES];
    a->routes[a->n_routes].name = name;
    return &a->routes[a->n_routes++];
}

/* error_code reads "code" from the worker's error document into out; a
 * missing, odd or oversized code reads as "unknown". */
static void error_code(const struct status_update *u, char out[MAX_CODE + 1])
{
    snprintf(out, MAX_CODE + 1, "unknown");
    struct json_object *doc =
                           u->error_json ? json_parse(u->error_json, u->error_len, NULL, 0) : NULL,
                       *code;
    if (doc && json_object_object_get_ex(doc, "code", &code) &&
        json_object_is_type(code, json_type_string)) {
        const char *s = json_object_get_string(code);
        size_t n = strlen(s);
        if (n > 0 && n <= MAX_CODE && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n)
            snprintf(out, MAX_CODE + 1, "%s", s);
    }
    json_object_put(doc);
}

/* remember_failure puts u in the ring of recent failures, replacing the oldest. */
static void remember_failure(struct activity *a, const struct status_update *u, const char *code)
{
    char *route = strdup(u->route);
    if (!route) return; /* out of memory: the page lists one failure fewer */
    struct failure *f = &a->failures[a->next_failure];
    free(f->route);
    memcpy(f->id, u->id, ID_LEN);
    f->id[ID_LEN] = '\0';
    f->route = route;
    f->state = u->state;
    snprintf(f->code, sizeof(f->code), "%s", code);
    f->ts_ms = u->ts_ms;
    a->next_failure = (a->next_failure + 1) % ACTIVITY_RECENT_FAILURES;
    if (a->n_failures < ACTIVITY_RECENT_FAILURES) a->n_failures++;
}

void activity_note(struct activity *a, const struct status_update *u)
{
    if (!ST_FINAL(u->state) || !u->route || !u->id || !id_valid(u->id, strlen(u->id))) return;
    if (u->state == ST_CANCELLED) return; /* a client's choice, not an outcome of the route */
    char code[MAX_CODE + 1] = "";
    /* Parsed before taking the lock: the HTTP threads wait on it. */
    if (u->state != ST_SUCCEEDED) error_code(u, code);
    pthread_mutex_lock(&a->lock);
    struct route_outcomes *r = route_slot(a, u->route);
    if (u->state == ST_SUCCEEDED)
        r->succeeded++;
    else if (u->state == ST_FAILED)
        r->failed++;
    else
        r->dead++;
    if (u->state != ST_SUCCEEDED) remember_failure(a, u, code);
    pthread_mutex_unlock(&a->lock);
}

void activity_outcomes(struct activity *a, const char *route, uint64_t *succeeded, uint64_t *failed)
{
    *succeeded = *failed = 0;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->n_routes; i++)
        if (strcmp(a->routes[i].name, route) == 0) {
            *succeeded = a->routes[i].succeeded;
            *failed = a->routes[i].failed + a->routes[i].dead;
            break;
        }
    pthread_mutex_unlock(&a->lock);
}

/* rate samples the accepted counter at mono_ms (at most once a second) and
 * returns accepted requests per second over the window; the caller holds the lock. */
static double rate(struct activity *a, int64_t mono_ms, uint64_t accepted)
{
    const struct sample *last =
        a->n_samples ? &a->samples[(a->next_sample + SAMPLES - 1) % SAMPLES] : NULL;
    if (!last || mono_ms - last->mono_ms >= MIN_SAMPLE_GAP_MS) {
        a->samples[a->next_sample] = (struct sample){mono_ms, accepted};
        a->next_sample = (a->next_sample + 1) % SAMPLES;
        if (a->n_samples < SAMPLES) a->n_samples++;
    }
    const struct sample *base = NULL;
    for (size_t i = 0; i < a->n_samples; i++) {
        const struct sample *s = &a->samples[(a->next_sample + SAMPLES - 1 - i) % SAMPLES];
        if (s->mono_ms >= mono_ms) continue;
        if (base && s->mono_ms < mono_ms - WINDOW_MS) break;
        base = s;
    }
    if (!base) return 0;
    return (double)(accepted - base->accepted) * 1000.0 / (double)(mono_ms - base->mono_ms);
}

static int render_queues(struct activity *a, struct buf *out)
{
    int64_t t = atomic_load(&a->q_time_ms);
    if (t == 0) return buf_appends(out, "\"queues\":{\"requests\":null,\"dead\":null,\"at\":null}");
    char at[32];
    clock_rfc3339(at, t);
    return buf_appendf(out, "\"queues\":{\"requests\":%lld,\"dead\":%lld,\"at\":\"%s\"}",
                       (long long)atomic_load(&a->q_requests), (long long)atomic_load(&a->q_dead),
                       at);
}

static int render_route(struct buf *out, const struct route_outcomes *r, bool first)
{
    int rc = buf_appends(out, first ? "{\"route\":" : ",{\"route\":");
    if (rc == 0) rc = buf_append_json_string(out, r->name, strlen(r->name));
    if (rc == 0)
        rc = buf_appendf(out, ",\"succeeded\":%llu,\"failed\":%llu,\"dead\":%llu}",
                         (unsigned long long)r->succeeded, (unsigned long long)r->failed,
                         (unsigned long long)r->dead);
    return rc;
}

static int render_routes(struct activity *a, struct buf *out)
{
    int rc = buf_appends(out, "\"routes\":[");
    bool first = true;
    for (size_t i = 0; i <= MAX_ROUTES && rc == 0; i++) {
        const struct route_outcomes *r = &a->routes[i];
        if (!r->name || r->succeeded + r->failed + r->dead == 0) continue;
        rc = render_route(out, r, first);
        first = false;
    }
    return rc ? rc : buf_appends(out, "]");
}

static int render_failure(struct buf *out, const struct failure *f, bool first)
{
    char at[32];
    clock_rfc3339(at, f->ts_ms);
    int rc = buf_appendf(out, "%s{\"id\":\"%s\",\"route\":", first ? "" : ",", f->id);
    if (rc == 0) rc = buf_append_json_string(out, f->route, strlen(f->route));
    if (rc == 0)
        rc = buf_appendf(out, ",\"state\":\"%s\",\"code\":\"%s\",\"time\":\"%s\"}",
                         event_state_name(f->state), f->code, at);
    return rc;
}

/* render_failures lists the ring newest first. */
static int render_failures(struct activity *a, struct buf *out)
{
    int rc = buf_appends(out, "\"recent_failures\":[");
    for (size_t i = 0; i < a->n_failures && rc == 0; i++) {
        size_t at = (a->next_failure + ACTIVITY_RECENT_FAILURES - 1 - i) % ACTIVITY_RECENT_FAILURES;
        rc = render_failure(out, &a->failures[at], i == 0);
    }
    return rc ? rc : buf_appends(out, "]");
}

int activity_render(struct activity *a, struct buf *out, int64_t mono_ms)
{
    uint64_t accepted = atomic_load(&a->accepted);
    pthread_mutex_lock(&a->lock);
    double per_s = rate(a, mono_ms, accepted);
    int rc = buf_appendf(out, "\"throughput\":{\"accepted_per_s\":%.2f,\"accepted_total\":%llu},",
                         per_s, (unsigned long long)accepted);
    if (rc == 0) rc = render_queues(a, out);
    if (rc == 0) rc = buf_appends(out, ",");
    if (rc == 0) rc = render_routes(a, out);
    if (rc == 0) rc = buf_appends(out, ",");
    if (rc == 0) rc = render_failures(a, out);
    pthread_mutex_unlock(&a->lock);
    return rc;
}
