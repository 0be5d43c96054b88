/* config_keys.c: the "keys" array of the configuration (see config.h): API
 * keys, known by the SHA-256 of their bearer token, and JWT keys, which
 * verify signed tokens and take the tenant from a claim. */
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"
#include "jwt.h"

#define JWT_SECRET_MIN 32 /* RFC 7518: an HS256 key at least as long as the hash */
#define JWT_SECRET_MAX 4096
#define JWT_TEXT_MAX 1024 /* issuer, audience */
#define JWT_CLAIM_NAME_MAX 64

static const struct field key_fields[] = {
    {"rate_per_s", F_DOUBLE, 0, 0, LONG_MAX, offsetof(struct cfg_key, rate_per_s)},
    {"burst", F_LONG, 0, 0, LONG_MAX, offsetof(struct cfg_key, burst)},
    {"max_priority", F_INT, 9, 0, 9, offsetof(struct cfg_key, max_priority)},
    {"max_queued", F_LONG, 0, 0, LONG_MAX, offsetof(struct cfg_key, max_queued)},
    {"status_retention_s", F_LONG, 0, 0, 31536000, offsetof(struct cfg_key, status_retention_s)},
};

static const struct field jwt_fields[] = {
    {"clock_skew_s", F_LONG, 60, 0, 3600, offsetof(struct cfg_key, jwt.clock_skew_s)},
};

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* load_secret never echoes the value: an operator may have pasted the token
 * itself instead of its hash. */
static int load_secret(const struct cfgp_src *x, const char *path, struct json_object *o,
                       struct cfg_key *k)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;
    const char *hex;

    cfgp_join(p, path, "secret_sha256");
    if (!json_object_object_get_ex(o, "secret_sha256", &v)) return cfgp_fail(x, p, "is required");
    if (cfgp_string(x, p, v, &hex) < 0) return -1;
    if (strlen(hex) != 2 * CFG_SHA256_LEN || strspn(hex, "0123456789abcdefABCDEF") != strlen(hex))
        return cfgp_fail(x, p,
                         "must be 64 hex characters, the SHA-256 of the bearer token (value "
                         "not shown)");
    for (size_t i = 0; i < CFG_SHA256_LEN; i++)
        k->secret_sha256[i] =
            (unsigned char)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
    return 0;
}

static int load_key_routes(const struct cfgp_src *x, const struct cfg *c, const char *path,
                           struct json_object *o, struct cfg_key *k)
{
    char p[CFG_PATH_MAX];
    struct json_object *a;

    cfgp_join(p, path, "routes");
    if (!json_object_object_get_ex(o, "routes", &a)) {
        k->routes = calloc(1, sizeof *k->routes);
        if (k->routes) k->routes[0] = strdup("*");
        if (!k->routes || !k->routes[0]) return cfgp_fail(x, p, "out of memory");
        k->n_routes = 1;
        return 0;
    }
    if (cfgp_load_strings(x, p, a, &k->routes, &k->n_routes) < 0) return -1;
    for (size_t i = 0; i < k->n_routes; i++) {
        const char *r = k->routes[i];
        cfgp_pathf(p, "%s.routes[%zu]", path, i);
        if (strcmp(r, "*") && !cfg_route_find(c, r, strlen(r)))
            return cfgp_fail(x, p, "unknown route \"%.80s\" (not in routes)", r);
    }
    return 0;
}

/* key_unique refuses a repeated id, and a repeated secret, which would make
 * the token's key ambiguous. */
static int key_unique(const struct cfgp_src *x, const char *path, const struct cfg *c,
                      const struct cfg_key *k)
{
    char p[CFG_PATH_MAX];

    for (const struct cfg_key *o = c->keys; o < k; o++) {
        if (!strcmp(o->id, k->id)) {
            cfgp_join(p, path, "id");
            return cfgp_fail(x, p, "duplicate id \"%s\" (ids must be unique)", k->id);
        }
        if (!o->is_jwt && !k->is_jwt &&
            !memcmp(o->secret_sha256, k->secret_sha256, CFG_SHA256_LEN)) {
            cfgp_join(p, path, "secret_sha256");
            return cfgp_fail(x, p, "same secret as key \"%s\"", o->id);
        }
    }
    return 0;
}

/* optional_string reads the optional string member name of o, 1..max
 * bytes, into a new copy at *out (left NULL when absent). */
static int optional_string(const struct cfgp_src *x, const char *path, struct json_object *o,
                           const char *name, size_t max, char **out)
{
    return json_object_object_get_ex(o, name, NULL) ? cfgp_member_string(x, path, o, name, max, out)
                                                    : 0;
}

