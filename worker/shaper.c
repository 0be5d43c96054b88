/* shaper.c: per-route admission of backend calls (see shaper.h). */
#include "shaper.h"

#include <stdlib.h>

#include "ratelimit.h"

#define US_PER_MS 1000
#define US_PER_S 1000000

struct upstream {
    struct breaker breaker;
    long in_flight;
};

struct route_state {
    const struct cfg_route *cfg;
    struct tbucket bucket;
    double bucket_rate, bucket_burst; /* what the bucket was last set to */
    struct aimd aimd;
    long in_flight;
    int64_t hold_until_us; /* a Retry-After holds new calls until then */
    struct upstream *ups;
    size_t next; /* round robin: where the next search starts */
    /* Calls started in the current and the previous second, for AIMD's
     * starting point on a route that has no rate yet. */
    int64_t obs_second;
    uint32_t obs_cur, obs_prev;
    /* An operator's (common/routectl.h): paused, and overrides (-1: none). */
    bool paused;
    double rate_override;
    long max_in_flight_override;
};

struct shaper {
    const struct cfg *cfg;
    struct route_state *routes;
};

/* rate_of is the route's rate: an operator's override, else the configured one. */
static double rate_of(const struct route_state *rs)
{
    return rs->rate_override >= 0 ? rs->rate_override : rs->cfg->rate_per_s;
}

static long max_in_flight_of(const struct route_state *rs)
{
    return rs->max_in_flight_override >= 0 ? rs->max_in_flight_override : rs->cfg->max_in_flight;
}

/* configured_burst is the bucket of the route's rate: burst, or by
 * default max(1, rate). */
static double configured_burst(const struct route_state *rs)
{
    if (rs->cfg->burst > 0) return (double)rs->cfg->burst;
    double rate = rate_of(rs);
    return rate > 1 ? rate : 1;
}

static int route_init(struct route_state *rs, const struct cfg_route *r, int64_t now_us)
{
    rs->cfg = r;
    rs->rate_override = -1;
    rs->max_in_flight_override = -1;
    rs->ups = calloc(r->n_upstreams, sizeof(*rs->ups));
    if (!rs->ups) return -1;
    for (size_t u = 0; u < r->n_upstreams; u++)
        if (breaker_init(&rs->ups[u].breaker, &r->breaker) < 0) return -1;
    aimd_init(&rs->aimd, r->rate_per_s);
    rs->bucket_rate = r->rate_per_s;
    rs->bucket_burst = configured_burst(rs);
    tbucket_init(&rs->bucket, rs->bucket_rate, rs->bucket_burst, now_us);
    return 0;
}

struct shaper *shaper_new(const struct cfg *cfg)
{
    struct shaper *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->cfg = cfg;
    s->routes = calloc(cfg->n_routes + 1, sizeof(*s->routes));
    if (!s->routes) goto err;
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (route_init(&s->routes[i], &cfg->routes[i], 0) < 0) goto err;
    return s;
err:
    shaper_free(s);
    return NULL;
}

void shaper_free(struct shaper *s)
{
    if (!s) return;
    for (size_t i = 0; s->routes && i < s->cfg->n_routes; i++) {
        struct route_state *rs = &s->routes[i];
        for (size_t u = 0; rs->ups && u < rs->cfg->n_upstreams; u++)
            breaker_free(&rs->ups[u].breaker);
        free(rs->ups);
    }
    free(s->routes);
    free(s);
}

/* roll moves the call counters to now's second. */
static void roll(struct route_state *rs, int64_t now_us)
{
    int64_t second = now_us / US_PER_S;
    if (second == rs->obs_second) return;
    rs->obs_prev = second == rs->obs_second + 1 ? rs->obs_cur : 0;
    rs->obs_cur = 0;
    rs->obs_second = second;
}

static double observed(struct route_state *rs, int64_t now_us)
{
    roll(rs, now_us);
    return rs->obs_prev > rs->obs_cur ? rs->obs_prev : rs->obs_cur;
}

