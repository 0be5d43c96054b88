/* cache.c: cache keys and the memo from a key to the request that answers
 * it (see cache.h); whether that request may answer is asked of the status
 * index at each lookup, so the memo holds IDs only. */
#include "cache.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memo.h"

struct cache {
    const struct cfg *cfg;
    struct status_index *index;
    struct memo *memo;
};

struct cache *cache_new(const struct cfg *cfg, struct status_index *index)
{
    struct cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfg = cfg;
    c->index = index;
    c->memo = memo_new((size_t)cfg->ingress.max_status_entries);
    if (!c->memo) {
        free(c);
        return NULL;
    }
    return c;
}

void cache_free(struct cache *c)
{
    if (!c) return;
    memo_free(c->memo);
    free(c);
}

/* part feeds one length-prefixed part (absent differs from empty). */
static int part(EVP_MD_CTX *ctx, const char *s)
{
    unsigned char n[9] = {s ? 1 : 0};
    size_t len = s ? strlen(s) : 0;
    for (int i = 0; i < 8; i++)
        n[1 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return EVP_DigestUpdate(ctx, n, sizeof n) == 1 && (!len || EVP_DigestUpdate(ctx, s, len) == 1)
               ? 0
               : -1;
}

static const char *header_of(const struct envelope *e, const char *name)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (!strcasecmp(e->headers[i].name, name)) return e->headers[i].value;
    return NULL;
}

bool cache_key(const struct cfg_route *route, const struct envelope *e, char out[CACHE_KEY_LEN + 1])
{
    if (!route->cache_ttl_s || e->idempotency_key ||
        (strcmp(e->method, "GET") != 0 && strcmp(e->method, "HEAD") != 0))
        return false;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && !part(ctx, e->tenant) &&
              !part(ctx, e->route) && !part(ctx, e->method) && !part(ctx, e->path) &&
              !part(ctx, e->query);
    for (size_t i = 0; ok && i < route->n_cache_vary; i++)
        ok = !part(ctx, header_of(e, route->cache_vary[i]));
    ok = ok && EVP_DigestFinal_ex(ctx, md, &n) == 1;
    EVP_MD_CTX_free(ctx);
    for (int i = 0; ok && i < CACHE_KEY_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return ok;
}

bool cache_lookup(struct cache *c, const struct cfg_route *route, const char *key,
                  const char *tenant, int64_t now_ms, struct status_brief *out)
{
    char id[MEMO_VALUE];
    if (strlen(key) != CACHE_KEY_LEN || !memo_get(c->memo, key, id, now_ms)) return false;
    id[ID_LEN] = '\0';
    if (status_index_brief(c->index, id, tenant, out) < 0) return false;
    if (!ST_FINAL(out->state)) return true; /* coalesced onto the request in progress */
    return out->state == ST_SUCCEEDED && out->updated_ms + route->cache_ttl_s * 1000 >= now_ms;
}

void cache_note(struct cache *c, const char *key, const char *id, const char *tenant,
                int64_t created_ms)
{
    char v[MEMO_VALUE] = {0};
    if (strlen(key) != CACHE_KEY_LEN) return;
    memcpy(v, id, ID_LEN);
    int64_t expires = created_ms + cfg_tenant_retention_s(c->cfg, tenant) * 1000;
    /* Out of memory: the next identical read is queued anew. */
    if (memo_put(c->memo, key, v, expires) < 0) return;
}

void cache_expire(struct cache *c, int64_t now_ms)
{
    memo_expire(c->memo, now_ms);
}
