/* session.h: one broker session, the single place where sluice's three
 * broker clients (the ingress's publisher thread and events thread, the
 * worker's event loop) connect, declare the topology, select confirms,
 * reconnect with backoff, track publisher confirms, publish status events
 * and poll queue statistics.
 *
 * A session owns one struct mq at a time and belongs to one thread. It never
 * blocks the caller's loop except while connecting (bounded by the connect
 * timeout): the loop polls session_fd() with session_timeout_ms() and then
 * calls session_run(), which connects when due, polls statistics when due,
 * reads every frame already available and hands them to the hooks, and tears
 * a failed connection down. amqp_url may name several nodes of one cluster:
 * the first attempt goes to one picked at random, and every failed attempt
 * or lost connection moves on to the next (common/nodes.h). Callbacks run only inside session_run
 * and session_free, never inside session_publish, so a failed publish never frees anything under
 * its caller's feet: the caller sees SESSION_DOWN, and the teardown (every tracked publish reported
 * CONFIRM_LOST, then on_down) comes at the next session_run. */
#ifndef SLUICE_SESSION_H
#define SLUICE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "confirms.h"
#include "mq.h"

/* What the session tells its owner. Every hook may be NULL. */
struct session_hooks {
    void *arg;
    /* on_up runs once the connection is open, the topology declared and
     * confirms selected: the owner starts consuming, publishes a marker.
     * Returning -1 drops the connection (retried with backoff). */
    int (*on_up)(void *arg, struct mq *mq);
    /* on_down runs after a connection on_up was called for is closed, after every
     * tracked publish of it was reported lost. Deliveries of that connection
     * can no longer be acked. */
    void (*on_down)(void *arg);
    /* on_delivery receives MQ_DELIVERY and MQ_CANCELLED events; the event is
     * released after the call. */
    void (*on_delivery)(void *arg, struct mq_event *ev);
    /* on_confirm reports each tracked publish once (see confirms.h). */
    void (*on_confirm)(void *arg, void *token, enum confirm_outcome outcome);
    /* on_stats gives the ready messages and consumers of stats_queues[i]. */
    void (*on_stats)(void *arg, size_t i, uint32_t messages, uint32_t consumers);
};

struct session_params {
    const struct cfg *cfg; /* must outlive the session */
    const char *name;      /* shown in the management UI; copied */
    bool confirms;         /* select publisher confirms (needed to track publishes) */
    /* Queues whose statistics are polled (passive declare) at once after
     * connecting and then every stats_every_ms; borrowed, must outlive. */
    const char *const *stats_queues;
    size_t n_stats_queues;
    int stats_every_ms;
    struct session_hooks hooks;
};

/* What a publish did. With SESSION_OK and a token, on_confirm reports the
 * publish later, exactly once; otherwise it never does. */
enum session_pub {
    SESSION_OK = 0,
    SESSION_REFUSED = -1, /* this message cannot be sent (too big for AMQP, no memory):
                             nothing was written and the connection is fine */
    SESSION_DOWN = -2,    /* not connected, or the connection just failed */
};

struct session;

/* session_new makes a session whose first connection is due at once. NULL
 * on ENOMEM, or when cfg->amqp_url is not a valid list (logged; config.c
 * refuses such a list first). */
struct session *session_new(const struct session_params *p);
/* session_free closes a live connection politely (reporting its tracked
 * publishes lost, then on_down) and frees. NULL is a no-op. */
void session_free(struct session *s);

bool session_up(const struct session *s);
/* session_node is "host:port" of the node connected to, or, while down, of
 * the node the next attempt goes to (amqp_url may list several: see
 * nodes.h). Valid until the next session_run. */
const char *session_node(const struct session *s);
/* session_fd is the socket to poll for input, or -1 while down. */
int session_fd(const struct session *s);
/* session_timeout_ms says how long the owner's loop may sleep from now: 0
 * when frames wait in memory (poll would not see them) or a teardown is
 * due, else until the next connect attempt or statistics poll, at most max_ms. */
int session_timeout_ms(const struct session *s, int64_t now_ms, int max_ms);
/* session_run does the session's share of one loop turn (see above). now_ms
 * is the monotonic clock. */
void session_run(struct session *s, int64_t now_ms);
/* session_break marks the connection failed for a reason of the owner's
 * (out of memory, a consumer cancelled); the teardown comes at the next
 * session_run. */
void session_break(struct session *s, const char *why);
/* session_mq is the live connection, for acks, nacks, qos and consumers; NULL
 * while down. A failure there breaks the session like any other. */
struct mq *session_mq(struct session *s);

/* session_publish publishes to exchange with routing key; token (NULL: not
 * tracked) comes back through on_confirm. message_id in props, when it is an
 * ID, matches a basic.return to the publish. */
int session_publish(struct session *s, const char *exchange, const char *key,
                    const amqp_basic_properties_t *props, const void *body, size_t len,
                    void *token);
/* session_publish_transient publishes a message that may be lost: not
 * tracked, and not mandatory (reaching no queue is no error and brings no
 * basic.return). For the workers' reports (common/report.h). */
int session_publish_transient(struct session *s, const char *exchange, const char *key,
                              const amqp_basic_properties_t *props, const void *body, size_t len);
/* session_publish_events publishes msg (built with common/event.h) to the
 * events stream: persistent JSON, with app_id when not NULL. It goes on the
 * connection's stream channel (mq.h, MQ_STREAM_CHANNEL), so its confirm may
 * come before or after those of earlier publishes on the main channel. */
int session_publish_events(struct session *s, const struct buf *msg, const char *app_id,
                           void *token);
/* session_declare_retry declares the retry queue of delay_ms on this
 * connection unless it already did. 0, or -1 (the session is then broken). */
int session_declare_retry(struct session *s, long delay_ms);
/* session_cork holds small writes back (TCP_CORK) while on, so a group of
 * publishes leaves in a few full segments. */
void session_cork(struct session *s, bool on);

/* The session as a set of functions, so that a test can put a fake broker
 * behind the ingress's publisher (tests/unit/test_publisher.c). */
struct session_iface {
    struct session *(*create)(const struct session_params *p);
    void (*destroy)(struct session *s);
    int (*fd)(const struct session *s);
    int (*timeout_ms)(const struct session *s, int64_t now_ms, int max_ms);
    void (*run)(struct session *s, int64_t now_ms);
    void (*cork)(struct session *s, bool on);
    int (*publish)(struct session *s, const char *exchange, const char *key,
                   const amqp_basic_properties_t *props, const void *body, size_t len, void *token);
    int (*publish_events)(struct session *s, const struct buf *msg, const char *app_id,
                          void *token);
};
/* session_amqp is the real one: the functions above. */
extern const struct session_iface session_amqp;

#endif
