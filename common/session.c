/* session.c: a broker session's lifecycle (see session.h). */
#include "session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "nodes.h"
#include "topology.h"

#define SESSION_CONNECT_TIMEOUT_MS 5000
/* A publish the broker has neither confirmed nor refused this long after it
 * was sent breaks the connection, so that it is reported lost and its owner
 * goes on (a worker's deliveries come back and are called again) instead of
 * waiting for ever: a stream or quorum queue whose leader fails over can
 * drop a confirm on a connection that stays up. */
#define SESSION_CONFIRM_STALL_MS 15000
/* Reconnects wait 100 ms plus a backoff of 100 ms doubling up to 5 s, with
 * full jitter, so a fleet that lost its broker does not come back in step. */
#define SESSION_RETRY_MIN_MS 100
#define SESSION_RETRY_BASE_MS 100
#define SESSION_RETRY_CAP_MS 5000
/* SESSION_NACKS_MAX nacks in a row, without an ack between them, make the
 * session reconnect. sluice declares no length limit, so a healthy broker
 * never nacks, and one kind of nack does not go away on its own: RabbitMQ
 * 3.10 gives a channel's first publish to a quorum queue to the node the
 * queue's record names as leader, and a channel opened just after that node
 * died (a client failing over within the election) gets every publish to
 * that queue refused for as long as the node stays down (measured: two runs
 * in three of the cluster suite, until the node returned). A new channel,
 * opened once the new leader is recorded, is served. */
#define SESSION_NACKS_MAX 3

struct session {
    struct session_params p;
    char name[128];
    struct nodes nodes;     /* amqp_url's nodes; the current one is connected or tried next */
    struct mq *mq;          /* NULL while down */
    struct confirms cf;     /* tracked publishes of this connection */
    struct confirms cf_str; /* the same on its stream channel (mq.h: MQ_STREAM_CHANNEL) */
    int failures;           /* connection attempts and losses since the last good connect */
    int nacks;              /* nacks of tracked publishes since the last ack of one */
    uint64_t reported;      /* tracked publishes reported, ever */
    int64_t connect_at;     /* monotonic time of the next attempt, while down */
    int64_t stats_at;       /* monotonic time of the next statistics poll, while up */
    uint64_t rnd;
    char events[TOPO_NAME_MAX];
    long *retry_delays; /* retry queues declared on this connection */
    size_t n_retry, cap_retry;
    char broke_why[128]; /* set by session_break */
};

struct session *session_new(const struct session_params *p)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->p = *p;
    snprintf(s->name, sizeof(s->name), "%s", p->name ? p->name : "sluice");
    s->p.name = s->name;
    char err[128];
    if (nodes_parse(&s->nodes, p->cfg->amqp_url, err, sizeof(err)) < 0) {
        log_error("%s: amqp_url: %s", s->name, err);
        free(s);
        return NULL;
    }
    s->rnd = (uint64_t)clock_real_us() ^ ((uint64_t)(uintptr_t)s << 16);
    if (!s->rnd) s->rnd = 1;
    /* A random first node spreads a fleet over the cluster's nodes. */
    nodes_start(&s->nodes, backoff_rand(&s->rnd));
    s->connect_at = clock_mono_ms();
    topo_name(p->cfg, TOPO_EVENTS, s->events, sizeof(s->events));
    confirms_init(&s->cf);
    confirms_init(&s->cf_str);
    return s;
}

static void report(void *arg, void *token, enum confirm_outcome o)
{
    struct session *s = arg;
    s->reported++;
    if (s->p.hooks.on_confirm) s->p.hooks.on_confirm(s->p.hooks.arg, token, o);
}

/* retry_later moves to the next node and schedules the attempt after the
 * backoff, which grows with the failures since the last good connection
 * whichever node they were on. */
