/* publisher.c: group-commit publishing with publisher confirms (see publisher.h).
 *
 * Every submission is an item. An item is owned by this module from submit to
 * free; only the publisher thread frees items. Under p->lock an item sits on
 * up to two lists: `handoff` (submitted, not yet published) or `outstanding`
 * (published, waiting for its confirm), and while unanswered also on `live`
 * (submit order), which the reaper watches for deadlines. Answering an item
 * removes it from `live` and clears its callback, so it is answered once. */
#include "publisher.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "backoff.h"
#include "clock.h"
#include "event.h"
#include "log.h"
#include "mq.h"

/* The status page's queue depths are this fresh: a passive declare per queue
 * every few seconds costs the broker nothing noticeable. */
#define DEPTH_EVERY_MS 5000

struct item {
    struct envelope env;
    pub_done_fn done; /* NULL once answered */
    void *arg;
    int64_t submitted_ms;
    int64_t deadline_ms;
    uint64_t seq;
    bool returned;
    struct item *next;                  /* handoff or outstanding */
    struct item *live_prev, *live_next; /* live list */
};

struct item_list {
    struct item *head, *tail;
};

struct publisher {
    const struct cfg *cfg;
    struct status_index *index;
    struct activity *activity; /* where the polled queue depths go */
    pthread_mutex_t lock;
    pthread_cond_t reaper_cond;
    pthread_cond_t idle_cond; /* signalled when the live list empties */
    struct item_list handoff;
    struct item_list outstanding; /* publisher thread only */
    struct item *live_head, *live_tail;
    bool stopping;
    bool draining; /* no new submissions */
    atomic_bool ready;
    int wake_fd; /* eventfd: handoff became non-empty, or stop */
    pthread_t thread, reaper;
    char exchange[160], events_queue[160];
    char instance[ID_LEN + 1];
    struct metric *m_confirm_latency, *m_batch_size, *m_connected, *m_reconnects;
};

static void list_push(struct item_list *l, struct item *it)
{
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
}

static void live_push(struct publisher *p, struct item *it)
{
    it->live_next = NULL;
    it->live_prev = p->live_tail;
    if (p->live_tail)
        p->live_tail->live_next = it;
    else
        p->live_head = it;
    p->live_tail = it;
}

/* take_answer removes it from the live list and returns its callback, or
 * NULL if it was answered already. Call with p->lock held. */
static pub_done_fn take_answer(struct publisher *p, struct item *it)
{
    pub_done_fn done = it->done;
    if (!done) return NULL;
    if (it->live_prev)
        it->live_prev->live_next = it->live_next;
    else
        p->live_head = it->live_next;
    if (it->live_next)
        it->live_next->live_prev = it->live_prev;
    else
        p->live_tail = it->live_prev;
    it->done = NULL;
    if (!p->live_head) pthread_cond_broadcast(&p->idle_cond);
    return done;
}

static void item_free(struct item *it)
{
    envelope_free(&it->env);
    free(it);
}

/* answer replies to one item if nobody has yet. The callback runs without the
 * lock: it resumes an HTTP connection, which takes libmicrohttpd's own locks. */
static void answer(struct publisher *p, struct item *it, int status)
{
    pthread_mutex_lock(&p->lock);
    pub_done_fn done = take_answer(p, it);
    void *arg = it->arg;
    pthread_mutex_unlock(&p->lock);
    if (done) done(arg, status);
}

static void wake(struct publisher *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->wake_fd, &one, sizeof(one));
    (void)n; /* a full eventfd counter is already a pending wake-up */
}

int publisher_submit(struct publisher *p, struct envelope *env, pub_done_fn done, void *arg)
{
    if (!atomic_load(&p->ready)) return -1;
    struct item *it = calloc(1, sizeof(*it));
    if (!it) return -1;
    it->env = *env;
    envelope_init(env);
    it->done = done;
    it->arg = arg;
    it->submitted_ms = clock_mono_ms();
    it->deadline_ms = it->submitted_ms + p->cfg->ingress.confirm_timeout_ms;
    pthread_mutex_lock(&p->lock);
    if (p->draining) {
        pthread_mutex_unlock(&p->lock);
        *env = it->env; /* give it back: the caller still owns it on failure */
        free(it);
        return -1;
    }
    bool was_empty = p->handoff.head == NULL;
    list_push(&p->handoff, it);
    bool first_live = p->live_head == NULL;
    live_push(p, it);
    pthread_mutex_unlock(&p->lock);
    if (first_live) pthread_cond_signal(&p->reaper_cond);
    if (was_empty) wake(p);
    return 0;
}

