/* config.c: loads the JSON configuration of both binaries. Every scalar setting
 * is one row of scalars[] (key, environment variable, type, default, range,
 * target field, meaning), in the manner of redis's static_configs[]: parsing the
 * file, environment overrides, validation and cfg_usage() all read that table.
 * The "keys" array (config_keys.c) and "routes" object (config_routes.c)
 * are parsed by hand, with small tables of their numeric fields;
 * SLUICE_KEYS and SLUICE_ROUTES replace them whole. */
#include "config.h"
#include "nodes.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

#define CFG_MAX_FILE_BYTES (16L * 1024 * 1024)
#define CFG_JSON_DEPTH 32

enum scalar_type { T_STR, T_LONG, T_LIST };

struct scalar {
    const char *key; /* dotted: "ingress.threads" */
    const char *env;
    enum scalar_type type;
    const char *def_str;
    long def, min, max;
    size_t off; /* of a char *, a long or a struct cfg_strings in struct cfg */
    bool (*ok)(const char *s);
    const char *rule; /* what ok accepts (of each item of a list), worded to follow "must be " */
    bool secret;      /* the value may hold a password: never echo it */
    const char *meaning;
};

static bool amqp_url_ok(const char *s);
static bool namespace_ok(const char *s);
static bool log_level_ok(const char *s);
static bool queue_type_ok(const char *s);
static bool listen_ok(const char *s);
static bool admin_token_ok(const char *s);
static bool file_ok(const char *s);
static bool origin_ok(const char *s);

#define STR(k, e, d, field, okf, rule, secret, m)                                                  \
    {                                                                                              \
        k, e, T_STR, d, 0, 0, 0, offsetof(struct cfg, field), okf, rule, secret, m                 \
    }
#define LNG(k, e, d, lo, hi, field, m)                                                             \
    {                                                                                              \
        k, e, T_LONG, NULL, d, lo, hi, offsetof(struct cfg, field), NULL, NULL, false, m           \
    }
/* A list is a JSON array of strings in the file, comma-separated in the
 * environment; empty by default. */
