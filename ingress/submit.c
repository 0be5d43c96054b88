/* submit.c: the client contract of a submission and its hand-off to the
 * publisher (see submit.h). What a submission holds until its answer (a
 * pending count, a pending idempotency key, a cache key to note) is in
 * r->sub and settled once, by on_published or on the way out. */
#include "submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "id.h"
#include "outurl.h"

/* append_position adds the queue_position and estimated_wait_s of a request
 * of tenant just accepted, from the status index, which has it from the
 * confirm on. */
static int append_position(struct buf *b, struct status_index *index, const char *id,
                           const char *tenant)
{
    uint32_t position;
    double wait;
    if (status_index_position(index, id, tenant, clock_real_ms(), &position, &wait) < 0) return 0;
    if (wait < 0)
        return buf_appendf(b, ",\"queue_position\":%u,\"estimated_wait_s\":null", position);
    return buf_appendf(b, ",\"queue_position\":%u,\"estimated_wait_s\":%.1f", position, wait);
}

/* answer_accepted fills a with the 202 for id in state, with its place in
 * its lane when confirmed; -1 when out of memory. */
static int answer_accepted(struct answer *a, struct app *app, const char *tenant, const char *id,
                           enum req_state state, bool cached, bool confirmed)
{
    struct buf b;
    buf_init(&b, 512);
    if (buf_appendf(&b, "{\"id\":\"%s\",\"status\":\"%s\",\"status_url\":\"/v1/requests/%s\"%s", id,
                    event_state_name(state), id, cached ? ",\"cached\":true" : "") < 0 ||
        (confirmed && append_position(&b, app->index, id, tenant) < 0) ||
        buf_appends(&b, "}") < 0) {
        buf_free(&b);
        return -1;
    }
    answer_text(a, 202, "application/json", &b);
    (void)answer_header(a, "Location", "/v1/requests/%s", id);
    return 0;
}

void submit_replay(struct app *app, const char *tenant, const char *id, struct answer *a)
{
    if (answer_accepted(a, app, tenant, id, ST_QUEUED, false, false) < 0)
        answer_error(a, 500, "internal_error", "out of memory");
    else
        (void)answer_header(a, "Idempotent-Replayed", "true");
}

void submit_refuse_reused(struct answer *a)
{
    answer_error(a, 422, "idempotency_key_reused",
                 "this Idempotency-Key was used for a different request");
}

void submit_settle(struct app *app, const struct principal *who, struct submission *sub,
                   bool accepted)
{
    if (sub->pending_limit) limits_done(app->limits, who->key);
    if (sub->pending_key) idem_end(app->idem, sub->id, who->tenant, accepted, clock_real_ms());
    if (accepted && sub->cache_key[0])
        cache_note(app->cache, sub->cache_key, sub->id, who->tenant, clock_real_ms());
    sub->pending_limit = sub->pending_key = false;
}

int submit_verdict(struct app *app, const struct principal *who, struct submission *sub, int status,
                   struct answer *a)
{
    int rc = 0;
    if (status == 202) {
        rc = answer_accepted(a, app, who->tenant, sub->id, ST_QUEUED, false, true);
    } else if (status == 500) {
        /* The broker refused this message alone (the publisher logged why):
         * retrying the same request cannot help, unlike a 503. */
        answer_error(a, 500, "internal_error",
                     "the broker cannot carry this request; nothing was queued (see the "
                     "ingress log)");
    } else {
        answer_error(a, 503, "broker_unavailable", SUBMIT_NOT_CONFIRMED);
    }
    submit_settle(app, who, sub, status == 202);
    answer_limits(a, &sub->limit);
    return rc;
}

/* on_published runs on a publisher thread, once per submission. */
static void on_published(void *arg, int status)
{
    struct request *r = arg;
    struct answer verdict = {0};
    /* The 202 written beforehand stays if the one with the position cannot be made. */
    if (submit_verdict(r->app, &r->who, &r->sub, status, &verdict) < 0) {
        answer_limits(&r->answer, &r->sub.limit);
    } else {
        free(r->answer.body);
        r->answer = verdict;
    }
    r->io->resume(r);
}

/* rate takes the key's token; false with the 429. */
static bool rate(struct app *app, const struct principal *who, struct submission *sub,
                 struct answer *a)
{
    struct limit_info *info = &sub->limit;
    sub->limit_known = true;
    if (limits_rate(app->limits, who->key, clock_real_ms(), clock_mono_us(), info)) return true;
    answer_error(a, 429, "rate_limited",
                 "this key's rate limit is reached; retry after Retry-After");
    (void)answer_header(a, "Retry-After", "%ld", info->retry_after_s);
    return false;
}

