/* fuzz_envelope_amqp.c: libFuzzer target of the worker's decoder
 * (envelope_from_amqp). The input is a message as it comes off the wire: two
 * bytes (big-endian) giving the length of the basic properties in AMQP's
 * encoding, those properties (decoded by rabbitmq-c, as the worker's
 * connection does), then the body. */
#include <amqp.h>
#include <amqp_framing.h>
#include <stdint.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t plen = (size_t)data[0] << 8 | data[1];
    if (plen > size - 2) return 0;
    amqp_pool_t pool;
    void *decoded = NULL;
    init_amqp_pool(&pool, 4096);
    amqp_bytes_t encoded = {plen, (void *)(data + 2)};
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, encoded, &decoded) == 0 && decoded) {
        struct envelope e;
        struct env_error err;
        envelope_init(&e);
        amqp_bytes_t body = {size - 2 - plen, (void *)(data + 2 + plen)};
        (void)envelope_from_amqp(&e, decoded, body, &err);
        envelope_free(&e);
    }
    empty_amqp_pool(&pool);
    return 0;
}
