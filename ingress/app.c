/* app.c: the ingress's counters of HTTP answers (see app.h). */
#include "app.h"

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

const struct events_observer app_observer = {observe_update, observe_heartbeat, observe_expiry};

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
