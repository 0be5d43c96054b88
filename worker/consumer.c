/* consumer.c: the worker's event loop (see consumer.h).
 *
 * Ownership: a job is in exactly one place: its route's line of jobs
 * waiting for their call (admit.h), the forming batch, a batch in flight
 * (calling, or waiting for its publishes' confirms), or the heap of held
 * retries. Batches in flight are on c->inflight until their confirms are in
 * and their deliveries settled. The broker session (common/session.h)
 * tracks the confirms, with the batch as the token. Losing the connection
 * frees everything (on_down): unacked deliveries go back to their lanes and
 * another worker takes them. */
#include "consumer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "acks.h"
#include "admit.h"
#include "backoff.h"
#include "batchcall.h"
#include "clock.h"
#include "deliver.h"
#include "dispatch.h"
#include "gate.h"
#include "intake.h"
#include "log.h"
#include "outbox.h"
#include "poison.h"
#include "reporter.h"
#include "results.h"
#include "retry.h"
#include "routectl.h"
#include "session.h"
#include "shaper.h"
#include "wmetrics.h"

#define TICK_MS 1000        /* longest sleep: heartbeats need servicing */
#define QUEUE_STATS_MS 5000 /* how often the queue gauges are refreshed */
#define SHAPING_METRICS_MS 250

struct consumer {
    const struct cfg *cfg;
    struct routectl *routectl; /* the operator's pauses and overrides (routectl.h) */
    struct route_ctl *ctl;
    bool ctl_known; /* ctl holds the state as of the reader's readiness */
    struct dispatch *dispatch;
    struct session *session;
    struct intake *intake;
    struct outbox *outbox;
    struct deliver *deliver; /* callbacks and results (deliver.h) */
    struct shaper *shaper;
    struct admit *admit;
    struct gate *gate; /* holds each batch until its claim is read back */
    atomic_bool connected;
    atomic_bool claims_up; /* the gate's session: batches wait while it is down */
    struct batch *forming;
    bool forming_now; /* it holds a limited route's call: no lingering */
    struct batch *inflight;
    size_t calling; /* batches in flight whose calls are not all done */
    struct retry_heap held;
    int64_t admit_at_ms;  /* when the lines must be pumped again at the latest */
    struct job **blocked; /* jobs newly waiting behind open breakers, this turn */
    size_t n_blocked, cap_blocked;
    uint64_t rnd;
    bool draining;
    int64_t drain_deadline;
    int64_t metrics_at;
    struct wmetrics *wm;
    struct reporter *reporter; /* the fleet's view in the admin API (reporter.h) */
};

static size_t route_index(const struct consumer *c, const struct job *job)
{
    return (size_t)(job->route - c->cfg->routes);
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

/* unpublishable settles a job whose copy the broker cannot take (AMQP
 * cannot carry it, or memory ran out) as dead, and has the delivery
 * dead-lettered as it came: one bad message must not cost the connection,
 * which every other job of the worker rides on. */
static void unpublishable(struct job *job)
{
    log_error("request %s cannot be re-published: dead-lettering it as delivered", job->env.id);
    results_fail(job, "malformed_message",
                 "the request cannot be re-published for its retry or to the dead queue; it "
                 "was dead-lettered as delivered");
    job->dead_letter = true;
}

/* hold moves job out of its batch into the heap of retries due soon. */
static void hold(struct consumer *c, struct job *job)
{
    job->batch = NULL;
    job->retried_here = true;
    job->due_ms = clock_mono_ms() + job->delay_ms;
    if (retry_heap_push(&c->held, job) < 0) {
        job_free(job); /* unacked: the broker redelivers it after we reconnect */
        session_break(c->session, "out of memory holding a retry");
        return;
    }
    wmetrics_retry(c->wm, false);
}

/* publish_copy publishes what job's outcome needs besides its event: a
 * retry's copy, a dead copy, or the job itself to its own lane. */
static void publish_copy(struct consumer *c, struct job *job)
{
    int rc = SESSION_OK;
    if (job->next == NEXT_RETRY_QUEUE) {
        rc = outbox_copy(c->outbox, job, COPY_RETRY);
        if (rc == SESSION_OK) wmetrics_retry(c->wm, true);
    } else if (job->next == NEXT_REROUTE) {
        rc = outbox_copy(c->outbox, job, COPY_LANE);
    } else if (job->next == NEXT_FINAL && job->state == ST_DEAD && !job->dead_letter) {
        rc = outbox_copy(c->outbox, job, COPY_DEAD);
    }
    if (rc == SESSION_REFUSED) unpublishable(job);
}

/* settle publishes what a batch's outcomes need: copies first, then one
 * events message for every job of the batch (so that a job whose copy could
 * not be sent is reported as it ends). Held jobs then leave the batch; the
 * rest are settled with the broker when the confirms are in. */
static void settle(struct consumer *c, struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        if (job->next == NEXT_HOLD && c->draining) job->next = NEXT_RETRY_QUEUE;
        publish_copy(c, job);
    }
    outbox_events(c->outbox, b->jobs, b->n, -1, NULL, b);
    b->deliveries_due = true; /* once the events are confirmed (publishes_done) */
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        if (job->next == NEXT_HOLD) {
            hold(c, job);
            continue;
        }
        b->jobs[kept++] = job;
        if (job->next == NEXT_FINAL) wmetrics_final(c->wm, job);
    }
    b->n = kept;
    wmetrics_held(c->wm, c->held.n);
}

