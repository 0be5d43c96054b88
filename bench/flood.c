/* flood.c: build/bench/flood, fills the events stream of `make bench` to
 * measure the ingress's memory per retained status. It publishes --count
 * events for fresh IDs (tenant "bench", route "echo"), --per-message of them
 * per stream message, to "<namespace>.events" with publisher confirms, at
 * most FLOOD_WINDOW messages unconfirmed. Events are "queued", or with
 * --result-bytes B final "succeeded" ones carrying a result whose body_text
 * has B bytes, the shape of a status that keeps a backend's answer.
 *
 * With --ids FILE, the first ID of every message is written to FILE, one a
 * line, oldest first: status reads to time (bench/run.sh's statusmem phase).
 *
 * The stream must exist (an ingress declares it at start): a publish to a
 * missing queue comes back as a return and fails the run. stdout gets one
 * JSON object {"events","messages","seconds","events_per_s"}, stderr progress.
 * Exit status: 0, 1 on a broker failure, 2 for a bad command line. */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "buf.h"
#include "clock.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "mq.h"

#define PROG "flood"
#define FLOOD_WINDOW 64 /* unconfirmed messages at most */
#define OPEN_TIMEOUT_MS 10000
#define STALL_US 30000000   /* no confirm for this long fails the run */
#define PROGRESS_US 1000000 /* a progress line on stderr this often */
#define MAX_EVENTS 1000000000L
#define MAX_RESULT_BYTES (16L << 20)

struct opts {
    const char *amqp, *ns, *ids;
    long count, per_message, result_bytes;
};

/* flood tracks the confirm window: messages low..next-1 are published and
 * the ones in it not yet confirmed have acked[seq % FLOOD_WINDOW] false. */
struct flood {
    struct opts o;
    struct mq *mq;
    char queue[160];
    struct buf msg;
    struct buf result; /* the result object of --result-bytes, built once */
    FILE *ids;         /* --ids, or NULL */
    long events_sent;
    uint64_t low, next;
    bool acked[FLOOD_WINDOW];
    int64_t last_confirm_mono;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: flood --amqp URL --namespace NS --count N [--per-message 1000]\n"
               "             [--result-bytes 0] [--ids FILE]\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"amqp", required_argument, NULL, 'a'},
        {"namespace", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},
        {"per-message", required_argument, NULL, 'p'},
        {"result-bytes", required_argument, NULL, 'b'},
        {"ids", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.per_message = 1000};
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->amqp = optarg;
            break;
        case 's':
            o->ns = optarg;
            break;
        case 'n':
            rc = bench_parse_long(PROG, "--count", optarg, 1, MAX_EVENTS, &o->count);
            break;
        case 'p':
            rc = bench_parse_long(PROG, "--per-message", optarg, 1, 100000, &o->per_message);
            break;
        case 'b':
            rc = bench_parse_long(PROG, "--result-bytes", optarg, 0, MAX_RESULT_BYTES,
                                  &o->result_bytes);
            break;
        case 'i':
            o->ids = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            rc = -1;
        }
    }
    if (rc == 0 && (!o->amqp || !o->ns || !o->count || optind < argc)) {
        fprintf(stderr, "%s: --amqp, --namespace and --count are required, nothing else\n", PROG);
        rc = -1;
    }
    if (rc < 0) usage(stderr);
    return rc;
}

/* make_result builds {"status":200,"headers":{},"body_text":"xxx..."}. */
static int make_result(struct buf *b, long bytes)
{
    char chunk[1024];
    memset(chunk, 'x', sizeof chunk);
    int rc = buf_appends(b, "{\"status\":200,\"headers\":{},\"body_text\":\"");
    for (long left = bytes; left > 0 && !rc; left -= (long)sizeof chunk)
        rc = buf_append(b, chunk, left < (long)sizeof chunk ? (size_t)left : sizeof chunk);
    return rc ? rc : buf_appends(b, "\"}");
}

/* build_message encodes the next n events into f->msg. */
static int build_message(struct flood *f, long n)
{
    bool final = f->o.result_bytes > 0;
    int64_t now = clock_real_ms();
    char id[ID_LEN + 1];
    buf_reset(&f->msg);
    int rc = event_begin(&f->msg);
    for (long i = 0; i < n && !rc; i++) {
        rc = id_new(id, now);
        struct status_update u = {.id = id,
                                  .state = final ? ST_SUCCEEDED : ST_QUEUED,
                                  .tenant = "bench",
                                  .route = "echo",
                                  .created_ms = now,
                                  .ts_ms = now,
                                  .attempts = final ? 1 : 0,
                                  .result_json = final ? f->result.data : NULL,
                                  .result_len = final ? f->result.len : 0};
        if (!rc) rc = event_append(&f->msg, &u);
        if (!rc && i == 0 && f->ids) fprintf(f->ids, "%s\n", id);
    }
    return rc ? rc : event_end(&f->msg);
}