static void retry_later(struct session *s, int64_t now)
{
    nodes_next(&s->nodes);
    long delay =
        SESSION_RETRY_MIN_MS + backoff_delay_ms(SESSION_RETRY_BASE_MS, SESSION_RETRY_CAP_MS,
                                                ++s->failures, backoff_rand(&s->rnd));
    s->connect_at = now + delay;
}

/* teardown closes the connection, reports its tracked publishes lost, tells
 * the owner and schedules the next attempt, on the next node. */
static void teardown(struct session *s, int64_t now)
{
    bool failed = mq_broken(s->mq) || s->broke_why[0];
    if (s->broke_why[0]) log_error("%s: %s: reconnecting", s->name, s->broke_why);
    mq_close(s->mq);
    s->mq = NULL;
    s->broke_why[0] = '\0';
    s->n_retry = 0;
    confirms_lose(&s->cf, report, s);
    confirms_lose(&s->cf_str, report, s);
    if (s->p.hooks.on_down) s->p.hooks.on_down(s->p.hooks.arg);
    if (failed) retry_later(s, now);
}

void session_free(struct session *s)
{
    if (!s) return;
    if (s->mq) teardown(s, clock_mono_ms());
    confirms_free(&s->cf);
    confirms_free(&s->cf_str);
    nodes_free(&s->nodes);
    free(s->retry_delays);
    free(s);
}

bool session_up(const struct session *s)
{
    return s->mq != NULL;
}

const char *session_node(const struct session *s)
{
    return nodes_label(&s->nodes);
}

int session_fd(const struct session *s)
{
    return s->mq ? mq_fd(s->mq) : -1;
}

static bool broken(const struct session *s)
{
    return s->mq && (mq_broken(s->mq) || s->broke_why[0]);
}

/* confirms_of is the confirms of channel's publishes. */
static struct confirms *confirms_of(struct session *s, uint16_t channel)
{
    return channel == MQ_STREAM_CHANNEL ? &s->cf_str : &s->cf;
}

/* oldest_unconfirmed gives when the oldest publish still waiting for its
 * confirm, on either channel, was sent. */
static bool oldest_unconfirmed(const struct session *s, int64_t *sent_ms)
{
    int64_t a, b;
    bool has_a = confirms_oldest(&s->cf, &a), has_b = confirms_oldest(&s->cf_str, &b);
    if (!has_a && !has_b) return false;
    *sent_ms = !has_a ? b : !has_b ? a : a < b ? a : b;
    return true;
}

int session_timeout_ms(const struct session *s, int64_t now, int max_ms)
{
    int64_t until = now + max_ms;
    if (!s->mq && s->connect_at < until) until = s->connect_at;
    if (s->mq && s->p.n_stats_queues && s->stats_at < until) until = s->stats_at;
    int64_t sent;
    if (s->mq && oldest_unconfirmed(s, &sent) && sent + SESSION_CONFIRM_STALL_MS < until)
        until = sent + SESSION_CONFIRM_STALL_MS;
    if (broken(s) || (s->mq && mq_buffered(s->mq))) until = now;
    return until > now ? (int)(until - now) : 0;
}

/* open_connection opens, declares and selects confirms, then lets the owner set up. */
static void open_connection(struct session *s, int64_t now)
{
    char err[512] = "";
    struct mq *mq = NULL;
    const struct cfg *cfg = s->p.cfg;
    const char *node = nodes_label(&s->nodes);
    if (mq_open(&mq, nodes_url(&s->nodes), s->name, SESSION_CONNECT_TIMEOUT_MS, err, sizeof(err)) <
            0 ||
        topo_declare(mq, cfg, err, sizeof(err)) < 0 ||
        (s->p.confirms && mq_confirm_select(mq) < 0) ||
        mq_open_stream_channel(mq, s->p.confirms) < 0) {
        log_error("%s: %s: %s; retrying%s", s->name, node,
                  err[0] ? err : "cannot set up the channel",
                  s->nodes.n > 1 ? " on the next node" : "");
        mq_close(mq);
        retry_later(s, now);
        return;
    }
    s->mq = mq;
    s->stats_at = now;
    s->nacks = 0;
    if (s->p.hooks.on_up && s->p.hooks.on_up(s->p.hooks.arg, mq) < 0) {
        session_break(s, "setting up the connection failed");
        return;
    }
    s->failures = 0;
    log_info("%s: connected to the broker at %s", s->name, node);
}

