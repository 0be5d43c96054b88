/* auth.c: authentication and route authorization of the ingress (see
 * auth.h). API keys are stored as SHA-256 digests and looked up by
 * cfg_key_for_token, which compares every key; the admin token is compared
 * here through digests, so neither its length nor a matching prefix shows in
 * the time taken. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SHOWN_MAX 64 /* bytes of a route name a refusal echoes */

const char *auth_bearer(const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return NULL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    return token;
}

const struct cfg_key *auth_key(const struct cfg *cfg, const char *authorization)
{
    const char *token = auth_bearer(authorization);
    return token ? cfg_key_for_token(cfg, token, strlen(token)) : NULL;
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

const struct cfg_route *auth_route(const struct cfg *cfg, const struct cfg_key *key,
                                   const char *name, size_t len, struct auth_refusal *why)
{
    char name_shown[SHOWN_MAX + 4];
    const struct cfg_route *route = cfg_route_find(cfg, name, len);
    if (!route) {
        *why = (struct auth_refusal){.status = 404, .code = "unknown_route"};
        snprintf(why->message, sizeof why->message, "no route named \"%s\"",
                 shown(name_shown, name, len));
        return NULL;
    }
    if (!cfg_key_allows_route(key, route->name)) {
        *why = (struct auth_refusal){.status = 403, .code = "route_forbidden"};
        snprintf(why->message, sizeof why->message, "this key may not use route \"%s\"",
                 route->name);
        return NULL;
    }
    return route;
}
