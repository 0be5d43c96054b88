/* control.c: the control thread (see control.h). Operations come from HTTP
 * threads through a locked list and an eventfd; the thread publishes them,
 * keeps them in flight until their outcome (a cancel read back from the
 * claims stream, an erasure's confirm) or their deadline, and answers each
 * once. */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "claims.h"
#include "clock.h"
#include "event.h"
#include "id.h"
#include "keylimits.h"
#include "log.h"
#include "session.h"

#define TICK_MS 1000

enum op_kind { OP_CANCEL, OP_ERASE };

struct op {
    enum op_kind kind;
    struct status_update u; /* its strings point into the op */
    char id[ID_LEN + 1];
    char tenant[129], route[129];
    uint64_t serial; /* a cancel's correlation_id */
    int64_t deadline_ms;
    bool sent;            /* published; until then it waits for the session, up to its deadline */
    control_done_fn done; /* NULL once answered (an erasure past its deadline) */
    void *arg;
    struct op *next;
};

struct control {
    const struct cfg *cfg;
    struct status_index *index;
    struct session *session;
    struct claims *claims;
    pthread_t thread;
    pthread_mutex_t lock;
    struct op *submitted; /* from HTTP threads, newest first */
    struct op *inflight;  /* the thread's */
    bool stopping;
    atomic_bool up;
    int wake_fd;
    char instance[ID_LEN + 1];
    int64_t next_beat_ms;
    int verdict; /* the read-back cancel's, while feeding its message */
    struct metric *m_cancels, *m_refused;
};

static void wake(struct control *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->wake_fd, &one, sizeof one);
    (void)n;
}

static int submit(struct control *c, enum op_kind kind, const struct status_brief *b,
                  const char *tenant, control_done_fn done, void *arg)
{
    if (!atomic_load(&c->up)) return -1;
    struct op *op = calloc(1, sizeof *op);
    if (!op) return -1;
    op->kind = kind;
    memcpy(op->id, b->id, sizeof op->id);
    snprintf(op->tenant, sizeof op->tenant, "%s", tenant);
    snprintf(op->route, sizeof op->route, "%s", b->route);
    op->u = (struct status_update){.id = op->id,
                                   .state = kind == OP_CANCEL ? ST_CANCELLED : b->state,
                                   .tenant = op->tenant,
                                   .route = op->route,
                                   .created_ms = b->created_ms,
                                   .attempts = b->attempts,
                                   .replays = b->replays,
                                   .erase = kind == OP_ERASE};
    op->deadline_ms = clock_mono_ms() + c->cfg->ingress.confirm_timeout_ms;
    op->done = done;
    op->arg = arg;
    pthread_mutex_lock(&c->lock);
    bool refused = c->stopping;
    if (!refused) {
        op->next = c->submitted;
        c->submitted = op;
    }
    pthread_mutex_unlock(&c->lock);
    if (refused) {
        free(op);
        return -1;
    }
    wake(c);
    return 0;
}

int control_cancel(struct control *c, const struct status_brief *b, const char *tenant,
                   control_done_fn done, void *arg)
{
    return submit(c, OP_CANCEL, b, tenant, done, arg);
}

int control_erase(struct control *c, const struct status_brief *b, const char *tenant,
                  control_done_fn done, void *arg)
{
    return submit(c, OP_ERASE, b, tenant, done, arg);
}

static void answer(struct op *op, int status)
{
    if (op->done) op->done(op->arg, status);
    op->done = NULL;
}

/* finish answers op (unless it was), leaves the in-flight list and frees it. */
static void finish(struct control *c, struct op *op, int status)
{
    for (struct op **pp = &c->inflight; *pp; pp = &(*pp)->next)
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    answer(op, status);
    free(op);
}

/* publish_event sends u alone to the events stream (tracked with token). */
static int publish_event(struct control *c, struct status_update *u, void *token)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    u->ts_ms = clock_real_ms();
    int rc = event_begin(&b) || event_append(&b, u) || event_end(&b)
                 ? SESSION_REFUSED
                 : session_publish_events(c->session, &b, c->instance, token);
    buf_free(&b);
    return rc;
}

