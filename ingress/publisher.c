/* publisher.c: group-commit publishing with publisher confirms (see publisher.h).
 *
 * Every submission is an item. Once publisher_submit has queued it, an item
 * is owned by this module, and only the publisher thread frees it. Its state,
 * read and written under p->lock only, says where it is:
 *   SUBMITTED  on the handoff list, not yet taken by the publisher thread;
 *   PUBLISHED  taken by the publisher thread: being published, or published
 *              and its confirm awaited (the session holds it as a token);
 *   ANSWERED   its client was answered (by the publisher thread, or by the
 *              reaper at the deadline); it stays where it was until the
 *              publisher thread meets it again and frees it.
 * While not ANSWERED an item is also on the live list (submit order), which
 * the reaper watches for deadlines. Answering sets ANSWERED and leaves the
 * live list under the lock, so an item is answered once; the reaper copies
 * what it needs before unlocking and never touches an item afterwards. An
 * item the reaper answered while SUBMITTED is freed unpublished. */
#include "publisher.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "topology.h"

/* The status page's queue depths are this fresh: a passive declare per queue
 * every few seconds costs the broker nothing noticeable. */
#define DEPTH_EVERY_MS 5000
/* The publisher thread wakes at least this often (heartbeats, statistics). */
#define TICK_MS 1000

enum item_state { ITEM_SUBMITTED, ITEM_PUBLISHED, ITEM_ANSWERED };

struct item {
    struct envelope env; /* written before submit, then read-only */
    enum item_state state;
    pub_done_fn done;
    void *arg;
    int64_t submitted_ms;
    int64_t deadline_ms;
    struct item *next;                  /* handoff list */
    struct item *live_prev, *live_next; /* live list */
};

struct publisher {
    const struct cfg *cfg;
    struct status_index *index;
    struct activity *activity; /* where the polled queue depths go */
    const struct session_iface *si;
    struct session *session; /* publisher thread only */
    pthread_mutex_t lock;
    pthread_cond_t reaper_cond;
    pthread_cond_t idle_cond; /* signalled when the live list empties */
    struct item *handoff_head, *handoff_tail;
    struct item *live_head, *live_tail;
    bool stopping;
    bool draining; /* no new submissions */
    atomic_bool ready;
    int wake_fd; /* eventfd: handoff became non-empty, or stop */
    pthread_t thread, reaper;
    struct lanes *lanes; /* the lane of each route: where requests go */
    char dead[TOPO_NAME_MAX];
    const char **stats_queues; /* every lane, then the dead queue */
    char instance[ID_LEN + 1];
    struct buf events; /* publisher thread: the group's events message, reused */
    struct metric *m_confirm_latency, *m_batch_size, *m_connected, *m_reconnects;
};

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

/* take_answer marks it ANSWERED, removes it from the live list and returns
 * its callback and *arg, or NULL if it was answered already. Call with
 * p->lock held. */
static pub_done_fn take_answer(struct publisher *p, struct item *it, void **arg)
{
    if (it->state == ITEM_ANSWERED) return NULL;
    it->state = ITEM_ANSWERED;
    if (it->live_prev)
        it->live_prev->live_next = it->live_next;
    else
        p->live_head = it->live_next;
    if (it->live_next)
        it->live_next->live_prev = it->live_prev;
    else
        p->live_tail = it->live_prev;
    if (!p->live_head) pthread_cond_broadcast(&p->idle_cond);
    *arg = it->arg;
    return it->done;
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
    void *arg = NULL;
    pthread_mutex_lock(&p->lock);
    pub_done_fn done = take_answer(p, it, &arg);
    pthread_mutex_unlock(&p->lock);
    if (done) done(arg, status);
}

/* finish answers it (unless the reaper did) and frees it: publisher thread only. */
static void finish(struct publisher *p, struct item *it, int status)
{
    answer(p, it, status);
    item_free(it);
}

static void wake(struct publisher *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->wake_fd, &one, sizeof(one));
    (void)n; /* a full eventfd counter is already a pending wake-up */
}

/* enqueue puts items[0..n-1], already holding their envelopes, on the
 * handoff and live lists at once, so the publisher thread takes them in one
 * group. Returns false, touching nothing, while draining. */
static bool enqueue(struct publisher *p, struct item *const items[], size_t n)
{
    pthread_mutex_lock(&p->lock);
    if (p->draining) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    bool was_empty = p->handoff_head == NULL, first_live = p->live_head == NULL;
    for (size_t i = 0; i < n; i++) {
        if (p->handoff_tail)
            p->handoff_tail->next = items[i];
        else
            p->handoff_head = items[i];
        p->handoff_tail = items[i];
        live_push(p, items[i]);
    }
    pthread_mutex_unlock(&p->lock);
    if (first_live) pthread_cond_signal(&p->reaper_cond);
    if (was_empty) wake(p);
    return true;
}

