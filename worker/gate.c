/* gate.c: claims and their read-back (see gate.h). A held batch is a
 * `held` record: the batch, its claim's serial (0 while unpublished) and
 * when it was published, on a list in claim order. */
#include "gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "clock.h"
#include "id.h"
#include "log.h"
#include "session.h"

/* A claim not read back by then is published again: a stream may drop a
 * publish while its leader fails over (claims are not confirmed), and
 * nothing else would release the batch on a connection that stays up. */
#define CLAIM_AGAIN_MS 3000

struct held {
    struct batch *b;
    uint64_t serial;
    int64_t published_us;
    struct held *next;
};

struct gate {
    const struct cfg *cfg;
    struct session *session;
    struct claims *claims;
    gate_open_fn open;
    void *arg;
    struct held *held;
    /* The cancelled IDs of the message being fed (claims are at most
     * ARBITER_MAX_CLAIM, cancels rare: a small list). */
    char (*cancelled)[ID_LEN + 1];
    size_t n_cancelled;
    struct buf msg;
    struct metric *m_wait, *m_cancelled;
};

static bool first_attempt(const struct job *job)
{
    return job->env.attempts == 0;
}

/* publish_claim publishes h's claim; false when the session is down. */
static bool publish_claim(struct gate *g, struct held *h)
{
    const char *ids[ARBITER_MAX_CLAIM];
    size_t n = 0;
    for (size_t i = 0; i < h->b->n && n < ARBITER_MAX_CLAIM; i++)
        if (first_attempt(h->b->jobs[i])) ids[n++] = h->b->jobs[i]->env.id;
    buf_reset(&g->msg);
    h->published_us = clock_mono_us();
    if (arbiter_claim_msg(&g->msg, ids, n, clock_real_ms()) < 0 ||
        claims_publish(g->claims, g->session, &g->msg, &h->serial) != SESSION_OK) {
        h->serial = 0; /* published again once the session is up */
        return false;
    }
    return true;
}

bool gate_hold(struct gate *g, struct batch *b)
{
    bool any = false;
    for (size_t i = 0; i < b->n && !any; i++)
        any = first_attempt(b->jobs[i]);
    if (!any) return false;
    struct held *h = calloc(1, sizeof *h), **tail = &g->held;
    if (!h) {
        /* Without memory to hold it, the batch is called unclaimed: at
         * worst a cancel answered "cancelled" is called anyway (logged). */
        log_error("out of memory holding a batch for its claim: calling it unclaimed");
        return false;
    }
    h->b = b;
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
    if (session_up(g->session)) publish_claim(g, h);
    return true;
}

struct session *gate_session(struct gate *g)
{
    return g->session;
}

bool gate_holds(const struct gate *g, const struct batch *b)
{
    for (const struct held *h = g->held; h; h = h->next)
        if (h->b == b) return true;
    return false;
}

void gate_forget(struct gate *g)
{
    while (g->held) {
        struct held *h = g->held;
        g->held = h->next;
        free(h);
    }
}

static void on_claim(void *arg, const char *id, bool cancelled)
{
    struct gate *g = arg;
    if (!cancelled || g->n_cancelled == ARBITER_MAX_CLAIM) return;
    memcpy(g->cancelled[g->n_cancelled++], id, ID_LEN + 1);
}

