/* config_routes.c: the "routes" object of the configuration (see
 * config.h): each route's upstreams, its delivery settings, and the hosts
 * and path prefixes the ingress routes to it at the edge. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_parse.h"

#define HOST_MAX 253
#define PREFIX_MAX 1024

static const struct field route_fields[] = {
    {"timeout_ms", F_LONG, 5000, 1, 600000, offsetof(struct cfg_route, timeout_ms)},
    {"max_attempts", F_INT, 4, 1, 100, offsetof(struct cfg_route, max_attempts)},
    {"backoff_ms", F_LONG, 100, 1, 3600000, offsetof(struct cfg_route, backoff_ms)},
    {"backoff_max_ms", F_LONG, 10000, 1, 86400000, offsetof(struct cfg_route, backoff_max_ms)},
    {"rate_per_s", F_DOUBLE, 0, 0, 1000000, offsetof(struct cfg_route, rate_per_s)},
    {"burst", F_LONG, 0, 0, 1000000, offsetof(struct cfg_route, burst)},
    {"max_in_flight", F_LONG, 0, 0, 1000000, offsetof(struct cfg_route, max_in_flight)},
    {"cache_ttl_s", F_LONG, 0, 0, 86400, offsetof(struct cfg_route, cache_ttl_s)},
};
/* A route's "breaker" object; a trigger of 0 is off, and one must be on. */
static const struct field breaker_fields[] = {
    {"consecutive_failures", F_LONG, 0, 0, 1000000,
     offsetof(struct breaker_policy, consecutive_failures)},
    {"failure_ratio", F_DOUBLE, 0, 0, 1, offsetof(struct breaker_policy, failure_ratio)},
    {"window_s", F_LONG, 10, 1, BREAKER_MAX_WINDOW_S, offsetof(struct breaker_policy, window_s)},
    {"min_calls", F_LONG, 10, 1, 1000000, offsetof(struct breaker_policy, min_calls)},
    {"open_ms", F_LONG, 5000, 1, 86400000, offsetof(struct breaker_policy, open_ms)},
    {"max_open_ms", F_LONG, 60000, 1, 86400000, offsetof(struct breaker_policy, max_open_ms)},
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

/* ---- the edge: hosts, paths, strip_path ---- */

bool cfg_path_under(const char *prefix, const char *path, size_t len)
{
    size_t n = strlen(prefix);
    if (n == 1 && prefix[0] == '/') return len >= 1 && path[0] == '/';
    return len >= n && memcmp(prefix, path, n) == 0 && (len == n || path[n] == '/');
}

/* host_ok accepts a DNS name or an IPv4 address, letters already lowered. */
static bool host_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= HOST_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n &&
           s[0] != '.' && s[0] != '-';
}

/* prefix_problem says what is wrong with a path prefix, or NULL. */
static const char *prefix_problem(const char *s)
{
    size_t n = strlen(s);
    if (s[0] != '/') return "must start with /";
    if (n > PREFIX_MAX) return "must be at most 1024 characters";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == '?' ||
            s[i] == '#' || s[i] == '%')
            return "must be printable ASCII without spaces, ?, # or %";
    for (const char *seg = s; seg; seg = strchr(seg + 1, '/')) {
        size_t len = strcspn(seg + 1, "/");
        if ((len == 1 && seg[1] == '.') || (len == 2 && seg[1] == '.' && seg[2] == '.'))
            return "must not contain . or .. segments";
        if (len == 0 && seg[1] == '/') return "must not contain //";
    }
    if (cfg_path_under("/v1", s, n)) return "must not be under /v1, the API's own paths";
    return NULL;
}

