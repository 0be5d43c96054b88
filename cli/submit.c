/* submit.c: `sluice submit` (see submit.h). The envelope is a json-c
 * document: it starts empty or as the --envelope file, the options then set
 * its fields, and the API alone judges the values, so the client never
 * drifts from the server's rules. */
#include "submit.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "json.h"
#include "print.h"

static const char usage[] =
    "usage: sluice submit --route R [options]\n"
    "       sluice submit --envelope FILE|- [options]\n"
    "       sluice submit --batch FILE|-\n"
    "\n"
    "Posts a request envelope to /v1/requests and prints \"queued  <id>\".\n"
    "With --batch, posts every envelope of FILE (JSON lines, one envelope each) to\n"
    "/v1/requests:batch, 100 at a time: on a terminal with a progress bar and a\n"
    "summary, else one JSON line per envelope (\"line\" and the API's answer for it).\n"
    "\n"
    "  --batch FILE|-         envelopes as JSON lines (no other option applies)\n"
    "  --route R              the route to call (required unless the envelope has one)\n"
    "  --method M             the backend's method (default POST)\n"
    "  --path P               the backend's path, starting with / (default /)\n"
    "  --query Q              the query string, without ?\n"
    "  --header 'N: V'        a header for the backend (repeatable)\n"
    "  --body JSON            a JSON body (sent as application/json)\n"
    "  --body-text TEXT       a text body (text/plain; charset=utf-8)\n"
    "  --body-file FILE|-     the file's bytes as the body (application/octet-stream\n"
    "                         unless a Content-Type header is given)\n"
    "  --envelope FILE|-      start from this JSON envelope; options override its fields\n"
    "  --priority P           0..9, high, normal or low\n"
    "  --idempotency-key K    the request's idempotency key\n"
    "  --timeout-ms N         lower the route's backend timeout\n"
    "  --max-attempts N       lower the route's number of backend calls\n" CLI_GLOBAL_HELP;

enum {
    OPT_ROUTE = CLI_OPT_COMMAND,
    OPT_METHOD,
    OPT_PATH,
    OPT_QUERY,
    OPT_HEADER,
    OPT_BODY,
    OPT_BODY_TEXT,
    OPT_BODY_FILE,
    OPT_ENVELOPE,
    OPT_PRIORITY,
    OPT_KEY,
    OPT_TIMEOUT_MS,
    OPT_MAX_ATTEMPTS,
    OPT_BATCH,
};

static const struct option options[] = {
    {"route", required_argument, NULL, OPT_ROUTE},
    {"method", required_argument, NULL, OPT_METHOD},
    {"path", required_argument, NULL, OPT_PATH},
    {"query", required_argument, NULL, OPT_QUERY},
    {"header", required_argument, NULL, OPT_HEADER},
    {"body", required_argument, NULL, OPT_BODY},
    {"body-text", required_argument, NULL, OPT_BODY_TEXT},
    {"body-file", required_argument, NULL, OPT_BODY_FILE},
    {"envelope", required_argument, NULL, OPT_ENVELOPE},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"idempotency-key", required_argument, NULL, OPT_KEY},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
    {"batch", required_argument, NULL, OPT_BATCH},
    CLI_GLOBAL_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* The string fields an option sets as they are, indexed from OPT_ROUTE. */
static const char *const string_fields[] = {"route", "method", "path", "query"};

struct submit_opts {
    const char *strings[4]; /* route, method, path, query: NULL when not given */
    const char *headers[CLI_MAX_HEADERS];
    size_t n_headers;
    const char *body, *body_text, *body_file, *envelope, *priority, *key;
    const char *timeout_ms, *max_attempts; /* checked to be integers */
    const char *batch;                     /* --batch FILE */
    bool others;                           /* an option other than --batch was given */
    bool help;
};

