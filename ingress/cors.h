/* cors.h: Cross-Origin Resource Sharing for browsers that call the API from
 * another origin (ingress.cors_origins; empty: off). A preflight (OPTIONS
 * with Origin and Access-Control-Request-Method) from an allowed origin is
 * answered here, before authentication, since browsers send it without
 * credentials; every other answer to an allowed origin gets
 * Access-Control-Allow-Origin and -Expose-Headers. Other origins get no CORS
 * header at all, so the browser keeps the answer from the page. */
#ifndef SLUICE_CORS_H
#define SLUICE_CORS_H

#include <stdbool.h>

#include "answer.h"
#include "config.h"

/* The headers a page may read from an answer (Location of a 202,
 * Retry-After of a 503 or 429, the rate-limit and idempotency headers). */
#define CORS_EXPOSE                                                                                \
    "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "               \
    "Idempotent-Replayed"
#define CORS_METHODS "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
/* Allowed request headers when the preflight names none fit to echo. */
#define CORS_HEADERS "Authorization, Content-Type, Idempotency-Key, X-Priority"

/* cors_allowed tells whether origin (the Origin header, may be NULL) is one
 * of cfg's CORS origins. "null" is never allowed. */
bool cors_allowed(const struct cfg_ingress *cfg, const char *origin);
/* cors_preflight answers a preflight: when method is OPTIONS, origin is
 * allowed and request_method (Access-Control-Request-Method) is present,
 * fills a with a 204 carrying the Access-Control-Allow-* headers
 * (request_headers, Access-Control-Request-Headers, echoed when it is a
 * list of header names that fits) and returns true; else false. */
bool cors_preflight(const struct cfg_ingress *cfg, const char *method, const char *origin,
                    const char *request_method, const char *request_headers, struct answer *a);
/* cors_decorate adds the CORS headers of an ordinary answer for an allowed
 * origin, and Vary: Origin whenever CORS is on (the answer depends on it). */
void cors_decorate(const struct cfg_ingress *cfg, const char *origin, struct answer *a);

#endif
