/* status_index.c: the id -> status index every ingress replica builds from
 * the events stream. Memory is what bounds it, so an entry is a fixed 72-byte
 * record: the ID inline, tenant and route as indexes into small interned
 * string tables, times, one pointer to the result and error texts (the only
 * variable-size parts) and the stream offset of the final event that carried
 * them. Past max_bytes of results, results leave memory oldest entry first
 * (ring order) and only that offset stays: the caller reads such a result
 * back from the stream (ingress/readback.h). Errors stay: listings show them
 * and they are short (a code and a message). Entries live in a ring in insertion order, which makes
 * eviction of the oldest and expiry by creation time a pop from the head; an
 * open-addressing table of uint32 ring slots (linear probing, backward-shift
 * deletion, load <= 0.5) finds them by ID. */
#include "status_index.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "drain.h"
#include "id.h"

#define EMPTY UINT32_MAX
#define RING_START 16
#define MAX_ENTRIES ((size_t)1 << 30)
#define TIME_LEN 64
#define MAX_ATTEMPTS_SHOWN 127 /* a route's max_attempts is at most 100 */
#define CREATED_MAX ((INT64_C(1) << 48) - 1)

struct entry {
    char id[ID_LEN];
    /* Milliseconds since the epoch fit 48 bits (up to the year 10889); the
     * bits left hold what an operator did to it, without growing the entry. */
    uint64_t created_ms : 48;
    uint64_t replays : 15; /* its generation: replays from the dead letters */
    uint64_t purged : 1;   /* dead, and its dead letter purged: not listed */
    int64_t updated_ms;    /* also the completion time once the state is final */
    /* NULL, or the result then the error, each NUL-terminated and empty when
     * absent (a JSON object never is): one pointer instead of two leaves room
     * for at within 72 bytes. */
    char *texts;
    int64_t at; /* 1 + the stream offset of the final event with a result; 0: none known */
    uint16_t tenant;
    uint16_t route;
    /* Packed into the four bytes left, so that an entry stays 72 bytes. */
    uint32_t state : 3;    /* enum req_state, or ST_GONE */
    uint32_t reason : 2;   /* why a request that is not final waits: REASON_* */
    uint32_t attempts : 7; /* up to MAX_ATTEMPTS_SHOWN */
    uint32_t erased : 1;   /* result and error erased at the client's request */
    /* While queued, its lane arrival (drain.h); once final, its callback:
     * CB_* in the low 2 bits, the calls made above them (cb_of); else 0. */
    uint32_t ticket : DRAIN_TICKET_BITS;
};
_Static_assert(DRAIN_TICKET_BITS >= 2 + 7, "a final entry's ticket holds its callback");

/* ST_GONE marks a ring slot whose entry was dropped before reaching the
 * head: it is no longer in the table and waits to be popped. */
#define ST_GONE 7
_Static_assert(ST_CANCELLED < ST_GONE, "ST_GONE is no state");

_Static_assert(sizeof(struct entry) <= 72, "entries are the bulk of the index's memory");

/* The reasons an event may give, as the status document spells them; an
 * unknown one (a newer worker's) is shown as none. */
enum { REASON_NONE, REASON_BREAKER_OPEN, REASON_PAUSED, N_REASONS };
static const char *const reasons[N_REASONS] = {
    [REASON_BREAKER_OPEN] = "breaker_open", [REASON_PAUSED] = "paused"};

/* Interned strings are never freed: tenants and routes come from the
 * configuration, so a table stays small; UINT16_MAX bounds it anyway. */
struct strtab {
    char **s;
    size_t n, cap;
    size_t bytes;
};

/* What the index knows per tenant (indexed like the tenants table). */
struct tenant_info {
    int64_t retention_ms; /* 0: the index's own */
    size_t open;          /* live entries not yet final */
};

struct status_index {
    pthread_rwlock_t lock;
    struct entry *ring;
    size_t cap, head, count, max;
    uint32_t *table; /* ring slots, EMPTY where free */
    size_t mask;     /* table size - 1 */
    struct strtab tenants, routes;
    struct drain *drains; /* one per interned route, at the same index */
    size_t n_drains;
    struct tenant_info *tinfo; /* tenants.cap of them */
    bool short_retention;      /* some tenant's retention is shorter: expire sweeps */
    size_t text_bytes;         /* result and error copies */
    size_t held;               /* bytes of results that may leave memory (at != 0) */
    size_t max_bytes;          /* bound of held; 0: none */
    size_t spill;              /* entries from the head whose results were let go */
    uint64_t spilled;          /* results let go so far */
    int64_t retention_ms;
    int64_t horizon_ms; /* updates of requests created before are ignored */
    status_final_fn on_final;
    void *on_final_arg;
};

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (int i = 0; i < ID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211u;
    return h ^ (h >> 32);
}

