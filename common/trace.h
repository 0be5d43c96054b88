/* trace.h: W3C Trace Context (https://www.w3.org/TR/trace-context/). A
 * client's `traceparent` travels with its request; every call sluice makes
 * for the request carries the same trace ID with a span ID of its own, so
 * the backend's spans join the client's trace. A request that came without
 * one gets a new trace. tracestate is passed on untouched (only checked for
 * size and characters). */
#ifndef SLUICE_TRACE_H
#define SLUICE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_ID_HEX 32
#define TRACE_SPAN_HEX 16
/* "00-" trace "-" span "-" flags, and the NUL */
#define TRACEPARENT_LEN (2 + 1 + TRACE_ID_HEX + 1 + TRACE_SPAN_HEX + 1 + 2)
#define TRACESTATE_MAX 512

struct trace {
    char trace_id[TRACE_ID_HEX + 1];
    char span_id[TRACE_SPAN_HEX + 1]; /* the parent of the calls sluice makes */
    uint8_t flags;
};

/* trace_parse reads a traceparent header value (n bytes). Version 00 must be
 * exactly 55 characters; a later version may carry more fields after the
 * flags, which are dropped. All-zero IDs and version ff are refused.
 * Returns 0, or -1 when the value is not a valid traceparent. */
int trace_parse(struct trace *t, const char *s, size_t n);
/* trace_new starts a trace (random trace and span IDs, sampled flag set).
 * Returns 0, or -1 when the OS random source fails. */
int trace_new(struct trace *t);
/* trace_child writes the traceparent of one call (TRACEPARENT_LEN bytes with
 * NUL): t's trace ID and flags with a new random span ID, also copied to
 * span (TRACE_SPAN_HEX + 1 bytes) when not NULL, for the logs. Returns 0 or -1. */
int trace_child(const struct trace *t, char out[TRACEPARENT_LEN + 1], char *span);
/* trace_state_valid tells whether a tracestate value (n bytes) may be passed on. */
bool trace_state_valid(const char *s, size_t n);

#endif
