/* watch.h: `sluice status --watch` over many requests: long-polls
 * (GET /v1/requests/<id>?wait=S) over a few connections until every
 * request is final. Piped, it prints each request's final status as one
 * JSON line as it comes; on a terminal, a progress bar and a summary. */
#ifndef SLUICE_CLI_WATCH_H
#define SLUICE_CLI_WATCH_H

#include <stddef.h>

#include "cli.h"

#define WATCH_PARALLEL 32 /* long-polls at once */
#define WATCH_LONG_S 30   /* a wait when every request has a connection */
#define WATCH_SHORT_S 1   /* a wait when requests take turns */
#define WATCH_OUTAGE_MS 30000

/* watch_many watches ids[0..n-1] (well-formed IDs) for at most timeout_s
 * seconds (0: no limit) and returns the exit code: CLI_OK when all
 * succeeded, CLI_FINAL_FAILED when any failed or is dead, CLI_TIMEOUT when
 * any was still not final, CLI_API when any is unknown (404) or the API
 * refused, CLI_UNAVAILABLE when the ingress stayed away (the worst wins,
 * in the order unavailable, API, timeout, failed). */
int watch_many(const struct cli *c, char *const ids[], size_t n, long timeout_s);

#endif
