/* test_idempotency.c: derived tracking IDs (one per tenant and key, under
 * the deployment's secret), fingerprints (what makes two requests the same)
 * and the verdicts every replica gives a repeated key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idempotency.h"

#define T0 INT64_C(1795428000000)

static struct cfg load(const char *doc)
{
    struct cfg c;
    char err[256];
    ck_assert_msg(cfg_load_string(&c, doc, "test", err, sizeof err) == 0, "%s", err);
    return c;
}

static const char DOC[] =
    "{\"ingress\":{\"status_retention_s\":3600},"
    "\"keys\":[{\"id\":\"a\",\"tenant\":\"short\",\"status_retention_s\":60,\"secret_sha256\":"
    "\"a336d9b1d8b8647875238537ca5087b0ea335afd2032936aecdffc3e4b13f720\"}]}";

START_TEST(test_derive)
{
    struct cfg c = load(DOC), other_ns = load("{\"namespace\":\"other\"}"),
               secret = load("{\"ingress\":{\"id_secret\":\"0123456789abcdef0123\"}}");
    struct idem *d = idem_new(&c), *d2 = idem_new(&c), *dn = idem_new(&other_ns),
                *ds = idem_new(&secret);
    char a[ID_LEN + 1], b[ID_LEN + 1];
    idem_derive(d, "acme", "k1", 2, a);
    idem_derive(d2, "acme", "k1", 2, b);
    ck_assert(id_valid(a, strlen(a)));
    ck_assert_str_eq(a, b); /* every replica of a deployment agrees */
    idem_derive(d, "acme", "k2", 2, b);
    ck_assert_str_ne(a, b);
    idem_derive(d, "globex", "k1", 2, b);
    ck_assert_str_ne(a, b);               /* scoped by tenant */
    idem_derive(d, "acme\0k", "1", 1, b); /* tenant and key cannot run into each other */
    ck_assert_str_ne(a, b);
    idem_derive(dn, "acme", "k1", 2, b);
    ck_assert_str_ne(a, b); /* another deployment, another ID */
    idem_derive(ds, "acme", "k1", 2, b);
    ck_assert_str_ne(a, b);
    idem_free(d);
    idem_free(d2);
    idem_free(dn);
    idem_free(ds);
    cfg_free(&c);
    cfg_free(&other_ns);
    cfg_free(&secret);
}
END_TEST

static void envelope_sample(struct envelope *e)
{
    envelope_init(e);
    e->route = strdup("orders");
    e->method = strdup("POST");
    e->path = strdup("/orders");
    e->query = strdup("a=1");
    e->n_headers = 2;
    e->headers = calloc(2, sizeof *e->headers);
    e->headers[0] = (struct env_header){strdup("X-A"), strdup("1")};
    e->headers[1] = (struct env_header){strdup("x-b"), strdup("2")};
    e->body = (unsigned char *)strdup("{\"n\":1}");
    e->body_len = 7;
}

static void fp_of(const struct envelope *e, char out[IDEM_FP_LEN + 1])
{
    ck_assert_int_eq(idem_fingerprint(e, out), 0);
    ck_assert_uint_eq(strlen(out), IDEM_FP_LEN);
}

START_TEST(test_fingerprint)
{
    struct envelope e;
    char base[IDEM_FP_LEN + 1], fp[IDEM_FP_LEN + 1];
    envelope_sample(&e);
    fp_of(&e, base);
    /* Header order and the case of names do not matter. */
    struct env_header h = e.headers[0];
    e.headers[0] = e.headers[1];
    e.headers[1] = h;
    e.headers[0].name[0] = 'X';
    fp_of(&e, fp);
    ck_assert_str_eq(fp, base);
    /* Every part of the request does. */
    e.body[6] = '2';
    fp_of(&e, fp);
    ck_assert_str_ne(fp, base);
    e.body[6] = '}';
    e.query[2] = '2';
    fp_of(&e, fp);
    ck_assert_str_ne(fp, base);
    e.query[2] = '1';
    free(e.query);
    e.query = NULL; /* no query differs from an empty one */
    fp_of(&e, fp);
    ck_assert_str_ne(fp, base);
    e.query = strdup("");
    char empty[IDEM_FP_LEN + 1];
    fp_of(&e, empty);
    ck_assert_str_ne(fp, empty);
    free(e.query);
    e.query = strdup("a=1");
    e.headers[1].value[0] = '9';
    fp_of(&e, fp);
    ck_assert_str_ne(fp, base);
    e.headers[1].value[0] = '1';
    e.method[0] = 'p';
    fp_of(&e, fp);
    ck_assert_str_ne(fp, base);
    envelope_free(&e);
}
END_TEST

