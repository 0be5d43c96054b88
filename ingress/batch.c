/* batch.c: a batch submission (see batch.h). What each item holds until the
 * answer (a pending count, a pending idempotency key, a cache key to note)
 * is its struct submission here, settled once: by submit_contract itself
 * when it answers the item in place, else by the group's verdict.
 *
 * Two items with one idempotency key: the first runs the contract; the
 * second would find the key pending (409 idempotency_in_progress) and so
 * is decided here instead, as a single submit made after the first would
 * be: the first's request again (replayed) when it is the same request,
 * else 422 idempotency_key_reused. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "submit.h"

struct batch {
    struct request *r;
    struct bulk *b;
    struct submission subs[BULK_MAX];
    int twin[BULK_MAX];    /* -1, or the earlier item whose request this one repeats */
    size_t sent[BULK_MAX]; /* indexes of the items handed to the publisher, in order */
    size_t n_sent;
};

static void batch_free(struct batch *t)
{
    if (!t) return;
    bulk_free(t->b);
    free(t);
}

/* answer_batch renders t's results into a and frees t. */
static void answer_batch(struct batch *t, struct answer *a)
{
    struct buf out;
    int status;
    long retry_after_s;
    buf_init(&out, 16 << 20);
    if (bulk_render(t->b, &out, &status, &retry_after_s) < 0) {
        answer_error(a, 500, "internal_error", "out of memory");
    } else {
        answer_text(a, status, "application/json", &out);
        if (retry_after_s > 0 && (status == 429 || status == 503))
            (void)answer_header(a, "Retry-After", "%ld", retry_after_s);
    }
    buf_free(&out);
    batch_free(t);
}

/* decide_twins gives each repeat of an earlier item that item's outcome. */
static void decide_twins(struct batch *t)
{
    struct request *r = t->r;
    for (size_t i = 0; i < t->b->n; i++) {
        if (t->twin[i] < 0) continue;
        struct bulk_item *it = &t->b->items[i], *first = &t->b->items[t->twin[i]];
        struct answer a = {0};
        if (first->status == 202) {
            submit_replay(r->app, r->who.tenant, t->subs[t->twin[i]].id, &a);
            bulk_item_answer(it, &a, true);
        } else {
            it->status = first->status;
            it->retry_after_s = first->retry_after_s;
            it->doc = strdup(first->doc);
            if (!it->doc) bulk_item_fail(it, 500, "internal_error", "out of memory");
        }
    }
}

/* on_group runs on a publisher thread once the group is settled. */
static void on_group(void *arg, const int *statuses, size_t n)
{
    struct batch *t = arg;
    struct request *r = t->r;
    for (size_t k = 0; k < n; k++) {
        size_t i = t->sent[k];
        struct answer a = {0};
        if (submit_verdict(r->app, &r->who, &t->subs[i], statuses[k], &a) < 0)
            submit_replay(r->app, r->who.tenant, t->subs[i].id, &a); /* without its position */
        bulk_item_answer(&t->b->items[i], &a, false);
    }
    decide_twins(t);
    answer_batch(t, &r->answer);
    r->io->resume(r);
}

/* repeats tells whether item i, refused because its key is pending, repeats
 * an earlier item of the batch: true with t->twin[i] set, or with a, the
 * 422 of another request under that key. */
static bool repeats(struct batch *t, size_t i, struct answer *a)
{
    const struct envelope *env = &t->b->items[i].env;
    for (size_t j = 0; j < i; j++) {
        const struct envelope *first = &t->b->items[j].env;
        if (!t->subs[j].pending_key || strcmp(t->subs[j].id, env->id) != 0) continue;
        free(a->body);
        if (strcmp(first->fingerprint, env->fingerprint) == 0) {
            t->twin[i] = (int)j;
            return true;
        }
        submit_refuse_reused(a);
        return false;
    }
    return false;
}

/* run_item takes item i through the builder, the route and the contract:
 * decided in place, or added to the group. */
static void run_item(struct batch *t, size_t i, bool ready)
{
    struct request *r = t->r;
    struct bulk_item *it = &t->b->items[i];
    struct env_error err;
    struct auth_refusal why;
    struct answer a = {0};
    it->env.tenant = strdup(r->who.tenant);
    if (!it->env.tenant) return bulk_item_fail(it, 500, "internal_error", "out of memory");
    if (envelope_from_json(&it->env, it->text, it->len, &err) < 0)
        return bulk_item_fail(it, err.status, err.code, err.message);
    if (!auth_route(r->app->auth, &r->who, it->env.route, strlen(it->env.route), &why))
        return bulk_item_fail(it, why.status, why.code, why.message);
    if (!submit_contract(r->app, &r->who, &t->subs[i], &it->env, &a)) {
        if (a.status == 409 && repeats(t, i, &a)) return;
        return bulk_item_answer(it, &a, answer_find(&a, "Idempotent-Replayed") != NULL);
    }
    if (!ready) {
        submit_settle(r->app, &r->who, &t->subs[i], false);
        return bulk_item_fail(it, 503, "broker_unavailable", SUBMIT_BROKER_DOWN);
    }
    t->sent[t->n_sent++] = i;
}

bool batch_submit(struct request *r, struct answer *a)
{
    struct env_error err;
    struct envelope *group[BULK_MAX];
    struct batch *t = calloc(1, sizeof *t);
    if (!t || !(t->b = bulk_new())) {
        free(t);
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
    t->r = r;
    if (bulk_split(t->b, r->body.data ? r->body.data : "", r->body.len, &err) < 0) {
        answer_error(a, err.status, err.code, err.message);
        batch_free(t);
        return false;
    }
    bool ready = publisher_ready(r->app->publisher);
    for (size_t i = 0; i < t->b->n; i++) {
        t->twin[i] = -1;
        run_item(t, i, ready);
    }
    if (t->n_sent == 0) {
        decide_twins(t);
        answer_batch(t, a);
        return false;
    }
    for (size_t k = 0; k < t->n_sent; k++)
        group[k] = &t->b->items[t->sent[k]].env;
    r->io->suspend(r);
    if (publisher_submit_group(r->app->publisher, group, t->n_sent, on_group, t) < 0) {
        int lost[BULK_MAX];
        for (size_t k = 0; k < t->n_sent; k++)
            lost[k] = 503;
        on_group(t, lost, t->n_sent);
    }
    return true;
}
