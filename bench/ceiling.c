/* ceiling.c: the broker's own ceiling, measured with plain rabbitmq-c so that
 * nothing of sluice is in the way. It publishes persistent ~300-byte messages
 * to a durable queue with publisher confirms (a window of outstanding
 * confirms), then consumes them with a prefetch and multiple-acks, and prints
 * {"publish_per_s":..,"consume_per_s":..} on stdout. With --flow it instead
 * publishes and consumes at the same time, on two connections, as a gateway
 * with its workers running does, and prints {"flow_per_s":..}: the broker's
 * own end-to-end ceiling. The queue is deleted at the end. These are the
 * rates sluice's own figures are divided by. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL 1

struct opts {
    char *url;
    long count;
    long window;
    int prefetch;
    int size;
    int max_priority;  /* 0: a plain queue; else x-max-priority, as sluice declares */
    int queue_version; /* 0: the broker's default; else x-queue-version */
    char *queue_mode;  /* NULL: the broker's default; else x-queue-mode ("lazy") */
    int flow;          /* publish and consume at once */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    fprintf(stderr, "ceiling: %s\n", what);
    return 1;
}

static int rpc_ok(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return 1;
    fprintf(stderr, "ceiling: %s failed (reply type %d)\n", what, r.reply_type);
    return 0;
}

static amqp_connection_state_t connect_broker(const char *url)
{
    struct amqp_connection_info ci;
    char *copy = strdup(url);
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    if (!copy || !s || amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) goto fail;
    if (!ci.vhost[0]) ci.vhost = "/";
    if (amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK) goto fail;
    if (amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password)
            .reply_type != AMQP_RESPONSE_NORMAL)
        goto fail;
    amqp_channel_open(c, CHANNEL);
    if (!rpc_ok(c, "channel.open")) goto fail;
    free(copy);
    return c;
fail:
    free(copy);
    if (c) amqp_destroy_connection(c);
    return NULL;
}

/* wait_confirms reads frames until at most `left` publishes are unconfirmed. */
static int wait_confirms(amqp_connection_state_t c, uint64_t published, uint64_t *confirmed,
                         long left)
{
    while ((long)(published - *confirmed) > left) {
        amqp_frame_t f;
        if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) return -1;
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) return -1;
        if (f.payload.method.id != AMQP_BASIC_ACK_METHOD) continue;
        const amqp_basic_ack_t *a = f.payload.method.decoded;
        if (a->multiple || a->delivery_tag > *confirmed) *confirmed = a->delivery_tag;
    }
    return 0;
}

static double publish_all(amqp_connection_state_t c, amqp_bytes_t q, const struct opts *o)
{
    char *body = malloc((size_t)o->size);
    if (!body) return -1;
    memset(body, 'x', (size_t)o->size);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    amqp_bytes_t b = {.len = (size_t)o->size, .bytes = body};
    uint64_t published = 0, confirmed = 0;
    double t0 = now_s();
    int rc = 0;
    while (rc == 0 && (long)published < o->count) {
        if (amqp_basic_publish(c, CHANNEL, amqp_empty_bytes, q, 0, 0, &props, b) != 0) rc = -1;
        published++;
        if (rc == 0) rc = wait_confirms(c, published, &confirmed, o->window);
    }
    if (rc == 0) rc = wait_confirms(c, published, &confirmed, 0);
    double secs = now_s() - t0;
    free(body);
    return rc == 0 ? (double)o->count / secs : -1;
}

static double consume_all(amqp_connection_state_t c, amqp_bytes_t q, const struct opts *o)
{
    amqp_basic_qos(c, CHANNEL, 0, (uint16_t)o->prefetch, 0);
    if (!rpc_ok(c, "basic.qos")) return -1;
    amqp_basic_consume(c, CHANNEL, q, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (!rpc_ok(c, "basic.consume")) return -1;
    long got = 0, acked = 0;
    double t0 = now_s();
    while (got < o->count) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c);
        if (amqp_consume_message(c, &env, NULL, 0).reply_type != AMQP_RESPONSE_NORMAL) return -1;
        got++;
        /* Ack every half prefetch, multiple=true, or when the socket is drained. */
        if (got - acked >= o->prefetch / 2 || got == o->count || !amqp_data_in_buffer(c)) {
            if (amqp_basic_ack(c, CHANNEL, env.delivery_tag, 1) != 0) return -1;
            acked = got;
        }
        amqp_destroy_envelope(&env);
    }
    return (double)o->count / (now_s() - t0);
}