#define LST(k, e, field, okf, rule, m)                                                             \
    {                                                                                              \
        k, e, T_LIST, NULL, 0, 0, 0, offsetof(struct cfg, field), okf, rule, false, m              \
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
        "type of the lanes, dead and delay queues; quorum replicates them (docs/clustering.md)"),
    LNG("delivery_limit", "SLUICE_DELIVERY_LIMIT", 20, 1, 1000, delivery_limit,
        "deliveries of one request lost without an outcome (its worker died, lost its "
        "connection or requeued it) before it is dead with the error delivery_limit; workers "
        "count them in either queue type (docs/operations.md), and a quorum queue's broker "
        "dead-letters on its own count too"),
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
    LNG("ingress.max_status_bytes", "SLUICE_MAX_STATUS_BYTES", 268435456, 0, 1099511627776,
        ingress.max_status_bytes,
        "result bytes kept in memory; older ones are read back from the stream (0: no bound)"),
    LNG("ingress.confirm_timeout_ms", "SLUICE_CONFIRM_TIMEOUT_MS", 5000, 100, 60000,
        ingress.confirm_timeout_ms, "a publish unconfirmed this long answers 503"),
    LNG("ingress.max_connections", "SLUICE_MAX_CONNECTIONS", 10000, 16, 1000000,
        ingress.max_connections, "concurrent client connections"),
    LNG("ingress.max_connections_per_ip", "SLUICE_MAX_CONNECTIONS_PER_IP", 1024, 1, 1000000,
        ingress.max_connections_per_ip,
        "concurrent connections from one client address (a proxy in front counts as one)"),
    LNG("ingress.connection_timeout_s", "SLUICE_CONNECTION_TIMEOUT_S", 30, 1, 3600,
        ingress.connection_timeout_s,
        "a connection that sends and receives nothing this long is closed (idle)"),
    STR("ingress.id_secret", "SLUICE_ID_SECRET", "", ingress.id_secret, admin_token_ok,
        "empty, or 16..256 printable ASCII characters without spaces", true,
        "key of the HMAC that makes the tracking ID of a request with an Idempotency-Key; "
        "the same on every replica (empty: derived from the namespace, see docs/api.md)"),
    LNG("ingress.max_wait_s", "SLUICE_MAX_WAIT_S", 60, 0, 3600, ingress.max_wait_s,
        "longest long-poll wait of GET /v1/requests/<id>?wait=S; longer waits are cut to it"),
    LNG("ingress.request_timeout_s", "SLUICE_REQUEST_TIMEOUT_S", 10, 1, 3600,
        ingress.request_timeout_s,
        "a request must arrive whole (request line, headers and body) within this from its "
        "first byte, or it is answered 408 and its connection closed"),
    LNG("ingress.max_header_bytes", "SLUICE_MAX_HEADER_BYTES", 32768, 1024, 1048576,
        ingress.max_header_bytes, "largest request header block (431 beyond it)"),
    LNG("ingress.max_url_bytes", "SLUICE_MAX_URL_BYTES", 20480, 256, 1048576, ingress.max_url_bytes,
        "longest request target, path and query (414 beyond it)"),
    STR("ingress.tls_cert_file", "SLUICE_TLS_CERT_FILE", "", ingress.tls_cert_file, file_ok,
        "empty, or the path of a PEM file", false,
        "certificate chain of the listener (with tls_key_file: HTTPS, TLS 1.2 and 1.3 only)"),
    STR("ingress.tls_key_file", "SLUICE_TLS_KEY_FILE", "", ingress.tls_key_file, file_ok,
        "empty, or the path of a PEM file", false,
        "private key of tls_cert_file (its contents are never logged)"),
    LST("ingress.cors_origins", "SLUICE_CORS_ORIGINS", ingress.cors_origins, origin_ok,
        "origins (scheme://host[:port]) or *",
        "browser origins allowed to call the API (CORS); "
        "empty: CORS off"),
    LNG("ingress.cors_max_age_s", "SLUICE_CORS_MAX_AGE_S", 600, 0, 86400, ingress.cors_max_age_s,
        "how long a browser may cache a preflight answer"),
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

/* file_ok accepts no path or one without control characters. */
static bool file_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ') return false;
    return true;
}

/* origin_ok accepts "*" or a serialized origin as browsers send it:
 * http:// or https://, a host of [a-z0-9.-] or a [v6] literal, an optional
 * port, nothing after (no path, no trailing slash), lower case. */
