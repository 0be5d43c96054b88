/* deadletters.c: the dead letters' replay and purge passes (see
 * deadletters.h). Passes come from HTTP threads through a locked list and
 * a condition variable; the thread runs them one at a time, each over a
 * connection it opens for the pass (passes are rare: an operator's). */
#include "deadletters.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "envelope.h"
#include "event.h"
#include "log.h"
#include "mq.h"
#include "nodes.h"
#include "topology.h"

#define DL_CONNECT_TIMEOUT_MS 5000

struct pass {
    enum dl_action action;
    struct dl_select sel;
    struct buf msg; /* DL_PUBLISH_ADMIN */
    char who[DL_NAME_MAX + 1];
    dl_done_fn done;
    void *arg;
    struct pass *next;
};

struct deadletters {
    const struct cfg *cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct pass *head, *tail;
    bool stopping;
    atomic_bool stop_now; /* stopping, read by a running pass between chunks */
    bool started;
};

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, ID_LEN);
}

void dl_select_sort(struct dl_select *sel)
{
    if (sel->n_ids > 1) qsort(sel->ids, sel->n_ids, sizeof *sel->ids, cmp_id);
}

bool dl_selected(const struct dl_select *sel, const char *id, const char *route)
{
    if (sel->all) return true;
    if (sel->route[0]) return route && strcmp(sel->route, route) == 0;
    return id && sel->n_ids && bsearch(id, sel->ids, sel->n_ids, sizeof *sel->ids, cmp_id) != NULL;
}

/* ---- one chunk ---- */

/* What a pass holds of one chunk: the messages taken and the publishes
 * whose confirms it waits for. */
struct chunk {
    struct mq_event msgs[DL_CHUNK];
    size_t n;
    uint64_t first_seq, last_seq; /* publishes of the chunk; 0: none */
    struct buf events;            /* the selected requests' status events */
    size_t n_events;
};

struct run {
    const struct cfg *cfg;
    const atomic_bool *stop; /* NULL: never */
    struct mq *mq;
    const struct pass *p;
    char dead[TOPO_NAME_MAX], events[TOPO_NAME_MAX];
    long count; /* selected and settled */
};

static void track(struct chunk *c, uint64_t seq)
{
    if (!c->first_seq) c->first_seq = seq;
    c->last_seq = seq;
}

/* put_back returns a message as it came (x-death and all) to the dead queue. */
static int put_back(struct run *run, struct chunk *c, const struct mq_event *ev)
{
    uint64_t seq;
    int rc = mq_publish(run->mq, "", run->dead, &ev->msg.properties, ev->msg.body.bytes,
                        ev->msg.body.len, &seq);
    if (rc == 0) track(c, seq);
    return rc;
}

/* replay sends env back to its route's lane as a fresh request of the
 * next generation. */
static int replay(struct run *run, struct chunk *c, struct envelope *env,
                  const struct cfg_route *route)
{
    char lane[TOPO_NAME_MAX];
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    uint64_t seq;
    env->attempts = 0;
    env->replays++;
    topo_lane_name(run->cfg, route, lane, sizeof lane);
    init_amqp_pool(&pool, 4096);
    int rc = envelope_to_amqp(env, &pool, &props);
    if (rc == 0) rc = mq_publish(run->mq, "", lane, &props, env->body, env->body_len, &seq);
    if (rc == 0) track(c, seq);
    empty_amqp_pool(&pool);
    return rc;
}

/* note adds the status event of a selected request. */
static int note(struct chunk *c, const struct envelope *env, enum dl_action action)
{
    struct status_update u = {.id = env->id,
                              .state = action == DL_REPLAY ? ST_QUEUED : ST_DEAD,
                              .tenant = env->tenant,
                              .route = env->route,
                              .created_ms = env->created_ms,
                              .ts_ms = clock_real_ms(),
                              .replays = env->replays,
                              .purge = action == DL_PURGE};
    c->n_events++;
    return event_append(&c->events, &u);
}

/* settle decides the fate of one message taken. */
static int settle(struct run *run, struct chunk *c, const struct mq_event *ev)
{
    struct envelope env;
    struct env_error err;
    envelope_init(&env);
    bool known = envelope_from_amqp(&env, &ev->msg.properties, ev->msg.body, &err) == 0;
    const struct cfg_route *route =
        known ? cfg_route_find(run->cfg, env.route, strlen(env.route)) : NULL;
    int rc = 0;
    if (!dl_selected(&run->p->sel, known ? env.id : NULL, known ? env.route : NULL) ||
        (run->p->action == DL_REPLAY && !route)) {
        /* Not asked for, or not replayable (not a request, or of a route no
         * longer configured): it stays dead. */
        rc = put_back(run, c, ev);
    } else {
        if (run->p->action == DL_REPLAY) rc = replay(run, c, &env, route);
        if (rc == 0 && known) rc = note(c, &env, run->p->action);
        if (rc == 0) run->count++;
    }
    envelope_free(&env);
    return rc;
}

