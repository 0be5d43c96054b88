/* cli.c: what the commands of the sluice command-line client share (see
 * cli.h): global options, small parsers, reading input files, and turning
 * an unexpected HTTP answer into a message and an exit code. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "print.h"

#define CLI_ANSWER_DEPTH 64 /* the API's 32 levels, wrapped in a status */

void cli_init(struct cli *c)
{
    const char *url = getenv("SLUICE_URL");
    c->url = url && *url ? url : CLI_DEFAULT_URL;
    c->token = getenv("SLUICE_TOKEN");
    const char *cacert = getenv("SLUICE_CACERT");
    c->cacert = cacert && *cacert ? cacert : NULL;
    c->json = false;
}

bool cli_global_option(struct cli *c, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_URL:
        c->url = arg;
        return true;
    case CLI_OPT_TOKEN:
        c->token = arg;
        return true;
    case CLI_OPT_JSON:
        c->json = true;
        return true;
    case CLI_OPT_CACERT:
        c->cacert = arg;
        return true;
    default:
        return false;
    }
}

int cli_usage(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice%s%s: ", command ? " " : "", command ? command : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'sluice%s%s --help'.\n", command ? " " : "", command ? command : "");
    return CLI_USAGE;
}

int cli_getopt(struct cli *c, const char *command, int argc, char *argv[],
               const struct option *options, int first, int last, cli_take_fn take, void *opts,
               bool *help)
{
    int opt, rc = CLI_OK;
    optind = 0; /* GNU getopt: start over (main already parsed the global part) */
    opterr = 0;
    while (rc == CLI_OK && (opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (cli_global_option(c, opt, optarg)) continue;
        if (opt == 'h')
            *help = true;
        else if (opt >= first && opt <= last)
            rc = take(opts, opt, optarg);
        else
            rc = cli_bad_option(command, opt, argv);
    }
    return rc;
}

int cli_bad_option(const char *command, int opt, char *const argv[])
{
    /* getopt_long has already moved past the culprit. */
    const char *culprit = optind > 0 ? argv[optind - 1] : "?";
    if (opt == ':') return cli_usage(command, "option %s needs a value", culprit);
    if (optopt > 0 && optopt < 256 && culprit[0] == '-' && culprit[1] != '-')
        return cli_usage(command, "unknown option -%c", optopt);
    return cli_usage(command, "unknown option %s", culprit);
}

int cli_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int cli_split_header(const char *h, char *name, size_t namelen, const char **value)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || (size_t)(colon - h) >= namelen) return -1;
    size_t n = (size_t)(colon - h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0) return -1;
    memcpy(name, h, n);
    name[n] = '\0';
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    *value = v;
    return 0;
}

int cli_read_file(const char *path, struct buf *out)
{
    int ret = -1;
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    char chunk[65536];
    if (!f) {
        fprintf(stderr, "sluice: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        int rc = buf_append(out, chunk, n);
        if (rc) {
            fprintf(stderr, "sluice: cannot read %s: %s\n", is_stdin ? "stdin" : path,
                    rc == -E2BIG ? "larger than 256 MiB" : strerror(-rc));
            goto out;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "sluice: cannot read %s: %s\n", is_stdin ? "stdin" : path, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    if (!is_stdin) fclose(f);
    return ret;
}

int cli_url(const struct cli *c, const char *path, struct buf *out)
{
    size_t n = strlen(c->url);
    while (n && c->url[n - 1] == '/')
        n--;
    int rc = buf_append(out, c->url, n);
    return rc ? rc : buf_appends(out, path);
}

/* only_blanks tells whether s (len bytes) is all JSON whitespace. */
static bool only_blanks(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return false;
    return true;
}

struct json_object *cli_parse_answer(const struct http_answer *a)
{
    size_t len = a->body.len;
    if (len == 0 || len > INT_MAX) return NULL;
    struct json_tokener *tok = json_tokener_new_ex(CLI_ANSWER_DEPTH);
    if (!tok) return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, a->body.data, (int)len);
    if (!o && json_tokener_get_error(tok) == json_tokener_continue) {
        /* A document ending in a number or literal completes at the end of input. */
        o = json_tokener_parse_ex(tok, "", 1);
    } else if (o && !only_blanks(a->body.data + json_tokener_get_parse_end(tok),
                                 len - json_tokener_get_parse_end(tok))) {
        json_object_put(o); /* something after the document: not JSON */
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static const char *string_at(struct json_object *o, const char *k1, const char *k2)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, k1, &v) || !json_object_object_get_ex(v, k2, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* report_answer prints an error answer: the API's code and message when the
 * body is the API's error document, else the start of whatever came. */
static void report_answer(const struct cli *c, const struct http_answer *a)
{
    struct json_object *o = cli_parse_answer(a);
    const char *code = o ? string_at(o, "error", "code") : NULL;
    const char *message = o ? string_at(o, "error", "message") : NULL;
    if (code)
        fprintf(stderr, "sluice: %s: %s (HTTP %ld", code, message ? message : "", a->status);
    else
        fprintf(stderr, "sluice: unexpected answer %.200s (HTTP %ld", http_body(a), a->status);
    if (a->retry_after_s >= 0) fprintf(stderr, ", retry after %ld s", a->retry_after_s);
    fputs(")\n", stderr);
    if (c->json && o) cli_print_body(a);
    json_object_put(o);
}

int cli_fail(const struct cli *c, const struct http_answer *a, int rc)
{
    switch (rc) {
    case HTTP_ERR_NOMEM:
        return cli_oom();
    case HTTP_ERR_URL:
        fprintf(stderr, "sluice: cannot use the URL: %s\n", a->err);
        return CLI_USAGE;
    case HTTP_ERR_TRANSPORT:
        fprintf(stderr, "sluice: no answer from %s: %s\n", c->url, a->err);
        return CLI_UNAVAILABLE;
    default:
        break;
    }
    report_answer(c, a);
    return a->status >= 500 ? CLI_UNAVAILABLE : CLI_API;
}

int cli_accepted(const struct cli *c, const struct http_answer *a)
{
    static const char prefix[] = "/v1/requests/";
    if (c->json) {
        cli_print_body(a);
        return CLI_OK;
    }
    struct json_object *o = cli_parse_answer(a);
    int rc = CLI_API;
    if (o && print_accepted(stdout, o) == 0) {
        rc = CLI_OK;
    } else if (!strncmp(a->location, prefix, sizeof prefix - 1)) {
        /* A HEAD call gets no body: the id is in Location. */
        printf("queued  %s\n", a->location + sizeof prefix - 1);
        rc = CLI_OK;
    } else {
        fprintf(stderr, "sluice: the 202 answer has no id: %.200s\n", http_body(a));
    }
    json_object_put(o);
    return rc;
}

void cli_print_body(const struct http_answer *a)
{
    fwrite(http_body(a), 1, a->body.len, stdout);
    if (a->body.len == 0 || a->body.data[a->body.len - 1] != '\n') putchar('\n');
}

int cli_oom(void)
{
    fputs("sluice: out of memory\n", stderr);
    return CLI_UNAVAILABLE;
}
