/* netguard.h: the address check of outbound safety (issue 13): a call to a
 * host that only an allowlist vouches for (a callback or results URL) must
 * not reach a loopback, private or link-local address unless its route
 * allows it. The check runs on the address curl is about to connect to
 * (CURLOPT_OPENSOCKETFUNCTION), after DNS, so a name that resolves to a
 * public address when checked and a private one when used (DNS rebinding)
 * gains nothing: there is no second lookup. Pure, unit-tested in
 * tests/unit/test_netguard.c; worker/deliver.c sets it on every callback
 * and results call. */
#ifndef SLUICE_NETGUARD_H
#define SLUICE_NETGUARD_H

#include <curl/curl.h>
#include <stdbool.h>
#include <sys/socket.h>

/* netguard_internal tells whether sa is an address no allowlisted public
 * host should resolve to: IPv4 0/8, 10/8, 100.64/10, 127/8, 169.254/16,
 * 172.16/12, 192.0.0/24, 192.168/16, 198.18/15, 224/4 and above; IPv6 ::,
 * ::1, fc00::/7, fe80::/10, ff00::/8, and IPv4-mapped, IPv4-compatible and
 * NAT64 (64:ff9b::/96) forms of the IPv4 ones. Any other family counts as
 * internal. */
bool netguard_internal(const struct sockaddr *sa, socklen_t len);

/* netguard_opensocket is a CURLOPT_OPENSOCKETFUNCTION: it opens the socket
 * as curl would, and refuses (CURL_SOCKET_BAD, so the call fails with
 * CURLE_COULDNT_CONNECT) an internal address, then setting *(bool *)clientp
 * when clientp (CURLOPT_OPENSOCKETDATA) is not NULL, so that a caller can
 * tell a refusal from a host that is down. Set it only on calls whose
 * route does not allow private callbacks. */
curl_socket_t netguard_opensocket(void *clientp, curlsocktype purpose,
                                  struct curl_sockaddr *address);

/* netguard_easy sets the outbound-safety options of a call to an
 * allowlisted host on e: redirects never followed, http and https only
 * (redirects included), no proxy (an environment's http_proxy would connect
 * to the proxy, not to the checked host), and netguard_opensocket unless
 * allow_private (a route's allow_private_callbacks). Returns 0, or -1 when
 * curl refused an option (then the call must not be made). */
__attribute__((warn_unused_result)) int netguard_easy(CURL *e, bool allow_private);

#endif
