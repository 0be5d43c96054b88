/* mq.h: one AMQP connection with one channel, on top of rabbitmq-c 0.11: the
 * wire level. It opens and logs in with timeouts, declares exchanges and
 * queues (what to declare is common/topology.c's business), publishes with
 * publisher confirms, consumes, and turns incoming frames into events
 * (deliveries, confirms, returns) that an event loop reads without blocking.
 * Its lifecycle (reconnects, confirm tracking) is common/session.c's.
 * rabbitmq-c is not thread-safe: a struct mq belongs to one thread. */
#ifndef SLUICE_MQ_H
#define SLUICE_MQ_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mq;

enum mq_kind {
    MQ_NONE = 0,  /* nothing (or a frame the caller need not see) */
    MQ_DELIVERY,  /* a consumed message: tag, redelivered, msg */
    MQ_ACK,       /* publisher confirm: tag, multiple */
    MQ_NACK,      /* publisher negative confirm: tag, multiple */
    MQ_RETURN,    /* a mandatory publish was unroutable: msg (its message_id names it) */
    MQ_CANCELLED, /* the broker cancelled our consumer (queue deleted) */
};

/* MQ_TAG_MAX bounds a consumer tag an event reports (longer ones are cut). */
#define MQ_TAG_MAX 64

struct mq_event {
    enum mq_kind kind;
    uint16_t channel; /* ACK, NACK, RETURN: the channel of the publish (MQ_STREAM_CHANNEL or not) */
    uint64_t tag;
    bool multiple;
    bool redelivered;
    char consumer[MQ_TAG_MAX]; /* DELIVERY and CANCELLED: the consumer's tag */
    amqp_message_t msg;        /* DELIVERY and RETURN: owned, release with mq_event_release */
};

/* mq_open connects to url (amqp://user:pass@host:port/vhost), logs in and opens
 * channel 1; every step is bounded by timeout_ms. name is shown in the broker's
 * management UI. Returns 0 and *out (free with mq_close), or -1 with err. */
__attribute__((warn_unused_result)) int mq_open(struct mq **out, const char *url, const char *name,
                                                int timeout_ms, char *err, size_t errlen);
/* mq_open_any does mq_open on the nodes amqp_url lists (one URL, or a
 * cluster's separated by commas: nodes.h), from one picked at random, until
 * one answers; err names the last node tried (without credentials). For the
 * short-lived and helper connections: long-lived ones use session.h. */
__attribute__((warn_unused_result)) int mq_open_any(struct mq **out, const char *amqp_url,
                                                    const char *name, int timeout_ms, char *err,
                                                    size_t errlen);
/* mq_close closes politely if the connection is still up, then frees. A
 * polite close first waits until 250 ms after the last mq_ack or mq_nack, so
 * that a quorum queue receives them all (see MQ_SETTLE_MS in mq.c). */
void mq_close(struct mq *mq);

int mq_fd(const struct mq *mq);
/* mq_buffered tells whether frames are already read into memory: poll(2) on the
 * fd would not report them, so an event loop must call mq_next first. */
bool mq_buffered(const struct mq *mq);

/* mq_broken tells whether the connection failed (a socket or protocol
 * error, a closed channel): then only mq_close is allowed. */
bool mq_broken(const struct mq *mq);

/* Queue and exchange names: "<namespace>.<suffix>". */
void mq_name(char *out, size_t outlen, const char *ns, const char *suffix);

/* Wire-level declarations (common/topology.c says what to declare). Each is
 * idempotent, and -1 with err on failure; a refused declaration (arguments
 * that differ from an existing queue's, for one) closes the channel, so the
 * connection is then broken. */
__attribute__((warn_unused_result)) int
mq_declare_exchange(struct mq *mq, const char *name, const char *type, char *err, size_t errlen);
/* mq_declare_queue declares a durable queue with args (may be amqp_empty_table). */
__attribute__((warn_unused_result)) int
mq_declare_queue(struct mq *mq, const char *name, amqp_table_t args, char *err, size_t errlen);
/* mq_declare_private declares a queue of this connection alone (exclusive,
 * auto-delete, not durable: the broker deletes it with the connection) with
 * args, under a name the broker picks, written to name (namelen bytes). */
__attribute__((warn_unused_result)) int mq_declare_private(struct mq *mq, amqp_table_t args,
                                                           char *name, size_t namelen, char *err,
                                                           size_t errlen);
/* mq_bind binds queue to exchange with key and args (may be amqp_empty_table). */
__attribute__((warn_unused_result)) int mq_bind(struct mq *mq, const char *queue,
                                                const char *exchange, const char *key,
                                                amqp_table_t args, char *err, size_t errlen);

/* mq_queue_stats asks the broker (passive declare) how many messages are
 * ready in queue and how many consumers it has. Returns 0, or -1 (the queue
 * does not exist, or the connection failed: then it is broken). */
__attribute__((warn_unused_result)) int mq_queue_stats(struct mq *mq, const char *queue,
                                                       uint32_t *messages, uint32_t *consumers);

/* mq_queue_probe asks whether queue exists, on a channel of its own, so that
 * a missing queue (which makes the broker close the channel that asked)
 * leaves the connection's channel open. Returns 1 with its ready messages
 * and consumers, 0 when there is no such queue, or -1 when the connection
 * failed (it is then broken). */
__attribute__((warn_unused_result)) int mq_queue_probe(struct mq *mq, const char *queue,
                                                       uint32_t *messages, uint32_t *consumers);

__attribute__((warn_unused_result)) int mq_confirm_select(struct mq *mq);

