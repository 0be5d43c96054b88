/* config.c: loads the JSON configuration of both binaries. Every scalar setting
 * is one row of scalars[] (key, environment variable, type, default, range,
 * target field, meaning), in the manner of redis's static_configs[]: parsing the
 * file, environment overrides, validation and cfg_usage() all read that table.
 * The "keys" array and "routes" object are parsed by hand, with small tables
 * of their numeric fields; SLUICE_KEYS and SLUICE_ROUTES replace them whole. */
#include "config.h"
#include "nodes.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_FILE_BYTES (16L * 1024 * 1024)
#define CFG_JSON_DEPTH 32
#define CFG_PATH_MAX 256
#define CFG_NAME_MAX 128

enum scalar_type { T_STR, T_LONG };

struct scalar {
    const char *key; /* dotted: "ingress.threads" */
    const char *env;
    enum scalar_type type;
    const char *def_str;
    long def, min, max;
    size_t off; /* of a char * or a long in struct cfg */
    bool (*ok)(const char *s);
    const char *rule; /* what ok accepts, worded to follow "must be " */
    bool secret;      /* the value may hold a password: never echo it */
    const char *meaning;
};

static bool amqp_url_ok(const char *s);
static bool namespace_ok(const char *s);
static bool log_level_ok(const char *s);
static bool queue_type_ok(const char *s);
static bool listen_ok(const char *s);
static bool admin_token_ok(const char *s);

#define STR(k, e, d, field, okf, rule, secret, m)                                                  \
    {                                                                                              \
        k, e, T_STR, d, 0, 0, 0, offsetof(struct cfg, field), okf, rule, secret, m                 \
    }
#define LNG(k, e, d, lo, hi, field, m)                                                             \
    {                                                                                              \
        k, e, T_LONG, NULL, d, lo, hi, offsetof(struct cfg, field), NULL, NULL, false, m           \
    }
#define LISTEN_RULE "host:port with a port of 0..65535 ([v6]:port accepted)"

static const struct scalar scalars[] = {
    STR("amqp_url", "SLUICE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", amqp_url, amqp_url_ok,
        "an AMQP URL (amqp:// or amqps://), or the URLs of one cluster's nodes separated by "
        "commas",
        true, "RabbitMQ broker URL, or one URL per cluster node (docs/clustering.md)"),
    STR("namespace", "SLUICE_NAMESPACE", "sluice", namespace, namespace_ok,
        "1..64 characters of [a-z0-9_.-] starting with a letter or digit", false,
        "prefix of every exchange and queue"),
    STR("log_level", "SLUICE_LOG_LEVEL", "info", log_level, log_level_ok,
        "debug, info, warn or error", false, "lowest level logged"),
    STR("queue_type", "SLUICE_QUEUE_TYPE", "classic", queue_type, queue_type_ok,
        "classic or quorum", false,
        "type of the requests, dead and retry queues; quorum replicates them (docs/clustering.md)"),
    LNG("delivery_limit", "SLUICE_DELIVERY_LIMIT", 20, 1, 1000, delivery_limit,
        "quorum only: returns of one unacked request to the queue (a worker died, a requeue) "
        "before the broker dead-letters it"),
    STR("admin_token", "SLUICE_ADMIN_TOKEN", "", admin_token, admin_token_ok,
        "empty, or 16..256 printable ASCII characters without spaces", true,
        "bearer token of the status page at / (empty: no page, 404)"),
    STR("ingress.listen", "SLUICE_LISTEN", "127.0.0.1:8080", ingress.listen, listen_ok, LISTEN_RULE,
        false, "HTTP address of the ingress"),
    LNG("ingress.threads", "SLUICE_THREADS", 2, 1, 256, ingress.threads, "HTTP server threads"),
    LNG("ingress.max_body_bytes", "SLUICE_MAX_BODY_BYTES", 1048576, 1, 268435456,
        ingress.max_body_bytes, "largest request body accepted"),
    LNG("ingress.status_retention_s", "SLUICE_STATUS_RETENTION_S", 86400, 60, 31536000,
        ingress.status_retention_s, "how long request status is kept"),
    LNG("ingress.max_status_entries", "SLUICE_MAX_STATUS_ENTRIES", 1000000, 1000, 100000000,
        ingress.max_status_entries, "status entries kept in memory"),
    LNG("ingress.confirm_timeout_ms", "SLUICE_CONFIRM_TIMEOUT_MS", 5000, 100, 60000,
        ingress.confirm_timeout_ms, "a publish unconfirmed this long answers 503"),
    LNG("ingress.max_connections", "SLUICE_MAX_CONNECTIONS", 10000, 16, 1000000,
        ingress.max_connections, "concurrent client connections"),
    LNG("ingress.connection_timeout_s", "SLUICE_CONNECTION_TIMEOUT_S", 30, 1, 3600,
        ingress.connection_timeout_s, "idle or slow clients are closed after this"),
    LNG("worker.batch_size", "SLUICE_BATCH_SIZE", 100, 1, 1000, worker.batch_size,
        "messages handled together"),
    LNG("worker.batch_linger_ms", "SLUICE_BATCH_LINGER_MS", 5, 0, 10000, worker.batch_linger_ms,
        "longest wait to fill a batch"),
    LNG("worker.prefetch", "SLUICE_PREFETCH", 200, 1, 65535, worker.prefetch,
        "unacked messages per worker, at least worker.batch_size"),
    STR("worker.metrics_listen", "SLUICE_METRICS_LISTEN", "127.0.0.1:9091", worker.metrics_listen,
        listen_ok, LISTEN_RULE, false, "HTTP address of the worker's /metrics"),
    LNG("worker.retry_hold_max_ms", "SLUICE_RETRY_HOLD_MAX_MS", 1000, 0, 60000,
        worker.retry_hold_max_ms,
        "retries due sooner wait in the worker, later ones in a retry queue (0: always a queue)"),
    LNG("worker.result_max_bytes", "SLUICE_RESULT_MAX_BYTES", 65536, 0, 16777216,
        worker.result_max_bytes, "backend answer bytes kept in the status"),
    LNG("worker.shutdown_grace_ms", "SLUICE_SHUTDOWN_GRACE_MS", 10000, 0, 600000,
        worker.shutdown_grace_ms, "SIGTERM waits this long for calls in flight"),
    LNG("worker.max_host_connections", "SLUICE_MAX_HOST_CONNECTIONS", 64, 1, 10000,
        worker.max_host_connections, "connections per backend host"),
};
#define N_SCALARS (sizeof scalars / sizeof scalars[0])

