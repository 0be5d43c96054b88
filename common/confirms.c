/* confirms.c: matching publisher confirms to publishes (see confirms.h). */
#include "confirms.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONFIRMS_MIN_CAP 64

void confirms_init(struct confirms *c)
{
    *c = (struct confirms){0};
}

void confirms_free(struct confirms *c)
{
    free(c->ring);
    confirms_init(c);
}

static struct confirm_rec *at(const struct confirms *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cap];
}

/* grow doubles the ring, unwrapping it so the records start at index 0. */
static int grow(struct confirms *c)
{
    size_t cap = c->cap ? c->cap * 2 : CONFIRMS_MIN_CAP;
    struct confirm_rec *ring = malloc(cap * sizeof(*ring));
    if (!ring) return -ENOMEM;
    for (size_t i = 0; i < c->n; i++)
        ring[i] = *at(c, i);
    free(c->ring);
    c->ring = ring;
    c->cap = cap;
    c->head = 0;
    return 0;
}

int confirms_add(struct confirms *c, uint64_t seq, void *token, const amqp_bytes_t *message_id,
                 int64_t sent_ms)
{
    if (c->n == c->cap && grow(c) < 0) return -ENOMEM;
    struct confirm_rec *r = at(c, c->n);
    *r = (struct confirm_rec){.seq = seq, .token = token, .sent_ms = sent_ms};
    if (message_id && message_id->len == ID_LEN) {
        memcpy(r->id, message_id->bytes, ID_LEN);
        r->has_id = true;
    }
    c->n++;
    return 0;
}

bool confirms_oldest(const struct confirms *c, int64_t *sent_ms)
{
    for (size_t i = 0; i < c->n; i++)
        if (!at(c, i)->done) {
            *sent_ms = at(c, i)->sent_ms;
            return true;
        }
    return false;
}

/* trim drops settled records from the head. */
static void trim(struct confirms *c)
{
    while (c->n && at(c, 0)->done) {
        c->head = (c->head + 1) % c->cap;
        c->n--;
    }
    if (!c->n) c->head = 0;
}

static enum confirm_outcome outcome(const struct confirm_rec *r, bool ok)
{
    if (r->returned) return CONFIRM_RETURNED;
    return ok ? CONFIRM_ACKED : CONFIRM_NACKED;
}

/* find returns the index of the record of seq (records are in sequence
 * order), or c->n. */
static size_t find(const struct confirms *c, uint64_t seq)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(c, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && at(c, lo)->seq == seq ? lo : c->n;
}

void confirms_ack(struct confirms *c, uint64_t tag, bool multiple, bool ok, confirm_fn fn,
                  void *arg)
{
    if (!multiple) {
        size_t i = find(c, tag);
        if (i == c->n || at(c, i)->done) return;
        struct confirm_rec r = *at(c, i);
        at(c, i)->done = true;
        trim(c);
        fn(arg, r.token, outcome(&r, ok));
        return;
    }
    /* Each record leaves the ring before its callback runs, and the loop
     * reads the ring afresh, so a callback may add records (even grow it). */
    while (c->n && at(c, 0)->seq <= tag) {
        struct confirm_rec r = *at(c, 0);
        at(c, 0)->done = true;
        trim(c);
        if (!r.done) fn(arg, r.token, outcome(&r, ok));
    }
}

bool confirms_return(struct confirms *c, amqp_bytes_t id)
{
    if (id.len != ID_LEN) return false;
    for (size_t i = 0; i < c->n; i++) {
        struct confirm_rec *r = at(c, i);
        if (!r->done && !r->returned && r->has_id && memcmp(r->id, id.bytes, ID_LEN) == 0) {
            r->returned = true;
            return true;
        }
    }
    return false;
}

void confirms_lose(struct confirms *c, confirm_fn fn, void *arg)
{
    while (c->n) {
        struct confirm_rec r = *at(c, 0);
        at(c, 0)->done = true;
        trim(c);
        if (!r.done) fn(arg, r.token, CONFIRM_LOST);
    }
}

size_t confirms_pending(const struct confirms *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += !at(c, i)->done;
    return n;
}
