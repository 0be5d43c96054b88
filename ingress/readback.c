/* readback.c: reads let-go results back from the events stream (see
 * readback.h). */
#include "readback.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
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
#define MAX_SLOTS 8          /* connections at most, whatever ingress.threads says */

/* One connection and what reads on it need; a read holds its slot's lock. */
struct slot {
    pthread_mutex_t lock; /* serialises reads on mq */
    struct mq *mq;        /* NULL until first used, and after a failure */
    struct nodes nodes;
    bool ready; /* lock and nodes initialised */
};

struct readback {
    const struct cfg *cfg;
    char queue[TOPO_NAME_MAX];
    struct metric *m_reads, *m_failed;
    atomic_uint next; /* where the search for a free slot starts */
    size_t n_slots;
    struct slot slots[];
};

struct readback *readback_new(const struct cfg *cfg, struct metrics *metrics)
{
    char err[256];
    /* One connection per HTTP thread: a read-back holds the thread that
     * serves it, so more could not run at once. */
    size_t n = cfg->ingress.threads < 1           ? 1
               : cfg->ingress.threads > MAX_SLOTS ? MAX_SLOTS
                                                  : (size_t)cfg->ingress.threads;
    struct readback *rb = calloc(1, sizeof *rb + n * sizeof rb->slots[0]);
    if (!rb) return NULL;
    rb->cfg = cfg;
    rb->n_slots = n;
    topo_name(cfg, TOPO_EVENTS, rb->queue, sizeof rb->queue);
    rb->m_reads = metrics_counter(metrics, "sluice_ingress_result_readbacks_total",
                                  "Results read back from the events stream.", NULL);
    rb->m_failed = metrics_counter(metrics, "sluice_ingress_result_readback_failures_total",
                                   "Read-backs that failed (answered 503).", NULL);
    if (!rb->m_reads || !rb->m_failed) goto fail;
    for (size_t i = 0; i < n; i++) {
        struct slot *sl = &rb->slots[i];
        if (nodes_parse(&sl->nodes, cfg->amqp_url, err, sizeof err) < 0) {
            log_error("readback: %s", err);
            goto fail;
        }
        if (pthread_mutex_init(&sl->lock, NULL) != 0) {
            nodes_free(&sl->nodes);
            goto fail;
        }
        sl->ready = true;
        /* Spread the slots over the nodes, as the fleet's connections are. */
        for (size_t k = 0; k < i; k++)
            nodes_next(&sl->nodes);
    }
    return rb;
fail:
    readback_free(rb);
    return NULL;
}

void readback_free(struct readback *rb)
{
    if (!rb) return;
    for (size_t i = 0; i < rb->n_slots; i++) {
        struct slot *sl = &rb->slots[i];
        if (!sl->ready) continue;
        if (sl->mq) mq_close(sl->mq);
        nodes_free(&sl->nodes);
        pthread_mutex_destroy(&sl->lock);
    }
    free(rb);
}

/* take locks a slot: a free one if there is one, else waits for one. */
static struct slot *take(struct readback *rb)
{
    unsigned start = atomic_fetch_add(&rb->next, 1);
    for (size_t i = 0; i < rb->n_slots; i++) {
        struct slot *sl = &rb->slots[(start + i) % rb->n_slots];
        if (pthread_mutex_trylock(&sl->lock) == 0) return sl;
    }
    struct slot *sl = &rb->slots[start % rb->n_slots];
    pthread_mutex_lock(&sl->lock);
    return sl;
}

/* connect opens the connection if there is none; the next node is tried
 * after a failure. */
static int connect_mq(struct slot *sl)
{
    char err[256];
    if (sl->mq && !mq_broken(sl->mq)) return 0;
    if (sl->mq) {
        mq_close(sl->mq);
        sl->mq = NULL;
        nodes_next(&sl->nodes);
    }
    if (mq_open(&sl->mq, nodes_url(&sl->nodes), "sluice-ingress readback", CONNECT_TIMEOUT_MS, err,
                sizeof err) < 0) {
        log_warn("readback: %s: %s", nodes_label(&sl->nodes), err);
        sl->mq = NULL;
        nodes_next(&sl->nodes);
        return -1;
    }
    /* One message at a time: the first one is all a read needs. */
    if (mq_qos(sl->mq, 1) < 0) return -1;
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
static int first_at(struct slot *sl, int64_t offset, struct find *f)
{
    int64_t deadline = clock_mono_ms() + READ_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        struct mq_event ev = {0};
        if (left <= 0 || mq_next(sl->mq, &ev, (int)left) < 0) return -EIO;
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
        if (mq_ack(sl->mq, ev.tag, false) < 0) rc = -EIO;
        mq_event_release(&ev);
        if (rc) return rc;
    }
}

/* drain drops what came before the cancel's reply and was kept. */
static void drain(struct slot *sl)
{
    struct mq_event ev = {0};
    while (mq_buffered(sl->mq) && mq_next(sl->mq, &ev, 0) > 0)
        mq_event_release(&ev);
}

int readback_fetch(struct readback *rb, int64_t offset, const char *id, char **result)
{
    char at[32];
    struct find f = {.id = id};
    *result = NULL;
    snprintf(at, sizeof at, "%" PRId64, offset);
    struct slot *sl = take(rb);
    /* An idle connection may have been closed by the broker (nothing here
     * services its heartbeats between reads): one fresh try then. */
    int rc = -EIO;
    for (int try = 0; try < 2 && rc; try++) {
        rc = connect_mq(sl) < 0 || mq_consume(sl->mq, rb->queue, at) < 0 ? -EIO : 0;
        if (rc && sl->mq) {
            mq_close(sl->mq);
            sl->mq = NULL;
        }
    }
    if (!rc) rc = first_at(sl, offset, &f);
    /* A consumer left running would keep a delivery waiting; a connection
     * that cannot cancel is closed and opened afresh next time. */
    if (sl->mq && !mq_broken(sl->mq) && mq_cancel(sl->mq) == 0)
        drain(sl);
    else if (sl->mq) {
        mq_close(sl->mq);
        sl->mq = NULL;
    }
    pthread_mutex_unlock(&sl->lock);
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