/* A field is a numeric member of a key or a route. */
enum field_type { F_LONG, F_INT, F_DOUBLE };
struct field {
    const char *name;
    enum field_type type;
    long def, min, max;
    size_t off;
};

static const struct field key_fields[] = {
    {"rate_per_s", F_DOUBLE, 0, 0, LONG_MAX, offsetof(struct cfg_key, rate_per_s)},
    {"burst", F_LONG, 0, 0, LONG_MAX, offsetof(struct cfg_key, burst)},
    {"max_priority", F_INT, 9, 0, 9, offsetof(struct cfg_key, max_priority)},
};
static const struct field route_fields[] = {
    {"timeout_ms", F_LONG, 5000, 1, 600000, offsetof(struct cfg_route, timeout_ms)},
    {"max_attempts", F_INT, 4, 1, 100, offsetof(struct cfg_route, max_attempts)},
    {"backoff_ms", F_LONG, 100, 1, 3600000, offsetof(struct cfg_route, backoff_ms)},
    {"backoff_max_ms", F_LONG, 10000, 1, 86400000, offsetof(struct cfg_route, backoff_max_ms)},
    {"rate_per_s", F_DOUBLE, 0, 0, LONG_MAX, offsetof(struct cfg_route, rate_per_s)},
    {"max_in_flight", F_LONG, 0, 0, LONG_MAX, offsetof(struct cfg_route, max_in_flight)},
};
#define N_FIELDS(a) (sizeof(a) / sizeof(a)[0])

/* A ctx says where the text being parsed came from, for error messages. */
struct ctx {
    const char *src; /* "config sluice.json", "environment", "environment SLUICE_KEYS" */
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(const struct ctx *x, const char *path,
                                                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->err && x->errlen > 0) {
        if (path)
            snprintf(x->err, x->errlen, "%s: %s: %s", x->src, path, msg);
        else
            snprintf(x->err, x->errlen, "%s: %s", x->src, msg);
    }
    return -1;
}

/* show renders v as JSON for a message; the text belongs to v. */
static const char *show(struct json_object *v)
{
    return json_object_to_json_string_ext(v,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* pathf formats the name of a setting, like "routes.echo.upstreams[0]", into
 * out (CFG_PATH_MAX bytes); names cut short still point the operator there. */
__attribute__((format(printf, 2, 3))) static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, CFG_PATH_MAX, fmt, ap);
    va_end(ap);
}