/* Publishes to a stream go on a channel of their own. RabbitMQ 3.10.8
 * resends a channel's unconfirmed stream publishes when the stream's leader
 * changes, numbered by the channel's publish count where the stream expects
 * its own count of that channel's publishes to it; the new leader then takes
 * the channel's next publishes, up to the gap between the two counts, for
 * duplicates: it confirms them and writes nothing (measured: 20 publishes to
 * a classic queue, one to a stream, its leader's node killed, then 30 more to
 * the stream: 20 of them confirmed and missing). On a channel that publishes
 * to one stream only, the two counts are the same. */
#define MQ_STREAM_CHANNEL 3
#define MQ_MAIN_CHANNEL 1 /* everything else */
/* mq_open_stream_channel opens MQ_STREAM_CHANNEL, with publisher confirms
 * when confirms is true. 0, or -1 (logged; the connection is then broken). */
__attribute__((warn_unused_result)) int mq_open_stream_channel(struct mq *mq, bool confirms);
/* mq_publish_stream publishes to one stream (routing_key, through the
 * default exchange) on MQ_STREAM_CHANNEL, as mq_publish does; *seq counts
 * that channel's publishes (1, 2, ...). */
__attribute__((warn_unused_result)) int mq_publish_stream(struct mq *mq, const char *stream,
                                                          const amqp_basic_properties_t *props,
                                                          const void *body, size_t len,
                                                          uint64_t *seq);
/* mq_qos sets the prefetch of the consumers started after it, each on its
 * own (basic.qos with global false). */
__attribute__((warn_unused_result)) int mq_qos(struct mq *mq, uint16_t prefetch);
/* mq_consume starts a consumer with manual acks. stream_offset is NULL for a
 * classic queue, or a stream offset: "first", "last", "next" or a decimal offset. */
__attribute__((warn_unused_result)) int mq_consume(struct mq *mq, const char *queue,
                                                   const char *stream_offset);
/* mq_cancel stops the consumer; deliveries already sent may still arrive. */
__attribute__((warn_unused_result)) int mq_cancel(struct mq *mq);
/* mq_consume_as starts a consumer of queue (manual acks) under tag, at most
 * MQ_TAG_MAX - 1 bytes, which its deliveries then carry in ev->consumer; a
 * connection may have many. mq_cancel_as stops it. */
__attribute__((warn_unused_result)) int mq_consume_as(struct mq *mq, const char *queue,
                                                      const char *tag);
__attribute__((warn_unused_result)) int mq_cancel_as(struct mq *mq, const char *tag);

/* mq_publish sends a mandatory publish; *seq receives its confirm sequence
 * number (1, 2, ... after mq_confirm_select). Returns 0 or a negative
 * rabbitmq-c status. A message that AMQP cannot carry (a short string or a
 * header name over 255 bytes, properties larger than a frame) is refused
 * before anything is written, and the connection stays usable: mq_broken
 * tells the two kinds of failure apart. */
__attribute__((warn_unused_result)) int mq_publish(struct mq *mq, const char *exchange,
                                                   const char *routing_key,
                                                   const amqp_basic_properties_t *props,
                                                   const void *body, size_t len, uint64_t *seq);
/* mq_publish_ex is mq_publish with mandatory chosen: a publish that is not
 * mandatory and reaches no queue is dropped without a basic.return. */
__attribute__((warn_unused_result)) int mq_publish_ex(struct mq *mq, const char *exchange,
                                                      const char *routing_key,
                                                      const amqp_basic_properties_t *props,
                                                      const void *body, size_t len, bool mandatory,
                                                      uint64_t *seq);
/* mq_props_fit tells whether props can travel in one content header frame
 * whose properties have room bytes (mq_props_room of the frame size): 0, or
 * the negative rabbitmq-c status of the refusal. scratch is room bytes to
 * encode into. A table key over 255 bytes is refused too
 * (AMQP_STATUS_INVALID_PARAMETER): rabbitmq-c 0.11 would send it corrupt. */
int mq_props_fit(const amqp_basic_properties_t *props, amqp_bytes_t scratch);
/* A content header frame is 7 bytes of frame header, 12 of class, weight
 * and body size, the properties, and an end byte. */
#define MQ_HEADER_FRAME_OVERHEAD 20
/* MQ_FRAME_MAX is the largest frame sluice asks the broker for at login. */
#define MQ_FRAME_MAX 131072
size_t mq_props_room(int frame_max);

__attribute__((warn_unused_result)) int mq_ack(struct mq *mq, uint64_t tag, bool multiple);
__attribute__((warn_unused_result)) int mq_nack(struct mq *mq, uint64_t tag, bool multiple,
                                                bool requeue);

/* mq_next reads at most one frame, waiting up to timeout_ms (0: only what is
 * already there). Returns 1 with *ev filled, 0 when nothing came (ev->kind is
 * MQ_NONE), or a negative status when the connection is gone (then only
 * mq_close is allowed). It also services heartbeats: call it at least every
 * few seconds. */
__attribute__((warn_unused_result)) int mq_next(struct mq *mq, struct mq_event *ev, int timeout_ms);
void mq_event_release(struct mq_event *ev);
/* mq_get takes one message of queue (basic.get, manual ack), for passes
 * over a queue nobody consumes (the dead letters). Returns 1 with an
 * MQ_DELIVERY event (release it), 0 when the queue is empty, or a negative
 * status (the connection is then broken). Blocks for the round trip: call
 * it from a thread of its own, with no confirm outstanding. */
__attribute__((warn_unused_result)) int mq_get(struct mq *mq, const char *queue,
                                               struct mq_event *ev);

/* mq_strerror describes a negative status returned above. */
const char *mq_strerror(int status);

/* Helpers for properties' header tables. */
/* mq_header finds key in a table; NULL if absent. */
const amqp_field_value_t *mq_header(const amqp_table_t *t, const char *key);

#endif
