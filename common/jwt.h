/* jwt.h: verification of JSON Web Tokens (RFC 7519) presented as bearer
 * tokens, with OpenSSL. A key is one algorithm with its material: HS256 with
 * a shared secret, RS256 or ES256 with a PEM public key. The token's "alg"
 * must name the key's algorithm exactly, so "none" and algorithm confusion
 * (an HS256 token "signed" with an RSA public key's bytes) are refused before
 * any signature is computed. exp and nbf are enforced with a clock-skew
 * allowance; iss and aud must match when the policy names them. */
#ifndef SLUICE_JWT_H
#define SLUICE_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN 8192
#define JWT_MAX_CLAIM 128 /* tenant and route names: what the events stream carries */
#define JWT_MAX_ROUTES 64

enum jwt_alg { JWT_HS256, JWT_RS256, JWT_ES256 };

struct jwt_key;

/* What a token must satisfy beyond its signature. Strings are borrowed; NULL
 * or "" leaves the check out (tenant_claim is required). */
struct jwt_policy {
    const char *issuer;
    const char *audience;
    const char *tenant_claim; /* the claim naming the tenant, e.g. "sub" or "tenant" */
    const char *routes_claim; /* an array of route names the token may use, or NULL */
    long skew_s;              /* allowance for clock differences, both ways */
};

/* The claims sluice uses from a valid token; strings are owned by the struct. */
struct jwt_claims {
    char tenant[JWT_MAX_CLAIM + 1];
    char routes[JWT_MAX_ROUTES][JWT_MAX_CLAIM + 1];
    size_t n_routes;
    int has_routes; /* the routes claim was present */
    int64_t exp;    /* 0 when absent */
};

/* jwt_alg_parse maps "HS256", "RS256", "ES256" to an algorithm; -1 otherwise. */
int jwt_alg_parse(const char *name);
/* jwt_key_new makes a key: for HS256, material is the secret itself (at least
 * 32 bytes, as RFC 7518 requires of HS256 keys); for RS256 and ES256 it is a
 * path to a PEM public key of that type (RSA of 2048 bits or more; EC P-256).
 * Returns 0 with *out (free with jwt_key_free), or -1 with err (never
 * quoting a secret). */
__attribute__((warn_unused_result)) int jwt_key_new(struct jwt_key **out, enum jwt_alg alg,
                                                    const char *material, char *err, size_t errlen);
void jwt_key_free(struct jwt_key *k);

/* How far a token that failed got, so that a caller trying several keys
 * can tell the reason that matters (a key that checked the signature and
 * then refused a claim says more than one of another algorithm). */
enum jwt_failure {
    JWT_FAIL_FORM = -1,      /* malformed, or not this key's algorithm */
    JWT_FAIL_SIGNATURE = -2, /* this key's algorithm, but not its signature */
    JWT_FAIL_CLAIMS = -3,    /* signed by this key; a claim is refused */
};

/* jwt_verify checks token (len bytes) against key and policy at now_s (Unix
 * seconds). Returns 0 with *claims filled, or a JWT_FAIL_* with *reason set
 * to a short static description fit for a WWW-Authenticate
 * error_description ("the token has expired", "bad signature", ...). */
int jwt_verify(const struct jwt_key *key, const struct jwt_policy *policy, const char *token,
               size_t len, int64_t now_s, struct jwt_claims *claims, const char **reason);

#endif