static int publish_cancel(struct control *c, struct op *op)
{
    struct buf b;
    buf_init(&b, 256);
    int rc = arbiter_cancel_msg(&b, op->id, clock_real_ms())
                 ? SESSION_REFUSED
                 : claims_publish(c->claims, c->session, &b, &op->serial);
    buf_free(&b);
    return rc;
}

static struct op *take_submitted(struct control *c)
{
    pthread_mutex_lock(&c->lock);
    struct op *op = c->submitted;
    c->submitted = NULL;
    pthread_mutex_unlock(&c->lock);
    return op;
}

/* start publishes the operations submitted since the last turn, and those
 * that waited for the session: a connection being set up (or set up again)
 * delays an operation instead of failing it. */
static void start(struct control *c)
{
    for (struct op *op = take_submitted(c), *next; op; op = next) {
        next = op->next;
        op->next = c->inflight;
        c->inflight = op;
    }
    if (!session_up(c->session)) return;
    for (struct op *op = c->inflight, *next; op; op = next) {
        next = op->next;
        if (op->sent) continue;
        op->sent = true;
        int rc = op->kind == OP_CANCEL ? publish_cancel(c, op) : publish_event(c, &op->u, op);
        if (rc != SESSION_OK) finish(c, op, 503);
    }
}

static struct op *find_cancel(struct control *c, uint64_t serial)
{
    for (struct op *op = c->inflight; op; op = op->next)
        if (op->kind == OP_CANCEL && op->serial == serial) return op;
    return NULL;
}

static void on_cancel_verdict(void *arg, const char *id, bool effective)
{
    (void)id;
    ((struct control *)arg)->verdict = effective;
}

/* decide answers a cancel of ours read back from the stream. An effective
 * one is the request's final state: here at once, everywhere through the
 * events stream (workers that meet it publish the same state). */
static void decide(struct control *c, struct op *op, bool effective)
{
    metric_add(effective ? c->m_cancels : c->m_refused, 1);
    if (effective) {
        op->u.ts_ms = clock_real_ms();
        if (status_index_apply(c->index, &op->u) < 0) log_warn("status index: out of memory");
        if (publish_event(c, &op->u, NULL) != SESSION_OK)
            log_warn("request %s: cancelled, but its final event was not sent", op->id);
    }
    finish(c, op, effective ? 200 : 409);
}

/* on_own answers a cancel of ours read back, with the verdict the arbiter
 * has just reported. */
static void on_own(void *arg, uint64_t serial)
{
    struct control *c = arg;
    struct op *op = c->verdict >= 0 ? find_cancel(c, serial) : NULL;
    if (op) decide(c, op, c->verdict == 1);
}

static void on_delivery(void *arg, struct mq_event *ev)
{
    struct control *c = arg;
    c->verdict = -1;
    claims_on_delivery(c->claims, c->session, ev);
}

/* on_confirm settles an erasure; one answered 503 at its deadline still
 * applies here if the broker took it after all (as on every other replica). */
static void on_confirm(void *arg, void *token, enum confirm_outcome outcome)
{
    struct control *c = arg;
    struct op *op = token;
    if (outcome == CONFIRM_ACKED && status_index_apply(c->index, &op->u) < 0)
        log_warn("status index: out of memory");
    finish(c, op, outcome == CONFIRM_ACKED ? 200 : 503);
}

static int on_up(void *arg, struct mq *mq)
{
    struct control *c = arg;
    if (claims_on_up(c->claims, mq) < 0) return -1;
    atomic_store(&c->up, true);
    return 0;
}

static void on_down(void *arg)
{
    struct control *c = arg;
    atomic_store(&c->up, false);
    claims_on_down(c->claims);
}

static void heartbeat(struct control *c, int64_t now)
{
    if (now < c->next_beat_ms || !session_up(c->session)) return;
    c->next_beat_ms = now + LIMITS_HEARTBEAT_MS;
    struct buf b;
    buf_init(&b, 256);
    if (event_heartbeat(&b, c->instance, clock_real_ms()) == 0 &&
        session_publish_events(c->session, &b, c->instance, NULL) == SESSION_DOWN)
        log_warn("control: a heartbeat was not sent");
    buf_free(&b);
}

