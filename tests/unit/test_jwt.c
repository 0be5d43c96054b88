/* test_jwt.c: unit tests for JWT verification (common/jwt.c). Tokens are
 * made here with OpenSSL directly: HS256 with HMAC, RS256 and ES256 with keys
 * generated for the test. Every refusal the ingress relies on is checked:
 * alg none, algorithm confusion, a forged or truncated signature, exp, nbf
 * and skew, iss, aud (string and array), tenant and routes claims. */
#include "jwt.h"

#include <check.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"

#define SECRET "0123456789abcdef0123456789abcdef-hs256"
#define NOW 1800000000LL

static void b64url_append(struct buf *b, const void *p, size_t n)
{
    struct buf t;
    buf_init(&t, 1 << 20);
    ck_assert_int_eq(base64_append(&t, p, n), 0);
    for (size_t i = 0; i < t.len; i++) {
        char c = t.data[i] == '+' ? '-' : t.data[i] == '/' ? '_' : t.data[i];
        if (c != '=') ck_assert_int_eq(buf_append(b, &c, 1), 0);
    }
    buf_free(&t);
}

/* sign_raw signs input with pkey (RSA or EC; EC signatures become r || s). */
static size_t sign_raw(EVP_PKEY *pkey, const char *input, size_t n, unsigned char *out)
{
    unsigned char der[1024];
    size_t len = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1);
    ck_assert(EVP_DigestSign(ctx, der, &len, (const unsigned char *)input, n) == 1);
    EVP_MD_CTX_free(ctx);
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) {
        memcpy(out, der, len);
        return len;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    ck_assert_ptr_nonnull(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), out, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), out + 32, 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* token makes header.payload.signature; pkey NULL signs HS256 with secret. */
static char *token(const char *header, const char *payload, EVP_PKEY *pkey, const char *secret)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    b64url_append(&b, header, strlen(header));
    ck_assert_int_eq(buf_append(&b, ".", 1), 0);
    b64url_append(&b, payload, strlen(payload));
    unsigned char sig[1024];
    size_t n = 32;
    unsigned int mlen = 0;
    if (pkey) {
        n = sign_raw(pkey, b.data, b.len, sig);
    } else {
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)b.data, b.len, sig, &mlen);
        n = mlen;
    }
    ck_assert_int_eq(buf_append(&b, ".", 1), 0);
    b64url_append(&b, sig, n);
    return buf_take(&b, NULL);
}

static char *payload(const char *extra)
{
    char *p = NULL;
    ck_assert(asprintf(&p, "{\"sub\":\"acme\",\"exp\":%lld%s}", NOW + 60, extra) > 0);
    return p;
}

static const struct jwt_policy basic = {.tenant_claim = "sub", .skew_s = 30};

static const char *verify(const struct jwt_key *k, const struct jwt_policy *pol, const char *t)
{
    struct jwt_claims c;
    const char *why = NULL;
    int rc = jwt_verify(k, pol, t, strlen(t), NOW, &c, &why);
    ck_assert_int_eq(rc == 0, why == NULL);
    if (rc == 0) ck_assert_str_eq(c.tenant, "acme");
    return why;
}

static struct jwt_key *hs_key(void)
{
    struct jwt_key *k;
    char err[128];
    ck_assert_int_eq(jwt_key_new(&k, JWT_HS256, SECRET, err, sizeof(err)), 0);
    return k;
}

/* pem_key writes the public half of pkey to a temporary file and loads it. */
static struct jwt_key *pem_key(EVP_PKEY *pkey, enum jwt_alg alg, int want)
{
    char path[] = "/tmp/test_jwt_XXXXXX", err[128];
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    ck_assert(PEM_write_PUBKEY(f, pkey) == 1);
    fclose(f);
    struct jwt_key *k = NULL;
    ck_assert_int_eq(jwt_key_new(&k, alg, path, err, sizeof(err)), want);
    unlink(path);
    return k;
}

