/* readback.c: reads let-go results back from the events stream (see
 * readback.h). */
#include "readback.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "id.h"
#include "log.h"
#include "mq.h"
#include "nodes.h"
#include "topology.h"

#define CONNECT_TIMEOUT_MS 2000
#define READ_TIMEOUT_MS 2000 /* a read-back slower than this answers 503 */

struct readback {
    const struct cfg *cfg;
    pthread_mutex_t lock; /* serialises reads on mq */
    struct mq *mq;        /* NULL until first used, and after a failure */
    struct nodes nodes;
    char queue[TOPO_NAME_MAX];
    struct metric *m_reads, *m_failed;
};

struct readback *readback_new(const struct cfg *cfg, struct metrics *metrics)
{
    char err[256];
    struct readback *rb = calloc(1, sizeof *rb);
    if (!rb) return NULL;
    rb->cfg = cfg;
    if (nodes_parse(&rb->nodes, cfg->amqp_url, err, sizeof err) < 0) {
        log_error("readback: %s", err);
        free(rb);
        return NULL;
    }
    topo_name(cfg, TOPO_EVENTS, rb->queue, sizeof rb->queue);
    rb->m_reads = metrics_counter(metrics, "sluice_ingress_result_readbacks_total",
                                  "Results read back from the events stream.", NULL);
    rb->m_failed = metrics_counter(metrics, "sluice_ingress_result_readback_failures_total",
                                   "Read-backs that failed (answered 503).", NULL);
    if (!rb->m_reads || !rb->m_failed || pthread_mutex_init(&rb->lock, NULL) != 0) {
        nodes_free(&rb->nodes);
        free(rb);
        return NULL;
    }
    return rb;
}

void readback_free(struct readback *rb)
{
    if (!rb) return;
    if (rb->mq) mq_close(rb->mq);
    nodes_free(&rb->nodes);
    pthread_mutex_destroy(&rb->lock);
    free(rb);
}

/* connect opens the connection if there is none; the next node is tried
 * after a failure. */
static int connect_mq(struct readback *rb)
{
    char err[256];
    if (rb->mq && !mq_broken(rb->mq)) return 0;
    if (rb->mq) {
        mq_close(rb->mq);
        rb->mq = NULL;
        nodes_next(&rb->nodes);
    }
    if (mq_open(&rb->mq, nodes_url(&rb->nodes), "sluice-ingress readback", CONNECT_TIMEOUT_MS, err,
                sizeof err) < 0) {
        log_warn("readback: %s: %s", nodes_label(&rb->nodes), err);
        rb->mq = NULL;
        nodes_next(&rb->nodes);
        return -1;
    }
    /* One message at a time: the first one is all a read needs. */
    if (mq_qos(rb->mq, 1) < 0) return -1;
    return 0;
}

struct find {
    const char *id;
    char *result;
    bool found;
    int rc;
};

static void on_update(void *arg, const struct status_update *u)
{
    struct find *f = arg;
    if (f->found || !ST_FINAL(u->state) || u->erase || strcmp(u->id, f->id) != 0) return;
    f->found = true;
    if (!u->result_json) return;
    f->result = malloc(u->result_len + 1);
    if (!f->result) {
        f->rc = -EIO;
        return;
    }
    memcpy(f->result, u->result_json, u->result_len);
    f->result[u->result_len] = '\0';
}

static int64_t offset_of(const amqp_message_t *msg)
{
    const amqp_field_value_t *off = NULL;
    if (msg->properties._flags & AMQP_BASIC_HEADERS_FLAG)
        off = mq_header(&msg->properties.headers, "x-stream-offset");
    return off && off->kind == AMQP_FIELD_KIND_I64 ? off->value.i64 : -1;
}

/* first_at waits for the delivery at offset (those before it, which a
 * stream may send from the start of its chunk, are skipped) and decodes it
 * into f. 0, or -EIO. */
static int first_at(struct readback *rb, int64_t offset, struct find *f)
{
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        struct mq_event ev = {0};
        if (left <= 0 || mq_next(rb->mq, &ev, (int)left) < 0) return -EIO;
        if (ev.kind == MQ_CANCELLED) return -EIO;
        if (ev.kind != MQ_DELIVERY) continue;
        int64_t at = offset_of(&ev.msg);
        int rc = 0;
        if (at >= offset) {
            /* Past it: the offset is gone from the stream (retention). */
            if (at == offset &&
                event_parse(ev.msg.body.bytes, ev.msg.body.len, on_update, NULL, f) < 0)
                rc = -EIO;
            mq_event_release(&ev);
            return at == offset ? rc : -EIO;
        }
        if (mq_ack(rb->mq, ev.tag, false) < 0) rc = -EIO;
        mq_event_release(&ev);
        if (rc) return rc;
    }
}

/* drain drops what came before the cancel's reply and was kept. */
static void drain(struct readback *rb)
{
    struct mq_event ev = {0};
    while (mq_buffered(rb->mq) && mq_next(rb->mq, &ev, 0) > 0)
        mq_event_release(&ev);
}

int readback_fetch(struct readback *rb, int64_t offset, const char *id, char **result)
{
    char at[32];
    struct find f = {.id = id};
    *result = NULL;
    snprintf(at, sizeof at, "%" PRId64, offset);
    pthread_mutex_lock(&rb->lock);
    /* An idle connection may have been closed by the broker (nothing here
     * services its heartbeats between reads): one fresh try then. */
    int rc = -EIO;
    for (int try = 0; try < 2 && rc; try++) {
        rc = connect_mq(rb) < 0 || mq_consume(rb->mq, rb->queue, at) < 0 ? -EIO : 0;
        if (rc && rb->mq) {
            mq_close(rb->mq);
            rb->mq = NULL;
        }
    }
    if (!rc) rc = first_at(rb, offset, &f);
    /* A consumer left running would keep a delivery waiting; a connection
     * that cannot cancel is closed and opened afresh next time. */
    if (rb->mq && !mq_broken(rb->mq) && mq_cancel(rb->mq) == 0)
        drain(rb);
    else if (rb->mq) {
        mq_close(rb->mq);
        rb->mq = NULL;
    }
    pthread_mutex_unlock(&rb->lock);
    if (!rc) rc = f.rc ? f.rc : f.found ? 0 : -ENOENT;
    if (rc)
        free(f.result);
    else
        *result = f.result;
    return rc;
}

int readback_render(struct readback *rb, struct status_index *idx, const char *id,
                    const char *tenant, struct buf *out)
{
    int64_t offset;
    int rc = status_index_render_at(idx, id, tenant, out, &offset);
    if (rc != -EAGAIN) return rc;
    if (!rb) return -EAGAIN;
    char *result = NULL;
    rc = readback_fetch(rb, offset, id, &result);
    metric_add(rc == 0 ? rb->m_reads : rb->m_failed, 1);
    if (rc == -ENOENT)
        log_warn("readback: no final event of %s at stream offset %" PRId64, id, offset);
    /* A failed read is "not now", never "no such request" nor a result missing. */
    if (rc == 0)
        rc = status_index_render_with(idx, id, tenant, offset, result, out);
    else
        rc = -EAGAIN;
    free(result);
    return rc;
}
