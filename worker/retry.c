/* retry.c: the worker's retry heap and retry-queue rounding (see retry.h). */
#include "retry.h"

#include <stdlib.h>

void retry_heap_init(struct retry_heap *h)
{
    *h = (struct retry_heap){0};
}

void retry_heap_free(struct retry_heap *h)
{
    free(h->jobs);
    retry_heap_init(h);
}

static void swap(struct retry_heap *h, size_t a, size_t b)
{
    struct job *t = h->jobs[a];
    h->jobs[a] = h->jobs[b];
    h->jobs[b] = t;
}

int retry_heap_push(struct retry_heap *h, struct job *job)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct job **jobs = realloc(h->jobs, cap * sizeof(*jobs));
        if (!jobs) return -1;
        h->jobs = jobs;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->jobs[i] = job;
    while (i > 0 && h->jobs[(i - 1) / 2]->due_ms > h->jobs[i]->due_ms) {
        swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

struct job *retry_heap_peek(const struct retry_heap *h)
{
    return h->n ? h->jobs[0] : NULL;
}

struct job *retry_heap_pop(struct retry_heap *h)
{
    if (!h->n) return NULL;
    struct job *top = h->jobs[0];
    h->jobs[0] = h->jobs[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->jobs[l]->due_ms < h->jobs[m]->due_ms) m = l;
        if (r < h->n && h->jobs[r]->due_ms < h->jobs[m]->due_ms) m = r;
        if (m == i) break;
        swap(h, i, m);
        i = m;
    }
    return top;
}

long retry_queue_delay_ms(long delay_ms)
{
    long s = (delay_ms + 999) / 1000;
    return (s < 1 ? 1 : s) * 1000;
}