/* transport_error: a failed call that says something about the upstream
 * (not a URL curl cannot use, which is the configuration's fault). */
static bool transport_error(const struct job *job)
{
    return job->curl_code != CURLE_OK && job->curl_code != CURLE_URL_MALFORMAT &&
           job->curl_code != CURLE_UNSUPPORTED_PROTOCOL;
}

/* call_ended tells the shaper a call it admitted is over. */
static void call_ended(struct consumer *c, struct job *job, bool cancelled)
{
    if (!job->admitted) return;
    job->admitted = false;
    struct shaper_outcome o =
        cancelled ? (struct shaper_outcome){.cancelled = true}
                  : shaper_outcome_of(transport_error(job), job->http_status, job->retry_after_ms);
    shaper_done(c->shaper, route_index(c, job), &job->call, &o, clock_mono_us());
}

static void on_call_done(void *arg, struct job *job)
{
    struct consumer *c = arg;
    call_ended(c, job, false);
    results_settle(job, c->cfg, backoff_rand(&c->rnd));
    wmetrics_call(c->wm, job);
    if (job->route)
        reporter_call(c->reporter, route_index(c, job),
                      transport_error(job) || job->http_status >= 500);
    struct batch *b = job->batch;
    wmetrics_in_flight(c->wm, -1);
    if (--b->calling == 0) {
        c->calling--;
        settle(c, b);
    }
}

/* on_batch_call_over reports a batch call to the shaper as the one call
 * of the job whose admission it kept (start_batch_call): its breaker and
 * backpressure learn from the batch call's own answer. */
static void on_batch_call_over(void *arg, struct job **jobs, size_t n, bool transport_error,
                               long status, long retry_after_ms)
{
    struct consumer *c = arg;
    for (size_t i = 0; i < n; i++) {
        struct job *job = jobs[i];
        if (!job->admitted) continue;
        job->admitted = false;
        struct shaper_outcome o = shaper_outcome_of(transport_error, status, retry_after_ms);
        shaper_done(c->shaper, route_index(c, job), &job->call, &o, clock_mono_us());
        return;
    }
}

static void on_batch_item_done(void *arg, struct job *job)
{
    job->in_batch_call = false;
    on_call_done(arg, job);
}

static bool batched(const struct job *job)
{
    return job->next != NEXT_REROUTE && job->route && job->route->batch_url;
}

/* same_call tells whether jobs a and b go in one batch call: of the same
 * batch route and, on a limited route, of the same admission group (one
 * admitted call, admit.h), so that the route's batch calls in flight are
 * what the shaper counts. An unlimited route counts nothing: its jobs of a
 * worker batch share calls of up to batch_max whatever their groups. */
static bool same_call(const struct job *a, const struct job *b)
{
    if (!batched(a) || !batched(b) || a->route != b->route) return false;
    return !cfg_route_limited(a->route) || a->group == b->group;
}

/* start_batch_call sends jobs[0..n) of one batch route as one batch call:
 * it counts as one call in flight (one admission kept, any other given
 * back with its token spent: groups of an unlimited route sharing a call)
 * and each job's call ends on its own (on_batch_item_done). Returns how
 * many jobs are now calling. */
static size_t start_batch_call(struct consumer *c, struct job **jobs, size_t n)
{
    struct batchcall_hooks h = {
        .arg = c, .call_over = on_batch_call_over, .job_done = on_batch_item_done};
    if (batchcall_start(c->dispatch, c->cfg, jobs, n, &h) < 0) {
        for (size_t i = 0; i < n; i++) {
            call_ended(c, jobs[i], true);
            results_fail(jobs[i], "call_failed", "the batch call could not start");
        }
        return 0;
    }
    bool kept = false;
    for (size_t i = 0; i < n; i++) {
        jobs[i]->in_batch_call = true;
        if (jobs[i]->admitted && kept) call_ended(c, jobs[i], true);
        kept = kept || jobs[i]->admitted;
    }
    return n;
}

