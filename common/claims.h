/* claims.h: a reader and writer of the claims stream (arbiter.h), shared by
 * the worker's gate and the ingress's control thread, over a session their
 * owner runs (the owner's session hooks call claims_on_up, claims_on_down
 * and claims_on_delivery; its loop calls claims_turn).
 *
 * It feeds every message, in stream order, to its arbiter, remembers the
 * offset to resume from after a reconnect (from the stream's start the
 * first time, so its arbiter holds what every other reader's does), and acks
 * lazily: a stream needs acks only to grant credit, and each ack is work for
 * the broker. Messages it publishes carry the owner's instance as app_id
 * and a serial as correlation_id; when one is read back, after the arbiter
 * reported its verdicts to the sink, on_own(arg, serial) runs. */
#ifndef SLUICE_CLAIMS_H
#define SLUICE_CLAIMS_H

#include <stdint.h>

#include "arbiter.h"
#include "buf.h"
#include "config.h"
#include "session.h"

struct claims_params {
    const struct cfg *cfg; /* must outlive the reader */
    const char *instance;  /* copied */
    struct arbiter_sink sink;
    void (*on_own)(void *arg, uint64_t serial); /* arg is sink.arg */
};

struct claims;

/* claims_new returns NULL on ENOMEM. */
struct claims *claims_new(const struct claims_params *p);
void claims_free(struct claims *c);

/* The owner's session hooks. claims_on_up consumes from where the last
 * connection stopped; -1 fails the connection. */
int claims_on_up(struct claims *c, struct mq *mq);
void claims_on_down(struct claims *c);
void claims_on_delivery(struct claims *c, struct session *s, struct mq_event *ev);
/* claims_turn acks what is due; claims_timeout_ms bounds the owner's sleep
 * so that a due ack is not late. */
void claims_turn(struct claims *c, struct session *s, int64_t now_ms);
int claims_timeout_ms(const struct claims *c, int64_t now_ms, int max_ms);

/* claims_publish publishes msg (arbiter_claim_msg or arbiter_cancel_msg)
 * and sets *serial; the SESSION_* result of session_publish. */
int claims_publish(struct claims *c, struct session *s, const struct buf *msg, uint64_t *serial);

#endif
