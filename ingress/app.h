/* app.h: what the ingress's parts share. main.c owns the struct and every
 * member, and starts and stops them; the HTTP server and the handlers use
 * them, and app.c counts the answers. */
#ifndef SLUICE_APP_H
#define SLUICE_APP_H

#include <stddef.h>

#include "activity.h"
#include "auth.h"
#include "cache.h"
#include "config.h"
#include "control.h"
#include "deadletters.h"
#include "events.h"
#include "fleet.h"
#include "history.h"
#include "idempotency.h"
#include "keylimits.h"
#include "lanes.h"
#include "metrics.h"
#include "publisher.h"
#include "readback.h"
#include "reports.h"
#include "routectl.h"
#include "status_index.h"
#include "waiters.h"

/* The HTTP status codes the ingress answers, each with its own counter. */
// clang-format off
#define APP_CODES(X) \
    X(200) X(202) X(204) X(400) X(401) X(403) X(404) X(405) X(408) X(409) X(413) X(414) X(415) \
    X(422) X(429) X(431) X(500) X(503)
// clang-format on

struct app {
    struct cfg cfg;
    struct auth *auth; /* the JWT keys, made from cfg */
    struct metrics *metrics;
    struct status_index *index;
    struct publisher *publisher;
    struct events *events;
    struct activity *activity; /* what the status page shows */
    struct waiters *waiters;   /* long-poll clients */
    struct lanes *lanes;       /* each route's lane: name, depth, metrics */
    struct idem *idem;         /* idempotency keys (idempotency.h) */
    struct cache *cache;       /* cached reads (cache.h) */
    struct limits *limits;     /* per-key limits (keylimits.h) */
    struct control *control;   /* cancels, erasures, heartbeats (control.h) */
    struct readback *readback; /* results let go by the index, read back (readback.h) */
    struct deadletters *dead;  /* replays and purges of the dead letters (deadletters.h) */
    struct routectl *routectl; /* the routes' pauses and overrides (routectl.h) */
    struct fleet *fleet;       /* the workers' latest reports (fleet.h) */
    struct reports *reports;   /* their reader (reports.h) */
    struct history *history;   /* the routes' last minutes, for the page's charts */
#define APP_CODE_FIELD(c) struct metric *m_http_##c;
    APP_CODES(APP_CODE_FIELD)
#undef APP_CODE_FIELD
};

/* app_declare_metrics declares the answer counters; -1 when out of memory. */
__attribute__((warn_unused_result)) int app_declare_metrics(struct app *app);
/* app_count_response counts one answer with status code (thread-safe). */
void app_count_response(struct app *app, int code);
/* app_history_new makes app->history for cfg's routes, before the events
 * thread starts (it records from the events thread's tick). -1 on ENOMEM. */
__attribute__((warn_unused_result)) int app_history_new(struct app *app);
/* app_observer is what the events reader tells the contract's parts
 * (idempotency fingerprints, cache keys, heartbeats, expiry); its arg is app. */
extern const struct events_observer app_observer;

#endif