void publisher_drain(struct publisher *p)
{
    pthread_mutex_lock(&p->lock);
    p->draining = true;
    while (p->live_head)
        pthread_cond_wait(&p->idle_cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

bool publisher_ready(struct publisher *p)
{
    return atomic_load(&p->ready);
}

/* reaper_main answers 503 to items past their deadline. It sleeps until the
 * oldest live item's deadline; items are live in submit order and share one
 * timeout, so the head is always the next to expire. */
static void *reaper_main(void *arg)
{
    struct publisher *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        struct item *head = p->live_head;
        if (!head) {
            pthread_cond_wait(&p->reaper_cond, &p->lock);
            continue;
        }
        if (clock_mono_ms() < head->deadline_ms) {
            struct timespec ts = clock_mono_timespec(head->deadline_ms);
            pthread_cond_timedwait(&p->reaper_cond, &p->lock, &ts);
            continue;
        }
        pub_done_fn done = take_answer(p, head);
        void *done_arg = head->arg;
        pthread_mutex_unlock(&p->lock);
        log_warn("request %s: no confirm from the broker within %ld ms: answering 503",
                 head->env.id, p->cfg->ingress.confirm_timeout_ms);
        done(done_arg, 503);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* publish_events sends one "queued" event per item of the group as a single
 * stream message, so status is known fleet-wide. Its confirm is not awaited:
 * a request the broker confirmed is durable whatever happens to its event. */
static int publish_events(struct publisher *p, struct mq *mq, struct item *group)
{
    struct buf b;
    buf_init(&b, SIZE_MAX / 2);
    int rc = event_begin(&b);
    int64_t now = clock_real_ms();
    for (struct item *it = group; it && rc == 0; it = it->next) {
        struct status_update u = {.id = it->env.id,
                                  .state = ST_QUEUED,
                                  .tenant = it->env.tenant,
                                  .route = it->env.route,
                                  .created_ms = it->env.created_ms,
                                  .ts_ms = now};
        rc = event_append(&b, &u);
    }
    if (rc == 0) rc = event_end(&b);
    if (rc == 0) {
        amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                                   AMQP_BASIC_DELIVERY_MODE_FLAG |
                                                   AMQP_BASIC_APP_ID_FLAG,
                                         .content_type = amqp_cstring_bytes("application/json"),
                                         .delivery_mode = AMQP_DELIVERY_PERSISTENT,
                                         .app_id = amqp_cstring_bytes(p->instance)};
        rc = mq_publish(mq, "", p->events_queue, &props, b.data, b.len, NULL);
    }
    buf_free(&b);
    return rc;
}

static int publish_item(struct publisher *p, struct mq *mq, struct item *it)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t props;
    int rc = envelope_to_amqp(&it->env, &pool, &props);
    if (rc == 0)
        rc = mq_publish(mq, p->exchange, p->exchange, &props, it->env.body, it->env.body_len,
                        &it->seq);
    empty_amqp_pool(&pool);
    return rc;
}

/* publish_handoff takes every submitted item and publishes them as one group.
 * Items already answered by the reaper are dropped unpublished. */
static int publish_handoff(struct publisher *p, struct mq *mq)
{
    pthread_mutex_lock(&p->lock);
    struct item *it = p->handoff.head;
    p->handoff.head = p->handoff.tail = NULL;
    pthread_mutex_unlock(&p->lock);

    struct item_list group = {0};
    while (it) {
        struct item *next = it->next;
        if (it->done)
            list_push(&group, it);
        else
            item_free(it); /* the reaper answered it: never publish it */
        it = next;
    }
    if (!group.head) return 0;

    /* Corked, the group leaves as a few full segments instead of a packet per
     * message: less work for the kernel and for the broker. */
    int fd = mq_fd(mq), on = 1, off = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
    int rc = publish_events(p, mq, group.head);
    int n = 0;
    for (it = group.head; it; it = it->next, n++)
        if (rc == 0) rc = publish_item(p, mq, it);
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
    metric_observe(p->m_batch_size, n);
    /* Published or not, the group is now outstanding: on failure the caller
     * answers every outstanding item. */
    if (p->outstanding.tail)
        p->outstanding.tail->next = group.head;
    else
        p->outstanding.head = group.head;
    p->outstanding.tail = group.tail;
    return rc;
}

static void accept_item(struct publisher *p, struct item *it)
{
    if (it->returned) {
        answer(p, it, 503);
        return;
    }
    struct status_update u = {.id = it->env.id,
                              .state = ST_QUEUED,
                              .tenant = it->env.tenant,
                              .route = it->env.route,
                              .created_ms = it->env.created_ms,
                              .ts_ms = it->env.created_ms};
    if (status_index_apply(p->index, &u) < 0) log_warn("status index: out of memory");
    metric_observe(p->m_confirm_latency, (clock_mono_ms() - it->submitted_ms) / 1000.0);
    answer(p, it, 202);
}

/* on_confirm settles outstanding items up to tag (or exactly tag). */
static void on_confirm(struct publisher *p, uint64_t tag, bool multiple, bool ok)
{
    struct item **pp = &p->outstanding.head, *prev = NULL;
    while (*pp) {
        struct item *it = *pp;
        if (it->seq > tag) break;
        if (!multiple && it->seq != tag) {
            prev = it;
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        if (p->outstanding.tail == it) p->outstanding.tail = prev;
        if (ok)
            accept_item(p, it);
        else
            answer(p, it, 503);
        item_free(it);
        if (!multiple) break;
    }
}

static void on_return(struct publisher *p, const amqp_message_t *msg)
{
    amqp_bytes_t id = msg->properties.message_id;
    for (struct item *it = p->outstanding.head; it; it = it->next)
        if (id.len == ID_LEN && memcmp(id.bytes, it->env.id, ID_LEN) == 0) it->returned = true;
}

/* fail_all answers 503 to everything in flight after the connection is lost. */
static void fail_all(struct publisher *p)
{
    pthread_mutex_lock(&p->lock);
    struct item *it = p->outstanding.head;
    p->outstanding.head = p->outstanding.tail = NULL;
    struct item *queued = p->handoff.head;
    p->handoff.head = p->handoff.tail = NULL;
    pthread_mutex_unlock(&p->lock);
    for (struct item *lists[] = {it, queued}, **l = lists; l < lists + 2; l++) {
        for (struct item *x = *l, *next; x; x = next) {
            next = x->next;
            answer(p, x, 503);
            item_free(x);
        }
    }
}

static struct mq *connect_broker(struct publisher *p)
{
    char err[512];
    struct mq *mq = NULL;
    if (mq_open(&mq, p->cfg->amqp_url, "sluice-ingress publisher", 5000, err, sizeof(err)) < 0 ||
        mq_declare_topology(mq, p->cfg->namespace, p->cfg->ingress.status_retention_s,
                            p->cfg->queue_type, p->cfg->delivery_limit, err, sizeof(err)) < 0 ||
        mq_confirm_select(mq) < 0) {
        log_error("publisher: %s; retrying", err);
        mq_close(mq);
        return NULL;
    }
    log_info("publisher: connected to the broker");
    return mq;
}

static bool stopping(struct publisher *p)
{
    pthread_mutex_lock(&p->lock);
    bool stop = p->stopping;
    pthread_mutex_unlock(&p->lock);
    return stop;
}

/* drain_wake consumes a wake-up and tells whether it was the one to stop. */
static bool drain_wake(struct publisher *p)
{
    uint64_t v;
    ssize_t n = read(p->wake_fd, &v, sizeof(v));
    (void)n;
    return stopping(p);
}

/* poll_depth asks the broker how deep the requests and dead queues are, for
 * the status page. It runs on this thread's connection, between publishes:
 * confirms that arrive during the round trip are kept by the library for
 * mq_next. Returns 0, or -1 when the connection failed. */
static int poll_depth(struct publisher *p, struct mq *mq)
{
    char dead[160];
    uint32_t requests = 0, dead_n = 0, consumers;
    mq_name(dead, sizeof(dead), p->cfg->namespace, "dead");
    if (mq_queue_stats(mq, p->exchange, &requests, &consumers) < 0 ||
        mq_queue_stats(mq, dead, &dead_n, &consumers) < 0)
        return -1;
    activity_set_queue_depth(p->activity, requests, dead_n, clock_real_ms());
    return 0;
}

/* serve runs one connection until it fails or the publisher stops. */
static void serve(struct publisher *p, struct mq *mq)
{
    int64_t next_depth = 0;
    for (;;) {
        struct pollfd fds[2] = {{.fd = p->wake_fd, .events = POLLIN},
                                {.fd = mq_fd(mq), .events = POLLIN}};
        if (!mq_buffered(mq) && poll(fds, 2, 1000) < 0 && errno != EINTR) return;
        if ((fds[0].revents & POLLIN) && drain_wake(p)) return;
        /* Checked on every turn, a poll timeout at the latest, so a busy
         * publisher still refreshes the numbers. */
        if (clock_mono_ms() >= next_depth) {
            if (poll_depth(p, mq) < 0) return;
            next_depth = clock_mono_ms() + DEPTH_EVERY_MS;
        }
        if (publish_handoff(p, mq) < 0) return;
        struct mq_event ev;
        int rc;
        while ((rc = mq_next(mq, &ev, 0)) > 0) {
            if (ev.kind == MQ_ACK || ev.kind == MQ_NACK)
                on_confirm(p, ev.tag, ev.multiple, ev.kind == MQ_ACK);
            else if (ev.kind == MQ_RETURN)
                on_return(p, &ev.msg);
            mq_event_release(&ev);
        }
        if (rc < 0) {
            log_error("publisher: broker connection lost: %s", mq_strerror(rc));
            return;
        }
    }
}

/* wait_retry sleeps until the next connection attempt, answering 503 to
 * anything submitted meanwhile. Returns true when stopping. */
static bool wait_retry(struct publisher *p, long delay_ms)
{
    int64_t until = clock_mono_ms() + delay_ms;
    for (;;) {
        fail_all(p);
        if (stopping(p)) return true;
        long left = (long)(until - clock_mono_ms());
        if (left <= 0) return false;
        struct pollfd fd = {.fd = p->wake_fd, .events = POLLIN};
        if (poll(&fd, 1, (int)left) > 0 && drain_wake(p)) return true;
    }
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    uint64_t rnd = (uint64_t)clock_real_ms() | 1;
    int failures = 0;
    for (;;) {
        struct mq *mq = connect_broker(p);
        if (mq) {
            failures = 0;
            atomic_store(&p->ready, true);
            metric_set(p->m_connected, 1);
            serve(p, mq);
            atomic_store(&p->ready, false);
            metric_set(p->m_connected, 0);
            mq_close(mq);
            fail_all(p);
            metric_add(p->m_reconnects, 1);
        }
        long delay = 100 + backoff_delay_ms(100, 5000, ++failures, backoff_rand(&rnd));
        if (wait_retry(p, mq ? 0 : delay)) break;
    }
    fail_all(p);
    return NULL;
}

struct publisher *publisher_new(const struct cfg *cfg, struct metrics *metrics,
                                struct status_index *index, struct activity *activity,
                                const char *instance)
{
    struct publisher *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->cfg = cfg;
    p->index = index;
    p->activity = activity;
    snprintf(p->instance, sizeof(p->instance), "%s", instance);
    mq_name(p->exchange, sizeof(p->exchange), cfg->namespace, "requests");
    mq_name(p->events_queue, sizeof(p->events_queue), cfg->namespace, "events");
    static const double lat[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};
    static const double sizes[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
    p->m_confirm_latency =
        metrics_histogram(metrics, "sluice_ingress_confirm_seconds",
                          "Time from submission to the broker's publisher confirm.", NULL, lat, 11);
    p->m_batch_size = metrics_histogram(metrics, "sluice_ingress_publish_group_size",
                                        "Requests published per group commit.", NULL, sizes, 10);
    p->m_connected = metrics_gauge(metrics, "sluice_ingress_broker_connected",
                                   "1 when the publisher's broker connection is up.", NULL);
    p->m_reconnects = metrics_counter(metrics, "sluice_ingress_broker_reconnects_total",
                                      "Publisher connections lost.", NULL);
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = p->wake_fd >= 0 && p->m_confirm_latency && p->m_batch_size && p->m_connected &&
              p->m_reconnects && pthread_mutex_init(&p->lock, NULL) == 0 &&
              pthread_cond_init(&p->reaper_cond, &ca) == 0 &&
              pthread_cond_init(&p->idle_cond, NULL) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok || pthread_create(&p->thread, NULL, publisher_main, p) != 0) goto err;
    if (pthread_create(&p->reaper, NULL, reaper_main, p) != 0) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_mutex_unlock(&p->lock);
        wake(p);
        pthread_join(p->thread, NULL);
        goto err;
    }
    return p;
err:
    if (p->wake_fd >= 0) close(p->wake_fd);
    free(p);
    return NULL;
}

void publisher_free(struct publisher *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_mutex_unlock(&p->lock);
    pthread_cond_signal(&p->reaper_cond);
    wake(p);
    pthread_join(p->thread, NULL);
    pthread_join(p->reaper, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->reaper_cond);
    pthread_cond_destroy(&p->idle_cond);
    close(p->wake_fd);
    free(p);
}