START_TEST(test_hs256)
{
    struct jwt_key *k = hs_key();
    char *p = payload("");
    char *t = token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", p, NULL, SECRET);
    ck_assert_ptr_null(verify(k, &basic, t));
    /* One changed payload byte, one changed signature byte. */
    char *bad = strdup(t);
    bad[strchr(bad, '.') - bad + 3] ^= 1;
    ck_assert_str_eq(verify(k, &basic, bad), "bad signature");
    strcpy(bad, t);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    ck_assert_ptr_nonnull(verify(k, &basic, bad));
    bad[strrchr(bad, '.') - bad + 1] = '\0'; /* no signature at all */
    ck_assert_ptr_nonnull(verify(k, &basic, bad));
    char *other = token("{\"alg\":\"HS256\"}", p, NULL, SECRET "x");
    ck_assert_str_eq(verify(k, &basic, other), "bad signature");
    free(other);
    free(bad);
    free(t);
    free(p);
    jwt_key_free(k);
}
END_TEST

START_TEST(test_alg_none_and_confusion)
{
    struct jwt_key *k = hs_key();
    char *p = payload("");
    char *t = token("{\"alg\":\"none\"}", p, NULL, SECRET);
    ck_assert_ptr_nonnull(verify(k, &basic, t));
    free(t);
    t = token("{\"alg\":\"RS256\"}", p, NULL, SECRET);
    ck_assert_ptr_nonnull(verify(k, &basic, t));
    free(t);
    t = token("{\"typ\":\"JWT\"}", p, NULL, SECRET);
    ck_assert_ptr_nonnull(verify(k, &basic, t));
    free(t);
    t = token("{\"alg\":\"HS256\",\"crit\":[\"x\"]}", p, NULL, SECRET);
    ck_assert_ptr_nonnull(verify(k, &basic, t));
    free(t);
    jwt_key_free(k);

    /* Algorithm confusion: an HS256 token whose HMAC key is the RSA key's
     * public PEM must not pass an RS256 key. */
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k = pem_key(rsa, JWT_RS256, 0);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    char *pem_str = strndup(pem, (size_t)n);
    t = token("{\"alg\":\"HS256\"}", p, NULL, pem_str);
    ck_assert_ptr_nonnull(verify(k, &basic, t));
    free(t);
    free(pem_str);
    BIO_free(bio);
    jwt_key_free(k);
    EVP_PKEY_free(rsa);
    free(p);
}
END_TEST

START_TEST(test_rs256_es256)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    struct jwt_key *krs = pem_key(rsa, JWT_RS256, 0), *kes = pem_key(ec, JWT_ES256, 0);
    char *p = payload("");
    char *trs = token("{\"alg\":\"RS256\"}", p, rsa, NULL);
    char *tes = token("{\"alg\":\"ES256\"}", p, ec, NULL);
    ck_assert_ptr_null(verify(krs, &basic, trs));
    ck_assert_ptr_null(verify(kes, &basic, tes));
    ck_assert_ptr_nonnull(verify(krs, &basic, tes)); /* the other key's algorithm */
    ck_assert_ptr_nonnull(verify(kes, &basic, trs));
    /* A key of the wrong type or size for its algorithm is refused at load. */
    pem_key(ec, JWT_RS256, -1);
    pem_key(rsa, JWT_ES256, -1);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    pem_key(small, JWT_RS256, -1);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    pem_key(p384, JWT_ES256, -1);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p384);
    free(trs);
    free(tes);
    free(p);
    jwt_key_free(krs);
    jwt_key_free(kes);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

START_TEST(test_times)
{
    struct jwt_key *k = hs_key();
    char p[256];
    static const struct {
        long long exp, nbf; /* relative to NOW; nbf 0: absent */
        int ok;
    } cases[] = {{60, 0, 1},  {-29, 0, 1}, {-30, 0, 0}, {-3600, 0, 0},
                 {60, 29, 1}, {60, 31, 0}, {60, -10, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].nbf)
            snprintf(p, sizeof(p), "{\"sub\":\"acme\",\"exp\":%lld,\"nbf\":%lld}",
                     NOW + cases[i].exp, NOW + cases[i].nbf);
        else
            snprintf(p, sizeof(p), "{\"sub\":\"acme\",\"exp\":%lld}", NOW + cases[i].exp);
        char *t = token("{\"alg\":\"HS256\"}", p, NULL, SECRET);
        const char *why = verify(k, &basic, t);
        ck_assert_msg((why == NULL) == cases[i].ok, "case %zu: %s", i, why ? why : "accepted");
        free(t);
    }
    char *t = token("{\"alg\":\"HS256\"}", "{\"sub\":\"acme\"}", NULL, SECRET);
    ck_assert_str_eq(verify(k, &basic, t), "the token has no expiry (exp)");
    free(t);
    t = token("{\"alg\":\"HS256\"}", "{\"sub\":\"acme\",\"exp\":\"soon\"}", NULL, SECRET);
    ck_assert_ptr_nonnull(verify(k, &basic, t));
    free(t);
    jwt_key_free(k);
}
END_TEST

