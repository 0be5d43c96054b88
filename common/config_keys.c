/* config_keys.c: the "keys" array of the configuration (see config.h): API
 * keys, known by the SHA-256 of their bearer token, and JWT keys, which
 * verify signed tokens and take the tenant from a claim. */
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

static const struct field key_fields[] = {
    {"rate_per_s", F_DOUBLE, 0, 0, LONG_MAX, offsetof(struct cfg_key, rate_per_s)},
    {"burst", F_LONG, 0, 0, LONG_MAX, offsetof(struct cfg_key, burst)},
    {"max_priority", F_INT, 9, 0, 9, offsetof(struct cfg_key, max_priority)},
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
        if (!memcmp(o->secret_sha256, k->secret_sha256, CFG_SHA256_LEN)) {
            cfgp_join(p, path, "secret_sha256");
            return cfgp_fail(x, p, "same secret as key \"%s\"", o->id);
        }
    }
    return 0;
}

static int load_key(const struct cfgp_src *x, const struct cfg *c, struct cfg_key *k, size_t i,
                    struct json_object *o)
{
    static const char *const names[] = {"id", "secret_sha256", "tenant", "routes", NULL};
    char path[CFG_PATH_MAX];

    cfgp_pathf(path, "keys[%zu]", i);
    if (!json_object_is_type(o, json_type_object))
        return cfgp_fail(x, path, "must be an object (got %.80s)", cfgp_show(o));
    if (cfgp_check_members(x, path, o, key_fields, N_FIELDS(key_fields), names) < 0) return -1;
    if (cfgp_member_string(x, path, o, "id", CFG_NAME_MAX, &k->id) < 0) return -1;
    if (load_secret(x, path, o, k) < 0) return -1;
    if (cfgp_member_string(x, path, o, "tenant", CFG_NAME_MAX, &k->tenant) < 0) return -1;
    if (cfgp_load_fields(x, path, o, key_fields, N_FIELDS(key_fields), k) < 0) return -1;
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
        if (CRYPTO_memcmp(md, c->keys[i].secret_sha256, CFG_SHA256_LEN) == 0) found = &c->keys[i];
    return found;
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
        free(c->keys[i].tenant);
        cfgp_free_strings(c->keys[i].routes, c->keys[i].n_routes);
    }
    free(c->keys);
    c->keys = NULL;
    c->n_keys = 0;
}