/* item_new makes an item for done(arg) whose envelope is filled later. */
static struct item *item_new(struct publisher *p, pub_done_fn done, void *arg)
{
    struct item *it = calloc(1, sizeof(*it));
    if (!it) return NULL;
    envelope_init(&it->env);
    it->state = ITEM_SUBMITTED;
    it->done = done;
    it->arg = arg;
    it->submitted_ms = clock_mono_ms();
    it->deadline_ms = it->submitted_ms + p->cfg->ingress.confirm_timeout_ms;
    return it;
}

int publisher_submit(struct publisher *p, struct envelope *env, pub_done_fn done, void *arg)
{
    if (!atomic_load(&p->ready)) return -1;
    struct item *it = item_new(p, done, arg);
    if (!it) return -1;
    /* The envelope moves before the item is shared: once enqueued, the
     * publisher thread may finish it and call done before this returns. */
    it->env = *env;
    envelope_init(env);
    if (!enqueue(p, &it, 1)) {
        *env = it->env; /* never shared: no other thread saw it */
        free(it);
        return -1;
    }
    return 0;
}

/* A group of submissions answered together: each item's callback records
 * its verdict in its slot, and the last one to settle answers the group. */
struct group;
struct slot {
    struct group *g;
    size_t i;
};
struct group {
    pub_group_fn done;
    void *arg;
    size_t n;
    atomic_size_t left;
    int *statuses;
    struct slot slots[];
};

static void group_item_done(void *arg, int status)
{
    struct slot *s = arg;
    struct group *g = s->g;
    g->statuses[s->i] = status;
    if (atomic_fetch_sub(&g->left, 1) != 1) return;
    g->done(g->arg, g->statuses, g->n);
    free(g->statuses);
    free(g);
}

static struct group *group_new(size_t n, pub_group_fn done, void *arg)
{
    struct group *g = calloc(1, sizeof *g + n * sizeof g->slots[0]);
    if (!g || !(g->statuses = calloc(n, sizeof *g->statuses))) {
        free(g);
        return NULL;
    }
    g->done = done;
    g->arg = arg;
    g->n = n;
    atomic_init(&g->left, n);
    for (size_t i = 0; i < n; i++)
        g->slots[i] = (struct slot){g, i};
    return g;
}

