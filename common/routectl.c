/* routectl.c: the routes' runtime state and its reader (see routectl.h). */
#include "routectl.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "log.h"
#include "mq.h"
#include "nodes.h"
#include "topology.h"

#define CONNECT_TIMEOUT_MS 5000
#define RETRY_MS 1000
#define READ_MS 200
#define PREFETCH 100
#define MAX_SNAPSHOT (1 << 20)

void routectl_clear(struct route_ctl *ctl, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ctl[i] = (struct route_ctl){.paused = false, .rate_per_s = -1, .max_in_flight = -1};
}

int routectl_encode(const struct cfg *cfg, const struct route_ctl *ctl, const char *by,
                    int64_t ts_ms, struct buf *out)
{
    int rc = buf_appendf(out, "{\"v\":1,\"ts\":%lld,\"by\":", (long long)ts_ms);
    if (!rc) rc = buf_append_json_string(out, by, strlen(by));
    if (!rc) rc = buf_appends(out, ",\"routes\":{");
    bool first = true;
    for (size_t i = 0; !rc && i < cfg->n_routes; i++) {
        const struct route_ctl *c = &ctl[i];
        if (!c->paused && c->rate_per_s < 0 && c->max_in_flight < 0) continue;
        rc = buf_appends(out, first ? "" : ",");
        first = false;
        if (!rc) rc = buf_append_json_string(out, cfg->routes[i].name, strlen(cfg->routes[i].name));
        if (!rc) rc = buf_appendf(out, ":{\"paused\":%s", c->paused ? "true" : "false");
        if (!rc && c->rate_per_s >= 0)
            rc = buf_appendf(out, ",\"rate_per_s\":%.17g", c->rate_per_s);
        if (!rc && c->max_in_flight >= 0)
            rc = buf_appendf(out, ",\"max_in_flight\":%ld", c->max_in_flight);
        if (!rc) rc = buf_appends(out, "}");
    }
    return rc ? rc : buf_appends(out, "}}");
}

/* decode_route reads one route's state; false when malformed. */
static bool decode_route(struct json_object *o, struct route_ctl *c)
{
    struct json_object *v;
    if (!json_object_is_type(o, json_type_object)) return false;
    *c = (struct route_ctl){.rate_per_s = -1, .max_in_flight = -1};
    if (json_object_object_get_ex(o, "paused", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) return false;
        c->paused = json_object_get_boolean(v);
    }
    if (json_object_object_get_ex(o, "rate_per_s", &v)) {
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
            return false;
        c->rate_per_s = json_object_get_double(v);
        if (!isfinite(c->rate_per_s) || c->rate_per_s < 0) return false;
    }
    if (json_object_object_get_ex(o, "max_in_flight", &v)) {
        if (!json_object_is_type(v, json_type_int)) return false;
        c->max_in_flight = (long)json_object_get_int64(v);
        if (c->max_in_flight < 0) return false;
    }
    return true;
}

int routectl_decode(const struct cfg *cfg, const char *msg, size_t len, struct route_ctl *ctl)
{
    char why[128];
    struct json_object *doc = json_parse(msg, len, why, sizeof why), *v, *routes;
    struct route_ctl *next = calloc(cfg->n_routes + 1, sizeof *next);
    int rc = -1;
    if (!doc || !next || !json_object_object_get_ex(doc, "v", &v) || json_object_get_int(v) != 1 ||
        !json_object_object_get_ex(doc, "routes", &routes) ||
        !json_object_is_type(routes, json_type_object))
        goto out;
    routectl_clear(next, cfg->n_routes);
    json_object_object_foreach(routes, name, state)
    {
        struct route_ctl c;
        if (!decode_route(state, &c)) goto out;
        const struct cfg_route *r = cfg_route_find(cfg, name, strlen(name));
        if (r) next[r - cfg->routes] = c;
    }
    memcpy(ctl, next, cfg->n_routes * sizeof *ctl);
    rc = 0;
out:
    free(next);
    json_object_put(doc);
    return rc;
}

/* ---- the reader ---- */

struct routectl {
    const struct cfg *cfg;
    char name[64];
    char stream[TOPO_NAME_MAX];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t stopped; /* signalled with stop set, for the retry wait */
    struct route_ctl *ctl;  /* under lock */
    uint64_t snapshots;     /* under lock */
    atomic_bool ready, stop;
    int fd;
};

static void wake(struct routectl *r)
{
    uint64_t one = 1;
    ssize_t n = write(r->fd, &one, sizeof one);
    (void)n;
}

