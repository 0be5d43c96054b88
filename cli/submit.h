/* submit.h: `sluice submit`, which builds a request envelope from options
 * (or a file) and posts it to /v1/requests. */
#ifndef SLUICE_CLI_SUBMIT_H
#define SLUICE_CLI_SUBMIT_H

#include "cli.h"

/* submit_main runs the command; argv[0] is "submit". Returns an exit code. */
int submit_main(struct cli *c, int argc, char *argv[]);

#endif