/* flow_all consumes in a child process, on its own connection, while c
 * publishes; the rate counts until the last message is consumed. */
static double flow_all(amqp_connection_state_t c, amqp_bytes_t q, const struct opts *o)
{
    double t0 = now_s();
    pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
        amqp_connection_state_t cc = connect_broker(o->url);
        _exit(cc && consume_all(cc, q, o) > 0 ? 0 : 1);
    }
    double pub = publish_all(c, q, o);
    int status;
    if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    return pub > 0 ? (double)o->count / (now_s() - t0) : -1;
}

static int parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.count = 100000, .window = 512, .prefetch = 200, .size = 300};
    for (int i = 1; i + 1 < argc; i += 2) {
        char *end;
        long v = strtol(argv[i + 1], &end, 10);
        if (strcmp(argv[i], "--url") == 0)
            o->url = argv[i + 1];
        else if (strcmp(argv[i], "--queue-mode") == 0)
            o->queue_mode = argv[i + 1];
        else if (*end || v <= 0)
            return -1;
        else if (strcmp(argv[i], "--count") == 0)
            o->count = v;
        else if (strcmp(argv[i], "--window") == 0)
            o->window = v;
        else if (strcmp(argv[i], "--prefetch") == 0 && v < 65536)
            o->prefetch = (int)v;
        else if (strcmp(argv[i], "--size") == 0 && v < (1 << 24))
            o->size = (int)v;
        else if (strcmp(argv[i], "--max-priority") == 0 && v < 256)
            o->max_priority = (int)v;
        else if (strcmp(argv[i], "--queue-version") == 0 && v < 3)
            o->queue_version = (int)v;
        else if (strcmp(argv[i], "--flow") == 0 && v == 1)
            o->flow = 1;
        else
            return -1;
    }
    return o->url && argc % 2 == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o) < 0)
        return die("usage: ceiling --url AMQP_URL [--count N] [--window W] [--prefetch P] "
                   "[--size BYTES] [--max-priority N] [--queue-version N] [--queue-mode MODE] "
                   "[--flow 1]");
    amqp_connection_state_t c = connect_broker(o.url);
    if (!c) return die("cannot connect to the broker");
    char name[64];
    snprintf(name, sizeof(name), "bench.ceiling.%d", (int)getpid());
    amqp_bytes_t q = amqp_cstring_bytes(name);
    int rc = 1;
    amqp_table_entry_t arg[3];
    amqp_table_t args = {.num_entries = 0, .entries = arg};
    if (o.max_priority)
        arg[args.num_entries++] = (amqp_table_entry_t){
            .key = amqp_cstring_bytes("x-max-priority"),
            .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = o.max_priority}};
    if (o.queue_version)
        arg[args.num_entries++] = (amqp_table_entry_t){
            .key = amqp_cstring_bytes("x-queue-version"),
            .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = o.queue_version}};
    if (o.queue_mode)
        arg[args.num_entries++] =
            (amqp_table_entry_t){.key = amqp_cstring_bytes("x-queue-mode"),
                                 .value = {.kind = AMQP_FIELD_KIND_UTF8,
                                           .value.bytes = amqp_cstring_bytes(o.queue_mode)}};
    amqp_queue_declare(c, CHANNEL, q, 0, 1, 0, 0, args);
    amqp_confirm_select(c, CHANNEL);
    if (!rpc_ok(c, "queue.declare / confirm.select")) goto out;
    double pub = 0, con = 0, flow = 0;
    if (o.flow) {
        if ((flow = flow_all(c, q, &o)) <= 0) goto out;
    } else {
        if ((pub = publish_all(c, q, &o)) <= 0 || (con = consume_all(c, q, &o)) <= 0) goto out;
    }
    printf("{\"messages\":%ld,\"size\":%d,\"window\":%ld,\"prefetch\":%d,\"max_priority\":%d,"
           "\"queue_version\":%d,\"queue_mode\":\"%s\",",
           o.count, o.size, o.window, o.prefetch, o.max_priority, o.queue_version,
           o.queue_mode ? o.queue_mode : "default");
    if (o.flow)
        printf("\"flow_per_s\":%.0f}\n", flow);
    else
        printf("\"publish_per_s\":%.0f,\"consume_per_s\":%.0f}\n", pub, con);
    rc = 0;
out:
    amqp_queue_delete(c, CHANNEL, q, 0, 0);
    amqp_channel_close(c, CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    if (rc) die("measurement failed");
    return rc;
}
