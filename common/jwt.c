/* jwt.c: JSON Web Token verification with OpenSSL (see jwt.h). */
#include "jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "json.h"

#define HS256_MIN_SECRET 32
#define RSA_MIN_BITS 2048

struct jwt_key {
    enum jwt_alg alg;
    unsigned char *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256, ES256 */
};

static const char *const alg_names[] = {"HS256", "RS256", "ES256"};

int jwt_alg_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, alg_names[i]) == 0) return i;
    return -1;
}

static int check_pkey(EVP_PKEY *pkey, enum jwt_alg alg, char *err, size_t errlen)
{
    if (alg == JWT_RS256) {
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
            snprintf(err, errlen, "RS256 needs an RSA public key of at least %d bits",
                     RSA_MIN_BITS);
            return -1;
        }
        return 0;
    }
    char group[64] = "";
    size_t glen = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        &glen) ||
        strcmp(group, "prime256v1") != 0) {
        snprintf(err, errlen, "ES256 needs an EC public key on the P-256 curve");
        return -1;
    }
    return 0;
}

int jwt_key_new(struct jwt_key **out, enum jwt_alg alg, const char *material, char *err,
                size_t errlen)
{
    struct jwt_key *k = calloc(1, sizeof(*k));
    FILE *f = NULL;
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    k->alg = alg;
    if (alg == JWT_HS256) {
        k->secret_len = material ? strlen(material) : 0;
        if (k->secret_len < HS256_MIN_SECRET) {
            snprintf(err, errlen, "an HS256 secret must be at least %d bytes", HS256_MIN_SECRET);
            goto err;
        }
        k->secret = (unsigned char *)strdup(material);
        if (!k->secret) {
            snprintf(err, errlen, "out of memory");
            goto err;
        }
    } else {
        f = material ? fopen(material, "r") : NULL;
        if (!f) {
            snprintf(err, errlen, "cannot read the public key file %s", material ? material : "");
            goto err;
        }
        k->pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        if (!k->pkey) {
            snprintf(err, errlen, "%s is not a PEM public key", material);
            goto err;
        }
        if (check_pkey(k->pkey, alg, err, errlen) < 0) goto err;
    }
    if (f) fclose(f);
    *out = k;
    return 0;
err:
    if (f) fclose(f);
    jwt_key_free(k);
    return -1;
}

void jwt_key_free(struct jwt_key *k)
{
    if (!k) return;
    if (k->secret) OPENSSL_cleanse(k->secret, k->secret_len);
    free(k->secret);
    EVP_PKEY_free(k->pkey);
    free(k);
}

/* b64url decodes one token segment: base64url without padding, nothing else. */
static unsigned char *b64url(const char *s, size_t n, size_t *outlen)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '+' || s[i] == '/' || s[i] == '=') return NULL;
    unsigned char *out = malloc(base64_decoded_max(n) + 1);
    if (out && base64_decode(s, n, out, outlen) != NULL) {
        free(out);
        return NULL;
    }
    return out;
}

static bool verify_hs256(const struct jwt_key *k, const char *input, size_t n,
                         const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input, n, mac,
              &maclen))
        return false;
    return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
}

