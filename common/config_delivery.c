/* config_delivery.c: a route's settings for what its calls carry (see
 * config.h): signing_secrets, set_headers, remove_headers, batch_url,
 * batch_max, callback_hosts, allow_private_callbacks and results_url. Apart from
 * config_routes.c so that a route's edge and shaping settings and its
 * delivery settings each read in one place. A signing secret never appears
 * in a message: errors name the setting and its index only. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_parse.h"

#define MAX_SECRETS 8
#define MAX_SET 32
#define MAX_VALUE 8192
#define MAX_BATCH 1000

/* The headers sluice itself writes on every call, in its own order
 * (worker/outbound.h): configuration can neither set nor remove them, and
 * the framing headers belong to curl. */
static const char *const reserved[] = {
    "Idempotency-Key",
    "traceparent",
    "tracestate",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Expect",
    "Keep-Alive",
    "Upgrade",
    "TE",
    "Trailer",
};

bool cfg_header_reserved(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (n == strlen(reserved[i]) && strncasecmp(name, reserved[i], n) == 0) return true;
    return false;
}

static bool token_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 255 &&
           strspn(
               s,
               "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
               n;
}

/* value_ok accepts visible ASCII, spaces and tabs: no CR or LF that would
 * split a header, and nothing curl would have to encode. */
static bool value_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > MAX_VALUE) return false;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] < ' ' && s[i] != '\t') || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
}

static int name_check(const struct cfgp_src *x, const char *p, const char *name)
{
    if (!token_ok(name))
        return cfgp_fail(x, p, "must be an HTTP header name (got \"%.80s\")", name);
    if (cfg_header_reserved(name, strlen(name)))
        return cfgp_fail(x, p, "%s is written by sluice itself (or by HTTP) on every call", name);
    return 0;
}

/* load_secrets decodes signing_secrets without ever quoting one. */
static int load_secrets(const struct cfgp_src *x, const char *path, struct json_object *o,
                        struct cfg_route *r)
{
    char p[CFG_PATH_MAX], why[128];
    struct json_object *a;

    cfgp_join(p, path, "signing_secrets");
    if (!json_object_object_get_ex(o, "signing_secrets", &a)) return 0;
    size_t n = json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
    if (n == 0 || n > MAX_SECRETS)
        return cfgp_fail(x, p, "must be an array of 1 to %d \"whsec_...\" strings", MAX_SECRETS);
    r->signing_keys = calloc(n, sizeof *r->signing_keys);
    if (!r->signing_keys) return cfgp_fail(x, p, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(a, i);
        cfgp_pathf(p, "%s.signing_secrets[%zu]", path, i);
        if (!json_object_is_type(v, json_type_string))
            return cfgp_fail(x, p, "must be a \"whsec_...\" string");
        if (sign_key_parse(&r->signing_keys[i], json_object_get_string(v), why, sizeof why) < 0)
            return cfgp_fail(x, p, "%s", why);
        r->n_signing_keys++;
    }
    return 0;
}

static int load_set(const struct cfgp_src *x, const char *path, struct json_object *o,
                    struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *m;

    cfgp_join(p, path, "set_headers");
    if (!json_object_object_get_ex(o, "set_headers", &m)) return 0;
    size_t n = json_object_is_type(m, json_type_object) ? (size_t)json_object_object_length(m) : 0;
    if (n == 0 || n > MAX_SET)
        return cfgp_fail(x, p, "must be an object of 1 to %d \"Name\": \"value\" members", MAX_SET);
    r->set_names.v = calloc(n, sizeof(char *));
    r->set_values.v = calloc(n, sizeof(char *));
    if (!r->set_names.v || !r->set_values.v) return cfgp_fail(x, p, "out of memory");
    json_object_object_foreach(m, name, v)
    {
        const char *s;
        cfgp_pathf(p, "%s.set_headers.%s", path, name);
        if (name_check(x, p, name) < 0 || cfgp_string(x, p, v, &s) < 0) return -1;
        if (!value_ok(s))
            return cfgp_fail(x, p, "must be at most %d characters without control characters",
                             MAX_VALUE);
        r->set_names.v[r->set_names.n] = strdup(name);
        if (!r->set_names.v[r->set_names.n]) return cfgp_fail(x, p, "out of memory");
        r->set_names.n++;
        r->set_values.v[r->set_values.n] = strdup(s);
        if (!r->set_values.v[r->set_values.n]) return cfgp_fail(x, p, "out of memory");
        r->set_values.n++;
    }
    return 0;
}

