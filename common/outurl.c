/* outurl.c: allowlist check of a client-named URL (see outurl.h). */
#include "outurl.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* printable tells whether s holds only visible ASCII: no space or control
 * character, which curl_url would otherwise encode or refuse on its own
 * terms. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return false;
    return true;
}

/* listed compares host (any case, one trailing dot ignored) with hosts. */
static bool listed(const char *host, const struct cfg_strings *hosts)
{
    size_t n = strlen(host);
    if (n > 1 && host[n - 1] == '.') n--;
    for (size_t i = 0; i < hosts->n; i++)
        if (strlen(hosts->v[i]) == n && strncasecmp(hosts->v[i], host, n) == 0) return true;
    return false;
}

const char *outurl_refusal(const char *url, const struct cfg_strings *hosts)
{
    const char *why = NULL;
    CURLU *u = NULL;
    char *scheme = NULL, *user = NULL, *host = NULL;

    if (strlen(url) > OUTURL_MAX || !printable(url)) {
        why = "is not a URL of at most 2048 printable characters";
        goto out;
    }
    u = curl_url();
    if (!u) {
        why = "could not be checked (out of memory)";
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        strncasecmp(url, scheme, strlen(scheme)) != 0) {
        why = "is not an absolute http:// or https:// URL";
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        why = "must not carry user information";
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, CURLU_URLDECODE) != CURLUE_OK ||
        !listed(host, hosts)) {
        why = "names a host that is not in the route's callback_hosts";
        goto out;
    }
out:
    curl_free(host);
    curl_free(user);
    curl_free(scheme);
    curl_url_cleanup(u);
    return why;
}
