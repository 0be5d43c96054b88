/* fuzz_jwt.c: libFuzzer target of the JWT parser (jwt_verify) with fixed
 * keys: an HS256 secret, and an ES256 key made at start, so that every
 * stage (header, signature of either kind, claims) sees fuzzed bytes. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "jwt.h"

static struct jwt_key *hs, *es;

static struct jwt_key *es_key(void)
{
    char path[] = "/tmp/fuzz_jwt_XXXXXX", err[128];
    struct jwt_key *k = NULL;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!pkey || !f || !PEM_write_PUBKEY(f, pkey)) abort();
    fclose(f);
    if (jwt_key_new(&k, JWT_ES256, path, err, sizeof err) < 0) abort();
    unlink(path);
    EVP_PKEY_free(pkey);
    return k;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[128];
    if (jwt_key_new(&hs, JWT_HS256, "fuzz-secret-0123456789abcdef-0123456789", err, sizeof err) < 0)
        abort();
    es = es_key();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct jwt_policy pol = {"idp", "sluice", "sub", "routes", 30};
    struct jwt_claims c;
    const char *why;
    (void)jwt_verify(hs, &pol, (const char *)data, size, 1800000000, &c, &why);
    (void)jwt_verify(es, &pol, (const char *)data, size, 1800000000, &c, &why);
    return 0;
}
