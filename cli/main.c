/* main.c: sluice, the command-line client of the sluice gateway. It reads
 * the global options, picks the command and returns its exit code; the
 * commands live in submit.c, send.c, status.c, metrics.c and admin.c. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "cli.h"
#include "metrics.h"
#include "send.h"
#include "status.h"
#include "submit.h"

static const char usage[] =
    "usage: sluice [--url URL] [--token TOKEN] [--cacert FILE] [--json] COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  submit     queue a request built from options (POST /v1/requests)\n"
    "  send       queue one raw HTTP call (the transparent form, /v1/routes/...)\n"
    "  status     show a request's status, or --watch it until it is final\n"
    "  metrics    print the ingress's or a worker's Prometheus metrics\n"
    "  dead       list, replay or purge the dead requests (admin key)\n"
    "  routes     list, pause, resume or limit routes at runtime (admin key)\n"
    "  help       this text; 'sluice help COMMAND' or 'sluice COMMAND --help' for "
    "one\n" CLI_GLOBAL_HELP "\n"
    "Exit codes: 0 success, 1 the request ended failed or dead (status --watch),\n"
    "2 usage error, 3 the API refused (4xx), 4 server unavailable (no answer, 503),\n"
    "5 status --watch timed out.\n";

struct command {
    const char *name;
    int (*run)(struct cli *c, int argc, char *argv[]);
};

static const struct command commands[] = {
    {"submit", submit_main},   {"send", send_main}, {"status", status_main},
    {"metrics", metrics_main}, {"dead", dead_main}, {"routes", routes_main},
};

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* help answers `sluice help [COMMAND]`. */
static int help(struct cli *c, int argc, char *argv[])
{
    if (argc < 2) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    const struct command *cmd = find(argv[1]);
    if (!cmd) return cli_usage(NULL, "no command \"%s\"", argv[1]);
    char *args[] = {argv[1], "--help", NULL};
    return cmd->run(c, 2, args);
}

/* run parses the global options before the command and runs it. */
static int run(int argc, char *argv[])
{
    static const struct option options[] = {CLI_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
    struct cli c;
    int opt;
    cli_init(&c);
    opterr = 0;
    /* '+' stops at the command: what follows is the command's to parse. */
    while ((opt = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
        if (cli_global_option(&c, opt, optarg)) continue;
        if (opt != 'h') return cli_bad_option(NULL, opt, argv);
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (optind == argc) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) return help(&c, argc - optind, argv + optind);
    const struct command *cmd = find(name);
    if (!cmd) return cli_usage(NULL, "no command \"%s\"", name);
    return cmd->run(&c, argc - optind, argv + optind);
}

int main(int argc, char *argv[])
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("sluice: libcurl cannot start\n", stderr);
        return CLI_UNAVAILABLE;
    }
    int rc = run(argc, argv);
    curl_global_cleanup();
    return rc;
}
