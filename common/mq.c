/* mq.c: sluice's AMQP connection (see mq.h). Everything that touches
 * rabbitmq-c's wire API lives here so the binaries speak in events. */
#include "mq.h"

#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "nodes.h"

#define MQ_CHANNEL MQ_MAIN_CHANNEL
#define MQ_PROBE_CHANNEL 2 /* opened and closed by mq_queue_probe */
#define MQ_HEARTBEAT_S 10
/* AMQP short strings (table keys among them) carry their length in a byte. */
#define MQ_SHORTSTR_MAX 255
#define MQ_TABLE_DEPTH_MAX 8
/* MQ_SETTLE_MS is how long mq_close lets the last acks reach a quorum queue.
 * RabbitMQ 3.10 holds back a quorum queue's acks while many are outstanding
 * and sends them as the earlier ones complete; closing the channel drops the
 * held-back ones, and the broker then redelivers messages that were handled
 * and acked (measured: 100 single acks then a close, 67 redelivered; 20 ms
 * later, none). The wait costs a stopping process at most this long. */
#define MQ_SETTLE_MS 250

struct mq {
    amqp_connection_state_t conn;
    uint64_t next_seq;        /* confirm sequence number of the next publish */
    uint64_t next_stream_seq; /* the same on MQ_STREAM_CHANNEL */
    amqp_bytes_t consumer_tag;
    amqp_bytes_t scratch; /* room for one header frame's properties (see props_fit) */
    bool broken;          /* a socket or protocol error: only close is allowed */
    bool settled;         /* an ack or nack was sent */
    int64_t settled_ms;   /* when the last one was, on the monotonic clock */
};

static void timeval_ms(struct timeval *tv, int ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

/* reply_text turns a failed RPC reply into words for the operator. */
static void reply_text(amqp_rpc_reply_t r, const char *what, char *err, size_t errlen)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(err, errlen, "%s: ok", what);
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(err, errlen, "%s: no reply from the broker", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, errlen, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            snprintf(err, errlen, "%s: broker closed the connection: %u %.*s", what, c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            snprintf(err, errlen, "%s: broker closed the channel: %u %.*s", what, c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else {
            snprintf(err, errlen, "%s: unexpected broker method 0x%08x", what, r.reply.id);
        }
        break;
    }
}

/* check_rpc marks the connection broken on any failed RPC: after a channel
 * or connection close the channel is unusable and the caller reconnects. */
static int check_rpc(struct mq *mq, const char *what, char *err, size_t errlen)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(mq->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return 0;
    mq->broken = true;
    if (err) reply_text(r, what, err, errlen);
    return -1;
}

static int open_socket(amqp_connection_state_t conn, const struct amqp_connection_info *ci,
                       int timeout_ms, char *err, size_t errlen)
{
    amqp_socket_t *sock = ci->ssl ? amqp_ssl_socket_new(conn) : amqp_tcp_socket_new(conn);
    if (!sock) {
        snprintf(err, errlen, "cannot create a socket (out of memory?)");
        return -1;
    }
    if (ci->ssl) {
        amqp_ssl_socket_set_verify_peer(sock, 1);
        amqp_ssl_socket_set_verify_hostname(sock, 1);
    }
    struct timeval tv;
    timeval_ms(&tv, timeout_ms);
    int rc = amqp_socket_open_noblock(sock, ci->host, ci->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errlen, "cannot connect to %s:%d: %s (is RabbitMQ running there?)", ci->host,
                 ci->port, amqp_error_string2(rc));
        return -1;
    }
    return 0;
}

static int login(struct mq *mq, const struct amqp_connection_info *ci, const char *name, char *err,
                 size_t errlen)
{
    amqp_table_entry_t prop = {
        .key = amqp_cstring_bytes("connection_name"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(name)}};
    amqp_table_t props = {.num_entries = 1, .entries = &prop};
    amqp_rpc_reply_t r =
        amqp_login_with_properties(mq->conn, ci->vhost, 0, MQ_FRAME_MAX, MQ_HEARTBEAT_S, &props,
                                   AMQP_SASL_METHOD_PLAIN, ci->user, ci->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        reply_text(r, "login", err, errlen);
        return -1;
    }
    amqp_channel_open(mq->conn, MQ_CHANNEL);
    return check_rpc(mq, "channel.open", err, errlen);
}

int mq_open(struct mq **out, const char *url, const char *name, int timeout_ms, char *err,
            size_t errlen)
{
    int rc = -1;
    struct amqp_connection_info ci;
    char *copy = strdup(url);
    struct mq *mq = calloc(1, sizeof(*mq));
    if (!copy || !mq) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "amqp_url is not a valid AMQP URL");
        goto out;
    }
    /* By the AMQP URI spec "amqp://host/" names the empty vhost, but everyone
     * writing it means the default one. */
    if (!ci.vhost[0]) ci.vhost = "/";
    mq->conn = amqp_new_connection();
    if (!mq->conn) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    struct timeval tv;
    timeval_ms(&tv, timeout_ms);
    amqp_set_handshake_timeout(mq->conn, &tv);
    amqp_set_rpc_timeout(mq->conn, &tv);
    if (open_socket(mq->conn, &ci, timeout_ms, err, errlen) < 0) goto out;
    if (login(mq, &ci, name, err, errlen) < 0) goto out;
    int frame_max = amqp_get_frame_max(mq->conn);
    mq->scratch = amqp_bytes_malloc(
        frame_max > MQ_HEADER_FRAME_OVERHEAD ? (size_t)(frame_max - MQ_HEADER_FRAME_OVERHEAD) : 0);
    if (!mq->scratch.bytes) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *out = mq;
    mq = NULL;
    rc = 0;
