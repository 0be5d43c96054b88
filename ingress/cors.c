/* cors.c: CORS preflights and headers (see cors.h). */
#include "cors.h"

#include <string.h>

/* TOKEN_CHARS are the characters of an HTTP token (RFC 9110), the form of
 * a header name. */
#define TOKEN_CHARS "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/* printable tells whether s is visible ASCII only, fit to echo in a header. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') return false;
    return true;
}

bool cors_allowed(const struct cfg_ingress *cfg, const char *origin)
{
    if (!origin || !*origin || !strcmp(origin, "null")) return false;
    for (size_t i = 0; i < cfg->cors_origins.n; i++) {
        if (!strcmp(cfg->cors_origins.v[i], origin)) return true;
        /* "*" allows any origin, echoed back, so it must be fit to echo. */
        if (!strcmp(cfg->cors_origins.v[i], "*") && printable(origin)) return true;
    }
    return false;
}

/* header_list_ok tells whether s is a comma-separated list of header names
 * short enough to echo. */
static bool header_list_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ANSWER_MAX_VALUE) return false;
    for (const char *p = s; *p;) {
        p += strspn(p, " \t");
        size_t name = strspn(p, TOKEN_CHARS);
        if (name == 0) return false;
        p += name;
        p += strspn(p, " \t");
        if (*p == ',')
            p++;
        else if (*p)
            return false;
    }
    return true;
}

bool cors_preflight(const struct cfg_ingress *cfg, const char *method, const char *origin,
                    const char *request_method, const char *request_headers, struct answer *a)
{
    if (strcmp(method, "OPTIONS") || !request_method || !cors_allowed(cfg, origin)) return false;
    answer_empty(a, 204);
    (void)answer_header(a, "Access-Control-Allow-Origin", "%s", origin);
    (void)answer_header(a, "Access-Control-Allow-Methods", CORS_METHODS);
    (void)answer_header(a, "Access-Control-Allow-Headers", "%s",
                        request_headers && header_list_ok(request_headers) ? request_headers
                                                                           : CORS_HEADERS);
    (void)answer_header(a, "Access-Control-Max-Age", "%ld", cfg->cors_max_age_s);
    (void)answer_header(a, "Vary",
                        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    return true;
}

void cors_decorate(const struct cfg_ingress *cfg, const char *origin, struct answer *a)
{
    if (cfg->cors_origins.n == 0 || answer_find(a, "Access-Control-Allow-Origin")) return;
    (void)answer_header(a, "Vary", "Origin");
    if (!cors_allowed(cfg, origin)) return;
    (void)answer_header(a, "Access-Control-Allow-Origin", "%s", origin);
    (void)answer_header(a, "Access-Control-Expose-Headers", CORS_EXPOSE);
}