static void apply(struct routectl *r, const amqp_message_t *m)
{
    struct route_ctl *next = calloc(r->cfg->n_routes + 1, sizeof *next);
    if (!next) return;
    if (routectl_decode(r->cfg, m->body.bytes, m->body.len, next) < 0) {
        log_warn("ignoring a malformed message of the admin stream");
    } else {
        pthread_mutex_lock(&r->lock);
        memcpy(r->ctl, next, r->cfg->n_routes * sizeof *next);
        r->snapshots++;
        pthread_mutex_unlock(&r->lock);
        wake(r);
    }
    free(next);
}

/* follow reads the stream over one connection until it fails or stop. */
static void follow(struct routectl *r, struct mq *mq)
{
    int64_t settle = clock_mono_ms() + ROUTECTL_SETTLE_MS;
    uint64_t unacked = 0;
    while (!atomic_load(&r->stop)) {
        struct mq_event ev;
        int rc = mq_next(mq, &ev, READ_MS);
        if (rc < 0) return;
        if (rc > 0 && ev.kind == MQ_DELIVERY) {
            apply(r, &ev.msg);
            atomic_store(&r->ready, true);
            /* A stream needs acks only for credit. */
            if (++unacked >= PREFETCH / 2 || !mq_buffered(mq)) {
                if (mq_ack(mq, ev.tag, true) < 0) rc = -1;
                unacked = 0;
            }
        }
        if (rc > 0) mq_event_release(&ev);
        if (rc < 0 || (rc > 0 && ev.kind == MQ_CANCELLED)) return;
        if (!atomic_load(&r->ready) && clock_mono_ms() >= settle) {
            atomic_store(&r->ready, true); /* an empty stream: nothing set */
            wake(r);
        }
    }
}

/* retry_wait waits RETRY_MS before the next attempt (the broker is away),
 * or until routectl_free sets stop. */
static void retry_wait(struct routectl *r)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += RETRY_MS / 1000;
    until.tv_nsec += (long)(RETRY_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stop) &&
           pthread_cond_timedwait(&r->stopped, &r->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&r->lock);
}

static void *thread_main(void *arg)
{
    struct routectl *r = arg;
    while (!atomic_load(&r->stop)) {
        char err[256];
        struct mq *mq = NULL;
        if (mq_open_any(&mq, r->cfg->amqp_url, r->name, CONNECT_TIMEOUT_MS, err, sizeof err) < 0 ||
            topo_declare(mq, r->cfg, err, sizeof err) < 0 || mq_qos(mq, PREFETCH) < 0 ||
            mq_consume(mq, r->stream, "last") < 0) {
            log_warn("admin stream: %s", mq ? "cannot subscribe" : err);
        } else {
            follow(r, mq);
        }
        mq_close(mq);
        retry_wait(r);
    }
    return NULL;
}

struct routectl *routectl_new(const struct cfg *cfg, const char *name)
{
    struct routectl *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cfg = cfg;
    r->fd = -1;
    snprintf(r->name, sizeof r->name, "%s", name);
    topo_name(cfg, TOPO_ADMIN, r->stream, sizeof r->stream);
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->stopped, &attr);
    pthread_condattr_destroy(&attr);
    r->ctl = calloc(cfg->n_routes + 1, sizeof *r->ctl);
    r->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!r->ctl || r->fd < 0) goto err;
    routectl_clear(r->ctl, cfg->n_routes);
    if (pthread_create(&r->thread, NULL, thread_main, r) != 0) goto err;
    return r;
err:
    free(r->ctl);
    if (r->fd >= 0) close(r->fd);
    pthread_cond_destroy(&r->stopped);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
}

void routectl_free(struct routectl *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, true);
    pthread_cond_signal(&r->stopped);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->stopped);
    pthread_mutex_destroy(&r->lock);
    close(r->fd);
    free(r->ctl);
    free(r);
}

int routectl_fd(const struct routectl *r)
{
    return r->fd;
}

bool routectl_ready(const struct routectl *r)
{
    return atomic_load(&r->ready);
}

uint64_t routectl_take(struct routectl *r, struct route_ctl *ctl)
{
    uint64_t drained;
    ssize_t n = read(r->fd, &drained, sizeof drained);
    (void)n;
    pthread_mutex_lock(&r->lock);
    memcpy(ctl, r->ctl, r->cfg->n_routes * sizeof *ctl);
    uint64_t snapshots = r->snapshots;
    pthread_mutex_unlock(&r->lock);
    return snapshots;
}
