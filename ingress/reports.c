/* reports.c: the workers' reports, read into the fleet's view (see reports.h). */
#include "reports.h"

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "session.h"
#include "topology.h"

#define PREFETCH 200
#define TICK_MS 1000 /* longest sleep: heartbeats need servicing */

struct reports {
    const struct cfg *cfg;
    struct fleet *fleet;
    struct session *session; /* the thread's */
    struct report *next;     /* where the next report is read into; NULL: make one */
    char exchange[TOPO_NAME_MAX];
    uint64_t last_tag; /* newest delivery of this turn, acked at its end; 0: none */
    bool warned;       /* a malformed report was logged */
    pthread_t thread;
    int stop_fd;
};

/* on_up declares this connection's queue, binds and consumes it. */
static int on_up(void *arg, struct mq *mq)
{
    struct reports *r = arg;
    char queue[TOPO_NAME_MAX], err[256];
    amqp_table_entry_t e[] = {
        {.key = amqp_cstring_bytes("x-message-ttl"),
         .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = REPORT_STALE_MS}},
        {.key = amqp_cstring_bytes("x-max-length"),
         .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = REPORTS_QUEUE_MAX}},
    };
    amqp_table_t args = {.num_entries = 2, .entries = e};
    if (mq_declare_private(mq, args, queue, sizeof queue, err, sizeof err) < 0 ||
        mq_bind(mq, queue, r->exchange, "", amqp_empty_table, err, sizeof err) < 0) {
        log_error("reports: %s", err);
        return -1;
    }
    if (mq_qos(mq, PREFETCH) < 0 || mq_consume(mq, queue, NULL) < 0) return -1;
    return 0;
}

static void on_down(void *arg)
{
    struct reports *r = arg;
    r->last_tag = 0; /* that connection's deliveries cannot be acked any more */
}

static void on_delivery(void *arg, struct mq_event *ev)
{
    struct reports *r = arg;
    if (ev->kind == MQ_CANCELLED) {
        session_break(r->session, "the broker cancelled the reports consumer");
        return;
    }
    r->last_tag = ev->tag;
    if (!r->next) r->next = report_new(r->cfg);
    if (!r->next) return; /* out of memory: this one is lost, the next comes in a second */
    if (report_decode(r->cfg, ev->msg.body.bytes, ev->msg.body.len, r->next) < 0) {
        if (!r->warned) log_warn("reports: skipping a message that is not a worker's report");
        r->warned = true;
        return;
    }
    r->next = fleet_put(r->fleet, r->next, clock_mono_ms(), clock_real_ms());
}

static void *reports_main(void *arg)
{
    struct reports *r = arg;
    for (;;) {
        struct pollfd fds[2] = {{.fd = r->stop_fd, .events = POLLIN},
                                {.fd = session_fd(r->session), .events = POLLIN}};
        int timeout = session_timeout_ms(r->session, clock_mono_ms(), TICK_MS);
        if (poll(fds, 2, timeout) > 0 && (fds[0].revents & POLLIN)) break;
        session_run(r->session, clock_mono_ms());
        struct mq *mq = session_mq(r->session);
        if (mq && r->last_tag && mq_ack(mq, r->last_tag, true) < 0)
            session_break(r->session, "acking the reports failed");
        r->last_tag = 0;
    }
    return NULL;
}

struct reports *reports_new(const struct cfg *cfg, struct fleet *fleet)
{
    struct reports *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cfg = cfg;
    r->fleet = fleet;
    topo_name(cfg, TOPO_REPORTS, r->exchange, sizeof r->exchange);
    struct session_params sp = {
        .cfg = cfg,
        .name = "sluice-ingress reports",
        .hooks = {.arg = r, .on_up = on_up, .on_down = on_down, .on_delivery = on_delivery},
    };
    r->session = session_new(&sp);
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (r->stop_fd < 0 || !r->session || pthread_create(&r->thread, NULL, reports_main, r) != 0) {
        if (r->stop_fd >= 0) close(r->stop_fd);
        session_free(r->session);
        free(r);
        return NULL;
    }
    return r;
}

void reports_free(struct reports *r)
{
    if (!r) return;
    uint64_t one = 1;
    ssize_t n = write(r->stop_fd, &one, sizeof one);
    (void)n;
    pthread_join(r->thread, NULL);
    session_free(r->session);
    report_free(r->cfg, r->next);
    close(r->stop_fd);
    free(r);
}
