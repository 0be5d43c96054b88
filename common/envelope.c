/* envelope.c: builds request envelopes from the JSON API form, checks every
 * field against the documented schema, and maps envelopes to and from AMQP
 * messages (the body travels verbatim, everything else in headers). Both
 * parsers build into a scratch envelope and only replace the caller's one on
 * success, so a refused input never leaves a half-filled envelope behind. */
#include "envelope.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define ROUTE_MAX 64
#define METHOD_MAX 16
#define IDEM_MAX 255
#define TIMEOUT_MS_MAX 600000
#define MAX_ATTEMPTS_MAX 100

/* pctx is one parse in progress. status and code say how failures are
 * reported: 400 invalid_request for clients, invalid_message for deliveries. */
struct pctx {
    struct envelope *e;
    struct env_error *err;
    int status;
    const char *code;
    const char *ctype_default; /* set once a body field was seen */
};

typedef const char *(*check_fn)(const char *s, size_t n);
typedef int (*set_fn)(struct pctx *c, const char *field, const char *s, size_t n);

/* The AMQP header names, indexed so from_amqp can collect them in one pass. */
enum {
    H_ROUTE,
    H_METHOD,
    H_PATH,
    H_QUERY,
    H_TENANT,
    H_IDEM,
    H_ATTEMPTS,
    H_CREATED,
    H_TIMEOUT,
    H_MAX_ATTEMPTS,
    H_HEADERS,
    H_COUNT
};
static const char *const HNAMES[H_COUNT] = {
    "x-sluice-route",      "x-sluice-method",          "x-sluice-path",     "x-sluice-query",
    "x-sluice-tenant",     "x-sluice-idempotency-key", "x-sluice-attempts", "x-sluice-created",
    "x-sluice-timeout-ms", "x-sluice-max-attempts",    "x-sluice-headers",
};

void envelope_init(struct envelope *e)
{
    memset(e, 0, sizeof *e);
    e->priority = ENV_PRIORITY_DEFAULT;
}

void envelope_free(struct envelope *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n_headers; i++) {
        free(e->headers[i].name);
        free(e->headers[i].value);
    }
    free(e->headers);
    free(e->route);
    free(e->method);
    free(e->path);
    free(e->query);
    free(e->content_type);
    free(e->body);
    free(e->idempotency_key);
    free(e->tenant);
    envelope_init(e);
}

/* trim_utf8 cuts a message that vsnprintf truncated back to a character
 * boundary: messages echo client input and end up in JSON, which must be UTF-8. */
static void trim_utf8(char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0 || (unsigned char)s[i - 1] < 0xC0) return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (len - (i - 1) < need) s[i - 1] = '\0';
}

__attribute__((format(printf, 2, 3))) static int fail(struct pctx *c, const char *fmt, ...)
{
    va_list ap;
    size_t size = sizeof c->err->message;

    c->err->status = c->status;
    c->err->code = c->code;
    va_start(ap, fmt);
    int n = vsnprintf(c->err->message, size, fmt, ap);
    va_end(ap);
    if (n >= (int)size) trim_utf8(c->err->message, size - 1);
    return -1;
}

static int oom(struct pctx *c)
{
    c->err->status = 500;
    c->err->code = "internal_error";
    snprintf(c->err->message, sizeof c->err->message, "out of memory");
    return -1;
}