START_TEST(test_verdicts)
{
    struct cfg c = load(DOC);
    struct idem *d = idem_new(&c);
    char id[ID_LEN + 1];
    const char *fp = "0123456789abcdef0123456789abcdef", *fp2 = "ffffffffffffffffffffffffffffffff";
    idem_derive(d, "acme", "k", 1, id);
    ck_assert_int_eq(idem_begin(d, id, fp, "acme", T0), IDEM_NEW);
    ck_assert_int_eq(idem_begin(d, id, fp, "acme", T0 + 1), IDEM_IN_PROGRESS);
    ck_assert_int_eq(idem_begin(d, id, fp2, "acme", T0 + 1), IDEM_IN_PROGRESS);
    /* Not accepted (503): the key is free again. */
    idem_end(d, id, "acme", false, T0 + 2);
    ck_assert_int_eq(idem_begin(d, id, fp2, "acme", T0 + 3), IDEM_NEW);
    idem_end(d, id, "acme", true, T0 + 4);
    ck_assert_int_eq(idem_begin(d, id, fp2, "acme", T0 + 5), IDEM_REPLAY);
    ck_assert_int_eq(idem_begin(d, id, fp, "acme", T0 + 5), IDEM_REUSED);
    /* Remembered for the status retention, then forgotten. */
    ck_assert_int_eq(idem_begin(d, id, fp2, "acme", T0 + 3600000), IDEM_REPLAY);
    idem_expire(d, T0 + 3600005);
    ck_assert_int_eq(idem_begin(d, id, fp, "acme", T0 + 3600005), IDEM_NEW);
    idem_free(d);
    cfg_free(&c);
}
END_TEST

START_TEST(test_note_from_stream)
{
    struct cfg c = load(DOC);
    struct idem *d = idem_new(&c);
    char id[ID_LEN + 1], id2[ID_LEN + 1];
    const char *fp = "0123456789abcdef0123456789abcdef", *fp2 = "ffffffffffffffffffffffffffffffff";
    idem_derive(d, "acme", "k", 1, id);
    /* Another replica's request: known here from its queued event; the
     * first fingerprint of a key stays. */
    idem_note(d, id, fp, "acme", T0);
    idem_note(d, id, fp2, "acme", T0 + 1);
    ck_assert_int_eq(idem_begin(d, id, fp, "acme", T0 + 2), IDEM_REPLAY);
    ck_assert_int_eq(idem_begin(d, id, fp2, "acme", T0 + 2), IDEM_REUSED);
    /* A key pending here that another replica published first: the
     * stream's fingerprint decides, and the local answer does not undo it. */
    idem_derive(d, "acme", "k2", 2, id2);
    ck_assert_int_eq(idem_begin(d, id2, fp2, "acme", T0), IDEM_NEW);
    idem_note(d, id2, fp, "acme", T0);
    idem_end(d, id2, "acme", true, T0 + 1);
    ck_assert_int_eq(idem_begin(d, id2, fp, "acme", T0 + 2), IDEM_REPLAY);
    /* A tenant's shorter retention holds for its keys. */
    idem_derive(d, "short", "k", 1, id);
    idem_note(d, id, fp, "short", T0);
    ck_assert_int_eq(idem_begin(d, id, fp, "short", T0 + 59999), IDEM_REPLAY);
    ck_assert_int_eq(idem_begin(d, id, fp, "short", T0 + 60000), IDEM_NEW);
    /* A malformed fingerprint is ignored. */
    idem_derive(d, "acme", "k3", 2, id);
    idem_note(d, id, "short", "acme", T0);
    ck_assert_int_eq(idem_begin(d, id, fp, "acme", T0), IDEM_NEW);
    idem_free(d);
    cfg_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("idempotency");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_derive);
    tcase_add_test(tc, test_fingerprint);
    tcase_add_test(tc, test_verdicts);
    tcase_add_test(tc, test_note_from_stream);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