static void join(char *out, const char *prefix, const char *name)
{
    pathf(out, "%s%s%s", prefix, prefix[0] ? "." : "", name);
}

static void range_text(char *out, size_t len, long min, long max)
{
    if (max == LONG_MAX)
        snprintf(out, len, ">= %ld", min);
    else
        snprintf(out, len, "between %ld and %ld", min, max);
}

static bool amqp_url_ok(const char *s)
{
    return nodes_valid(s);
}

static bool namespace_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 64 || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", s[0])) return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static bool log_level_ok(const char *s)
{
    return !strcmp(s, "debug") || !strcmp(s, "info") || !strcmp(s, "warn") || !strcmp(s, "error");
}

static bool queue_type_ok(const char *s)
{
    return !strcmp(s, "classic") || !strcmp(s, "quorum");
}

/* admin_token_ok accepts no token (the page is off) or one long enough not
 * to be guessed, in characters that survive an HTTP header and a URL. */
static bool admin_token_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0) return true;
    if (n < 16 || n > 256) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~') return false;
    return true;
}

/* listen_ok accepts host:port and [v6]:port; a bare v6 address is ambiguous. */
static bool listen_ok(const char *s)
{
    const char *port;
    size_t digits;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end == s + 1 || end[1] != ':') return false;
        port = end + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (!colon || colon == s || strchr(colon + 1, ':')) return false;
        port = colon + 1;
    }
    digits = strspn(port, "0123456789");
    if (digits < 1 || digits > 5 || port[digits] != '\0') return false;
    return strtol(port, NULL, 10) <= 65535;
}

static char **str_at(struct cfg *c, const struct scalar *s)
{
    return (char **)((char *)c + s->off);
}

static long *long_at(struct cfg *c, const struct scalar *s)
{
    return (long *)((char *)c + s->off);
}

static const struct scalar *scalar_find(const char *key)
{
    for (size_t i = 0; i < N_SCALARS; i++)
        if (!strcmp(scalars[i].key, key)) return &scalars[i];
    return NULL;
}

/* is_section tells whether key is an object holding scalars, like "ingress". */
static bool is_section(const char *key)
{
    size_t n = strlen(key);

    for (size_t i = 0; i < N_SCALARS; i++)
        if (!strncmp(scalars[i].key, key, n) && scalars[i].key[n] == '.') return true;
    return false;
}

static int set_str(const struct ctx *x, const char *path, struct cfg *c, const struct scalar *s,
                   const char *v)
{
    char *copy;

    if (!s->ok(v)) {
        if (s->secret) return fail(x, path, "must be %s (value not shown)", s->rule);
        return fail(x, path, "must be %s (got \"%.80s\")", s->rule, v);
    }
    copy = strdup(v);
    if (!copy) return fail(x, path, "out of memory");
    free(*str_at(c, s));
    *str_at(c, s) = copy;
    return 0;
}

/* set_long stores n if it was read (ok) and is in range; got is how the
 * value was written. */
static int set_long(const struct ctx *x, const char *path, struct cfg *c, const struct scalar *s,
                    bool ok, long n, const char *got)
{
    char range[64];

    if (!ok || n < s->min || n > s->max) {
        range_text(range, sizeof range, s->min, s->max);
        return fail(x, path, "must be %s (got %.80s)", range, got);
    }
    *long_at(c, s) = n;
    return 0;
}

/* json_string reads a string value, refusing embedded NULs that C would cut. */
static int json_string(const struct ctx *x, const char *path, struct json_object *v,
                       const char **out)
{
    if (!json_object_is_type(v, json_type_string))
        return fail(x, path, "must be a string (got %.80s)", show(v));
    *out = json_object_get_string(v);
    if (strlen(*out) != (size_t)json_object_get_string_len(v))
        return fail(x, path, "must not contain a NUL character");
    return 0;
}

static int scalar_from_json(const struct ctx *x, const char *path, struct cfg *c,
                            const struct scalar *s, struct json_object *v)
{
    const char *str;

    if (s->type == T_STR) {
        if (s->secret && !json_object_is_type(v, json_type_string))
            return fail(x, path, "must be a string");
        if (json_string(x, path, v, &str) < 0) return -1;
        return set_str(x, path, c, s, str);
    }
    if (!json_object_is_type(v, json_type_int))
        return fail(x, path, "must be an integer (got %.80s)", show(v));
    /* json-c clamps integers beyond int64 to its limits, which are out of every range. */
    return set_long(x, path, c, s, true, (long)json_object_get_int64(v), show(v));
}