static size_t table_size(size_t ring_cap)
{
    size_t n = 1;
    while (n < 2 * ring_cap)
        n *= 2;
    return n;
}

/* probe returns the table position holding id, or the free one where it goes. */
static size_t probe(const struct status_index *idx, const char *id, bool *found)
{
    size_t i = hash_id(id) & idx->mask;
    while (idx->table[i] != EMPTY) {
        if (memcmp(idx->ring[idx->table[i]].id, id, ID_LEN) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & idx->mask;
    }
    *found = false;
    return i;
}

/* table_delete empties position i, then shifts back the entries after it
 * whose home position is not in (i, j], so every probe chain stays unbroken. */
static void table_delete(struct status_index *idx, size_t i)
{
    for (size_t j = (i + 1) & idx->mask; idx->table[j] != EMPTY; j = (j + 1) & idx->mask) {
        size_t k = hash_id(idx->ring[idx->table[j]].id) & idx->mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            idx->table[i] = idx->table[j];
            i = j;
        }
    }
    idx->table[i] = EMPTY;
}

static void table_rebuild(struct status_index *idx)
{
    memset(idx->table, 0xff, (idx->mask + 1) * sizeof *idx->table);
    for (size_t n = 0; n < idx->count; n++) {
        size_t pos = (idx->head + n) % idx->cap;
        bool found;
        if (idx->ring[pos].state != ST_GONE)
            idx->table[probe(idx, idx->ring[pos].id, &found)] = (uint32_t)pos;
    }
}

/* TEXT_OVERHEAD is what malloc adds to each block, counted so that the
 * bound is about memory rather than JSON bytes. */
#define TEXT_OVERHEAD 16

static const char *result_of(const struct entry *e)
{
    return e->texts && e->texts[0] ? e->texts : NULL;
}

static const char *error_of(const struct entry *e)
{
    if (!e->texts) return NULL;
    const char *err = e->texts + strlen(e->texts) + 1;
    return *err ? err : NULL;
}

static size_t texts_size(const char *texts)
{
    if (!texts) return 0;
    size_t r = strlen(texts) + 1;
    return r + strlen(texts + r) + 1 + TEXT_OVERHEAD;
}

/* result_cost is what letting go of e's result would give back. */
static size_t result_cost(const struct entry *e)
{
    return e->at && result_of(e) ? strlen(e->texts) : 0;
}

static void texts_free(struct status_index *idx, struct entry *e)
{
    idx->text_bytes -= texts_size(e->texts);
    idx->held -= result_cost(e);
    free(e->texts);
    e->texts = NULL;
}

/* texts_take moves a block made by texts_make into e (freeing what it held)
 * with the offset of the event it came from (0: unknown). */
static void texts_take(struct status_index *idx, struct entry *e, char **texts, int64_t at)
{
    texts_free(idx, e);
    e->texts = *texts;
    e->at = *texts && (*texts)[0] ? at : 0;
    *texts = NULL;
    idx->text_bytes += texts_size(e->texts);
    idx->held += result_cost(e);
}

/* let_go frees e's result, keeping its error (in a block of its own) and
 * at; it fails only on ENOMEM, leaving e as it was. */
static int let_go(struct status_index *idx, struct entry *e)
{
    const char *err = error_of(e);
    char *rest = NULL;
    if (err) {
        size_t n = strlen(err) + 1;
        rest = malloc(n + 1);
        if (!rest) return -ENOMEM;
        rest[0] = '\0';
        memcpy(rest + 1, err, n);
    }
    int64_t at = e->at;
    texts_free(idx, e);
    e->texts = rest;
    e->at = at;
    idx->text_bytes += texts_size(rest);
    idx->spilled++;
    return 0;
}

/* spill lets results go, oldest entry first, until held is within
 * max_bytes. The cursor walks the ring from the head; a result that came
 * later to an entry behind it is taken on a second pass from the head. */
static void spill(struct status_index *idx)
{
    bool wrapped = false;
    while (idx->max_bytes && idx->held > idx->max_bytes) {
        if (idx->spill >= idx->count) {
            if (wrapped) return; /* cannot happen: held counts results in the ring */
            idx->spill = 0;
            wrapped = true;
        }
        struct entry *e = &idx->ring[(idx->head + idx->spill) % idx->cap];
        if (result_cost(e) && let_go(idx, e) < 0) return;
        idx->spill++;
    }
}

/* drop takes the entry at ring slot pos out of the table and frees its
 * texts; the slot is left ST_GONE. A dropped ID may be inserted again
 * later, so only a table position that points at pos is deleted. */
