/* consumer.c: the worker's event loop (see consumer.h).
 *
 * Ownership: a job is in exactly one place: the forming batch, a batch in
 * flight (calling, or waiting for its publishes' confirms), or the heap of
 * held retries. Batches in flight are on c->inflight until their confirms
 * are in and their deliveries acked. Losing the connection frees everything:
 * unacked deliveries go back to the queue and another worker takes them. */
#include "consumer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"
#include "dispatch.h"
#include "log.h"
#include "mq.h"
#include "results.h"
#include "retry.h"
#include "wmetrics.h"

#define TICK_MS 1000        /* longest sleep: heartbeats need servicing */
#define QUEUE_STATS_MS 5000 /* how often the queue gauges are refreshed */

struct pending_confirm {
    uint64_t seq;
    struct batch *batch;
};

struct consumer {
    const struct cfg *cfg;
    struct dispatch *dispatch;
    struct mq *mq;
    bool broken; /* a publish or ack failed: reconnect */
    atomic_bool connected;
    int64_t reconnect_at;
    int failures;
    struct batch *forming;
    struct batch *inflight;
    size_t calling; /* batches in flight whose calls are not all done */
    struct retry_heap held;
    struct pending_confirm *confirms; /* in publish order */
    size_t confirms_n, confirms_cap;
    long *retry_queues; /* delays whose retry queue is declared on this connection */
    size_t retry_queues_n;
    uint64_t rnd;
    bool draining;
    int64_t drain_deadline;
    int64_t stats_at; /* monotonic time of the next queue stats poll */
    char requests[160], events[160], dead[160];
    struct wmetrics *wm;
};

static void job_free(struct job *job)
{
    if (!job) return;
    envelope_free(&job->env);
    buf_free(&job->resp_body);
    buf_free(&job->resp_headers);
    free(job->result_json);
    free(job->error_json);
    free(job);
}

static void batch_free(struct batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++)
        job_free(b->jobs[i]);
    free(b->jobs);
    free(b);
}

static int batch_push(struct batch *b, struct job *job)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct job **jobs = realloc(b->jobs, cap * sizeof(*jobs));
        if (!jobs) return -1;
        b->jobs = jobs;
        b->cap = cap;
    }
    b->jobs[b->n++] = job;
    job->batch = b;
    return 0;
}

static void inflight_remove(struct consumer *c, struct batch *b)
{
    for (struct batch **pp = &c->inflight; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            return;
        }
    }
}

static int track_confirm(struct consumer *c, uint64_t seq, struct batch *b)
{
    if (c->confirms_n == c->confirms_cap) {
        size_t cap = c->confirms_cap ? c->confirms_cap * 2 : 256;
        struct pending_confirm *p = realloc(c->confirms, cap * sizeof(*p));
        if (!p) return -1;
        c->confirms = p;
        c->confirms_cap = cap;
    }
    c->confirms[c->confirms_n++] = (struct pending_confirm){.seq = seq, .batch = b};
    b->unconfirmed++;
    return 0;
}

/* publish sends one persistent message and, when b is given, makes b wait for its confirm. */
static void publish(struct consumer *c, const char *exchange, const char *key,
                    const amqp_basic_properties_t *props, const void *body, size_t len,
                    struct batch *b)
{
    uint64_t seq;
    if (c->broken) return;
    int rc = mq_publish(c->mq, exchange, key, props, body, len, &seq);
    if (rc < 0) {
        log_error("publishing to %s failed: %s", key, mq_strerror(rc));
        c->broken = true;
    } else if (b && track_confirm(c, seq, b) < 0) {
        c->broken = true; /* out of memory: start over rather than ack blindly */
    }
}

/* publish_events sends the events of jobs in b (in state, or each job's own if
 * state < 0) as one stream message. */
static void publish_events(struct consumer *c, struct batch *b, int state, bool track)
{
    struct buf m;
    buf_init(&m, SIZE_MAX / 2);
    int64_t now = clock_real_ms();
    int rc = event_begin(&m);
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        struct job *job = b->jobs[i];
        struct status_update u =
            results_update(job, state < 0 ? job->state : (enum req_state)state, now);
        if (state >= 0) u.result_json = u.error_json = NULL, u.result_len = u.error_len = 0;
        rc = event_append(&m, &u);
    }
    if (rc == 0) rc = event_end(&m);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    if (rc == 0)
        publish(c, "", c->events, &props, m.data, m.len, track ? b : NULL);
    else
        c->broken = true;
    buf_free(&m);
}

