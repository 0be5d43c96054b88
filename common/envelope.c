/* envelope.c: the envelope itself and the field rules the builder of both
 * submission forms (envelope_request.c) and the AMQP decoder
 * (envelope_amqp.c) share: every field is checked against the documented
 * schema in one place. */
#include "envelope.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "envelope_parse.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define ROUTE_MAX 64
#define IDEM_MAX 255
#define CALLBACK_MAX 2048 /* OUTURL_MAX */

typedef const char *(*check_fn)(const char *s, size_t n);

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
    free(e->callback_url);
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

__attribute__((format(printf, 2, 3))) int env_fail(struct pctx *c, const char *fmt, ...)
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

int env_oom(struct pctx *c)
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

/* check_method takes any HTTP token (RFC 9110), so a transparent gateway
 * passes WebDAV's or SSDP's methods (M-SEARCH) on as sent. */
static const char *check_method(const char *s, size_t n)
{
    bool ok = n >= 1 && n <= ENV_MAX_METHOD;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_tchar((unsigned char)s[i]);
    return ok ? NULL
              : "must be an HTTP token of 1.." STR(ENV_MAX_METHOD) " characters (A-Z a-z 0-9 "
                                                                   "!#$%&'*+-.^_`|~)";
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

/* dot_at is the length of the '.' at s (n bytes left), raw or "%2e"; 0 if none. */
static size_t dot_at(const char *s, size_t n)
{
    if (n >= 1 && s[0] == '.') return 1;
    return n >= 3 && s[0] == '%' && s[1] == '2' && (s[2] | 0x20) == 'e' ? 3 : 0;
}

/* sep_at is the length of the segment separator at s (n bytes left): '/',
 * and what some servers also split on, '\\' and "%2f" or "%5c"; 0 if none. */
static size_t sep_at(const char *s, size_t n)
{
    if (n >= 1 && (s[0] == '/' || s[0] == '\\')) return 1;
    if (n < 3 || s[0] != '%') return 0;
    return (s[1] == '2' && (s[2] | 0x20) == 'f') || (s[1] == '5' && (s[2] | 0x20) == 'c') ? 3 : 0;
}

/* has_dot_segment tells whether a segment of s is "." or "..", spelt with
 * raw or percent-encoded dots and ended by a separator, ';' (parameters,
 * which some servers strip before resolving) or the end. The worker appends
 * the path to the route's base URL, and libcurl or the backend would resolve
 * such a segment out of the base path, into another route's. */
static bool has_dot_segment(const char *s, size_t n)
{
    size_t i = 0, k = 0;
    for (;;) {
        size_t j = i, dots = 0;
        while (dots < 3 && (k = dot_at(s + j, n - j)) > 0) {
            j += k;
            dots++;
        }
        if ((dots == 1 || dots == 2) && (j == n || s[j] == ';' || sep_at(s + j, n - j)))
            return true;
        while (j < n && (k = sep_at(s + j, n - j)) == 0)
            j++;
        if (j >= n) return false;
        i = j + k;
    }
}

static const char *check_path(const char *s, size_t n)
{
    if (n == 0 || s[0] != '/') return "must start with '/'";
    const char *problem = check_url_part(s, n);
    if (!problem && has_dot_segment(s, n))
        problem = "must not contain dot segments ('.' or '..', raw or percent-encoded)";
    return problem;
}

static const char *check_idem(const char *s, size_t n)
{
    bool ok = n >= 1 && n <= IDEM_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] >= ' ' && s[i] <= '~';
    return ok ? NULL : "must be 1.." STR(IDEM_MAX) " printable ASCII characters";
}

/* check_callback is the shape of a callback URL; its host is checked
 * against the route's allowlist by the ingress (common/outurl.h). */
static const char *check_callback(const char *s, size_t n)
{
    bool ok = n >= 8 && n <= CALLBACK_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > ' ' && s[i] <= '~';
    return ok ? NULL
              : "must be an http:// or https:// URL of at most " STR(
                    CALLBACK_MAX) " printable characters";
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
    if (problem) return env_fail(c, "%s: %s", field, problem);
    char *copy = memdup0(s, n);
    if (!copy) return env_oom(c);
    free(*dst);
    *dst = copy;
    return 0;
}

int env_set_route(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->route, s, n, check_route);
}

int env_set_method(struct pctx *c, const char *field, const char *s, size_t n)
{
    if (set_str(c, field, &c->e->method, s, n, check_method) < 0) return -1;
    for (char *p = c->e->method; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    return 0;
}

int env_set_path(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->path, s, n, check_path);
}