/* call_batched starts the batch calls of b's jobs whose routes take batches,
 * call by call (same_call), batch_max jobs at most per call. Returns how
 * many jobs are calling. */
static size_t call_batched(struct consumer *c, struct batch *b)
{
    size_t calling = 0, n;
    struct job **group = malloc(b->n * sizeof *group);
    for (size_t i = 0; i < b->n; i++) {
        const struct cfg_route *r = b->jobs[i]->route;
        bool first = batched(b->jobs[i]);
        for (size_t k = 0; first && k < i; k++)
            first = !same_call(b->jobs[k], b->jobs[i]);
        if (!first) continue;
        n = 0;
        for (size_t k = i; k < b->n; k++) {
            if (!same_call(b->jobs[i], b->jobs[k])) continue;
            if (!group) {
                call_ended(c, b->jobs[k], true);
                results_fail(b->jobs[k], "call_failed", "out of memory");
                continue;
            }
            group[n++] = b->jobs[k];
            if (n == (size_t)r->batch_max) {
                calling += start_batch_call(c, group, n);
                n = 0;
            }
        }
        if (n) calling += start_batch_call(c, group, n);
    }
    free(group);
    return calling;
}

/* call_batch calls every job of b, an in-flight batch the gate let through. */
static void call_batch(struct consumer *c, struct batch *b)
{
    wmetrics_batch(c->wm, b->n);
    outbox_events(c->outbox, b->jobs, b->n, ST_PROCESSING, NULL, NULL);
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        if (job->next == NEXT_REROUTE || batched(job)) {
            continue;
        } else if (!job->route) {
            results_fail(job, "unknown_route", "the route is no longer configured on the worker");
        } else if (dispatch_start(c->dispatch, job) < 0) {
            call_ended(c, job, true);
            results_fail(job, "call_failed", curl_easy_strerror(job->curl_code));
        } else {
            b->calling++;
        }
    }
    b->calling += call_batched(c, b);
    wmetrics_in_flight(c->wm, (int64_t)b->calling);
    if (b->calling)
        c->calling++;
    else
        settle(c, b);
}

/* dispatch_batch puts b in flight and has the gate hold it until its claim
 * is read back (on_gate_open), unless it needs none. */
static void dispatch_batch(struct consumer *c, struct batch *b)
{
    b->next = c->inflight;
    c->inflight = b;
    if (!gate_hold(c->gate, b)) call_batch(c, b);
}

static void settle_cancelled(struct consumer *c, struct batch *b);

/* on_gate_open gets a claimed batch back: cancelled jobs are settled
 * without a call, the others called. */
static void on_gate_open(void *arg, struct batch *b)
{
    struct consumer *c = arg;
    settle_cancelled(c, b);
    if (b->n) {
        call_batch(c, b);
        return;
    }
    inflight_remove(c, b);
    batch_free(b);
}

static void dispatch_forming(struct consumer *c)
{
    struct batch *b = c->forming;
    c->forming = NULL;
    c->forming_now = false;
    dispatch_batch(c, b);
}

/* add_to_forming adds job, and the jobs of its admission group linked
 * through wait_next (admit.h), to the forming batch. */
static void add_to_forming(struct consumer *c, struct job *job)
{
    /* A request delivered before without an outcome is called alone (it
     * is never in a group of others). */
    if (job->env.deliveries > 0) {
        struct batch *b = calloc(1, sizeof(*b));
        if (!b || batch_push(b, job) < 0) {
            free(b);
            goto oom;
        }
        dispatch_batch(c, b);
        return;
    }
    size_t n = 0;
    for (const struct job *j = job; j; j = j->wait_next)
        n++;
    /* A group is one batch call: it goes whole into one worker batch, the
     * next one when this one has no room left for it. */
    if (c->forming && c->forming->n + n > (size_t)c->cfg->worker.batch_size) dispatch_forming(c);
    if (!c->forming) {
        c->forming = calloc(1, sizeof(*c->forming));
        if (!c->forming) goto oom;
        c->forming->first_ms = clock_mono_ms();
    }
    for (struct job *next; job; job = next) {
        next = job->wait_next;
        job->wait_next = NULL;
        if (batch_push(c->forming, job) < 0) {
            job->wait_next = next;
            goto oom;
        }
        if (job->route && cfg_route_limited(job->route)) c->forming_now = true;
    }
    if (c->forming->n >= (size_t)c->cfg->worker.batch_size) dispatch_forming(c);
    return;
oom:
    /* Unacked: the broker redelivers them after the teardown. */
    for (struct job *next; job; job = next) {
        next = job->wait_next;
        job_free(job);
    }
    session_break(c->session, "out of memory forming a batch");
}