/* tune sets the bucket to the effective rate. While a cut is in force the
 * burst shrinks with the rate, or a cut would only slow the long run. */
static void tune(struct route_state *rs, int64_t now_us)
{
    double rate = aimd_rate(&rs->aimd, now_us);
    double burst = configured_burst(rs);
    if (aimd_cut(&rs->aimd) && burst > rate) burst = rate > 1 ? rate : 1;
    if (rate == rs->bucket_rate && burst == rs->bucket_burst) return;
    tbucket_set(&rs->bucket, rate, burst, now_us);
    rs->bucket_rate = rate;
    rs->bucket_burst = burst;
}

/* pick chooses the upstream of the next call: among those whose breaker
 * lets a call through (closed and not on trial with a call out, or due for
 * its half-open probe), the one with the fewest calls in flight, the first
 * in round robin order among equals. */
static enum shaper_verdict pick(struct route_state *rs, int64_t now_ms, struct shaper_call *call,
                                int64_t *until_us)
{
    size_t n = rs->cfg->n_upstreams, best = n;
    bool any_closed = false, best_probe = false;
    int64_t next_open = INT64_MAX;
    for (size_t k = 0; k < n; k++) {
        size_t u = (rs->next + k) % n;
        const struct upstream *up = &rs->ups[u];
        const struct breaker *b = &up->breaker;
        enum breaker_state st = breaker_state(b, now_ms);
        bool probe = st == BREAKER_HALF_OPEN;
        if (st == BREAKER_OPEN) {
            if (breaker_next_ms(b) < next_open) next_open = breaker_next_ms(b);
            continue;
        }
        if (probe && b->state == BREAKER_HALF_OPEN && b->probing) continue;
        if (st == BREAKER_CLOSED) {
            any_closed = true;
            if (breaker_on_trial(b) && up->in_flight >= 1) continue;
        }
        if (best == n || up->in_flight < rs->ups[best].in_flight) best = u, best_probe = probe;
    }
    if (best < n) {
        *call = (struct shaper_call){.upstream = best, .probe = best_probe};
        return SHAPER_GO;
    }
    *until_us = next_open == INT64_MAX ? 0 : next_open * US_PER_MS;
    return any_closed ? SHAPER_WAIT : SHAPER_BLOCKED;
}

/* take_token spends one token of the route's bucket on a call or a batch
 * item and counts it in the observed rate (AIMD cuts the rate the bucket
 * meters). The caller has seen one is there. */
static void take_token(struct route_state *rs, int64_t now_us)
{
    (void)tbucket_take(&rs->bucket, 1, now_us);
    roll(rs, now_us);
    rs->obs_cur++;
}

enum shaper_verdict shaper_admit(struct shaper *s, size_t route, int64_t now_us,
                                 struct shaper_call *call, int64_t *until_us)
{
    struct route_state *rs = &s->routes[route];
    const struct cfg_route *r = rs->cfg;
    *until_us = 0;
    if (rs->paused) return SHAPER_PAUSED;
    enum shaper_verdict v = pick(rs, now_us / US_PER_MS, call, until_us);
    if (v != SHAPER_GO) return v;
    if (now_us < rs->hold_until_us) {
        *until_us = rs->hold_until_us;
        return SHAPER_WAIT;
    }
    long max = max_in_flight_of(rs);
    if (max > 0 && rs->in_flight >= max) return SHAPER_WAIT;
    tune(rs, now_us);
    int64_t wait = tbucket_wait_us(&rs->bucket, 1, now_us);
    if (wait > 0) {
        *until_us = now_us + wait;
        return SHAPER_WAIT;
    }
    struct upstream *up = &rs->ups[call->upstream];
    (void)breaker_allow(&up->breaker, now_us / US_PER_MS); /* pick checked it: claims a probe */
    take_token(rs, now_us);
    rs->in_flight++;
    up->in_flight++;
    rs->next = (call->upstream + 1) % r->n_upstreams;
    return SHAPER_GO;
}

