/* claims.c: reading and writing the claims stream (see claims.h). */
#include "claims.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "id.h"
#include "log.h"
#include "topology.h"

#define CLAIMS_PREFETCH 2000
/* Acks go out once this many deliveries wait, or this long after the
 * oldest: well within the prefetch, so the stream never runs out of credit. */
#define ACK_EVERY 500
#define ACK_AFTER_MS 200

struct claims {
    struct claims_params p;
    char instance[ID_LEN + 1];
    char queue[TOPO_NAME_MAX];
    struct arbiter *arbiter; /* NULL after running out of memory: rebuilt on the next up */
    uint64_t next_serial;
    int64_t next_offset; /* -1: from the stream's start */
    uint64_t last_tag;   /* newest delivery not yet acked; 0: none */
    unsigned unacked;
    int64_t ack_due_ms;
};

static struct arbiter *new_arbiter(const struct cfg *cfg)
{
    /* Claims outnumber requests (a redelivery claims again): room for two each. */
    return arbiter_new((size_t)cfg->ingress.max_status_entries * 2,
                       (size_t)cfg->ingress.max_status_entries,
                       cfg->ingress.status_retention_s * 1000);
}

struct claims *claims_new(const struct claims_params *p)
{
    struct claims *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->p = *p;
    snprintf(c->instance, sizeof c->instance, "%s", p->instance);
    c->p.instance = c->instance;
    c->next_offset = -1;
    topo_name(p->cfg, TOPO_CLAIMS, c->queue, sizeof c->queue);
    c->arbiter = new_arbiter(p->cfg);
    if (!c->arbiter) {
        free(c);
        return NULL;
    }
    return c;
}

void claims_free(struct claims *c)
{
    if (!c) return;
    arbiter_free(c->arbiter);
    free(c);
}

int claims_on_up(struct claims *c, struct mq *mq)
{
    char offset[32] = "first";
    if (c->next_offset >= 0) snprintf(offset, sizeof offset, "%" PRId64, c->next_offset);
    if (!c->arbiter) c->arbiter = new_arbiter(c->p.cfg);
    if (!c->arbiter || mq_qos(mq, CLAIMS_PREFETCH) < 0 || mq_consume(mq, c->queue, offset) < 0)
        return -1;
    return 0;
}

void claims_on_down(struct claims *c)
{
    c->last_tag = 0; /* that connection's deliveries cannot be acked any more */
    c->unacked = 0;
}

/* ours returns the serial of a message this reader's owner published, or 0. */
static uint64_t ours(const struct claims *c, const amqp_basic_properties_t *p)
{
    if (!(p->_flags & AMQP_BASIC_APP_ID_FLAG) || !(p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) ||
        p->app_id.len != ID_LEN || memcmp(p->app_id.bytes, c->instance, ID_LEN) != 0 ||
        p->correlation_id.len >= 24)
        return 0;
    char text[24];
    memcpy(text, p->correlation_id.bytes, p->correlation_id.len);
    text[p->correlation_id.len] = '\0';
    return strtoull(text, NULL, 10);
}

/* apply feeds one message to the arbiter. Out of memory, the arbiter may be
 * half fed: it is dropped and the stream read again from its start. */
static void apply(struct claims *c, struct session *s, const amqp_message_t *msg)
{
    int rc = arbiter_feed(c->arbiter, msg->body.bytes, msg->body.len, &c->p.sink);
    if (rc == -ENOMEM) {
        arbiter_free(c->arbiter);
        c->arbiter = NULL;
        c->next_offset = -1;
        session_break(s, "out of memory in the arbiter: reading the claims stream again");
        return;
    }
    if (rc < 0) log_warn("claims: a malformed message was skipped");
    uint64_t serial = ours(c, &msg->properties);
    if (serial && c->p.on_own) c->p.on_own(c->p.sink.arg, serial);
}

void claims_on_delivery(struct claims *c, struct session *s, struct mq_event *ev)
{
    if (ev->kind == MQ_CANCELLED) {
        session_break(s, "the broker cancelled the claims consumer (stream deleted?)");
        return;
    }
    if (!c->arbiter) return; /* a teardown is due */
    apply(c, s, &ev->msg);
    const amqp_basic_properties_t *p = &ev->msg.properties;
    const amqp_field_value_t *off =
        (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? mq_header(&p->headers, "x-stream-offset") : NULL;
    if (off && off->kind == AMQP_FIELD_KIND_I64) c->next_offset = off->value.i64 + 1;
    if (!c->unacked++) c->ack_due_ms = clock_mono_ms() + ACK_AFTER_MS;
    c->last_tag = ev->tag;
}

void claims_turn(struct claims *c, struct session *s, int64_t now_ms)
{
    struct mq *mq = session_mq(s);
    if (!mq || !c->last_tag || (c->unacked < ACK_EVERY && now_ms < c->ack_due_ms)) return;
    if (mq_ack(mq, c->last_tag, true) < 0) session_break(s, "acking the claims stream failed");
    c->last_tag = 0;
    c->unacked = 0;
}

int claims_timeout_ms(const struct claims *c, int64_t now_ms, int max_ms)
{
    if (!c->last_tag) return max_ms;
    int64_t left = c->ack_due_ms - now_ms;
    return left <= 0 ? 0 : left < max_ms ? (int)left : max_ms;
}

int claims_publish(struct claims *c, struct session *s, const struct buf *msg, uint64_t *serial)
{
    char text[24];
    *serial = ++c->next_serial;
    snprintf(text, sizeof text, "%" PRIu64, *serial);
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG,
        .content_type = amqp_cstring_bytes("application/json"),
        .delivery_mode = AMQP_DELIVERY_PERSISTENT,
        .app_id = amqp_cstring_bytes(c->instance),
        .correlation_id = amqp_cstring_bytes(text)};
    return session_publish(s, "", c->queue, &props, msg->data, msg->len, NULL);
}