/* settle_alone settles job in a batch of its own, now. */
static void settle_alone(struct consumer *c, struct job *job)
{
    struct batch *b = calloc(1, sizeof(*b));
    if (!b || batch_push(b, job) < 0) {
        free(b);
        job_free(job);
        session_break(c->session, "out of memory settling a message");
        return;
    }
    b->next = c->inflight;
    c->inflight = b;
    settle(c, b);
}

/* pass_admission gives the admission of job, which leaves b without its
 * call, to the next member of its group still to be called, whose batch
 * call it then is (same_call): the group's call is still counted once. */
static void pass_admission(struct batch *b, struct job *job)
{
    if (!job->admitted || !job->group) return;
    for (size_t i = 0; i < b->n; i++) {
        struct job *heir = b->jobs[i];
        if (heir == job || heir->group != job->group || heir->admitted ||
            heir->state == ST_CANCELLED)
            continue;
        heir->call = job->call;
        heir->admitted = true;
        job->admitted = false;
        return;
    }
}

/* settle_cancelled moves b's cancelled jobs to a batch of their own and
 * settles it: their final event, then their acks. */
static void settle_cancelled(struct consumer *c, struct batch *b)
{
    struct batch *cancelled = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        if (job->state != ST_CANCELLED) {
            b->jobs[kept++] = job;
            continue;
        }
        pass_admission(b, job);
        call_ended(c, job, true); /* its admitted call never starts */
        if (!cancelled) cancelled = calloc(1, sizeof *cancelled);
        if (!cancelled || batch_push(cancelled, job) < 0) {
            job_free(job); /* unacked: redelivered, and refused again */
            session_break(c->session, "out of memory settling a cancelled request");
        }
    }
    b->n = kept;
    if (!cancelled) return;
    cancelled->next = c->inflight;
    c->inflight = cancelled;
    settle(c, cancelled);
}

/* on_poison handles a delivery that is not a sluice request: its client is
 * told when its ID and tenant can be read (poison.h); either way the broker
 * dead-letters it. */
static void on_poison(struct consumer *c, struct mq_event *ev, const struct env_error *err)
{
    log_error("dead-lettering a message that is not a sluice request: %s", err->message);
    wmetrics_malformed(c->wm);
    struct job *job = poison_job(&ev->msg, ev->tag, err->message, clock_real_ms());
    if (job) {
        settle_alone(c, job);
        return;
    }
    struct mq *mq = session_mq(c->session);
    if (mq && mq_nack(mq, ev->tag, false, false) < 0) session_break(c->session, "nack failed");
}

/* elsewhere tells whether a job came from a queue that is not its route's
 * lane: the old requests queue, or a lane it was moved into by hand (a
 * replay from the dead queue). Its route's other lane is drained in place:
 * moving those back would bounce between workers of two configurations
 * during a rolling change. */
static bool elsewhere(const struct consumer *c, const struct job *job, enum intake_source src,
                      size_t lane)
{
    if (!job->route) return false;
    return src == INTAKE_OLD || (src != INTAKE_UNKNOWN && lane != route_index(c, job));
}

/* redelivered counts a redelivered job (poison.h): republished to its lane
 * with one more delivery counted, or dead at the limit. True when it took
 * the job. */
static bool redelivered(struct consumer *c, struct job *job, bool again)
{
    enum poison_verdict v = poison_redelivery(again, job->env.deliveries, c->cfg->delivery_limit);
    if (v == POISON_FRESH) return false;
    job->env.deliveries++;
    if (v == POISON_DEAD) {
        log_warn("request %s was delivered %d times without an outcome: dead", job->env.id,
                 job->env.deliveries);
        results_fail(job, "delivery_limit",
                     "the request was delivered delivery_limit times and no worker recorded an "
                     "outcome (each holder died or lost its connection)");
    } else {
        job->next = NEXT_REROUTE;
    }
    settle_alone(c, job);
    return true;
}

static void finish(struct consumer *c, struct batch *b);

/* take_delivery starts a callback or results delivery (deliver.h). Its
 * delivery tag rides in a batch of its own on c->inflight, like a request's,
 * so that no multiple ack settles it before its call is over. */