static char *memdup0(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static bool is_alpha(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool is_alnum(unsigned char ch)
{
    return is_alpha(ch) || (ch >= '0' && ch <= '9');
}

static bool is_tchar(unsigned char ch)
{
    return is_alnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *check_route(const char *s, size_t n)
{
    bool ok = n >= 1 && n <= ROUTE_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_alnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-';
    return ok ? NULL : "must be 1.." STR(ROUTE_MAX) " characters of A-Z a-z 0-9 _ . -";
}

static const char *check_method(const char *s, size_t n)
{
    bool ok = n >= 1 && n <= METHOD_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_alpha((unsigned char)s[i]);
    return ok ? NULL : "must be 1.." STR(METHOD_MAX) " letters";
}

/* check_url_part refuses what would break or smuggle into the request line. */
static const char *check_url_part(const char *s, size_t n)
{
    if (n > ENV_MAX_PATH) return "must be at most " STR(ENV_MAX_PATH) " bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch == 0x7f || ch == '#')
            return "must not contain spaces, control characters or '#'";
    }
    return NULL;
}

static const char *check_path(const char *s, size_t n)
{
    return n == 0 || s[0] != '/' ? "must start with '/'" : check_url_part(s, n);
}

static const char *check_idem(const char *s, size_t n)
{
    bool ok = n >= 1 && n <= IDEM_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] >= ' ' && s[i] <= '~';
    return ok ? NULL : "must be 1.." STR(IDEM_MAX) " printable ASCII characters";
}

static const char *check_tenant(const char *s, size_t n)
{
    return n == 0 || memchr(s, '\0', n) ? "must be non-empty text" : NULL;
}

static const char *check_header_value(const char *s, size_t n)
{
    if (n > ENV_MAX_HEADER_VALUE) return "must be at most " STR(ENV_MAX_HEADER_VALUE) " bytes";
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return "must not contain CR, LF or NUL";
    return NULL;
}

static bool header_name_ok(const char *s, size_t n)
{
    bool ok = n >= 1 && n <= ENV_MAX_HEADER_NAME;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_tchar((unsigned char)s[i]);
    return ok;
}

/* set_str checks s (n bytes) and replaces *dst with a copy. */
static int set_str(struct pctx *c, const char *field, char **dst, const char *s, size_t n,
                   check_fn check)
{
    const char *problem = check(s, n);
    if (problem) return fail(c, "%s: %s", field, problem);
    char *copy = memdup0(s, n);
    if (!copy) return oom(c);
    free(*dst);
    *dst = copy;
    return 0;
}

static int set_route(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->route, s, n, check_route);
}

static int set_method(struct pctx *c, const char *field, const char *s, size_t n)
{
    if (set_str(c, field, &c->e->method, s, n, check_method) < 0) return -1;
    for (char *p = c->e->method; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    return 0;
}

static int set_path(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->path, s, n, check_path);
}

static int set_query(struct pctx *c, const char *field, const char *s, size_t n)
{
    if (n > 0 && s[0] == '?') {
        s++;
        n--;
    }
    if (n > 0) return set_str(c, field, &c->e->query, s, n, check_url_part);
    free(c->e->query);
    c->e->query = NULL;
    return 0;
}

static int set_tenant(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->tenant, s, n, check_tenant);
}

static int set_idem(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->idempotency_key, s, n, check_idem);
}

/* set_body copies n bytes plus a NUL, so text bodies can be used as strings;
 * an empty body is NULL, the same as after an AMQP round trip. */
static int set_body(struct pctx *c, const void *p, size_t n)
{
    unsigned char *copy = NULL;
    if (n > 0 && !(copy = (unsigned char *)memdup0(p, n))) return oom(c);
    free(c->e->body);
    c->e->body = copy;
    c->e->body_len = n;
    return 0;
}

static int begin_body(struct pctx *c, const char *field, const char *ctype_default)
{
    if (c->ctype_default)
        return fail(c, "%s: only one of body, body_text and body_base64 may be given", field);
    c->ctype_default = ctype_default;
    return 0;
}

static int set_body_text(struct pctx *c, const char *field, const char *s, size_t n)
{
    if (begin_body(c, field, "text/plain; charset=utf-8") < 0) return -1;
    return set_body(c, s, n);
}

/* b64_value maps a character of either alphabet (standard or URL-safe) to
 * its 6 bits, or -1. */
static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+' || ch == '-') return 62;
    if (ch == '/' || ch == '_') return 63;
    return -1;
}

/* b64_decode decodes s (n chars) into out (n / 4 * 3 + 2 bytes at least).
 * Padding may be left out, but when present it must complete the last
 * quantum; leftover bits must be zero so each input has one meaning. Returns
 * NULL, or the problem. */