static int scalar_from_env(const struct ctx *x, struct cfg *c, const struct scalar *s,
                           const char *v)
{
    char got[96];
    char *end;
    long n;

    if (s->type == T_STR) return set_str(x, s->env, c, s, v);
    snprintf(got, sizeof got, "\"%.80s\"", v);
    errno = 0;
    n = strtol(v, &end, 10);
    return set_long(x, s->env, c, s, !errno && end != v && *end == '\0', n, got);
}

static int set_defaults(const struct ctx *x, struct cfg *c)
{
    for (size_t i = 0; i < N_SCALARS; i++) {
        const struct scalar *s = &scalars[i];
        if (s->type == T_LONG) {
            *long_at(c, s) = s->def;
            continue;
        }
        *str_at(c, s) = strdup(s->def_str);
        if (!*str_at(c, s)) return fail(x, NULL, "out of memory");
    }
    return 0;
}

static int apply_env(struct cfg *c, char *err, size_t errlen)
{
    const struct ctx x = {"environment", err, errlen};

    for (size_t i = 0; i < N_SCALARS; i++) {
        const char *v = getenv(scalars[i].env);
        if (v && scalar_from_env(&x, c, &scalars[i], v) < 0) return -1;
    }
    return 0;
}

/* load_section applies the members of object o found at prefix ("" for the
 * document); at the top it also hands back "keys" and "routes". */
static int load_section(const struct ctx *x, struct cfg *c, struct json_object *o,
                        const char *prefix, struct json_object **keys, struct json_object **routes)
{
    char path[CFG_PATH_MAX];

    json_object_object_foreach(o, name, v)
    {
        const struct scalar *s;
        join(path, prefix, name);
        s = scalar_find(path);
        if (s) {
            if (scalar_from_json(x, path, c, s, v) < 0) return -1;
        } else if (keys && !strcmp(name, "keys")) {
            *keys = v;
        } else if (routes && !strcmp(name, "routes")) {
            *routes = v;
        } else if (is_section(path)) {
            if (!json_object_is_type(v, json_type_object))
                return fail(x, path, "must be an object (got %.80s)", show(v));
            if (load_section(x, c, v, path, NULL, NULL) < 0) return -1;
        } else {
            return fail(x, NULL, "unknown key %s", path);
        }
    }
    return 0;
}

/* check_members refuses a member of o that is neither in fields nor in names. */
static int check_members(const struct ctx *x, const char *path, struct json_object *o,
                         const struct field *fields, size_t n, const char *const *names)
{
    json_object_object_foreach(o, name, v)
    {
        bool known = false;
        (void)v;
        for (size_t i = 0; i < n && !known; i++)
            known = !strcmp(fields[i].name, name);
        for (size_t i = 0; names[i] && !known; i++)
            known = !strcmp(names[i], name);
        if (!known) return fail(x, NULL, "unknown key %s.%s", path, name);
    }
    return 0;
}

/* store sets field f of base to n, or to d for a double field. */
static void store(const struct field *f, void *base, int64_t n, double d)
{
    char *p = (char *)base + f->off;

    if (f->type == F_DOUBLE)
        *(double *)p = d;
    else if (f->type == F_INT)
        *(int *)p = (int)n;
    else
        *(long *)p = (long)n;
}

static int load_field(const struct ctx *x, const char *path, struct json_object *v,
                      const struct field *f, void *base)
{
    char range[64];
    bool is_int = json_object_is_type(v, json_type_int);
    int64_t n = json_object_get_int64(v);
    double d = json_object_get_double(v);

    if (!is_int && (f->type != F_DOUBLE || !json_object_is_type(v, json_type_double)))
        return fail(x, path, "must be %s (got %.80s)",
                    f->type == F_DOUBLE ? "a number" : "an integer", show(v));
    if (is_int ? n < f->min || n > f->max : !(d >= (double)f->min && d <= (double)f->max)) {
        range_text(range, sizeof range, f->min, f->max);
        return fail(x, path, "must be %s (got %.80s)", range, show(v));
    }
    store(f, base, n, d);
    return 0;
}

