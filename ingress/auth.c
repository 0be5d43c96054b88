/* auth.c: authentication and route authorization of the ingress (see
 * auth.h). API keys are stored as SHA-256 digests and looked up by
 * cfg_key_for_token, which compares every key; JWT keys verify signed
 * tokens with OpenSSL (common/jwt.c) and take the tenant, and optionally the
 * routes, from the token's claims; the admin token is compared here through
 * digests, so neither its length nor a matching prefix shows in the time
 * taken. No secret and no token ever goes into a message. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHOWN_MAX 64 /* bytes of a route name a refusal echoes */

struct auth {
    const struct cfg *cfg;
    struct jwt_key **jwt; /* parallel to cfg->keys; NULL for an API key */
};

struct auth *auth_new(const struct cfg *cfg, char *err, size_t errlen)
{
    char why[256];
    struct auth *a = calloc(1, sizeof *a);
    if (a) a->jwt = calloc(cfg->n_keys ? cfg->n_keys : 1, sizeof *a->jwt);
    if (!a || !a->jwt) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    a->cfg = cfg;
    for (size_t i = 0; i < cfg->n_keys; i++) {
        const struct cfg_key *k = &cfg->keys[i];
        if (!k->is_jwt) continue;
        const char *material = k->jwt.alg == JWT_HS256 ? k->jwt.secret : k->jwt.public_key_file;
        if (jwt_key_new(&a->jwt[i], (enum jwt_alg)k->jwt.alg, material, why, sizeof why) < 0) {
            snprintf(err, errlen, "keys[%zu] (\"%s\"): %s", i, k->id, why);
            goto err;
        }
    }
    return a;
err:
    auth_free(a);
    return NULL;
}

void auth_free(struct auth *a)
{
    if (!a) return;
    for (size_t i = 0; a->jwt && i < a->cfg->n_keys; i++)
        jwt_key_free(a->jwt[i]);
    free(a->jwt);
    free(a);
}

const char *auth_bearer(const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return NULL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    return token;
}

static int refuse_401(struct auth_refusal *why, const char *message, const char *reason)
{
    *why = (struct auth_refusal){.status = 401, .code = "unauthorized"};
    snprintf(why->message, sizeof why->message, "%s", message);
    if (reason)
        snprintf(why->challenge, sizeof why->challenge,
                 "Bearer error=\"invalid_token\", error_description=\"%s\"", reason);
    else
        snprintf(why->challenge, sizeof why->challenge, "Bearer");
    return -1;
}

static bool looks_like_jwt(const char *token)
{
    const char *dot = strchr(token, '.');
    return dot && (dot = strchr(dot + 1, '.')) && !strchr(dot + 1, '.');
}

/* limit_routes keeps the routes of the token's claim that the key allows. */
static void limit_routes(const struct cfg *cfg, const struct jwt_claims *c, struct principal *who)
{
    who->limited = true;
    for (size_t i = 0; i < c->n_routes; i++) {
        const struct cfg_route *r = cfg_route_find(cfg, c->routes[i], strlen(c->routes[i]));
        if (r && cfg_key_allows_route(who->key, r->name))
            who->routes[who->n_routes++] = (uint32_t)(r - cfg->routes);
    }
}

/* by_jwt tries every JWT key on token; when all refuse it, the reason is
 * the one of the key that got furthest (a key that checked the signature
 * and refused a claim says more than one of another algorithm). */
static int by_jwt(const struct auth *a, const char *token, int64_t now_s, struct principal *who,
                  struct auth_refusal *why)
{
    struct jwt_claims claims;
    const char *reason = "no key verifies this token", *r = NULL;
    int best = 0;
    for (size_t i = 0; i < a->cfg->n_keys; i++) {
        const struct cfg_key *k = &a->cfg->keys[i];
        if (!a->jwt[i]) continue;
        struct jwt_policy pol = {k->jwt.issuer, k->jwt.audience, k->jwt.tenant_claim,
                                 k->jwt.routes_claim, k->jwt.clock_skew_s};
        int rc = jwt_verify(a->jwt[i], &pol, token, strlen(token), now_s, &claims, &r);
        if (rc == 0) {
            who->key = k;
            memcpy(who->tenant, claims.tenant, sizeof who->tenant);
            if (claims.has_routes) limit_routes(a->cfg, &claims, who);
            return 0;
        }
        if (rc < best || !best) {
            best = rc;
            reason = r;
        }
    }
    return refuse_401(why, "the bearer token is not valid", reason);
}

int auth_request(const struct auth *a, const char *authorization, int64_t now_s,
                 struct principal *who, struct auth_refusal *why)
{
    const char *token = auth_bearer(authorization);
    memset(who, 0, sizeof *who);
    if (!token || !*token) return refuse_401(why, "missing bearer token", NULL);
    who->key = cfg_key_for_token(a->cfg, token, strlen(token));
    if (who->key) {
        snprintf(who->tenant, sizeof who->tenant, "%s", who->key->tenant);
        return 0;
    }
    if (looks_like_jwt(token)) return by_jwt(a, token, now_s, who, why);
    return refuse_401(why, "unknown bearer token", "unknown token");
}

/* digest hashes s so that tokens of any length compare in constant time. */
static bool digest(const char *s, size_t len, unsigned char md[EVP_MAX_MD_SIZE])
{
    unsigned int mdlen = 0;
    return EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32;
}

bool auth_admin(const struct cfg *cfg, const char *authorization)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    const char *token = auth_bearer(authorization);
    if (!token || !cfg->admin_token || !cfg->admin_token[0]) return false;
    if (!digest(cfg->admin_token, strlen(cfg->admin_token), want) ||
        !digest(token, strlen(token), got))
        return false;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

void auth_admin_refusal(const char *authorization, struct auth_refusal *why)
{
    const char *token = auth_bearer(authorization);
    refuse_401(why, "missing or wrong admin token", token && *token ? "wrong admin token" : NULL);
}

/* shown copies a route name for a message: printable ASCII only (a name from
 * a request target may hold any byte, and messages end up in JSON), cut at
 * SHOWN_MAX bytes. */
static const char *shown(char out[SHOWN_MAX + 4], const char *s, size_t n)
{
    size_t keep = n < SHOWN_MAX ? n : SHOWN_MAX, i = 0;
    for (; i < keep; i++)
        out[i] = s[i] >= ' ' && s[i] <= '~' ? s[i] : '?';
    if (keep < n) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

bool auth_may_use(const struct auth *a, const struct principal *who, const struct cfg_route *route)
{
    if (!who->key || !cfg_key_allows_route(who->key, route->name)) return false;
    if (!who->limited) return true;
    for (size_t i = 0; i < who->n_routes; i++)
        if (&a->cfg->routes[who->routes[i]] == route) return true;
    return false;
}

const struct cfg_route *auth_route(const struct auth *a, const struct principal *who,
                                   const char *name, size_t len, struct auth_refusal *why)
{
    char name_shown[SHOWN_MAX + 4];
    const struct cfg_route *route = cfg_route_find(a->cfg, name, len);
    if (!route) {
        *why = (struct auth_refusal){.status = 404, .code = "unknown_route"};
        snprintf(why->message, sizeof why->message, "no route named \"%s\"",
                 shown(name_shown, name, len));
        return NULL;
    }
    if (!auth_may_use(a, who, route)) {
        *why = (struct auth_refusal){.status = 403, .code = "route_forbidden"};
        snprintf(why->message, sizeof why->message, "%s may not use route \"%s\"",
                 who->limited ? "this token" : "this key", route->name);
        return NULL;
    }
    return route;
}
