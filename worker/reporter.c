/* reporter.c: the worker's reports (see reporter.h). */
#include "reporter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "id.h"
#include "log.h"
#include "report.h"
#include "session.h"
#include "topology.h"

/* A route's completed calls: the interval under way, and the last
 * REPORTER_WINDOW ones. */
struct counts {
    uint32_t calls, failures;
    uint32_t win_calls[REPORTER_WINDOW], win_failures[REPORTER_WINDOW];
};

struct reporter {
    const struct cfg *cfg;
    const struct shaper *shaper;
    struct report *rep;
    struct counts *counts;           /* cfg->n_routes */
    int64_t win_ms[REPORTER_WINDOW]; /* each interval's length */
    size_t slot;                     /* the window's next slot */
    int64_t last_ms, due_ms;         /* monotonic */
    char exchange[TOPO_NAME_MAX];
};

struct reporter *reporter_new(const struct cfg *cfg, const struct shaper *shaper)
{
    struct reporter *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cfg = cfg;
    r->shaper = shaper;
    r->rep = report_new(cfg);
    r->counts = calloc(cfg->n_routes + 1, sizeof *r->counts);
    if (!r->rep || !r->counts) {
        reporter_free(r);
        return NULL;
    }
    /* The host and pid say which worker it is; a few random characters keep
     * two containers that share a hostname and a pid apart. */
    char host[64], id[ID_LEN + 1] = "";
    if (gethostname(host, sizeof host) < 0) snprintf(host, sizeof host, "worker");
    host[sizeof host - 1] = '\0';
    if (id_new(id, clock_real_ms()) < 0) snprintf(id, sizeof id, "%032ld", (long)clock_mono_ms());
    snprintf(r->rep->worker, sizeof r->rep->worker, "%s:%ld:%s", host, (long)getpid(),
             id + ID_LEN - 6);
    topo_name(cfg, TOPO_REPORTS, r->exchange, sizeof r->exchange);
    r->last_ms = r->due_ms = clock_mono_ms();
    return r;
}

static void publish(struct reporter *r, struct session *s)
{
    struct buf b;
    buf_init(&b, REPORT_MAX_BYTES);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .delivery_mode = AMQP_DELIVERY_NONPERSISTENT};
    r->rep->seq++;
    if (report_encode(r->cfg, r->rep, &b) < 0)
        log_warn("the worker's report does not fit in %d bytes", REPORT_MAX_BYTES);
    else
        (void)session_publish_transient(s, r->exchange, "", &props, b.data, b.len);
    buf_free(&b);
}

void reporter_bye(struct reporter *r, struct session *s)
{
    if (!session_up(s)) return;
    r->rep->bye = true;
    publish(r, s);
}

void reporter_free(struct reporter *r)
{
    if (!r) return;
    report_free(r->cfg, r->rep);
    free(r->counts);
    free(r);
}

void reporter_call(struct reporter *r, size_t route, bool failed)
{
    r->counts[route].calls++;
    r->counts[route].failures += failed;
}

int reporter_timeout_ms(const struct reporter *r, int64_t now_ms, int max_ms)
{
    int64_t until_due = r->due_ms > now_ms ? r->due_ms - now_ms : 0;
    return until_due < max_ms ? (int)until_due : max_ms;
}

/* fill_route sets route i's figures: the interval just over enters the
 * window, the rates are the window's, the rest is the shaper's now. */
static void fill_route(struct reporter *r, size_t i, double window_s, int64_t now_ms)
{
    struct counts *c = &r->counts[i];
    struct report_route *rr = &r->rep->routes[i];
    c->win_calls[r->slot] = c->calls;
    c->win_failures[r->slot] = c->failures;
    c->calls = c->failures = 0;
    uint64_t calls = 0, failures = 0;
    for (size_t k = 0; k < REPORTER_WINDOW; k++)
        calls += c->win_calls[k], failures += c->win_failures[k];
    rr->rate = window_s > 0 ? (double)calls / window_s : 0;
    rr->failure_rate = window_s > 0 ? (double)failures / window_s : 0;
    rr->in_flight = shaper_in_flight(r->shaper, i);
    for (size_t u = 0; u < r->cfg->routes[i].n_upstreams; u++) {
        enum breaker_state st = shaper_breaker(r->shaper, i, u, now_ms * 1000);
        int64_t next = shaper_breaker_next_ms(r->shaper, i, u);
        rr->ups[u] = (struct report_upstream){
            .state = st, .open_ms = st == BREAKER_OPEN && next > now_ms ? next - now_ms : 0};
    }
}

void reporter_run(struct reporter *r, struct session *s, int64_t now_ms)
{
    if (now_ms < r->due_ms) return;
    r->win_ms[r->slot] = now_ms - r->last_ms;
    int64_t window_ms = 0;
    for (size_t k = 0; k < REPORTER_WINDOW; k++)
        window_ms += r->win_ms[k];
    for (size_t i = 0; i < r->cfg->n_routes; i++)
        fill_route(r, i, (double)window_ms / 1000.0, now_ms);
    r->slot = (r->slot + 1) % REPORTER_WINDOW;
    r->last_ms = now_ms;
    r->due_ms = now_ms + REPORT_EVERY_MS;
    if (session_up(s)) publish(r, s);
}
