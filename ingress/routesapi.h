/* routesapi.h: the admin API's routes (docs/api.md "Admin API"):
 *   GET    /v1/admin/routes                     every route's state
 *   POST   /v1/admin/routes/<route>:pause       no worker starts a call of it
 *   POST   /v1/admin/routes/<route>:resume
 *   PATCH  /v1/admin/routes/<route>             {"rate_per_s":N,"max_in_flight":N}
 *   DELETE /v1/admin/routes/<route>/override    back to the configured limits
 *   GET    /v1/admin/history[?route=<route>]     the last 15 minutes (history.h)
 * A change is a new snapshot of every route's state on the admin stream
 * (common/routectl.h), made from this replica's copy of the last one and
 * published on the dead letters' thread (deadletters.h); it answers once
 * the broker confirmed it, with the route's new state. */
#ifndef SLUICE_ROUTESAPI_H
#define SLUICE_ROUTESAPI_H

#include <stdbool.h>

#include "handlers.h"

bool admin_routes_list(struct request *r, struct answer *a);
/* admin_route_change answers the others: r->rest is "<route>:pause",
 * "<route>:resume", "<route>" (PATCH) or "<route>/override" (DELETE). */
bool admin_route_change(struct request *r, struct answer *a);
/* admin_history answers the routes' recent samples, of one route with
 * ?route=<name> (404 unknown_route when there is none of that name). */
bool admin_history(struct request *r, struct answer *a);

#endif
