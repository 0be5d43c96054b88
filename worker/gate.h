/* gate.h: the worker's side of cancellation (common/arbiter.h). Before a
 * batch is called, the gate publishes a claim naming its first attempts on
 * the claims stream and holds the batch until it reads the claim back;
 * every cancel before the claim is then known, and the arbiter says which
 * requests were cancelled. Those are settled "cancelled" without a call;
 * the others are called. Retries are never held: a request called once was
 * claimed before any cancel that could win.
 *
 * The gate has its own broker session, which the worker's loop polls like
 * the consumer's (gate_fd, gate_timeout_ms, gate_run). It reads the claims
 * stream from its start, as every ingress does. A claim read back costs the
 * batch one stream round trip before its calls (docs/api.md gives the
 * figure). While the gate's connection is down, batches wait; their claims
 * are published again once it is back. */
#ifndef SLUICE_GATE_H
#define SLUICE_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "job.h"
#include "metrics.h"

struct gate;

/* gate_open_fn gets a batch back, its cancelled jobs with state
 * ST_CANCELLED; the batch is the caller's again. */
typedef void (*gate_open_fn)(void *arg, struct batch *b);

/* gate_new: cfg and metrics must outlive it. NULL on ENOMEM. */
struct gate *gate_new(const struct cfg *cfg, struct metrics *metrics, gate_open_fn open, void *arg);
/* gate_free forgets the batches it holds (their owner frees them). */
void gate_free(struct gate *g);

int gate_fd(const struct gate *g);
int gate_timeout_ms(const struct gate *g, int64_t now_ms, int max_ms);
/* gate_run does the gate's share of a loop turn; open runs from here. */
void gate_run(struct gate *g, int64_t now_ms);

/* gate_hold holds b until its claim is read back and returns true, or
 * returns false when b needs no claim (no first attempt): call it now. */
bool gate_hold(struct gate *g, struct batch *b);
/* gate_forget forgets every batch held: their deliveries are gone with the
 * consumer's connection (their owner frees them). */
void gate_forget(struct gate *g);
/* gate_session is the gate's broker session (without publisher confirms),
 * which also carries the worker's reports (reporter.h). */
struct session *gate_session(struct gate *g);
/* gate_holds tells whether b is held. */
bool gate_holds(const struct gate *g, const struct batch *b);

#endif
