/* routesapi.c: the admin API's routes (see routesapi.h). */
#include "routesapi.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adminapi.h"
#include "clock.h"
#include "json.h"
#include "report.h"
#include "routectl.h"

/* render_upstreams appends the upstreams of route i as the fleet sees them. */
static int render_upstreams(const struct cfg_route *r, const struct fleet_route *fr,
                            struct buf *out)
{
    char name[512], until[32];
    int rc = buf_appends(out, ",\"upstreams\":[");
    for (size_t u = 0; !rc && u < r->n_upstreams; u++) {
        const struct fleet_upstream *fu = &fr->ups[u];
        report_upstream_name(r->upstreams[u], name, sizeof name);
        rc = buf_appends(out, u ? ",{\"upstream\":" : "{\"upstream\":");
        if (!rc) rc = buf_append_json_string(out, name, strlen(name));
        if (!rc)
            rc = buf_appendf(out,
                             ",\"breaker\":\"%s\",\"workers_open\":%zu,"
                             "\"workers_half_open\":%zu,\"open_until\":",
                             breaker_state_name(fu->state), fu->open, fu->half_open);
        clock_rfc3339(until, fu->open_until_ms);
        if (!rc && fu->open_until_ms) rc = buf_appendf(out, "\"%s\"}", until);
        if (!rc && !fu->open_until_ms) rc = buf_appends(out, "null}");
    }
    return rc ? rc : buf_appends(out, "]");
}

/* render_fleet appends route i's view from the workers' reports: live
 * workers, calls in flight, completions and failures per second, and
 * each upstream's breaker. */
static int render_fleet(struct app *app, size_t i, struct buf *out)
{
    const struct cfg_route *r = &app->cfg.routes[i];
    if (!app->fleet) return buf_appends(out, ",\"fleet\":null");
    struct fleet_route fr = {.ups = calloc(r->n_upstreams + 1, sizeof *fr.ups)};
    if (!fr.ups) return -ENOMEM;
    fleet_route(app->fleet, i, clock_mono_ms(), &fr);
    int rc = buf_appendf(out,
                         ",\"fleet\":{\"workers\":%zu,\"in_flight\":%ld,\"completed_per_s\":%.2f,"
                         "\"failed_per_s\":%.2f",
                         fr.workers, fr.in_flight, fr.rate, fr.failure_rate);
    if (!rc) rc = render_upstreams(r, &fr, out);
    if (!rc) rc = buf_appends(out, "}");
    free(fr.ups);
    return rc;
}

/* render_route appends route i's document: its state, configured, override
 * and effective limits, its lane's backlog and drain rate, and the fleet's
 * view (render_fleet). */
static int render_route(struct app *app, const struct route_ctl *ctl, size_t i, struct buf *out)
{
    const struct cfg_route *r = &app->cfg.routes[i];
    const struct route_ctl *c = &ctl[i];
    double rate = c->rate_per_s >= 0 ? c->rate_per_s : r->rate_per_s;
    long mif = c->max_in_flight >= 0 ? c->max_in_flight : r->max_in_flight;
    int64_t depth = app->lanes ? lanes_depth(app->lanes, i) : -1;
    int rc = buf_appends(out, "{\"name\":");
    if (!rc) rc = buf_append_json_string(out, r->name, strlen(r->name));
    if (!rc)
        rc = buf_appendf(out,
                         ",\"state\":\"%s\",\"limited\":%s,\"configured\":{\"rate_per_s\":%g,"
                         "\"burst\":%ld,\"max_in_flight\":%ld},\"override\":{",
                         c->paused ? "paused" : "running", cfg_route_limited(r) ? "true" : "false",
                         r->rate_per_s, r->burst, r->max_in_flight);
    if (!rc && c->rate_per_s >= 0) rc = buf_appendf(out, "\"rate_per_s\":%g", c->rate_per_s);
    if (!rc && c->max_in_flight >= 0)
        rc = buf_appendf(out, "%s\"max_in_flight\":%ld", c->rate_per_s >= 0 ? "," : "",
                         c->max_in_flight);
    if (!rc)
        rc = buf_appendf(out, "},\"effective\":{\"rate_per_s\":%g,\"max_in_flight\":%ld}", rate,
                         mif);
    if (!rc && depth >= 0) rc = buf_appendf(out, ",\"backlog\":%lld", (long long)depth);
    if (!rc && depth < 0) rc = buf_appends(out, ",\"backlog\":null");
    if (!rc)
        rc = buf_appendf(out, ",\"drain_per_s\":%.2f",
                         status_index_drain_rate(app->index, r->name, clock_real_ms()));
    if (!rc) rc = render_fleet(app, i, out);
    return rc ? rc : buf_appends(out, "}");
}