static void drop(struct status_index *idx, size_t pos)
{
    struct entry *e = &idx->ring[pos];
    if (e->state == ST_GONE) return;
    bool found;
    size_t i = probe(idx, e->id, &found);
    if (found && idx->table[i] == pos) table_delete(idx, i);
    if (!ST_FINAL(e->state)) idx->tinfo[e->tenant].open--;
    texts_free(idx, e);
    e->at = 0;
    e->state = ST_GONE;
}

static void evict_head(struct status_index *idx)
{
    drop(idx, idx->head);
    idx->head = (idx->head + 1) % idx->cap;
    idx->count--;
    if (idx->spill > 0) idx->spill--;
}

/* grow doubles the ring (up to max) and rebuilds the table for the new size,
 * laying the entries out from slot 0 in insertion order. */
static int grow(struct status_index *idx)
{
    size_t cap = idx->cap * 2 < idx->max ? idx->cap * 2 : idx->max;
    size_t tsize = table_size(cap);
    struct entry *ring = malloc(cap * sizeof *ring);
    uint32_t *table = malloc(tsize * sizeof *table);
    if (!ring || !table) {
        free(ring);
        free(table);
        return -ENOMEM;
    }
    for (size_t n = 0; n < idx->count; n++)
        ring[n] = idx->ring[(idx->head + n) % idx->cap];
    free(idx->ring);
    free(idx->table);
    idx->ring = ring;
    idx->table = table;
    idx->cap = cap;
    idx->head = 0;
    idx->mask = tsize - 1;
    table_rebuild(idx);
    return 0;
}

static int strtab_find(const struct strtab *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->s[i], s) == 0) return (int)i;
    return -1;
}

/* intern returns the index of s in t, adding it if new. With info, the
 * per-tenant table grows along (new slots zeroed). */
static int intern(struct strtab *t, const char *s, uint16_t *out, struct tenant_info **info)
{
    int found = strtab_find(t, s);
    if (found >= 0) {
        *out = (uint16_t)found;
        return 0;
    }
    if (t->n > UINT16_MAX) return -ENOMEM;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        if (info) {
            struct tenant_info *ti = realloc(*info, cap * sizeof *ti);
            if (!ti) return -ENOMEM;
            memset(ti + t->cap, 0, (cap - t->cap) * sizeof *ti);
            *info = ti;
        }
        char **a = realloc(t->s, cap * sizeof *a);
        if (!a) return -ENOMEM;
        t->s = a;
        t->cap = cap;
    }
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, s, len + 1);
    t->s[t->n] = copy;
    t->bytes += len + 1;
    *out = (uint16_t)t->n++;
    return 0;
}

/* intern_route interns a route name and keeps a drain counter beside it. */
static int intern_route(struct status_index *idx, const char *s, uint16_t *out)
{
    int rc = intern(&idx->routes, s, out, NULL);
    if (rc || *out < idx->n_drains) return rc;
    size_t n = idx->routes.cap;
    struct drain *d = realloc(idx->drains, n * sizeof *d);
    if (!d) {
        /* Undo the new name, so that every interned route has its counter. */
        char *name = idx->routes.s[--idx->routes.n];
        idx->routes.bytes -= strlen(name) + 1;
        free(name);
        return -ENOMEM;
    }
    memset(d + idx->n_drains, 0, (n - idx->n_drains) * sizeof *d);
    idx->drains = d;
    idx->n_drains = n;
    return 0;
}

static void strtab_free(struct strtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
}