/* release hands h's batch back with its cancelled jobs marked. */
static void release(struct gate *g, struct held *h)
{
    for (struct held **pp = &g->held; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    struct batch *b = h->b;
    for (size_t i = 0; i < b->n; i++) {
        struct job *job = b->jobs[i];
        for (size_t k = 0; first_attempt(job) && k < g->n_cancelled; k++)
            if (!memcmp(job->env.id, g->cancelled[k], ID_LEN)) {
                job->state = ST_CANCELLED;
                job->next = NEXT_FINAL;
                metric_add(g->m_cancelled, 1);
            }
    }
    metric_observe(g->m_wait, (double)(clock_mono_us() - h->published_us) / 1e6);
    free(h);
    g->open(g->arg, b);
}

/* on_own releases the batch whose claim was just read back. */
static void on_own(void *arg, uint64_t serial)
{
    struct gate *g = arg;
    for (struct held *h = g->held; h; h = h->next)
        if (h->serial == serial) {
            release(g, h);
            break;
        }
    g->n_cancelled = 0;
}

static void on_delivery(void *arg, struct mq_event *ev)
{
    struct gate *g = arg;
    g->n_cancelled = 0;
    claims_on_delivery(g->claims, g->session, ev);
}

/* on_up consumes the stream from where it stopped; the claims of the
 * batches waiting go out (again, for those sent on the lost connection: a
 * claim read twice is harmless, only the first release counts). */
static int on_up(void *arg, struct mq *mq)
{
    struct gate *g = arg;
    return claims_on_up(g->claims, mq);
}

static void on_down(void *arg)
{
    struct gate *g = arg;
    claims_on_down(g->claims);
    for (struct held *h = g->held; h; h = h->next)
        h->serial = 0;
}

int gate_fd(const struct gate *g)
{
    return session_fd(g->session);
}

/* claim_due tells whether h's claim is to be published (again). */
static bool claim_due(const struct held *h, int64_t now_us)
{
    return !h->serial || now_us - h->published_us >= (int64_t)CLAIM_AGAIN_MS * 1000;
}

int gate_timeout_ms(const struct gate *g, int64_t now_ms, int max_ms)
{
    int ms = claims_timeout_ms(g->claims, now_ms, session_timeout_ms(g->session, now_ms, max_ms));
    int64_t now_us = clock_mono_us();
    for (const struct held *h = g->held; h && session_up(g->session); h = h->next) {
        if (!h->serial) continue; /* published at the next run */
        int64_t left = h->published_us / 1000 + CLAIM_AGAIN_MS - now_us / 1000;
        if (left < ms) ms = left < 0 ? 0 : (int)left;
    }
    return ms;
}

void gate_run(struct gate *g, int64_t now_ms)
{
    session_run(g->session, now_ms);
    claims_turn(g->claims, g->session, now_ms);
    int64_t now_us = clock_mono_us();
    for (struct held *h = g->held; h && session_up(g->session); h = h->next) {
        if (!claim_due(h, now_us)) continue;
        if (h->serial)
            log_warn("a batch's claim was not read back within %d ms: publishing it again",
                     CLAIM_AGAIN_MS);
        if (!publish_claim(g, h)) break;
    }
}

struct gate *gate_new(const struct cfg *cfg, struct metrics *metrics, gate_open_fn open, void *arg)
{
    static const double waits[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2};
    struct gate *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->cfg = cfg;
    g->open = open;
    g->arg = arg;
    buf_init(&g->msg, 1 << 20);
    g->m_wait = metrics_histogram(metrics, "sluice_worker_claim_seconds",
                                  "Time from a batch's claim to reading it back (the wait a "
                                  "batch makes before its calls, so that cancels win or lose).",
                                  NULL, waits, 10);
    g->m_cancelled =
        metrics_counter(metrics, "sluice_worker_cancelled_total",
                        "Requests not called because their client cancelled them.", NULL);
    g->cancelled = calloc(ARBITER_MAX_CLAIM, sizeof *g->cancelled);
    char instance[ID_LEN + 1];
    struct claims_params cp = {
        .cfg = cfg, .instance = instance, .sink = {g, on_claim, NULL}, .on_own = on_own};
    if (id_new(instance, clock_real_ms()) == 0) g->claims = claims_new(&cp);
    struct session_params sp = {
        .cfg = cfg,
        .name = "sluice-worker claims",
        .hooks = {.arg = g, .on_up = on_up, .on_down = on_down, .on_delivery = on_delivery},
    };
    if (!g->claims || !g->m_wait || !g->m_cancelled || !g->cancelled ||
        !(g->session = session_new(&sp))) {
        gate_free(g);
        return NULL;
    }
    return g;
}

void gate_free(struct gate *g)
{
    if (!g) return;
    session_free(g->session);
    gate_forget(g);
    claims_free(g->claims);
    buf_free(&g->msg);
    free(g->cancelled);
    free(g);
}
