/* events.h: the ingress's reader of the events stream. One thread consumes
 * "<namespace>.events" from the start of retention into the status index, so
 * this replica knows every request any replica accepted and any worker
 * touched, and still knows them after a restart. It publishes a marker with a
 * fresh nonce when it connects and reports itself caught up when the marker
 * comes back: everything before it has been applied. */
#ifndef SLUICE_EVENTS_H
#define SLUICE_EVENTS_H

#include <stdbool.h>

#include "activity.h"
#include "config.h"
#include "metrics.h"
#include "status_index.h"

struct events;

/* What the reader tells others besides the index, on its thread (any hook
 * may be NULL): every applied update, every heartbeat of another replica,
 * and the time at each expiry round (every 10 s). */
struct events_observer {
    void (*on_update)(void *arg, const struct status_update *u);
    void (*on_heartbeat)(void *arg, const char *instance, int64_t ts_ms);
    void (*on_expire)(void *arg, int64_t now_ms);
    /* on_tick is called on every turn of the events thread (at least once a
     * second), after the turn's deliveries were applied; caught_up is
     * events_caught_up's answer. */
    void (*on_tick)(void *arg, bool caught_up);
};

/* events_new starts the consumer thread; cfg, metrics and index must outlive
 * it, and obs (may be NULL) with its arg. Messages whose app_id is instance
 * came from this process, which put their statuses in the index already:
 * they are skipped. */
struct events *events_new(const struct cfg *cfg, struct metrics *metrics,
                          struct status_index *index, struct activity *activity,
                          const char *instance, const struct events_observer *obs, void *obs_arg);
void events_free(struct events *e);
/* events_caught_up tells whether the index holds everything published before the
 * current connection was made (false while disconnected). */
bool events_caught_up(struct events *e);

#endif
