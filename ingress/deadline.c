/* deadline.c: the watcher of the whole-request deadline (see deadline.h).
 *
 * A connection is in one of these states; the HTTP layer's threads and the
 * watcher move it with compare-and-swap, so that exactly one of "answer it"
 * and "cut it" happens to a request:
 *
 *   REBASE     between requests; the watcher has yet to note how many bytes
 *              the socket has received (what belonged to the last request)
 *   WAITING    between requests, that count noted: more bytes mean a request
 *   READING    a request is arriving, since started_ms
 *   ANSWERING  the HTTP layer has it whole (or refused it): no deadline
 *   CUT        the watcher cut it; the connection is closing
 *
 * The watcher ticks every tenth of the timeout (100 ms to 1 s), so a request
 * is cut between its deadline and one tick later. */
#include "deadline.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "clock.h"

#define BATCH 256 /* connections walked per hold of the lock */

enum { REBASE, WAITING, READING, ANSWERING, CUT };

struct deadline_conn {
    int fd;
    size_t index; /* in d->conns; under d->lock */
    _Atomic int state;
    _Atomic int64_t started_ms;
    uint64_t base; /* bytes received before the request; the watcher's */
};

struct deadline {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    struct deadline_conn **conns;
    size_t n, cap;
    long timeout_ms, tick_ms;
    bool plain;
    void (*on_cut)(void *arg);
    void *arg;
    pthread_t thread;
};

static const char BODY[] = "{\"error\":{\"code\":\"request_timeout\",\"message\":\"the request did "
                           "not arrive whole within request_timeout_s\"}}";

/* received returns the bytes the socket fd has received, or -1. */
static int64_t received(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return -1;
    return (int64_t)ti.tcpi_bytes_received;
}

/* cut answers 408 (plain HTTP) and shuts the socket down: libmicrohttpd's
 * next read sees the end, and it closes the connection. */
static void cut(struct deadline *d, struct deadline_conn *c)
{
    if (d->plain) {
        char head[192];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         sizeof BODY - 1);
        struct iovec iov[2] = {{head, (size_t)n}, {(void *)BODY, sizeof BODY - 1}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        (void)sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    shutdown(c->fd, SHUT_RDWR);
    if (d->on_cut) d->on_cut(d->arg);
}

/* look moves c on by what the socket and the clock say; d->lock is held. */
static void look(struct deadline *d, struct deadline_conn *c, int64_t now)
{
    int s = atomic_load(&c->state);
    int64_t bytes;
    if (s == REBASE || s == WAITING) {
        if ((bytes = received(c->fd)) < 0) return;
        if (s == REBASE) {
            c->base = (uint64_t)bytes;
            atomic_compare_exchange_strong(&c->state, &s, WAITING);
        } else if ((uint64_t)bytes > c->base) {
            atomic_store(&c->started_ms, now);
            atomic_compare_exchange_strong(&c->state, &s, READING);
        }
        return;
    }
    if (s == READING && now - atomic_load(&c->started_ms) > d->timeout_ms &&
        atomic_compare_exchange_strong(&c->state, &s, CUT))
        cut(d, c);
}

/* walk looks at every connection, a batch per hold of the lock, so that
 * the HTTP threads opening and closing connections never wait long. */
static void walk(struct deadline *d)
{
    int64_t now = clock_mono_ms();
    size_t i = 0;
    pthread_mutex_lock(&d->lock);
    while (!d->stop && i < d->n) {
        for (size_t end = i + BATCH; i < end && i < d->n; i++)
            look(d, d->conns[i], now);
        pthread_mutex_unlock(&d->lock);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
}

static void *watch(void *arg)
{
    struct deadline *d = arg;
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        at.tv_nsec += d->tick_ms * 1000000L;
        at.tv_sec += at.tv_nsec / 1000000000L;
        at.tv_nsec %= 1000000000L;
        while (!d->stop && pthread_cond_timedwait(&d->wake, &d->lock, &at) != ETIMEDOUT) {
        }
        if (d->stop) break;
        pthread_mutex_unlock(&d->lock);
        walk(d);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

struct deadline *deadline_new(long timeout_ms, bool plain, void (*on_cut)(void *arg), void *arg)
{
    pthread_condattr_t ca;
    struct deadline *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->timeout_ms = timeout_ms;
    d->tick_ms = timeout_ms / 10 < 100 ? 100 : timeout_ms / 10 > 1000 ? 1000 : timeout_ms / 10;
    d->plain = plain;
    d->on_cut = on_cut;
    d->arg = arg;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&d->thread, NULL, watch, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    return d;
}

void deadline_free(struct deadline *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    for (size_t i = 0; i < d->n; i++)
        free(d->conns[i]);
    free(d->conns);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

struct deadline_conn *deadline_open(struct deadline *d, int fd)
{
    struct deadline_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    atomic_init(&c->state, WAITING); /* nothing received yet: base 0 */
    pthread_mutex_lock(&d->lock);
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        struct deadline_conn **more = realloc(d->conns, cap * sizeof *more);
        if (!more) {
            pthread_mutex_unlock(&d->lock);
            free(c);
            return NULL;
        }
        d->conns = more;
        d->cap = cap;
    }
    c->index = d->n;
    d->conns[d->n++] = c;
    pthread_mutex_unlock(&d->lock);
    return c;
}

void deadline_close(struct deadline *d, struct deadline_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&d->lock);
    struct deadline_conn *last = d->conns[--d->n];
    d->conns[c->index] = last;
    last->index = c->index;
    pthread_mutex_unlock(&d->lock);
    free(c);
}

void deadline_begun(struct deadline_conn *c)
{
    if (!c) return;
    int s = atomic_load(&c->state);
    if (s != REBASE && s != WAITING) return;
    atomic_store(&c->started_ms, clock_mono_ms());
    atomic_compare_exchange_strong(&c->state, &s, READING);
}

bool deadline_claim(struct deadline_conn *c)
{
    if (!c) return true;
    int s = atomic_load(&c->state);
    while (s != CUT && s != ANSWERING)
        if (atomic_compare_exchange_weak(&c->state, &s, ANSWERING)) return true;
    return s == ANSWERING;
}

void deadline_rearm(struct deadline_conn *c)
{
    if (!c) return;
    int s = atomic_load(&c->state);
    while (s != CUT && !atomic_compare_exchange_weak(&c->state, &s, REBASE)) {
    }
}

long deadline_watched(struct deadline *d)
{
    pthread_mutex_lock(&d->lock);
    long n = (long)d->n;
    pthread_mutex_unlock(&d->lock);
    return n;
}