static bool origin_ok(const char *s)
{
    size_t scheme = !strncmp(s, "https://", 8) ? 8 : !strncmp(s, "http://", 7) ? 7 : 0;
    const char *host = s + scheme, *end;
    if (!strcmp(s, "*")) return true;
    if (!scheme || strlen(s) > 255) return false;
    if (*host == '[') {
        end = host + 1 + strspn(host + 1, "0123456789abcdef:.");
        if (*end++ != ']' || end == host + 2) return false;
    } else {
        end = host + strspn(host, "abcdefghijklmnopqrstuvwxyz0123456789.-");
        if (end == host) return false;
    }
    if (*end == ':') {
        size_t digits = strspn(end + 1, "0123456789");
        if (digits < 1 || digits > 5) return false;
        end += 1 + digits;
    }
    return *end == '\0';
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

static struct cfg_strings *list_at(struct cfg *c, const struct scalar *s)
{
    return (struct cfg_strings *)((char *)c + s->off);
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

static int set_str(const struct cfgp_src *x, const char *path, struct cfg *c,
                   const struct scalar *s, const char *v)
{
    char *copy;

    if (!s->ok(v)) {
        if (s->secret) return cfgp_fail(x, path, "must be %s (value not shown)", s->rule);
        return cfgp_fail(x, path, "must be %s (got \"%.80s\")", s->rule, v);
    }
    copy = strdup(v);
    if (!copy) return cfgp_fail(x, path, "out of memory");
    free(*str_at(c, s));
    *str_at(c, s) = copy;
    return 0;
}

/* set_long stores n if it was read (ok) and is in range; got is how the
 * value was written. */
static int set_long(const struct cfgp_src *x, const char *path, struct cfg *c,
                    const struct scalar *s, bool ok, long n, const char *got)
{
    char range[64];

    if (!ok || n < s->min || n > s->max) {
        cfgp_range_text(range, sizeof range, s->min, s->max);
        return cfgp_fail(x, path, "must be %s (got %.80s)", range, got);
    }
    *long_at(c, s) = n;
    return 0;
}

/* list_add checks v (n bytes) and appends a copy of it to the list of s. */
static int list_add(const struct cfgp_src *x, const char *path, struct cfg *c,
                    const struct scalar *s, const char *v, size_t n)
{
    struct cfg_strings *l = list_at(c, s);
    char *copy = strndup(v, n), **more;
    if (!copy) return cfgp_fail(x, path, "out of memory");
    if (!s->ok(copy)) {
        cfgp_fail(x, path, "each item must be %s (got \"%.80s\")", s->rule, copy);
        free(copy);
        return -1;
    }
    more = realloc(l->v, (l->n + 1) * sizeof *l->v);
    if (!more) {
        free(copy);
        return cfgp_fail(x, path, "out of memory");
    }
    l->v = more;
    l->v[l->n++] = copy;
    return 0;
}

static void list_clear(struct cfg *c, const struct scalar *s)
{
    struct cfg_strings *l = list_at(c, s);
    cfgp_free_strings(l->v, l->n);
    *l = (struct cfg_strings){0};
}

static int list_from_json(const struct cfgp_src *x, const char *path, struct cfg *c,
                          const struct scalar *s, struct json_object *v)
{
    const char *str;
    char p[CFG_PATH_MAX];

    if (!json_object_is_type(v, json_type_array))
        return cfgp_fail(x, path, "must be an array of strings (got %.80s)", cfgp_show(v));
    list_clear(c, s);
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        cfgp_pathf(p, "%s[%zu]", path, i);
        if (cfgp_string(x, p, json_object_array_get_idx(v, i), &str) < 0) return -1;
        if (list_add(x, p, c, s, str, strlen(str)) < 0) return -1;
    }
    return 0;
}

/* list_from_env reads a comma-separated list; blanks around items are
 * ignored and an empty value is an empty list. */
static int list_from_env(const struct cfgp_src *x, struct cfg *c, const struct scalar *s,
                         const char *v)
{
    list_clear(c, s);
    while (*v) {
        size_t n = strcspn(v, ",");
        const char *item = v;
        size_t len = n;
        while (len && (*item == ' ' || *item == '\t'))
            item++, len--;
        while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            len--;
        if (len && list_add(x, s->env, c, s, item, len) < 0) return -1;
        v += n + (v[n] == ',');
    }
    return 0;
}

static int scalar_from_json(const struct cfgp_src *x, const char *path, struct cfg *c,
                            const struct scalar *s, struct json_object *v)
{
    const char *str;

    if (s->type == T_LIST) return list_from_json(x, path, c, s, v);
    if (s->type == T_STR) {
        if (s->secret && !json_object_is_type(v, json_type_string))
            return cfgp_fail(x, path, "must be a string");
        if (cfgp_string(x, path, v, &str) < 0) return -1;
        return set_str(x, path, c, s, str);
    }
    if (!json_object_is_type(v, json_type_int))
        return cfgp_fail(x, path, "must be an integer (got %.80s)", cfgp_show(v));
    /* json-c clamps integers beyond int64 to its limits, which are out of every range. */
    return set_long(x, path, c, s, true, (long)json_object_get_int64(v), cfgp_show(v));
}

static int scalar_from_env(const struct cfgp_src *x, struct cfg *c, const struct scalar *s,
                           const char *v)
{
    char got[96];
    char *end;
    long n;

    if (s->type == T_STR) return set_str(x, s->env, c, s, v);
    if (s->type == T_LIST) return list_from_env(x, c, s, v);
    snprintf(got, sizeof got, "\"%.80s\"", v);
    errno = 0;
    n = strtol(v, &end, 10);
    return set_long(x, s->env, c, s, !errno && end != v && *end == '\0', n, got);
}

static int set_defaults(const struct cfgp_src *x, struct cfg *c)
{
    for (size_t i = 0; i < N_SCALARS; i++) {
        const struct scalar *s = &scalars[i];
        if (s->type == T_LONG) {
            *long_at(c, s) = s->def;
            continue;
        }
        if (s->type == T_LIST) continue; /* empty */
        *str_at(c, s) = strdup(s->def_str);
        if (!*str_at(c, s)) return cfgp_fail(x, NULL, "out of memory");
    }
    return 0;
}

static int apply_env(struct cfg *c, char *err, size_t errlen)
{
    const struct cfgp_src x = {"environment", err, errlen};

    for (size_t i = 0; i < N_SCALARS; i++) {
        const char *v = getenv(scalars[i].env);
        if (v && scalar_from_env(&x, c, &scalars[i], v) < 0) return -1;
    }
    return 0;
}

/* load_section applies the members of object o found at prefix ("" for the
 * document); at the top it also hands back "keys" and "routes". */
static int load_section(const struct cfgp_src *x, struct cfg *c, struct json_object *o,
                        const char *prefix, struct json_object **keys, struct json_object **routes)
{
    char path[CFG_PATH_MAX];

    json_object_object_foreach(o, name, v)
    {
        const struct scalar *s;
        cfgp_join(path, prefix, name);
        s = scalar_find(path);
        if (s) {
            if (scalar_from_json(x, path, c, s, v) < 0) return -1;
        } else if (keys && !strcmp(name, "keys")) {
            *keys = v;
        } else if (routes && !strcmp(name, "routes")) {
            *routes = v;
        } else if (is_section(path)) {
            if (!json_object_is_type(v, json_type_object))
                return cfgp_fail(x, path, "must be an object (got %.80s)", cfgp_show(v));
            if (load_section(x, c, v, path, NULL, NULL) < 0) return -1;
        } else {
            return cfgp_fail(x, NULL, "unknown key %s", path);
        }
    }
    return 0;
}

static int fail_at(const struct cfgp_src *x, const char *text, size_t at, const char *what)
{
    size_t line = 1, col = 1;

    for (size_t i = 0; i < at; i++, col++)
        if (text[i] == '\n') line++, col = 0;
    return cfgp_fail(x, NULL, "line %zu, column %zu: invalid JSON (%s)", line, col, what);
}

/* parse_json parses text (len bytes, NUL-terminated) as one strict JSON
 * document of type want into a new *out. */
static int parse_json(const struct cfgp_src *x, const char *text, size_t len, enum json_type want,
                      struct json_object **out)
{
    struct json_tokener *tok = NULL;
    enum json_tokener_error e;
    int rc = -1;

    *out = NULL;
    if (len >= INT_MAX) return cfgp_fail(x, NULL, "the document is too large");
    tok = json_tokener_new_ex(CFG_JSON_DEPTH);
    if (!tok) return cfgp_fail(x, NULL, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    /* The terminating NUL is passed too, so that the tokener knows the text
     * is complete: it then refuses a truncated document and trailing text. */
    *out = json_tokener_parse_ex(tok, text, (int)len + 1);
    e = json_tokener_get_error(tok);
    if (e != json_tokener_success)
        fail_at(x, text, json_tokener_get_parse_end(tok), json_tokener_error_desc(e));
    else if (!json_object_is_type(*out, want))
        cfgp_fail(x, NULL, "must be a JSON %s (got %.80s)", json_type_to_name(want),
                  cfgp_show(*out));
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
static int load_list(const struct cfgp_src *file, struct cfg *c, const char *var,
                     struct json_object *fallback, enum json_type want,
                     int (*fn)(const struct cfgp_src *, struct cfg *, struct json_object *))
{
    char src[64];
    const struct cfgp_src env = {src, file->err, file->errlen};
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

static int cross_check(const struct cfgp_src *x, const struct cfg *c)
{
    if (!c->ingress.tls_cert_file[0] != !c->ingress.tls_key_file[0])
        return cfgp_fail(
            x, c->ingress.tls_cert_file[0] ? "ingress.tls_key_file" : "ingress.tls_cert_file",
            "must be set too: HTTPS needs both the certificate and its key");
    if (c->worker.prefetch < c->worker.batch_size)
        return cfgp_fail(x, "worker.prefetch", "must be >= worker.batch_size (%ld) (got %ld)",
                         c->worker.batch_size, c->worker.prefetch);
    return 0;
}

/* load is cfg_load_string with json NULL meaning no file. */
static int load(struct cfg *c, const char *json, size_t len, const char *name, char *err,
                size_t errlen)
{
    char src[CFG_PATH_MAX];
    const struct cfgp_src x = {src, err, errlen};
    struct json_object *doc = NULL, *keys = NULL, *routes = NULL;
    int rc = -1;

    snprintf(src, sizeof src, "config %s", name);
    memset(c, 0, sizeof *c);
    if (set_defaults(&x, c) < 0) goto out;
    if (json && parse_json(&x, json, len, json_type_object, &doc) < 0) goto out;
    if (doc && load_section(&x, c, doc, "", &keys, &routes) < 0) goto out;
    if (apply_env(c, err, errlen) < 0) goto out;
    /* Routes first: a key's routes must name configured routes. */
    if (load_list(&x, c, "SLUICE_ROUTES", routes, json_type_object, cfgp_load_routes) < 0) goto out;
    if (load_list(&x, c, "SLUICE_KEYS", keys, json_type_array, cfgp_load_keys) < 0) goto out;
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
    for (size_t i = 0; i < N_SCALARS; i++) {
        if (scalars[i].type == T_STR) free(*str_at(c, &scalars[i]));
        if (scalars[i].type == T_LIST) list_clear(c, &scalars[i]);
    }
    cfgp_free_keys(c);
    cfgp_free_routes(c);
    memset(c, 0, sizeof *c);
}

void cfg_usage(FILE *f)
{
    char range[64];

    fputs("| Key | Environment | Default | Allowed | Meaning |\n", f);
    fputs("|-----|-------------|---------|---------|---------|\n", f);
    for (size_t i = 0; i < N_SCALARS; i++) {
        const struct scalar *s = &scalars[i];
        if (s->type == T_LIST) {
            fprintf(f, "| `%s` | `%s` | (empty) | %s; comma-separated in the environment | %s |\n",
                    s->key, s->env, s->rule, s->meaning);
            continue;
        }
        if (s->type == T_STR) {
            fprintf(f, "| `%s` | `%s` | %s%s%s | %s | %s |\n", s->key, s->env,
                    s->def_str[0] ? "`" : "", s->def_str[0] ? s->def_str : "(empty)",
                    s->def_str[0] ? "`" : "", s->rule, s->meaning);
            continue;
        }
        cfgp_range_text(range, sizeof range, s->min, s->max);
        fprintf(f, "| `%s` | `%s` | `%ld` | %s | %s |\n", s->key, s->env, s->def, range,
                s->meaning);
    }
    fputs("\n`SLUICE_KEYS` (a JSON array) and `SLUICE_ROUTES` (a JSON object), when set, "
          "replace the `keys` and `routes` of the file.\n",
          f);
}
