/* cli.h: what every command of the sluice command-line client shares: the
 * global options (--url, --token, --json), the exit codes scripts rely on,
 * option parsing helpers, and the one place where an HTTP answer that is not
 * a success becomes a message on stderr and an exit code. */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "http.h"

/* The exit codes are part of the interface (docs/cli.md): never renumber. */
enum cli_exit {
    CLI_OK = 0,       /* success, or a status shown without --watch */
    CLI_FINAL_FAILED, /* status --watch ended failed or dead */
    CLI_USAGE,        /* bad command line or unusable input file */
    CLI_API,          /* the API refused (4xx, or an answer that makes no sense) */
    CLI_UNAVAILABLE,  /* no answer, 503 or another 5xx */
    CLI_TIMEOUT,      /* status --watch gave up at --timeout */
};

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"
#define CLI_CALL_TIMEOUT_MS 90000L        /* one exchange; the ingress confirms within 60 s */
#define CLI_MAX_HEADERS 64                /* the API's own limit */
#define CLI_MAX_INPUT ((size_t)256 << 20) /* files and stdin read for a body */

/* cli is the global options; the strings point into argv or the environment. */
struct cli {
    const char *url;    /* base URL, trailing slashes ignored */
    const char *token;  /* NULL or "": no Authorization header */
    const char *cacert; /* NULL: the system's CA certificates verify https:// */
    bool json;          /* print the API's JSON as-is */
};

/* Long options every command accepts besides its own; commands number
 * theirs from CLI_OPT_COMMAND. */
enum { CLI_OPT_URL = 256, CLI_OPT_TOKEN, CLI_OPT_JSON, CLI_OPT_CACERT, CLI_OPT_COMMAND = 300 };
// clang-format off
#define CLI_GLOBAL_OPTIONS                                  \
    {"url", required_argument, NULL, CLI_OPT_URL},          \
    {"token", required_argument, NULL, CLI_OPT_TOKEN},      \
    {"json", no_argument, NULL, CLI_OPT_JSON},              \
    {"cacert", required_argument, NULL, CLI_OPT_CACERT},    \
    {"help", no_argument, NULL, 'h'}
// clang-format on

/* The part of every command's --help about the global options. */
#define CLI_GLOBAL_HELP                                                                            \
    "\nGlobal options (before or after the command):\n"                                            \
    "  --url URL        the ingress (default $SLUICE_URL, else " CLI_DEFAULT_URL ")\n"             \
    "  --token TOKEN    the API key (default $SLUICE_TOKEN)\n"                                     \
    "  --cacert FILE    CA certificates (PEM) that verify an https:// ingress\n"                   \
    "                   (default $SLUICE_CACERT, else the system's)\n"                             \
    "  --json           print the API's JSON as it is\n"                                           \
    "  --help           this text\n"

/* cli_init fills c from $SLUICE_URL, $SLUICE_TOKEN and $SLUICE_CACERT, or the defaults. */
void cli_init(struct cli *c);
/* cli_global_option applies a global option returned by getopt_long; it
 * returns false when opt is not one. */
bool cli_global_option(struct cli *c, int opt, const char *arg);
/* cli_bad_option reports what getopt_long refused (opterr must be 0, the
 * option string must start with ':') and returns CLI_USAGE. */
int cli_bad_option(const char *command, int opt, char *const argv[]);
/* cli_take_fn records one of a command's own options into opts; it returns
 * CLI_OK or CLI_USAGE (reported). */
typedef int (*cli_take_fn)(void *opts, int opt, const char *arg);
/* cli_getopt parses a command's argv with getopt_long from the start: global
 * options go to c, -h/--help sets *help, options numbered first..last go to
 * take, anything else is a usage error naming command. Returns CLI_OK or the
 * first error; optind is then the first operand. */
int cli_getopt(struct cli *c, const char *command, int argc, char *argv[],
               const struct option *options, int first, int last, cli_take_fn take, void *opts,
               bool *help);
/* cli_usage prints "sluice <command>: <message>" and a hint to stderr and
 * returns CLI_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_usage(const char *command, const char *fmt, ...);

/* cli_long parses a whole decimal integer within [min, max]; returns 0 or -1. */
int cli_long(const char *s, long min, long max, long *out);
/* cli_split_header splits "Name: value" at the first ':' and trims the
 * blanks around the value; returns -1 (nothing written) without a name or a
 * colon. name gets at most namelen - 1 bytes. */
int cli_split_header(const char *h, char *name, size_t namelen, const char **value);
/* cli_read_file appends the whole of path ("-" is stdin) to out (capped at
 * CLI_MAX_INPUT). Returns 0, or -1 after printing why to stderr. */
__attribute__((warn_unused_result)) int cli_read_file(const char *path, struct buf *out);
/* cli_url appends the base URL and path (which starts with '/') to out. */
__attribute__((warn_unused_result)) int cli_url(const struct cli *c, const char *path,
                                                struct buf *out);

/* cli_parse_answer parses an answer's JSON body (deeper than the API's own
 * input limit, since a status wraps the backend's body). Caller puts; NULL
 * when the body is not JSON. */
struct json_object *cli_parse_answer(const struct http_answer *a);
/* cli_fail reports an answer that is not the expected success (or no
 * answer at all) on stderr as "sluice: <code>: <message> (HTTP <n>)", prints
 * the API's error document on stdout under --json, and returns the exit code
 * (CLI_API, CLI_UNAVAILABLE or CLI_USAGE for a URL curl cannot use). */
int cli_fail(const struct cli *c, const struct http_answer *a, int rc);
/* cli_accepted prints the 202 answer of either submission form (the API's
 * JSON under --json, else "queued  <id>") and returns the exit code. */
int cli_accepted(const struct cli *c, const struct http_answer *a);
/* cli_print_body writes an answer's body to stdout, ending with a newline. */
void cli_print_body(const struct http_answer *a);
/* cli_oom reports an allocation failure and returns CLI_UNAVAILABLE. */
int cli_oom(void);

#endif