/* await waits for the confirms of publishes first..last. */
static int await(struct run *run, uint16_t channel, uint64_t first, uint64_t last)
{
    uint64_t done_upto = first - 1;
    size_t n = (size_t)(last - first + 1);
    bool *acked = calloc(n, 1);
    int64_t deadline = clock_mono_ms() + run->cfg->ingress.confirm_timeout_ms + 5000;
    int rc = acked ? 0 : -1;
    while (rc == 0 && done_upto < last) {
        struct mq_event ev;
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            rc = -1;
            break;
        }
        int got = mq_next(run->mq, &ev, left > 1000 ? 1000 : (int)left);
        if (got < 0) rc = -1;
        if (got <= 0) continue;
        bool ours = ev.channel == channel;
        if (ours && (ev.kind == MQ_NACK || ev.kind == MQ_RETURN)) rc = -1;
        if (ours && ev.kind == MQ_ACK)
            for (uint64_t t = ev.multiple ? first : ev.tag; t <= ev.tag && t <= last; t++)
                if (t >= first) acked[t - first] = true;
        while (done_upto < last && acked[done_upto + 1 - first])
            done_upto++;
        mq_event_release(&ev);
    }
    free(acked);
    return rc;
}

/* run_chunk takes up to want messages and settles them; returns how many
 * were taken (0: the queue is empty), or -1 when the broker failed. */
static long run_chunk(struct run *run, struct chunk *c, long want)
{
    long taken = 0;
    int rc = 0;
    c->n = 0;
    c->first_seq = c->last_seq = 0;
    c->n_events = 0;
    buf_reset(&c->events);
    rc = event_begin(&c->events);
    /* Every get before any publish: a confirm arriving between a get's
     * reply and its content would confuse rabbitmq-c. */
    while (rc == 0 && taken < want) {
        int got = mq_get(run->mq, run->dead, &c->msgs[c->n]);
        if (got < 0) rc = -1;
        if (got <= 0) break;
        c->n++;
        taken++;
    }
    for (size_t i = 0; rc == 0 && i < c->n; i++)
        rc = settle(run, c, &c->msgs[i]);
    if (rc == 0 && c->first_seq) rc = await(run, MQ_MAIN_CHANNEL, c->first_seq, c->last_seq);
    if (rc == 0 && c->n_events) {
        uint64_t seq;
        amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                                   AMQP_BASIC_DELIVERY_MODE_FLAG,
                                         .content_type = amqp_cstring_bytes("application/json"),
                                         .delivery_mode = AMQP_DELIVERY_PERSISTENT};
        rc = event_end(&c->events);
        if (rc == 0)
            rc = mq_publish_stream(run->mq, run->events, &props, c->events.data, c->events.len,
                                   &seq);
        if (rc == 0) rc = await(run, MQ_STREAM_CHANNEL, seq, seq);
    }
    if (rc == 0 && c->n) rc = mq_ack(run->mq, c->msgs[c->n - 1].tag, true);
    for (size_t i = 0; i < c->n; i++)
        mq_event_release(&c->msgs[i]);
    return rc == 0 ? taken : -1;
}

/* run_pass runs p; returns 0 with run->count, or -1 (a broker failure). */
static int run_pass(struct run *run)
{
    char err[256];
    uint32_t count = 0, consumers = 0;
    struct chunk *c = calloc(1, sizeof *c);
    int rc = c ? 0 : -1;
    if (c) buf_init(&c->events, 64 << 20);
    if (rc == 0 && mq_open_any(&run->mq, run->cfg->amqp_url, "sluice-ingress-deadletters",
                               DL_CONNECT_TIMEOUT_MS, err, sizeof err) < 0) {
        log_error("dead letters: %s", err);
        rc = -1;
    }
    if (rc == 0 && (topo_declare(run->mq, run->cfg, err, sizeof err) < 0 ||
                    mq_confirm_select(run->mq) < 0 || mq_open_stream_channel(run->mq, true) < 0 ||
                    mq_queue_stats(run->mq, run->dead, &count, &consumers) < 0))
        rc = -1;
    /* Only what the queue held when the pass began: what it puts back, or
     * what dies meanwhile, waits for the next pass. */
    for (long left = count; rc == 0 && left > 0 && !(run->stop && atomic_load(run->stop));) {
        long n = run_chunk(run, c, left < DL_CHUNK ? left : DL_CHUNK);
        if (n <= 0) rc = n < 0 ? -1 : 0;
        if (n <= 0) break;
        left -= n;
    }
    if (c) buf_free(&c->events);
    free(c);
    mq_close(run->mq);
    run->mq = NULL;
    return rc;
}

/* ---- the thread ---- */

static void pass_free(struct pass *p)
{
    buf_free(&p->msg);
    free(p->sel.ids);
    free(p);
}

