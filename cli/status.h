/* status.h: `sluice status`, which shows a request's status once or, with
 * --watch, polls it until it is final. */
#ifndef SLUICE_CLI_STATUS_H
#define SLUICE_CLI_STATUS_H

#include "cli.h"

/* status_main runs the command; argv[0] is "status". Returns an exit code. */
int status_main(struct cli *c, int argc, char *argv[]);

#endif