static int load_remove(const struct cfgp_src *x, const char *path, struct json_object *o,
                       struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *a;

    cfgp_join(p, path, "remove_headers");
    if (!json_object_object_get_ex(o, "remove_headers", &a)) return 0;
    if (cfgp_load_strings(x, p, a, &r->remove_headers.v, &r->remove_headers.n) < 0) return -1;
    for (size_t i = 0; i < r->remove_headers.n; i++) {
        cfgp_pathf(p, "%s.remove_headers[%zu]", path, i);
        if (name_check(x, p, r->remove_headers.v[i]) < 0) return -1;
    }
    return 0;
}

/* load_url reads the http:// or https:// URL named key (used as given)
 * into *out; absent: *out stays NULL. */
static int load_url(const struct cfgp_src *x, const char *path, struct json_object *o,
                    const char *key, char **out)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;
    const char *u;

    if (!json_object_object_get_ex(o, key, &v)) return 0;
    cfgp_join(p, path, key);
    if (cfgp_string(x, p, v, &u) < 0) return -1;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return cfgp_fail(x, p, "must start with http:// or https:// (got \"%.80s\")", u);
    if (strlen(u) > 2048 || !value_ok(u) || strchr(u, ' '))
        return cfgp_fail(x, p, "must be a URL of at most 2048 printable characters");
    *out = strdup(u);
    return *out ? 0 : cfgp_fail(x, p, "out of memory");
}

/* load_batch reads batch_url and batch_max. */
static int load_batch(const struct cfgp_src *x, const char *path, struct json_object *o,
                      struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;

    r->batch_max = 100;
    cfgp_join(p, path, "batch_max");
    if (json_object_object_get_ex(o, "batch_max", &v)) {
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
            json_object_get_int64(v) > MAX_BATCH)
            return cfgp_fail(x, p, "must be an integer between 1 and %d (got %.80s)", MAX_BATCH,
                             cfgp_show(v));
        r->batch_max = (long)json_object_get_int64(v);
    }
    return load_url(x, path, o, "batch_url", &r->batch_url);
}

/* host_ok accepts a DNS name or an IP address literal as curl_url reports
 * a host (IPv6 in brackets), letters already lowered. */
static bool host_ok(const char *s)
{
    size_t n = strlen(s);
    if (n >= 3 && s[0] == '[' && s[n - 1] == ']')
        return strspn(s + 1, "0123456789abcdef:.") == n - 2;
    return n >= 1 && n <= 253 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n &&
           s[0] != '.' && s[0] != '-';
}

/* load_callbacks reads callback_hosts (lower-cased), allow_private_callbacks
 * and results_url. */
static int load_callbacks(const struct cfgp_src *x, const char *path, struct json_object *o,
                          struct cfg_route *r)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;

    cfgp_join(p, path, "callback_hosts");
    if (json_object_object_get_ex(o, "callback_hosts", &v)) {
        if (cfgp_load_strings(x, p, v, &r->callback_hosts.v, &r->callback_hosts.n) < 0) return -1;
        for (size_t i = 0; i < r->callback_hosts.n; i++) {
            char *h = r->callback_hosts.v[i];
            for (char *c = h; *c; c++)
                if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
            cfgp_pathf(p, "%s.callback_hosts[%zu]", path, i);
            if (!host_ok(h))
                return cfgp_fail(x, p,
                                 "must be a host name or IP address without a port (got "
                                 "\"%.80s\")",
                                 h);
        }
    }
    cfgp_join(p, path, "allow_private_callbacks");
    if (json_object_object_get_ex(o, "allow_private_callbacks", &v)) {
        if (!json_object_is_type(v, json_type_boolean))
            return cfgp_fail(x, p, "must be true or false (got %.80s)", cfgp_show(v));
        r->allow_private_callbacks = json_object_get_boolean(v);
    }
    return load_url(x, path, o, "results_url", &r->results_url);
}

int cfgp_load_delivery(const struct cfgp_src *x, const char *path, struct json_object *o,
                       struct cfg_route *r)
{
    if (load_secrets(x, path, o, r) < 0) return -1;
    if (load_set(x, path, o, r) < 0) return -1;
    if (load_remove(x, path, o, r) < 0) return -1;
    if (load_batch(x, path, o, r) < 0) return -1;
    return load_callbacks(x, path, o, r);
}

void cfgp_free_delivery(struct cfg_route *r)
{
    if (r->signing_keys) memset(r->signing_keys, 0, r->n_signing_keys * sizeof *r->signing_keys);
    free(r->signing_keys);
    r->signing_keys = NULL;
    r->n_signing_keys = 0;
    cfgp_free_strings(r->set_names.v, r->set_names.n);
    cfgp_free_strings(r->set_values.v, r->set_values.n);
    cfgp_free_strings(r->remove_headers.v, r->remove_headers.n);
    free(r->batch_url);
    r->batch_url = NULL;
    cfgp_free_strings(r->callback_hosts.v, r->callback_hosts.n);
    r->callback_hosts.v = NULL;
    r->callback_hosts.n = 0;
    free(r->results_url);
    r->results_url = NULL;
}
