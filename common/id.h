/* id.h: tracking IDs. An ID is 32 URL-safe characters from an alphabet in
 * ASCII order ("-0-9A-Z_a-z"), encoding 24 bytes: a 48-bit big-endian Unix
 * time in milliseconds followed by 144 random bits from the OS. IDs made later
 * sort later as plain strings, and the random part makes them unguessable. */
#ifndef SLUICE_ID_H
#define SLUICE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_LEN 32

/* id_new writes a NUL-terminated ID into out (ID_LEN + 1 bytes) for time now_ms
 * (clamped to [0, 2^48 - 1]). Returns 0, or -EIO when the OS random source fails. */
__attribute__((warn_unused_result)) int id_new(char out[ID_LEN + 1], int64_t now_ms);
/* ID_BYTES is what an ID encodes; id_encode writes the ID of raw bytes (the
 * first 6 are read as the time), for IDs derived rather than drawn
 * (ingress/idempotency.h: their time part is not their creation time). */
#define ID_BYTES 24
void id_encode(const unsigned char raw[ID_BYTES], char out[ID_LEN + 1]);
/* id_valid tells whether s (len bytes, not necessarily NUL-terminated) is a well-formed ID. */
bool id_valid(const char *s, size_t len);
/* id_time_ms returns the creation time in ms encoded in a valid ID (-1 if its
 * first 8 characters are not in the alphabet). */
int64_t id_time_ms(const char *id);

#endif