/* load_jwt_secret reads an HS256 secret; no message shows any of it. */
static int load_jwt_secret(const struct cfgp_src *x, const char *path, struct json_object *o,
                           struct cfg_key *k)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;
    size_t n;

    cfgp_join(p, path, "secret");
    if (!json_object_object_get_ex(o, "secret", &v))
        return cfgp_fail(x, p, "is required for HS256");
    n = json_object_is_type(v, json_type_string) ? (size_t)json_object_get_string_len(v) : 0;
    if (!json_object_is_type(v, json_type_string) || n < JWT_SECRET_MIN || n > JWT_SECRET_MAX ||
        strlen(json_object_get_string(v)) != n)
        return cfgp_fail(x, p, "must be a string of %d..%d bytes (value not shown)", JWT_SECRET_MIN,
                         JWT_SECRET_MAX);
    k->jwt.secret = strdup(json_object_get_string(v));
    return k->jwt.secret ? 0 : cfgp_fail(x, p, "out of memory");
}

/* load_jwt reads what a JWT key verifies tokens with and what it demands
 * of them: the algorithm and its key material, issuer, audience, the
 * claims naming the tenant and the routes, the clock skew. */
static int load_jwt(const struct cfgp_src *x, const char *path, struct json_object *o,
                    struct cfg_key *k)
{
    char p[CFG_PATH_MAX];
    char *alg = NULL;
    int rc = -1;

    if (cfgp_member_string(x, path, o, "alg", 16, &alg) < 0) goto out;
    cfgp_join(p, path, "alg");
    k->jwt.alg = jwt_alg_parse(alg);
    if (k->jwt.alg < 0) {
        cfgp_fail(x, p, "must be HS256, RS256 or ES256 (got \"%s\")", alg);
        goto out;
    }
    if (k->jwt.alg == JWT_HS256) {
        cfgp_join(p, path, "public_key_file");
        if (json_object_object_get_ex(o, "public_key_file", NULL)) {
            cfgp_fail(x, p, "is for RS256 and ES256; HS256 takes a secret");
            goto out;
        }
        if (load_jwt_secret(x, path, o, k) < 0) goto out;
    } else {
        cfgp_join(p, path, "secret");
        if (json_object_object_get_ex(o, "secret", NULL)) {
            cfgp_fail(x, p, "is for HS256; %s takes a public_key_file", alg);
            goto out;
        }
        if (cfgp_member_string(x, path, o, "public_key_file", 4096, &k->jwt.public_key_file) < 0)
            goto out;
    }
    if (optional_string(x, path, o, "issuer", JWT_TEXT_MAX, &k->jwt.issuer) < 0 ||
        optional_string(x, path, o, "audience", JWT_TEXT_MAX, &k->jwt.audience) < 0 ||
        optional_string(x, path, o, "routes_claim", JWT_CLAIM_NAME_MAX, &k->jwt.routes_claim) < 0)
        goto out;
    if (json_object_object_get_ex(o, "tenant_claim", NULL)) {
        if (cfgp_member_string(x, path, o, "tenant_claim", JWT_CLAIM_NAME_MAX,
                               &k->jwt.tenant_claim) < 0)
            goto out;
    } else if (!(k->jwt.tenant_claim = strdup("sub"))) {
        cfgp_fail(x, path, "out of memory");
        goto out;
    }
    rc = cfgp_load_fields(x, path, o, jwt_fields, N_FIELDS(jwt_fields), k);
out:
    free(alg);
    return rc;
}

/* key_type reads "type": "api_key" (the default) or "jwt". */
static int key_type(const struct cfgp_src *x, const char *path, struct json_object *o,
                    struct cfg_key *k)
{
    char p[CFG_PATH_MAX];
    struct json_object *v;
    const char *type;

    if (!json_object_object_get_ex(o, "type", &v)) return 0;
    cfgp_join(p, path, "type");
    if (cfgp_string(x, p, v, &type) < 0) return -1;
    if (strcmp(type, "api_key") && strcmp(type, "jwt"))
        return cfgp_fail(x, p, "must be api_key or jwt (got \"%.80s\")", type);
    k->is_jwt = !strcmp(type, "jwt");
    return 0;
}

/* load_admin reads an API key's optional "admin" flag: such a key may use
 * the admin API (dead letters, routes). JWT keys never may: their tokens
 * are minted elsewhere, and an operator's power should be a key's own. */
static int load_admin(const struct cfgp_src *x, const char *path, struct json_object *o,
                      struct cfg_key *k)
{
    struct json_object *v;
    char p[CFG_PATH_MAX];
    if (!json_object_object_get_ex(o, "admin", &v)) return 0;
    cfgp_join(p, path, "admin");
    if (!json_object_is_type(v, json_type_boolean))
        return cfgp_fail(x, p, "must be true or false (got %.80s)", cfgp_show(v));
    k->admin = json_object_get_boolean(v);
    return 0;
}

