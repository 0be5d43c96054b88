/* idempotency.c: derived tracking IDs, request fingerprints and what each
 * replica remembers of the keys it has seen (see idempotency.h). The memory
 * is a memo (memo.h) from the derived ID to the fingerprint and whether the
 * key is still pending on this replica. */
#include "idempotency.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memo.h"

/* A pending key is forgotten after this long even if its answer never
 * came: the publisher answers every submission within confirm_timeout_ms. */
#define PENDING_MS 120000

enum { KNOWN = 'k', PENDING = 'p' };

/* What the memo holds per derived ID. */
struct remembered {
    char fp[IDEM_FP_LEN];
    char state;
    char pad[MEMO_VALUE - IDEM_FP_LEN - 1];
};
_Static_assert(sizeof(struct remembered) == MEMO_VALUE, "a memo value");

struct idem {
    const struct cfg *cfg;
    unsigned char secret[EVP_MAX_MD_SIZE];
    int secret_len;
    struct memo *memo;
};

struct idem *idem_new(const struct cfg *cfg)
{
    struct idem *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->cfg = cfg;
    const char *s = cfg->ingress.id_secret;
    if (s && s[0]) {
        /* HMAC hashes a key longer than a SHA-256 block itself; keep it whole. */
        unsigned int n = 0;
        if (strlen(s) <= 64) {
            memcpy(d->secret, s, strlen(s));
            n = (unsigned)strlen(s);
        } else if (EVP_Digest(s, strlen(s), d->secret, &n, EVP_sha256(), NULL) != 1) {
            n = 0;
        }
        d->secret_len = (int)n;
    } else {
        char text[128];
        unsigned int n = 0;
        int len = snprintf(text, sizeof text, "sluice id secret of namespace %s", cfg->namespace);
        if (EVP_Digest(text, (size_t)len, d->secret, &n, EVP_sha256(), NULL) == 1)
            d->secret_len = (int)n;
    }
    d->memo = memo_new((size_t)cfg->ingress.max_status_entries);
    if (!d->memo || d->secret_len == 0) {
        idem_free(d);
        return NULL;
    }
    return d;
}

void idem_free(struct idem *d)
{
    if (!d) return;
    memo_free(d->memo);
    free(d);
}

void idem_derive(const struct idem *d, const char *tenant, const char *key, size_t len,
                 char out[ID_LEN + 1])
{
    /* tenant NUL key: a tenant name has no NUL, so no two pairs read alike. */
    unsigned char msg[512], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t tlen = strlen(tenant);
    if (tlen + 1 + len > sizeof msg) len = sizeof msg - tlen - 1; /* beyond every limit */
    memcpy(msg, tenant, tlen);
    msg[tlen] = '\0';
    memcpy(msg + tlen + 1, key, len);
    if (!HMAC(EVP_sha256(), d->secret, d->secret_len, msg, tlen + 1 + len, mac, &maclen))
        memset(mac, 0, sizeof mac); /* cannot happen with a valid key; still a valid ID */
    id_encode(mac, out);
}

static int number(EVP_MD_CTX *ctx, uint64_t v)
{
    unsigned char n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)(v >> (56 - 8 * i));
    return EVP_DigestUpdate(ctx, n, 8) == 1 ? 0 : -1;
}

/* field feeds one length-prefixed field to the digest, so that no two
 * different requests give the same bytes. */
static int field(EVP_MD_CTX *ctx, const void *p, size_t len)
{
    return number(ctx, len) == 0 && (!len || EVP_DigestUpdate(ctx, p, len) == 1) ? 0 : -1;
}

static int text(EVP_MD_CTX *ctx, const char *s)
{
    return s ? field(ctx, s, strlen(s)) : field(ctx, "\xff", 1); /* absent != empty */
}