static void take_delivery(struct consumer *c, struct mq_event *ev)
{
    struct batch *b = calloc(1, sizeof *b);
    struct job *job = job_new(ev->tag);
    if (!b || !job || batch_push(b, job) < 0) {
        free(b);
        job_free(job);
        session_break(c->session, "out of memory taking a delivery");
        return;
    }
    b->next = c->inflight;
    c->inflight = b;
    if (deliver_take(c->deliver, &ev->msg, b) < 0) {
        job->dead_letter = true; /* nacked: the deliveries queue dead-letters nowhere */
        finish(c, b);
    }
}

/* delivery_settled acks a delivery whose call is over once its publishes
 * (retry, status event) are confirmed: at once when it made none. */
static void delivery_settled(void *arg, struct batch *b)
{
    struct consumer *c = arg;
    /* refused: a publish was lost with the connection, whose teardown
     * returns the delivery to its queue. */
    if (b->unconfirmed == 0 && !b->refused && session_mq(c->session)) finish(c, b);
}

static void on_delivery(void *arg, struct mq_event *ev)
{
    struct consumer *c = arg;
    if (ev->kind == MQ_CANCELLED) {
        if (!intake_gone(c->intake, ev->consumer))
            session_break(c->session, "the broker cancelled a consumer (lane deleted?)");
        return;
    }
    size_t lane = 0;
    enum intake_source src = intake_source(c->intake, ev->consumer, &lane);
    if (src == INTAKE_DELIVERIES) {
        take_delivery(c, ev);
        return;
    }
    struct env_error err;
    struct job *job = job_new(ev->tag);
    if (!job) {
        session_break(c->session, "out of memory taking a delivery");
        return;
    }
    if (envelope_from_amqp(&job->env, &ev->msg.properties, ev->msg.body, &err) < 0) {
        job_free(job);
        on_poison(c, ev, &err);
        return;
    }
    job->route = cfg_route_find(c->cfg, job->env.route, strlen(job->env.route));
    if (elsewhere(c, job, src, lane)) {
        job->next = NEXT_REROUTE;
        settle_alone(c, job);
        return;
    }
    if (job->route && redelivered(c, job, poison_again(ev->redelivered, &ev->msg.properties)))
        return;
    wmetrics_delivered(c->wm, job, clock_real_ms());
    if (job->route)
        admit_push(c->admit, job, false);
    else
        add_to_forming(c, job); /* it fails at once: unknown_route */
}

/* finish settles every delivery of a confirmed batch with the broker: acks,
 * nacks of those to dead-letter, or requeues when a publish was refused. */
static void finish(struct consumer *c, struct batch *b)
{
    struct mq *mq = session_mq(c->session);
    struct acks_others o = {.inflight = c->inflight,
                            .forming = c->forming,
                            .held = &c->held,
                            .lines = admit_heads(c->admit),
                            .n_lines = c->cfg->n_routes};
    uint64_t newest = b->refused ? 0 : acks_multiple_tag(b, &o);
    for (size_t i = 0; LOG_DEBUG >= log_min_level && i < b->n; i++)
        log_debug("request %s: delivery %llu %s", b->jobs[i]->env.id[0] ? b->jobs[i]->env.id : "-",
                  (unsigned long long)b->jobs[i]->delivery_tag,
                  newest                    ? "acked (multiple)"
                  : b->refused              ? "requeued (a publish was refused)"
                  : b->jobs[i]->dead_letter ? "dead-lettered"
                                            : "acked");
    /* A failed ack or nack breaks the session: the teardown follows. */
    int rc = newest ? mq_ack(mq, newest, true) : 0;
    for (size_t i = 0; i < b->n && !newest && rc == 0; i++) {
        const struct job *job = b->jobs[i];
        if (b->refused || job->dead_letter)
            rc = mq_nack(mq, job->delivery_tag, false, b->refused);
        else
            rc = mq_ack(mq, job->delivery_tag, false);
    }
    inflight_remove(c, b);
    batch_free(b);
}

/* publishes_done: every publish of b so far is confirmed. Its callbacks and
 * results go out now, so that a callback's progress event, from whichever
 * worker takes the delivery, follows the request's final event on the
 * stream: events travel on a channel of their own (common/mq.h), so
 * publishing the delivery after them would not be enough. Then b is acked
 * once those are confirmed too. */
static void publishes_done(struct consumer *c, struct batch *b)
{
    if (b->deliveries_due && !b->refused) {
        b->deliveries_due = false;
        deliver_publish(c->deliver, b);
        if (b->unconfirmed) return;
    }
    finish(c, b);
}

