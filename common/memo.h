/* memo.h: a bounded map from a 32-byte key to a small value, each entry
 * with its own expiry time: what the ingress remembers beside the status
 * index, for idempotency keys and cached reads (ingress/idempotency.h,
 * ingress/cache.h), and the cancelled requests of the arbiter (arbiter.h).
 * Entries live in insertion order; the oldest is evicted when the map is
 * full, and expired ones are dropped from the oldest end by memo_expire (an
 * expired entry is never returned). Thread-safe (one internal mutex: every
 * operation is a hash probe). */
#ifndef SLUICE_MEMO_H
#define SLUICE_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMO_KEY 32
#define MEMO_VALUE 40

struct memo;

/* memo_new returns NULL on ENOMEM or when max_entries is 0 or above 2^30. */
struct memo *memo_new(size_t max_entries);
void memo_free(struct memo *m);

/* memo_put stores value (MEMO_VALUE bytes) under key until expires_ms,
 * replacing what key held. 0, or -ENOMEM (nothing changed). */
__attribute__((warn_unused_result)) int memo_put(struct memo *m, const void *key, const void *value,
                                                 int64_t expires_ms);
/* memo_get copies key's value into value and returns true, unless key is
 * absent or expired at now_ms. */
bool memo_get(struct memo *m, const void *key, void *value, int64_t now_ms);
/* memo_update calls fn(value, arg) under the lock on key's live value, and
 * stores it again if fn returns true: a read-modify-write no other thread
 * interleaves with. Returns false when key is absent or expired. */
bool memo_update(struct memo *m, const void *key, int64_t now_ms,
                 bool (*fn)(void *value, void *arg), void *arg);
/* memo_del forgets key (nothing if absent). */
void memo_del(struct memo *m, const void *key);
/* memo_expire drops the oldest entries while they are expired at now_ms. */
void memo_expire(struct memo *m, int64_t now_ms);
size_t memo_count(struct memo *m);

#endif