static int by_header(const void *a, const void *b)
{
    const struct env_header *x = *(const struct env_header *const *)a;
    const struct env_header *y = *(const struct env_header *const *)b;
    int c = strcasecmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* headers feeds the headers sorted by name, names lower-cased. */
static int headers(EVP_MD_CTX *ctx, const struct envelope *e)
{
    const struct env_header **sorted = calloc(e->n_headers + 1, sizeof *sorted);
    int rc = sorted && number(ctx, e->n_headers) == 0 ? 0 : -1;
    for (size_t i = 0; i < e->n_headers; i++)
        if (sorted) sorted[i] = &e->headers[i];
    if (!rc) qsort(sorted, e->n_headers, sizeof *sorted, by_header);
    for (size_t i = 0; !rc && i < e->n_headers; i++) {
        char name[256];
        size_t n = strlen(sorted[i]->name);
        if (n >= sizeof name) n = sizeof name - 1;
        for (size_t j = 0; j < n; j++)
            name[j] = (char)((sorted[i]->name[j] >= 'A' && sorted[i]->name[j] <= 'Z')
                                 ? sorted[i]->name[j] + 32
                                 : sorted[i]->name[j]);
        rc = field(ctx, name, n) || text(ctx, sorted[i]->value) ? -1 : 0;
    }
    free(sorted);
    return rc;
}

int idem_fingerprint(const struct envelope *e, char out[IDEM_FP_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
    if (!rc)
        rc = text(ctx, e->route) || text(ctx, e->method) || text(ctx, e->path) ||
                     text(ctx, e->query) || text(ctx, e->content_type) || headers(ctx, e) ||
                     field(ctx, e->body, e->body_len) ||
                     /* only when set: keys without one keep their fingerprints */
                     (e->callback_url && text(ctx, e->callback_url)) ||
                     EVP_DigestFinal_ex(ctx, md, &n) != 1
                 ? -1
                 : 0;
    EVP_MD_CTX_free(ctx);
    for (int i = 0; !rc && i < IDEM_FP_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return rc;
}

static int64_t expiry(const struct idem *d, const char *tenant, int64_t created_ms)
{
    return created_ms + cfg_tenant_retention_s(d->cfg, tenant) * 1000;
}

enum idem_verdict idem_begin(struct idem *d, const char *id, const char *fp, const char *tenant,
                             int64_t now_ms)
{
    (void)tenant; /* the ID is the tenant's already */
    struct remembered r;
    if (memo_get(d->memo, id, &r, now_ms)) {
        if (r.state == PENDING) return IDEM_IN_PROGRESS;
        return memcmp(r.fp, fp, IDEM_FP_LEN) == 0 ? IDEM_REPLAY : IDEM_REUSED;
    }
    /* Between the get and this put another thread may have begun the same
     * key: both publish the same ID, which is the documented race between
     * replicas, here within one (harmless end to end, see docs/api.md). */
    memset(&r, 0, sizeof r);
    memcpy(r.fp, fp, IDEM_FP_LEN);
    r.state = PENDING;
    return memo_put(d->memo, id, &r, now_ms + PENDING_MS) == 0 ? IDEM_NEW : IDEM_ERROR;
}

static bool settle(void *value, void *arg)
{
    (void)arg;
    ((struct remembered *)value)->state = KNOWN;
    return true;
}

void idem_end(struct idem *d, const char *id, const char *tenant, bool accepted, int64_t now_ms)
{
    struct remembered r;
    if (!memo_get(d->memo, id, &r, now_ms) || r.state != PENDING) return;
    if (!accepted) {
        memo_del(d->memo, id);
        return;
    }
    r.state = KNOWN;
    /* Out of memory for the longer expiry: known until the pending one's. */
    if (memo_put(d->memo, id, &r, expiry(d, tenant, now_ms)) < 0)
        memo_update(d->memo, id, now_ms, settle, NULL);
}

void idem_note(struct idem *d, const char *id, const char *fp, const char *tenant,
               int64_t created_ms)
{
    struct remembered r;
    if (strlen(fp) != IDEM_FP_LEN) return;
    int64_t now = created_ms; /* the memo only compares expiry times */
    if (memo_get(d->memo, id, &r, now) && r.state == KNOWN) return; /* the first one stays */
    memset(&r, 0, sizeof r);
    memcpy(r.fp, fp, IDEM_FP_LEN);
    r.state = KNOWN;
    /* Out of memory: this replica may then publish the key again, with the
     * same ID, which the index merges. */
    if (memo_put(d->memo, id, &r, expiry(d, tenant, created_ms)) < 0) return;
}

void idem_expire(struct idem *d, int64_t now_ms)
{
    memo_expire(d->memo, now_ms);
}
