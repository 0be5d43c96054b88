/* breaker.c: the circuit breaker of one upstream (see breaker.h). */
#include "breaker.h"

#include <stdlib.h>
#include <string.h>

int breaker_init(struct breaker *b, const struct breaker_policy *policy)
{
    memset(b, 0, sizeof(*b));
    b->policy = policy;
    b->state = BREAKER_CLOSED;
    b->open_ms = policy->open_ms;
    if (policy->enabled && policy->failure_ratio > 0) {
        b->slots = calloc((size_t)policy->window_s, sizeof(*b->slots));
        if (!b->slots) return -1;
    }
    return 0;
}

void breaker_free(struct breaker *b)
{
    if (!b) return;
    free(b->slots);
    b->slots = NULL;
}

/* slot returns the window's slot for now's second, emptied if it held an older one. */
static struct breaker_slot *slot(struct breaker *b, int64_t now_ms)
{
    int64_t second = now_ms / 1000;
    struct breaker_slot *s = &b->slots[second % b->policy->window_s];
    if (s->second != second) *s = (struct breaker_slot){.second = second};
    return s;
}

static bool ratio_exceeded(struct breaker *b, int64_t now_ms)
{
    const struct breaker_policy *p = b->policy;
    int64_t oldest = now_ms / 1000 - p->window_s + 1;
    uint64_t calls = 0, failures = 0;
    for (long i = 0; i < p->window_s; i++) {
        if (b->slots[i].second < oldest) continue;
        calls += b->slots[i].calls;
        failures += b->slots[i].failures;
    }
    return calls >= (uint64_t)(p->min_calls > 0 ? p->min_calls : 1) &&
           (double)failures >= p->failure_ratio * (double)calls;
}

static void reset_window(struct breaker *b)
{
    if (b->slots) memset(b->slots, 0, (size_t)b->policy->window_s * sizeof(*b->slots));
    b->consecutive = 0;
}

static void open_for(struct breaker *b, long ms, int64_t now_ms)
{
    b->state = BREAKER_OPEN;
    b->open_ms = ms;
    b->open_until_ms = now_ms + ms;
    b->probing = false;
    b->proven = false;
    b->opened++;
    reset_window(b);
}

bool breaker_allow(struct breaker *b, int64_t now_ms)
{
    if (!b->policy->enabled) return true;
    if (b->state == BREAKER_OPEN && now_ms >= b->open_until_ms) {
        b->state = BREAKER_HALF_OPEN;
        b->probing = false;
    }
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_HALF_OPEN:
        if (b->probing) return false;
        b->probing = true;
        return true;
    case BREAKER_OPEN:
        break;
    }
    return false;
}

static void record_closed(struct breaker *b, bool failed, int64_t now_ms)
{
    const struct breaker_policy *p = b->policy;
    b->consecutive = failed ? b->consecutive + 1 : 0;
    if (!failed) b->proven = true;
    if (b->slots) {
        struct breaker_slot *s = slot(b, now_ms);
        s->calls++;
        s->failures += failed;
    }
    bool open = p->consecutive_failures > 0 && b->consecutive >= p->consecutive_failures;
    if (!open && failed && b->slots) open = ratio_exceeded(b, now_ms);
    if (open) open_for(b, p->open_ms, now_ms);
}

void breaker_record(struct breaker *b, bool failed, int64_t now_ms)
{
    const struct breaker_policy *p = b->policy;
    if (!p->enabled) return;
    switch (b->state) {
    case BREAKER_CLOSED:
        record_closed(b, failed, now_ms);
        break;
    case BREAKER_HALF_OPEN:
        if (!b->probing) break; /* a call started before the breaker opened */
        if (failed) {
            long next = b->open_ms > p->max_open_ms / 2 ? p->max_open_ms : b->open_ms * 2;
            open_for(b, next, now_ms);
        } else {
            b->state = BREAKER_CLOSED;
            b->probing = false;
            b->proven = true;
            b->open_ms = p->open_ms;
            reset_window(b);
        }
        break;
    case BREAKER_OPEN:
        break; /* a call started before the breaker opened: it proves nothing new */
    }
}

void breaker_cancel(struct breaker *b)
{
    if (b->state == BREAKER_HALF_OPEN) b->probing = false;
}

enum breaker_state breaker_state(const struct breaker *b, int64_t now_ms)
{
    if (b->state == BREAKER_OPEN && now_ms >= b->open_until_ms) return BREAKER_HALF_OPEN;
    return b->state;
}

bool breaker_on_trial(const struct breaker *b)
{
    return b->policy->enabled && b->state == BREAKER_CLOSED && (!b->proven || b->consecutive > 0);
}

int64_t breaker_next_ms(const struct breaker *b)
{
    return b->state == BREAKER_OPEN ? b->open_until_ms : 0;
}

const char *breaker_state_name(enum breaker_state s)
{
    static const char *const names[] = {"closed", "open", "half_open"};
    return names[s];
}