struct status_index *status_index_new(size_t max_entries, int64_t retention_ms)
{
    pthread_rwlockattr_t attr;
    struct status_index *idx = NULL;
    if (max_entries == 0 || max_entries > MAX_ENTRIES || retention_ms < 0) return NULL;
    if (pthread_rwlockattr_init(&attr) != 0) return NULL;
    /* The stream consumer must not starve behind a steady flow of status reads. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    idx = calloc(1, sizeof *idx);
    if (!idx) goto out;
    idx->max = max_entries;
    idx->cap = max_entries < RING_START ? max_entries : RING_START;
    idx->mask = table_size(idx->cap) - 1;
    idx->retention_ms = retention_ms;
    idx->horizon_ms = INT64_MIN;
    idx->ring = malloc(idx->cap * sizeof *idx->ring);
    idx->table = malloc((idx->mask + 1) * sizeof *idx->table);
    if (!idx->ring || !idx->table || pthread_rwlock_init(&idx->lock, &attr) != 0) goto err;
    memset(idx->table, 0xff, (idx->mask + 1) * sizeof *idx->table);
    goto out;
err:
    free(idx->ring);
    free(idx->table);
    free(idx);
    idx = NULL;
out:
    pthread_rwlockattr_destroy(&attr);
    return idx;
}

void status_index_free(struct status_index *idx)
{
    if (!idx) return;
    for (size_t n = 0; n < idx->count; n++)
        free(idx->ring[(idx->head + n) % idx->cap].texts);
    strtab_free(&idx->tenants);
    strtab_free(&idx->routes);
    free(idx->drains);
    free(idx->tinfo);
    free(idx->ring);
    free(idx->table);
    pthread_rwlock_destroy(&idx->lock);
    free(idx);
}

static unsigned clamp_attempts(int attempts)
{
    if (attempts < 0) return 0;
    return attempts > MAX_ATTEMPTS_SHOWN ? MAX_ATTEMPTS_SHOWN : (unsigned)attempts;
}

static unsigned reason_of(const char *name)
{
    for (int i = 1; name && i < N_REASONS; i++)
        if (strcmp(name, reasons[i]) == 0) return (unsigned)i;
    return REASON_NONE;
}

/* created_of is an entry's creation time as the updates give it. */
static int64_t created_of(const struct entry *e)
{
    return (int64_t)e->created_ms;
}

static uint64_t created_bits(int64_t ms)
{
    return (uint64_t)(ms < 0 ? 0 : ms > CREATED_MAX ? CREATED_MAX : ms);
}

/* A final entry's callback state and calls, kept in its ticket bits. */
static unsigned cb_state(const struct entry *e)
{
    return ST_FINAL(e->state) ? (e->ticket & 3u) : CB_NONE;
}

static unsigned cb_attempts(const struct entry *e)
{
    return ST_FINAL(e->state) ? (e->ticket >> 2) & 0x7fu : 0;
}

static void cb_set(struct entry *e, int state, int attempts)
{
    unsigned a = attempts < 0                       ? 0
                 : attempts > EVENT_MAX_CB_ATTEMPTS ? EVENT_MAX_CB_ATTEMPTS
                                                    : (unsigned)attempts;
    e->ticket = ((unsigned)state & 3u) | a << 2;
}

static int insert(struct status_index *idx, const struct status_update *u, char **texts, int64_t at)
{
    uint16_t tenant, route;
    int rc = intern(&idx->tenants, u->tenant, &tenant, &idx->tinfo);
    if (!rc) rc = intern_route(idx, u->route, &route);
    if (!rc && idx->count == idx->cap) {
        if (idx->cap < idx->max)
            rc = grow(idx);
        else
            evict_head(idx);
    }
    if (rc) return rc;
    size_t pos = (idx->head + idx->count) % idx->cap;
    struct entry *e = &idx->ring[pos];
    *e = (struct entry){.created_ms = created_bits(u->created_ms),
                        .replays = (unsigned)u->replays,
                        .updated_ms = u->ts_ms,
                        .tenant = tenant,
                        .route = route,
                        .attempts = clamp_attempts(u->attempts),
                        .state = (unsigned)u->state,
                        .reason = reason_of(u->reason)};
    /* A request first seen queued has entered its lane. */
    if (u->state == ST_QUEUED) e->ticket = drain_arrive(&idx->drains[route]);
    if (ST_FINAL(u->state)) cb_set(e, u->callback, u->callback_attempts);
    memcpy(e->id, u->id, ID_LEN);
    texts_take(idx, e, texts, ST_FINAL(e->state) ? at : 0);
    if (!ST_FINAL(e->state)) idx->tinfo[tenant].open++;
    bool found;
    idx->table[probe(idx, e->id, &found)] = (uint32_t)pos;
    idx->count++;
    return 0;
}

/* merge_callback applies a worker's callback progress to a final entry of
 * the same generation: more calls win, and at equal calls an outcome wins
 * over pending (progress events may be read back out of order). */
static void merge_callback(struct entry *e, const struct status_update *u)
{
    if (!ST_FINAL(e->state) || (unsigned)u->replays != e->replays || u->callback == CB_NONE) return;
    unsigned a = (unsigned)u->callback_attempts, have = cb_attempts(e);
    if (a > have ||
        (a == have && cb_state(e) != (unsigned)u->callback && u->callback != CB_PENDING))
        cb_set(e, u->callback, u->callback_attempts);
}

/* regenerate starts e anew for u's newer generation (a replay from the
 * dead letters): its earlier outcome no longer says anything. */
static void regenerate(struct status_index *idx, struct entry *e, const struct status_update *u)
{
    if (ST_FINAL(e->state)) {
        idx->tinfo[e->tenant].open++;
        e->ticket = 0; /* its callback bits: the new generation has none yet */
    }
    e->replays = (unsigned)u->replays;
    e->purged = 0;
    e->erased = 0;
    e->attempts = 0;
    e->reason = REASON_NONE;
    e->state = ST_QUEUED;
    e->updated_ms = u->ts_ms;
    texts_free(idx, e);
    e->at = 0; /* the earlier outcome on the stream is no longer this request's */
    /* Sent back to its lane: it queues there again. */
    if (!e->ticket && u->state == ST_QUEUED) e->ticket = drain_arrive(&idx->drains[e->route]);
}

/* merge applies the rules of status_index.h. A final state is kept as it
 * is: a redelivery after a worker crash must not change a result already
 * served. Among non-final states the newest event wins, so a late
 * "processing" does not hide a "retrying" that followed it. The ingress's
 * own "queued" (without a reason) may come after a worker's events; a
 * worker's "queued" with a reason is news. */
static void merge(struct status_index *idx, struct entry *e, const struct status_update *u,
                  char **texts, int64_t at)
{
    if (u->erase) {
        /* An erasure follows the final state it erases on the stream. */
        if (!ST_FINAL(e->state) || strcmp(idx->tenants.s[e->tenant], u->tenant) != 0) return;
        texts_free(idx, e);
        e->at = 0; /* what the stream still holds must never come back */
        e->erased = 1;
        return;
    }
    if (u->purge) {
        if (e->state == ST_DEAD && (unsigned)u->replays == e->replays) e->purged = 1;
        return;
    }
    /* Generations: an event of an earlier one is stale, a later one
     * replaces whatever the entry said, a final state included. */
    if ((unsigned)u->replays < e->replays) return;
    if (u->callback_only) {
        merge_callback(e, u);
        return;
    }
    if ((unsigned)u->replays > e->replays) regenerate(idx, e, u);
    if (ST_FINAL(e->state) || (u->state == ST_QUEUED && !u->reason)) return;
    unsigned attempts = clamp_attempts(u->attempts);
    if (attempts > e->attempts) e->attempts = attempts;
    if (!ST_FINAL(u->state) && u->ts_ms < e->updated_ms) return;
    if (e->ticket && u->state != ST_QUEUED) {
        /* It left its lane: a worker took it. */
        drain_depart(&idx->drains[e->route], u->ts_ms);
        e->ticket = 0;
    }
    if (ST_FINAL(u->state)) idx->tinfo[e->tenant].open--;
    e->state = (unsigned)u->state;
    e->reason = reason_of(u->reason);
    if (ST_FINAL(e->state)) cb_set(e, u->callback, u->callback_attempts);
    if (u->ts_ms > e->updated_ms) e->updated_ms = u->ts_ms;
    texts_take(idx, e, texts, ST_FINAL(e->state) ? at : 0);
}

/* texts_make copies an update's result and error into one block (see
 * struct entry); NULL when it has neither. */
static int texts_make(const struct status_update *u, char **out)
{
    size_t r = u->result_json ? u->result_len : 0, e = u->error_json ? u->error_len : 0;
    *out = NULL;
    if (!r && !e) return 0;
    char *t = malloc(r + e + 2);
    if (!t) return -ENOMEM;
    if (r) memcpy(t, u->result_json, r);
    t[r] = '\0';
    if (e) memcpy(t + r + 1, u->error_json, e);
    t[r + 1 + e] = '\0';
    *out = t;
    return 0;
}

static bool update_valid(const struct status_update *u)
{
    return u->id && id_valid(u->id, strnlen(u->id, ID_LEN + 1)) && u->tenant && u->route &&
           (int)u->state >= ST_QUEUED && (int)u->state <= ST_CANCELLED && u->replays >= 0 &&
           u->replays <= EVENT_MAX_REPLAYS;
}

/* horizon is the creation time before which tenant's updates are ignored:
 * the index's own horizon, or a later one for a shorter retention. */
static int64_t horizon(const struct status_index *idx, const char *tenant)
{
    int64_t h = idx->horizon_ms;
    int t = idx->short_retention ? strtab_find(&idx->tenants, tenant) : -1;
    if (t >= 0 && idx->tinfo[t].retention_ms && h != INT64_MIN) {
        int64_t th = h + idx->retention_ms - idx->tinfo[t].retention_ms;
        if (th > h) h = th;
    }
    return h;
}

int status_index_apply(struct status_index *idx, const struct status_update *u)
{
    return status_index_apply_at(idx, u, -1);
}

int status_index_apply_at(struct status_index *idx, const struct status_update *u, int64_t offset)
{
    char *texts = NULL;
    int64_t at = offset >= 0 && offset < INT64_MAX ? offset + 1 : 0;
    if (!update_valid(u)) return -EINVAL;
    /* Copies are made before taking the lock, so readers never wait on malloc. */
    int rc = texts_make(u, &texts);
    if (rc) goto out;
    bool became_final = false;
    pthread_rwlock_wrlock(&idx->lock);
    if (u->created_ms >= horizon(idx, u->tenant)) {
        bool found;
        size_t i = probe(idx, u->id, &found);
        if (found) {
            struct entry *e = &idx->ring[idx->table[i]];
            became_final = !ST_FINAL(e->state);
            merge(idx, e, u, &texts, at);
            became_final = became_final && ST_FINAL(e->state);
        } else if (!u->erase && !u->purge && !u->callback_only) { /* nothing to change */
            rc = insert(idx, u, &texts, at);
            became_final = rc == 0 && ST_FINAL(u->state);
        }
        spill(idx);
    }
    pthread_rwlock_unlock(&idx->lock);
    if (became_final && idx->on_final) idx->on_final(idx->on_final_arg, u->id);
out:
    free(texts);
    return rc;
}

void status_index_on_final(struct status_index *idx, status_final_fn fn, void *arg)
{
    idx->on_final = fn;
    idx->on_final_arg = arg;
}

/* find returns the entry of id if it belongs to tenant; call with the lock held. */
static const struct entry *find(const struct status_index *idx, const char *id, const char *tenant)
{
    if (!id || !tenant || strnlen(id, ID_LEN + 1) != ID_LEN) return NULL;
    bool found;
    size_t i = probe(idx, id, &found);
    if (!found) return NULL;
    const struct entry *e = &idx->ring[idx->table[i]];
    return strcmp(idx->tenants.s[e->tenant], tenant) == 0 ? e : NULL;
}

static void format_time(int64_t ms, char out[TIME_LEN])
{
    int64_t sec = ms / 1000, milli = ms % 1000;
    if (milli < 0) {
        milli += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, TIME_LEN, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)milli);
}

