/* keylimits.c: per-key token buckets shared among the live replicas, and the
 * queue quota (see keylimits.h). Each key has its own lock; the table of
 * replicas heard from has one. */
#include "keylimits.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "ratelimit.h"

#define MAX_REPLICAS 64
#define NAME_MAX_LEN 64

struct replica {
    char name[NAME_MAX_LEN + 1];
    int64_t ts_ms; /* its newest heartbeat */
};

struct key_state {
    pthread_mutex_t lock;
    struct tbucket bucket;
    int shared_by;       /* replicas the bucket's rate is divided by */
    atomic_long pending; /* submissions admitted and not yet answered */
};

struct limits {
    const struct cfg *cfg;
    struct status_index *index;
    char self[NAME_MAX_LEN + 1];
    pthread_mutex_t lock; /* replicas */
    struct replica replicas[MAX_REPLICAS];
    struct key_state *keys; /* one per cfg->keys[i] */
    struct metric *m_replicas;
};

struct limits *limits_new(const struct cfg *cfg, struct status_index *index,
                          struct metrics *metrics, const char *instance)
{
    struct limits *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    if (metrics) {
        l->m_replicas = metrics_gauge(metrics, "sluice_ingress_replicas",
                                      "Ingress replicas sharing the keys' rates (heard from on "
                                      "the events stream, this one included).",
                                      NULL);
        if (!l->m_replicas) {
            free(l);
            return NULL;
        }
        metric_set(l->m_replicas, 1);
    }
    l->cfg = cfg;
    l->index = index;
    snprintf(l->self, sizeof l->self, "%s", instance);
    l->keys = calloc(cfg->n_keys ? cfg->n_keys : 1, sizeof *l->keys);
    if (!l->keys || pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l->keys);
        free(l);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_keys; i++) {
        const struct cfg_key *k = &cfg->keys[i];
        pthread_mutex_init(&l->keys[i].lock, NULL);
        tbucket_init(&l->keys[i].bucket, k->rate_per_s, (double)k->burst, 0);
        l->keys[i].shared_by = 1;
    }
    return l;
}

void limits_free(struct limits *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->cfg->n_keys; i++)
        pthread_mutex_destroy(&l->keys[i].lock);
    pthread_mutex_destroy(&l->lock);
    free(l->keys);
    free(l);
}

void limits_heartbeat(struct limits *l, const char *instance, int64_t ts_ms, int64_t now_ms)
{
    if (!strcmp(instance, l->self) || now_ms - ts_ms > LIMITS_ALIVE_MS) return;
    pthread_mutex_lock(&l->lock);
    struct replica *slot = NULL, *oldest = &l->replicas[0];
    for (int i = 0; i < MAX_REPLICAS && !slot; i++) {
        struct replica *r = &l->replicas[i];
        if (!strncmp(r->name, instance, NAME_MAX_LEN)) slot = r;
        if (r->ts_ms < oldest->ts_ms) oldest = r;
    }
    if (!slot) {
        slot = oldest;
        snprintf(slot->name, sizeof slot->name, "%s", instance);
        slot->ts_ms = 0;
    }
    if (ts_ms > slot->ts_ms) slot->ts_ms = ts_ms;
    pthread_mutex_unlock(&l->lock);
}

int limits_replicas(struct limits *l, int64_t now_ms)
{
    int n = 1; /* this one */
    pthread_mutex_lock(&l->lock);
    for (int i = 0; i < MAX_REPLICAS; i++)
        n += l->replicas[i].name[0] && now_ms - l->replicas[i].ts_ms <= LIMITS_ALIVE_MS;
    pthread_mutex_unlock(&l->lock);
    if (l->m_replicas) metric_set(l->m_replicas, n);
    return n;
}

static struct key_state *state_of(struct limits *l, const struct cfg_key *key)
{
    return &l->keys[key - l->cfg->keys];
}

/* share sets the bucket to this replica's share; call with the key's lock. */
static void share(struct key_state *ks, const struct cfg_key *key, int n, int64_t now_us)
{
    if (n == ks->shared_by) return;
    double burst = key->burst > 0 ? (double)key->burst : key->rate_per_s;
    burst = burst / n < 1 ? 1 : burst / n;
    tbucket_set(&ks->bucket, key->rate_per_s / n, burst, now_us);
    ks->shared_by = n;
}

/* describe fills info from the bucket (the key's lock held). */
static void describe(struct key_state *ks, const struct cfg_key *key, int64_t now_us,
                     struct limit_info *info)
{
    double burst = key->burst > 0 ? (double)key->burst : key->rate_per_s;
    double tokens = tbucket_tokens(&ks->bucket, now_us), local = ks->bucket.burst;
    info->limited = true;
    info->limit = (long)(burst < 1 ? 1 : burst);
    double left = floor(tokens * ks->shared_by);
    info->remaining = left < 0 ? 0 : left > (double)info->limit ? info->limit : (long)left;
    info->reset_s = (long)ceil((local - tokens) / ks->bucket.rate);
    if (info->reset_s < 0) info->reset_s = 0;
    info->retry_after_s = (long)((tbucket_wait_us(&ks->bucket, 1, now_us) + 999999) / 1000000);
    if (info->retry_after_s < 1) info->retry_after_s = 1;
}

/* queued is the tenant's requests not yet final, seen from this replica:
 * those the index knows, and those being published by the tenant's API keys
 * and by every JWT key (whose tokens may name any tenant: an over-count for
 * the milliseconds of a publish, never an under-count). */
static long queued(struct limits *l, const char *tenant)
{
    long n = (long)status_index_open(l->index, tenant);
    for (size_t i = 0; i < l->cfg->n_keys; i++) {
        const struct cfg_key *k = &l->cfg->keys[i];
        if (k->is_jwt || !strcmp(k->tenant, tenant)) n += atomic_load(&l->keys[i].pending);
    }
    return n;
}

bool limits_rate(struct limits *l, const struct cfg_key *key, int64_t now_ms, int64_t now_us,
                 struct limit_info *info)
{
    info->limited = false;
    if (key->rate_per_s <= 0) return true;
    struct key_state *ks = state_of(l, key);
    int n = limits_replicas(l, now_ms);
    pthread_mutex_lock(&ks->lock);
    share(ks, key, n, now_us);
    bool ok = tbucket_take(&ks->bucket, 1, now_us);
    describe(ks, key, now_us, info);
    pthread_mutex_unlock(&ks->lock);
    return ok;
}

bool limits_queue(struct limits *l, const struct cfg_key *key, const char *tenant)
{
    if (key->max_queued > 0 && queued(l, tenant) >= key->max_queued) return false;
    atomic_fetch_add(&state_of(l, key)->pending, 1);
    return true;
}

void limits_done(struct limits *l, const struct cfg_key *key)
{
    atomic_fetch_sub(&state_of(l, key)->pending, 1);
}

void limits_peek(struct limits *l, const struct cfg_key *key, int64_t now_ms, int64_t now_us,
                 struct limit_info *info)
{
    info->limited = false;
    if (key->rate_per_s <= 0) return;
    struct key_state *ks = state_of(l, key);
    int n = limits_replicas(l, now_ms);
    pthread_mutex_lock(&ks->lock);
    share(ks, key, n, now_us);
    describe(ks, key, now_us, info);
    pthread_mutex_unlock(&ks->lock);
}
