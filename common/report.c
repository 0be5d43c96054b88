/* report.c: the workers' reports, made and read (see report.h). */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* UPSTREAM_NAME_MAX bounds an upstream's name in a report. */
#define UPSTREAM_NAME_MAX 512

struct report *report_new(const struct cfg *cfg)
{
    struct report *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->routes = calloc(cfg->n_routes + 1, sizeof *r->routes);
    if (!r->routes) goto err;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        r->routes[i].ups = calloc(cfg->routes[i].n_upstreams + 1, sizeof *r->routes[i].ups);
        if (!r->routes[i].ups) goto err;
    }
    return r;
err:
    report_free(cfg, r);
    return NULL;
}

void report_free(const struct cfg *cfg, struct report *r)
{
    if (!r) return;
    for (size_t i = 0; r->routes && i < cfg->n_routes; i++)
        free(r->routes[i].ups);
    free(r->routes);
    free(r);
}

void report_clear(const struct cfg *cfg, struct report *r)
{
    r->worker[0] = '\0';
    r->seq = 0;
    r->bye = false;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct report_route *rr = &r->routes[i];
        rr->in_flight = 0;
        rr->rate = rr->failure_rate = 0;
        memset(rr->ups, 0, cfg->routes[i].n_upstreams * sizeof *rr->ups);
    }
}

void report_upstream_name(const char *url, char *out, size_t len)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (at && (!slash || at < slash))
        snprintf(out, len, "%.*s%s", (int)(host - url), url, at + 1);
    else
        snprintf(out, len, "%s", url);
}

/* quiet tells whether route i has nothing to report. */
static bool quiet(const struct cfg_route *cr, const struct report_route *rr)
{
    if (rr->in_flight || rr->rate > 0 || rr->failure_rate > 0) return false;
    for (size_t u = 0; u < cr->n_upstreams; u++)
        if (rr->ups[u].state != BREAKER_CLOSED) return false;
    return true;
}

static int encode_upstreams(const struct cfg_route *cr, const struct report_route *rr,
                            struct buf *out)
{
    char name[UPSTREAM_NAME_MAX];
    bool first = true;
    int rc = buf_appends(out, ",\"upstreams\":{");
    for (size_t u = 0; !rc && u < cr->n_upstreams; u++) {
        const struct report_upstream *up = &rr->ups[u];
        if (up->state == BREAKER_CLOSED) continue;
        report_upstream_name(cr->upstreams[u], name, sizeof name);
        rc = buf_appends(out, first ? "" : ",");
        first = false;
        if (!rc) rc = buf_append_json_string(out, name, strlen(name));
        if (!rc)
            rc = buf_appendf(out, ":{\"state\":\"%s\",\"open_ms\":%lld}",
                             breaker_state_name(up->state),
                             (long long)(up->state == BREAKER_OPEN ? up->open_ms : 0));
    }
    return rc ? rc : buf_appends(out, "}");
}

int report_encode(const struct cfg *cfg, const struct report *r, struct buf *out)
{
    int rc = buf_appends(out, "{\"v\":1,\"worker\":");
    if (!rc) rc = buf_append_json_string(out, r->worker, strlen(r->worker));
    if (!rc)
        rc = buf_appendf(out, ",\"seq\":%llu,\"bye\":%s,\"routes\":{", (unsigned long long)r->seq,
                         r->bye ? "true" : "false");
    bool first = true;
    for (size_t i = 0; !rc && i < cfg->n_routes; i++) {
        const struct cfg_route *cr = &cfg->routes[i];
        const struct report_route *rr = &r->routes[i];
        if (r->bye || quiet(cr, rr)) continue;
        rc = buf_appends(out, first ? "" : ",");
        first = false;
        if (!rc) rc = buf_append_json_string(out, cr->name, strlen(cr->name));
        if (!rc)
            rc = buf_appendf(out, ":{\"in_flight\":%ld,\"rate\":%.3f,\"failure_rate\":%.3f",
                             rr->in_flight, rr->rate, rr->failure_rate);
        if (!rc) rc = encode_upstreams(cr, rr, out);
        if (!rc) rc = buf_appends(out, "}");
    }
    return rc ? rc : buf_appends(out, "}}");
}