/* load_fields sets every numeric field of base from o, or to its default. */
static int load_fields(const struct ctx *x, const char *path, struct json_object *o,
                       const struct field *fields, size_t n, void *base)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;

    for (size_t i = 0; i < n; i++) {
        const struct field *f = &fields[i];
        if (!json_object_object_get_ex(o, f->name, &v)) {
            store(f, base, f->def, (double)f->def);
            continue;
        }
        join(p, path, f->name);
        if (load_field(x, p, v, f, base) < 0) return -1;
    }
    return 0;
}

/* member_string reads the required string member name of o, 1..max bytes,
 * into a new copy at *out. */
static int member_string(const struct ctx *x, const char *path, struct json_object *o,
                         const char *name, size_t max, char **out)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;
    const char *s;
    size_t n;

    join(p, path, name);
    if (!json_object_object_get_ex(o, name, &v)) return fail(x, p, "is required");
    if (json_string(x, p, v, &s) < 0) return -1;
    n = strlen(s);
    if (n < 1 || n > max) return fail(x, p, "must be 1..%zu characters (got %zu)", max, n);
    *out = strdup(s);
    return *out ? 0 : fail(x, p, "out of memory");
}

/* load_strings copies the non-empty array a of non-empty strings into *out. */
static int load_strings(const struct ctx *x, const char *path, struct json_object *a, char ***out,
                        size_t *n)
{
    char p[CFG_PATH_MAX];
    size_t len;
    const char *s;

    if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) == 0)
        return fail(x, path, "must be a non-empty array of strings (got %.80s)", show(a));
    len = json_object_array_length(a);
    *out = calloc(len, sizeof **out);
    if (!*out) return fail(x, path, "out of memory");
    for (size_t i = 0; i < len; i++) {
        pathf(p, "%s[%zu]", path, i);
        if (json_string(x, p, json_object_array_get_idx(a, i), &s) < 0) return -1;
        if (!s[0]) return fail(x, p, "must not be empty");
        (*out)[i] = strdup(s);
        if (!(*out)[i]) return fail(x, p, "out of memory");
        (*n)++;
    }
    return 0;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool route_name_ok(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* load_upstreams checks each base URL and strips its trailing slashes, since
 * request paths are appended with their own leading slash. */
static int load_upstreams(const struct ctx *x, const char *path, struct json_object *o,
                          struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *a;

    join(p, path, "upstreams");
    if (!json_object_object_get_ex(o, "upstreams", &a)) return fail(x, p, "is required");
    if (load_strings(x, p, a, &r->upstreams, &r->n_upstreams) < 0) return -1;
    for (size_t i = 0; i < r->n_upstreams; i++) {
        char *u = r->upstreams[i];
        size_t scheme = !strncmp(u, "http://", 7) ? 7 : !strncmp(u, "https://", 8) ? 8 : 0;
        size_t len = strlen(u);
        pathf(p, "%s.upstreams[%zu]", path, i);
        if (!scheme) return fail(x, p, "must start with http:// or https:// (got \"%.80s\")", u);
        while (len > scheme && u[len - 1] == '/')
            u[--len] = '\0';
        if (len == scheme) return fail(x, p, "must name a host after the scheme");
    }
    return 0;
}

static int load_route(const struct ctx *x, struct cfg_route *r, const char *name,
                      struct json_object *o)
{
    static const char *const names[] = {"upstreams", NULL};
    char path[CFG_PATH_MAX], p[CFG_PATH_MAX];

    join(path, "routes", name);
    if (!route_name_ok(name))
        return fail(x, path, "a route name must be 1..64 characters of [A-Za-z0-9_.-]");
    if (!json_object_is_type(o, json_type_object))
        return fail(x, path, "must be an object (got %.80s)", show(o));
    if (check_members(x, path, o, route_fields, N_FIELDS(route_fields), names) < 0) return -1;
    r->name = strdup(name);
    if (!r->name) return fail(x, path, "out of memory");
    if (load_upstreams(x, path, o, r) < 0) return -1;
    if (load_fields(x, path, o, route_fields, N_FIELDS(route_fields), r) < 0) return -1;
    if (r->backoff_max_ms < r->backoff_ms) {
        join(p, path, "backoff_max_ms");
        return fail(x, p, "must be >= backoff_ms (%ld) (got %ld)", r->backoff_ms,
                    r->backoff_max_ms);
    }
    return 0;
}

static int load_routes(const struct ctx *x, struct cfg *c, struct json_object *o)
{
    size_t n;

    if (!json_object_is_type(o, json_type_object))
        return fail(x, "routes", "must be an object of name -> route (got %.80s)", show(o));
    n = (size_t)json_object_object_length(o);
    if (n == 0) return 0;
    c->routes = calloc(n, sizeof *c->routes);
    if (!c->routes) return fail(x, "routes", "out of memory");
    json_object_object_foreach(o, name, v)
    {
        if (load_route(x, &c->routes[c->n_routes++], name, v) < 0) return -1;
    }
    return 0;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* load_secret never echoes the value: an operator may have pasted the token
 * itself instead of its hash. */
static int load_secret(const struct ctx *x, const char *path, struct json_object *o,
                       struct cfg_key *k)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;
    const char *hex;

    join(p, path, "secret_sha256");
    if (!json_object_object_get_ex(o, "secret_sha256", &v)) return fail(x, p, "is required");
    if (json_string(x, p, v, &hex) < 0) return -1;
    if (strlen(hex) != 2 * CFG_SHA256_LEN || strspn(hex, "0123456789abcdefABCDEF") != strlen(hex))
        return fail(x, p,
                    "must be 64 hex characters, the SHA-256 of the bearer token (value "
                    "not shown)");
    for (size_t i = 0; i < CFG_SHA256_LEN; i++)
        k->secret_sha256[i] =
            (unsigned char)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
    return 0;
}

static int load_key_routes(const struct ctx *x, const struct cfg *c, const char *path,
                           struct json_object *o, struct cfg_key *k)
{
    char p[CFG_PATH_MAX];
    struct json_object *a;

    join(p, path, "routes");
    if (!json_object_object_get_ex(o, "routes", &a)) {
        k->routes = calloc(1, sizeof *k->routes);
        if (k->routes) k->routes[0] = strdup("*");
        if (!k->routes || !k->routes[0]) return fail(x, p, "out of memory");
        k->n_routes = 1;
        return 0;
    }
    if (load_strings(x, p, a, &k->routes, &k->n_routes) < 0) return -1;
    for (size_t i = 0; i < k->n_routes; i++) {
        const char *r = k->routes[i];
        pathf(p, "%s.routes[%zu]", path, i);
        if (strcmp(r, "*") && !cfg_route_find(c, r, strlen(r)))
            return fail(x, p, "unknown route \"%.80s\" (not in routes)", r);
    }
    return 0;
}

/* key_unique refuses a repeated id, and a repeated secret, which would make
 * the token's key ambiguous. */
static int key_unique(const struct ctx *x, const char *path, const struct cfg *c,
                      const struct cfg_key *k)
{
    char p[CFG_PATH_MAX];

    for (const struct cfg_key *o = c->keys; o < k; o++) {
        if (!strcmp(o->id, k->id)) {
            join(p, path, "id");
            return fail(x, p, "duplicate id \"%s\" (ids must be unique)", k->id);
        }
        if (!memcmp(o->secret_sha256, k->secret_sha256, CFG_SHA256_LEN)) {
            join(p, path, "secret_sha256");
            return fail(x, p, "same secret as key \"%s\"", o->id);
        }
    }
    return 0;
}

static int load_key(const struct ctx *x, const struct cfg *c, struct cfg_key *k, size_t i,
                    struct json_object *o)
{
    static const char *const names[] = {"id", "secret_sha256", "tenant", "routes", NULL};
    char path[CFG_PATH_MAX];

    pathf(path, "keys[%zu]", i);
    if (!json_object_is_type(o, json_type_object))
        return fail(x, path, "must be an object (got %.80s)", show(o));
    if (check_members(x, path, o, key_fields, N_FIELDS(key_fields), names) < 0) return -1;
    if (member_string(x, path, o, "id", CFG_NAME_MAX, &k->id) < 0) return -1;
    if (load_secret(x, path, o, k) < 0) return -1;
    if (member_string(x, path, o, "tenant", CFG_NAME_MAX, &k->tenant) < 0) return -1;
    if (load_fields(x, path, o, key_fields, N_FIELDS(key_fields), k) < 0) return -1;
    if (load_key_routes(x, c, path, o, k) < 0) return -1;
    return key_unique(x, path, c, k);
}

static int load_keys(const struct ctx *x, struct cfg *c, struct json_object *a)
{
    size_t n;

    if (!json_object_is_type(a, json_type_array))
        return fail(x, "keys", "must be an array (got %.80s)", show(a));
    n = json_object_array_length(a);
    if (n == 0) return 0;
    c->keys = calloc(n, sizeof *c->keys);
    if (!c->keys) return fail(x, "keys", "out of memory");
    for (size_t i = 0; i < n; i++)
        if (load_key(x, c, &c->keys[c->n_keys++], i, json_object_array_get_idx(a, i)) < 0)
            return -1;
    return 0;
}

/* fail_at reports a syntax error at byte at of text by line and column. */
static int fail_at(const struct ctx *x, const char *text, size_t at, const char *what)
{
    size_t line = 1, col = 1;

    for (size_t i = 0; i < at; i++, col++)
        if (text[i] == '\n') line++, col = 0;
    return fail(x, NULL, "line %zu, column %zu: invalid JSON (%s)", line, col, what);
}

/* parse_json parses text (len bytes, NUL-terminated) as one strict JSON
 * document of type want into a new *out. */
static int parse_json(const struct ctx *x, const char *text, size_t len, enum json_type want,
                      struct json_object **out)
{
    struct json_tokener *tok = NULL;
    enum json_tokener_error e;
    int rc = -1;

    *out = NULL;
    if (len >= INT_MAX) return fail(x, NULL, "the document is too large");
    tok = json_tokener_new_ex(CFG_JSON_DEPTH);
    if (!tok) return fail(x, NULL, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    /* The terminating NUL is passed too, so that the tokener knows the text
     * is complete: it then refuses a truncated document and trailing text. */
    *out = json_tokener_parse_ex(tok, text, (int)len + 1);
    e = json_tokener_get_error(tok);
    if (e != json_tokener_success)
        fail_at(x, text, json_tokener_get_parse_end(tok), json_tokener_error_desc(e));
    else if (!json_object_is_type(*out, want))
        fail(x, NULL, "must be a JSON %s (got %.80s)", json_type_to_name(want), show(*out));
    else
        rc = 0;
    json_tokener_free(tok);
    if (rc < 0) {
        json_object_put(*out);
        *out = NULL;
    }
    return rc;
}

/* load_list loads "keys" or "routes": from the environment variable var when
 * it is set, else from fallback, the member of the file (may be NULL). */
static int load_list(const struct ctx *file, struct cfg *c, const char *var,
                     struct json_object *fallback, enum json_type want,
                     int (*fn)(const struct ctx *, struct cfg *, struct json_object *))
{
    char src[64];
    const struct ctx env = {src, file->err, file->errlen};
    const char *text = getenv(var);
    struct json_object *doc = NULL;
    int rc = -1;

    snprintf(src, sizeof src, "environment %s", var);
    if (!text) return fallback ? fn(file, c, fallback) : 0;
    if (parse_json(&env, text, strlen(text), want, &doc) < 0) goto out;
    rc = fn(&env, c, doc);
out:
    json_object_put(doc);
    return rc;
}

static int cross_check(const struct ctx *x, const struct cfg *c)
{
    if (c->worker.prefetch < c->worker.batch_size)
        return fail(x, "worker.prefetch", "must be >= worker.batch_size (%ld) (got %ld)",
                    c->worker.batch_size, c->worker.prefetch);
    return 0;
}

/* load is cfg_load_string with json NULL meaning no file. */
static int load(struct cfg *c, const char *json, size_t len, const char *name, char *err,
                size_t errlen)
{
    char src[CFG_PATH_MAX];
    const struct ctx x = {src, err, errlen};
    struct json_object *doc = NULL, *keys = NULL, *routes = NULL;
    int rc = -1;

    snprintf(src, sizeof src, "config %s", name);
    memset(c, 0, sizeof *c);
    if (set_defaults(&x, c) < 0) goto out;
    if (json && parse_json(&x, json, len, json_type_object, &doc) < 0) goto out;
    if (doc && load_section(&x, c, doc, "", &keys, &routes) < 0) goto out;
    if (apply_env(c, err, errlen) < 0) goto out;
    /* Routes first: a key's routes must name configured routes. */
    if (load_list(&x, c, "SLUICE_ROUTES", routes, json_type_object, load_routes) < 0) goto out;
    if (load_list(&x, c, "SLUICE_KEYS", keys, json_type_array, load_keys) < 0) goto out;
    rc = cross_check(&x, c);
out:
    json_object_put(doc);
    if (rc < 0) cfg_free(c);
    return rc;
}

int cfg_load_string(struct cfg *c, const char *json, const char *name, char *err, size_t errlen)
{
    return load(c, json, json ? strlen(json) : 0, name ? name : "(string)", err, errlen);
}

/* read_all reads path into a new NUL-terminated *out, refusing huge files. */
static int read_all(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 0;
    int rc = -1;

    *out = NULL;
    *len = 0;
    if (!f) goto fail;
    while (!feof(f) && !ferror(f) && *len <= (size_t)CFG_MAX_FILE_BYTES) {
        if (*len == cap) {
            char *bigger = realloc(*out, 2 * cap + 4096 + 1);
            if (!bigger) goto fail;
            *out = bigger;
            cap = 2 * cap + 4096;
        }
        *len += fread(*out + *len, 1, cap - *len, f);
    }
    if (ferror(f)) goto fail;
    if (*len > (size_t)CFG_MAX_FILE_BYTES) {
        snprintf(err, errlen, "config %s: larger than %ld bytes", path, CFG_MAX_FILE_BYTES);
        goto out;
    }
    (*out)[*len] = '\0';
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "config %s: cannot read: %s", path, strerror(errno ? errno : EIO));
out:
    if (f) fclose(f);
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int cfg_load(struct cfg *c, const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rc;

    if (!path) return load(c, NULL, 0, "(defaults)", err, errlen);
    memset(c, 0, sizeof *c);
    if (read_all(path, &text, &len, err, errlen) < 0) return -1;
    if (strlen(text) != len) {
        snprintf(err, errlen, "config %s: contains a NUL byte", path);
        free(text);
        return -1;
    }
    rc = load(c, text, len, path, err, errlen);
    free(text);
    return rc;
}

void cfg_free(struct cfg *c)
{
    if (!c) return;
    for (size_t i = 0; i < N_SCALARS; i++)
        if (scalars[i].type == T_STR) free(*str_at(c, &scalars[i]));
    for (size_t i = 0; i < c->n_keys; i++) {
        free(c->keys[i].id);
        free(c->keys[i].tenant);
        free_strings(c->keys[i].routes, c->keys[i].n_routes);
    }
    free(c->keys);
    for (size_t i = 0; i < c->n_routes; i++) {
        free(c->routes[i].name);
        free_strings(c->routes[i].upstreams, c->routes[i].n_upstreams);
    }
    free(c->routes);
    memset(c, 0, sizeof *c);
}

const struct cfg_route *cfg_route_find(const struct cfg *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_routes; i++)
        if (strlen(c->routes[i].name) == len && !memcmp(c->routes[i].name, name, len))
            return &c->routes[i];
    return NULL;
}

const struct cfg_key *cfg_key_for_token(const struct cfg *c, const char *token, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const struct cfg_key *found = NULL;

    if (!token || EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1) return NULL;
    /* Every key is compared, with no early exit, so that the time taken does
     * not tell an attacker which key (if any) came close. */
    for (size_t i = 0; i < c->n_keys; i++)
        if (CRYPTO_memcmp(md, c->keys[i].secret_sha256, CFG_SHA256_LEN) == 0) found = &c->keys[i];
    return found;
}

bool cfg_key_allows_route(const struct cfg_key *key, const char *name)
{
    if (!key || !name) return false;
    for (size_t i = 0; i < key->n_routes; i++)
        if (!strcmp(key->routes[i], "*") || !strcmp(key->routes[i], name)) return true;
    return false;
}

void cfg_usage(FILE *f)
{
    char range[64];

    fputs("| Key | Environment | Default | Allowed | Meaning |\n", f);
    fputs("|-----|-------------|---------|---------|---------|\n", f);
    for (size_t i = 0; i < N_SCALARS; i++) {
        const struct scalar *s = &scalars[i];
        if (s->type == T_STR) {
            fprintf(f, "| `%s` | `%s` | %s%s%s | %s | %s |\n", s->key, s->env,
                    s->def_str[0] ? "`" : "", s->def_str[0] ? s->def_str : "(empty)",
                    s->def_str[0] ? "`" : "", s->rule, s->meaning);
            continue;
        }
        range_text(range, sizeof range, s->min, s->max);
        fprintf(f, "| `%s` | `%s` | `%ld` | %s | %s |\n", s->key, s->env, s->def, range,
                s->meaning);
    }
    fputs("\n`SLUICE_KEYS` (a JSON array) and `SLUICE_ROUTES` (a JSON object), when set, "
          "replace the `keys` and `routes` of the file.\n",
          f);
}