static const char *b64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
    size_t pad = 0, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    while (pad < n && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) return "unexpected character";
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (pad > 2 || (pad > 0 && n % 4 != 0)) return "bad padding";
    if ((n - pad) % 4 == 1) return "bad length";
    if (acc != 0) return "non-zero trailing bits";
    *outlen = o;
    return NULL;
}

static int set_body_base64(struct pctx *c, const char *field, const char *s, size_t n)
{
    size_t len = 0;
    int rc = -1;

    if (begin_body(c, field, "application/octet-stream") < 0) return -1;
    unsigned char *raw = malloc(n / 4 * 3 + 3);
    if (!raw) return oom(c);
    const char *problem = b64_decode(s, n, raw, &len);
    if (problem) {
        fail(c, "%s: invalid base64 (%s)", field, problem);
        goto out;
    }
    rc = set_body(c, raw, len);
out:
    free(raw);
    return rc;
}

bool envelope_header_forwarded(const char *name)
{
    static const char *const blocked[] = {
        "Authorization", "Proxy-Authorization", "Host",       "Content-Length",  "Connection",
        "Keep-Alive",    "Transfer-Encoding",   "TE",         "Trailer",         "Upgrade",
        "Expect",        "Proxy-Connection",    "X-Priority", "Idempotency-Key",
    };
    if (!name || strncasecmp(name, "X-Sluice-", 9) == 0) return false;
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
        if (strcasecmp(name, blocked[i]) == 0) return false;
    return true;
}

int envelope_parse_priority(const char *s, size_t len)
{
    static const struct {
        const char *name;
        int value;
    } names[] = {{"high", 9}, {"normal", 5}, {"low", 1}};

    if (!s) return -1;
    if (len == 1 && s[0] >= '0' && s[0] <= '9') return s[0] - '0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (len == strlen(names[i].name) && strncasecmp(s, names[i].name, len) == 0)
            return names[i].value;
    return -1;
}

/* add_header appends a copy of a header given as bytes, since AMQP table
 * keys and values are not NUL-terminated. */
static int add_header(struct pctx *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct envelope *e = c->e;
    const char *problem = check_header_value(value, vlen);

    if (e->n_headers >= ENV_MAX_HEADERS)
        return fail(c, "headers: at most " STR(ENV_MAX_HEADERS) " headers are allowed");
    if (!header_name_ok(name, nlen))
        return fail(c, "headers: invalid header name \"%.*s\"", (int)nlen, name);
    if (problem) return fail(c, "headers.%.*s: %s", (int)nlen, name, problem);
    struct env_header *h = reallocarray(e->headers, e->n_headers + 1, sizeof *h);
    if (!h) return oom(c);
    e->headers = h;
    h += e->n_headers;
    h->name = memdup0(name, nlen);
    h->value = memdup0(value, vlen);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return oom(c);
    }
    e->n_headers++;
    return 0;
}

int envelope_add_header(struct envelope *e, const char *name, const char *value,
                        struct env_error *err)
{
    struct pctx c = {e, err, 400, "invalid_request", NULL};
    if (!name || !value) return fail(&c, "headers: missing name or value");
    return add_header(&c, name, strlen(name), value, strlen(value));
}

/* json_text gets a string's bytes; the length is json-c's, since JSON
 * strings may hold NULs. */
static int json_text(struct pctx *c, const char *field, struct json_object *v, const char **s,
                     size_t *n)
{
    if (!json_object_is_type(v, json_type_string)) return fail(c, "%s: must be a string", field);
    *s = json_object_get_string(v);
    *n = (size_t)json_object_get_string_len(v);
    return 0;
}