/* number reads a finite number >= 0 of o's member key (absent: 0). */
static bool number(struct json_object *o, const char *key, double *out)
{
    struct json_object *v;
    *out = 0;
    if (!json_object_object_get_ex(o, key, &v)) return true;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return false;
    *out = json_object_get_double(v);
    return isfinite(*out) && *out >= 0;
}

/* find_upstream returns the index of the upstream of cr named name, or n_upstreams. */
static size_t find_upstream(const struct cfg_route *cr, const char *name)
{
    char mine[UPSTREAM_NAME_MAX];
    for (size_t u = 0; u < cr->n_upstreams; u++) {
        report_upstream_name(cr->upstreams[u], mine, sizeof mine);
        if (!strcmp(mine, name)) return u;
    }
    return cr->n_upstreams;
}

static bool state_of(const char *name, enum breaker_state *out)
{
    for (enum breaker_state st = BREAKER_CLOSED; st <= BREAKER_HALF_OPEN; st++)
        if (!strcmp(name, breaker_state_name(st))) {
            *out = st;
            return true;
        }
    return false;
}

static bool decode_upstreams(const struct cfg_route *cr, struct json_object *ups,
                             struct report_route *rr)
{
    if (!json_object_is_type(ups, json_type_object)) return false;
    json_object_object_foreach(ups, name, o)
    {
        struct json_object *st;
        double open_ms;
        if (!json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "state", &st) || !number(o, "open_ms", &open_ms))
            return false;
        enum breaker_state state;
        if (!state_of(json_object_get_string(st), &state)) return false;
        size_t u = find_upstream(cr, name);
        if (u == cr->n_upstreams) continue; /* not one of ours */
        rr->ups[u] = (struct report_upstream){.state = state, .open_ms = (int64_t)open_ms};
    }
    return true;
}

static bool decode_route(const struct cfg_route *cr, struct json_object *o, struct report_route *rr)
{
    struct json_object *ups;
    double in_flight;
    if (!json_object_is_type(o, json_type_object) || !number(o, "in_flight", &in_flight) ||
        in_flight > 1e9 || !number(o, "rate", &rr->rate) ||
        !number(o, "failure_rate", &rr->failure_rate))
        return false;
    rr->in_flight = (long)in_flight;
    return !json_object_object_get_ex(o, "upstreams", &ups) || decode_upstreams(cr, ups, rr);
}

/* decode_head reads the version, the worker's name, seq and bye. */
static bool decode_head(struct json_object *doc, struct report *r)
{
    struct json_object *v;
    if (!json_object_is_type(doc, json_type_object) || !json_object_object_get_ex(doc, "v", &v) ||
        json_object_get_int(v) != 1 || !json_object_object_get_ex(doc, "worker", &v) ||
        !json_object_is_type(v, json_type_string))
        return false;
    const char *w = json_object_get_string(v);
    if (!w[0] || strlen(w) >= sizeof r->worker) return false;
    memcpy(r->worker, w, strlen(w) + 1);
    if (json_object_object_get_ex(doc, "seq", &v)) r->seq = (uint64_t)json_object_get_int64(v);
    r->bye = json_object_object_get_ex(doc, "bye", &v) && json_object_get_boolean(v);
    return true;
}

int report_decode(const struct cfg *cfg, const char *msg, size_t len, struct report *r)
{
    struct json_object *doc = len <= REPORT_MAX_BYTES ? json_parse(msg, len, NULL, 0) : NULL;
    struct json_object *routes;
    int rc = -1;
    report_clear(cfg, r);
    if (!doc || !decode_head(doc, r) || !json_object_object_get_ex(doc, "routes", &routes) ||
        !json_object_is_type(routes, json_type_object))
        goto out;
    json_object_object_foreach(routes, name, o)
    {
        const struct cfg_route *cr = cfg_route_find(cfg, name, strlen(name));
        if (!cr) continue; /* a route this configuration does not have */
        if (!decode_route(cr, o, &r->routes[cr - cfg->routes])) goto out;
    }
    rc = 0;
out:
    if (rc) report_clear(cfg, r);
    json_object_put(doc);
    return rc;
}
