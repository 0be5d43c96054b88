/* envelope_json.c: the envelope from the API's JSON form (POST /v1/requests). */
#include <stdint.h>
#include <string.h>

#include "envelope_parse.h"
#include "json.h"

/* json_text gets a string's bytes; the length is json-c's, since JSON
 * strings may hold NULs. */
static int json_text(struct pctx *c, const char *field, struct json_object *v, const char **s,
                     size_t *n)
{
    if (!json_object_is_type(v, json_type_string))
        return env_fail(c, "%s: must be a string", field);
    *s = json_object_get_string(v);
    *n = (size_t)json_object_get_string_len(v);
    return 0;
}

static int json_int(struct pctx *c, const char *field, struct json_object *v, int64_t lo,
                    int64_t hi, int64_t *out)
{
    int64_t x = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : lo - 1;
    if (x < lo || x > hi)
        return env_fail(c, "%s: must be an integer %lld..%lld", field, (long long)lo,
                        (long long)hi);
    *out = x;
    return 0;
}

/* json_header routes Content-Type to content_type, where the AMQP property
 * carries it, and refuses what may not be forwarded rather than dropping it
 * silently. */
static int json_header(struct pctx *c, const char *name, struct json_object *v)
{
    const char *s;
    size_t n;

    if (!json_object_is_type(v, json_type_string))
        return env_fail(c, "headers.%s: must be a string", name);
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (strcasecmp(name, "Content-Type") == 0)
        return env_set_str(c, "headers.Content-Type", &c->e->content_type, s, n,
                           env_check_header_value);
    if (!envelope_header_forwarded(name))
        return env_fail(c, "headers.%s: this header may not be forwarded", name);
    return env_add_header(c, name, strlen(name), s, n);
}

static int parse_headers(struct pctx *c, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_object)) return env_fail(c, "headers: must be an object");
    json_object_object_foreach(v, name, val)
    {
        if (json_header(c, name, val) < 0) return -1;
    }
    return 0;
}

static int parse_body(struct pctx *c, struct json_object *v)
{
    if (env_begin_body(c, "body", "application/json") < 0) return -1;
    const char *s =
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return s ? env_set_body(c, s, strlen(s)) : env_oom(c);
}

static int parse_priority(struct pctx *c, struct json_object *v)
{
    int p = -1;
    if (json_object_is_type(v, json_type_int)) {
        int64_t x = json_object_get_int64(v);
        p = x >= 0 && x <= 9 ? (int)x : -1;
    } else if (json_object_is_type(v, json_type_string)) {
        p = envelope_parse_priority(json_object_get_string(v),
                                    (size_t)json_object_get_string_len(v));
    }
    if (p < 0) return env_fail(c, "priority: must be 0..9 or high, normal, low");
    c->e->priority = p;
    return 0;
}

static int parse_timeout(struct pctx *c, struct json_object *v)
{
    int64_t x = 0;
    if (json_int(c, "timeout_ms", v, 1, TIMEOUT_MS_MAX, &x) < 0) return -1;
    c->e->timeout_ms = (long)x;
    return 0;
}

static int parse_max_attempts(struct pctx *c, struct json_object *v)
{
    int64_t x = 0;
    if (json_int(c, "max_attempts", v, 1, MAX_ATTEMPTS_MAX, &x) < 0) return -1;
    c->e->max_attempts = (int)x;
    return 0;
}

/* The envelope's fields: string fields go through a setter shared with the
 * AMQP side, the others have their own parser. */
static const struct {
    const char *name;
    set_fn set;
    int (*parse)(struct pctx *c, struct json_object *v);
} JFIELDS[] = {
    {"route", env_set_route, NULL},         {"method", env_set_method, NULL},
    {"path", env_set_path, NULL},           {"query", env_set_query, NULL},
    {"headers", NULL, parse_headers},       {"body", NULL, parse_body},
    {"body_text", env_set_body_text, NULL}, {"body_base64", env_set_body_base64, NULL},
    {"priority", NULL, parse_priority},     {"idempotency_key", env_set_idem, NULL},
    {"timeout_ms", NULL, parse_timeout},    {"max_attempts", NULL, parse_max_attempts},
};

static int parse_field(struct pctx *c, const char *key, struct json_object *v)
{
    const char *s = NULL;
    size_t n = 0, i = 0;

    while (i < sizeof JFIELDS / sizeof JFIELDS[0] && strcmp(JFIELDS[i].name, key) != 0)
        i++;
    if (i == sizeof JFIELDS / sizeof JFIELDS[0]) return env_fail(c, "%s: unknown field", key);
    if (JFIELDS[i].parse) return JFIELDS[i].parse(c, v);
    if (json_text(c, key, v, &s, &n) < 0) return -1;
    return JFIELDS[i].set(c, key, s, n);
}

static int parse_object(struct pctx *c, struct json_object *root)
{
    struct envelope *e = c->e;

    json_object_object_foreach(root, key, val)
    {
        if (parse_field(c, key, val) < 0) return -1;
    }
    if (!e->route) return env_fail(c, "route: is required");
    if ((!e->method && env_set_method(c, "method", "POST", 4) < 0) ||
        (!e->path && env_set_path(c, "path", "/", 1) < 0))
        return -1;
    if (!e->content_type && c->ctype_default && !(e->content_type = strdup(c->ctype_default)))
        return env_oom(c);
    return 0;
}

int envelope_from_json(struct envelope *e, const char *json, size_t len, struct env_error *err)
{
    struct envelope tmp;
    struct pctx c = {&tmp, err, 400, "invalid_json", NULL};
    char why[128] = "";
    int rc = -1;

    envelope_init(&tmp);
    struct json_object *root = json_parse(json, len, why, sizeof why);
    if (!root) {
        env_fail(&c, "invalid JSON: %s", why);
        goto out;
    }
    if (!json_object_is_type(root, json_type_object)) {
        env_fail(&c, "the request must be a JSON object");
        goto out;
    }
    c.code = "invalid_request";
    if (parse_object(&c, root) < 0) goto out;
    memcpy(tmp.id, e->id, sizeof tmp.id);
    tmp.tenant = e->tenant;
    tmp.created_ms = e->created_ms;
    tmp.attempts = e->attempts;
    e->tenant = NULL;
    envelope_free(e);
    *e = tmp;
    envelope_init(&tmp);
    rc = 0;
out:
    json_object_put(root);
    envelope_free(&tmp);
    return rc;
}