static int publish_next(struct flood *f)
{
    long left = f->o.count - f->events_sent;
    long n = left < f->o.per_message ? left : f->o.per_message;
    if (build_message(f, n) < 0) {
        fprintf(stderr, "%s: cannot build a message (out of memory?)\n", PROG);
        return -1;
    }
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    uint64_t seq = 0;
    int rc = mq_publish(f->mq, "", f->queue, &props, f->msg.data, f->msg.len, &seq);
    if (rc < 0) {
        fprintf(stderr, "%s: publishing failed: %s\n", PROG, mq_strerror(rc));
        return -1;
    }
    f->next = seq + 1;
    f->events_sent += n;
    return 0;
}

/* on_ack marks tag (and with multiple every earlier one) confirmed and slides
 * the window past the confirmed prefix. */
static void on_ack(struct flood *f, uint64_t tag, bool multiple)
{
    if (tag < f->low || tag >= f->next) return; /* already confirmed */
    for (uint64_t s = multiple ? f->low : tag; s <= tag; s++)
        f->acked[s % FLOOD_WINDOW] = true;
    while (f->low < f->next && f->acked[f->low % FLOOD_WINDOW]) {
        f->acked[f->low % FLOOD_WINDOW] = false;
        f->low++;
    }
    f->last_confirm_mono = clock_mono_us();
}

/* handle_event returns -1 when the run cannot succeed any more. */
static int handle_event(struct flood *f, struct mq_event *ev)
{
    int rc = 0;
    switch (ev->kind) {
    case MQ_ACK:
        on_ack(f, ev->tag, ev->multiple);
        break;
    case MQ_NACK:
        fprintf(stderr, "%s: the broker refused message %llu\n", PROG, (unsigned long long)ev->tag);
        rc = -1;
        break;
    case MQ_RETURN:
        fprintf(stderr, "%s: queue %s does not exist: start an ingress with namespace %s first\n",
                PROG, f->queue, f->o.ns);
        rc = -1;
        break;
    default:
        break;
    }
    mq_event_release(ev);
    return rc;
}

static void progress(const struct flood *f)
{
    long confirmed = (long)(f->low - 1) * f->o.per_message;
    fprintf(stderr, "%s: %ld/%ld events published, %ld confirmed\n", PROG, f->events_sent,
            f->o.count, confirmed < f->o.count ? confirmed : f->o.count);
}

/* pump publishes while the window has room and reads confirms, until every
 * message is confirmed. */
static int pump(struct flood *f)
{
    int64_t next_progress = clock_mono_us() + PROGRESS_US;
    f->last_confirm_mono = clock_mono_us();
    while (f->events_sent < f->o.count || f->low < f->next) {
        bool room = f->events_sent < f->o.count && f->next - f->low < FLOOD_WINDOW;
        if (room && publish_next(f) < 0) return -1;
        struct mq_event ev;
        int rc = mq_next(f->mq, &ev, room ? 0 : 1000);
        if (rc < 0) {
            fprintf(stderr, "%s: the broker connection failed: %s\n", PROG, mq_strerror(rc));
            return -1;
        }
        if (rc > 0 && handle_event(f, &ev) < 0) return -1;
        int64_t now = clock_mono_us();
        if (now - f->last_confirm_mono > STALL_US) {
            fprintf(stderr, "%s: no confirm from the broker for %d s\n", PROG, STALL_US / 1000000);
            return -1;
        }
        if (now >= next_progress) {
            progress(f);
            next_progress = now + PROGRESS_US;
        }
    }
    return 0;
}

static int run(struct flood *f)
{
    char err[512] = "";
    mq_name(f->queue, sizeof f->queue, f->o.ns, "events");
    if (mq_open(&f->mq, f->o.amqp, "sluice-bench-flood", OPEN_TIMEOUT_MS, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return -1;
    }
    if (mq_confirm_select(f->mq) < 0) {
        fprintf(stderr, "%s: confirm.select failed\n", PROG);
        return -1;
    }
    if (f->o.result_bytes > 0 && make_result(&f->result, f->o.result_bytes) < 0) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        return -1;
    }
    if (f->o.ids && !(f->ids = fopen(f->o.ids, "w"))) {
        fprintf(stderr, "%s: cannot write %s\n", PROG, f->o.ids);
        return -1;
    }
    f->low = f->next = 1;
    int64_t t0 = clock_mono_us();
    if (pump(f) < 0) return -1;
    double secs = (double)(clock_mono_us() - t0) / 1e6;
    long messages = (long)(f->next - 1);
    printf("{\"events\":%ld,\"messages\":%ld,\"seconds\":%.3f,\"events_per_s\":%.1f}\n", f->o.count,
           messages, secs, secs > 0 ? (double)f->o.count / secs : 0);
    fprintf(stderr, "%s: %ld events in %ld messages to %s, all confirmed\n", PROG, f->o.count,
            messages, f->queue);
    return 0;
}

int main(int argc, char **argv)
{
    struct flood f = {0};
    if (parse_opts(argc, argv, &f.o) < 0) return 2;
    log_init(PROG, LOG_WARN);
    buf_init(&f.msg, SIZE_MAX / 2);
    buf_init(&f.result, SIZE_MAX / 2);
    int rc = run(&f) < 0 ? 1 : 0;
    mq_close(f.mq);
    if (f.ids && fclose(f.ids) != 0) rc = 1;
    buf_free(&f.msg);
    buf_free(&f.result);
    return rc;
}
