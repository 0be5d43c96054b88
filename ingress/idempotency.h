/* idempotency.h: the Idempotency-Key contract (docs/api.md "Idempotency").
 *
 * The tracking ID of a request with an idempotency key is derived, not
 * drawn: HMAC-SHA256(secret, tenant, key), so every replica gives the same
 * key of the same tenant the same ID, the status index merges two
 * submissions of it into one entry, and the backend sees one Idempotency-Key
 * however many replicas took the key. The secret is ingress.id_secret, or,
 * when empty, a hash of the namespace (what every replica of a deployment
 * shares without configuration; anyone who knows the namespace can then
 * compute a key's ID, which only matters to whoever holds the tenant's API
 * key, the only one who can read it).
 *
 * A fingerprint (SHA-256 of route, method, path, query, content type,
 * forwarded headers and body) tells the same request from a different one
 * under the same key. It travels in the "queued" event, so every replica
 * remembers each key's fingerprint for the status retention (the tenant's
 * when shorter) and answers a repeat the same way:
 *   same key, same fingerprint:  the original 202 again (nothing published);
 *   same key, other fingerprint: 422 idempotency_key_reused;
 *   same key, the first still waiting for its confirm on this replica:
 *                                409 idempotency_in_progress.
 * Thread-safe. */
#ifndef SLUICE_IDEMPOTENCY_H
#define SLUICE_IDEMPOTENCY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "id.h"

/* A fingerprint as it travels: 32 hex digits (128 bits of the SHA-256). */
#define IDEM_FP_LEN 32

struct idem;

/* idem_new reads the secret and the retentions from cfg (which must outlive
 * it); NULL on ENOMEM. */
struct idem *idem_new(const struct cfg *cfg);
void idem_free(struct idem *d);

/* idem_derive writes the tracking ID of key (len bytes) for tenant. */
void idem_derive(const struct idem *d, const char *tenant, const char *key, size_t len,
                 char out[ID_LEN + 1]);
/* idem_fingerprint writes e's fingerprint (headers in any order give the
 * same one; names are compared case-insensitively). -1 on ENOMEM. */
__attribute__((warn_unused_result)) int idem_fingerprint(const struct envelope *e,
                                                         char out[IDEM_FP_LEN + 1]);

enum idem_verdict {
    IDEM_NEW,         /* unknown: now pending on this replica; call idem_end */
    IDEM_REPLAY,      /* known with the same fingerprint: answer the original 202 */
    IDEM_REUSED,      /* known with another fingerprint: 422 */
    IDEM_IN_PROGRESS, /* pending on this replica: 409 */
    IDEM_ERROR,       /* out of memory: 500 */
};

/* idem_begin decides for the request id (derived) with fingerprint fp of
 * tenant; IDEM_NEW marks it pending until idem_end. */
enum idem_verdict idem_begin(struct idem *d, const char *id, const char *fp, const char *tenant,
                             int64_t now_ms);
/* idem_end settles a pending id: accepted (the broker confirmed: the key is
 * remembered) or not (forgotten, so that a retry is new). */
void idem_end(struct idem *d, const char *id, const char *tenant, bool accepted, int64_t now_ms);
/* idem_note remembers fp for id from the events stream (the first
 * fingerprint of a key is kept). */
void idem_note(struct idem *d, const char *id, const char *fp, const char *tenant,
               int64_t created_ms);
/* idem_expire forgets keys past their retention. */
void idem_expire(struct idem *d, int64_t now_ms);

#endif