static void publish_envelope(struct consumer *c, const char *queue, struct job *job)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t props;
    if (envelope_to_amqp(&job->env, &pool, &props) == 0)
        publish(c, "", queue, &props, job->env.body, job->env.body_len, job->batch);
    else
        c->broken = true;
    empty_amqp_pool(&pool);
}

static int ensure_retry_queue(struct consumer *c, long delay)
{
    for (size_t i = 0; i < c->retry_queues_n; i++)
        if (c->retry_queues[i] == delay) return 0;
    char err[512];
    if (mq_declare_retry_queue(c->mq, c->cfg->namespace, delay, c->cfg->queue_type, err,
                               sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    long *q = realloc(c->retry_queues, (c->retry_queues_n + 1) * sizeof(*q));
    if (!q) return -1;
    c->retry_queues = q;
    c->retry_queues[c->retry_queues_n++] = delay;
    return 0;
}

static void publish_retry(struct consumer *c, struct job *job)
{
    long delay = retry_queue_delay_ms(job->delay_ms);
    char suffix[40], queue[200];
    if (c->broken || ensure_retry_queue(c, delay) < 0) {
        c->broken = true;
        return;
    }
    snprintf(suffix, sizeof(suffix), "retry.%ld", delay);
    mq_name(queue, sizeof(queue), c->cfg->namespace, suffix);
    publish_envelope(c, queue, job);
    wmetrics_retry(c->wm, true);
}

/* hold moves job out of its batch into the heap of retries due soon. */
static void hold(struct consumer *c, struct job *job)
{
    job->batch = NULL;
    job->due_ms = clock_mono_ms() + job->delay_ms;
    if (retry_heap_push(&c->held, job) < 0) {
        job_free(job); /* unacked: the broker redelivers it after we reconnect */
        c->broken = true;
        return;
    }
    wmetrics_retry(c->wm, false);
}

/* settle publishes what a batch's outcomes need: one events message, dead
 * letters, retry messages. Held jobs leave the batch; the rest are acked when
 * the confirms are in. */
static void settle(struct consumer *c, struct batch *b)
{
    publish_events(c, b, -1, true);
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        if (job->next == NEXT_HOLD && c->draining) job->next = NEXT_RETRY_QUEUE;
        if (job->next == NEXT_HOLD) {
            hold(c, job);
            continue;
        }
        b->jobs[kept++] = job;
        if (job->next == NEXT_RETRY_QUEUE)
            publish_retry(c, job);
        else if (job->state == ST_DEAD)
            publish_envelope(c, c->dead, job);
        if (job->next == NEXT_FINAL) wmetrics_final(c->wm, job);
    }
    b->n = kept;
    wmetrics_held(c->wm, c->held.n);
}

static void on_call_done(void *arg, struct job *job)
{
    struct consumer *c = arg;
    results_settle(job, c->cfg, backoff_rand(&c->rnd));
    wmetrics_call(c->wm, job);
    struct batch *b = job->batch;
    wmetrics_in_flight(c->wm, -1);
    if (--b->calling == 0) {
        c->calling--;
        settle(c, b);
    }
}

static void dispatch_batch(struct consumer *c, struct batch *b)
{
    b->next = c->inflight;
    c->inflight = b;
    wmetrics_batch(c->wm, b->n);
    publish_events(c, b, ST_PROCESSING, false);
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        if (!job->route)
            results_fail(job, "unknown_route", "the route is no longer configured on the worker");
        else if (dispatch_start(c->dispatch, job) < 0)
            results_fail(job, "call_failed", curl_easy_strerror(job->curl_code));
        else
            b->calling++;
    }
    wmetrics_in_flight(c->wm, (int64_t)b->calling);
    if (b->calling)
        c->calling++;
    else
        settle(c, b);
}

static void add_to_forming(struct consumer *c, struct job *job)
{
    if (!c->forming) {
        c->forming = calloc(1, sizeof(*c->forming));
        if (!c->forming) goto oom;
        c->forming->first_ms = clock_mono_ms();
    }
    if (batch_push(c->forming, job) < 0) goto oom;
    if (c->forming->n >= (size_t)c->cfg->worker.batch_size) {
        struct batch *b = c->forming;
        c->forming = NULL;
        dispatch_batch(c, b);
    }
    return;
oom:
    job_free(job);
    c->broken = true;
}

