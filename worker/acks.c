/* acks.c: the multiple-ack guard (see acks.h). */
#include "acks.h"

#include <stdbool.h>

static bool any_older(struct job *const *jobs, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (jobs[i]->delivery_tag < tag) return true;
    return false;
}

uint64_t acks_multiple_tag(const struct batch *b, const struct acks_others *o)
{
    uint64_t newest = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->jobs[i]->dead_letter) return 0;
        if (b->jobs[i]->delivery_tag > newest) newest = b->jobs[i]->delivery_tag;
    }
    if (o->held && any_older(o->held->jobs, o->held->n, newest)) return 0;
    if (o->forming && o->forming != b && any_older(o->forming->jobs, o->forming->n, newest))
        return 0;
    for (const struct batch *x = o->inflight; x; x = x->next)
        if (x != b && any_older(x->jobs, x->n, newest)) return 0;
    for (size_t i = 0; i < o->n_lines; i++)
        for (const struct job *j = o->lines[i]; j; j = j->wait_next)
            if (j->delivery_tag < newest) return 0;
    return newest;
}
