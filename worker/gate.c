/* gate.c: claims and their read-back (see gate.h). A held batch is a
 * `held` record: the batch, its claim's serial (0 while unpublished) and
 * when it was published, on a list in claim order. */
#include "gate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter.h"
#include "clock.h"
#include "id.h"
#include "log.h"
#include "session.h"
#include "topology.h"

#define CLAIMS_PREFETCH 2000

struct held {
    struct batch *b;
    uint64_t serial;
    int64_t published_us;
    struct held *next;
};

struct gate {
    const struct cfg *cfg;
    struct session *session;
    struct arbiter *arbiter;
    gate_open_fn open;
    void *arg;
    struct held *held;
    char claims[TOPO_NAME_MAX];
    char instance[ID_LEN + 1];
    uint64_t next_serial;
    int64_t next_offset; /* -1: from the stream's start */
    uint64_t last_tag;
    /* The cancelled IDs of the message being fed (claims are at most
     * ARBITER_MAX_CLAIM, cancels rare: a small list). */
    char (*cancelled)[ID_LEN + 1];
    size_t n_cancelled;
    struct buf msg;
    struct metric *m_wait, *m_cancelled;
};

static bool first_attempt(const struct job *job)
{
    return job->env.attempts == 0;
}

/* publish_claim publishes h's claim; false when the session is down. */
static bool publish_claim(struct gate *g, struct held *h)
{
    const char *ids[ARBITER_MAX_CLAIM];
    size_t n = 0;
    for (size_t i = 0; i < h->b->n && n < ARBITER_MAX_CLAIM; i++)
        if (first_attempt(h->b->jobs[i])) ids[n++] = h->b->jobs[i]->env.id;
    char serial[24];
    h->serial = ++g->next_serial;
    snprintf(serial, sizeof serial, "%" PRIu64, h->serial);
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG,
        .content_type = amqp_cstring_bytes("application/json"),
        .delivery_mode = AMQP_DELIVERY_PERSISTENT,
        .app_id = amqp_cstring_bytes(g->instance),
        .correlation_id = amqp_cstring_bytes(serial)};
    buf_reset(&g->msg);
    h->published_us = clock_mono_us();
    if (arbiter_claim_msg(&g->msg, ids, n, clock_real_ms()) < 0 ||
        session_publish(g->session, "", g->claims, &props, g->msg.data, g->msg.len, NULL) !=
            SESSION_OK) {
        h->serial = 0; /* published again once the session is up */
        return false;
    }
    return true;
}

bool gate_hold(struct gate *g, struct batch *b)
{
    bool any = false;
    for (size_t i = 0; i < b->n && !any; i++)
        any = first_attempt(b->jobs[i]);
    if (!any) return false;
    struct held *h = calloc(1, sizeof *h), **tail = &g->held;
    if (!h) {
        /* Without memory to hold it, the batch is called unclaimed: at
         * worst a cancel answered "cancelled" is called anyway (logged). */
        log_error("out of memory holding a batch for its claim: calling it unclaimed");
        return false;
    }
    h->b = b;
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
    if (session_up(g->session)) publish_claim(g, h);
    return true;
}

bool gate_holds(const struct gate *g, const struct batch *b)
{
    for (const struct held *h = g->held; h; h = h->next)
        if (h->b == b) return true;
    return false;
}

void gate_forget(struct gate *g)
{
    while (g->held) {
        struct held *h = g->held;
        g->held = h->next;
        free(h);
    }
}

static void on_claim(void *arg, const char *id, bool cancelled)
{
    struct gate *g = arg;
    if (!cancelled || g->n_cancelled == ARBITER_MAX_CLAIM) return;
    memcpy(g->cancelled[g->n_cancelled++], id, ID_LEN + 1);
}

/* release hands h's batch back with its cancelled jobs marked. */
static void release(struct gate *g, struct held *h)
{
    for (struct held **pp = &g->held; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    struct batch *b = h->b;
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        for (size_t k = 0; first_attempt(job) && k < g->n_cancelled; k++)
            if (!memcmp(job->env.id, g->cancelled[k], ID_LEN)) {
                job->state = ST_CANCELLED;
                job->next = NEXT_FINAL;
                metric_add(g->m_cancelled, 1);
            }
    }
    metric_observe(g->m_wait, (double)(clock_mono_us() - h->published_us) / 1e6);
    free(h);
    g->open(g->arg, b);
}

/* ours returns the serial of a claim this process published, or 0. */
static uint64_t ours(const struct gate *g, const amqp_basic_properties_t *p)
{
    if (!(p->_flags & AMQP_BASIC_APP_ID_FLAG) || !(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) ||
        p->app_id.len != ID_LEN || memcmp(p->app_id.bytes, g->instance, ID_LEN) != 0 ||
        p->correlation_id.len >= 24)
        return 0;
    char text[24];
    memcpy(text, p->correlation_id.bytes, p->correlation_id.len);
    text[p->correlation_id.len] = '\0';
    return strtoull(text, NULL, 10);
}