/* take records one command option; returns CLI_OK or CLI_USAGE (reported). */
static int take(void *opts, int opt, const char *arg)
{
    struct submit_opts *o = opts;
    long n;
    if (opt == OPT_BATCH) {
        o->batch = arg;
        return CLI_OK;
    }
    o->others = true;
    switch (opt) {
    case OPT_HEADER:
        if (o->n_headers == CLI_MAX_HEADERS)
            return cli_usage("submit", "at most %d --header options", CLI_MAX_HEADERS);
        o->headers[o->n_headers++] = arg;
        return CLI_OK;
    case OPT_BODY:
    case OPT_BODY_TEXT:
    case OPT_BODY_FILE:
        if (o->body || o->body_text || o->body_file)
            return cli_usage("submit", "give only one of --body, --body-text and --body-file");
        if (opt == OPT_BODY) o->body = arg;
        if (opt == OPT_BODY_TEXT) o->body_text = arg;
        if (opt == OPT_BODY_FILE) o->body_file = arg;
        return CLI_OK;
    case OPT_ENVELOPE:
        o->envelope = arg;
        return CLI_OK;
    case OPT_PRIORITY:
        o->priority = arg;
        return CLI_OK;
    case OPT_KEY:
        o->key = arg;
        return CLI_OK;
    case OPT_TIMEOUT_MS:
    case OPT_MAX_ATTEMPTS:
        if (cli_long(arg, 0, INT32_MAX, &n) < 0)
            return cli_usage("submit", "%s wants a whole number, not \"%s\"",
                             opt == OPT_TIMEOUT_MS ? "--timeout-ms" : "--max-attempts", arg);
        if (opt == OPT_TIMEOUT_MS) o->timeout_ms = arg;
        if (opt == OPT_MAX_ATTEMPTS) o->max_attempts = arg;
        return CLI_OK;
    default: /* OPT_ROUTE .. OPT_QUERY */
        o->strings[opt - OPT_ROUTE] = arg;
        return CLI_OK;
    }
}

/* parse fills o from argv; returns CLI_OK or CLI_USAGE (reported). */
static int parse(struct cli *c, struct submit_opts *o, int argc, char *argv[])
{
    int rc = cli_getopt(c, "submit", argc, argv, options, OPT_ROUTE, OPT_BATCH, take, o, &o->help);
    if (rc == CLI_OK && optind < argc)
        rc = cli_usage("submit", "unexpected argument \"%s\"", argv[optind]);
    if (rc == CLI_OK && o->batch && o->others)
        rc = cli_usage("submit", "--batch takes whole envelopes: give no other option with it");
    return rc;
}

/* put adds v as key of o, taking v; -1 on ENOMEM (v is put). */
static int put(struct json_object *o, const char *key, struct json_object *v)
{
    if (v && json_object_object_add(o, key, v) == 0) return 0;
    json_object_put(v);
    return -1;
}

/* number_or_string is a whole number as a JSON number, anything else as a string. */
static struct json_object *number_or_string(const char *s)
{
    long n;
    if (cli_long(s, INT32_MIN, INT32_MAX, &n) == 0) return json_object_new_int64(n);
    return json_object_new_string(s);
}

/* start_envelope reads the --envelope file, or makes an empty envelope. */
static int start_envelope(const char *path, struct json_object **env)
{
    char why[128];
    if (!path) return (*env = json_object_new_object()) ? CLI_OK : cli_oom();
    struct buf text;
    buf_init(&text, CLI_MAX_INPUT);
    int rc = CLI_USAGE;
    if (cli_read_file(path, &text) < 0) goto out;
    *env = json_parse(text.data, text.len, why, sizeof why);
    if (!*env || !json_object_is_type(*env, json_type_object)) {
        fprintf(stderr, "sluice submit: %s is not a JSON object%s%s\n", path, *env ? "" : ": ",
                *env ? "" : why);
        json_object_put(*env);
        *env = NULL;
        goto out;
    }
    rc = CLI_OK;
out:
    buf_free(&text);
    return rc;
}

/* set_headers merges the --header options into the envelope's headers. */
static int set_headers(struct json_object *env, const struct submit_opts *o)
{
    char name[256];
    const char *value;
    struct json_object *headers = NULL;
    if (o->n_headers == 0) return CLI_OK;
    if (!json_object_object_get_ex(env, "headers", &headers) || !headers) {
        if (put(env, "headers", headers = json_object_new_object()) < 0) return cli_oom();
    }
    if (!json_object_is_type(headers, json_type_object))
        return cli_usage("submit", "the envelope's \"headers\" is not an object");
    for (size_t i = 0; i < o->n_headers; i++) {
        if (cli_split_header(o->headers[i], name, sizeof name, &value) < 0)
            return cli_usage("submit", "--header wants 'Name: value', not \"%s\"", o->headers[i]);
        if (put(headers, name, json_object_new_string(value)) < 0) return cli_oom();
    }
    return CLI_OK;
}