static int append_text(struct buf *out, const char *key, const char *text)
{
    if (!text) return 0;
    int rc = buf_appends(out, key);
    return rc ? rc : buf_appends(out, text);
}

/* estimate gives the position and estimated wait of a queued entry; wait
 * is negative when no drain rate is known. */
static void estimate(const struct status_index *idx, const struct entry *e, int64_t now_ms,
                     uint32_t *position, double *wait_s)
{
    const struct drain *d = &idx->drains[e->route];
    *position = e->ticket ? drain_ahead(d, e->ticket) : 0;
    double rate = e->reason == REASON_NONE ? drain_rate(d, now_ms) : 0;
    /* Until it leaves the lane: those ahead of it, then itself. */
    *wait_s = rate > 0 ? (*position + 1) / rate : -1;
}

/* append_queue appends a queued entry's position and estimated wait. */
static int append_queue(const struct status_index *idx, const struct entry *e, struct buf *out)
{
    uint32_t position;
    double wait;
    estimate(idx, e, clock_real_ms(), &position, &wait);
    if (wait < 0)
        return buf_appendf(out, ",\"queue_position\":%u,\"estimated_wait_s\":null", position);
    return buf_appendf(out, ",\"queue_position\":%u,\"estimated_wait_s\":%.1f", position, wait);
}

