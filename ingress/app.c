/* app.c: the ingress's counters of HTTP answers (see app.h). */
#include "app.h"

#include <stdlib.h>

#include "clock.h"

#define APP_CODE_COUNT(c)                                                                          \
    case c:                                                                                        \
        metric_add(app->m_http_##c, 1);                                                            \
        break;

void app_count_response(struct app *app, int code)
{
    activity_count_response(app->activity, code);
    switch (code) {
        APP_CODES(APP_CODE_COUNT)
    }
}

static void observe_update(void *arg, const struct status_update *u)
{
    struct app *app = arg;
    if (u->state != ST_QUEUED) return;
    if (u->fp) idem_note(app->idem, u->id, u->fp, u->tenant, u->created_ms);
    if (u->ck) cache_note(app->cache, u->ck, u->id, u->tenant, u->created_ms);
}

static void observe_heartbeat(void *arg, const char *instance, int64_t ts_ms)
{
    struct app *app = arg;
    int64_t now = clock_real_ms();
    limits_heartbeat(app->limits, instance, ts_ms, now);
    limits_replicas(app->limits, now); /* brings the gauge up to date */
}

static void observe_expiry(void *arg, int64_t now_ms)
{
    struct app *app = arg;
    idem_expire(app->idem, now_ms);
    cache_expire(app->cache, now_ms);
}

/* observe_tick takes a sample of the routes' history when one is due:
 * arrivals from the status index, outcomes from the page's counters, the
 * lanes' depths as the publisher last polled them. The baseline waits for
 * the events stream to be caught up, or the requests of the whole retention
 * read at start would show as the first period's. */
static void observe_tick(void *arg, bool caught_up)
{
    struct app *app = arg;
    int64_t mono = clock_mono_ms();
    if (!app->history || !history_due(app->history, mono)) return;
    if (!caught_up && !history_started(app->history)) return;
    size_t n = app->cfg.n_routes;
    struct history_counts *c = calloc(n + 1, sizeof *c);
    if (!c) return; /* out of memory: the next tick tries again */
    for (size_t i = 0; i < n; i++) {
        const char *name = app->cfg.routes[i].name;
        uint64_t ok, failed;
        activity_outcomes(app->activity, name, &ok, &failed);
        c[i] =
            (struct history_counts){status_index_arrivals(app->index, name), (uint32_t)ok,
                                    (uint32_t)failed, app->lanes ? lanes_depth(app->lanes, i) : -1};
    }
    history_record(app->history, mono, clock_real_ms(), c);
    free(c);
}

const struct events_observer app_observer = {observe_update, observe_heartbeat, observe_expiry,
                                             observe_tick};

int app_history_new(struct app *app)
{
    size_t n = app->cfg.n_routes;
    const char **names = calloc(n + 1, sizeof *names);
    if (!names) return -1;
    for (size_t i = 0; i < n; i++)
        names[i] = app->cfg.routes[i].name;
    app->history = history_new(names, n, HISTORY_SAMPLES, HISTORY_PERIOD_MS);
    free(names);
    return app->history ? 0 : -1;
}

int app_declare_metrics(struct app *app)
{
#define APP_CODE_DECLARE(c)                                                                        \
    app->m_http_##c = metrics_counter(app->metrics, "sluice_ingress_responses_total",              \
                                      "HTTP answers by status code.", "code=\"" #c "\"");          \
    if (!app->m_http_##c) return -1;
    APP_CODES(APP_CODE_DECLARE)
#undef APP_CODE_DECLARE
    return 0;
}
