/* intake.c: the worker's consumers (see intake.h). A consumer's tag says
 * what it consumes: "lane.<i>", "other.<i>", "old" or "deliveries". */
#include "intake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "topology.h"

#define LIMITED_PREFETCH_MIN 10
#define TAG_LEN 32

struct queue {
    char name[TOPO_NAME_MAX];
    bool consumed; /* on the current connection */
};

struct intake {
    const struct cfg *cfg;
    struct queue *lanes, *others; /* one per route */
    struct queue old, deliveries;
    char dead[TOPO_NAME_MAX];
    const char **stats; /* lanes, then dead */
};

struct intake *intake_new(const struct cfg *cfg)
{
    struct intake *in = calloc(1, sizeof(*in));
    if (!in) return NULL;
    in->cfg = cfg;
    in->lanes = calloc(cfg->n_routes + 1, sizeof(*in->lanes));
    in->others = calloc(cfg->n_routes + 1, sizeof(*in->others));
    in->stats = calloc(cfg->n_routes + 1, sizeof(*in->stats));
    if (!in->lanes || !in->others || !in->stats) {
        intake_free(in);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        topo_lane_name(cfg, &cfg->routes[i], in->lanes[i].name, TOPO_NAME_MAX);
        topo_other_lane_name(cfg, &cfg->routes[i], in->others[i].name, TOPO_NAME_MAX);
        in->stats[i] = in->lanes[i].name;
    }
    topo_name(cfg, TOPO_OLD_REQUESTS, in->old.name, sizeof(in->old.name));
    topo_name(cfg, TOPO_DELIVERIES, in->deliveries.name, sizeof(in->deliveries.name));
    topo_name(cfg, TOPO_DEAD, in->dead, sizeof(in->dead));
    in->stats[cfg->n_routes] = in->dead;
    return in;
}

void intake_free(struct intake *in)
{
    if (!in) return;
    free(in->lanes);
    free(in->others);
    free(in->stats);
    free(in);
}

uint16_t intake_prefetch(const struct cfg *cfg, const struct cfg_route *r)
{
    if (!cfg_route_limited(r)) return (uint16_t)cfg->worker.prefetch;
    double burst = r->burst > 0 ? (double)r->burst : r->rate_per_s > 1 ? r->rate_per_s : 1;
    /* A call of a batch route takes up to batch_max of them (admit.h):
     * enough for the calls in flight and as many more waiting to fill the
     * next ones. */
    double per_call = r->batch_url ? (double)r->batch_max : 1;
    double n = 2.0 * (double)r->max_in_flight * per_call;
    if (burst > n) n = burst;
    if (n < LIMITED_PREFETCH_MIN) n = LIMITED_PREFETCH_MIN;
    return n > UINT16_MAX ? UINT16_MAX : (uint16_t)n;
}

/* consume starts a consumer of q with prefetch under tag. */
static int consume(struct mq *mq, struct queue *q, uint16_t prefetch, const char *tag)
{
    if (mq_qos(mq, prefetch) < 0 || mq_consume_as(mq, q->name, tag) < 0) return -1;
    q->consumed = true;
    return 0;
}

/* consume_if_there drains q when it exists: probed on a channel of its
 * own, since asking about a missing queue closes the channel that asks. */
static int consume_if_there(struct mq *mq, struct queue *q, uint16_t prefetch, const char *tag)
{
    uint32_t messages, consumers;
    int rc = mq_queue_probe(mq, q->name, &messages, &consumers);
    if (rc <= 0) return rc;
    log_info("draining %s (%u ready): it is no longer where requests go", q->name, messages);
    return consume(mq, q, prefetch, tag);
}

int intake_start(struct intake *in, struct mq *mq)
{
    const struct cfg *cfg = in->cfg;
    char tag[TAG_LEN];
    in->old.consumed = false;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        uint16_t prefetch = intake_prefetch(cfg, &cfg->routes[i]);
        in->lanes[i].consumed = in->others[i].consumed = false;
        snprintf(tag, sizeof(tag), "lane.%zu", i);
        if (consume(mq, &in->lanes[i], prefetch, tag) < 0) return -1;
        snprintf(tag, sizeof(tag), "other.%zu", i);
        if (consume_if_there(mq, &in->others[i], prefetch, tag) < 0) return -1;
    }
    in->deliveries.consumed = false;
    if (consume(mq, &in->deliveries, (uint16_t)cfg->worker.prefetch, "deliveries") < 0) return -1;
    return consume_if_there(mq, &in->old, (uint16_t)cfg->worker.prefetch, "old") < 0 ? -1 : 0;
}

int intake_stop(struct intake *in, struct mq *mq)
{
    char tag[TAG_LEN];
    int rc = 0;
    for (size_t i = 0; i < in->cfg->n_routes && rc == 0; i++) {
        snprintf(tag, sizeof(tag), "lane.%zu", i);
        if (in->lanes[i].consumed) rc = mq_cancel_as(mq, tag);
        snprintf(tag, sizeof(tag), "other.%zu", i);
        if (rc == 0 && in->others[i].consumed) rc = mq_cancel_as(mq, tag);
    }
    if (rc == 0 && in->old.consumed) rc = mq_cancel_as(mq, "old");
    if (rc == 0 && in->deliveries.consumed) rc = mq_cancel_as(mq, "deliveries");
    return rc;
}

/* tag_index reads the route index after prefix in tag. */
static bool tag_index(const char *tag, const char *prefix, size_t n_routes, size_t *i)
{
    size_t n = strlen(prefix);
    if (strncmp(tag, prefix, n) != 0 || tag[n] < '0' || tag[n] > '9') return false;
    char *end;
    unsigned long v = strtoul(tag + n, &end, 10);
    if (*end || v >= n_routes) return false;
    *i = (size_t)v;
    return true;
}

enum intake_source intake_source(const struct intake *in, const char *tag, size_t *route)
{
    if (tag_index(tag, "lane.", in->cfg->n_routes, route)) return INTAKE_LANE;
    if (tag_index(tag, "other.", in->cfg->n_routes, route)) return INTAKE_OTHER;
    if (strcmp(tag, "old") == 0) return INTAKE_OLD;
    if (strcmp(tag, "deliveries") == 0) return INTAKE_DELIVERIES;
    return INTAKE_UNKNOWN;
}

bool intake_gone(struct intake *in, const char *tag)
{
    size_t i;
    switch (intake_source(in, tag, &i)) {
    case INTAKE_OTHER:
        log_info("%s was deleted: no longer draining it", in->others[i].name);
        in->others[i].consumed = false;
        return true;
    case INTAKE_OLD:
        log_info("%s was deleted: no longer draining it", in->old.name);
        in->old.consumed = false;
        return true;
    default:
        return false;
    }
}

const char *intake_lane(const struct intake *in, size_t i)
{
    return in->lanes[i].name;
}

const char *const *intake_stats_queues(const struct intake *in)
{
    return in->stats;
}
