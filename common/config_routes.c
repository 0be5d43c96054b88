/* config_routes.c: the "routes" object of the configuration (see
 * config.h): each route's upstreams, its delivery settings, and the hosts
 * and path prefixes the ingress routes to it at the edge. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

static const struct field route_fields[] = {
    {"timeout_ms", F_LONG, 5000, 1, 600000, offsetof(struct cfg_route, timeout_ms)},
    {"max_attempts", F_INT, 4, 1, 100, offsetof(struct cfg_route, max_attempts)},
    {"backoff_ms", F_LONG, 100, 1, 3600000, offsetof(struct cfg_route, backoff_ms)},
    {"backoff_max_ms", F_LONG, 10000, 1, 86400000, offsetof(struct cfg_route, backoff_max_ms)},
    {"rate_per_s", F_DOUBLE, 0, 0, LONG_MAX, offsetof(struct cfg_route, rate_per_s)},
    {"max_in_flight", F_LONG, 0, 0, LONG_MAX, offsetof(struct cfg_route, max_in_flight)},
};

static bool route_name_ok(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* load_upstreams checks each base URL and strips its trailing slashes, since
 * request paths are appended with their own leading slash. */
static int load_upstreams(const struct cfgp_src *x, const char *path, struct json_object *o,
                          struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *a;

    cfgp_join(p, path, "upstreams");
    if (!json_object_object_get_ex(o, "upstreams", &a)) return cfgp_fail(x, p, "is required");
    if (cfgp_load_strings(x, p, a, &r->upstreams, &r->n_upstreams) < 0) return -1;
    for (size_t i = 0; i < r->n_upstreams; i++) {
        char *u = r->upstreams[i];
        size_t scheme = !strncmp(u, "http://", 7) ? 7 : !strncmp(u, "https://", 8) ? 8 : 0;
        size_t len = strlen(u);
        cfgp_pathf(p, "%s.upstreams[%zu]", path, i);
        if (!scheme)
            return cfgp_fail(x, p, "must start with http:// or https:// (got \"%.80s\")", u);
        while (len > scheme && u[len - 1] == '/')
            u[--len] = '\0';
        if (len == scheme) return cfgp_fail(x, p, "must name a host after the scheme");
    }
    return 0;
}

static int load_route(const struct cfgp_src *x, struct cfg_route *r, const char *name,
                      struct json_object *o)
{
    static const char *const names[] = {"upstreams", NULL};
    char path[CFG_PATH_MAX], p[CFG_PATH_MAX];

    cfgp_join(path, "routes", name);
    if (!route_name_ok(name))
        return cfgp_fail(x, path, "a route name must be 1..64 characters of [A-Za-z0-9_.-]");
    if (!json_object_is_type(o, json_type_object))
        return cfgp_fail(x, path, "must be an object (got %.80s)", cfgp_show(o));
    if (cfgp_check_members(x, path, o, route_fields, N_FIELDS(route_fields), names) < 0) return -1;
    r->name = strdup(name);
    if (!r->name) return cfgp_fail(x, path, "out of memory");
    if (load_upstreams(x, path, o, r) < 0) return -1;
    if (cfgp_load_fields(x, path, o, route_fields, N_FIELDS(route_fields), r) < 0) return -1;
    if (r->backoff_max_ms < r->backoff_ms) {
        cfgp_join(p, path, "backoff_max_ms");
        return cfgp_fail(x, p, "must be >= backoff_ms (%ld) (got %ld)", r->backoff_ms,
                         r->backoff_max_ms);
    }
    return 0;
}

int cfgp_load_routes(const struct cfgp_src *x, struct cfg *c, struct json_object *o)
{
    size_t n;

    if (!json_object_is_type(o, json_type_object))
        return cfgp_fail(x, "routes", "must be an object of name -> route (got %.80s)",
                         cfgp_show(o));
    n = (size_t)json_object_object_length(o);
    if (n == 0) return 0;
    c->routes = calloc(n, sizeof *c->routes);
    if (!c->routes) return cfgp_fail(x, "routes", "out of memory");
    json_object_object_foreach(o, name, v)
    {
        if (load_route(x, &c->routes[c->n_routes++], name, v) < 0) return -1;
    }
    return 0;
}

const struct cfg_route *cfg_route_find(const struct cfg *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_routes; i++)
        if (strlen(c->routes[i].name) == len && !memcmp(c->routes[i].name, name, len))
            return &c->routes[i];
    return NULL;
}

void cfgp_free_routes(struct cfg *c)
{
    for (size_t i = 0; i < c->n_routes; i++) {
        free(c->routes[i].name);
        cfgp_free_strings(c->routes[i].upstreams, c->routes[i].n_upstreams);
    }
    free(c->routes);
    c->routes = NULL;
    c->n_routes = 0;
}