/* publish_admin publishes an admin snapshot, confirmed. */
static void publish_admin(struct deadletters *d, struct pass *p)
{
    char err[256], stream[TOPO_NAME_MAX];
    struct run run = {.cfg = d->cfg, .p = p};
    uint64_t seq;
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    topo_name(d->cfg, TOPO_ADMIN, stream, sizeof stream);
    int rc = mq_open_any(&run.mq, d->cfg->amqp_url, "sluice-ingress-admin", DL_CONNECT_TIMEOUT_MS,
                         err, sizeof err);
    if (rc == 0 &&
        (topo_declare(run.mq, d->cfg, err, sizeof err) < 0 || mq_confirm_select(run.mq) < 0 ||
         mq_publish(run.mq, "", stream, &props, p->msg.data, p->msg.len, &seq) < 0 ||
         await(&run, MQ_MAIN_CHANNEL, seq, seq) < 0))
        rc = -1;
    mq_close(run.mq);
    log_info("admin: key \"%s\" set the routes' state %s: %s", p->who,
             rc == 0 ? "" : "(FAILED, the broker did not take it)", p->msg.data);
    p->done(p->arg, rc == 0 ? 200 : 503, 0,
            rc == 0 ? NULL
                    : "the broker did not take the change; nothing changed, asking again is safe");
}

static void execute(struct deadletters *d, struct pass *p)
{
    if (p->action == DL_PUBLISH_ADMIN) {
        publish_admin(d, p);
        return;
    }
    struct run run = {.cfg = d->cfg, .p = p, .stop = &d->stop_now};
    const char *verb = p->action == DL_REPLAY ? "replayed" : "purged";
    topo_name(d->cfg, TOPO_DEAD, run.dead, sizeof run.dead);
    topo_name(d->cfg, TOPO_EVENTS, run.events, sizeof run.events);
    int rc = run_pass(&run);
    log_info("admin: key \"%s\" %s %ld dead letters (%s%s)%s", p->who, verb, run.count,
             p->sel.all        ? "all"
             : p->sel.route[0] ? "route "
                               : "by id",
             p->sel.route, rc < 0 ? ": stopped, the broker failed" : "");
    if (rc == 0) {
        p->done(p->arg, 200, run.count, NULL);
    } else {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the broker failed during the pass after %ld were %s; the rest are still dead, "
                 "and running it again is safe",
                 run.count, verb);
        p->done(p->arg, 503, run.count, msg);
    }
}

static void *thread_main(void *arg)
{
    struct deadletters *d = arg;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        while (!d->head && !d->stopping)
            pthread_cond_wait(&d->wake, &d->lock);
        if (!d->head) break;
        struct pass *p = d->head;
        d->head = p->next;
        if (!d->head) d->tail = NULL;
        bool stop = d->stopping;
        pthread_mutex_unlock(&d->lock);
        if (stop)
            p->done(p->arg, 503, 0, "the ingress is stopping; nothing was done");
        else
            execute(d, p);
        pass_free(p);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

struct deadletters *deadletters_new(const struct cfg *cfg)
{
    struct deadletters *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->cfg = cfg;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->wake, NULL);
    if (pthread_create(&d->thread, NULL, thread_main, d) != 0) {
        deadletters_free(d);
        return NULL;
    }
    d->started = true;
    return d;
}

void deadletters_drain(struct deadletters *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->lock);
    bool join = d->started && !d->stopping;
    d->stopping = true;
    atomic_store(&d->stop_now, true);
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    if (join) pthread_join(d->thread, NULL);
}

void deadletters_free(struct deadletters *d)
{
    if (!d) return;
    deadletters_drain(d);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->wake);
    free(d);
}

static int enqueue(struct deadletters *d, struct pass *p)
{
    pthread_mutex_lock(&d->lock);
    bool refused = d->stopping;
    if (!refused) {
        if (d->tail)
            d->tail->next = p;
        else
            d->head = p;
        d->tail = p;
        pthread_cond_signal(&d->wake);
    }
    pthread_mutex_unlock(&d->lock);
    if (refused) pass_free(p);
    return refused ? -1 : 0;
}

int deadletters_publish_admin(struct deadletters *d, struct buf *msg, const char *who,
                              dl_done_fn done, void *arg)
{
    struct pass *p = calloc(1, sizeof *p);
    if (!p) {
        buf_free(msg);
        return -1;
    }
    p->action = DL_PUBLISH_ADMIN;
    p->msg = *msg;
    buf_init(msg, 1);
    snprintf(p->who, sizeof p->who, "%s", who);
    p->done = done;
    p->arg = arg;
    return enqueue(d, p);
}

int deadletters_submit(struct deadletters *d, enum dl_action action, struct dl_select *sel,
                       const char *who, dl_done_fn done, void *arg)
{
    struct pass *p = calloc(1, sizeof *p);
    if (!p) {
        free(sel->ids);
        sel->ids = NULL;
        return -1;
    }
    p->action = action;
    p->sel = *sel;
    sel->ids = NULL;
    snprintf(p->who, sizeof p->who, "%s", who);
    p->done = done;
    p->arg = arg;
    return enqueue(d, p);
}
