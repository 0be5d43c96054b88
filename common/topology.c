/* topology.c: what sluice declares on the broker (see topology.h). Each kind
 * of queue has one function that fills in its arguments; topo_declare says
 * which queues a connection declares, in which order. mq.c does the wire. */
#include "topology.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* TOPO_MAX_ARGS bounds the arguments of one queue declaration. */
#define TOPO_MAX_ARGS 8

/* Events stream segments: the unit of retention. Small enough that max-age
 * bites at a useful granularity. */
#define EVENTS_SEGMENT_BYTES (50 * 1000 * 1000)
/* The claims stream carries about 35 bytes per request. */
#define CLAIMS_SEGMENT_BYTES (10 * 1000 * 1000)
/* The admin stream holds whole snapshots of the routes' runtime state
 * (common/routectl.h): readers start at its last chunk, which retention
 * never deletes, so it needs no age limit; a small size limit keeps the
 * history short. */
#define ADMIN_SEGMENT_BYTES (1000 * 1000)
#define ADMIN_MAX_BYTES (10 * 1000 * 1000)

static const char *const suffixes[] = {
    [TOPO_OLD_REQUESTS] = "requests", [TOPO_DEAD] = "dead",       [TOPO_EVENTS] = "events",
    [TOPO_DELAY] = "delay",           [TOPO_CLAIMS] = "claims",   [TOPO_ADMIN] = "admin",
    [TOPO_DELIVERIES] = "deliveries", [TOPO_REPORTS] = "reports",
};

/* A queue_args is the argument table of a queue being declared. */
struct queue_args {
    amqp_table_entry_t e[TOPO_MAX_ARGS];
    int n;
};

static void arg_str(struct queue_args *a, const char *key, const char *value)
{
    if (a->n < TOPO_MAX_ARGS)
        a->e[a->n++] = (amqp_table_entry_t){
            .key = amqp_cstring_bytes(key),
            .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(value)}};
}

static void arg_i64(struct queue_args *a, const char *key, int64_t value)
{
    if (a->n < TOPO_MAX_ARGS)
        a->e[a->n++] =
            (amqp_table_entry_t){.key = amqp_cstring_bytes(key),
                                 .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = value}};
}

static void arg_bool(struct queue_args *a, const char *key, bool value)
{
    if (a->n < TOPO_MAX_ARGS)
        a->e[a->n++] = (amqp_table_entry_t){
            .key = amqp_cstring_bytes(key),
            .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = value}};
}

static amqp_table_t table(struct queue_args *a)
{
    return (amqp_table_t){.num_entries = a->n, .entries = a->e};
}

void topo_name(const struct cfg *cfg, enum topo_queue q, char *out, size_t outlen)
{
    mq_name(out, outlen, cfg->namespace, suffixes[q]);
}

static void lane_name(const struct cfg *cfg, const struct cfg_route *r, bool limited, char *out,
                      size_t outlen)
{
    char suffix[96];
    snprintf(suffix, sizeof(suffix), "%s.%s", limited ? "lane-sac" : "lane", r->name);
    mq_name(out, outlen, cfg->namespace, suffix);
}

void topo_lane_name(const struct cfg *cfg, const struct cfg_route *r, char *out, size_t outlen)
{
    lane_name(cfg, r, cfg_route_limited(r), out, outlen);
}

void topo_other_lane_name(const struct cfg *cfg, const struct cfg_route *r, char *out,
                          size_t outlen)
{
    lane_name(cfg, r, !cfg_route_limited(r), out, outlen);
}

void topo_delay_name(const struct cfg *cfg, long delay_ms, char *out, size_t outlen)
{
    char suffix[40];
    snprintf(suffix, sizeof(suffix), "delay.%ld", delay_ms);
    mq_name(out, outlen, cfg->namespace, suffix);
}

/* is_quorum reads the queue type, refusing names it does not know (config.c
 * already does; a library caller may not have). */
static int is_quorum(const struct cfg *cfg, bool *quorum, char *err, size_t errlen)
{
    const char *t = cfg->queue_type;
    *quorum = t && !strcmp(t, "quorum");
    if (*quorum || (t && !strcmp(t, "classic"))) return 0;
    snprintf(err, errlen, "queue type \"%s\" is neither classic nor quorum", t ? t : "(null)");
    return -1;
}