bool shaper_join(struct shaper *s, size_t route, int64_t now_us)
{
    struct route_state *rs = &s->routes[route];
    if (rs->paused || now_us < rs->hold_until_us) return false;
    tune(rs, now_us);
    if (tbucket_wait_us(&rs->bucket, 1, now_us) > 0) return false;
    take_token(rs, now_us);
    return true;
}

struct shaper_outcome shaper_outcome_of(bool transport_error, long status, long retry_after_ms)
{
    bool pushback = status == 429 || status == 503;
    return (struct shaper_outcome){.failed = transport_error || status >= 500,
                                   .pushback = pushback,
                                   .retry_after_ms = pushback ? retry_after_ms : -1};
}

void shaper_done(struct shaper *s, size_t route, const struct shaper_call *call,
                 const struct shaper_outcome *o, int64_t now_us)
{
    struct route_state *rs = &s->routes[route];
    struct upstream *up = &rs->ups[call->upstream];
    struct breaker *b = &up->breaker;
    if (rs->in_flight > 0) rs->in_flight--;
    if (up->in_flight > 0) up->in_flight--;
    if (o->cancelled) {
        if (call->probe) breaker_cancel(b);
        return;
    }
    /* While half-open only the probe's answer counts: a call that started
     * before the breaker opened says nothing about the upstream now. */
    if (b->state != BREAKER_HALF_OPEN || call->probe) breaker_record(b, o->failed, now_us / 1000);
    if (!o->pushback) return;
    if (o->retry_after_ms >= 0) {
        long ms = o->retry_after_ms < rs->cfg->backoff_max_ms ? o->retry_after_ms
                                                              : rs->cfg->backoff_max_ms;
        if (now_us + ms * US_PER_MS > rs->hold_until_us)
            rs->hold_until_us = now_us + ms * US_PER_MS;
    } else {
        aimd_decrease(&rs->aimd, observed(rs, now_us), now_us);
    }
}

void shaper_control(struct shaper *s, size_t route, const struct route_ctl *ctl, int64_t now_us)
{
    struct route_state *rs = &s->routes[route];
    rs->paused = ctl->paused;
    rs->max_in_flight_override = ctl->max_in_flight;
    if (ctl->rate_per_s == rs->rate_override) return;
    rs->rate_override = ctl->rate_per_s;
    aimd_set_configured(&rs->aimd, rate_of(rs), now_us);
    tune(rs, now_us);
}

bool shaper_paused(const struct shaper *s, size_t route)
{
    return s->routes[route].paused;
}

void shaper_reset(struct shaper *s)
{
    for (size_t i = 0; i < s->cfg->n_routes; i++) {
        struct route_state *rs = &s->routes[i];
        rs->in_flight = 0;
        for (size_t u = 0; u < rs->cfg->n_upstreams; u++) {
            rs->ups[u].in_flight = 0;
            breaker_cancel(&rs->ups[u].breaker);
        }
    }
}

double shaper_rate(struct shaper *s, size_t route, int64_t now_us)
{
    return aimd_rate(&s->routes[route].aimd, now_us);
}

long shaper_in_flight(const struct shaper *s, size_t route)
{
    return s->routes[route].in_flight;
}

enum breaker_state shaper_breaker(const struct shaper *s, size_t route, size_t upstream,
                                  int64_t now_us)
{
    return breaker_state(&s->routes[route].ups[upstream].breaker, now_us / US_PER_MS);
}

int64_t shaper_breaker_next_ms(const struct shaper *s, size_t route, size_t upstream)
{
    return breaker_next_ms(&s->routes[route].ups[upstream].breaker);
}

long shaper_breaker_opened(const struct shaper *s, size_t route, size_t upstream)
{
    return s->routes[route].ups[upstream].breaker.opened;
}
