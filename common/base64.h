/* base64.h: RFC 4648 base64, the one codec every part of sluice uses: result
 * bodies that are not text, envelope bodies given as body_base64, and
 * Standard Webhooks secrets and signatures. */
#ifndef SLUICE_BASE64_H
#define SLUICE_BASE64_H

#include <stddef.h>

#include "buf.h"

/* base64_append appends p (n bytes) to b in the standard alphabet with
 * padding. Returns 0 or a buf error. */
__attribute__((warn_unused_result)) int base64_append(struct buf *b, const void *p, size_t n);
/* base64_decoded_max is the most bytes base64_decode writes for n characters. */
#define base64_decoded_max(n) ((n) / 4 * 3 + 3)
/* base64_decode decodes s (n characters, the standard or the URL-safe
 * alphabet) into out (base64_decoded_max(n) bytes). Padding may be left out,
 * but when present it must complete the last quantum, and leftover bits must
 * be zero, so each input has one meaning. Returns NULL with *outlen set, or
 * the problem ("unexpected character", "bad padding", ...). */
const char *base64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);

#endif
