/* outurl.h: the allowlist check of a URL that a client names and sluice
 * will call (issue 13: a request's callback_url, checked by the ingress
 * against its route's callback_hosts before the request is accepted). The
 * URL is parsed with libcurl's own parser (curl_url), the one the worker's
 * call will use, so the host checked is the host called. The address the
 * host resolves to is checked later, at connect time (worker/netguard.h).
 * The ingress checks at submit (ingress/submit.c), the worker again before
 * each call (worker/deliver.c), since the configuration may have changed.
 * Tested in tests/unit/test_outurl.c. */
#ifndef SLUICE_OUTURL_H
#define SLUICE_OUTURL_H

#include "config.h"

/* OUTURL_MAX is the longest URL accepted, as for batch_url. */
#define OUTURL_MAX 2048

/* outurl_refusal tells whether url may be called under the allowlist hosts
 * (lower case, without a port, as cfg_strings of a route): it must be an
 * absolute http:// or https:// URL of at most OUTURL_MAX printable
 * characters, without user info, whose host (any case, one trailing dot
 * ignored) is one of hosts; an empty list allows none. Returns NULL when it
 * may, else a static reason fit for the client's error message. */
const char *outurl_refusal(const char *url, const struct cfg_strings *hosts);

#endif