static void poll_stats(struct session *s, int64_t now)
{
    if (!s->p.n_stats_queues || now < s->stats_at) return;
    s->stats_at = now + s->p.stats_every_ms;
    for (size_t i = 0; i < s->p.n_stats_queues && !broken(s); i++) {
        uint32_t messages, consumers;
        /* A failed passive declare closes the channel: the session is broken. */
        if (mq_queue_stats(s->mq, s->p.stats_queues[i], &messages, &consumers) == 0 &&
            s->p.hooks.on_stats)
            s->p.hooks.on_stats(s->p.hooks.arg, i, messages, consumers);
    }
}

static void dispatch(struct session *s, struct mq_event *ev)
{
    switch (ev->kind) {
    case MQ_ACK:
    case MQ_NACK: {
        /* Only confirms of tracked publishes count: an untracked one (a
         * worker's report, session_publish_transient) goes elsewhere and
         * must not hide a run of refusals. */
        uint64_t before = s->reported;
        confirms_ack(confirms_of(s, ev->channel), ev->tag, ev->multiple, ev->kind == MQ_ACK, report,
                     s);
        if (s->reported != before) s->nacks = ev->kind == MQ_NACK ? s->nacks + 1 : 0;
        if (s->nacks == SESSION_NACKS_MAX)
            session_break(s, "the broker refused every publish lately (a queue whose leader it "
                             "cannot reach?)");
        break;
    }
    case MQ_RETURN:
        if (!confirms_return(confirms_of(s, ev->channel), ev->msg.properties.message_id))
            log_warn("%s: the broker returned a message no publish of ours matches", s->name);
        break;
    case MQ_DELIVERY:
    case MQ_CANCELLED:
        if (s->p.hooks.on_delivery) s->p.hooks.on_delivery(s->p.hooks.arg, ev);
        break;
    case MQ_NONE:
        break;
    }
}

/* read_frames hands every frame already readable to dispatch. */
static void read_frames(struct session *s)
{
    struct mq_event ev;
    int rc = 0;
    while (!broken(s) && (rc = mq_next(s->mq, &ev, 0)) > 0) {
        dispatch(s, &ev);
        mq_event_release(&ev);
    }
    if (rc < 0) log_error("%s: broker connection lost: %s", s->name, mq_strerror(rc));
}

/* check_stall breaks the connection when a confirm is overdue (see
 * SESSION_CONFIRM_STALL_MS). */
static void check_stall(struct session *s, int64_t now)
{
    int64_t sent;
    if (oldest_unconfirmed(s, &sent) && now - sent >= SESSION_CONFIRM_STALL_MS)
        session_break(s, "a publish got no confirm in 15 s (a queue leader failing over?)");
}

void session_run(struct session *s, int64_t now)
{
    if (broken(s)) teardown(s, now);
    if (!s->mq && now >= s->connect_at) open_connection(s, now);
    if (s->mq && !broken(s)) poll_stats(s, now);
    if (s->mq && !broken(s)) read_frames(s);
    if (s->mq && !broken(s)) check_stall(s, now);
    if (broken(s)) teardown(s, now);
}

void session_break(struct session *s, const char *why)
{
    if (s->mq && !s->broke_why[0]) snprintf(s->broke_why, sizeof(s->broke_why), "%s", why);
}

struct mq *session_mq(struct session *s)
{
    return s->mq;
}

