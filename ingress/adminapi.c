/* adminapi.c: the admin API's endpoints (see adminapi.h). A replay or a
 * purge suspends its connection until the dead letters' thread has made
 * its pass (deadletters.h), then answers how many it took. */
#include "adminapi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadlist.h"
#include "deadletters.h"
#include "jscan.h"
#include "log.h"

#define SELECT_MAX_IDS 10000

const char *adminapi_who(const struct request *r)
{
    return r->who.key ? r->who.key->id : "admin_token";
}

bool admin_dead_list(struct request *r, struct answer *a)
{
    const char *query = r->target[r->path_len] == '?' ? r->target + r->path_len + 1 : NULL;
    char message[160];
    struct buf b;
    if (!events_caught_up(r->app->events)) {
        answer_error(a, 503, "not_ready",
                     "still reading the events stream; the listing would be incomplete");
        return false;
    }
    buf_init(&b, 64 << 20);
    int rc = deadlist_render(r->app->index, query, &b, message);
    if (rc == -EINVAL)
        answer_error(a, 400, "invalid_request", message);
    else if (rc < 0)
        answer_error(a, 500, "internal_error", "out of memory");
    else
        answer_text(a, 200, "application/json", &b);
    buf_free(&b);
    return false;
}

/* read_ids reads the "ids" array into sel. */
static const char *read_ids(struct jscan *s, struct dl_select *sel)
{
    size_t n;
    int r;
    if (!jscan_enter(s, '[')) return "ids: must be an array of request IDs";
    while ((r = jscan_next(s, NULL, 0)) == 1) {
        char id[ID_LEN + 2];
        if (!jscan_string(s, id, sizeof id, &n) || n != ID_LEN || !id_valid(id, n))
            return "ids: must be an array of request IDs";
        if (sel->n_ids == SELECT_MAX_IDS) return "ids: at most 10000 at once";
        if (sel->n_ids % 64 == 0) {
            void *more = realloc(sel->ids, (sel->n_ids + 64) * sizeof *sel->ids);
            if (!more) return "out of memory";
            sel->ids = more;
        }
        memcpy(sel->ids[sel->n_ids++], id, ID_LEN + 1);
    }
    return r == 0 ? NULL : "ids: must be an array of request IDs";
}

/* parse_select reads {"ids":[..]} | {"route":".."} | {"all":true}. */
static const char *parse_select(const struct request *r, struct dl_select *sel)
{
    struct jscan s;
    char key[8];
    size_t n;
    int given = 0, rc;
    const char *why = NULL;
    const char *body = r->body.data ? r->body.data : "";
    if (!jscan_init(&s, body, r->body.len) || !jscan_enter(&s, '{'))
        return "the body must be a JSON object";
    while (!why && (rc = jscan_next(&s, key, sizeof key)) == 1) {
        given++;
        if (!strcmp(key, "ids")) {
            why = read_ids(&s, sel);
        } else if (!strcmp(key, "route")) {
            if (!jscan_string(&s, sel->route, sizeof sel->route, &n) || !n)
                why = "route: must be a route name";
        } else if (!strcmp(key, "all")) {
            const char *t;
            if (!jscan_value(&s, &t, &n) || n != 4 || memcmp(t, "true", 4))
                why = "all: must be true";
            sel->all = !why;
        } else {
            why = "select with exactly one of ids, route or all";
        }
    }
    if (!why && (rc != 0 || !jscan_done(&s))) why = "the body must be a JSON object";
    if (!why && given != 1) why = "select with exactly one of ids, route or all";
    if (!why && sel->route[0] && !cfg_route_find(&r->app->cfg, sel->route, strlen(sel->route)))
        why = "route: no such route";
    return why;
}

/* on_pass runs on the dead letters' thread, once per pass. */
static void on_pass(void *arg, int status, long count, const char *message)
{
    struct request *r = arg;
    const char *what = strstr(r->target, ":replay") ? "replayed" : "purged";
    if (status == 200) {
        struct buf b;
        buf_init(&b, 256);
        if (buf_appendf(&b, "{\"%s\":%ld}", what, count) < 0)
            answer_error(&r->answer, 500, "internal_error", "out of memory");
        else
            answer_text(&r->answer, 200, "application/json", &b);
        buf_free(&b);
    } else {
        answer_error(&r->answer, 503, "broker_unavailable", message);
    }
    r->io->resume(r);
}

static bool dead_pass(struct request *r, struct answer *a, enum dl_action action)
{
    struct dl_select sel = {0};
    const char *why = parse_select(r, &sel);
    if (why) {
        free(sel.ids);
        answer_error(a, 400, "invalid_request", why);
        return false;
    }
    dl_select_sort(&sel);
    log_info("admin: key \"%s\" asks to %s dead letters", adminapi_who(r),
             action == DL_REPLAY ? "replay" : "purge");
    r->io->suspend(r);
    if (deadletters_submit(r->app->dead, action, &sel, adminapi_who(r), on_pass, r) < 0)
        on_pass(r, 503, 0, "the ingress is stopping or out of memory; nothing was done");
    return true;
}

bool admin_dead_replay(struct request *r, struct answer *a)
{
    return dead_pass(r, a, DL_REPLAY);
}

bool admin_dead_purge(struct request *r, struct answer *a)
{
    return dead_pass(r, a, DL_PURGE);
}
