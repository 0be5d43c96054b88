/* batch.h: `sluice submit --batch FILE`: envelopes as JSON lines, sent to
 * POST /v1/requests:batch a hundred at a time. Piped, it prints one JSON
 * line per input line (the API's answer for it, with its line number); on a
 * terminal, a progress bar and a summary. */
#ifndef SLUICE_CLI_BATCH_H
#define SLUICE_CLI_BATCH_H

#include "cli.h"

#define BATCH_ENVELOPES 100           /* the API's limit per batch */
#define BATCH_BYTES ((size_t)1000000) /* under the ingress's default max_body_bytes (1 MiB) */

/* batch_submit runs the command for path ("-" is stdin) and returns the exit
 * code: CLI_OK when every envelope was accepted, CLI_UNAVAILABLE when any
 * was not for want of the server (503, no answer), else CLI_API when any was
 * refused, CLI_USAGE when the file cannot be read. */
int batch_submit(const struct cli *c, const char *path);

#endif