static void on_delivery(struct consumer *c, struct mq_event *ev)
{
    struct env_error err;
    struct job *job = calloc(1, sizeof(*job));
    if (!job) {
        c->broken = true;
        return;
    }
    envelope_init(&job->env);
    job->delivery_tag = ev->tag;
    if (envelope_from_amqp(&job->env, &ev->msg.properties, ev->msg.body, &err) < 0) {
        log_error("dead-lettering a message that is not a sluice request: %s", err.message);
        wmetrics_malformed(c->wm);
        if (mq_nack(c->mq, ev->tag, false, false) < 0) c->broken = true;
        job_free(job);
        return;
    }
    job->route = cfg_route_find(c->cfg, job->env.route, strlen(job->env.route));
    wmetrics_delivered(c->wm, job, clock_real_ms());
    add_to_forming(c, job);
}

static bool any_older(struct job *const *jobs, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (jobs[i]->delivery_tag < tag) return true;
    return false;
}

/* newest_if_oldest returns the newest delivery tag of b when no delivery
 * outside b is older than it, so one multiple ack settles exactly b's jobs;
 * else 0. The broker handles one multiple ack as one message to the queue's
 * process, where individual acks cost one each: under load that process is
 * the broker's busiest (docs/performance.md). */
static uint64_t newest_if_oldest(const struct consumer *c, const struct batch *b)
{
    uint64_t newest = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->jobs[i]->delivery_tag > newest) newest = b->jobs[i]->delivery_tag;
    if (any_older(c->held.jobs, c->held.n, newest)) return 0;
    if (c->forming && any_older(c->forming->jobs, c->forming->n, newest)) return 0;
    for (const struct batch *o = c->inflight; o; o = o->next)
        if (o != b && any_older(o->jobs, o->n, newest)) return 0;
    return newest;
}

/* finish acks (or, if refused, requeues) every delivery of a confirmed batch. */
static void finish(struct consumer *c, struct batch *b)
{
    uint64_t newest = b->refused ? 0 : newest_if_oldest(c, b);
    if (newest && !c->broken && mq_ack(c->mq, newest, true) < 0) c->broken = true;
    for (size_t i = 0; i < b->n && !newest && !c->broken; i++) {
        uint64_t tag = b->jobs[i]->delivery_tag;
        int rc = b->refused ? mq_nack(c->mq, tag, false, true) : mq_ack(c->mq, tag, false);
        if (rc < 0) c->broken = true;
    }
    inflight_remove(c, b);
    batch_free(b);
}

static void on_confirm(struct consumer *c, uint64_t tag, bool multiple, bool ok)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->confirms_n; i++) {
        struct pending_confirm p = c->confirms[i];
        if (p.seq > tag || (!multiple && p.seq != tag)) {
            c->confirms[kept++] = p;
            continue;
        }
        if (!ok) p.batch->refused = true;
        if (--p.batch->unconfirmed == 0) finish(c, p.batch);
    }
    c->confirms_n = kept;
}

static void on_return(struct consumer *c, const amqp_message_t *msg)
{
    amqp_bytes_t id = msg->properties.message_id;
    for (struct batch *b = c->inflight; b; b = b->next)
        for (size_t i = 0; i < b->n; i++)
            if (id.len == ID_LEN && memcmp(id.bytes, b->jobs[i]->env.id, ID_LEN) == 0)
                b->refused = true;
}

static void read_broker(struct consumer *c)
{
    struct mq_event ev;
    int rc = 0;
    while (!c->broken && (rc = mq_next(c->mq, &ev, 0)) > 0) {
        switch (ev.kind) {
        case MQ_DELIVERY:
            on_delivery(c, &ev);
            break;
        case MQ_ACK:
        case MQ_NACK:
            on_confirm(c, ev.tag, ev.multiple, ev.kind == MQ_ACK);
            break;
        case MQ_RETURN:
            on_return(c, &ev.msg);
            break;
        case MQ_CANCELLED:
            log_error("the broker cancelled our consumer (requests queue deleted?): reconnecting");
            c->broken = true;
            break;
        case MQ_NONE:
            break;
        }
        mq_event_release(&ev);
    }
    if (rc < 0 && !c->broken) {
        log_error("broker connection lost: %s", mq_strerror(rc));
        c->broken = true;
    }
}