int publisher_submit_group(struct publisher *p, struct envelope *const envs[], size_t n,
                           pub_group_fn done, void *arg)
{
    if (n == 0 || n > PUB_GROUP_MAX || !atomic_load(&p->ready)) return -1;
    struct item *items[PUB_GROUP_MAX];
    struct group *g = group_new(n, done, arg);
    size_t made = 0;
    while (g && made < n && (items[made] = item_new(p, group_item_done, &g->slots[made])))
        made++;
    bool ok = made == n;
    /* The envelopes move before the items are shared: once enqueued, the
     * publisher thread may settle the group and call done, which may free
     * the caller's envelopes, before this returns. */
    for (size_t i = 0; ok && i < n; i++) {
        items[i]->env = *envs[i];
        envelope_init(envs[i]);
    }
    if (ok && !(ok = enqueue(p, items, n)))
        for (size_t i = 0; i < n; i++)
            *envs[i] = items[i]->env; /* never shared: the envelopes stay the caller's */
    for (size_t i = 0; !ok && i < made; i++)
        free(items[i]);
    if (!ok) {
        if (g) free(g->statuses);
        free(g);
        return -1;
    }
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
        /* Once unlocked, the publisher thread may free head at any time. */
        char id[ID_LEN + 1];
        memcpy(id, head->env.id, sizeof(id));
        void *done_arg = NULL;
        pub_done_fn done = take_answer(p, head, &done_arg);
        pthread_mutex_unlock(&p->lock);
        log_warn("request %s: no confirm from the broker within %ld ms: answering 503", id,
                 p->cfg->ingress.confirm_timeout_ms);
        done(done_arg, 503);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* take_group takes the handoff list, marks what is still unanswered
 * PUBLISHED and returns it in submit order; items the reaper answered while
 * they waited are freed unpublished. */
static struct item *take_group(struct publisher *p)
{
    struct item *group = NULL, **tail = &group, *answered = NULL;
    pthread_mutex_lock(&p->lock);
    struct item *it = p->handoff_head;
    p->handoff_head = p->handoff_tail = NULL;
    for (struct item *next; it; it = next) {
        next = it->next;
        it->next = NULL;
        if (it->state == ITEM_ANSWERED) {
            it->next = answered;
            answered = it;
            continue;
        }
        it->state = ITEM_PUBLISHED;
        *tail = it;
        tail = &it->next;
    }
    pthread_mutex_unlock(&p->lock);
    for (struct item *next; answered; answered = next) {
        next = answered->next;
        item_free(answered);
    }
    return group;
}

/* fail_group answers status to every item of a group and frees them. */
static void fail_group(struct publisher *p, struct item *group, int status)
{
    for (struct item *next; group; group = next) {
        next = group->next;
        finish(p, group, status);
    }
}

/* publish_item publishes a request straight to its route's lane through
 * the default exchange: no binding to keep right when a route's limits
 * change its lane (common/topology.h). */
static int publish_item(struct publisher *p, struct item *it)
{
    int lane = lanes_of(p->lanes, it->env.route);
    if (lane < 0) {
        log_warn("request %s: route %s is not configured", it->env.id, it->env.route);
        return SESSION_REFUSED; /* handlers authorized the route: not reached */
    }
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t props;
    int rc = envelope_to_amqp(&it->env, &pool, &props) < 0
                 ? SESSION_REFUSED
                 : p->si->publish(p->session, "", lanes_name(p->lanes, (size_t)lane), &props,
                                  it->env.body, it->env.body_len, it);
    empty_amqp_pool(&pool);
    return rc;
}

static int append_queued(struct buf *b, const struct item *it, int64_t now)
{
    struct status_update u = {.id = it->env.id,
                              .state = ST_QUEUED,
                              .tenant = it->env.tenant,
                              .route = it->env.route,
                              .created_ms = it->env.created_ms,
                              .ts_ms = now,
                              .fp = it->env.fingerprint[0] ? it->env.fingerprint : NULL,
                              .ck = it->env.cache_key[0] ? it->env.cache_key : NULL};
    return event_append(b, &u);
}

/* publish_group publishes each item of group, then one "queued" events
 * message for those that went out, so status is known fleet-wide. The
 * events' confirm is not awaited: a request the broker confirmed is durable
 * whatever happens to its event, and the local index has it from the 202.
 * A message the broker cannot carry fails alone (500); a lost connection
 * fails the rest of the group (503). Published items belong to the session
 * until their confirm (on_confirm) frees them. */
static void publish_group(struct publisher *p, struct item *group)
{
    int n = 0, published = 0, rc = SESSION_OK;
    int64_t now = clock_real_ms();
    buf_reset(&p->events);
    int ev = event_begin(&p->events);
    /* Corked, the group leaves as a few full segments instead of a packet per
     * message: less work for the kernel and for the broker. */
    p->si->cork(p->session, true);
    for (struct item *next; group && rc != SESSION_DOWN; group = next, n++) {
        next = group->next;
        rc = publish_item(p, group);
        /* A published item stays alive until the session reports its
         * confirm, which happens only inside run(). */
        if (rc == SESSION_OK && ev == 0) ev = append_queued(&p->events, group, now);
        published += rc == SESSION_OK;
        if (rc == SESSION_REFUSED) {
            log_warn("request %s: the broker cannot carry this message: answering 500",
                     group->env.id);
            finish(p, group, 500);
        } else if (rc == SESSION_DOWN) {
            finish(p, group, 503);
        }
    }
    fail_group(p, group, 503);
    if (ev == 0) ev = event_end(&p->events);
    if (ev != 0)
        log_warn("publisher: cannot build the queued events (out of memory?)");
    else if (published && rc != SESSION_DOWN)
        p->si->publish_events(p->session, &p->events, p->instance, NULL);
    p->si->cork(p->session, false);
    metric_observe(p->m_batch_size, n);
}

static void accept_item(struct publisher *p, struct item *it)
{
    struct status_update u = {.id = it->env.id,
                              .state = ST_QUEUED,
                              .tenant = it->env.tenant,
                              .route = it->env.route,
                              .created_ms = it->env.created_ms,
                              .ts_ms = it->env.created_ms};
    if (status_index_apply(p->index, &u) < 0) log_warn("status index: out of memory");
    metric_observe(p->m_confirm_latency, (clock_mono_ms() - it->submitted_ms) / 1000.0);
    finish(p, it, 202);
}

/* on_confirm settles one published item: the session reports each once. */
static void on_confirm(void *arg, void *token, enum confirm_outcome outcome)
{
    struct publisher *p = arg;
    struct item *it = token;
    if (outcome == CONFIRM_ACKED)
        accept_item(p, it);
    else
        finish(p, it, 503);
}

static int on_up(void *arg, struct mq *mq)
{
    (void)mq;
    struct publisher *p = arg;
    atomic_store(&p->ready, true);
    metric_set(p->m_connected, 1);
    return 0;
}

static void on_down(void *arg)
{
    struct publisher *p = arg;
    atomic_store(&p->ready, false);
    metric_set(p->m_connected, 0);
    metric_add(p->m_reconnects, 1);
}

/* on_stats records each lane's depth; the dead queue comes last, when the
 * lanes' total is fresh. */
static void on_stats(void *arg, size_t i, uint32_t messages, uint32_t consumers)
{
    (void)consumers;
    struct publisher *p = arg;
    if (i < p->cfg->n_routes)
        lanes_set_depth(p->lanes, i, messages, clock_real_ms());
    else
        activity_set_queue_depth(p->activity, lanes_total(p->lanes), messages, clock_real_ms());
}

static bool stopping(struct publisher *p)
{
    pthread_mutex_lock(&p->lock);
    bool stop = p->stopping;
    pthread_mutex_unlock(&p->lock);
    return stop;
}

/* turn is one turn of the publisher thread: wait for a submission, a frame or
 * a timer, let the session work (confirms answer items), then publish what
 * was submitted, or answer it 503 while the broker is away. */
static void turn(struct publisher *p)
{
    int timeout = p->si->timeout_ms(p->session, clock_mono_ms(), TICK_MS);
    struct pollfd fds[2] = {{.fd = p->wake_fd, .events = POLLIN},
                            {.fd = p->si->fd(p->session), .events = POLLIN}};
    if (timeout > 0 && poll(fds, 2, timeout) > 0 && (fds[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t n = read(p->wake_fd, &v, sizeof(v));
        (void)n;
    }
    p->si->run(p->session, clock_mono_ms());
    struct item *group = take_group(p);
    if (!group) return;
    if (atomic_load(&p->ready))
        publish_group(p, group);
    else
        fail_group(p, group, 503);
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    while (!stopping(p))
        turn(p);
    /* Closing reports every unconfirmed item lost: each is answered 503. */
    p->si->destroy(p->session);
    p->session = NULL;
    atomic_store(&p->ready, false);
    fail_group(p, take_group(p), 503);
    return NULL;
}

static int declare_metrics(struct publisher *p, struct metrics *metrics)
{
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
    return p->m_confirm_latency && p->m_batch_size && p->m_connected && p->m_reconnects ? 0 : -1;
}

static struct session *open_session(struct publisher *p)
{
    struct session_params sp = {
        .cfg = p->cfg,
        .name = "sluice-ingress publisher",
        .confirms = true,
        .stats_queues = p->stats_queues,
        .n_stats_queues = p->cfg->n_routes + 1,
        .stats_every_ms = DEPTH_EVERY_MS,
        .hooks = {.arg = p,
                  .on_up = on_up,
                  .on_down = on_down,
                  .on_confirm = on_confirm,
                  .on_stats = on_stats},
    };
    return p->si->create(&sp);
}

static int start_threads(struct publisher *p)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&p->lock, NULL) == 0 &&
              pthread_cond_init(&p->reaper_cond, &ca) == 0 &&
              pthread_cond_init(&p->idle_cond, NULL) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok || pthread_create(&p->thread, NULL, publisher_main, p) != 0) return -1;
    if (pthread_create(&p->reaper, NULL, reaper_main, p) != 0) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_mutex_unlock(&p->lock);
        wake(p);
        pthread_join(p->thread, NULL);
        return -1;
    }
    return 0;
}

