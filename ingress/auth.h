/* auth.h: who may call what. The bearer token of an Authorization header
 * names an API key or is the admin token, compared in constant time; a key
 * may use only its routes. Every /v1 request is authenticated once (auth_key)
 * and every submission authorized once (auth_route), whichever form names
 * the route, so there is one rule and one message for each refusal. */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* auth_bearer returns the token of an Authorization header value
 * ("Bearer <token>", any case, spaces before the token skipped), or NULL
 * when authorization is NULL or not a bearer credential. */
const char *auth_bearer(const char *authorization);
/* auth_key returns the key whose secret the bearer token is (every key is
 * compared, in constant time), or NULL. authorization may be NULL. */
const struct cfg_key *auth_key(const struct cfg *cfg, const char *authorization);
/* auth_admin tells whether authorization is "Bearer <admin_token>" and an
 * admin token is configured; the time taken does not depend on how much of
 * the token matched, nor on its length. */
bool auth_admin(const struct cfg *cfg, const char *authorization);

/* A refusal to send: 404 unknown_route or 403 route_forbidden. */
struct auth_refusal {
    int status;
    const char *code;
    char message[160];
};
/* auth_route returns the route named name (len bytes, not NUL-terminated,
 * any bytes) if key may use it; else NULL with why filled. */
const struct cfg_route *auth_route(const struct cfg *cfg, const struct cfg_key *key,
                                   const char *name, size_t len, struct auth_refusal *why);

#endif
