/* waiters.c: build/bench/waiters, the long-poll phase of `make bench`. It
 * measures what a waiting client costs the ingress and how soon a final
 * state reaches it:
 *
 *   1. publishes "queued" events for --waiters fresh IDs (tenant --tenant) to
 *      "<namespace>.events", as an ingress would, and waits until the
 *      ingress serves the last one;
 *   2. opens one connection per ID, each GET /v1/requests/<id>?wait=60, and
 *      waits until the ingress's sluice_ingress_waiters gauge counts them all;
 *      the ingress's RSS (--pid) before and after gives the bytes per waiter;
 *   3. publishes a final ("succeeded") event for every ID, 100 per message as
 *      a worker does, --rate events per second, and times each answer from
 *      the publish of its event to the last byte of the answer; the
 *      ingress's CPU time over this step, per answer, is less at the mercy
 *      of a busy machine than the times are.
 *
 * stdout gets one JSON object; stderr progress. Exit status 0, 1 when the
 * run fails (the broker, the ingress, an answer that is not the final
 * status), 2 for a bad command line. Everything stays on loopback. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "buf.h"
#include "clock.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "mq.h"

#define PROG "waiters"
#define PER_MESSAGE 100
#define WAIT_S 60
#define ANSWER_MAX 8192
#define READY_TIMEOUT_MS 60000
#define TAIL_MS 30000 /* after the last final event, answers still awaited this long */

struct opts {
    const char *amqp, *ns, *tenant, *token;
    long port, pid, waiters, rate;
};

struct conn {
    int fd;
    bool sent;
    char *in; /* the answer so far */
    size_t len;
    int64_t done_us; /* 0 until the answer is complete */
};

struct run {
    struct opts o;
    struct mq *mq;
    char queue[160];
    char (*ids)[ID_LEN + 1];
    int64_t *published_us; /* per ID: when its final event was published */
    struct conn *conns;
    int ep;
    long answered, not_final;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"amqp", required_argument, NULL, 'a'},
        {"namespace", required_argument, NULL, 's'},
        {"port", required_argument, NULL, 'p'},
        {"token", required_argument, NULL, 't'},
        {"tenant", required_argument, NULL, 'e'},
        {"pid", required_argument, NULL, 'i'},
        {"waiters", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.tenant = "bench", .waiters = 10000, .rate = 1000};
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->amqp = optarg;
            break;
        case 's':
            o->ns = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 'e':
            o->tenant = optarg;
            break;
        case 'p':
            rc = bench_parse_long(PROG, "--port", optarg, 1, 65535, &o->port);
            break;
        case 'i':
            rc = bench_parse_long(PROG, "--pid", optarg, 1, INT32_MAX, &o->pid);
            break;
        case 'n':
            rc = bench_parse_long(PROG, "--waiters", optarg, 1, 100000, &o->waiters);
            break;
        case 'r':
            rc = bench_parse_long(PROG, "--rate", optarg, 1, 1000000, &o->rate);
            break;
        default:
            rc = -1;
        }
    }
    if (rc == 0 && (!o->amqp || !o->ns || !o->token || !o->port || !o->pid || optind < argc)) {
        fprintf(stderr,
                "usage: %s --amqp URL --namespace NS --port P --token T --pid PID\n"
                "       [--tenant bench] [--waiters 10000] [--rate 1000]\n",
                PROG);
        rc = -1;
    }
    return rc;
}

/* cpu_ticks returns the user + system clock ticks pid has used. */
static long cpu_ticks(long pid)
{
    char path[64], line[1024];
    long utime = 0, stime = 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    const char *p = f && fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
    /* After the command's ")": state and 10 more fields, then utime and stime. */
    if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime);
    if (f) fclose(f);
    return utime + stime;
}

