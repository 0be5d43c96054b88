/* send.c: `sluice send` (see send.h), the transparent form. The client
 * makes exactly the call the backend should get, under /v1/routes/<route>,
 * and the gateway queues it; priority and idempotency travel in the
 * X-Priority and Idempotency-Key headers the API defines for this form. */
#include "send.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: sluice send METHOD ROUTE/PATH[?QUERY] [options]\n"
    "       sluice send METHOD /v1/routes/ROUTE/PATH[?QUERY] [options]\n"
    "\n"
    "Queues one raw HTTP call through the transparent form and prints \"queued  <id>\".\n"
    "\n"
    "  --data TEXT            the body, sent as it is\n"
    "  --data-file FILE|-     the body, read from a file or stdin\n"
    "  --header 'N: V'        a header for the backend (repeatable; set Content-Type here)\n"
    "  --priority P           0..9, high, normal or low (X-Priority)\n"
    "  --idempotency-key K    the request's idempotency key (Idempotency-Key)\n" CLI_GLOBAL_HELP;

#define ROUTES_PREFIX "/v1/routes/"
#define METHOD_CHARS "!#$%&'*+-.^_`|~"

enum { OPT_DATA = CLI_OPT_COMMAND, OPT_DATA_FILE, OPT_HEADER, OPT_PRIORITY, OPT_KEY };

static const struct option options[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {"data-file", required_argument, NULL, OPT_DATA_FILE},
    {"header", required_argument, NULL, OPT_HEADER},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"idempotency-key", required_argument, NULL, OPT_KEY},
    CLI_GLOBAL_OPTIONS,
    {NULL, 0, NULL, 0},
};

struct send_opts {
    const char *method, *target; /* the two arguments */
    const char *data, *data_file, *priority, *key;
    const char *headers[CLI_MAX_HEADERS];
    size_t n_headers;
    bool help;
};

static int take(void *opts, int opt, const char *arg)
{
    struct send_opts *o = opts;
    char name[256];
    const char *value;
    switch (opt) {
    case OPT_DATA:
    case OPT_DATA_FILE:
        if (o->data || o->data_file)
            return cli_usage("send", "give only one of --data and --data-file");
        if (opt == OPT_DATA) o->data = arg;
        if (opt == OPT_DATA_FILE) o->data_file = arg;
        return CLI_OK;
    case OPT_HEADER:
        if (cli_split_header(arg, name, sizeof name, &value) < 0)
            return cli_usage("send", "--header wants 'Name: value', not \"%s\"", arg);
        if (o->n_headers == CLI_MAX_HEADERS)
            return cli_usage("send", "at most %d --header options", CLI_MAX_HEADERS);
        o->headers[o->n_headers++] = arg;
        return CLI_OK;
    case OPT_PRIORITY:
        o->priority = arg;
        return CLI_OK;
    default: /* OPT_KEY */
        o->key = arg;
        return CLI_OK;
    }
}

static bool method_valid(const char *m)
{
    if (!*m) return false;
    for (; *m; m++)
        if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z') || (*m >= '0' && *m <= '9') ||
              strchr(METHOD_CHARS, *m)))
            return false;
    return true;
}

/* arguments checks the two positional arguments. */
static int arguments(struct send_opts *o, int argc, char *argv[])
{
    if (argc - optind != 2) return cli_usage("send", "wants two arguments, METHOD and ROUTE/PATH");
    o->method = argv[optind];
    o->target = argv[optind + 1];
    if (!method_valid(o->method)) return cli_usage("send", "\"%s\" is not a method", o->method);
    bool full = strncmp(o->target, ROUTES_PREFIX, strlen(ROUTES_PREFIX)) == 0;
    const char *route = full ? o->target + strlen(ROUTES_PREFIX) : o->target;
    if (route[0] == '/' || route[0] == '?' || route[0] == '\0')
        return cli_usage("send", "\"%s\" is not ROUTE/PATH or " ROUTES_PREFIX "ROUTE/PATH",
                         o->target);
    return CLI_OK;
}

static int parse(struct cli *c, struct send_opts *o, int argc, char *argv[])
{
    int rc = cli_getopt(c, "send", argc, argv, options, OPT_DATA, OPT_KEY, take, o, &o->help);
    return rc != CLI_OK || o->help ? rc : arguments(o, argc, argv);
}

/* headers_of lists the --header options and the gateway's own headers. */
static int headers_of(const struct send_opts *o, struct curl_slist **list, struct buf *scratch)
{
    struct curl_slist *next;
    for (size_t i = 0; i < o->n_headers; i++) {
        if (!(next = curl_slist_append(*list, o->headers[i]))) return -1;
        *list = next;
    }
    if (o->priority) {
        buf_reset(scratch);
        if (buf_appendf(scratch, "X-Priority: %s", o->priority) < 0 ||
            !(next = curl_slist_append(*list, scratch->data)))
            return -1;
        *list = next;
    }
    if (o->key) {
        buf_reset(scratch);
        if (buf_appendf(scratch, "Idempotency-Key: %s", o->key) < 0 ||
            !(next = curl_slist_append(*list, scratch->data)))
            return -1;
        *list = next;
    }
    return 0;
}

static int call(const struct cli *c, const struct send_opts *o)
{
    struct http_answer a;
    struct buf url, body, scratch;
    struct curl_slist *headers = NULL;
    int rc = CLI_USAGE;
    http_answer_init(&a);
    buf_init(&url, 1 << 20);
    buf_init(&body, CLI_MAX_INPUT);
    buf_init(&scratch, 1 << 20);
    if (o->data_file && cli_read_file(o->data_file, &body) < 0) goto out;
    bool full = strncmp(o->target, ROUTES_PREFIX, strlen(ROUTES_PREFIX)) == 0;
    if (cli_url(c, full ? "" : ROUTES_PREFIX, &url) < 0 || buf_appends(&url, o->target) < 0 ||
        headers_of(o, &headers, &scratch) < 0) {
        rc = cli_oom();
        goto out;
    }
    bool has_body = o->data || o->data_file;
    struct http_call hc = {.method = o->method,
                           .url = url.data,
                           .token = c->token,
                           .cacert = c->cacert,
                           .extra = headers,
                           .body = !has_body   ? NULL
                                   : o->data   ? o->data
                                   : body.data ? body.data
                                               : "",
                           .len = o->data ? strlen(o->data) : body.len,
                           .timeout_ms = CLI_CALL_TIMEOUT_MS};
    rc = http_call(&hc, &a);
    rc = rc == 0 && a.status == 202 ? cli_accepted(c, &a) : cli_fail(c, &a, rc);
out:
    curl_slist_free_all(headers);
    buf_free(&scratch);
    buf_free(&body);
    buf_free(&url);
    http_answer_free(&a);
    return rc;
}

int send_main(struct cli *c, int argc, char *argv[])
{
    struct send_opts o = {0};
    int rc = parse(c, &o, argc, argv);
    if (rc == CLI_OK && o.help) fputs(usage, stdout);
    return rc != CLI_OK || o.help ? rc : call(c, &o);
}
