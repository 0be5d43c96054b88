/* metrics.c: `sluice metrics` (see metrics.h). /metrics needs no key, so
 * the token is never sent, least of all to a worker's address. The answer is
 * Prometheus text, printed as it came with or without --json. */
#include "metrics.h"

#include <stdio.h>

static const char usage[] =
    "usage: sluice metrics [--worker URL]\n"
    "\n"
    "Prints the ingress's /metrics (Prometheus text format).\n"
    "\n"
    "  --worker URL     a worker's metrics address instead (worker.metrics_listen),\n"
    "                   e.g. http://127.0.0.1:9091\n" CLI_GLOBAL_HELP;

enum { OPT_WORKER = CLI_OPT_COMMAND };

static const struct option options[] = {
    {"worker", required_argument, NULL, OPT_WORKER},
    CLI_GLOBAL_OPTIONS,
    {NULL, 0, NULL, 0},
};

static int parse(struct cli *c, const char **worker, bool *help, int argc, char *argv[])
{
    int opt, rc = CLI_OK;
    optind = 0; /* GNU getopt: start over (main already parsed the global part) */
    opterr = 0;
    while (rc == CLI_OK && (opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (cli_global_option(c, opt, optarg)) continue;
        if (opt == 'h')
            *help = true;
        else if (opt == OPT_WORKER)
            *worker = optarg;
        else
            rc = cli_bad_option("metrics", opt, argv);
    }
    if (rc == CLI_OK && optind < argc)
        rc = cli_usage("metrics", "unexpected argument \"%s\"", argv[optind]);
    return rc;
}

int metrics_main(struct cli *c, int argc, char *argv[])
{
    const char *worker = NULL;
    bool help = false;
    struct buf url;
    struct http_answer a;
    int rc = parse(c, &worker, &help, argc, argv);
    if (rc == CLI_OK && help) fputs(usage, stdout);
    if (rc != CLI_OK || help) return rc;
    /* The worker's address becomes the base URL for this one call. */
    struct cli target = {
        .url = worker ? worker : c->url, .token = NULL, .cacert = c->cacert, .json = c->json};
    buf_init(&url, 1 << 20);
    http_answer_init(&a);
    if (cli_url(&target, "/metrics", &url) < 0) {
        rc = cli_oom();
        goto out;
    }
    struct http_call call = {
        .method = "GET", .url = url.data, .cacert = c->cacert, .timeout_ms = CLI_CALL_TIMEOUT_MS};
    rc = http_call(&call, &a);
    if (rc || a.status != 200)
        rc = cli_fail(&target, &a, rc);
    else
        fwrite(http_body(&a), 1, a.body.len, stdout);
out:
    http_answer_free(&a);
    buf_free(&url);
    return rc;
}