out:
    if (mq) {
        mq->broken = true;
        mq_close(mq);
    }
    free(copy);
    return rc;
}

/* settle_wait sleeps until MQ_SETTLE_MS after the last ack or nack. */
static void settle_wait(const struct mq *mq)
{
    int64_t left = mq->settled ? mq->settled_ms + MQ_SETTLE_MS - clock_mono_ms() : 0;
    if (left <= 0) return;
    struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int mq_open_any(struct mq **out, const char *amqp_url, const char *name, int timeout_ms, char *err,
                size_t errlen)
{
    struct nodes ns;
    char why[256] = "";
    if (nodes_parse(&ns, amqp_url, err, errlen) < 0) return -1;
    /* A random first node spreads these connections as the sessions' are. */
    nodes_start(&ns, ((uint64_t)clock_real_ms() ^ (uint64_t)getpid() << 32) *
                         UINT64_C(0x9E3779B97F4A7C15));
    int rc = -1;
    for (size_t i = 0; i < ns.n && rc < 0; i++, nodes_next(&ns)) {
        rc = mq_open(out, nodes_url(&ns), name, timeout_ms, why, sizeof why);
        if (rc < 0) snprintf(err, errlen, "%s: %s", nodes_label(&ns), why);
    }
    nodes_free(&ns);
    return rc;
}

void mq_close(struct mq *mq)
{
    if (!mq) return;
    if (mq->conn) {
        if (!mq->broken) {
            settle_wait(mq);
            amqp_channel_close(mq->conn, MQ_CHANNEL, AMQP_REPLY_SUCCESS);
            amqp_connection_close(mq->conn, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(mq->conn);
    }
    amqp_bytes_free(mq->consumer_tag);
    amqp_bytes_free(mq->scratch);
    free(mq);
}

int mq_fd(const struct mq *mq)
{
    return amqp_get_sockfd(mq->conn);
}

size_t mq_props_room(int frame_max)
{
    return frame_max > MQ_HEADER_FRAME_OVERHEAD ? (size_t)(frame_max - MQ_HEADER_FRAME_OVERHEAD)
                                                : 0;
}

bool mq_broken(const struct mq *mq)
{
    return mq->broken;
}

bool mq_buffered(const struct mq *mq)
{
    return amqp_frames_enqueued(mq->conn) || amqp_data_in_buffer(mq->conn);
}

void mq_name(char *out, size_t outlen, const char *ns, const char *suffix)
{
    snprintf(out, outlen, "%s.%s", ns, suffix);
}

static amqp_table_entry_t entry_str(const char *key, const char *value)
{
    return (amqp_table_entry_t){
        .key = amqp_cstring_bytes(key),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(value)}};
}

static amqp_table_entry_t entry_i64(const char *key, int64_t value)
{
    return (amqp_table_entry_t){.key = amqp_cstring_bytes(key),
                                .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = value}};
}

int mq_declare_exchange(struct mq *mq, const char *name, const char *type, char *err, size_t errlen)
{
    amqp_exchange_declare(mq->conn, MQ_CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
                          0, 1, 0, 0, amqp_empty_table);
    char what[256];
    snprintf(what, sizeof(what), "declaring exchange %s", name);
    return check_rpc(mq, what, err, errlen);
}

int mq_declare_queue(struct mq *mq, const char *name, amqp_table_t args, char *err, size_t errlen)
{
    amqp_queue_declare(mq->conn, MQ_CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    char what[320];
    snprintf(what, sizeof(what),
             "declaring queue %s (if it exists with other arguments: another setup shares the "
             "namespace, a setting such as queue_type changed, or an older sluice declared it; "
             "restore the setting, or drain and delete the queue)",
             name);
    return check_rpc(mq, what, err, errlen);
}

int mq_declare_private(struct mq *mq, amqp_table_t args, char *name, size_t namelen, char *err,
                       size_t errlen)
{
    /* The name "" asks the broker to make one up (amq.gen-...). */
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(mq->conn, MQ_CHANNEL, amqp_empty_bytes, 0, 0, 1, 1, args);
    if (check_rpc(mq, "declaring a private queue", err, errlen) < 0) return -1;
    if (!ok || ok->queue.len == 0 || ok->queue.len >= namelen) {
        snprintf(err, errlen, "declaring a private queue: the broker gave no usable name");
        return -1;
    }
    memcpy(name, ok->queue.bytes, ok->queue.len);
    name[ok->queue.len] = '\0';
    return 0;
}

int mq_bind(struct mq *mq, const char *queue, const char *exchange, const char *key,
            amqp_table_t args, char *err, size_t errlen)
{
    amqp_queue_bind(mq->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), args);
    char what[256];
    snprintf(what, sizeof(what), "binding queue %s to exchange %s", queue, exchange);
    return check_rpc(mq, what, err, errlen);
}

int mq_queue_stats(struct mq *mq, const char *queue, uint32_t *messages, uint32_t *consumers)
{
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(
        mq->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    char err[256];
    if (check_rpc(mq, "queue.declare (passive)", err, sizeof(err)) < 0 || !ok) {
        log_warn("%s", err);
        return -1;
    }
    *messages = ok->message_count;
    *consumers = ok->consumer_count;
    return 0;
}

/* probe_reply reads the outcome of the passive declare on the probe
 * channel: 1 it exists, 0 the broker closed the channel with 404, -1 else. */
static int probe_reply(struct mq *mq, amqp_queue_declare_ok_t *ok, uint32_t *messages,
                       uint32_t *consumers)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(mq->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL && ok) {
        *messages = ok->message_count;
        *consumers = ok->consumer_count;
        amqp_channel_close(mq->conn, MQ_PROBE_CHANNEL, AMQP_REPLY_SUCCESS);
        return check_rpc(mq, "closing the probe channel", NULL, 0) < 0 ? -1 : 1;
    }
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((const amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
        amqp_channel_close_ok_t close_ok = {0};
        if (amqp_send_method(mq->conn, MQ_PROBE_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok) ==
            AMQP_STATUS_OK)
            return 0;
    }
    char err[256];
    reply_text(r, "probing a queue", err, sizeof(err));
    log_warn("%s", err);
    mq->broken = true;
    return -1;
}

int mq_queue_probe(struct mq *mq, const char *queue, uint32_t *messages, uint32_t *consumers)
{
    if (mq->broken) return -1;
    amqp_channel_open(mq->conn, MQ_PROBE_CHANNEL);
    if (check_rpc(mq, "opening the probe channel", NULL, 0) < 0) return -1;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(
        mq->conn, MQ_PROBE_CHANNEL, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    return probe_reply(mq, ok, messages, consumers);
}

int mq_confirm_select(struct mq *mq)
{
    amqp_confirm_select(mq->conn, MQ_CHANNEL);
    char err[256];
    if (check_rpc(mq, "confirm.select", err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    mq->next_seq = 1;
    return 0;
}

int mq_open_stream_channel(struct mq *mq, bool confirms)
{
    char err[256];
    amqp_channel_open(mq->conn, MQ_STREAM_CHANNEL);
    int rc = check_rpc(mq, "opening the stream channel", err, sizeof(err));
    if (rc == 0 && confirms) {
        amqp_confirm_select(mq->conn, MQ_STREAM_CHANNEL);
        rc = check_rpc(mq, "confirm.select on the stream channel", err, sizeof(err));
    }
    if (rc < 0) {
        log_error("%s", err);
        return -1;
    }
    mq->next_stream_seq = 1;
    return 0;
}

int mq_qos(struct mq *mq, uint16_t prefetch)
{
    amqp_basic_qos(mq->conn, MQ_CHANNEL, 0, prefetch, 0);
    char err[256];
    if (check_rpc(mq, "basic.qos", err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

int mq_consume(struct mq *mq, const char *queue, const char *stream_offset)
{
    amqp_table_entry_t arg = entry_str("x-stream-offset", stream_offset ? stream_offset : "");
    char *end = NULL;
    long long offset = stream_offset ? strtoll(stream_offset, &end, 10) : -1;
    if (stream_offset && end != stream_offset && *end == '\0' && offset >= 0)
        arg = entry_i64("x-stream-offset", offset); /* a numeric offset must travel as a long */
    amqp_table_t args = {.num_entries = stream_offset ? 1 : 0, .entries = &arg};
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(
        mq->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, args);
    char err[300];
    if (check_rpc(mq, "basic.consume", err, sizeof(err)) < 0 || !ok) {
        log_error("consuming from %s: %s", queue, err);
        return -1;
    }
    amqp_bytes_free(mq->consumer_tag);
    mq->consumer_tag = amqp_bytes_malloc_dup(ok->consumer_tag);
    return mq->consumer_tag.bytes ? 0 : -1;
}

int mq_consume_as(struct mq *mq, const char *queue, const char *tag)
{
    if (strlen(tag) >= MQ_TAG_MAX) return -1;
    amqp_basic_consume_ok_t *ok =
        amqp_basic_consume(mq->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag),
                           0, 0, 0, amqp_empty_table);
    char err[300];
    if (check_rpc(mq, "basic.consume", err, sizeof(err)) < 0 || !ok) {
        log_error("consuming from %s: %s", queue, err);
        return -1;
    }
    return 0;
}

int mq_cancel_as(struct mq *mq, const char *tag)
{
    amqp_basic_cancel(mq->conn, MQ_CHANNEL, amqp_cstring_bytes(tag));
    char err[256];
    if (check_rpc(mq, "basic.cancel", err, sizeof(err)) < 0) {
        log_warn("%s", err);
        return -1;
    }
    return 0;
}

int mq_cancel(struct mq *mq)
{
    if (!mq->consumer_tag.bytes) return 0;
    /* basic.cancel's reply may queue behind deliveries; rabbitmq-c keeps the
     * frames it skips and mq_next returns them afterwards. */
    amqp_basic_cancel(mq->conn, MQ_CHANNEL, mq->consumer_tag);
    char err[256];
    if (check_rpc(mq, "basic.cancel", err, sizeof(err)) < 0) {
        log_warn("%s", err);
        return -1;
    }
    return 0;
}

static bool field_keys_fit(const amqp_field_value_t *v, int depth);

/* table_keys_fit checks what rabbitmq-c 0.11 does not: it writes a table
 * key's length as one byte without checking it, so a 256-byte key would go
 * out as a corrupt frame and the broker would close the connection. */
static bool table_keys_fit(const amqp_table_t *t, int depth)
{
    if (depth > MQ_TABLE_DEPTH_MAX) return false;
    for (int i = 0; i < t->num_entries; i++)
        if (t->entries[i].key.len > MQ_SHORTSTR_MAX || !field_keys_fit(&t->entries[i].value, depth))
            return false;
    return true;
}

static bool field_keys_fit(const amqp_field_value_t *v, int depth)
{
    if (v->kind == AMQP_FIELD_KIND_TABLE) return table_keys_fit(&v->value.table, depth + 1);
    if (v->kind != AMQP_FIELD_KIND_ARRAY) return true;
    for (int i = 0; i < v->value.array.num_entries; i++)
        if (!field_keys_fit(&v->value.array.entries[i], depth + 1)) return false;
    return true;
}

/* mq_props_fit (see mq.h) is what mq_publish checks before anything is
 * sent. amqp_basic_publish writes the publish method before it encodes the
 * content header, so a header it then refuses (a content type over 255
 * bytes, properties larger than a frame) would leave half a message on the
 * wire and the broker would close the connection: one client's odd request
 * would cost every request in flight. Encoding twice costs well under a
 * microsecond for sluice's few properties. */
int mq_props_fit(const amqp_basic_properties_t *props, amqp_bytes_t scratch)
{
    if (!props) return 0;
    if ((props->_flags & AMQP_BASIC_HEADERS_FLAG) && !table_keys_fit(&props->headers, 0))
        return AMQP_STATUS_INVALID_PARAMETER;
    int rc = amqp_encode_properties(AMQP_BASIC_CLASS, (void *)props, scratch);
    return rc < 0 ? rc : 0;
}

int mq_publish(struct mq *mq, const char *exchange, const char *routing_key,
               const amqp_basic_properties_t *props, const void *body, size_t len, uint64_t *seq)
{
    return mq_publish_ex(mq, exchange, routing_key, props, body, len, true, seq);
}

/* publish_on publishes on channel, counting its confirm numbers in *next. */
static int publish_on(struct mq *mq, amqp_channel_t channel, uint64_t *next, const char *exchange,
                      const char *routing_key, const amqp_basic_properties_t *props,
                      const void *body, size_t len, bool mandatory, uint64_t *seq)
{
    if (mq->broken) return AMQP_STATUS_CONNECTION_CLOSED;
    if (strlen(exchange) > MQ_SHORTSTR_MAX || strlen(routing_key) > MQ_SHORTSTR_MAX)
        return AMQP_STATUS_INVALID_PARAMETER;
    int rc = mq_props_fit(props, mq->scratch);
    if (rc < 0) return rc;
    amqp_bytes_t b = {.len = len, .bytes = (void *)body};
    rc = amqp_basic_publish(mq->conn, channel, amqp_cstring_bytes(exchange),
                            amqp_cstring_bytes(routing_key), mandatory, 0, props, b);
    if (rc != AMQP_STATUS_OK) {
        mq->broken = true;
        return rc;
    }
    if (seq) *seq = *next;
    (*next)++;
    return 0;
}

int mq_publish_ex(struct mq *mq, const char *exchange, const char *routing_key,
                  const amqp_basic_properties_t *props, const void *body, size_t len,
                  bool mandatory, uint64_t *seq)
{
    return publish_on(mq, MQ_CHANNEL, &mq->next_seq, exchange, routing_key, props, body, len,
                      mandatory, seq);
}

int mq_publish_stream(struct mq *mq, const char *stream, const amqp_basic_properties_t *props,
                      const void *body, size_t len, uint64_t *seq)
{
    return publish_on(mq, MQ_STREAM_CHANNEL, &mq->next_stream_seq, "", stream, props, body, len,
                      true, seq);
}

/* sent records the outcome of an ack or nack for mq_close's settle wait. */
static int sent(struct mq *mq, int rc)
{
    if (rc != AMQP_STATUS_OK) {
        mq->broken = true;
        return rc;
    }
    mq->settled = true;
    mq->settled_ms = clock_mono_ms();
    return rc;
}

int mq_ack(struct mq *mq, uint64_t tag, bool multiple)
{
    return sent(mq, amqp_basic_ack(mq->conn, MQ_CHANNEL, tag, multiple));
}

int mq_nack(struct mq *mq, uint64_t tag, bool multiple, bool requeue)
{
    return sent(mq, amqp_basic_nack(mq->conn, MQ_CHANNEL, tag, multiple, requeue));
}

/* read_content reads the header and body frames that follow a deliver or
 * return method into ev->msg. */
static int read_content(struct mq *mq, amqp_channel_t channel, struct mq_event *ev)
{
    amqp_rpc_reply_t r = amqp_read_message(mq->conn, channel, &ev->msg, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return 1;
    char err[256];
    reply_text(r, "reading a message", err, sizeof(err));
    log_error("%s", err);
    mq->broken = true;
    return r.library_error ? r.library_error : AMQP_STATUS_CONNECTION_CLOSED;
}

static int on_close(struct mq *mq, const amqp_frame_t *f)
{
    const char *what = "channel";
    amqp_bytes_t text = amqp_empty_bytes;
    unsigned code = 0;
    if (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = f->payload.method.decoded;
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(mq->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        what = "connection";
        code = c->reply_code;
        text = c->reply_text;
    } else {
        const amqp_channel_close_t *c = f->payload.method.decoded;
        code = c->reply_code;
        text = c->reply_text;
    }
    log_error("the broker closed the %s: %u %.*s", what, code, (int)text.len,
              (const char *)text.bytes);
    mq->broken = true;
    return AMQP_STATUS_CONNECTION_CLOSED;
}

/* copy_tag keeps a consumer tag with the event: the frame's memory is
 * reused by the next read. */
static void copy_tag(struct mq_event *ev, amqp_bytes_t tag)
{
    size_t n = tag.len < MQ_TAG_MAX - 1 ? tag.len : MQ_TAG_MAX - 1;
    memcpy(ev->consumer, tag.bytes, n);
    ev->consumer[n] = '\0';
}

static int on_method(struct mq *mq, const amqp_frame_t *f, struct mq_event *ev)
{
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        *ev = (struct mq_event){
            .kind = MQ_ACK, .channel = f->channel, .tag = a->delivery_tag, .multiple = a->multiple};
        return 1;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = f->payload.method.decoded;
        *ev = (struct mq_event){.kind = MQ_NACK,
                                .channel = f->channel,
                                .tag = n->delivery_tag,
                                .multiple = n->multiple};
        return 1;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
        const amqp_basic_deliver_t *d = f->payload.method.decoded;
        *ev = (struct mq_event){
            .kind = MQ_DELIVERY, .tag = d->delivery_tag, .redelivered = d->redelivered};
        copy_tag(ev, d->consumer_tag);
        return read_content(mq, f->channel, ev);
    }
    case AMQP_BASIC_RETURN_METHOD: {
        const amqp_basic_return_t *r = f->payload.method.decoded;
        log_warn("the broker returned a message: %u %.*s", r->reply_code, (int)r->reply_text.len,
                 (const char *)r->reply_text.bytes);
        *ev = (struct mq_event){.kind = MQ_RETURN, .channel = f->channel};
        return read_content(mq, f->channel, ev);
    }
    case AMQP_BASIC_CANCEL_METHOD:
        *ev = (struct mq_event){.kind = MQ_CANCELLED};
        copy_tag(ev, ((const amqp_basic_cancel_t *)f->payload.method.decoded)->consumer_tag);
        return 1;
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        return on_close(mq, f);
    case AMQP_CONNECTION_BLOCKED_METHOD:
        log_warn("the broker blocked publishing (memory or disk alarm): publishes wait");
        return 0;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        log_info("the broker unblocked publishing");
        return 0;
    default:
        return 0; /* replies to our own RPCs that arrived late, e.g. cancel-ok */
    }
}

int mq_get(struct mq *mq, const char *queue, struct mq_event *ev)
{
    *ev = (struct mq_event){.kind = MQ_NONE};
    if (mq->broken) return AMQP_STATUS_CONNECTION_CLOSED;
    amqp_maybe_release_buffers(mq->conn);
    amqp_rpc_reply_t r = amqp_basic_get(mq->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char err[256];
        reply_text(r, "basic.get", err, sizeof(err));
        log_error("%s", err);
        mq->broken = true;
        return r.library_error ? r.library_error : AMQP_STATUS_CONNECTION_CLOSED;
    }
    if (r.reply.id != AMQP_BASIC_GET_OK_METHOD) return 0; /* get-empty */
    const amqp_basic_get_ok_t *ok = r.reply.decoded;
    *ev = (struct mq_event){
        .kind = MQ_DELIVERY, .tag = ok->delivery_tag, .redelivered = ok->redelivered};
    int rc = read_content(mq, MQ_CHANNEL, ev);
    if (rc <= 0) ev->kind = MQ_NONE;
    return rc;
}

int mq_next(struct mq *mq, struct mq_event *ev, int timeout_ms)
{
    *ev = (struct mq_event){.kind = MQ_NONE};
    if (mq->broken) return AMQP_STATUS_CONNECTION_CLOSED;
    amqp_maybe_release_buffers(mq->conn);
    amqp_frame_t f;
    struct timeval tv;
    timeval_ms(&tv, timeout_ms);
    int rc = amqp_simple_wait_frame_noblock(mq->conn, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) return 0;
    if (rc != AMQP_STATUS_OK) {
        mq->broken = true;
        return rc;
    }
    if (f.frame_type != AMQP_FRAME_METHOD) return 0;
    rc = on_method(mq, &f, ev);
    if (rc <= 0) ev->kind = MQ_NONE;
    return rc;
}

void mq_event_release(struct mq_event *ev)
{
    if (ev->kind == MQ_DELIVERY || ev->kind == MQ_RETURN) amqp_destroy_message(&ev->msg);
    ev->kind = MQ_NONE;
}

const char *mq_strerror(int status)
{
    return amqp_error_string2(status);
}

const amqp_field_value_t *mq_header(const amqp_table_t *t, const char *key)
{
    size_t klen = strlen(key);
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == klen && memcmp(e->key.bytes, key, klen) == 0) return &e->value;
    }
    return NULL;
}
