/* adminapi.h: the admin API's endpoints (docs/api.md "Admin API"), for
 * keys with "admin": true or the status page's admin token (handlers.c
 * checks who before these run). Every action is logged with the key's id.
 *   GET  /v1/admin/dead          the dead letters (deadlist.h)
 *   POST /v1/admin/dead:replay   {"ids":[..]} | {"route":".."} | {"all":true}
 *   POST /v1/admin/dead:purge    the same selectors (deadletters.h) */
#ifndef SLUICE_ADMINAPI_H
#define SLUICE_ADMINAPI_H

#include <stdbool.h>

#include "handlers.h"

/* adminapi_who names the caller of an admin endpoint for the logs. */
const char *adminapi_who(const struct request *r);

bool admin_dead_list(struct request *r, struct answer *a);
bool admin_dead_replay(struct request *r, struct answer *a);
bool admin_dead_purge(struct request *r, struct answer *a);

#endif