/* identify gives env its ID: derived from an idempotency key, whose repeat
 * is answered here (returns false with a), else drawn. */
static bool identify(struct app *app, struct submission *sub, struct envelope *env,
                     struct answer *a)
{
    if (!env->idempotency_key) {
        if (id_new(env->id, env->created_ms) == 0) return true;
        answer_error(a, 500, "internal_error", "cannot make a tracking id");
        return false;
    }
    /* Until the stream is read, a key seen by another replica may look new. */
    if (!events_caught_up(app->events)) {
        answer_error(a, 503, "not_ready",
                     "still reading the events stream; an idempotency key cannot be checked yet");
        return false;
    }
    idem_derive(app->idem, env->tenant, env->idempotency_key, strlen(env->idempotency_key),
                env->id);
    if (idem_fingerprint(env, env->fingerprint) < 0) {
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
    switch (idem_begin(app->idem, env->id, env->fingerprint, env->tenant, env->created_ms)) {
    case IDEM_NEW:
        sub->pending_key = true;
        memcpy(sub->id, env->id, sizeof sub->id);
        return true;
    case IDEM_REPLAY:
        submit_replay(app, env->tenant, env->id, a);
        return false;
    case IDEM_REUSED:
        submit_refuse_reused(a);
        return false;
    case IDEM_IN_PROGRESS:
        answer_error(a, 409, "idempotency_in_progress",
                     "a request with this Idempotency-Key is still being queued; retry shortly");
        return false;
    default:
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
}

/* cached answers a read that a request already answers (returns true). */
static bool cached(struct app *app, struct submission *sub, struct envelope *env, struct answer *a)
{
    const struct cfg_route *route = cfg_route_find(&app->cfg, env->route, strlen(env->route));
    struct status_brief b;
    if (!route || !cache_key(route, env, env->cache_key)) return false;
    if (!cache_lookup(app->cache, route, env->cache_key, env->tenant, clock_real_ms(), &b)) {
        memcpy(sub->cache_key, env->cache_key, sizeof sub->cache_key);
        return false;
    }
    if (answer_accepted(a, app, env->tenant, b.id, b.state, true, false) < 0)
        answer_error(a, 500, "internal_error", "out of memory");
    return true;
}

/* callback_allowed refuses (false with a) a callback URL whose host is not
 * in the route's callback_hosts: checked before anything is counted. */
static bool callback_allowed(struct app *app, const struct envelope *env, struct answer *a)
{
    if (!env->callback_url) return true;
    const struct cfg_route *route = cfg_route_find(&app->cfg, env->route, strlen(env->route));
    const char *why = route ? outurl_refusal(env->callback_url, &route->callback_hosts)
                            : "names a route this ingress does not know";
    if (!why) return true;
    char msg[256];
    snprintf(msg, sizeof msg, "callback_url %s", why);
    answer_error(a, 400, "callback_not_allowed", msg);
    return false;
}

bool submit_contract(struct app *app, const struct principal *who, struct submission *sub,
                     struct envelope *env, struct answer *a)
{
    bool go = false;
    if (!callback_allowed(app, env, a)) goto out;
    if (!rate(app, who, sub, a)) goto out;
    env->created_ms = clock_real_ms();
    if (env->priority > who->key->max_priority) env->priority = who->key->max_priority;
    if (!identify(app, sub, env, a) || cached(app, sub, env, a)) goto out;
    if (!limits_queue(app->limits, who->key, who->tenant)) {
        answer_error(a, 429, "quota_exceeded",
                     "this tenant has max_queued requests not yet final; retry when some finish");
        goto out;
    }
    sub->pending_limit = true;
    memcpy(sub->id, env->id, sizeof sub->id);
    go = true;
out:
    if (!go) {
        submit_settle(app, who, sub, false);
        answer_limits(a, &sub->limit);
    }
    return go;
}

/* hand_off publishes env; the 202 waits in r->answer for the confirm. */
static bool hand_off(struct request *r, struct envelope *env, struct answer *a)
{
    if (!publisher_ready(r->app->publisher)) {
        answer_error(a, 503, "broker_unavailable", SUBMIT_BROKER_DOWN);
        return false;
    }
    if (answer_accepted(&r->answer, r->app, r->who.tenant, env->id, ST_QUEUED, false, false) < 0) {
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
    r->io->suspend(r);
    if (publisher_submit(r->app->publisher, env, on_published, r) < 0) on_published(r, 503);
    return true;
}

bool submit_publish(struct request *r, struct envelope *env, struct answer *a)
{
    if (!submit_contract(r->app, &r->who, &r->sub, env, a)) return false;
    if (hand_off(r, env, a)) return true;
    submit_settle(r->app, &r->who, &r->sub, false);
    answer_limits(a, &r->sub.limit);
    return false;
}