START_TEST(test_iss_aud_claims)
{
    struct jwt_key *k = hs_key();
    struct jwt_policy pol = {.issuer = "https://id.example",
                             .audience = "sluice",
                             .tenant_claim = "sub",
                             .routes_claim = "routes"};
    static const struct {
        const char *extra;
        int ok;
    } cases[] = {
        {",\"iss\":\"https://id.example\",\"aud\":\"sluice\"", 1},
        {",\"iss\":\"https://id.example\",\"aud\":[\"x\",\"sluice\"]", 1},
        {",\"iss\":\"https://evil.example\",\"aud\":\"sluice\"", 0},
        {",\"aud\":\"sluice\"", 0},
        {",\"iss\":\"https://id.example\",\"aud\":\"other\"", 0},
        {",\"iss\":\"https://id.example\"", 0},
        {",\"iss\":\"https://id.example\",\"aud\":\"sluice\",\"routes\":\"echo\"", 0},
        {",\"iss\":\"https://id.example\",\"aud\":\"sluice\",\"routes\":[1]", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = payload(cases[i].extra);
        char *t = token("{\"alg\":\"HS256\"}", p, NULL, SECRET);
        const char *why = verify(k, &pol, t);
        ck_assert_msg((why == NULL) == cases[i].ok, "case %zu: %s", i, why ? why : "accepted");
        free(t);
        free(p);
    }
    char *p =
        payload(",\"iss\":\"https://id.example\",\"aud\":\"sluice\",\"routes\":[\"a\",\"b\"]");
    char *t = token("{\"alg\":\"HS256\"}", p, NULL, SECRET);
    struct jwt_claims c;
    const char *why;
    ck_assert_int_eq(jwt_verify(k, &pol, t, strlen(t), NOW, &c, &why), 0);
    ck_assert_int_eq(c.has_routes, 1);
    ck_assert_uint_eq(c.n_routes, 2);
    ck_assert_str_eq(c.routes[1], "b");
    free(t);
    free(p);
    t = token("{\"alg\":\"HS256\"}", "{\"exp\":1900000000,\"sub\":\"\"}", NULL, SECRET);
    ck_assert_str_eq(verify(k, &basic, t), "the token names no tenant");
    free(t);
    jwt_key_free(k);
}
END_TEST

START_TEST(test_malformed)
{
    struct jwt_key *k = hs_key();
    static const char *const bad[] = {
        "", ".", "..", "a.b", "a.b.c.d", "e30.e30.", "!!.e30.e30", "eyJhbGciOiJIUzI1NiJ9.e30=.e30"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_ptr_nonnull(verify(k, &basic, bad[i]));
    char err[128];
    struct jwt_key *weak;
    ck_assert_int_eq(jwt_key_new(&weak, JWT_HS256, "short", err, sizeof(err)), -1);
    ck_assert_ptr_null(strstr(err, "short"));
    ck_assert_int_eq(jwt_key_new(&weak, JWT_RS256, "/nonexistent.pem", err, sizeof(err)), -1);
    ck_assert_int_eq(jwt_alg_parse("none"), -1);
    ck_assert_int_eq(jwt_alg_parse("ES256"), JWT_ES256);
    jwt_key_free(k);
}
END_TEST

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("jwt");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_hs256);
    tcase_add_test(tc, test_alg_none_and_confusion);
    tcase_add_test(tc, test_rs256_es256);
    tcase_add_test(tc, test_times);
    tcase_add_test(tc, test_iss_aud_claims);
    tcase_add_test(tc, test_malformed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jwt_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