/* snapshot copies this replica's state of the routes; NULL on ENOMEM. */
static struct route_ctl *snapshot(struct app *app)
{
    struct route_ctl *ctl = calloc(app->cfg.n_routes + 1, sizeof *ctl);
    if (ctl) routectl_take(app->routectl, ctl);
    return ctl;
}

bool admin_routes_list(struct request *r, struct answer *a)
{
    struct buf b;
    struct route_ctl *ctl = snapshot(r->app);
    buf_init(&b, 16 << 20);
    int rc = ctl ? buf_appends(&b, "{\"routes\":[") : -ENOMEM;
    for (size_t i = 0; !rc && i < r->app->cfg.n_routes; i++) {
        if (i) rc = buf_appends(&b, ",");
        if (!rc) rc = render_route(r->app, ctl, i, &b);
    }
    if (!rc) rc = buf_appends(&b, "]}");
    if (rc)
        answer_error(a, 500, "internal_error", "out of memory");
    else
        answer_text(a, 200, "application/json", &b);
    buf_free(&b);
    free(ctl);
    return false;
}

/* A change waiting for its confirm: the route's document to answer. */
struct change {
    struct request *r;
    struct buf doc;
};

static void on_published(void *arg, int status, long count, const char *message)
{
    struct change *ch = arg;
    struct request *r = ch->r;
    (void)count;
    if (status == 200)
        answer_text(&r->answer, 200, "application/json", &ch->doc);
    else
        answer_error(&r->answer, 503, "broker_unavailable", message);
    buf_free(&ch->doc);
    free(ch);
    r->io->resume(r);
}

/* parse_limits reads a PATCH body: rate_per_s (> 0) and/or max_in_flight (>= 1). */
static const char *parse_limits(const struct request *r, struct route_ctl *c)
{
    char why[128];
    struct json_object *doc = json_parse(r->body.data ? r->body.data : "", r->body.len, why,
                                         sizeof why),
                       *v;
    const char *err = NULL;
    int given = 0;
    if (!doc || !json_object_is_type(doc, json_type_object)) {
        err = "the body must be a JSON object";
        goto out;
    }
    json_object_object_foreach(doc, key, val)
    {
        (void)val;
        if (strcmp(key, "rate_per_s") && strcmp(key, "max_in_flight")) {
            err = "only rate_per_s and max_in_flight can be overridden";
            goto out;
        }
    }
    if (json_object_object_get_ex(doc, "rate_per_s", &v)) {
        double x = json_object_get_double(v);
        if ((!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) ||
            !isfinite(x) || x <= 0 || x > 1e9) {
            err = "rate_per_s: must be a number above 0";
            goto out;
        }
        c->rate_per_s = x, given++;
    }
    if (json_object_object_get_ex(doc, "max_in_flight", &v)) {
        long long x = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || x < 1 || x > 1000000) {
            err = "max_in_flight: must be an integer of at least 1";
            goto out;
        }
        c->max_in_flight = (long)x, given++;
    }
    if (!given) err = "give rate_per_s, max_in_flight or both";
out:
    json_object_put(doc);
    return err;
}

