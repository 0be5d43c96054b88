/* events.c: consumes the events stream into the status index (see events.h),
 * over a broker session of its own (common/session.h) on the events thread. */
#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "session.h"
#include "topology.h"

#define EVENTS_PREFETCH 2000
#define EXPIRE_EVERY_MS 10000
#define TICK_MS 1000 /* longest sleep: heartbeats need servicing */

struct events {
    const struct cfg *cfg;
    struct status_index *index;
    struct activity *activity; /* the status page's counters, fed with final states */
    const struct events_observer *obs;
    void *obs_arg;
    struct session *session; /* the events thread's */
    pthread_t thread;
    int stop_fd;
    atomic_bool caught_up;
    char queue[TOPO_NAME_MAX];
    char nonce[ID_LEN + 1];
    char instance[ID_LEN + 1];
    int64_t next_offset; /* first stream offset not yet applied; -1: from the start */
    uint64_t last_tag;   /* newest delivery of this turn, acked at its end; 0: none */
    int64_t cur_offset;  /* stream offset of the message being applied; -1: unknown */
    struct metric *m_events, *m_malformed, *m_entries, *m_text_bytes, *m_let_go;
};

static void on_update(void *arg, const struct status_update *u)
{
    struct events *e = arg;
    /* The status page counts each request's first final state once, as the
     * index keeps it: a redelivered request's second verdict is not counted. */
    bool first_final = ST_FINAL(u->state) && u->tenant && u->id;
    if (first_final) {
        int before = status_index_state(e->index, u->id, u->tenant);
        first_final = before < 0 || !ST_FINAL(before);
    }
    if (status_index_apply_at(e->index, u, e->cur_offset) < 0)
        log_warn("status index: out of memory");
    if (first_final) activity_note(e->activity, u);
    if (e->obs && e->obs->on_update) e->obs->on_update(e->obs_arg, u);
    metric_add(e->m_events, 1);
}

static void on_heartbeat(void *arg, const char *instance, int64_t ts_ms)
{
    struct events *e = arg;
    if (e->obs && e->obs->on_heartbeat) e->obs->on_heartbeat(e->obs_arg, instance, ts_ms);
}

static void on_marker(void *arg, const char *nonce)
{
    struct events *e = arg;
    if (strcmp(nonce, e->nonce) == 0 && !atomic_load(&e->caught_up)) {
        atomic_store(&e->caught_up, true);
        log_info("events: caught up with the stream (%zu statuses known)",
                 status_index_count(e->index));
    }
}

static bool from_this_process(const struct events *e, const amqp_message_t *msg)
{
    amqp_bytes_t app = msg->properties.app_id;
    return (msg->properties._flags & AMQP_BASIC_APP_ID_FLAG) && app.len == ID_LEN &&
           memcmp(app.bytes, e->instance, ID_LEN) == 0;
}

static void apply_delivery(struct events *e, const amqp_message_t *msg)
{
    const struct event_sink sink = {e, on_update, on_marker, on_heartbeat};
    const amqp_field_value_t *off = NULL;
    if (msg->properties._flags & AMQP_BASIC_HEADERS_FLAG)
        off = mq_header(&msg->properties.headers, "x-stream-offset");
    /* The index remembers where each final event sits, to read back a
     * result it let go of (ingress/readback.h). */
    e->cur_offset = off && off->kind == AMQP_FIELD_KIND_I64 ? off->value.i64 : -1;
    if (!from_this_process(e, msg) && event_parse_all(msg->body.bytes, msg->body.len, &sink) < 0)
        metric_add(e->m_malformed, 1);
    if (e->cur_offset >= 0) e->next_offset = e->cur_offset + 1;
}

static int publish_marker(struct events *e, struct mq *mq)
{
    if (id_new(e->nonce, clock_real_ms()) < 0) return -1;
    struct buf b;
    buf_init(&b, 256);
    int rc = event_marker(&b, e->nonce);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json")};
    if (rc == 0) rc = mq_publish(mq, "", e->queue, &props, b.data, b.len, NULL);
    buf_free(&b);
    return rc;
}

/* on_up consumes the stream from where the last connection stopped (from
 * the start of retention the first time) and publishes a fresh marker. */
static int on_up(void *arg, struct mq *mq)
{
    struct events *e = arg;
    char offset[32] = "first";
    if (e->next_offset >= 0) snprintf(offset, sizeof(offset), "%" PRId64, e->next_offset);
    if (mq_qos(mq, EVENTS_PREFETCH) < 0 || mq_consume(mq, e->queue, offset) < 0 ||
        publish_marker(e, mq) < 0) {
        log_error("events: cannot consume the events stream");
        return -1;
    }
    log_info("events: consuming %s from offset %s", e->queue, offset);
    return 0;
}

