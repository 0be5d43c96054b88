/* requests.c: listing, cancel and erase (see requests.h). A cancel or an
 * erasure suspends its connection until the control thread has the outcome
 * (on_controlled), then answers the request's status document. */
#include "requests.h"

#include <errno.h>
#include <string.h>

#include "clock.h"
#include "listing.h"

bool requests_list(struct request *r, struct answer *a)
{
    const char *query = r->target[r->path_len] == '?' ? r->target + r->path_len + 1 : NULL;
    struct listing_error err;
    struct buf b;
    if (!events_caught_up(r->app->events)) {
        answer_error(a, 503, "not_ready",
                     "still reading the events stream; the listing would be incomplete");
        return false;
    }
    buf_init(&b, 64 << 20);
    int rc = listing_render(r->app->index, r->who.tenant, query, &b, &err);
    if (rc == -EINVAL)
        answer_error(a, 400, "invalid_request", err.message);
    else if (rc < 0)
        answer_error(a, 500, "internal_error", "out of memory");
    else
        answer_text(a, 200, "application/json", &b);
    buf_free(&b);
    return false;
}

/* answer_status answers 200 with id's status document. */
static void answer_status(struct request *r, struct answer *a, const char *id)
{
    struct buf b;
    buf_init(&b, 64 << 20);
    int rc = readback_render(r->app->readback, r->app->index, id, r->who.tenant, &b);
    if (rc == -EAGAIN) {
        answer_error(a, 503, "not_ready",
                     "the result could not be read from the events stream; retry");
        (void)answer_header(a, "Retry-After", "%d", 1);
    } else if (rc < 0)
        answer_error(a, 500, "internal_error", "the status vanished (out of memory?)");
    else
        answer_text(a, 200, "application/json", &b);
    buf_free(&b);
}

/* on_controlled runs on the control thread, once per operation. */
static void on_controlled(void *arg, int status)
{
    struct request *r = arg;
    char id[ID_LEN + 1];
    memcpy(id, r->rest, ID_LEN);
    id[ID_LEN] = '\0';
    if (status == 200)
        answer_status(r, &r->answer, id);
    else if (status == 409)
        answer_error(&r->answer, 409, "not_cancellable",
                     "a worker has started this request (it was claimed before the cancel)");
    else
        answer_error(&r->answer, 503, "broker_unavailable",
                     "the broker did not take the operation in time; its outcome shows in the "
                     "status, and asking again is safe");
    struct limit_info info;
    limits_peek(r->app->limits, r->who.key, clock_real_ms(), clock_mono_us(), &info);
    answer_limits(&r->answer, &info);
    r->io->resume(r);
}

/* cancel answers a cancel now when the state decides it, else hands it over. */
static bool cancel(struct request *r, const struct status_brief *b, struct answer *a)
{
    if (b->state == ST_CANCELLED) {
        answer_status(r, a, b->id);
        return false;
    }
    if (b->state != ST_QUEUED || b->attempts > 0) {
        answer_error(a, 409, "not_cancellable",
                     ST_FINAL(b->state) ? "the request is final already"
                                        : "a worker has started this request");
        return false;
    }
    r->io->suspend(r);
    if (control_cancel(r->app->control, b, r->who.tenant, on_controlled, r) < 0)
        on_controlled(r, 503);
    return true;
}

static bool erase(struct request *r, const struct status_brief *b, struct answer *a)
{
    if (!ST_FINAL(b->state)) {
        answer_error(a, 409, "not_final",
                     "the request is not final; only a final request's result can be erased");
        return false;
    }
    r->io->suspend(r);
    if (control_erase(r->app->control, b, r->who.tenant, on_controlled, r) < 0)
        on_controlled(r, 503);
    return true;
}

/* requests_delete: r->rest is "<id>" or "<id>/result". */
bool requests_delete(struct request *r, struct answer *a)
{
    const char *p = r->rest;
    size_t n = r->rest_len;
    bool result = n == ID_LEN + 7 && memcmp(p + ID_LEN, "/result", 7) == 0;
    char id[ID_LEN + 1];
    struct status_brief b;
    if ((n != ID_LEN && !result) || !id_valid(p, ID_LEN)) {
        answer_error(a, 404, "not_found", "no request with this id");
        return false;
    }
    memcpy(id, p, ID_LEN);
    id[ID_LEN] = '\0';
    if (status_index_brief(r->app->index, id, r->who.tenant, &b) < 0) {
        if (!events_caught_up(r->app->events))
            answer_error(a, 503, "not_ready",
                         "still reading the events stream; this request may exist, retry");
        else
            answer_error(a, 404, "not_found", "no request with this id");
        return false;
    }
    return result ? erase(r, &b, a) : cancel(r, &b, a);
}
