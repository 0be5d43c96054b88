/* fuzz_envelope_json.c: libFuzzer target of the envelope form's decoder
 * (envelope_from_json, POST /v1/requests). Whatever it accepts must survive
 * the trip to an AMQP message and back (envelope_to_amqp, then the worker's
 * envelope_from_amqp), as the ingress promises: a failure there aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct envelope e, back;
    struct env_error err;
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    envelope_init(&e);
    envelope_init(&back);
    init_amqp_pool(&pool, 4096);
    /* what the ingress sets before the publish (handlers.c publish) */
    e.tenant = strdup("fuzz");
    memcpy(e.id, "0123456789ABCDEFGHIJKLMNOPQRSTUV", ID_LEN + 1);
    e.created_ms = 1800000000000;
    if (envelope_from_json(&e, (const char *)data, size, &err) == 0) {
        if (envelope_to_amqp(&e, &pool, &props) == 0) {
            amqp_bytes_t body = {e.body_len, e.body};
            if (envelope_from_amqp(&back, &props, body, &err) != 0) abort();
            if (strcmp(back.route, e.route) || strcmp(back.path, e.path) ||
                back.body_len != e.body_len || back.n_headers != e.n_headers)
                abort();
        }
    }
    empty_amqp_pool(&pool);
    envelope_free(&back);
    envelope_free(&e);
    return 0;
}