/* publish_tracked publishes on channel (MQ_STREAM_CHANNEL: to the stream
 * key, through the default exchange) and tracks its confirm there. */
static int publish_tracked(struct session *s, uint16_t channel, const char *exchange,
                           const char *key, const amqp_basic_properties_t *props, const void *body,
                           size_t len, void *token)
{
    if (!s->mq || broken(s)) return SESSION_DOWN;
    uint64_t seq;
    int rc = channel == MQ_STREAM_CHANNEL
                 ? mq_publish_stream(s->mq, key, props, body, len, &seq)
                 : mq_publish(s->mq, exchange, key, props, body, len, &seq);
    if (rc < 0 && !mq_broken(s->mq)) {
        log_warn("%s: a message to %s cannot be sent: %s", s->name, key, mq_strerror(rc));
        return SESSION_REFUSED;
    }
    if (rc < 0) {
        log_error("%s: publishing to %s failed: %s", s->name, key, mq_strerror(rc));
        return SESSION_DOWN;
    }
    const amqp_bytes_t *id =
        props && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? &props->message_id : NULL;
    if (token && confirms_add(confirms_of(s, channel), seq, token, id, clock_mono_ms()) < 0) {
        /* Sent, but its confirm could not be matched: start over rather
         * than let the owner wait for it forever. */
        session_break(s, "out of memory tracking a confirm");
        return SESSION_DOWN;
    }
    return SESSION_OK;
}

int session_publish(struct session *s, const char *exchange, const char *key,
                    const amqp_basic_properties_t *props, const void *body, size_t len, void *token)
{
    return publish_tracked(s, MQ_MAIN_CHANNEL, exchange, key, props, body, len, token);
}

int session_publish_transient(struct session *s, const char *exchange, const char *key,
                              const amqp_basic_properties_t *props, const void *body, size_t len)
{
    if (!s->mq || broken(s)) return SESSION_DOWN;
    int rc = mq_publish_ex(s->mq, exchange, key, props, body, len, false, NULL);
    if (rc < 0 && !mq_broken(s->mq)) return SESSION_REFUSED;
    return rc < 0 ? SESSION_DOWN : SESSION_OK;
}

int session_publish_events(struct session *s, const struct buf *msg, const char *app_id,
                           void *token)
{
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    if (app_id) {
        props._flags |= AMQP_BASIC_APP_ID_FLAG;
        props.app_id = amqp_cstring_bytes(app_id);
    }
    return publish_tracked(s, MQ_STREAM_CHANNEL, "", s->events, &props, msg->data, msg->len, token);
}

int session_declare_retry(struct session *s, long delay_ms)
{
    if (!s->mq || broken(s)) return -1;
    for (size_t i = 0; i < s->n_retry; i++)
        if (s->retry_delays[i] == delay_ms) return 0;
    if (s->n_retry == s->cap_retry) {
        size_t cap = s->cap_retry ? s->cap_retry * 2 : 8;
        long *d = realloc(s->retry_delays, cap * sizeof(*d));
        if (!d) {
            session_break(s, "out of memory declaring a retry queue");
            return -1;
        }
        s->retry_delays = d;
        s->cap_retry = cap;
    }
    char err[512];
    if (topo_declare_retry(s->mq, s->p.cfg, delay_ms, err, sizeof(err)) < 0) {
        log_error("%s: %s", s->name, err);
        session_break(s, "declaring a retry queue failed");
        return -1;
    }
    s->retry_delays[s->n_retry++] = delay_ms;
    return 0;
}

void session_cork(struct session *s, bool on)
{
    int v = on;
    if (s->mq) setsockopt(mq_fd(s->mq), IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
}

const struct session_iface session_amqp = {
    .create = session_new,
    .destroy = session_free,
    .fd = session_fd,
    .timeout_ms = session_timeout_ms,
    .run = session_run,
    .cork = session_cork,
    .publish = session_publish,
    .publish_events = session_publish_events,
};
