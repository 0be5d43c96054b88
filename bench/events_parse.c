/* events_parse.c: how fast the ingress's events reader decodes the stream,
 * alone: one worker's events message of 100 outcomes (each with a result of
 * headers and a small JSON body, as workers write them) parsed by
 * event_parse, the events thread's hot path, over and over. It prints
 * {"events_per_s":..,"ns_per_event":..} so a change to common/jscan.c or
 * common/event.c can be compared side by side with the old build.
 *
 *   events_parse [--seconds S]      (default 2)
 *   events_parse --messages N       exactly N messages, for an instruction
 *                                   count (valgrind) where timing is noisy */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "event.h"

#define EVENTS 100

static void count(void *arg, const struct status_update *u)
{
    (void)u;
    (*(long *)arg)++;
}

/* build_message writes a message of EVENTS succeeded outcomes into b. */
static int build_message(struct buf *b)
{
    static const char result[] =
        "{\"status\":200,\"headers\":{\"Content-Type\":\"application/json\",\"Content-Length\":"
        "\"57\",\"Date\":\"Mon, 23 Nov 2026 10:43:50 GMT\"},\"body\":{\"ok\":true,\"order\":"
        "\"A-1042\",\"items\":[1,2,3],\"note\":\"caf\\u00e9 \\\"x\\\"\"},\"truncated\":false}";
    char id[] = "-P77-JEamh1cGyWBMKDa1FT6xIQqt000";
    int rc = event_begin(b);
    for (int i = 0; i < EVENTS && rc == 0; i++) {
        snprintf(id + 29, 4, "%03d", i);
        struct status_update u = {.id = id,
                                  .state = ST_SUCCEEDED,
                                  .tenant = "acme",
                                  .route = "orders",
                                  .created_ms = 1795430630374 + i,
                                  .ts_ms = 1795430630386 + i,
                                  .attempts = 1,
                                  .result_json = result,
                                  .result_len = sizeof result - 1};
        rc = event_append(b, &u);
    }
    return rc ? rc : event_end(b);
}

int main(int argc, char **argv)
{
    long seconds = 2, messages = 0, events = 0, rounds = 0;
    if (argc == 3 && strcmp(argv[1], "--seconds") == 0) {
        if (bench_parse_long("events_parse", "--seconds", argv[2], 1, 600, &seconds) < 0) return 2;
    } else if (argc == 3 && strcmp(argv[1], "--messages") == 0) {
        if (bench_parse_long("events_parse", "--messages", argv[2], 1, 100000000, &messages) < 0)
            return 2;
    } else if (argc != 1) {
        fprintf(stderr, "usage: events_parse [--seconds S | --messages N]\n");
        return 2;
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    if (build_message(&b) < 0) {
        fprintf(stderr, "events_parse: out of memory\n");
        return 1;
    }
    int64_t start = clock_mono_ms(), end = start + seconds * 1000, now = start;
    while (messages ? rounds < messages : now < end) {
        for (int i = 0; i < (messages ? 1 : 100); i++)
            if (event_parse(b.data, b.len, count, NULL, &events) != EVENTS) {
                fprintf(stderr, "events_parse: the message does not parse\n");
                return 1;
            }
        rounds += messages ? 1 : 100;
        now = clock_mono_ms();
    }
    double s = now > start ? (double)(now - start) / 1000.0 : 0.001;
    printf("{\"message_bytes\":%zu,\"events\":%ld,\"events_per_s\":%.0f,\"ns_per_event\":%.1f}\n",
           b.len, events, (double)events / s, s * 1e9 / (double)events);
    buf_free(&b);
    return rounds > 0 ? 0 : 1;
}
