/* fuzz_event_parse.c: libFuzzer target of the events stream's reader
 * (event_parse), which every ingress replica runs on every message. */
#include <stdint.h>
#include <string.h>

#include "event.h"

static void on_update(void *arg, const struct status_update *u)
{
    size_t *n = arg;
    /* read what the status index and the status page copy */
    *n += (u->id ? strlen(u->id) : 0) + (u->tenant ? strlen(u->tenant) : 0) +
          (u->route ? strlen(u->route) : 0) + u->result_len + u->error_len;
}

static void on_marker(void *arg, const char *nonce)
{
    size_t *n = arg;
    *n += strlen(nonce);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    (void)event_parse((const char *)data, size, on_update, on_marker, &n);
    return 0;
}