/* load_hosts reads the route's hosts, lower-cased. */
static int load_hosts(const struct cfgp_src *x, const char *path, struct json_object *o,
                      struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *a;

    cfgp_join(p, path, "hosts");
    if (!json_object_object_get_ex(o, "hosts", &a)) return 0;
    if (cfgp_load_strings(x, p, a, &r->hosts.v, &r->hosts.n) < 0) return -1;
    for (size_t i = 0; i < r->hosts.n; i++) {
        char *h = r->hosts.v[i];
        for (char *c = h; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        cfgp_pathf(p, "%s.hosts[%zu]", path, i);
        if (!host_ok(h))
            return cfgp_fail(
                x, p, "must be a host name or IPv4 address without a port (got \"%.80s\")", h);
    }
    return 0;
}

/* load_paths reads the route's path prefixes, without trailing slashes
 * (but "/"), and strip_path. */
static int load_paths(const struct cfgp_src *x, const char *path, struct json_object *o,
                      struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *a, *strip;

    cfgp_join(p, path, "paths");
    if (json_object_object_get_ex(o, "paths", &a) &&
        cfgp_load_strings(x, p, a, &r->paths.v, &r->paths.n) < 0)
        return -1;
    for (size_t i = 0; i < r->paths.n; i++) {
        char *pre = r->paths.v[i];
        size_t len = strlen(pre);
        const char *why = prefix_problem(pre);
        cfgp_pathf(p, "%s.paths[%zu]", path, i);
        if (why) return cfgp_fail(x, p, "%s (got \"%.80s\")", why, pre);
        while (len > 1 && pre[len - 1] == '/')
            pre[--len] = '\0';
    }
    cfgp_join(p, path, "strip_path");
    if (!json_object_object_get_ex(o, "strip_path", &strip)) return 0;
    if (!json_object_is_type(strip, json_type_boolean))
        return cfgp_fail(x, p, "must be true or false (got %.80s)", cfgp_show(strip));
    r->strip_path = json_object_get_boolean(strip);
    if (r->strip_path && r->paths.n == 0)
        return cfgp_fail(x, p, "needs paths: there is no prefix to strip");
    return 0;
}

static bool edge_routed(const struct cfg_route *r)
{
    return r->hosts.n || r->paths.n;
}

/* common_host names a host both routes take ("any host" when either takes
 * every host), or returns NULL when they share none. */
static const char *common_host(const struct cfg_route *a, const struct cfg_route *b)
{
    if (!a->hosts.n) return b->hosts.n ? b->hosts.v[0] : "any host";
    if (!b->hosts.n) return a->hosts.v[0];
    for (size_t i = 0; i < a->hosts.n; i++)
        for (size_t j = 0; j < b->hosts.n; j++)
            if (!strcmp(a->hosts.v[i], b->hosts.v[j])) return a->hosts.v[i];
    return NULL;
}

/* common_path names a path both routes take, or returns NULL. */
static const char *common_path(const struct cfg_route *a, const struct cfg_route *b)
{
    if (!a->paths.n) return b->paths.n ? b->paths.v[0] : "any path";
    if (!b->paths.n) return a->paths.v[0];
    for (size_t i = 0; i < a->paths.n; i++)
        for (size_t j = 0; j < b->paths.n; j++) {
            const char *pa = a->paths.v[i], *pb = b->paths.v[j];
            if (cfg_path_under(pa, pb, strlen(pb))) return pb;
            if (cfg_path_under(pb, pa, strlen(pa))) return pa;
        }
    return NULL;
}

/* check_overlaps refuses two routes that a request at the edge could both
 * match: every request must reach one route, or none. */
static int check_overlaps(const struct cfgp_src *x, const struct cfg *c)
{
    char p[CFG_PATH_MAX];
    for (size_t i = 0; i < c->n_routes; i++)
        for (size_t j = 0; j < i && edge_routed(&c->routes[i]); j++) {
            const struct cfg_route *a = &c->routes[j], *b = &c->routes[i];
            const char *host = edge_routed(a) ? common_host(a, b) : NULL;
            const char *path = host ? common_path(a, b) : NULL;
            if (!path) continue;
            cfgp_join(p, "routes", b->name);
            return cfgp_fail(x, p,
                             "its hosts and paths overlap those of routes.%s: both match %s%s, "
                             "%s%s (a request at the edge must match one route at most)",
                             a->name, strcmp(host, "any host") ? "host " : "", host,
                             strcmp(path, "any path") ? "path " : "", path);
        }
    return 0;
}

const struct cfg_route *cfg_route_at(const struct cfg *c, const char *host, size_t host_len,
                                     const char *path, size_t path_len, size_t *matched)
{
    /* The Host header's port, if any, is not part of the name. */
    if (host && host_len && host[0] != '[') {
        const char *colon = memchr(host, ':', host_len);
        if (colon) host_len = (size_t)(colon - host);
    }
    for (size_t i = 0; i < c->n_routes; i++) {
        const struct cfg_route *r = &c->routes[i];
        bool host_in = r->hosts.n == 0;
        if (!edge_routed(r)) continue;
        for (size_t h = 0; h < r->hosts.n && !host_in; h++)
            host_in = host && strlen(r->hosts.v[h]) == host_len &&
                      !strncasecmp(r->hosts.v[h], host, host_len);
        if (!host_in) continue;
        *matched = 0;
        if (r->paths.n == 0) return r;
        for (size_t k = 0; k < r->paths.n; k++)
            if (cfg_path_under(r->paths.v[k], path, path_len)) {
                *matched = strcmp(r->paths.v[k], "/") ? strlen(r->paths.v[k]) : 0;
                return r;
            }
    }
    return NULL;
}

/* ---- a route ---- */

/* CFG_MAX_VARY bounds a route's cache_vary_headers. */
#define CFG_MAX_VARY 16

static bool header_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 255 &&
           strspn(
               s,
               "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
               n;
}

/* load_vary reads the optional header names that make part of the cache key. */
static int load_vary(const struct cfgp_src *x, const char *path, struct json_object *o,
                     struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *a;

    cfgp_join(p, path, "cache_vary_headers");
    if (!json_object_object_get_ex(o, "cache_vary_headers", &a)) return 0;
    if (cfgp_load_strings(x, p, a, &r->cache_vary, &r->n_cache_vary) < 0) return -1;
    if (r->n_cache_vary > CFG_MAX_VARY) return cfgp_fail(x, p, "at most %d names", CFG_MAX_VARY);
    for (size_t i = 0; i < r->n_cache_vary; i++) {
        cfgp_pathf(p, "%s.cache_vary_headers[%zu]", path, i);
        if (!header_name_ok(r->cache_vary[i]))
            return cfgp_fail(x, p, "must be an HTTP header name (got \"%.80s\")", r->cache_vary[i]);
    }
    return 0;
}

/* load_breaker reads a route's "breaker" object, if any, into r->breaker. */
static int load_breaker(const struct cfgp_src *x, const char *path, struct json_object *o,
                        struct cfg_route *r)
{
    static const char *const none[] = {NULL};
    char p[CFG_PATH_MAX], q[CFG_PATH_MAX];
    struct json_object *b;
    struct breaker_policy *bp = &r->breaker;

    if (!json_object_object_get_ex(o, "breaker", &b)) return 0;
    cfgp_join(p, path, "breaker");
    if (!json_object_is_type(b, json_type_object))
        return cfgp_fail(x, p, "must be an object (got %.80s)", cfgp_show(b));
    if (cfgp_check_members(x, p, b, breaker_fields, N_FIELDS(breaker_fields), none) < 0) return -1;
    if (cfgp_load_fields(x, p, b, breaker_fields, N_FIELDS(breaker_fields), bp) < 0) return -1;
    if (bp->consecutive_failures == 0 && bp->failure_ratio == 0)
        return cfgp_fail(x, p,
                         "must set consecutive_failures or failure_ratio (or leave breaker out)");
    if (bp->max_open_ms < bp->open_ms) {
        cfgp_join(q, p, "max_open_ms");
        return cfgp_fail(x, q, "must be >= open_ms (%ld) (got %ld)", bp->open_ms, bp->max_open_ms);
    }
    bp->enabled = true;
    return 0;
}

static int load_route(const struct cfgp_src *x, struct cfg_route *r, const char *name,
                      struct json_object *o)
{
    static const char *const names[] = {"upstreams",
                                        "hosts",
                                        "paths",
                                        "strip_path",
                                        "breaker",
                                        "cache_vary_headers",
                                        "signing_secrets",
                                        "set_headers",
                                        "remove_headers",
                                        "batch_url",
                                        "batch_max",
                                        "callback_hosts",
                                        "allow_private_callbacks",
                                        "results_url",
                                        NULL};
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
    if (load_hosts(x, path, o, r) < 0 || load_paths(x, path, o, r) < 0) return -1;
    if (load_vary(x, path, o, r) < 0) return -1;
    if (cfgp_load_delivery(x, path, o, r) < 0) return -1;
    if (cfgp_load_fields(x, path, o, route_fields, N_FIELDS(route_fields), r) < 0) return -1;
    if (r->backoff_max_ms < r->backoff_ms) {
        cfgp_join(p, path, "backoff_max_ms");
        return cfgp_fail(x, p, "must be >= backoff_ms (%ld) (got %ld)", r->backoff_ms,
                         r->backoff_max_ms);
    }
    return load_breaker(x, path, o, r);
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
    return check_overlaps(x, c);
}

bool cfg_route_limited(const struct cfg_route *r)
{
    return r->rate_per_s > 0 || r->max_in_flight > 0;
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
        cfgp_free_strings(c->routes[i].hosts.v, c->routes[i].hosts.n);
        cfgp_free_strings(c->routes[i].paths.v, c->routes[i].paths.n);
        cfgp_free_strings(c->routes[i].cache_vary, c->routes[i].n_cache_vary);
        cfgp_free_delivery(&c->routes[i]);
    }
    free(c->routes);
    c->routes = NULL;
    c->n_routes = 0;
}