static void on_down(void *arg)
{
    struct events *e = arg;
    atomic_store(&e->caught_up, false);
    e->last_tag = 0; /* that connection's deliveries cannot be acked any more */
}

static void on_delivery(void *arg, struct mq_event *ev)
{
    struct events *e = arg;
    if (ev->kind == MQ_CANCELLED) {
        session_break(e->session, "the broker cancelled the stream consumer (stream deleted?)");
        return;
    }
    apply_delivery(e, &ev->msg);
    e->last_tag = ev->tag;
}

/* turn waits for frames (or a stop), applies every delivery already
 * readable and acks them together: streams need acks only to grant the
 * consumer more credit. Returns false when asked to stop. */
static bool turn(struct events *e, int64_t *next_expire)
{
    struct pollfd fds[2] = {{.fd = e->stop_fd, .events = POLLIN},
                            {.fd = session_fd(e->session), .events = POLLIN}};
    int timeout = session_timeout_ms(e->session, clock_mono_ms(), TICK_MS);
    if (poll(fds, 2, timeout) > 0 && (fds[0].revents & POLLIN)) return false;
    session_run(e->session, clock_mono_ms());
    struct mq *mq = session_mq(e->session);
    if (mq && e->last_tag && mq_ack(mq, e->last_tag, true) < 0)
        session_break(e->session, "acking the stream failed");
    e->last_tag = 0;
    metric_set(e->m_entries, (int64_t)status_index_count(e->index));
    struct status_text_stats st;
    status_index_text_stats(e->index, &st);
    metric_set(e->m_text_bytes, (int64_t)st.text_bytes);
    metric_set(e->m_let_go, (int64_t)st.spilled);
    if (clock_mono_ms() >= *next_expire) {
        status_index_expire(e->index, clock_real_ms());
        if (e->obs && e->obs->on_expire) e->obs->on_expire(e->obs_arg, clock_real_ms());
        *next_expire = clock_mono_ms() + EXPIRE_EVERY_MS;
    }
    if (e->obs && e->obs->on_tick) e->obs->on_tick(e->obs_arg, atomic_load(&e->caught_up));
    return true;
}

static void *events_main(void *arg)
{
    struct events *e = arg;
    int64_t next_expire = clock_mono_ms() + EXPIRE_EVERY_MS;
    while (turn(e, &next_expire)) {
    }
    return NULL;
}

struct events *events_new(const struct cfg *cfg, struct metrics *metrics,
                          struct status_index *index, struct activity *activity,
                          const char *instance, const struct events_observer *obs, void *obs_arg)
{
    struct events *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->cfg = cfg;
    e->obs = obs;
    e->obs_arg = obs_arg;
    e->index = index;
    e->activity = activity;
    e->next_offset = -1;
    snprintf(e->instance, sizeof(e->instance), "%s", instance);
    topo_name(cfg, TOPO_EVENTS, e->queue, sizeof(e->queue));
    e->m_events = metrics_counter(metrics, "sluice_ingress_events_applied_total",
                                  "Status events applied from the events stream.", NULL);
    e->m_malformed = metrics_counter(metrics, "sluice_ingress_events_malformed_total",
                                     "Events stream messages that could not be parsed.", NULL);
    e->m_entries = metrics_gauge(metrics, "sluice_ingress_status_entries",
                                 "Requests whose status this replica holds.", NULL);
    e->m_text_bytes = metrics_gauge(metrics, "sluice_ingress_status_text_bytes",
                                    "Bytes of results and errors the status index holds.", NULL);
    e->m_let_go = metrics_gauge(metrics, "sluice_ingress_status_results_let_go",
                                "Results the status index let go of past max_status_bytes "
                                "(read back from the events stream when asked for).",
                                NULL);
    struct session_params sp = {
        .cfg = cfg,
        .name = "sluice-ingress events",
        .hooks = {.arg = e, .on_up = on_up, .on_down = on_down, .on_delivery = on_delivery},
    };
    e->session = session_new(&sp);
    e->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (e->stop_fd < 0 || !e->session || !e->m_events || !e->m_malformed || !e->m_entries ||
        !e->m_text_bytes || !e->m_let_go || pthread_create(&e->thread, NULL, events_main, e) != 0) {
        if (e->stop_fd >= 0) close(e->stop_fd);
        session_free(e->session);
        free(e);
        return NULL;
    }
    return e;
}

void events_free(struct events *e)
{
    if (!e) return;
    uint64_t one = 1;
    ssize_t n = write(e->stop_fd, &one, sizeof(one));
    (void)n;
    pthread_join(e->thread, NULL);
    session_free(e->session);
    close(e->stop_fd);
    free(e);
}

bool events_caught_up(struct events *e)
{
    return atomic_load(&e->caught_up);
}
