/* arbiter.c: the verdicts between cancels and claims (see arbiter.h). The
 * claimed requests are a set of 64-bit hashes of their IDs (a collision can
 * only make a cancel lose, never drop a request) kept in a ring in arrival
 * order with an open-addressing table of ring slots; the cancelled ones are
 * a memo of whole IDs. Messages are read with jscan, checked whole before
 * anything is applied. */
#include "arbiter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "jscan.h"
#include "memo.h"

#define EMPTY UINT32_MAX
#define RING_START 64
#define MAX_MS INT64_C(253402300799999)

struct claim {
    uint64_t hash;
    int64_t ts_ms; /* -1: a dead slot (claimed again later) */
};

struct arbiter {
    struct claim *ring;
    size_t cap, head, count, max;
    uint32_t *table;
    size_t mask;
    int64_t retention_ms;
    int64_t newest_ms; /* the newest message time seen: "now" for expiry */
    struct memo *cancelled;
};

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a, then a final mix */
    for (int i = 0; i < ID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    return h ^ (h >> 33);
}

static size_t table_size(size_t cap)
{
    size_t n = 1;
    while (n < 2 * cap)
        n *= 2;
    return n;
}

static size_t probe(const struct arbiter *a, uint64_t h, bool *found)
{
    size_t i = h & a->mask;
    while (a->table[i] != EMPTY) {
        if (a->ring[a->table[i]].hash == h) {
            *found = true;
            return i;
        }
        i = (i + 1) & a->mask;
    }
    *found = false;
    return i;
}

static void table_delete(struct arbiter *a, size_t i)
{
    for (size_t j = (i + 1) & a->mask; a->table[j] != EMPTY; j = (j + 1) & a->mask) {
        size_t k = a->ring[a->table[j]].hash & a->mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            a->table[i] = a->table[j];
            i = j;
        }
    }
    a->table[i] = EMPTY;
}

static void pop_head(struct arbiter *a)
{
    struct claim *c = &a->ring[a->head];
    if (c->ts_ms >= 0) {
        bool found;
        size_t i = probe(a, c->hash, &found);
        if (found && a->table[i] == a->head) table_delete(a, i);
    }
    a->head = (a->head + 1) % a->cap;
    a->count--;
}

/* grow doubles the ring up to max, dropping dead slots; false on ENOMEM. */
static bool grow(struct arbiter *a)
{
    size_t cap = a->cap * 2 < a->max ? a->cap * 2 : a->max, tsize = table_size(cap), n = 0;
    struct claim *ring = malloc(cap * sizeof *ring);
    uint32_t *table = malloc(tsize * sizeof *table);
    if (!ring || !table) {
        free(ring);
        free(table);
        return false;
    }
    for (size_t i = 0; i < a->count; i++) {
        const struct claim *c = &a->ring[(a->head + i) % a->cap];
        if (c->ts_ms >= 0) ring[n++] = *c;
    }
    free(a->ring);
    free(a->table);
    a->ring = ring;
    a->table = table;
    a->cap = cap;
    a->head = 0;
    a->count = n;
    a->mask = tsize - 1;
    memset(table, 0xff, tsize * sizeof *table);
    for (size_t i = 0; i < n; i++) {
        bool found;
        table[probe(a, ring[i].hash, &found)] = (uint32_t)i;
    }
    return true;
}

/* remember_claim adds h at the newest end (moving it there if known). At
 * the bound, or when memory runs out, the oldest claim is forgotten. */
static void remember_claim(struct arbiter *a, uint64_t h, int64_t ts)
{
    bool found;
    size_t i = probe(a, h, &found);
    if (found) {
        a->ring[a->table[i]].ts_ms = -1;
        table_delete(a, i);
    }
    if (a->count == a->cap && (a->cap == a->max || !grow(a))) pop_head(a);
    while (a->count == a->cap) /* grow kept every slot: still full */
        pop_head(a);
    size_t pos = (a->head + a->count) % a->cap;
    a->ring[pos] = (struct claim){h, ts};
    a->table[probe(a, h, &found)] = (uint32_t)pos;
    a->count++;
}

static bool claimed(const struct arbiter *a, const char *id)
{
    bool found;
    probe(a, hash_id(id), &found);
    return found;
}

/* expire forgets claims older than the retention before the newest time. */
static void expire(struct arbiter *a)
{
    int64_t horizon = a->newest_ms - a->retention_ms;
    while (a->count > 0 && a->ring[a->head].ts_ms < horizon)
        pop_head(a);
    memo_expire(a->cancelled, a->newest_ms);
}

