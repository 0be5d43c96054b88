/* envelope_json.c: the envelope from the API's JSON form (POST /v1/requests):
 * the document is read into the request the builder takes
 * (envelope_request.c), with the types JSON adds checked here and every
 * value checked there, as for the transparent form. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* jreq is one document being read into the builder's request. */
struct jreq {
    struct pctx c;
    struct env_request rq;
    bool has_body; /* one of body, body_text, body_base64 was seen */
};

/* read_text stores a string field in its slot of the request. */
static int read_text(struct jreq *j, const char *field, struct json_object *v, struct env_text *t)
{
    return json_text(&j->c, field, v, &t->s, &t->n);
}

/* read_headers checks that every value is a string and takes Content-Type
 * (any case) out for the content_type property; the builder walks the rest. */
static int read_headers(struct jreq *j, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_object))
        return env_fail(&j->c, "headers: must be an object");
    json_object_object_foreach(v, name, val)
    {
        if (!json_object_is_type(val, json_type_string))
            return env_fail(&j->c, "headers.%s: must be a string", name);
        if (strcasecmp(name, "Content-Type") == 0 &&
            json_text(&j->c, name, val, &j->rq.content_type.s, &j->rq.content_type.n) < 0)
            return -1;
    }
    j->rq.headers = v;
    return 0;
}

static int walk_headers(const void *src, env_header_fn fn, void *ctx)
{
    struct json_object *o = (struct json_object *)src;
    json_object_object_foreach(o, name, val)
    {
        int rc = fn(ctx, name, strlen(name), json_object_get_string(val),
                    (size_t)json_object_get_string_len(val));
        if (rc) return rc;
    }
    return 0;
}

/* set_body makes the request's body a copy of n bytes of p (plus a NUL). */
static int set_body(struct jreq *j, const char *field, const char *type, const void *p, size_t n)
{
    if (j->has_body)
        return env_fail(&j->c, "%s: only one of body, body_text and body_base64 may be given",
                        field);
    j->has_body = true;
    j->rq.body_type = type;
    if (n == 0) return 0;
    if (!(j->rq.body = malloc(n + 1))) return env_oom(&j->c);
    memcpy(j->rq.body, p, n);
    j->rq.body[n] = '\0';
    j->rq.body_len = n;
    return 0;
}

static int read_body(struct jreq *j, struct json_object *v)
{
    const char *s =
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return s ? set_body(j, "body", "application/json", s, strlen(s)) : env_oom(&j->c);
}

static int read_body_text(struct jreq *j, struct json_object *v)
{
    struct env_text t = {0};
    if (read_text(j, "body_text", v, &t) < 0) return -1;
    return set_body(j, "body_text", "text/plain; charset=utf-8", t.s, t.n);
}

static int read_body_base64(struct jreq *j, struct json_object *v)
{
    struct env_text t = {0};
    const char *problem = NULL;
    size_t len = 0;
    if (read_text(j, "body_base64", v, &t) < 0 ||
        set_body(j, "body_base64", "application/octet-stream", NULL, 0) < 0)
        return -1;
    unsigned char *raw = env_base64_decode(t.s, t.n, &len, &problem);
    if (problem) return env_fail(&j->c, "body_base64: invalid base64 (%s)", problem);
    if (!raw) return env_oom(&j->c);
    if (len == 0) free(raw);
    j->rq.body = len ? (char *)raw : NULL;
    j->rq.body_len = len;
    return 0;
}

/* read_priority takes 0..9 as a number or any priority name as text. */
static int read_priority(struct jreq *j, struct json_object *v)
{
    static const char digits[] = "0123456789";
    if (json_object_is_type(v, json_type_string))
        return read_text(j, "priority", v, &j->rq.priority);
    int64_t x = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
    if (x < 0 || x > 9) return env_fail(&j->c, "priority: " PRIORITY_RULE);
    j->rq.priority = (struct env_text){digits + x, 1};
    return 0;
}

static int read_timeout(struct jreq *j, struct json_object *v)
{
    int64_t x = 0;
    if (json_int(&j->c, "timeout_ms", v, 1, TIMEOUT_MS_MAX, &x) < 0) return -1;
    j->rq.timeout_ms = (long)x;
    return 0;
}

static int read_max_attempts(struct jreq *j, struct json_object *v)
{
    int64_t x = 0;
    if (json_int(&j->c, "max_attempts", v, 1, MAX_ATTEMPTS_MAX, &x) < 0) return -1;
    j->rq.max_attempts = (int)x;
    return 0;
}

/* The envelope's fields: text fields go to their slot of the request, the
 * others have their own reader. */
#define SLOT(f) offsetof(struct env_request, f)
static const struct {
    const char *name;
    size_t slot;
    int (*read)(struct jreq *j, struct json_object *v);
} JFIELDS[] = {
    {"route", SLOT(route), NULL},
    {"method", SLOT(method), NULL},
    {"path", SLOT(path), NULL},
    {"query", SLOT(query), NULL},
    {"idempotency_key", SLOT(idempotency_key), NULL},
    {"callback_url", SLOT(callback_url), NULL},
    {"headers", 0, read_headers},
    {"body", 0, read_body},
    {"body_text", 0, read_body_text},
    {"body_base64", 0, read_body_base64},
    {"priority", 0, read_priority},
    {"timeout_ms", 0, read_timeout},
    {"max_attempts", 0, read_max_attempts},
};

static int read_field(struct jreq *j, const char *key, struct json_object *v)
{
    size_t i = 0;
    while (i < sizeof JFIELDS / sizeof JFIELDS[0] && strcmp(JFIELDS[i].name, key) != 0)
        i++;
    if (i == sizeof JFIELDS / sizeof JFIELDS[0]) return env_fail(&j->c, "%s: unknown field", key);
    if (JFIELDS[i].read) return JFIELDS[i].read(j, v);
    return read_text(j, key, v, (struct env_text *)((char *)&j->rq + JFIELDS[i].slot));
}

static int read_object(struct jreq *j, struct json_object *root)
{
    json_object_object_foreach(root, key, val)
    {
        if (read_field(j, key, val) < 0) return -1;
    }
    return 0;
}

int envelope_from_json(struct envelope *e, const char *json, size_t len, struct env_error *err)
{
    struct jreq j = {.c = {e, err, 400, "invalid_json"}, .rq = {.form = ENV_FORM_ENVELOPE}};
    char why[128] = "";
    int rc = -1;

    struct json_object *root = json_parse(json, len, why, sizeof why);
    if (!root) {
        env_fail(&j.c, "invalid JSON: %s", why);
        goto out;
    }
    if (!json_object_is_type(root, json_type_object)) {
        env_fail(&j.c, "the request must be a JSON object");
        goto out;
    }
    j.c.code = "invalid_request";
    if (read_object(&j, root) < 0) goto out;
    if (j.rq.headers) j.rq.walk_headers = walk_headers;
    rc = envelope_from_request(e, &j.rq, err);
out:
    free(j.rq.body);
    json_object_put(root);
    return rc;
}
