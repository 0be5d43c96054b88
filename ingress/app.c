/* app.c: the ingress's counters of HTTP answers (see app.h). */
#include "app.h"

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
