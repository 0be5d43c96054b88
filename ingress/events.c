/* events.c: consumes the events stream into the status index (see events.h). */
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

#include "app.h"
#include "backoff.h"
#include "clock.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "mq.h"

#define EVENTS_PREFETCH 2000
#define EXPIRE_EVERY_MS 10000

struct events {
    const struct cfg *cfg;
    struct status_index *index;
    struct activity *activity; /* the status page's counters, fed with final states */
    pthread_t thread;
    int stop_fd;
    atomic_bool caught_up;
    char queue[160];
    char nonce[ID_LEN + 1];
    char instance[ID_LEN + 1];
    int64_t next_offset; /* first stream offset not yet applied; -1: from the start */
    struct metric *m_events, *m_malformed, *m_entries;
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
    if (status_index_apply(e->index, u) < 0) log_warn("status index: out of memory");
    if (first_final) activity_note(e->activity, u);
    metric_add(e->m_events, 1);
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
    if (!from_this_process(e, msg) &&
        event_parse(msg->body.bytes, msg->body.len, on_update, on_marker, e) < 0)
        metric_add(e->m_malformed, 1);
    const amqp_field_value_t *off = NULL;
    if (msg->properties._flags & AMQP_BASIC_HEADERS_FLAG)
        off = mq_header(&msg->properties.headers, "x-stream-offset");
    if (off && off->kind == AMQP_FIELD_KIND_I64) e->next_offset = off->value.i64 + 1;
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

static struct mq *connect_stream(struct events *e)
{
    char err[512] = "", offset[32] = "first";
    struct mq *mq = NULL;
    if (e->next_offset >= 0) snprintf(offset, sizeof(offset), "%" PRId64, e->next_offset);
    if (mq_open(&mq, e->cfg->amqp_url, "sluice-ingress events", 5000, err, sizeof(err)) < 0 ||
        mq_declare_topology(mq, e->cfg->namespace, e->cfg->ingress.status_retention_s,
                            e->cfg->queue_type, e->cfg->delivery_limit, err, sizeof(err)) < 0 ||
        mq_qos(mq, EVENTS_PREFETCH) < 0 || mq_consume(mq, e->queue, offset) < 0 ||
        publish_marker(e, mq) < 0) {
        log_error("events: %s; retrying", err[0] ? err : "cannot consume the events stream");
        mq_close(mq);
        return NULL;
    }
    log_info("events: consuming %s from offset %s", e->queue, offset);
    return mq;
}

/* drain applies every delivery already readable and acks them together:
 * streams need acks only to grant the consumer more credit. */
static int drain(struct events *e, struct mq *mq)
{
    struct mq_event ev;
    uint64_t last = 0;
    int rc;
    while ((rc = mq_next(mq, &ev, 0)) > 0) {
        if (ev.kind == MQ_DELIVERY) {
            apply_delivery(e, &ev.msg);
            last = ev.tag;
        } else if (ev.kind == MQ_CANCELLED) {
            log_error("events: the broker cancelled the stream consumer (stream deleted?)");
            rc = -1;
        }
        mq_event_release(&ev);
        if (rc < 0) break;
    }
    if (last && rc >= 0) rc = mq_ack(mq, last, true);
    metric_set(e->m_entries, (int64_t)status_index_count(e->index));
    return rc;
}

static bool stop_requested(struct events *e, int timeout_ms)
{
    struct pollfd fd = {.fd = e->stop_fd, .events = POLLIN};
    return poll(&fd, 1, timeout_ms) > 0;
}

static void serve(struct events *e, struct mq *mq)
{
    int64_t next_expire = clock_mono_ms() + EXPIRE_EVERY_MS;
    for (;;) {
        struct pollfd fds[2] = {{.fd = e->stop_fd, .events = POLLIN},
                                {.fd = mq_fd(mq), .events = POLLIN}};
        if (!mq_buffered(mq) && poll(fds, 2, 1000) < 0 && errno != EINTR) return;
        if (fds[0].revents & POLLIN) return;
        int rc = drain(e, mq);
        if (rc < 0) {
            log_error("events: broker connection lost: %s", mq_strerror(rc));
            return;
        }
        if (clock_mono_ms() >= next_expire) {
            status_index_expire(e->index, clock_real_ms());
            next_expire = clock_mono_ms() + EXPIRE_EVERY_MS;
        }
    }
}

static void *events_main(void *arg)
{
    struct events *e = arg;
    uint64_t rnd = (uint64_t)clock_real_ms() | 1;
    int failures = 0;
    for (;;) {
        struct mq *mq = connect_stream(e);
        if (mq) {
            failures = 0;
            serve(e, mq);
            atomic_store(&e->caught_up, false);
            mq_close(mq);
        }
        long delay = 100 + backoff_delay_ms(100, 5000, ++failures, backoff_rand(&rnd));
        if (stop_requested(e, mq ? 0 : (int)delay)) break;
    }
    return NULL;
}

struct events *events_new(const struct cfg *cfg, struct metrics *metrics,
                          struct status_index *index, struct activity *activity,
                          const char *instance)
{
    struct events *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->cfg = cfg;
    e->index = index;
    e->activity = activity;
    e->next_offset = -1;
    snprintf(e->instance, sizeof(e->instance), "%s", instance);
    mq_name(e->queue, sizeof(e->queue), cfg->namespace, "events");
    e->m_events = metrics_counter(metrics, "sluice_ingress_events_applied_total",
                                  "Status events applied from the events stream.", NULL);
    e->m_malformed = metrics_counter(metrics, "sluice_ingress_events_malformed_total",
                                     "Events stream messages that could not be parsed.", NULL);
    e->m_entries = metrics_gauge(metrics, "sluice_ingress_status_entries",
                                 "Requests whose status this replica holds.", NULL);
    e->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (e->stop_fd < 0 || !e->m_events || !e->m_malformed || !e->m_entries ||
        pthread_create(&e->thread, NULL, events_main, e) != 0) {
        if (e->stop_fd >= 0) close(e->stop_fd);
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
    close(e->stop_fd);
    free(e);
}

bool events_caught_up(struct events *e)
{
    return atomic_load(&e->caught_up);
}
