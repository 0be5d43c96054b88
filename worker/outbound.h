/* outbound.h: the headers of every call the worker makes (a request's
 * backend call; later its batch, results and callback calls), written in
 * one place so that every call is built in the same order:
 *   1. the request's headers as the client sent them (those the ingress
 *      forwards) and its Content-Type, less any traceparent, tracestate or
 *      webhook-* header the client sent (sluice writes those);
 *   2. the route's remove_headers drop headers of step 1 by name (any case);
 *   3. the route's set_headers add a header or replace every header of that
 *      name from step 1;
 *   4. Idempotency-Key: the tracking ID (a request's own call);
 *   5. traceparent: the request's trace ID with a new span ID for this
 *      call, and the client's tracestate as it came;
 *   6. webhook-id, webhook-timestamp and webhook-signature when the route
 *      has signing_secrets (common/sign.h), over the body exactly as sent.
 * Configuration cannot name the headers of steps 4-6 (cfg_header_reserved),
 * so nothing undoes them. Tested without a network in test_outbound.c. */
#ifndef SLUICE_OUTBOUND_H
#define SLUICE_OUTBOUND_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "trace.h"

/* outbound_call describes one call; every pointer is borrowed. */
struct outbound_call {
    const struct cfg_route *route;
    const struct env_header *headers; /* step 1; NULL when n_headers is 0 */
    size_t n_headers;
    const char *content_type;    /* NULL: none */
    const char *idempotency_key; /* NULL: none */
    const struct trace *trace;   /* NULL: no traceparent */
    const char *tracestate;      /* NULL: none */
    const char *msg_id;          /* webhook-id: tracking or delivery ID */
    const void *body;
    size_t body_len;
    int64_t now_s;     /* webhook-timestamp */
    bool no_signature; /* an item inside a batch call: the batch is signed */
};

/* outbound_headers appends the call's headers ("Name: value") to *list
 * (which may start NULL; the caller frees it with curl_slist_free_all
 * either way) and writes the call's span ID to span when a trace is given.
 * Returns 0, or -1 when out of memory or OpenSSL failed. */
__attribute__((warn_unused_result)) int outbound_headers(const struct outbound_call *c,
                                                         struct curl_slist **list,
                                                         char span[TRACE_SPAN_HEX + 1]);

/* outbound_trace finds a request's trace: the client's valid traceparent
 * among its headers, or else one derived from its tracking ID, so that every
 * attempt, on any worker, continues the same trace sluice started for it.
 * *tracestate points into e's headers (NULL: none or invalid). */
void outbound_trace(const struct envelope *e, struct trace *t, const char **tracestate);

#endif
