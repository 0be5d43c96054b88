/* waiters.c: long-poll waiters (see waiters.h). A waiter is in one of three
 * places, always under w->lock: WAITING (in the ID table and the deadline
 * heap), DUE (on the due list, taken out of both: woken or past its
 * deadline) or ANSWERING (taken by the thread, whose callback runs without
 * the lock; the thread frees it afterwards). A wake and a deadline can
 * therefore never both answer one waiter: whoever moves it out of WAITING
 * decides. The thread sleeps until the nearest deadline or a signal. */
#include "waiters.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "id.h"

#define BUCKETS_START 1024

struct waiter {
    char id[ID_LEN];
    bool final;
    int64_t deadline_ms;
    size_t heap_pos;
    waiter_fn done;
    void *arg;
    struct waiter *next, *prev; /* the bucket's chain while waiting; next: the due list */
};

struct waiters {
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* the thread: something is due, a nearer deadline, stop */
    pthread_cond_t answered; /* drain: a batch of callbacks returned */
    struct waiter **buckets;
    size_t mask;    /* buckets - 1 */
    size_t waiting; /* in the table (and the heap) */
    size_t in_hand; /* due or answering */
    struct waiter **heap;
    size_t heap_cap;
    struct waiter *due_head, *due_tail;
    bool draining, stopping;
    pthread_t thread;
    struct metric *m_waiting, *m_final, *m_timeout;
};

static size_t bucket_of(const struct waiters *w, const char *id)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a, as the status index */
    for (int i = 0; i < ID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211u;
    return (size_t)(h ^ (h >> 32)) & w->mask;
}

/* ---- the deadline heap (a binary min-heap that knows each waiter's place) ---- */

static void heap_set(struct waiters *w, size_t i, struct waiter *x)
{
    w->heap[i] = x;
    x->heap_pos = i;
}

static void sift_up(struct waiters *w, size_t i)
{
    struct waiter *x = w->heap[i];
    while (i > 0 && w->heap[(i - 1) / 2]->deadline_ms > x->deadline_ms) {
        heap_set(w, i, w->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(w, i, x);
}

static void sift_down(struct waiters *w, size_t i)
{
    size_t n = w->waiting;
    struct waiter *x = w->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && w->heap[c + 1]->deadline_ms < w->heap[c]->deadline_ms) c++;
        if (w->heap[c]->deadline_ms >= x->deadline_ms) break;
        heap_set(w, i, w->heap[c]);
        i = c;
    }
    heap_set(w, i, x);
}

/* heap_remove takes x out of the heap, moving the last waiter into its slot;
 * w->waiting still counts x. */
static void heap_remove(struct waiters *w, struct waiter *x)
{
    size_t i = x->heap_pos, last = w->waiting - 1;
    if (i == last) return;
    struct waiter *moved = w->heap[last];
    heap_set(w, i, moved);
    w->waiting--; /* the sifts see the heap without its old last slot */
    sift_down(w, i);
    sift_up(w, moved->heap_pos);
    w->waiting++;
}

/* ---- the ID table ---- */

static void chain_unlink(struct waiters *w, struct waiter *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        w->buckets[bucket_of(w, x->id)] = x->next;
    if (x->next) x->next->prev = x->prev;
}

static void chain_push(struct waiters *w, struct waiter *x)
{
    struct waiter **head = &w->buckets[bucket_of(w, x->id)];
    x->prev = NULL;
    x->next = *head;
    if (*head) (*head)->prev = x;
    *head = x;
}

/* grow doubles the table and the heap's room when the waiters outnumber the
 * buckets; -1 when out of memory (nothing changed). */
static int grow(struct waiters *w)
{
    if (w->waiting < w->heap_cap && w->waiting <= w->mask) return 0;
    size_t cap = w->heap_cap * 2;
    struct waiter **heap = realloc(w->heap, cap * sizeof *heap);
    if (!heap) return -1;
    w->heap = heap;
    w->heap_cap = cap;
    if (w->waiting <= w->mask) return 0;
    size_t n = (w->mask + 1) * 2;
    struct waiter **buckets = calloc(n, sizeof *buckets);
    if (!buckets) return -1;
    free(w->buckets);
    w->buckets = buckets;
    w->mask = n - 1;
    for (size_t i = 0; i < w->waiting; i++)
        chain_push(w, w->heap[i]);
    return 0;
}

/* make_due moves a waiting x to the due list. Call with the lock held. */
static void make_due(struct waiters *w, struct waiter *x, bool final)
{
    chain_unlink(w, x);
    heap_remove(w, x);
    w->waiting--;
    w->in_hand++;
    x->final = final;
    x->next = NULL;
    if (w->due_tail)
        w->due_tail->next = x;
    else
        w->due_head = x;
    w->due_tail = x;
}

/* ---- the thread ---- */