static void apply(struct gate *g, const amqp_message_t *msg)
{
    const struct arbiter_sink sink = {g, on_claim, NULL};
    g->n_cancelled = 0;
    int rc = arbiter_feed(g->arbiter, msg->body.bytes, msg->body.len, &sink);
    if (rc == -ENOMEM) {
        arbiter_free(g->arbiter); /* half applied: read the stream again */
        g->arbiter = NULL;
        g->next_offset = -1;
        session_break(g->session, "out of memory in the arbiter");
        return;
    }
    if (rc < 0) log_warn("claims: a malformed message was skipped");
    uint64_t serial = ours(g, &msg->properties);
    for (struct held *h = g->held; serial && h; h = h->next)
        if (h->serial == serial) {
            release(g, h);
            break;
        }
}

static void on_delivery(void *arg, struct mq_event *ev)
{
    struct gate *g = arg;
    if (ev->kind == MQ_CANCELLED) {
        session_break(g->session, "the broker cancelled the claims consumer (stream deleted?)");
        return;
    }
    if (!g->arbiter) return;
    apply(g, &ev->msg);
    const amqp_basic_properties_t *p = &ev->msg.properties;
    const amqp_field_value_t *off =
        (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? mq_header(&p->headers, "x-stream-offset") : NULL;
    if (off && off->kind == AMQP_FIELD_KIND_I64) g->next_offset = off->value.i64 + 1;
    g->last_tag = ev->tag;
}

static struct arbiter *new_arbiter(const struct cfg *cfg)
{
    return arbiter_new((size_t)cfg->ingress.max_status_entries * 2,
                       (size_t)cfg->ingress.max_status_entries,
                       cfg->ingress.status_retention_s * 1000);
}

/* on_up consumes the stream from where it stopped and publishes the claims
 * of the batches waiting (those sent on the lost connection too: a claim
 * read twice is harmless, only the first release counts). */
static int on_up(void *arg, struct mq *mq)
{
    struct gate *g = arg;
    char offset[32] = "first";
    if (g->next_offset >= 0) snprintf(offset, sizeof offset, "%" PRId64, g->next_offset);
    if (!g->arbiter) g->arbiter = new_arbiter(g->cfg);
    if (!g->arbiter || mq_qos(mq, CLAIMS_PREFETCH) < 0 || mq_consume(mq, g->claims, offset) < 0)
        return -1;
    return 0;
}

static void on_down(void *arg)
{
    struct gate *g = arg;
    g->last_tag = 0;
    for (struct held *h = g->held; h; h = h->next)
        h->serial = 0;
}

int gate_fd(const struct gate *g)
{
    return session_fd(g->session);
}

int gate_timeout_ms(const struct gate *g, int64_t now_ms, int max_ms)
{
    return session_timeout_ms(g->session, now_ms, max_ms);
}

void gate_run(struct gate *g, int64_t now_ms)
{
    session_run(g->session, now_ms);
    struct mq *mq = session_mq(g->session);
    if (mq && g->last_tag && mq_ack(mq, g->last_tag, true) < 0)
        session_break(g->session, "acking the claims stream failed");
    g->last_tag = 0;
    for (struct held *h = g->held; h && session_up(g->session); h = h->next)
        if (!h->serial && !publish_claim(g, h)) break;
}

struct gate *gate_new(const struct cfg *cfg, struct metrics *metrics, gate_open_fn open, void *arg)
{
    static const double waits[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2};
    struct gate *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->cfg = cfg;
    g->open = open;
    g->arg = arg;
    g->next_offset = -1;
    buf_init(&g->msg, 1 << 20);
    topo_name(cfg, TOPO_CLAIMS, g->claims, sizeof g->claims);
    g->m_wait = metrics_histogram(metrics, "sluice_worker_claim_seconds",
                                  "Time from a batch's claim to reading it back (the wait a "
                                  "batch makes before its calls, so that cancels win or lose).",
                                  NULL, waits, 10);
    g->m_cancelled =
        metrics_counter(metrics, "sluice_worker_cancelled_total",
                        "Requests not called because their client cancelled them.", NULL);
    g->cancelled = calloc(ARBITER_MAX_CLAIM, sizeof *g->cancelled);
    g->arbiter = new_arbiter(cfg);
    struct session_params sp = {
        .cfg = cfg,
        .name = "sluice-worker claims",
        .hooks = {.arg = g, .on_up = on_up, .on_down = on_down, .on_delivery = on_delivery},
    };
    if (id_new(g->instance, clock_real_ms()) < 0 || !g->m_wait || !g->m_cancelled ||
        !g->cancelled || !g->arbiter || !(g->session = session_new(&sp))) {
        gate_free(g);
        return NULL;
    }
    return g;
}

void gate_free(struct gate *g)
{
    if (!g) return;
    session_free(g->session);
    gate_forget(g);
    arbiter_free(g->arbiter);
    buf_free(&g->msg);
    free(g->cancelled);
    free(g);
}