int env_set_query(struct pctx *c, const char *field, const char *s, size_t n)
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

int env_set_tenant(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->tenant, s, n, check_tenant);
}

int env_set_idem(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->idempotency_key, s, n, check_idem);
}

int env_set_callback(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->callback_url, s, n, check_callback);
}

static const char *check_content_type(const char *s, size_t n)
{
    if (n > ENV_MAX_CONTENT_TYPE) return "must be at most " STR(ENV_MAX_CONTENT_TYPE) " bytes";
    return check_header_value(s, n);
}

int env_set_content_type(struct pctx *c, const char *field, const char *s, size_t n)
{
    return set_str(c, field, &c->e->content_type, s, n, check_content_type);
}

int env_set_priority(struct pctx *c, const char *field, const char *s, size_t n)
{
    int p = envelope_parse_priority(s, n);
    if (p < 0) return env_fail(c, "%s: " PRIORITY_RULE, field);
    c->e->priority = p;
    return 0;
}

/* set_body copies n bytes plus a NUL, so text bodies can be used as strings;
 * an empty body is NULL, the same as after an AMQP round trip. */
int env_set_body(struct pctx *c, const void *p, size_t n)
{
    unsigned char *copy = NULL;
    if (n > 0 && !(copy = (unsigned char *)memdup0(p, n))) return env_oom(c);
    free(c->e->body);
    c->e->body = copy;
    c->e->body_len = n;
    return 0;
}

unsigned char *env_base64_decode(const char *s, size_t n, size_t *outlen, const char **problem)
{
    unsigned char *raw = malloc(base64_decoded_max(n) + 1);
    *problem = NULL;
    if (!raw) return NULL;
    *problem = base64_decode(s, n, raw, outlen);
    if (*problem) {
        free(raw);
        return NULL;
    }
    raw[*outlen] = '\0';
    return raw;
}

bool env_header_forwarded(const char *name, size_t n)
{
    static const char *const blocked[] = {
        "Authorization", "Proxy-Authorization", "Host",       "Content-Length",  "Connection",
        "Keep-Alive",    "Transfer-Encoding",   "TE",         "Trailer",         "Upgrade",
        "Expect",        "Proxy-Connection",    "X-Priority", "Idempotency-Key", "X-Callback-Url",
    };
    if (n >= 9 && strncasecmp(name, "X-Sluice-", 9) == 0) return false;
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
        if (n == strlen(blocked[i]) && strncasecmp(name, blocked[i], n) == 0) return false;
    return true;
}

bool envelope_header_forwarded(const char *name)
{
    return name && env_header_forwarded(name, strlen(name));
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

/* printable copies s (n bytes) into out for an error message: at most
 * outlen - 4 bytes, "..." after a cut, and '?' for what is not printable
 * ASCII, since messages end up in JSON, which must be UTF-8. */
static const char *printable(char *out, size_t outlen, const char *s, size_t n)
{
    size_t i = 0, keep = n < outlen - 4 ? n : outlen - 4;
    for (; i < keep; i++)
        out[i] = s[i] >= ' ' && s[i] <= '~' ? s[i] : '?';
    if (keep < n) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* add_header appends a copy of a header given as bytes, since AMQP table
 * keys and values are not NUL-terminated. */
int env_add_header(struct pctx *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct envelope *e = c->e;
    const char *problem = check_header_value(value, vlen);

    if (e->n_headers >= ENV_MAX_HEADERS)
        return env_fail(c, "headers: at most " STR(ENV_MAX_HEADERS) " headers are allowed");
    if (!header_name_ok(name, nlen)) {
        char shown[48];
        return env_fail(c,
                        "headers: invalid header name \"%s\" (1.." STR(
                            ENV_MAX_HEADER_NAME) " characters of A-Z a-z 0-9 !#$%%&'*+-.^_`|~)",
                        printable(shown, sizeof shown, name, nlen));
    }
    if (problem) return env_fail(c, "headers.%.*s: %s", (int)nlen, name, problem);
    struct env_header *h = reallocarray(e->headers, e->n_headers + 1, sizeof *h);
    if (!h) return env_oom(c);
    e->headers = h;
    h += e->n_headers;
    h->name = memdup0(name, nlen);
    h->value = memdup0(value, vlen);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return env_oom(c);
    }
    e->n_headers++;
    return 0;
}
