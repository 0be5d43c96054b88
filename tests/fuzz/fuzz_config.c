/* fuzz_config.c: libFuzzer target of the configuration loader
 * (cfg_load_string): scalars, lists, keys (API and JWT) and routes (with
 * the edge's overlap check). A document it accepts is freed; one it refuses
 * must leave nothing behind (the leak checker would say). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *doc = malloc(size + 1), err[512];
    struct cfg c;
    if (!doc) return 0;
    memcpy(doc, data, size);
    doc[size] = '\0';
    if (cfg_load_string(&c, doc, "fuzz.json", err, sizeof err) == 0) cfg_free(&c);
    free(doc);
    return 0;
}