/* change answers a change of route i's state with ctl (every route's). */
static bool change(struct request *r, struct answer *a, struct route_ctl *ctl, size_t i)
{
    struct change *ch = calloc(1, sizeof *ch);
    struct buf msg;
    buf_init(&msg, 16 << 20);
    if (ch) buf_init(&ch->doc, 1 << 20);
    if (!ch || routectl_encode(&r->app->cfg, ctl, adminapi_who(r), clock_real_ms(), &msg) < 0 ||
        render_route(r->app, ctl, i, &ch->doc) < 0) {
        if (ch) buf_free(&ch->doc);
        free(ch);
        buf_free(&msg);
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
    ch->r = r;
    r->io->suspend(r);
    if (deadletters_publish_admin(r->app->dead, &msg, adminapi_who(r), on_published, ch) < 0)
        on_published(ch, 503, 0, "the ingress is stopping or out of memory; nothing changed");
    return true;
}

bool admin_route_change(struct request *r, struct answer *a)
{
    size_t n = strcspn(r->rest, ":/?");
    if (n > r->rest_len) n = r->rest_len;
    const char *op = r->rest + n;
    size_t op_len = r->rest_len - n;
    const struct cfg_route *route = cfg_route_find(&r->app->cfg, r->rest, n);
    if (!route) {
        answer_error(a, 404, "unknown_route", "no route of this name");
        return false;
    }
    size_t i = (size_t)(route - r->app->cfg.routes);
    bool post = !strcmp(r->method, "POST"), patch = !strcmp(r->method, "PATCH"),
         del = !strcmp(r->method, "DELETE");
    bool pause = post && op_len == 6 && !memcmp(op, ":pause", 6);
    bool resume = post && op_len == 7 && !memcmp(op, ":resume", 7);
    bool set = patch && op_len == 0, unset = del && op_len == 9 && !memcmp(op, "/override", 9);
    if (!pause && !resume && !set && !unset) {
        answer_error(a, (post || patch || del) ? 404 : 405,
                     (post || patch || del) ? "not_found" : "method_not_allowed",
                     "use POST <route>:pause, POST <route>:resume, PATCH <route> or DELETE "
                     "<route>/override");
        return false;
    }
    if (set && !cfg_route_limited(route)) {
        answer_error(a, 409, "route_not_limited",
                     "the route has no rate_per_s or max_in_flight in the configuration: its "
                     "lane is shared by every worker, so a fleet-wide limit needs one configured");
        return false;
    }
    struct route_ctl *ctl = snapshot(r->app);
    if (!ctl) {
        answer_error(a, 500, "internal_error", "out of memory");
        return false;
    }
    const char *why = NULL;
    if (pause || resume) ctl[i].paused = pause;
    if (unset) ctl[i].rate_per_s = -1, ctl[i].max_in_flight = -1;
    if (set) why = parse_limits(r, &ctl[i]);
    bool pending = false;
    if (why)
        answer_error(a, 400, "invalid_request", why);
    else
        pending = change(r, a, ctl, i);
    free(ctl);
    return pending;
}

/* history_route reads the query of GET /v1/admin/history: nothing, or
 * route=<name> (a route name needs no escapes). Returns 0 with *route NULL
 * (every route) or pointing into name, or -1 when the query is not that. */
static int history_route(const struct request *r, char name[128], const char **route)
{
    const char *q = r->target[r->path_len] == '?' ? r->target + r->path_len + 1 : "";
    size_t n = strlen(q);
    *route = NULL;
    if (n == 0) return 0;
    if (n < 7 || n - 6 >= 128 || memcmp(q, "route=", 6) != 0 || strcspn(q + 6, "&%+=") != n - 6)
        return -1;
    memcpy(name, q + 6, n - 6);
    name[n - 6] = '\0';
    *route = name;
    return 0;
}

bool admin_history(struct request *r, struct answer *a)
{
    char name[128];
    const char *route;
    struct buf b;
    if (history_route(r, name, &route) < 0) {
        answer_error(a, 400, "invalid_request", "the only query parameter is route=<route>");
        return false;
    }
    buf_init(&b, 16 << 20);
    int rc = r->app->history ? history_render(r->app->history, route, &b) : -ENOMEM;
    if (rc == -ENOENT)
        answer_error(a, 404, "unknown_route", "no route of this name");
    else if (rc < 0)
        answer_error(a, 500, "internal_error", "out of memory");
    else
        answer_text(a, 200, "application/json", &b);
    buf_free(&b);
    return false;
}
