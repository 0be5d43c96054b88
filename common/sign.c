/* sign.c: Standard Webhooks signatures with OpenSSL's HMAC (see sign.h). */
#include "sign.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"

#define PREFIX "whsec_"

int sign_key_parse(struct sign_key *k, const char *secret, char *err, size_t errlen)
{
    size_t n = secret ? strlen(secret) : 0, prefix = strlen(PREFIX);
    unsigned char raw[base64_decoded_max(SIGN_KEY_MAX * 4 / 3 + 4)];
    size_t len = 0;
    if (n < prefix || memcmp(secret, PREFIX, prefix) != 0) {
        snprintf(err, errlen, "a signing secret must start with \"" PREFIX "\"");
        return -1;
    }
    n -= prefix;
    if (n > SIGN_KEY_MAX * 4 / 3 + 4) {
        snprintf(err, errlen, "a signing secret holds at most %d bytes", SIGN_KEY_MAX);
        return -1;
    }
    const char *problem = base64_decode(secret + prefix, n, raw, &len);
    if (problem) {
        snprintf(err, errlen, "a signing secret must be \"" PREFIX "\" and base64: %s", problem);
        return -1;
    }
    if (len < SIGN_KEY_MIN || len > SIGN_KEY_MAX) {
        snprintf(err, errlen, "a signing secret must hold %d to %d bytes (it holds %zu)",
                 SIGN_KEY_MIN, SIGN_KEY_MAX, len);
        return -1;
    }
    memcpy(k->bytes, raw, len);
    k->len = len;
    return 0;
}

/* hmac computes HMAC-SHA256 of "id.timestamp.body" under key into mac (32 bytes). */
static int hmac(const struct sign_key *key, const char *id, const char *ts, const void *body,
                size_t len, unsigned char mac[32])
{
    int rc = -EIO;
    size_t maclen = 0;
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx || !EVP_MAC_init(ctx, key->bytes, key->len, params)) goto out;
    if (!EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        (len && !EVP_MAC_update(ctx, body, len)) || !EVP_MAC_final(ctx, mac, &maclen, 32) ||
        maclen != 32)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    return rc;
}

int sign_append(struct buf *out, const struct sign_key *keys, size_t n_keys, const char *msg_id,
                int64_t timestamp_s, const void *body, size_t len)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%" PRId64, timestamp_s);
    for (size_t i = 0; i < n_keys; i++) {
        unsigned char mac[32];
        int rc = hmac(&keys[i], msg_id, ts, body, len, mac);
        if (rc == 0) rc = buf_appends(out, i ? " v1," : "v1,");
        if (rc == 0) rc = base64_append(out, mac, sizeof(mac));
        if (rc < 0) return rc;
    }
    return 0;
}