/* on_confirm counts down a batch's publishes; the loss of the connection is
 * handled whole by on_down. */
static void on_confirm(void *arg, void *token, enum confirm_outcome outcome)
{
    struct consumer *c = arg;
    struct batch *b = token;
    if (outcome == CONFIRM_LOST) return;
    if (outcome != CONFIRM_ACKED) b->refused = true;
    if (--b->unconfirmed == 0) publishes_done(c, b);
}

static void on_stats(void *arg, size_t i, uint32_t messages, uint32_t consumers)
{
    struct consumer *c = arg;
    wmetrics_queue(c->wm, i, messages, consumers);
}

/* drop_all forgets every job after the connection is gone: the broker
 * redelivers all of them, since none was acked. */
static void drop_all(struct consumer *c)
{
    if (c->dispatch) dispatch_drop_calls(c->dispatch);
    for (struct batch *b = c->inflight, *next; b; b = next) {
        next = b->next;
        for (size_t i = 0; i < b->n; i++)
            if (b->jobs[i]->easy || b->jobs[i]->in_batch_call) {
                dispatch_abort(c->dispatch, b->jobs[i]);
                wmetrics_in_flight(c->wm, -1);
            }
        batch_free(b);
    }
    c->inflight = NULL;
    c->calling = 0;
    batch_free(c->forming);
    c->forming = NULL;
    c->forming_now = false;
    struct job *job;
    while ((job = retry_heap_pop(&c->held)))
        job_free(job);
    for (struct job *j = c->admit ? admit_take_all(c->admit) : NULL, *next; j; j = next) {
        next = j->wait_next;
        job_free(j);
    }
    c->n_blocked = 0;
    if (c->shaper) shaper_reset(c->shaper);
    if (c->wm) wmetrics_held(c->wm, 0); /* NULL only when consumer_new failed */
}

static int on_up(void *arg, struct mq *mq)
{
    struct consumer *c = arg;
    if (intake_start(c->intake, mq) < 0) return -1;
    atomic_store(&c->connected, true);
    wmetrics_connected(c->wm, true);
    log_info("consuming %zu lanes (batch_size %ld, prefetch %ld)", c->cfg->n_routes,
             c->cfg->worker.batch_size, c->cfg->worker.prefetch);
    return 0;
}

static void on_down(void *arg)
{
    struct consumer *c = arg;
    gate_forget(c->gate);
    drop_all(c);
    atomic_store(&c->connected, false);
    wmetrics_connected(c->wm, false);
}

/* return_waiting gives the jobs waiting for their calls back to their
 * lanes, so that other workers take them now rather than after this one;
 * those this worker already called go into b for a delay queue, like the
 * held retries, carrying their attempts. */
static void return_waiting(struct consumer *c, struct mq *mq, struct batch *b)
{
    int rc = 0;
    for (struct job *j = admit_take_all(c->admit), *next; j; j = next) {
        next = j->wait_next;
        if (j->retried_here) {
            j->next = NEXT_RETRY_QUEUE;
            j->delay_ms = 0;
            if (batch_push(b, j) == 0) continue;
            session_break(c->session, "out of memory at shutdown");
        } else if (rc == 0) {
            rc = mq_nack(mq, j->delivery_tag, false, true);
        }
        job_free(j);
    }
}

/* start_drain stops consuming, sends what is forming on its way, returns
 * what waits, and moves held retries to delay queues, so that nothing is
 * left unacked at exit. */
