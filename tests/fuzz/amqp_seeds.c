/* amqp_seeds.c: writes the seed corpus of fuzz_envelope_amqp: each envelope
 * document of tests/fuzz/envelope_json/ that the envelope form accepts,
 * turned into the message the worker receives (the basic properties in
 * AMQP's encoding, after their two-byte length, then the body).
 *
 *   amqp_seeds OUTDIR SEED.json...   (make fuzz-seeds) */
#include <amqp.h>
#include <amqp_framing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

static int write_seed(const char *dir, int n, const struct envelope *e)
{
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    static char raw[1 << 17];
    int rc = -1;
    init_amqp_pool(&pool, 4096);
    if (envelope_to_amqp(e, &pool, &props) == 0) {
        amqp_bytes_t out = {sizeof raw - 2, raw + 2};
        int len = amqp_encode_properties(AMQP_BASIC_CLASS, &props, out);
        if (len >= 0 && len <= 0xffff && (size_t)len + 2 + e->body_len <= sizeof raw) {
            char path[4096];
            raw[0] = (char)(len >> 8);
            raw[1] = (char)(len & 0xff);
            if (e->body_len) memcpy(raw + 2 + len, e->body, e->body_len);
            snprintf(path, sizeof path, "%s/seed-%02d", dir, n);
            FILE *f = fopen(path, "wb");
            if (f &&
                fwrite(raw, 1, (size_t)len + 2 + e->body_len, f) == (size_t)len + 2 + e->body_len)
                rc = 0;
            if (f) fclose(f);
        }
    }
    empty_amqp_pool(&pool);
    return rc;
}

int main(int argc, char **argv)
{
    int n = 0;
    for (int i = 2; i < argc; i++) {
        static char text[1 << 20];
        FILE *f = fopen(argv[i], "rb");
        size_t len = f ? fread(text, 1, sizeof text, f) : 0;
        if (f) fclose(f);
        struct envelope e;
        struct env_error err;
        envelope_init(&e);
        e.tenant = strdup("tenant-a");
        e.created_ms = 1800000000000;
        e.attempts = i % 3;
        memcpy(e.id, "0123456789ABCDEFGHIJKLMNOPQRSTUV", 33);
        if (envelope_from_json(&e, text, len, &err) == 0 && write_seed(argv[1], n, &e) == 0) n++;
        envelope_free(&e);
    }
    printf("amqp_seeds: %d seeds in %s\n", n, argv[1]);
    return n > 0 ? 0 : 1;
}