/* reap answers 503 to operations past their deadline. A published erasure
 * stays until the session reports its publish (it belongs to the session). */
static void reap(struct control *c, int64_t now)
{
    for (struct op *op = c->inflight, *next; op; op = next) {
        next = op->next;
        if (now < op->deadline_ms || !op->done) continue;
        if (op->kind == OP_CANCEL || !op->sent)
            finish(c, op, 503);
        else
            answer(op, 503);
    }
}

static int timeout(const struct control *c, int64_t now)
{
    int64_t until =
        now + claims_timeout_ms(c->claims, now, session_timeout_ms(c->session, now, TICK_MS));
    if (c->next_beat_ms < until) until = c->next_beat_ms;
    for (const struct op *op = c->inflight; op; op = op->next)
        if (op->done && op->deadline_ms < until) until = op->deadline_ms;
    return until > now ? (int)(until - now) : 0;
}

static bool stopping(struct control *c)
{
    pthread_mutex_lock(&c->lock);
    bool stop = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return stop;
}

static void turn(struct control *c)
{
    struct pollfd fds[2] = {{.fd = c->wake_fd, .events = POLLIN},
                            {.fd = session_fd(c->session), .events = POLLIN}};
    if (poll(fds, 2, timeout(c, clock_mono_ms())) > 0 && (fds[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t n = read(c->wake_fd, &v, sizeof v);
        (void)n;
    }
    session_run(c->session, clock_mono_ms());
    claims_turn(c->claims, c->session, clock_mono_ms());
    start(c);
    heartbeat(c, clock_mono_ms());
    reap(c, clock_mono_ms());
}

static void *control_main(void *arg)
{
    struct control *c = arg;
    while (!stopping(c))
        turn(c);
    atomic_store(&c->up, false);
    session_free(c->session); /* reports erasures in flight lost: 503 */
    c->session = NULL;
    for (struct op *op = take_submitted(c), *next; op; op = next) {
        next = op->next;
        answer(op, 503);
        free(op);
    }
    while (c->inflight)
        finish(c, c->inflight, 503);
    return NULL;
}

static struct session *open_session(struct control *c)
{
    struct session_params sp = {
        .cfg = c->cfg,
        .name = "sluice-ingress control",
        .confirms = true,
        .hooks = {.arg = c,
                  .on_up = on_up,
                  .on_down = on_down,
                  .on_delivery = on_delivery,
                  .on_confirm = on_confirm},
    };
    return session_new(&sp);
}

struct control *control_new(const struct cfg *cfg, struct metrics *metrics,
                            struct status_index *index, const char *instance)
{
    struct control *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfg = cfg;
    c->index = index;
    snprintf(c->instance, sizeof c->instance, "%s", instance);
    c->m_cancels = metrics_counter(metrics, "sluice_ingress_cancels_total", "Cancels by verdict.",
                                   "verdict=\"cancelled\"");
    c->m_refused = metrics_counter(metrics, "sluice_ingress_cancels_total", "Cancels by verdict.",
                                   "verdict=\"not_cancellable\"");
    struct claims_params cp = {
        .cfg = cfg, .instance = instance, .sink = {c, NULL, on_cancel_verdict}, .on_own = on_own};
    c->claims = claims_new(&cp);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->session = open_session(c);
    if (!c->m_cancels || !c->m_refused || !c->claims || c->wake_fd < 0 || !c->session ||
        pthread_mutex_init(&c->lock, NULL) != 0)
        goto err;
    if (pthread_create(&c->thread, NULL, control_main, c) != 0) {
        pthread_mutex_destroy(&c->lock);
        goto err;
    }
    return c;
err:
    session_free(c->session);
    claims_free(c->claims);
    if (c->wake_fd >= 0) close(c->wake_fd);
    free(c);
    return NULL;
}

void control_drain(struct control *c)
{
    pthread_mutex_lock(&c->lock);
    bool running = !c->stopping;
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    if (!running) return;
    wake(c);
    pthread_join(c->thread, NULL);
}

void control_free(struct control *c)
{
    if (!c) return;
    control_drain(c);
    pthread_mutex_destroy(&c->lock);
    claims_free(c->claims);
    close(c->wake_fd);
    free(c);
}
