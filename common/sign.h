/* sign.h: Standard Webhooks signatures (https://www.standardwebhooks.com), so
 * a backend can tell a call from sluice from a forged one. A call carries
 *   webhook-id: <message id>   webhook-timestamp: <Unix seconds>
 *   webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body"> ...
 * one "v1," signature per key, space-separated, so a backend keeps verifying
 * while its secret is rotated. Secrets are "whsec_" followed by the base64 of
 * the key bytes, as the scheme defines; they are never logged. */
#ifndef SLUICE_SIGN_H
#define SLUICE_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SIGN_KEY_MIN 16
#define SIGN_KEY_MAX 64

struct sign_key {
    unsigned char bytes[SIGN_KEY_MAX];
    size_t len;
};

/* sign_key_parse decodes a "whsec_<base64>" secret of SIGN_KEY_MIN..SIGN_KEY_MAX
 * bytes. Returns 0, or -1 with a message in err that does not quote the secret. */
__attribute__((warn_unused_result)) int sign_key_parse(struct sign_key *k, const char *secret,
                                                       char *err, size_t errlen);
/* sign_append appends the webhook-signature value for the message to out:
 * one "v1,<base64>" per key, space-separated. Returns 0, a buf error, or -EIO
 * when OpenSSL fails. */
__attribute__((warn_unused_result)) int sign_append(struct buf *out, const struct sign_key *keys,
                                                    size_t n_keys, const char *msg_id,
                                                    int64_t timestamp_s, const void *body,
                                                    size_t len);

#endif