/* add_quorum makes a queue a quorum queue. A quorum queue that dead-letters
 * does so at most once by default: a message expiring from a retry queue, or
 * past the delivery limit, would be lost if its target were unavailable at
 * that instant (a leader election in a cluster). The at-least-once strategy
 * keeps it until the target confirms it; it requires the reject-publish
 * overflow, which without a length limit never refuses a publish, and with
 * one (an operator's policy) refuses new requests, answered 503, instead of
 * dropping accepted ones from the head of the queue. */
static void add_quorum(struct queue_args *a, bool dead_letters)
{
    arg_str(a, "x-queue-type", "quorum");
    if (!dead_letters) return;
    arg_str(a, "x-dead-letter-strategy", "at-least-once");
    arg_str(a, "x-overflow", "reject-publish");
}

/* add_classic makes a queue a classic queue of version 2 (RabbitMQ 3.10+),
 * whose index does less work per message than version 1's, and lazy: it
 * writes messages to disk at once instead of holding them in the queue
 * process's heap, so a backlog while workers are down costs the broker no
 * memory (no memory alarm blocking the ingress) and no garbage collection.
 * bench/ceiling, priority queue, 64 confirms outstanding: 15.7k publishes/s
 * (version 1), 23.9k (version 2), 36k-44k (version 2, lazy). RabbitMQ 3.12
 * and later behave this way anyway and ignore x-queue-mode. Quorum queues
 * and streams refuse both arguments (406). */
static void add_classic(struct queue_args *a)
{
    arg_i64(a, "x-queue-version", 2);
    arg_str(a, "x-queue-mode", "lazy");
}

/* lane_args: classic lanes get priorities 0..9. Quorum: RabbitMQ refuses
 * x-max-priority on a quorum queue (3.10 answers 406 PRECONDITION_FAILED;
 * 4.0 and later have two levels, normal and high, without any argument).
 * Instead the delivery limit sends a message that keeps coming back
 * unacked, because it crashes every worker that takes it, to the dead queue
 * after delivery_limit returns. A limited route's lane has a single active
 * consumer (both types have it since RabbitMQ 3.8): one worker at a time
 * shapes the route, so its limits hold across the fleet, and the broker
 * hands the lane to another worker when that one goes. dead names the dead
 * queue. */
static int lane_args(const struct cfg *cfg, const struct cfg_route *r, bool quorum,
                     const char *dead, struct queue_args *a, char *err, size_t errlen)
{
    if (quorum) {
        if (cfg->delivery_limit < 1) {
            snprintf(err, errlen, "delivery limit %ld is not positive", cfg->delivery_limit);
            return -1;
        }
        add_quorum(a, true);
        arg_i64(a, "x-delivery-limit", cfg->delivery_limit);
    } else {
        add_classic(a);
        arg_i64(a, "x-max-priority", 9);
    }
    arg_str(a, "x-dead-letter-exchange", "");
    arg_str(a, "x-dead-letter-routing-key", dead);
    if (cfg_route_limited(r)) arg_bool(a, "x-single-active-consumer", true);
    return 0;
}

static void dead_args(bool quorum, struct queue_args *a)
{
    if (quorum)
        add_quorum(a, false);
    else
        add_classic(a);
}

/* delay_args: messages wait delay_ms, then the broker dead-letters them
 * through the default exchange with the routing key they were published
 * with (no x-dead-letter-routing-key): their lane's name. One delay queue
 * thus serves every route. */
static void delay_args(bool quorum, long delay_ms, struct queue_args *a)
{
    if (quorum)
        add_quorum(a, true);
    else
        add_classic(a);
    arg_i64(a, "x-message-ttl", delay_ms);
    arg_str(a, "x-dead-letter-exchange", "");
}

/* stream_args: a stream gets a replica on every node of the cluster when it
 * is declared, in either mode, so it needs no x-initial-cluster-size.
 * max_age is "<retention>s". */
static void stream_args(const char *max_age, int64_t segment, struct queue_args *a)
{
    arg_str(a, "x-queue-type", "stream");
    arg_str(a, "x-max-age", max_age);
    arg_i64(a, "x-stream-max-segment-size-bytes", segment);
}