/* drop_all forgets every job after the connection is gone: the broker
 * redelivers all of them, since none was acked. */
static void drop_all(struct consumer *c)
{
    for (struct batch *b = c->inflight, *next; b; b = next) {
        next = b->next;
        for (size_t i = 0; i < b->n; i++)
            if (b->jobs[i]->easy) {
                dispatch_abort(c->dispatch, b->jobs[i]);
                wmetrics_in_flight(c->wm, -1);
            }
        batch_free(b);
    }
    c->inflight = NULL;
    c->calling = 0;
    batch_free(c->forming);
    c->forming = NULL;
    struct job *job;
    while ((job = retry_heap_pop(&c->held)))
        job_free(job);
    if (c->wm) wmetrics_held(c->wm, 0); /* NULL only when consumer_new failed */
    c->confirms_n = 0;
    c->retry_queues_n = 0;
}

static void disconnect(struct consumer *c)
{
    drop_all(c);
    mq_close(c->mq);
    c->mq = NULL;
    c->broken = false;
    atomic_store(&c->connected, false);
    wmetrics_connected(c->wm, false);
    long delay = 100 + backoff_delay_ms(100, 5000, ++c->failures, backoff_rand(&c->rnd));
    c->reconnect_at = clock_mono_ms() + delay;
}

static void connect_broker(struct consumer *c)
{
    char err[512] = "";
    const struct cfg *cfg = c->cfg;
    if (mq_open(&c->mq, cfg->amqp_url, "sluice-worker", 5000, err, sizeof(err)) < 0 ||
        mq_declare_topology(c->mq, cfg->namespace, cfg->ingress.status_retention_s, cfg->queue_type,
                            cfg->delivery_limit, err, sizeof(err)) < 0 ||
        mq_confirm_select(c->mq) < 0 || mq_qos(c->mq, (uint16_t)cfg->worker.prefetch) < 0 ||
        mq_consume(c->mq, c->requests, NULL) < 0) {
        log_error("%s; retrying", err[0] ? err : "cannot consume the requests queue");
        disconnect(c);
        return;
    }
    c->failures = 0;
    atomic_store(&c->connected, true);
    wmetrics_connected(c->wm, true);
    c->stats_at = clock_mono_ms(); /* at once: a new worker changes the fleet size */
    log_info("consuming %s (batch_size %ld, prefetch %ld)", c->requests, cfg->worker.batch_size,
             cfg->worker.prefetch);
}

/* start_drain stops consuming, sends what is forming on its way and moves
 * held retries to retry queues, so that nothing is left unacked at exit. */
static void start_drain(struct consumer *c)
{
    c->draining = true;
    c->drain_deadline = clock_mono_ms() + c->cfg->worker.shutdown_grace_ms;
    if (!c->mq) return;
    if (mq_cancel(c->mq) < 0) c->broken = true;
    struct batch *b = calloc(1, sizeof(*b));
    struct job *job;
    if (!b) {
        c->broken = true;
        return;
    }
    int64_t now = clock_mono_ms();
    while ((job = retry_heap_pop(&c->held))) {
        job->next = NEXT_RETRY_QUEUE;
        job->delay_ms = job->due_ms > now ? (long)(job->due_ms - now) : 0;
        if (batch_push(b, job) < 0) {
            job_free(job);
            c->broken = true;
        }
    }
    b->next = c->inflight;
    c->inflight = b;
    settle(c, b);
    if (c->forming) {
        struct batch *f = c->forming;
        c->forming = NULL;
        dispatch_batch(c, f);
    }
}

static bool idle(const struct consumer *c)
{
    return !c->inflight && !c->forming && !c->held.n;
}

static void release_due(struct consumer *c, int64_t now)
{
    struct job *top;
    while ((top = retry_heap_peek(&c->held)) && top->due_ms <= now)
        add_to_forming(c, retry_heap_pop(&c->held));
    wmetrics_held(c->wm, c->held.n);
}

/* poll_queues refreshes the queue gauges every QUEUE_STATS_MS. The passive
 * declares are RPCs on the consuming channel: rabbitmq-c queues the frames
 * that arrive meanwhile, and mq_buffered makes the loop read them at once. */
