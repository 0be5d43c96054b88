/* http.c: one HTTP exchange of the sluice command-line client (see http.h).
 * Every call gets a fresh easy handle: the client makes a handful of calls
 * per run, so connection reuse is not worth the state. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

void http_answer_init(struct http_answer *a)
{
    memset(a, 0, sizeof *a);
    buf_init(&a->body, HTTP_MAX_ANSWER);
    a->retry_after_s = -1;
}

void http_answer_free(struct http_answer *a)
{
    buf_free(&a->body);
}

static size_t on_body(char *data, size_t size, size_t n, void *cls)
{
    struct http_answer *a = cls;
    size_t len = size * n; /* libcurl documents size as always 1 */
    /* A short count makes libcurl fail the transfer with CURLE_WRITE_ERROR. */
    return buf_append(&a->body, data, len) == 0 ? len : 0;
}

/* copy_value copies a header's value (data, len bytes after the colon)
 * without the surrounding blanks and the line end. */
static void copy_value(char *out, size_t outlen, const char *v, size_t len)
{
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && isspace((unsigned char)v[len - 1]))
        len--;
    snprintf(out, outlen, "%.*s", (int)len, v);
}

static bool header_is(const char *data, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && data[n] == ':' && strncasecmp(data, name, n) == 0;
}

/* on_header keeps the headers the client reads. A status line starts a new
 * answer (after a redirect or an interim 1xx), so it forgets earlier ones. */
static size_t on_header(char *data, size_t size, size_t n, void *cls)
{
    struct http_answer *a = cls;
    char tmp[32];
    n *= size; /* libcurl documents size as always 1 */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        a->location[0] = '\0';
        a->retry_after_s = -1;
    } else if (header_is(data, n, "Location")) {
        copy_value(a->location, sizeof a->location, data + 9, n - 9);
    } else if (header_is(data, n, "Retry-After")) {
        long s;
        copy_value(tmp, sizeof tmp, data + 12, n - 12);
        if (cli_long(tmp, 0, 86400L * 365, &s) == 0) a->retry_after_s = s;
    }
    return n;
}

static bool has_header(const struct curl_slist *l, const char *name)
{
    for (; l; l = l->next)
        if (header_is(l->data, strlen(l->data), name)) return true;
    return false;
}

/* add appends line to *list; false on ENOMEM (the list stays as it was). */
static bool add(struct curl_slist **list, const char *line)
{
    struct curl_slist *next = curl_slist_append(*list, line);
    if (next) *list = next;
    return next != NULL;
}

/* headers_for copies the extra headers and adds Authorization, and the
 * removals that keep libcurl from adding headers of its own. NULL on ENOMEM. */
static struct curl_slist *headers_for(const struct http_call *c)
{
    struct curl_slist *list = NULL;
    struct buf auth;
    buf_init(&auth, 64 << 10);
    bool ok = true;
    for (const struct curl_slist *l = c->extra; l && ok; l = l->next)
        ok = add(&list, l->data);
    if (ok && c->token && *c->token)
        ok = buf_appendf(&auth, "Authorization: Bearer %s", c->token) == 0 && add(&list, auth.data);
    /* Expect: 100-continue would cost a round trip on every body. */
    if (ok) ok = add(&list, "Expect:");
    if (ok && c->body && !has_header(c->extra, "Content-Type")) ok = add(&list, "Content-Type:");
    buf_free(&auth);
    if (!ok) {
        curl_slist_free_all(list);
        return NULL;
    }
    return list;
}

static void set_method_and_body(CURL *h, const struct http_call *c)
{
    if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L); /* no answer body to wait for */
        return;
    }
    if (c->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
    }
    if (strcmp(c->method, c->body ? "POST" : "GET") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
}

static int result_of(CURLcode rc, struct http_answer *a)
{
    if (!a->err[0]) snprintf(a->err, sizeof a->err, "%s", curl_easy_strerror(rc));
    switch (rc) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return HTTP_ERR_URL;
    case CURLE_OUT_OF_MEMORY:
        return HTTP_ERR_NOMEM;
    case CURLE_WRITE_ERROR:
        snprintf(a->err, sizeof a->err, "the answer is larger than %zu bytes", HTTP_MAX_ANSWER);
        return HTTP_ERR_TRANSPORT;
    default:
        return HTTP_ERR_TRANSPORT;
    }
}

int http_call(const struct http_call *c, struct http_answer *a)
{
    int ret = HTTP_ERR_NOMEM;
    http_answer_free(a);
    http_answer_init(a);
    struct curl_slist *headers = headers_for(c);
    CURL *h = headers ? curl_easy_init() : NULL;
    if (!h) goto out;
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice-cli/1");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, HTTP_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->err);
    if (c->cacert) curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    set_method_and_body(h, c);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        ret = result_of(rc, a);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    ret = 0;
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    return ret;
}