/* declare_lanes declares every route's lane. */
static int declare_lanes(struct mq *mq, const struct cfg *cfg, bool quorum, const char *dead,
                         char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct cfg_route *r = &cfg->routes[i];
        char lane[TOPO_NAME_MAX];
        struct queue_args a = {.n = 0};
        topo_lane_name(cfg, r, lane, sizeof(lane));
        if (lane_args(cfg, r, quorum, dead, &a, err, errlen) < 0 ||
            mq_declare_queue(mq, lane, table(&a), err, errlen) < 0)
            return -1;
    }
    return 0;
}

int topo_declare(struct mq *mq, const struct cfg *cfg, char *err, size_t errlen)
{
    char dead[TOPO_NAME_MAX], events[TOPO_NAME_MAX], delay[TOPO_NAME_MAX], claims[TOPO_NAME_MAX],
        max_age[32];
    struct queue_args dl = {.n = 0}, ev = {.n = 0}, cl = {.n = 0}, ad = {.n = 0};
    char admin[TOPO_NAME_MAX], deliveries[TOPO_NAME_MAX], reports[TOPO_NAME_MAX];
    struct queue_args dv = {.n = 0};
    bool quorum;
    if (is_quorum(cfg, &quorum, err, errlen) < 0) return -1;
    topo_name(cfg, TOPO_DEAD, dead, sizeof(dead));
    topo_name(cfg, TOPO_EVENTS, events, sizeof(events));
    topo_name(cfg, TOPO_DELAY, delay, sizeof(delay));
    topo_name(cfg, TOPO_CLAIMS, claims, sizeof(claims));
    topo_name(cfg, TOPO_ADMIN, admin, sizeof(admin));
    topo_name(cfg, TOPO_DELIVERIES, deliveries, sizeof(deliveries));
    /* Deliveries are acked once called (or settled as failed): no dead letters. */
    dead_args(quorum, &dv);
    topo_name(cfg, TOPO_REPORTS, reports, sizeof(reports));
    arg_str(&ad, "x-queue-type", "stream");
    arg_i64(&ad, "x-max-length-bytes", ADMIN_MAX_BYTES);
    arg_i64(&ad, "x-stream-max-segment-size-bytes", ADMIN_SEGMENT_BYTES);
    snprintf(max_age, sizeof(max_age), "%lds", cfg->ingress.status_retention_s);
    dead_args(quorum, &dl);
    stream_args(max_age, EVENTS_SEGMENT_BYTES, &ev);
    stream_args(max_age, CLAIMS_SEGMENT_BYTES, &cl);
    if (mq_declare_queue(mq, dead, table(&dl), err, errlen) < 0 ||
        mq_declare_exchange(mq, delay, "headers", err, errlen) < 0 ||
        declare_lanes(mq, cfg, quorum, dead, err, errlen) < 0 ||
        mq_declare_queue(mq, deliveries, table(&dv), err, errlen) < 0 ||
        mq_declare_queue(mq, events, table(&ev), err, errlen) < 0 ||
        mq_declare_queue(mq, claims, table(&cl), err, errlen) < 0 ||
        mq_declare_queue(mq, admin, table(&ad), err, errlen) < 0 ||
        /* Durable like every exchange of sluice's: the reports themselves
         * are transient, and the queues they reach are each ingress's own. */
        mq_declare_exchange(mq, reports, "fanout", err, errlen) < 0)
        return -1;
    return 0;
}

int topo_declare_retry(struct mq *mq, const struct cfg *cfg, long delay_ms, char *err,
                       size_t errlen)
{
    char name[TOPO_NAME_MAX], exchange[TOPO_NAME_MAX], value[24];
    struct queue_args a = {.n = 0}, match = {.n = 0};
    bool quorum;
    if (is_quorum(cfg, &quorum, err, errlen) < 0) return -1;
    topo_delay_name(cfg, delay_ms, name, sizeof(name));
    topo_name(cfg, TOPO_DELAY, exchange, sizeof(exchange));
    snprintf(value, sizeof(value), "%ld", delay_ms);
    delay_args(quorum, delay_ms, &a);
    arg_str(&match, "x-match", "all");
    arg_str(&match, TOPO_DELAY_HEADER, value);
    if (mq_declare_queue(mq, name, table(&a), err, errlen) < 0 ||
        mq_bind(mq, name, exchange, "", table(&match), err, errlen) < 0)
        return -1;
    return 0;
}