static long rss_kb(long pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static int connect_to(long port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* http_get makes one blocking GET of path and returns the answer (caller
 * frees), or NULL. Only for the few control requests of the run. */
static char *http_get(const struct opts *o, const char *path)
{
    int fd = connect_to(o->port, false);
    if (fd < 0) return NULL;
    struct buf b;
    buf_init(&b, 16 << 20);
    char req[512], chunk[65536];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: bench\r\nAuthorization: Bearer %s\r\n\r\n", path,
                     o->token);
    ssize_t r = write(fd, req, (size_t)n) == n ? 1 : -1;
    while (r > 0 && (r = read(fd, chunk, sizeof chunk)) > 0)
        if (buf_append(&b, chunk, (size_t)r) < 0) r = -1;
    close(fd);
    if (r < 0 || !b.data) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* publish_events sends one events message of ids [from, to) in state st. */
static int publish_events(struct run *w, long from, long to, enum req_state st)
{
    struct buf msg;
    buf_init(&msg, 16 << 20);
    int64_t now = clock_real_ms();
    int rc = event_begin(&msg);
    for (long i = from; i < to && !rc; i++) {
        struct status_update u = {.id = w->ids[i],
                                  .state = st,
                                  .tenant = w->o.tenant,
                                  .route = "echo",
                                  .created_ms = now,
                                  .ts_ms = now,
                                  .attempts = ST_FINAL(st) ? 1 : 0};
        rc = event_append(&msg, &u);
    }
    if (!rc) rc = event_end(&msg);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                               AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .content_type = amqp_cstring_bytes("application/json"),
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    if (!rc) rc = mq_publish(w->mq, "", w->queue, &props, msg.data, msg.len, NULL);
    buf_free(&msg);
    if (rc) fprintf(stderr, "%s: publishing events failed\n", PROG);
    return rc ? -1 : 0;
}

/* known waits until the ingress serves the status of id. */
static int known(struct run *w, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/requests/%s", id);
    for (int64_t end = clock_mono_ms() + READY_TIMEOUT_MS; clock_mono_ms() < end; usleep(50000)) {
        char *a = http_get(&w->o, path);
        bool ok = a && strncmp(a, "HTTP/1.1 200", 12) == 0;
        free(a);
        if (ok) return 0;
    }
    fprintf(stderr, "%s: the ingress never knew %s\n", PROG, id);
    return -1;
}

/* gauge reads sluice_ingress_waiters from /metrics, or -1. */
static long gauge(struct run *w)
{
    char *m = http_get(&w->o, "/metrics");
    const char *p = m ? strstr(m, "\nsluice_ingress_waiters ") : NULL;
    long v = p ? strtol(p + 24, NULL, 10) : -1;
    free(m);
    return v;
}

static int open_waiters(struct run *w)
{
    for (long i = 0; i < w->o.waiters; i++) {
        struct conn *c = &w->conns[i];
        c->fd = connect_to(w->o.port, true);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)i};
        if (c->fd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            fprintf(stderr, "%s: connection %ld: %s\n", PROG, i, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* on_ready sends a connection's request once it is connected, and reads
 * its answer; an answer is complete when its body is all in. */
static void on_ready(struct run *w, long i, uint32_t events)
{
    struct conn *c = &w->conns[i];
    if ((events & EPOLLOUT) && !c->sent) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET /v1/requests/%s?wait=%d HTTP/1.1\r\nHost: bench\r\n"
                         "Authorization: Bearer %s\r\n\r\n",
                         w->ids[i], WAIT_S, w->o.token);
        c->sent = write(c->fd, req, (size_t)n) == n;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->done_us) return;
    if (!c->in && !(c->in = malloc(ANSWER_MAX + 1))) return;
    ssize_t r = read(c->fd, c->in + c->len, ANSWER_MAX - c->len);
    if (r > 0) c->len += (size_t)r;
    c->in[c->len] = '\0';
    const char *body = strstr(c->in, "\r\n\r\n"), *cl = strstr(c->in, "Content-Length: ");
    bool complete = body && cl && (size_t)(c->in + c->len - body - 4) >= strtoul(cl + 16, NULL, 10);
    if (!complete && r > 0 && c->len < ANSWER_MAX) return;
    c->done_us = clock_mono_us();
    w->answered++;
    if (!complete || !strstr(c->in, "\"status\":\"succeeded\"")) w->not_final++;
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* pump handles connection events for at most ms. */
static void pump(struct run *w, int ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(w->ep, evs, 256, ms);
    for (int k = 0; k < n; k++)
        on_ready(w, (long)evs[k].data.u64, evs[k].events);
}

/* wait_waiting pumps until the ingress counts every connection as a waiter. */
static int wait_waiting(struct run *w)
{
    for (int64_t end = clock_mono_ms() + READY_TIMEOUT_MS, next = 0; clock_mono_ms() < end;) {
        pump(w, 20);
        if (clock_mono_ms() < next) continue;
        long g = gauge(w);
        if (g >= w->o.waiters) return 0;
        fprintf(stderr, "%s: %ld of %ld waiting\n", PROG, g, w->o.waiters);
        next = clock_mono_ms() + 500;
    }
    fprintf(stderr, "%s: the waiters never all waited\n", PROG);
    return -1;
}

/* finish publishes the final events at --rate and collects the answers. */
static void finish(struct run *w)
{
    int64_t start = clock_mono_us(), tail_end = 0;
    long next = 0;
    while (w->answered < w->o.waiters) {
        int64_t now = clock_mono_us();
        if (next < w->o.waiters && now >= start + next * 1000000 / w->o.rate) {
            long to = next + PER_MESSAGE < w->o.waiters ? next + PER_MESSAGE : w->o.waiters;
            for (long i = next; i < to; i++)
                w->published_us[i] = clock_mono_us();
            if (publish_events(w, next, to, ST_SUCCEEDED) < 0) return;
            next = to;
            if (next == w->o.waiters) tail_end = clock_mono_us() + TAIL_MS * 1000;
            continue;
        }
        if (tail_end && now > tail_end) return;
        int64_t due = next < w->o.waiters ? start + next * 1000000 / w->o.rate : now + 100000;
        pump(w, (int)((due - now) / 1000 + 1));
    }
}

static int report(struct run *w, long before, long after, long ticks)
{
    double *ms = calloc((size_t)w->o.waiters, sizeof *ms);
    size_t n = 0;
    for (long i = 0; ms && i < w->o.waiters; i++)
        if (w->conns[i].done_us && w->published_us[i])
            ms[n++] = (double)(w->conns[i].done_us - w->published_us[i]) / 1000.0;
    struct buf out;
    buf_init(&out, 1 << 20);
    int rc = buf_appendf(&out,
                         "{\"waiters\":%ld,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
                         "\"bytes_per_waiter\":%ld,\"answered\":%ld,\"not_final\":%ld,"
                         "\"ingress_cpu_us_per_answer\":%.1f,\"final_to_answer_ms\":",
                         w->o.waiters, before, after, (after - before) * 1024 / w->o.waiters,
                         w->answered, w->not_final,
                         (double)ticks * 1e6 / (double)sysconf(_SC_CLK_TCK) /
                             (double)(w->answered ? w->answered : 1));
    if (!rc && ms) rc = bench_append_percentiles(&out, ms, n, true);
    if (!rc) rc = buf_appends(&out, "}\n");
    if (!rc) fputs(out.data, stdout);
    buf_free(&out);
    free(ms);
    return rc || w->answered < w->o.waiters || w->not_final ? -1 : 0;
}

static int open_mq(struct run *w, char *err, size_t len)
{
    if (mq_open(&w->mq, w->o.amqp, "sluice-bench-waiters", 10000, err, len) == 0) return 0;
    fprintf(stderr, "%s: %s\n", PROG, err);
    return -1;
}

static int run(struct run *w)
{
    char err[512];
    long n = w->o.waiters;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    w->ids = calloc((size_t)n, sizeof *w->ids);
    w->published_us = calloc((size_t)n, sizeof *w->published_us);
    w->conns = calloc((size_t)n, sizeof *w->conns);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!w->ids || !w->published_us || !w->conns || w->ep < 0) return -1;
    for (long i = 0; i < n; i++)
        if (id_new(w->ids[i], clock_real_ms()) < 0) return -1;
    mq_name(w->queue, sizeof w->queue, w->o.ns, "events");
    if (open_mq(w, err, sizeof err) < 0) return -1;
    for (long i = 0; i < n; i += PER_MESSAGE)
        if (publish_events(w, i, i + PER_MESSAGE < n ? i + PER_MESSAGE : n, ST_QUEUED) < 0)
            return -1;
    /* Nothing services the connection's heartbeats while the waiters
     * connect: a fresh one publishes the final events. */
    mq_close(w->mq);
    w->mq = NULL;
    if (known(w, w->ids[n - 1]) < 0) return -1;
    long before = rss_kb(w->o.pid);
    if (open_waiters(w) < 0 || wait_waiting(w) < 0) return -1;
    long after = rss_kb(w->o.pid);
    fprintf(stderr, "%s: %ld waiting; ingress RSS %ld -> %ld kB\n", PROG, n, before, after);
    if (open_mq(w, err, sizeof err) < 0) return -1;
    long ticks = cpu_ticks(w->o.pid);
    finish(w);
    return report(w, before, after, cpu_ticks(w->o.pid) - ticks);
}

int main(int argc, char **argv)
{
    struct run w = {.ep = -1};
    if (parse_opts(argc, argv, &w.o) < 0) return 2;
    log_init(PROG, LOG_WARN);
    int rc = run(&w) < 0 ? 1 : 0;
    for (long i = 0; w.conns && i < w.o.waiters; i++) {
        if (w.conns[i].fd > 0) close(w.conns[i].fd);
        free(w.conns[i].in);
    }
    if (w.ep >= 0) close(w.ep);
    mq_close(w.mq);
    free(w.ids);
    free(w.published_us);
    free(w.conns);
    return rc;
}