static int json_int(struct pctx *c, const char *field, struct json_object *v, int64_t lo,
                    int64_t hi, int64_t *out)
{
    int64_t x = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : lo - 1;
    if (x < lo || x > hi)
        return fail(c, "%s: must be an integer %lld..%lld", field, (long long)lo, (long long)hi);
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
        return fail(c, "headers.%s: must be a string", name);
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (strcasecmp(name, "Content-Type") == 0)
        return set_str(c, "headers.Content-Type", &c->e->content_type, s, n, check_header_value);
    if (!envelope_header_forwarded(name))
        return fail(c, "headers.%s: this header may not be forwarded", name);
    return add_header(c, name, strlen(name), s, n);
}

static int parse_headers(struct pctx *c, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_object)) return fail(c, "headers: must be an object");
    json_object_object_foreach(v, name, val)
    {
        if (json_header(c, name, val) < 0) return -1;
    }
    return 0;
}

static int parse_body(struct pctx *c, struct json_object *v)
{
    if (begin_body(c, "body", "application/json") < 0) return -1;
    const char *s =
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return s ? set_body(c, s, strlen(s)) : oom(c);
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
    if (p < 0) return fail(c, "priority: must be 0..9 or high, normal, low");
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
    {"route", set_route, NULL},
    {"method", set_method, NULL},
    {"path", set_path, NULL},
    {"query", set_query, NULL},
    {"headers", NULL, parse_headers},
    {"body", NULL, parse_body},
    {"body_text", set_body_text, NULL},
    {"body_base64", set_body_base64, NULL},
    {"priority", NULL, parse_priority},
    {"idempotency_key", set_idem, NULL},
    {"timeout_ms", NULL, parse_timeout},
    {"max_attempts", NULL, parse_max_attempts},
};