struct publisher *publisher_new_with(const struct cfg *cfg, struct metrics *metrics,
                                     struct status_index *index, struct activity *activity,
                                     struct lanes *lanes, const char *instance,
                                     const struct session_iface *si)
{
    struct publisher *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->cfg = cfg;
    p->index = index;
    p->activity = activity;
    p->lanes = lanes;
    p->si = si;
    snprintf(p->instance, sizeof(p->instance), "%s", instance);
    topo_name(cfg, TOPO_DEAD, p->dead, sizeof(p->dead));
    buf_init(&p->events, SIZE_MAX / 2);
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->stats_queues = calloc(cfg->n_routes + 1, sizeof(*p->stats_queues));
    if (p->wake_fd < 0 || !p->stats_queues || declare_metrics(p, metrics) < 0) goto err;
    for (size_t i = 0; i < cfg->n_routes; i++)
        p->stats_queues[i] = lanes_name(lanes, i);
    p->stats_queues[cfg->n_routes] = p->dead;
    p->session = open_session(p);
    if (!p->session) goto err;
    if (start_threads(p) < 0) goto err;
    return p;
err:
    si->destroy(p->session);
    if (p->wake_fd >= 0) close(p->wake_fd);
    buf_free(&p->events);
    free(p->stats_queues);
    free(p);
    return NULL;
}

struct publisher *publisher_new(const struct cfg *cfg, struct metrics *metrics,
                                struct status_index *index, struct activity *activity,
                                struct lanes *lanes, const char *instance)
{
    return publisher_new_with(cfg, metrics, index, activity, lanes, instance, &session_amqp);
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
    buf_free(&p->events);
    free(p->stats_queues);
    free(p);
}