static void start_drain(struct consumer *c)
{
    c->draining = true;
    c->drain_deadline = clock_mono_ms() + c->cfg->worker.shutdown_grace_ms;
    struct mq *mq = session_mq(c->session);
    if (!mq) return;
    if (intake_stop(c->intake, mq) < 0) return; /* the session is broken: the loop ends */
    struct batch *b = calloc(1, sizeof(*b));
    if (!b) {
        session_break(c->session, "out of memory at shutdown");
        return;
    }
    return_waiting(c, mq, b);
    int64_t now = clock_mono_ms();
    struct job *job;
    while ((job = retry_heap_pop(&c->held))) {
        job->next = NEXT_RETRY_QUEUE;
        job->delay_ms = job->due_ms > now ? (long)(job->due_ms - now) : 0;
        if (batch_push(b, job) < 0) {
            job_free(job);
            session_break(c->session, "out of memory at shutdown");
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

/* release_due sends the held retries that are due back to their lines,
 * ahead of what was delivered since: they were admitted before. */
static void release_due(struct consumer *c, int64_t now)
{
    struct job *top;
    while ((top = retry_heap_peek(&c->held)) && top->due_ms <= now)
        admit_push(c->admit, retry_heap_pop(&c->held), true);
    wmetrics_held(c->wm, c->held.n);
}

static void admitted(void *arg, struct job *job)
{
    add_to_forming(arg, job);
}

static void blocked(void *arg, struct job *job)
{
    struct consumer *c = arg;
    if (c->n_blocked == c->cap_blocked) {
        size_t cap = c->cap_blocked ? c->cap_blocked * 2 : 64;
        struct job **a = realloc(c->blocked, cap * sizeof(*a));
        if (!a) return; /* its status says why a little later, or not: it still waits */
        c->blocked = a;
        c->cap_blocked = cap;
    }
    c->blocked[c->n_blocked++] = job;
}

/* tell_waiting publishes why the jobs that newly wait do: one events
 * message per reason (an open breaker, a paused route). */
static void tell_waiting(struct consumer *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_blocked; i++) {
        struct job *job = c->blocked[i];
        job->state = job->env.attempts ? ST_RETRYING : ST_QUEUED;
        if (job->reason_sent == JOB_WAIT_PAUSED) continue;
        c->blocked[i] = c->blocked[n];
        c->blocked[n++] = job;
    }
    if (n) outbox_events(c->outbox, c->blocked, n, -1, "breaker_open", NULL);
    if (n < c->n_blocked)
        outbox_events(c->outbox, c->blocked + n, c->n_blocked - n, -1, "paused", NULL);
}

/* control applies the operator's latest state of the routes to the shaper. */
static void control(struct consumer *c)
{
    /* Read before the state is taken: the reader sets it after storing the
     * first snapshot, so what is taken then includes it. */
    bool ready = routectl_ready(c->routectl);
    routectl_take(c->routectl, c->ctl);
    if (ready) c->ctl_known = true;
    int64_t now = clock_mono_us();
    for (size_t i = 0; i < c->cfg->n_routes; i++)
        shaper_control(c->shaper, i, &c->ctl[i], now);
}

/* pump lets waiting jobs go as the shaper allows, and tells the clients of
 * those that newly wait behind open breakers why (one events message). */
static void pump(struct consumer *c, int64_t now_ms)
{
    struct admit_hooks h = {.arg = c, .go = admitted, .blocked = blocked};
    /* No call starts before the operator's state is known: a route may be paused. */
    if (!c->ctl_known) return;
    int64_t at = admit_pump(c->admit, clock_mono_us(), &h);
    c->admit_at_ms = at == INT64_MAX ? INT64_MAX : (at + 999) / 1000;
    if (c->n_blocked) {
        tell_waiting(c);
        c->n_blocked = 0;
    }
    if (now_ms >= c->metrics_at) {
        wmetrics_shaping(c->wm, c->shaper, c->admit, clock_mono_us());
        c->metrics_at = now_ms + SHAPING_METRICS_MS;
    }
}

static void maybe_dispatch(struct consumer *c, int64_t now)
{
    struct batch *f = c->forming;
    /* With nothing else in flight, waiting for more would only add latency;
     * a limited route's call starts when the shaper lets it. */
    if (!f || (c->calling && !c->forming_now && now < f->first_ms + c->cfg->worker.batch_linger_ms))
        return;
    dispatch_forming(c);
}

static int next_timeout(const struct consumer *c, int64_t now)
{
    int64_t until = now + session_timeout_ms(c->session, now, TICK_MS);
    int64_t gate_until = now + gate_timeout_ms(c->gate, now, TICK_MS);
    if (gate_until < until) until = gate_until;
    const struct job *top = retry_heap_peek(&c->held);
    if (top && top->due_ms < until) until = top->due_ms;
    if (c->forming && c->forming->first_ms + c->cfg->worker.batch_linger_ms < until)
        until = c->forming->first_ms + c->cfg->worker.batch_linger_ms;
    if (c->admit_at_ms < until) until = c->admit_at_ms;
    if (c->draining && c->drain_deadline < until) until = c->drain_deadline;
    int64_t report_until = now + reporter_timeout_ms(c->reporter, now, TICK_MS);
    if (report_until < until) until = report_until;
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
        if (c->draining && (idle(c) || !session_up(c->session))) break;
        if (c->draining && now >= c->drain_deadline) {
            log_warn("shutdown grace over: leaving unfinished requests to other workers");
            break;
        }
        struct curl_waitfd fds[4] = {{.fd = signal_fd, .events = CURL_WAIT_POLLIN},
                                     {.fd = routectl_fd(c->routectl), .events = CURL_WAIT_POLLIN}};
        unsigned n = 2;
        int fd = session_fd(c->session), gfd = gate_fd(c->gate);
        if (fd >= 0) fds[n++] = (struct curl_waitfd){.fd = fd, .events = CURL_WAIT_POLLIN};
        if (gfd >= 0) fds[n++] = (struct curl_waitfd){.fd = gfd, .events = CURL_WAIT_POLLIN};
        if (dispatch_wait(c->dispatch, fds, n, next_timeout(c, now)) < 0) {
            log_error("curl_multi_poll failed");
            return -1;
        }
        if ((fds[0].revents & CURL_WAIT_POLLIN) && read_signal(signal_fd) && !c->draining)
            start_drain(c);
        if (fds[1].revents & CURL_WAIT_POLLIN) control(c);
        dispatch_run(c->dispatch, on_call_done, c);
        session_run(c->session, clock_mono_ms());
        gate_run(c->gate, clock_mono_ms());
        atomic_store(&c->claims_up, session_up(gate_session(c->gate)));
        reporter_run(c->reporter, gate_session(c->gate), clock_mono_ms());
        now = clock_mono_ms();
        if (session_up(c->session)) release_due(c, now);
        if (session_up(c->session) && !c->draining) pump(c, now);
        if (session_up(c->session)) maybe_dispatch(c, now);
    }
    reporter_bye(c->reporter, gate_session(c->gate));
    /* Closing politely lets the last acks reach the queue (mq_close). */
    session_free(c->session);
    c->session = NULL;
    gate_free(c->gate);
    c->gate = NULL;
    return 0;
}

bool consumer_ready(struct consumer *c)
{
    return atomic_load(&c->connected) && atomic_load(&c->claims_up);
}

static struct session *open_session(struct consumer *c)
{
    struct session_params sp = {
        .cfg = c->cfg,
        .name = "sluice-worker",
        .confirms = true,
        .stats_queues = intake_stats_queues(c->intake),
        .n_stats_queues = c->cfg->n_routes + 1,
        .stats_every_ms = QUEUE_STATS_MS,
        .hooks = {.arg = c,
                  .on_up = on_up,
                  .on_down = on_down,
                  .on_delivery = on_delivery,
                  .on_confirm = on_confirm,
                  .on_stats = on_stats},
    };
    return session_new(&sp);
}

struct consumer *consumer_new(const struct cfg *cfg, struct metrics *metrics)
{
    struct consumer *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->cfg = cfg;
    c->rnd = (uint64_t)clock_real_ms() ^ ((uint64_t)getpid() << 32);
    c->admit_at_ms = INT64_MAX;
    retry_heap_init(&c->held);
    c->dispatch = dispatch_new(cfg);
    c->wm = wmetrics_new(cfg, metrics);
    c->gate = gate_new(cfg, metrics, on_gate_open, c);
    c->intake = intake_new(cfg);
    c->shaper = shaper_new(cfg);
    c->ctl = calloc(cfg->n_routes + 1, sizeof *c->ctl);
    c->routectl = routectl_new(cfg, "sluice-worker-admin");
    c->admit = c->shaper ? admit_new(cfg, c->shaper) : NULL;
    c->reporter = c->shaper ? reporter_new(cfg, c->shaper) : NULL;
    c->session = c->intake ? open_session(c) : NULL;
    c->outbox = c->session ? outbox_new(cfg, c->session, c->intake) : NULL;
    struct deliver_hooks dh = {.arg = c, .settled = delivery_settled};
    c->deliver = c->session && c->dispatch ? deliver_new(cfg, c->session, c->dispatch, &dh) : NULL;
    if (!c->dispatch || !c->wm || !c->admit || !c->outbox || !c->deliver || !c->gate || !c->ctl ||
        !c->routectl || !c->reporter) {
        consumer_free(c);
        return NULL;
    }
    return c;
}

void consumer_free(struct consumer *c)
{
    if (!c) return;
    session_free(c->session);
    gate_free(c->gate);
    reporter_free(c->reporter);
    drop_all(c);
    dispatch_free(c->dispatch);
    wmetrics_free(c->wm);
    retry_heap_free(&c->held);
    outbox_free(c->outbox);
    deliver_free(c->deliver);
    admit_free(c->admit);
    shaper_free(c->shaper);
    routectl_free(c->routectl);
    free(c->ctl);
    intake_free(c->intake);
    free(c->blocked);
    free(c);
}