static int parse_field(struct pctx *c, const char *key, struct json_object *v)
{
    const char *s = NULL;
    size_t n = 0, i = 0;

    while (i < sizeof JFIELDS / sizeof JFIELDS[0] && strcmp(JFIELDS[i].name, key) != 0)
        i++;
    if (i == sizeof JFIELDS / sizeof JFIELDS[0]) return fail(c, "%s: unknown field", key);
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
    if (!e->route) return fail(c, "route: is required");
    if ((!e->method && set_method(c, "method", "POST", 4) < 0) ||
        (!e->path && set_path(c, "path", "/", 1) < 0))
        return -1;
    if (!e->content_type && c->ctype_default && !(e->content_type = strdup(c->ctype_default)))
        return oom(c);
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
        fail(&c, "invalid JSON: %s", why);
        goto out;
    }
    if (!json_object_is_type(root, json_type_object)) {
        fail(&c, "the request must be a JSON object");
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

static amqp_table_entry_t *put(amqp_table_t *t, int h, uint8_t kind)
{
    amqp_table_entry_t *en = &t->entries[t->num_entries++];
    en->key = amqp_cstring_bytes(HNAMES[h]);
    en->value.kind = kind;
    return en;
}

static void put_str(amqp_table_t *t, int h, const char *s)
{
    put(t, h, AMQP_FIELD_KIND_UTF8)->value.value.bytes = amqp_cstring_bytes(s ? s : "");
}

static int put_headers(amqp_table_t *t, const struct envelope *e, amqp_pool_t *pool)
{
    amqp_table_entry_t *en = amqp_pool_alloc(pool, e->n_headers * sizeof *en);
    if (!en) return -ENOMEM;
    for (size_t i = 0; i < e->n_headers; i++) {
        en[i].key = amqp_cstring_bytes(e->headers[i].name);
        en[i].value.kind = AMQP_FIELD_KIND_UTF8;
        en[i].value.value.bytes = amqp_cstring_bytes(e->headers[i].value);
    }
    amqp_table_t *nested = &put(t, H_HEADERS, AMQP_FIELD_KIND_TABLE)->value.value.table;
    nested->num_entries = (int)e->n_headers;
    nested->entries = en;
    return 0;
}

int envelope_to_amqp(const struct envelope *e, amqp_pool_t *pool, amqp_basic_properties_t *props)
{
    amqp_table_t *t = &props->headers;

    memset(props, 0, sizeof *props);
    if (!(t->entries = amqp_pool_alloc(pool, H_COUNT * sizeof *t->entries))) return -ENOMEM;
    put_str(t, H_ROUTE, e->route);
    put_str(t, H_METHOD, e->method);
    put_str(t, H_PATH, e->path);
    if (e->query) put_str(t, H_QUERY, e->query);
    put_str(t, H_TENANT, e->tenant);
    if (e->idempotency_key) put_str(t, H_IDEM, e->idempotency_key);
    put(t, H_ATTEMPTS, AMQP_FIELD_KIND_I32)->value.value.i32 = e->attempts;
    put(t, H_CREATED, AMQP_FIELD_KIND_I64)->value.value.i64 = e->created_ms;
    if (e->timeout_ms) put(t, H_TIMEOUT, AMQP_FIELD_KIND_I64)->value.value.i64 = e->timeout_ms;
    if (e->max_attempts)
        put(t, H_MAX_ATTEMPTS, AMQP_FIELD_KIND_I32)->value.value.i32 = e->max_attempts;
    if (e->n_headers > 0 && put_headers(t, e, pool) < 0) return -ENOMEM;
    props->_flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_PRIORITY_FLAG |
                    AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                    AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props->message_id = amqp_cstring_bytes(e->id);
    props->priority = (uint8_t)e->priority;
    props->timestamp = e->created_ms > 0 ? (uint64_t)e->created_ms / 1000 : 0;
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->app_id = amqp_cstring_bytes("sluice");
    if (e->content_type) {
        props->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props->content_type = amqp_cstring_bytes(e->content_type);
    }
    return 0;
}

/* field_int reads any integer kind, since the broker or a shovel may
 * re-encode what we sent; *out keeps its default when the header is absent. */
static int field_int(struct pctx *c, const amqp_field_value_t *v, int h, int64_t lo, int64_t hi,
                     int64_t *out)
{
    int64_t x = 0;
    if (!v) return 0;
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        x = v->value.i8;
        break;
    case AMQP_FIELD_KIND_U8:
        x = v->value.u8;
        break;
    case AMQP_FIELD_KIND_I16:
        x = v->value.i16;
        break;
    case AMQP_FIELD_KIND_U16:
        x = v->value.u16;
        break;
    case AMQP_FIELD_KIND_I32:
        x = v->value.i32;
        break;
    case AMQP_FIELD_KIND_U32:
        x = v->value.u32;
        break;
    case AMQP_FIELD_KIND_I64:
        x = v->value.i64;
        break;
    case AMQP_FIELD_KIND_U64:
        if (v->value.u64 > INT64_MAX) return fail(c, "%s: out of range", HNAMES[h]);
        x = (int64_t)v->value.u64;
        break;
    default:
        return fail(c, "%s: must be an integer", HNAMES[h]);
    }
    if (x < lo || x > hi) return fail(c, "%s: out of range", HNAMES[h]);
    *out = x;
    return 0;
}

static bool field_is_text(const amqp_field_value_t *v)
{
    return v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES;
}

static int amqp_strings(struct pctx *c, const amqp_field_value_t *const *f)
{
    static const struct {
        int h;
        bool required;
        set_fn set;
    } fields[] = {
        {H_ROUTE, true, set_route},  {H_METHOD, true, set_method}, {H_PATH, true, set_path},
        {H_QUERY, false, set_query}, {H_TENANT, true, set_tenant}, {H_IDEM, false, set_idem},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const amqp_field_value_t *v = f[fields[i].h];
        const char *name = HNAMES[fields[i].h];
        if (!v && fields[i].required) return fail(c, "%s: missing header", name);
        if (v && !field_is_text(v)) return fail(c, "%s: must be a string", name);
        if (v && fields[i].set(c, name, v->value.bytes.bytes, v->value.bytes.len) < 0) return -1;
    }
    return 0;
}