static int load_key(const struct cfgp_src *x, const struct cfg *c, struct cfg_key *k, size_t i,
                    struct json_object *o)
{
    static const char *const api_names[] = {"id",    "type", "secret_sha256", "tenant", "routes",
                                            "admin", NULL};
    static const char *const jwt_names[] = {
        "id",       "type",   "alg",          "secret",       "issuer",       "public_key_file",
        "audience", "routes", "tenant_claim", "routes_claim", "clock_skew_s", NULL};
    char path[CFG_PATH_MAX];

    cfgp_pathf(path, "keys[%zu]", i);
    if (!json_object_is_type(o, json_type_object))
        return cfgp_fail(x, path, "must be an object (got %.80s)", cfgp_show(o));
    if (key_type(x, path, o, k) < 0) return -1;
    if (cfgp_check_members(x, path, o, key_fields, N_FIELDS(key_fields),
                           k->is_jwt ? jwt_names : api_names) < 0)
        return -1;
    if (cfgp_member_string(x, path, o, "id", CFG_NAME_MAX, &k->id) < 0) return -1;
    if (k->is_jwt) {
        if (load_jwt(x, path, o, k) < 0) return -1;
    } else {
        if (load_secret(x, path, o, k) < 0) return -1;
        if (cfgp_member_string(x, path, o, "tenant", CFG_NAME_MAX, &k->tenant) < 0) return -1;
        if (load_admin(x, path, o, k) < 0) return -1;
    }
    if (cfgp_load_fields(x, path, o, key_fields, N_FIELDS(key_fields), k) < 0) return -1;
    if (k->is_jwt && k->status_retention_s) {
        char p[CFG_PATH_MAX];
        cfgp_join(p, path, "status_retention_s");
        return cfgp_fail(x, p,
                         "is for API keys only: a JWT key's tenants are known only from its "
                         "tokens (set ingress.status_retention_s instead)");
    }
    if (k->status_retention_s > c->ingress.status_retention_s) {
        char p[CFG_PATH_MAX];
        cfgp_join(p, path, "status_retention_s");
        return cfgp_fail(x, p, "must be at most ingress.status_retention_s (%ld) (got %ld)",
                         c->ingress.status_retention_s, k->status_retention_s);
    }
    if (load_key_routes(x, c, path, o, k) < 0) return -1;
    return key_unique(x, path, c, k);
}

int cfgp_load_keys(const struct cfgp_src *x, struct cfg *c, struct json_object *a)
{
    size_t n;

    if (!json_object_is_type(a, json_type_array))
        return cfgp_fail(x, "keys", "must be an array (got %.80s)", cfgp_show(a));
    n = json_object_array_length(a);
    if (n == 0) return 0;
    c->keys = calloc(n, sizeof *c->keys);
    if (!c->keys) return cfgp_fail(x, "keys", "out of memory");
    for (size_t i = 0; i < n; i++)
        if (load_key(x, c, &c->keys[c->n_keys++], i, json_object_array_get_idx(a, i)) < 0)
            return -1;
    return 0;
}

const struct cfg_key *cfg_key_for_token(const struct cfg *c, const char *token, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const struct cfg_key *found = NULL;

    if (!token || EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1) return NULL;
    /* Every key is compared, with no early exit, so that the time taken does
     * not tell an attacker which key (if any) came close. */
    for (size_t i = 0; i < c->n_keys; i++)
        if (CRYPTO_memcmp(md, c->keys[i].secret_sha256, CFG_SHA256_LEN) == 0 && !c->keys[i].is_jwt)
            found = &c->keys[i];
    return found;
}

long cfg_tenant_retention_s(const struct cfg *c, const char *tenant)
{
    long r = c->ingress.status_retention_s;
    for (size_t i = 0; i < c->n_keys; i++) {
        const struct cfg_key *k = &c->keys[i];
        if (!k->is_jwt && k->status_retention_s && k->status_retention_s < r &&
            !strcmp(k->tenant, tenant))
            r = k->status_retention_s;
    }
    return r;
}

bool cfg_key_allows_route(const struct cfg_key *key, const char *name)
{
    if (!key || !name) return false;
    for (size_t i = 0; i < key->n_routes; i++)
        if (!strcmp(key->routes[i], "*") || !strcmp(key->routes[i], name)) return true;
    return false;
}

void cfgp_free_keys(struct cfg *c)
{
    for (size_t i = 0; i < c->n_keys; i++) {
        free(c->keys[i].id);
        struct cfg_jwt *j = &c->keys[i].jwt;
        free(c->keys[i].tenant);
        cfgp_free_strings(c->keys[i].routes, c->keys[i].n_routes);
        if (j->secret) OPENSSL_cleanse(j->secret, strlen(j->secret));
        free(j->secret);
        free(j->public_key_file);
        free(j->issuer);
        free(j->audience);
        free(j->tenant_claim);
        free(j->routes_claim);
    }
    free(c->keys);
    c->keys = NULL;
    c->n_keys = 0;
}
