/* memo.c: a bounded map with expiry (see memo.h). Entries sit in a ring in
 * insertion order, found through an open-addressing table of ring slots
 * (linear probing, backward-shift deletion, load <= 0.5), the layout of the
 * status index. A replaced or deleted entry leaves a dead slot in the ring,
 * popped when it reaches the oldest end. */
#include "memo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY UINT32_MAX
#define RING_START 16
#define MAX_ENTRIES ((size_t)1 << 30)

struct slot {
    unsigned char key[MEMO_KEY];
    unsigned char value[MEMO_VALUE];
    int64_t expires_ms;
    bool live;
};

struct memo {
    pthread_mutex_t lock;
    struct slot *ring;
    size_t cap, head, count, max;
    uint32_t *table;
    size_t mask;
};

static uint64_t hash_key(const unsigned char *k)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (int i = 0; i < MEMO_KEY; i++)
        h = (h ^ k[i]) * 1099511628211u;
    return h ^ (h >> 32);
}

static size_t table_size(size_t cap)
{
    size_t n = 1;
    while (n < 2 * cap)
        n *= 2;
    return n;
}

static size_t probe(const struct memo *m, const unsigned char *key, bool *found)
{
    size_t i = hash_key(key) & m->mask;
    while (m->table[i] != EMPTY) {
        if (memcmp(m->ring[m->table[i]].key, key, MEMO_KEY) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & m->mask;
    }
    *found = false;
    return i;
}

static void table_delete(struct memo *m, size_t i)
{
    for (size_t j = (i + 1) & m->mask; m->table[j] != EMPTY; j = (j + 1) & m->mask) {
        size_t k = hash_key(m->ring[m->table[j]].key) & m->mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->table[i] = m->table[j];
            i = j;
        }
    }
    m->table[i] = EMPTY;
}

/* kill takes the live entry at ring slot pos out of the table. */
static void kill(struct memo *m, size_t pos)
{
    struct slot *s = &m->ring[pos];
    if (!s->live) return;
    bool found;
    size_t i = probe(m, s->key, &found);
    if (found && m->table[i] == pos) table_delete(m, i);
    s->live = false;
}

static void pop_head(struct memo *m)
{
    kill(m, m->head);
    m->head = (m->head + 1) % m->cap;
    m->count--;
}

static int grow(struct memo *m)
{
    size_t cap = m->cap * 2 < m->max ? m->cap * 2 : m->max;
    size_t tsize = table_size(cap);
    struct slot *ring = malloc(cap * sizeof *ring);
    uint32_t *table = malloc(tsize * sizeof *table);
    if (!ring || !table) {
        free(ring);
        free(table);
        return -ENOMEM;
    }
    memset(table, 0xff, tsize * sizeof *table);
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++) {
        const struct slot *s = &m->ring[(m->head + i) % m->cap];
        if (s->live) ring[n++] = *s; /* dead slots are left behind */
    }
    free(m->ring);
    free(m->table);
    m->ring = ring;
    m->table = table;
    m->cap = cap;
    m->head = 0;
    m->count = n;
    m->mask = tsize - 1;
    for (size_t i = 0; i < n; i++) {
        bool found;
        m->table[probe(m, ring[i].key, &found)] = (uint32_t)i;
    }
    return 0;
}

struct memo *memo_new(size_t max_entries)
{
    if (max_entries == 0 || max_entries > MAX_ENTRIES) return NULL;
    struct memo *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->max = max_entries;
    m->cap = max_entries < RING_START ? max_entries : RING_START;
    m->mask = table_size(m->cap) - 1;
    m->ring = malloc(m->cap * sizeof *m->ring);
    m->table = malloc((m->mask + 1) * sizeof *m->table);
    if (!m->ring || !m->table || pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->ring);
        free(m->table);
        free(m);
        return NULL;
    }
    memset(m->table, 0xff, (m->mask + 1) * sizeof *m->table);
    return m;
}

void memo_free(struct memo *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m->ring);
    free(m->table);
    free(m);
}

static int put_locked(struct memo *m, const void *key, const void *value, int64_t expires_ms)
{
    bool found;
    size_t i = probe(m, key, &found);
    if (found) kill(m, m->table[i]);
    if (m->count == m->cap) {
        if (m->cap < m->max) {
            int rc = grow(m);
            if (rc) return rc;
        }
        /* Still full (at max, or grow left no dead slot): evict the oldest. */
        while (m->count == m->cap)
            pop_head(m);
    }
    size_t pos = (m->head + m->count) % m->cap;
    struct slot *s = &m->ring[pos];
    memcpy(s->key, key, MEMO_KEY);
    memcpy(s->value, value, MEMO_VALUE);
    s->expires_ms = expires_ms;
    s->live = true;
    m->table[probe(m, s->key, &found)] = (uint32_t)pos;
    m->count++;
    return 0;
}

int memo_put(struct memo *m, const void *key, const void *value, int64_t expires_ms)
{
    pthread_mutex_lock(&m->lock);
    int rc = put_locked(m, key, value, expires_ms);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* live_slot returns key's slot if live at now_ms; call with the lock held. */
static struct slot *live_slot(struct memo *m, const void *key, int64_t now_ms)
{
    bool found;
    size_t i = probe(m, key, &found);
    if (!found) return NULL;
    struct slot *s = &m->ring[m->table[i]];
    return s->expires_ms > now_ms ? s : NULL;
}

bool memo_get(struct memo *m, const void *key, void *value, int64_t now_ms)
{
    pthread_mutex_lock(&m->lock);
    struct slot *s = live_slot(m, key, now_ms);
    if (s) memcpy(value, s->value, MEMO_VALUE);
    pthread_mutex_unlock(&m->lock);
    return s != NULL;
}

bool memo_update(struct memo *m, const void *key, int64_t now_ms,
                 bool (*fn)(void *value, void *arg), void *arg)
{
    pthread_mutex_lock(&m->lock);
    struct slot *s = live_slot(m, key, now_ms);
    if (s) {
        unsigned char v[MEMO_VALUE];
        memcpy(v, s->value, MEMO_VALUE);
        if (fn(v, arg)) memcpy(s->value, v, MEMO_VALUE);
    }
    pthread_mutex_unlock(&m->lock);
    return s != NULL;
}

void memo_del(struct memo *m, const void *key)
{
    pthread_mutex_lock(&m->lock);
    bool found;
    size_t i = probe(m, key, &found);
    if (found) kill(m, m->table[i]);
    pthread_mutex_unlock(&m->lock);
}

void memo_expire(struct memo *m, int64_t now_ms)
{
    pthread_mutex_lock(&m->lock);
    while (m->count > 0 && (!m->ring[m->head].live || m->ring[m->head].expires_ms <= now_ms))
        pop_head(m);
    pthread_mutex_unlock(&m->lock);
}

size_t memo_count(struct memo *m)
{
    pthread_mutex_lock(&m->lock);
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++)
        n += m->ring[(m->head + i) % m->cap].live;
    pthread_mutex_unlock(&m->lock);
    return n;
}