/* render_entry renders e; result, when not NULL, stands for the one that left memory. */
static int render_entry(const struct status_index *idx, const struct entry *e, bool with_result,
                        const char *result, struct buf *out)
{
    char created[TIME_LEN], updated[TIME_LEN];
    const char *route = idx->routes.s[e->route];
    format_time(created_of(e), created);
    format_time(e->updated_ms, updated);
    int rc = buf_appendf(out, "{\"id\":\"%.*s\",\"route\":", ID_LEN, e->id);
    if (!rc) rc = buf_append_json_string(out, route, strlen(route));
    if (!rc)
        rc = buf_appendf(out,
                         ",\"status\":\"%s\",\"attempts\":%u,\"created_at\":\"%s\","
                         "\"updated_at\":\"%s\"",
                         event_state_name((enum req_state)e->state), (unsigned)e->attempts, created,
                         updated);
    if (!rc && ST_FINAL(e->state)) rc = buf_appendf(out, ",\"completed_at\":\"%s\"", updated);
    if (!rc && e->state == ST_QUEUED) rc = append_queue(idx, e, out);
    if (!rc && e->reason && !ST_FINAL(e->state))
        rc = buf_appendf(out, ",\"reason\":\"%s\"", reasons[e->reason]);
    if (!rc && with_result) rc = append_text(out, ",\"result\":", result ? result : result_of(e));
    if (!rc) rc = append_text(out, ",\"error\":", error_of(e));
    if (!rc && cb_state(e) != CB_NONE)
        rc = buf_appendf(out, ",\"callback\":{\"status\":\"%s\",\"attempts\":%u}",
                         event_callback_name((int)cb_state(e)), cb_attempts(e));
    if (!rc && e->erased) rc = buf_appends(out, ",\"erased\":true");
    if (!rc && e->replays) rc = buf_appendf(out, ",\"replays\":%u", (unsigned)e->replays);
    return rc ? rc : buf_append(out, "}", 1);
}