static int amqp_numbers(struct pctx *c, const amqp_field_value_t *const *f, int64_t created)
{
    struct envelope *e = c->e;
    int64_t attempts = 0, timeout = 0, max = 0;

    if (field_int(c, f[H_ATTEMPTS], H_ATTEMPTS, 0, INT_MAX, &attempts) < 0 ||
        field_int(c, f[H_CREATED], H_CREATED, INT64_MIN, INT64_MAX, &created) < 0 ||
        field_int(c, f[H_TIMEOUT], H_TIMEOUT, 0, TIMEOUT_MS_MAX, &timeout) < 0 ||
        field_int(c, f[H_MAX_ATTEMPTS], H_MAX_ATTEMPTS, 0, MAX_ATTEMPTS_MAX, &max) < 0)
        return -1;
    e->attempts = (int)attempts;
    e->created_ms = created;
    e->timeout_ms = (long)timeout;
    e->max_attempts = (int)max;
    return 0;
}

static int amqp_headers(struct pctx *c, const amqp_field_value_t *v)
{
    if (!v) return 0;
    if (v->kind != AMQP_FIELD_KIND_TABLE) return fail(c, "%s: must be a table", HNAMES[H_HEADERS]);
    for (int i = 0; i < v->value.table.num_entries; i++) {
        const amqp_table_entry_t *en = &v->value.table.entries[i];
        if (!field_is_text(&en->value))
            return fail(c, "%s: values must be strings", HNAMES[H_HEADERS]);
        if (add_header(c, en->key.bytes, en->key.len, en->value.value.bytes.bytes,
                       en->value.value.bytes.len) < 0)
            return -1;
    }
    return 0;
}

/* find_headers indexes the sluice headers; others (x-death, ...) are
 * ignored because the broker adds them. */
static void find_headers(const amqp_table_t *t, const amqp_field_value_t **f)
{
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_bytes_t *key = &t->entries[i].key;
        for (int h = 0; h < H_COUNT; h++)
            if (key->len == strlen(HNAMES[h]) && memcmp(key->bytes, HNAMES[h], key->len) == 0)
                f[h] = &t->entries[i].value;
    }
}

/* amqp_fill reads everything but the ID. Without x-sluice-created, the
 * second-resolution timestamp property is the best creation time left. */
static int amqp_fill(struct pctx *c, const amqp_basic_properties_t *props, amqp_bytes_t body)
{
    const amqp_field_value_t *f[H_COUNT] = {0};
    bool has_ts =
        (props->_flags & AMQP_BASIC_TIMESTAMP_FLAG) && props->timestamp <= INT64_MAX / 1000;
    int64_t created = has_ts ? (int64_t)props->timestamp * 1000 : 0;

    if (props->_flags & AMQP_BASIC_HEADERS_FLAG) find_headers(&props->headers, f);
    if (amqp_strings(c, f) < 0 || amqp_numbers(c, f, created) < 0 ||
        amqp_headers(c, f[H_HEADERS]) < 0)
        return -1;
    if ((props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) &&
        set_str(c, "content_type", &c->e->content_type, props->content_type.bytes,
                props->content_type.len, check_header_value) < 0)
        return -1;
    if (props->_flags & AMQP_BASIC_PRIORITY_FLAG)
        c->e->priority = props->priority > 9 ? 9 : props->priority;
    return set_body(c, body.bytes, body.len);
}

int envelope_from_amqp(struct envelope *e, const amqp_basic_properties_t *props, amqp_bytes_t body,
                       struct env_error *err)
{
    struct envelope tmp;
    struct pctx c = {&tmp, err, 0, "invalid_message", NULL};
    const amqp_bytes_t *mid = &props->message_id;
    int rc = -1;

    envelope_init(&tmp);
    if (!(props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) || mid->len != ID_LEN ||
        !id_valid(mid->bytes, mid->len)) {
        fail(&c, "message_id: missing or not a sluice ID");
        goto out;
    }
    memcpy(tmp.id, mid->bytes, ID_LEN);
    if (amqp_fill(&c, props, body) < 0) goto out;
    envelope_free(e);
    *e = tmp;
    envelope_init(&tmp);
    rc = 0;
out:
    envelope_free(&tmp);
    return rc;
}
