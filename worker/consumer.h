/* consumer.h: the worker's engine. One thread owns the broker connection and
 * the curl multi handle: it consumes requests, forms batches (up to
 * batch_size, lingering at most batch_linger_ms, and not at all when nothing
 * else is in flight), calls the backends, publishes one events message per
 * batch plus the dead and retry messages, and acks each delivery only after
 * everything its outcome needed was confirmed by the broker. */
#ifndef SLUICE_CONSUMER_H
#define SLUICE_CONSUMER_H

#include <stdbool.h>

#include "config.h"
#include "metrics.h"

struct consumer;

struct consumer *consumer_new(const struct cfg *cfg, struct metrics *metrics);
void consumer_free(struct consumer *c);
/* consumer_run serves until a signal arrives on signal_fd (a signalfd), then
 * stops consuming, finishes or hands back what it holds within
 * shutdown_grace_ms, and returns 0. */
int consumer_run(struct consumer *c, int signal_fd);
/* consumer_ready tells whether both of the worker's broker connections are
 * up: the consumer's, and the gate's (gate.h), without which every first
 * attempt waits. Safe to call from any thread. */
bool consumer_ready(struct consumer *c);

#endif