/* file_base64 reads path and returns its bytes in base64, or NULL. */
static struct json_object *file_base64(const char *path, int *rc)
{
    struct buf bytes;
    struct json_object *v = NULL;
    char *b64 = NULL;
    buf_init(&bytes, CLI_MAX_INPUT);
    *rc = CLI_USAGE;
    if (cli_read_file(path, &bytes) < 0) goto out;
    /* EVP_EncodeBlock writes 4 bytes per started 3, and a NUL. */
    b64 = malloc(bytes.len / 3 * 4 + 5);
    int n = b64 ? EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)bytes.data,
                                  (int)bytes.len)
                : 0;
    v = b64 ? json_object_new_string_len(b64, n) : NULL;
    *rc = v ? CLI_OK : cli_oom();
out:
    free(b64);
    buf_free(&bytes);
    return v;
}

/* set_body sets the one body option given, replacing any body of the envelope file. */
static int set_body(struct json_object *env, const struct submit_opts *o)
{
    char why[128];
    struct json_object *v = NULL;
    int rc = CLI_OK;
    if (!o->body && !o->body_text && !o->body_file) return CLI_OK;
    json_object_object_del(env, "body");
    json_object_object_del(env, "body_text");
    json_object_object_del(env, "body_base64");
    if (o->body) {
        v = json_parse(o->body, strlen(o->body), why, sizeof why);
        /* A literal null is a JSON body too. */
        if (!v && strcmp(why, "null document") != 0)
            return cli_usage("submit", "--body is not JSON: %s", why);
        if (!v) return json_object_object_add(env, "body", NULL) == 0 ? CLI_OK : cli_oom();
        return put(env, "body", v) == 0 ? CLI_OK : cli_oom();
    }
    if (o->body_text) {
        v = json_object_new_string(o->body_text);
        return put(env, "body_text", v) == 0 ? CLI_OK : cli_oom();
    }
    v = file_base64(o->body_file, &rc);
    if (rc != CLI_OK) return rc;
    return put(env, "body_base64", v) == 0 ? CLI_OK : cli_oom();
}

/* set_scalars sets the string and number fields given as options. */
static int set_scalars(struct json_object *env, const struct submit_opts *o)
{
    int bad = 0;
    for (size_t i = 0; i < 4; i++)
        if (o->strings[i]) bad |= put(env, string_fields[i], json_object_new_string(o->strings[i]));
    if (o->priority) bad |= put(env, "priority", number_or_string(o->priority));
    if (o->key) bad |= put(env, "idempotency_key", json_object_new_string(o->key));
    if (o->timeout_ms) bad |= put(env, "timeout_ms", number_or_string(o->timeout_ms));
    if (o->max_attempts) bad |= put(env, "max_attempts", number_or_string(o->max_attempts));
    return bad ? cli_oom() : CLI_OK;
}

/* build makes the envelope from the options; returns an exit code. */
static int build(const struct submit_opts *o, struct json_object **env)
{
    int rc = start_envelope(o->envelope, env);
    if (rc == CLI_OK) rc = set_scalars(*env, o);
    if (rc == CLI_OK) rc = set_headers(*env, o);
    if (rc == CLI_OK) rc = set_body(*env, o);
    if (rc == CLI_OK && !print_str(*env, "route"))
        rc = cli_usage("submit", "--route is required (or a \"route\" in the envelope)");
    return rc;
}

static int post(const struct cli *c, const char *envelope)
{
    struct http_answer a;
    struct buf url;
    char json_type[] = "Content-Type: application/json";
    struct curl_slist ctype = {.data = json_type, .next = NULL};
    int rc;
    http_answer_init(&a);
    buf_init(&url, 1 << 20);
    if (cli_url(c, "/v1/requests", &url) < 0) {
        rc = cli_oom();
        goto out;
    }
    struct http_call call = {.method = "POST",
                             .url = url.data,
                             .token = c->token,
                             .cacert = c->cacert,
                             .extra = &ctype,
                             .body = envelope,
                             .len = strlen(envelope),
                             .timeout_ms = CLI_CALL_TIMEOUT_MS};
    rc = http_call(&call, &a);
    rc = rc == 0 && a.status == 202 ? cli_accepted(c, &a) : cli_fail(c, &a, rc);
out:
    buf_free(&url);
    http_answer_free(&a);
    return rc;
}

int submit_main(struct cli *c, int argc, char *argv[])
{
    struct submit_opts o = {0};
    struct json_object *env = NULL;
    int rc = parse(c, &o, argc, argv);
    if (rc != CLI_OK || o.help) {
        if (o.help) fputs(usage, stdout);
        return rc;
    }
    if (o.batch) return batch_submit(c, o.batch);
    rc = build(&o, &env);
    if (rc != CLI_OK) goto out;
    const char *text = json_object_to_json_string_ext(env, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = text ? post(c, text) : cli_oom();
out:
    json_object_put(env);
    return rc;
}
