/* guard.h: the checks every request passes before anything reads it: its
 * size (the request target and the header block, within the configured
 * limits) and its framing. A request whose body length two parties could
 * read differently (RFC 9112 section 6.3: two different Content-Length
 * values, Content-Length beside Transfer-Encoding, a transfer coding other
 * than chunked) is how requests are smuggled past a proxy; libmicrohttpd
 * 0.9.75 takes such requests, so they are refused here with a 400 and the
 * connection closed. */
#ifndef SLUICE_GUARD_H
#define SLUICE_GUARD_H

#include <stddef.h>

#include "answer.h"
#include "config.h"
#include "envelope.h"

/* guard_check checks a request whose target is target_len bytes and whose
 * headers walk_headers(src, ...) walks, against cfg. Returns 0, or -1 with
 * a, the refusal to send: 414 uri_too_long, 431 headers_too_large, or 400
 * bad_framing with Connection: close. */
__attribute__((warn_unused_result)) int guard_check(const struct cfg_ingress *cfg,
                                                    size_t target_len, env_walk_fn walk_headers,
                                                    const void *src, struct answer *a);

#endif
