/* outbox.c: the worker's publishes (see outbox.h). */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "results.h"
#include "retry.h"
#include "topology.h"

struct outbox {
    const struct cfg *cfg;
    struct session *session;
    const struct intake *intake;
    char dead[TOPO_NAME_MAX], delay[TOPO_NAME_MAX];
    struct buf events; /* the events message being built, reused */
};

struct outbox *outbox_new(const struct cfg *cfg, struct session *session, const struct intake *in)
{
    struct outbox *o = calloc(1, sizeof(*o));
    if (!o) return NULL;
    o->cfg = cfg;
    o->session = session;
    o->intake = in;
    topo_name(cfg, TOPO_DEAD, o->dead, sizeof(o->dead));
    topo_name(cfg, TOPO_DELAY, o->delay, sizeof(o->delay));
    buf_init(&o->events, SIZE_MAX / 2);
    return o;
}

void outbox_free(struct outbox *o)
{
    if (!o) return;
    buf_free(&o->events);
    free(o);
}

void outbox_events(struct outbox *o, struct job *const *jobs, size_t n, int state,
                   const char *reason, struct batch *track)
{
    int64_t now = clock_real_ms();
    size_t added = 0;
    buf_reset(&o->events);
    int rc = event_begin(&o->events);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct job *job = jobs[i];
        if (job->next == NEXT_REROUTE) continue;
        struct status_update u =
            results_update(job, state < 0 ? job->state : (enum req_state)state, now);
        if (state >= 0) u.result_json = u.error_json = NULL, u.result_len = u.error_len = 0;
        u.reason = reason;
        rc = event_append(&o->events, &u);
        added++;
    }
    if (rc == 0) rc = event_end(&o->events);
    if (rc != 0) {
        session_break(o->session, "cannot build an events message (out of memory)");
        return;
    }
    /* Jobs being rerouted only: their copies carry the batch. An empty
     * batch (a shutdown with no held retry) still publishes its empty
     * message, whose confirm settles it. */
    if (!added && n > 0) return;
    rc = session_publish_events(o->session, &o->events, NULL, track);
    if (rc == SESSION_OK && track) track->unconfirmed++;
    /* Nothing of an events message depends on the input: refusing one is a
     * bug, and a batch must not wait forever for a confirm that never comes. */
    if (rc == SESSION_REFUSED) session_break(o->session, "the broker refused an events message");
}

/* add_delay_header adds TOPO_DELAY_HEADER = value to props' headers, with
 * memory from pool: the delay exchange routes by it. */
static int add_delay_header(amqp_basic_properties_t *props, amqp_pool_t *pool, const char *value)
{
    amqp_table_t *t = &props->headers;
    amqp_table_entry_t *e = amqp_pool_alloc(pool, ((size_t)t->num_entries + 1) * sizeof(*e));
    if (!e) return -1;
    for (int i = 0; i < t->num_entries; i++)
        e[i] = t->entries[i];
    e[t->num_entries] = (amqp_table_entry_t){
        .key = amqp_cstring_bytes(TOPO_DELAY_HEADER),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(value)}};
    t->entries = e;
    t->num_entries++;
    props->_flags |= AMQP_BASIC_HEADERS_FLAG;
    return 0;
}

int outbox_copy(struct outbox *o, struct job *job, enum outbox_copy what)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t props;
    const char *exchange = "", *key = o->dead;
    char delay[24];
    int rc = envelope_to_amqp(&job->env, &pool, &props) < 0 ? SESSION_REFUSED : SESSION_OK;
    if (rc == SESSION_OK && what != COPY_DEAD)
        key = intake_lane(o->intake, (size_t)(job->route - o->cfg->routes));
    if (rc == SESSION_OK && what == COPY_RETRY) {
        long ms = retry_queue_delay_ms(job->delay_ms);
        snprintf(delay, sizeof(delay), "%ld", ms);
        exchange = o->delay;
        if (session_declare_retry(o->session, ms) < 0)
            rc = SESSION_DOWN;
        else if (add_delay_header(&props, &pool, delay) < 0)
            rc = SESSION_REFUSED;
    }
    if (rc == SESSION_OK)
        rc = session_publish(o->session, exchange, key, &props, job->env.body, job->env.body_len,
                             job->batch);
    if (rc == SESSION_OK && job->batch) job->batch->unconfirmed++;
    empty_amqp_pool(&pool);
    return rc;
}