struct arbiter *arbiter_new(size_t max_claims, size_t max_cancels, int64_t retention_ms)
{
    if (!max_claims || !max_cancels || max_claims > UINT32_MAX / 4) return NULL;
    struct arbiter *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->max = max_claims;
    a->cap = max_claims < RING_START ? max_claims : RING_START;
    a->mask = table_size(a->cap) - 1;
    a->retention_ms = retention_ms;
    a->ring = malloc(a->cap * sizeof *a->ring);
    a->table = malloc((a->mask + 1) * sizeof *a->table);
    a->cancelled = memo_new(max_cancels);
    if (!a->ring || !a->table || !a->cancelled) {
        arbiter_free(a);
        return NULL;
    }
    memset(a->table, 0xff, (a->mask + 1) * sizeof *a->table);
    return a;
}

void arbiter_free(struct arbiter *a)
{
    if (!a) return;
    free(a->ring);
    free(a->table);
    memo_free(a->cancelled);
    free(a);
}

size_t arbiter_claims(const struct arbiter *a)
{
    return a->count;
}

int arbiter_claim_msg(struct buf *b, const char *const *ids, size_t n, int64_t ts_ms)
{
    int rc = buf_appendf(b, "{\"v\":1,\"ts\":%lld,\"claim\":[", (long long)ts_ms);
    for (size_t i = 0; !rc && i < n; i++)
        rc = buf_appendf(b, "%s\"%.*s\"", i ? "," : "", ID_LEN, ids[i]);
    return rc ? rc : buf_appends(b, "]}");
}

int arbiter_cancel_msg(struct buf *b, const char *id, int64_t ts_ms)
{
    return buf_appendf(b, "{\"v\":1,\"ts\":%lld,\"cancel\":\"%.*s\"}", (long long)ts_ms, ID_LEN,
                       id);
}

static bool read_id(struct jscan *s, char id[ID_LEN + 1])
{
    size_t n;
    return jscan_string(s, id, ID_LEN + 1, &n) && id_valid(id, n);
}

/* walk_claim checks the claim array at s; with a, it also applies each ID. */
static int walk_claim(struct jscan s, struct arbiter *a, int64_t ts, const struct arbiter_sink *k)
{
    char id[ID_LEN + 1], v[MEMO_VALUE];
    size_t n = 0;
    int r;
    if (!jscan_enter(&s, '[')) return -1;
    while ((r = jscan_next(&s, NULL, 0)) == 1) {
        if (!read_id(&s, id) || ++n > ARBITER_MAX_CLAIM) return -1;
        if (!a) continue;
        bool cancelled = memo_get(a->cancelled, id, v, ts);
        /* A refused claim is not a claim: its worker never calls it. */
        if (!cancelled) remember_claim(a, hash_id(id), ts);
        if (k && k->on_claim) k->on_claim(k->arg, id, cancelled);
    }
    return r == 0 ? 0 : -1;
}

static int apply_cancel(struct arbiter *a, const char *id, int64_t ts, const struct arbiter_sink *k)
{
    char v[MEMO_VALUE] = {0};
    bool effective = memo_get(a->cancelled, id, v, ts) || !claimed(a, id);
    if (effective && memo_put(a->cancelled, id, v, ts + a->retention_ms) < 0) return -ENOMEM;
    if (k && k->on_cancel) k->on_cancel(k->arg, id, effective);
    return 0;
}

int arbiter_feed(struct arbiter *a, const char *msg, size_t len, const struct arbiter_sink *sink)
{
    struct jscan s, claim;
    char key[16], cancel[ID_LEN + 1];
    int64_t v = 0, ts = -1;
    bool ok = jscan_init(&s, msg, len) && jscan_enter(&s, '{'), has_claim = false,
         has_cancel = false;
    int r = -1;
    while (ok && (r = jscan_next(&s, key, sizeof key)) == 1) {
        if (!strcmp(key, "v")) {
            ok = jscan_int(&s, 1, 1, &v);
        } else if (!strcmp(key, "ts")) {
            ok = jscan_int(&s, 0, MAX_MS, &ts);
        } else if (!strcmp(key, "cancel")) {
            ok = has_cancel = read_id(&s, cancel);
        } else if (!strcmp(key, "claim")) {
            claim = s;
            has_claim = true;
            ok = walk_claim(s, NULL, 0, NULL) == 0 && jscan_value(&s, NULL, NULL);
        } else {
            ok = jscan_value(&s, NULL, NULL);
        }
    }
    if (!ok || r != 0 || !jscan_done(&s) || v != 1 || ts < 0 || has_claim == has_cancel) return -1;
    if (ts > a->newest_ms) a->newest_ms = ts;
    expire(a);
    return has_claim ? walk_claim(claim, a, ts, sink) : apply_cancel(a, cancel, ts, sink);
}
