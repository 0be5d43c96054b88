/* lanes.h: what the ingress knows about each route's lane (its queue, see
 * common/topology.h): the name it publishes to, the ready messages the
 * publisher thread polls every few seconds, and the lane metrics derived
 * from them. The publisher thread writes; HTTP threads read (atomics). */
#ifndef SLUICE_LANES_H
#define SLUICE_LANES_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "metrics.h"
#include "status_index.h"

struct lanes;

/* lanes_new names the lane of every route of cfg and declares the lane
 * metrics in m; index (may be NULL) gives the drain rates. cfg, m and index
 * must outlive it. NULL on ENOMEM. */
struct lanes *lanes_new(const struct cfg *cfg, struct metrics *m, struct status_index *index);
void lanes_free(struct lanes *l);

/* lanes_name is the queue name of route i of cfg->routes. */
const char *lanes_name(const struct lanes *l, size_t i);
/* lanes_names is every lane name, in route order (cfg->n_routes of them). */
const char *const *lanes_names(const struct lanes *l);
/* lanes_of returns the index of the route named name, or -1. */
int lanes_of(const struct lanes *l, const char *route);

/* lanes_set_depth records the ready messages of lane i at real time now_ms
 * and refreshes its metrics. */
void lanes_set_depth(struct lanes *l, size_t i, uint32_t messages, int64_t now_ms);
/* lanes_depth is lane i's last polled depth, or -1 before any poll. */
int64_t lanes_depth(struct lanes *l, size_t i);
/* lanes_total is the sum of the last depths polled (0 before any poll). */
uint64_t lanes_total(struct lanes *l);

/* lanes_render appends the member "lanes" of the status page's summary (no
 * braces): per route its limits, backlog, drain rate and backlog seconds.
 * Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int lanes_render(struct lanes *l, struct buf *out,
                                                     int64_t now_ms);

#endif