/* es256_der turns JWS's raw r || s (64 bytes) into the DER form OpenSSL verifies. */
static unsigned char *es256_der(const unsigned char *sig, size_t siglen, size_t *derlen)
{
    unsigned char *der = NULL;
    ECDSA_SIG *es = siglen == 64 ? ECDSA_SIG_new() : NULL;
    BIGNUM *r = es ? BN_bin2bn(sig, 32, NULL) : NULL,
           *s = es ? BN_bin2bn(sig + 32, 32, NULL) : NULL;
    if (!r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    int len = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (len <= 0) return NULL;
    *derlen = (size_t)len;
    return der;
}

static bool verify_pkey(const struct jwt_key *k, const char *input, size_t n,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char *der = NULL;
    if (k->alg == JWT_ES256) {
        der = es256_der(sig, siglen, &siglen);
        if (!der) return false;
        sig = der;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, n) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

static struct json_object *segment_json(const char *s, size_t n)
{
    size_t len = 0;
    unsigned char *raw = b64url(s, n, &len);
    if (!raw) return NULL;
    struct json_object *o = json_parse((const char *)raw, len, NULL, 0);
    free(raw);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static const char *check_header(const struct jwt_key *k, const char *s, size_t n)
{
    struct json_object *h = segment_json(s, n), *alg = NULL;
    const char *why = NULL;
    if (!h)
        why = "malformed token header";
    else if (!json_object_object_get_ex(h, "alg", &alg) ||
             !json_object_is_type(alg, json_type_string))
        why = "the token header names no algorithm";
    else if (strcmp(json_object_get_string(alg), alg_names[k->alg]) != 0)
        why = "the token's algorithm is not the one configured for its key";
    else if (json_object_object_get_ex(h, "crit", NULL))
        why = "the token has critical extensions sluice does not understand";
    json_object_put(h);
    return why;
}

static const char *check_signature(const struct jwt_key *k, const char *token, size_t signed_len,
                                   const char *sig64, size_t sig64_len)
{
    size_t siglen = 0;
    unsigned char *sig = b64url(sig64, sig64_len, &siglen);
    if (!sig) return "malformed token signature";
    bool ok = k->alg == JWT_HS256 ? verify_hs256(k, token, signed_len, sig, siglen)
                                  : verify_pkey(k, token, signed_len, sig, siglen);
    free(sig);
    return ok ? NULL : "bad signature";
}

/* time_claim reads a NumericDate; -1 when absent, -2 when not a number. */
static int64_t time_claim(struct json_object *p, const char *name)
{
    struct json_object *v;
    if (!json_object_object_get_ex(p, name, &v)) return -1;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return -2;
    return (int64_t)json_object_get_double(v);
}

static bool audience_matches(struct json_object *p, const char *want)
{
    struct json_object *aud;
    if (!json_object_object_get_ex(p, "aud", &aud)) return false;
    if (json_object_is_type(aud, json_type_string))
        return strcmp(json_object_get_string(aud), want) == 0;
    if (!json_object_is_type(aud, json_type_array)) return false;
    for (size_t i = 0; i < json_object_array_length(aud); i++) {
        struct json_object *a = json_object_array_get_idx(aud, i);
        if (json_object_is_type(a, json_type_string) &&
            strcmp(json_object_get_string(a), want) == 0)
            return true;
    }
    return false;
}

static bool copy_claim(char *dst, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_string)) return false;
    size_t n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n > JWT_MAX_CLAIM) return false;
    memcpy(dst, json_object_get_string(v), n + 1);
    return true;
}

static const char *read_routes(struct json_object *p, const char *claim, struct jwt_claims *c)
{
    struct json_object *r;
    if (!claim || !*claim || !json_object_object_get_ex(p, claim, &r)) return NULL;
    if (!json_object_is_type(r, json_type_array) || json_object_array_length(r) > JWT_MAX_ROUTES)
        return "the token's routes claim is not an array of route names";
    c->has_routes = 1;
    for (size_t i = 0; i < json_object_array_length(r); i++)
        if (!copy_claim(c->routes[c->n_routes++], json_object_array_get_idx(r, i)))
            return "the token's routes claim is not an array of route names";
    return NULL;
}

static const char *check_claims(const struct jwt_policy *pol, struct json_object *p, int64_t now,
                                struct jwt_claims *c)
{
    struct json_object *v;
    int64_t exp = time_claim(p, "exp"), nbf = time_claim(p, "nbf");
    if (exp == -1) return "the token has no expiry (exp)";
    if (exp < 0 || nbf == -2) return "the token's exp or nbf is not a number";
    if (now - pol->skew_s >= exp) return "the token has expired";
    if (nbf >= 0 && now + pol->skew_s < nbf) return "the token is not valid yet (nbf)";
    if (pol->issuer && *pol->issuer &&
        (!json_object_object_get_ex(p, "iss", &v) || !json_object_is_type(v, json_type_string) ||
         strcmp(json_object_get_string(v), pol->issuer) != 0))
        return "the token's issuer (iss) is not accepted";
    if (pol->audience && *pol->audience && !audience_matches(p, pol->audience))
        return "the token's audience (aud) is not accepted";
    if (!json_object_object_get_ex(p, pol->tenant_claim, &v) || !copy_claim(c->tenant, v))
        return "the token names no tenant";
    c->exp = exp;
    return read_routes(p, pol->routes_claim, c);
}

int jwt_verify(const struct jwt_key *key, const struct jwt_policy *policy, const char *token,
               size_t len, int64_t now_s, struct jwt_claims *claims, const char **reason)
{
    memset(claims, 0, sizeof(*claims));
    const char *dot1 = len <= JWT_MAX_TOKEN ? memchr(token, '.', len) : NULL;
    const char *end = token + len;
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1))) {
        *reason = "malformed token";
        return JWT_FAIL_FORM;
    }
    *reason = check_header(key, token, (size_t)(dot1 - token));
    if (*reason) return JWT_FAIL_FORM;
    *reason =
        check_signature(key, token, (size_t)(dot2 - token), dot2 + 1, (size_t)(end - dot2 - 1));
    if (*reason) return JWT_FAIL_SIGNATURE;
    struct json_object *p = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    *reason = p ? check_claims(policy, p, now_s, claims) : "malformed token payload";
    json_object_put(p);
    return *reason ? JWT_FAIL_CLAIMS : 0;
}
