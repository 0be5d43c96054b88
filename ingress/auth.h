/* auth.h: who may call what. The bearer token of an Authorization header
 * names an API key, or is a JSON Web Token one of the JWT keys verifies, or
 * is the admin token; a caller may use only its routes. Every /v1 request
 * is authenticated once (auth_request) and every submission authorized once
 * (auth_route), whichever form names the route, so there is one rule and one
 * message for each refusal. */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jwt.h"

/* auth holds the verification keys of the configuration's JWT keys, made
 * once at start (a public key file is read then). */
struct auth;

/* auth_new makes the JWT keys of cfg, which must outlive the result.
 * Returns NULL with err naming the key when one cannot be made (an
 * unreadable or unsuitable public key file); err never holds a secret. */
struct auth *auth_new(const struct cfg *cfg, char *err, size_t errlen);
void auth_free(struct auth *a);

/* Who made a request, once authenticated. */
struct principal {
    const struct cfg_key *key;       /* the API key or the JWT key; NULL: nobody */
    char tenant[JWT_MAX_CLAIM + 1];  /* the API key's, or the JWT's tenant claim */
    bool limited;                    /* a JWT with a routes claim: only routes[] */
    uint32_t routes[JWT_MAX_ROUTES]; /* indexes in cfg->routes: the claim and the key allow them */
    size_t n_routes;
};

/* A refusal to send: 401 unauthorized (with a WWW-Authenticate challenge),
 * 404 unknown_route or 403 route_forbidden. */
struct auth_refusal {
    int status;
    const char *code;
    char message[160];
    char challenge[200]; /* the WWW-Authenticate value of a 401 */
};

/* auth_bearer returns the token of an Authorization header value
 * ("Bearer <token>", any case, spaces before the token skipped), or NULL
 * when authorization is NULL or not a bearer credential. */
const char *auth_bearer(const char *authorization);
/* auth_request authenticates the bearer token of authorization (may be
 * NULL) at now_s (Unix seconds): an API key (every key compared in constant
 * time), else, for a token of three dot-separated parts, the first JWT key
 * that verifies it. Returns 0 with *who filled, or -1 with a 401 in *why
 * (challenge "Bearer" when there is no token, else
 * Bearer error="invalid_token" with the reason). */
__attribute__((warn_unused_result)) int auth_request(const struct auth *a,
                                                     const char *authorization, int64_t now_s,
                                                     struct principal *who,
                                                     struct auth_refusal *why);
/* auth_admin tells whether authorization is "Bearer <admin_token>" and an
 * admin token is configured; the time taken does not depend on how much of
 * the token matched, nor on its length. */
bool auth_admin(const struct cfg *cfg, const char *authorization);
/* auth_admin_refusal fills why with the 401 for a missing or wrong admin token. */
void auth_admin_refusal(const char *authorization, struct auth_refusal *why);

/* auth_route returns the route named name (len bytes, not NUL-terminated,
 * any bytes) if who may use it; else NULL with why filled. */
const struct cfg_route *auth_route(const struct auth *a, const struct principal *who,
                                   const char *name, size_t len, struct auth_refusal *why);
/* auth_may_use tells whether who may use route (one of the configuration's). */
bool auth_may_use(const struct auth *a, const struct principal *who, const struct cfg_route *route);

#endif