static void poll_queues(struct consumer *c, int64_t now)
{
    static const enum wm_queue queues[] = {WM_REQUESTS, WM_DEAD};
    const char *names[] = {c->requests, c->dead};
    if (now < c->stats_at) return;
    c->stats_at = now + QUEUE_STATS_MS;
    for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]) && !c->broken; i++) {
        uint32_t messages, consumers;
        if (mq_queue_stats(c->mq, names[i], &messages, &consumers) < 0)
            c->broken = true; /* the channel is closed: reconnect */
        else
            wmetrics_queue(c->wm, queues[i], messages, consumers);
    }
}

static void maybe_dispatch(struct consumer *c, int64_t now)
{
    struct batch *f = c->forming;
    /* With nothing else in flight, waiting for more would only add latency. */
    if (!f || (c->calling && now < f->first_ms + c->cfg->worker.batch_linger_ms)) return;
    c->forming = NULL;
    dispatch_batch(c, f);
}

static int next_timeout(const struct consumer *c, int64_t now)
{
    int64_t until = now + TICK_MS;
    const struct job *top = retry_heap_peek(&c->held);
    if (top && top->due_ms < until) until = top->due_ms;
    if (c->forming && c->forming->first_ms + c->cfg->worker.batch_linger_ms < until)
        until = c->forming->first_ms + c->cfg->worker.batch_linger_ms;
    if (!c->mq && !c->draining && c->reconnect_at < until) until = c->reconnect_at;
    if (c->draining && c->drain_deadline < until) until = c->drain_deadline;
    if (c->mq && !c->draining && c->stats_at < until) until = c->stats_at;
    if (c->mq && mq_buffered(c->mq)) until = now;
    return until > now ? (int)(until - now) : 0;
}

static bool read_signal(int fd)
{
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) != sizeof(si)) return false;
    log_info("received %s: finishing the work in hand", strsignal((int)si.ssi_signo));
    return true;
}

int consumer_run(struct consumer *c, int signal_fd)
{
    for (;;) {
        int64_t now = clock_mono_ms();
        if (!c->mq && !c->draining && now >= c->reconnect_at) connect_broker(c);
        if (c->draining && (idle(c) || !c->mq)) break;
        if (c->draining && now >= c->drain_deadline) {
            log_warn("shutdown grace over: leaving unfinished requests to other workers");
            break;
        }
        struct curl_waitfd fds[2] = {{.fd = signal_fd, .events = CURL_WAIT_POLLIN}};
        unsigned n = 1;
        if (c->mq) fds[n++] = (struct curl_waitfd){.fd = mq_fd(c->mq), .events = CURL_WAIT_POLLIN};
        if (dispatch_wait(c->dispatch, fds, n, next_timeout(c, now)) < 0) {
            log_error("curl_multi_poll failed");
            return -1;
        }
        if ((fds[0].revents & CURL_WAIT_POLLIN) && read_signal(signal_fd) && !c->draining)
            start_drain(c);
        dispatch_run(c->dispatch, on_call_done, c);
        now = clock_mono_ms();
        if (c->mq && !c->draining) poll_queues(c, now);
        if (c->mq) read_broker(c);
        if (c->mq) release_due(c, now);
        if (c->mq) maybe_dispatch(c, now);
        if (c->broken) disconnect(c);
    }
    if (c->mq) disconnect(c);
    return 0;
}

bool consumer_connected(struct consumer *c)
{
    return atomic_load(&c->connected);
}

struct consumer *consumer_new(const struct cfg *cfg, struct metrics *metrics)
{
    struct consumer *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->cfg = cfg;
    c->rnd = (uint64_t)clock_real_ms() ^ ((uint64_t)getpid() << 32);
    retry_heap_init(&c->held);
    mq_name(c->requests, sizeof(c->requests), cfg->namespace, "requests");
    mq_name(c->events, sizeof(c->events), cfg->namespace, "events");
    mq_name(c->dead, sizeof(c->dead), cfg->namespace, "dead");
    c->dispatch = dispatch_new(cfg);
    c->wm = wmetrics_new(cfg, metrics);
    if (!c->dispatch || !c->wm) {
        consumer_free(c);
        return NULL;
    }
    return c;
}

void consumer_free(struct consumer *c)
{
    if (!c) return;
    drop_all(c);
    mq_close(c->mq);
    dispatch_free(c->dispatch);
    wmetrics_free(c->wm);
    retry_heap_free(&c->held);
    free(c->confirms);
    free(c->retry_queues);
    free(c);
}