/* answer_due calls every due waiter's callback without the lock, then frees
 * them. Called and returns with the lock held. */
static void answer_due(struct waiters *w)
{
    struct waiter *list = w->due_head;
    size_t n = 0, finals = 0;
    w->due_head = w->due_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    for (struct waiter *x = list, *next; x; x = next) {
        next = x->next;
        x->done(x->arg, x->final);
        finals += x->final;
        n++;
        free(x);
    }
    if (w->m_final) {
        metric_add(w->m_final, finals);
        metric_add(w->m_timeout, n - finals);
        metric_gauge_add(w->m_waiting, -(int64_t)n);
    }
    pthread_mutex_lock(&w->lock);
    w->in_hand -= n;
    pthread_cond_broadcast(&w->answered);
}

static void *waiters_main(void *arg)
{
    struct waiters *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping || w->due_head) {
        if (w->due_head) {
            answer_due(w);
            continue;
        }
        int64_t now = clock_mono_ms();
        while (w->waiting && w->heap[0]->deadline_ms <= now)
            make_due(w, w->heap[0], false);
        if (w->due_head) continue;
        if (w->waiting) {
            struct timespec ts = clock_mono_timespec(w->heap[0]->deadline_ms);
            pthread_cond_timedwait(&w->wake, &w->lock, &ts);
        } else if (!w->stopping) {
            pthread_cond_wait(&w->wake, &w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- the interface ---- */

int waiters_add(struct waiters *w, const char *id, int64_t deadline_ms, waiter_fn done, void *arg)
{
    struct waiter *x = calloc(1, sizeof *x);
    if (!x) return -1;
    memcpy(x->id, id, ID_LEN);
    x->deadline_ms = deadline_ms;
    x->done = done;
    x->arg = arg;
    pthread_mutex_lock(&w->lock);
    if (w->draining || grow(w) < 0) {
        pthread_mutex_unlock(&w->lock);
        free(x);
        return -1;
    }
    chain_push(w, x);
    heap_set(w, w->waiting++, x);
    sift_up(w, x->heap_pos);
    bool nearest = w->heap[0] == x;
    pthread_mutex_unlock(&w->lock);
    if (w->m_waiting) metric_gauge_add(w->m_waiting, 1);
    if (nearest) pthread_cond_signal(&w->wake);
    return 0;
}

void waiters_wake(struct waiters *w, const char *id)
{
    bool any = false;
    pthread_mutex_lock(&w->lock);
    if (w->waiting) {
        struct waiter *x = w->buckets[bucket_of(w, id)], *next;
        for (; x; x = next) {
            next = x->next;
            if (memcmp(x->id, id, ID_LEN) != 0) continue;
            make_due(w, x, true);
            any = true;
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (any) pthread_cond_signal(&w->wake);
}

void waiters_wake_cb(void *w, const char *id)
{
    waiters_wake(w, id);
}

size_t waiters_count(struct waiters *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->waiting + w->in_hand;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void waiters_drain(struct waiters *w)
{
    pthread_mutex_lock(&w->lock);
    w->draining = true;
    while (w->waiting)
        make_due(w, w->heap[w->waiting - 1], false);
    pthread_cond_signal(&w->wake);
    while (w->in_hand)
        pthread_cond_wait(&w->answered, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

struct waiters *waiters_new(struct metrics *metrics)
{
    struct waiters *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->mask = BUCKETS_START - 1;
    w->heap_cap = BUCKETS_START;
    w->buckets = calloc(BUCKETS_START, sizeof *w->buckets);
    w->heap = malloc(BUCKETS_START * sizeof *w->heap);
    if (metrics) {
        w->m_waiting = metrics_gauge(metrics, "sluice_ingress_waiters",
                                     "Long-poll clients waiting for a request to be final.", NULL);
        w->m_final = metrics_counter(metrics, "sluice_ingress_waits_total",
                                     "Long-poll waits answered, by why.", "end=\"final\"");
        w->m_timeout = metrics_counter(metrics, "sluice_ingress_waits_total",
                                       "Long-poll waits answered, by why.", "end=\"timeout\"");
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = w->buckets && w->heap && (!metrics || (w->m_waiting && w->m_final && w->m_timeout)) &&
              pthread_mutex_init(&w->lock, NULL) == 0 && pthread_cond_init(&w->wake, &ca) == 0 &&
              pthread_cond_init(&w->answered, NULL) == 0 &&
              pthread_create(&w->thread, NULL, waiters_main, w) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok) {
        free(w->buckets);
        free(w->heap);
        free(w);
        return NULL;
    }
    return w;
}

void waiters_free(struct waiters *w)
{
    if (!w) return;
    waiters_drain(w);
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_mutex_unlock(&w->lock);
    pthread_cond_signal(&w->wake);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->answered);
    free(w->buckets);
    free(w->heap);
    free(w);
}
