/* lanes.c: the ingress's view of the lanes (see lanes.h). */
#include "lanes.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology.h"

/* BACKLOG_S_MAX stands for "nothing drains it": a backlog with no drain
 * rate (no worker, a stalled lane) reads as a day, so that an autoscaler
 * scales up rather than dividing by zero. */
#define BACKLOG_S_MAX 86400.0

#define H_MESSAGES                                                                                 \
    "Requests ready in the route's lane at the last poll (every 5 s); those a worker holds "       \
    "are not counted."
#define H_DRAIN                                                                                    \
    "Requests that left the route's lane per second over the last 30 s, fleet-wide, from the "     \
    "events stream."
#define H_BACKLOG_S                                                                                \
    "The lane's backlog in seconds: ready requests / drain rate (86400 when requests wait and "    \
    "nothing drains). Scale workers on the lanes with limited=\"false\": a limited lane is "       \
    "long by design."

struct lane {
    const struct cfg_route *route;
    char name[TOPO_NAME_MAX];
    _Atomic int64_t depth; /* -1 before the first poll */
    struct metric *m_messages, *m_drain, *m_backlog_s;
};

struct lanes {
    const struct cfg *cfg;
    struct status_index *index;
    struct lane *lanes;
    const char **names;
};

static int declare(struct lane *ln, struct metrics *m)
{
    char l[160];
    snprintf(l, sizeof(l), "route=\"%s\",limited=\"%s\"", ln->route->name,
             cfg_route_limited(ln->route) ? "true" : "false");
    ln->m_messages = metrics_gauge(m, "sluice_lane_messages", H_MESSAGES, l);
    ln->m_drain = metrics_gauge(m, "sluice_lane_drain_per_second", H_DRAIN, l);
    ln->m_backlog_s = metrics_gauge(m, "sluice_lane_backlog_seconds", H_BACKLOG_S, l);
    if (!ln->m_messages || !ln->m_drain || !ln->m_backlog_s) return -1;
    metric_set_float(ln->m_drain, 0);
    metric_set_float(ln->m_backlog_s, 0);
    return 0;
}

struct lanes *lanes_new(const struct cfg *cfg, struct metrics *m, struct status_index *index)
{
    struct lanes *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->cfg = cfg;
    l->index = index;
    l->lanes = calloc(cfg->n_routes + 1, sizeof(*l->lanes));
    l->names = calloc(cfg->n_routes + 1, sizeof(*l->names));
    if (!l->lanes || !l->names) goto err;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct lane *ln = &l->lanes[i];
        ln->route = &cfg->routes[i];
        topo_lane_name(cfg, ln->route, ln->name, sizeof(ln->name));
        atomic_init(&ln->depth, -1);
        l->names[i] = ln->name;
        if (m && declare(ln, m) < 0) goto err;
    }
    return l;
err:
    lanes_free(l); /* declared metrics stay in (and are freed with) the registry */
    return NULL;
}

void lanes_free(struct lanes *l)
{
    if (!l) return;
    free(l->lanes);
    free(l->names);
    free(l);
}

const char *lanes_name(const struct lanes *l, size_t i)
{
    return l->lanes[i].name;
}

const char *const *lanes_names(const struct lanes *l)
{
    return l->names;
}

int lanes_of(const struct lanes *l, const char *route)
{
    for (size_t i = 0; i < l->cfg->n_routes; i++)
        if (strcmp(l->lanes[i].route->name, route) == 0) return (int)i;
    return -1;
}

static double drain_of(struct lanes *l, const struct lane *ln, int64_t now_ms)
{
    return l->index ? status_index_drain_rate(l->index, ln->route->name, now_ms) : 0;
}

static double backlog_s(int64_t depth, double drain)
{
    if (depth <= 0) return 0;
    return drain > 0 && depth / drain < BACKLOG_S_MAX ? depth / drain : BACKLOG_S_MAX;
}

void lanes_set_depth(struct lanes *l, size_t i, uint32_t messages, int64_t now_ms)
{
    struct lane *ln = &l->lanes[i];
    atomic_store(&ln->depth, (int64_t)messages);
    if (!ln->m_messages) return;
    double drain = drain_of(l, ln, now_ms);
    metric_set(ln->m_messages, messages);
    metric_set_float(ln->m_drain, drain);
    metric_set_float(ln->m_backlog_s, backlog_s(messages, drain));
}

int64_t lanes_depth(struct lanes *l, size_t i)
{
    return atomic_load(&l->lanes[i].depth);
}

uint64_t lanes_total(struct lanes *l)
{
    uint64_t n = 0;
    for (size_t i = 0; i < l->cfg->n_routes; i++) {
        int64_t d = atomic_load(&l->lanes[i].depth);
        if (d > 0) n += (uint64_t)d;
    }
    return n;
}

static int render_lane(struct lanes *l, const struct lane *ln, struct buf *out, int64_t now_ms)
{
    const struct cfg_route *r = ln->route;
    int64_t depth = atomic_load(&ln->depth);
    double drain = drain_of(l, ln, now_ms);
    int rc = buf_appends(out, "{\"route\":");
    if (!rc) rc = buf_append_json_string(out, r->name, strlen(r->name));
    if (!rc) rc = buf_appends(out, ",\"lane\":");
    if (!rc) rc = buf_append_json_string(out, ln->name, strlen(ln->name));
    if (!rc)
        rc = buf_appendf(out, ",\"limited\":%s,\"rate_per_s\":%g,\"max_in_flight\":%ld",
                         cfg_route_limited(r) ? "true" : "false", r->rate_per_s, r->max_in_flight);
    if (!rc && depth < 0)
        rc = buf_appendf(out, ",\"backlog\":null,\"drain_per_s\":%.2f,\"backlog_s\":null}", drain);
    else if (!rc)
        rc = buf_appendf(out, ",\"backlog\":%lld,\"drain_per_s\":%.2f,\"backlog_s\":%.1f}",
                         (long long)depth, drain, backlog_s(depth, drain));
    return rc;
}

int lanes_render(struct lanes *l, struct buf *out, int64_t now_ms)
{
    int rc = buf_appends(out, "\"lanes\":[");
    for (size_t i = 0; i < l->cfg->n_routes && !rc; i++) {
        if (i) rc = buf_appends(out, ",");
        if (!rc) rc = render_lane(l, &l->lanes[i], out, now_ms);
    }
    return rc ? rc : buf_appends(out, "]");
}