int status_index_render_ex(struct status_index *idx, const char *id, const char *tenant,
                           bool with_result, struct buf *out)
{
    pthread_rwlock_rdlock(&idx->lock);
    const struct entry *e = find(idx, id, tenant);
    int rc = e ? render_entry(idx, e, with_result, NULL, out) : -ENOENT;
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

/* gone tells whether e's result left memory (and was not erased since). */
static bool gone(const struct entry *e)
{
    return e->at && !e->erased && !result_of(e);
}

int status_index_render_at(struct status_index *idx, const char *id, const char *tenant,
                           struct buf *out, int64_t *offset)
{
    pthread_rwlock_rdlock(&idx->lock);
    const struct entry *e = find(idx, id, tenant);
    int rc = -ENOENT;
    if (e && gone(e)) {
        *offset = e->at - 1;
        rc = -EAGAIN;
    } else if (e) {
        rc = render_entry(idx, e, true, NULL, out);
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

int status_index_render_with(struct status_index *idx, const char *id, const char *tenant,
                             int64_t offset, const char *result, struct buf *out)
{
    pthread_rwlock_rdlock(&idx->lock);
    const struct entry *e = find(idx, id, tenant);
    int rc = -ENOENT;
    if (e && gone(e) && e->at - 1 != offset)
        rc = -EAGAIN; /* not the event read: never serve another one's text */
    else if (e)
        rc = render_entry(idx, e, true, gone(e) ? result : NULL, out);
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

int status_index_render(struct status_index *idx, const char *id, const char *tenant,
                        struct buf *out)
{
    int64_t offset;
    return status_index_render_at(idx, id, tenant, out, &offset);
}

void status_index_set_max_bytes(struct status_index *idx, size_t max_bytes)
{
    pthread_rwlock_wrlock(&idx->lock);
    idx->max_bytes = max_bytes;
    spill(idx);
    pthread_rwlock_unlock(&idx->lock);
}

void status_index_text_stats(struct status_index *idx, struct status_text_stats *out)
{
    pthread_rwlock_rdlock(&idx->lock);
    *out = (struct status_text_stats){
        .text_bytes = idx->text_bytes, .held = idx->held, .spilled = idx->spilled};
    pthread_rwlock_unlock(&idx->lock);
}

int status_index_state(struct status_index *idx, const char *id, const char *tenant)
{
    pthread_rwlock_rdlock(&idx->lock);
    const struct entry *e = find(idx, id, tenant);
    int rc = e ? e->state : -ENOENT;
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

int status_index_position(struct status_index *idx, const char *id, const char *tenant,
                          int64_t now_ms, uint32_t *position, double *wait_s)
{
    pthread_rwlock_rdlock(&idx->lock);
    const struct entry *e = find(idx, id, tenant);
    int rc = e && e->state == ST_QUEUED ? 0 : -ENOENT;
    if (rc == 0) estimate(idx, e, now_ms, position, wait_s);
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

static void brief_of(const struct status_index *idx, const struct entry *e, struct status_brief *b)
{
    memcpy(b->id, e->id, ID_LEN);
    b->id[ID_LEN] = '\0';
    b->state = (enum req_state)e->state;
    b->attempts = e->attempts;
    b->created_ms = created_of(e);
    b->updated_ms = e->updated_ms;
    b->route = idx->routes.s[e->route];
    b->tenant = idx->tenants.s[e->tenant];
    b->replays = (int)e->replays;
    b->purged = e->purged;
    b->result = result_of(e); /* NULL too when it left memory */
    b->error = error_of(e);
}

int status_index_brief(struct status_index *idx, const char *id, const char *tenant,
                       struct status_brief *out)
{
    pthread_rwlock_rdlock(&idx->lock);
    const struct entry *e = find(idx, id, tenant);
    if (e) brief_of(idx, e, out);
    pthread_rwlock_unlock(&idx->lock);
    return e ? 0 : -ENOENT;
}

void status_index_scan(struct status_index *idx, const char *tenant, status_visit_fn visit,
                       void *arg)
{
    pthread_rwlock_rdlock(&idx->lock);
    int t = strtab_find(&idx->tenants, tenant);
    for (size_t n = 0; t >= 0 && n < idx->count; n++) {
        const struct entry *e = &idx->ring[(idx->head + n) % idx->cap];
        if (e->tenant != t || e->state == ST_GONE) continue;
        struct status_brief b;
        brief_of(idx, e, &b);
        visit(arg, &b);
    }
    pthread_rwlock_unlock(&idx->lock);
}

void status_index_scan_all(struct status_index *idx, const char *after, status_scan_fn visit,
                           void *arg)
{
    pthread_rwlock_rdlock(&idx->lock);
    size_t n = 0;
    bool found = false;
    if (after && strnlen(after, ID_LEN + 1) == ID_LEN) {
        size_t i = probe(idx, after, &found);
        /* Ring slots count from the head, wrapping: its successor is next. */
        if (found) n = (idx->table[i] + idx->cap - idx->head) % idx->cap + 1;
    }
    for (; n < idx->count; n++) {
        const struct entry *e = &idx->ring[(idx->head + n) % idx->cap];
        if (e->state == ST_GONE) continue;
        struct status_brief b;
        brief_of(idx, e, &b);
        if (!visit(arg, &b)) break;
    }
    pthread_rwlock_unlock(&idx->lock);
}

size_t status_index_open(struct status_index *idx, const char *tenant)
{
    pthread_rwlock_rdlock(&idx->lock);
    int t = strtab_find(&idx->tenants, tenant);
    size_t n = t >= 0 ? idx->tinfo[t].open : 0;
    pthread_rwlock_unlock(&idx->lock);
    return n;
}

int status_index_set_retention(struct status_index *idx, const char *tenant, int64_t retention_ms)
{
    uint16_t t;
    if (retention_ms < 0) return -EINVAL;
    pthread_rwlock_wrlock(&idx->lock);
    int rc = intern(&idx->tenants, tenant, &t, &idx->tinfo);
    if (!rc && retention_ms < idx->retention_ms) {
        idx->tinfo[t].retention_ms = retention_ms;
        idx->short_retention = true;
    }
    pthread_rwlock_unlock(&idx->lock);
    return rc;
}

double status_index_drain_rate(struct status_index *idx, const char *route, int64_t now_ms)
{
    double rate = 0;
    pthread_rwlock_rdlock(&idx->lock);
    for (size_t i = 0; i < idx->routes.n; i++)
        if (strcmp(idx->routes.s[i], route) == 0) rate = drain_rate(&idx->drains[i], now_ms);
    pthread_rwlock_unlock(&idx->lock);
    return rate;
}

uint32_t status_index_arrivals(struct status_index *idx, const char *route)
{
    uint32_t n = 0;
    pthread_rwlock_rdlock(&idx->lock);
    for (size_t i = 0; i < idx->routes.n; i++)
        if (strcmp(idx->routes.s[i], route) == 0) n = idx->drains[i].arrived;
    pthread_rwlock_unlock(&idx->lock);
    return n;
}

/* sweep drops the entries of tenants with a shorter retention that are
 * past it; they are not at the head, so the whole ring is walked (about a
 * millisecond per 100,000 entries, every few seconds). */
static void sweep(struct status_index *idx, int64_t now_ms)
{
    for (size_t n = 0; n < idx->count; n++) {
        size_t pos = (idx->head + n) % idx->cap;
        const struct entry *e = &idx->ring[pos];
        int64_t r = e->state == ST_GONE ? 0 : idx->tinfo[e->tenant].retention_ms;
        if (r && created_of(e) < now_ms - r) drop(idx, pos);
    }
}

void status_index_expire(struct status_index *idx, int64_t now_ms)
{
    pthread_rwlock_wrlock(&idx->lock);
    idx->horizon_ms =
        now_ms < INT64_MIN + idx->retention_ms ? INT64_MIN : now_ms - idx->retention_ms;
    while (idx->count > 0 && created_of(&idx->ring[idx->head]) < idx->horizon_ms)
        evict_head(idx);
    if (idx->short_retention) sweep(idx, now_ms);
    while (idx->count > 0 && idx->ring[idx->head].state == ST_GONE)
        evict_head(idx);
    pthread_rwlock_unlock(&idx->lock);
}

size_t status_index_count(struct status_index *idx)
{
    pthread_rwlock_rdlock(&idx->lock);
    size_t n = idx->count;
    pthread_rwlock_unlock(&idx->lock);
    return n;
}

size_t status_index_bytes(struct status_index *idx)
{
    pthread_rwlock_rdlock(&idx->lock);
    size_t n = sizeof *idx + idx->cap * sizeof *idx->ring + (idx->mask + 1) * sizeof *idx->table +
               idx->tenants.cap * (sizeof(char *) + sizeof *idx->tinfo) + idx->tenants.bytes +
               idx->routes.cap * sizeof(char *) + idx->routes.bytes +
               idx->n_drains * sizeof *idx->drains + idx->text_bytes;
    pthread_rwlock_unlock(&idx->lock);
    return n;
}
