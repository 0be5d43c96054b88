/* send.h: `sluice send`, the transparent form: one raw HTTP call to
 * /v1/routes/<route>/<path> that the gateway queues as it is. */
#ifndef SLUICE_CLI_SEND_H
#define SLUICE_CLI_SEND_H

#include "cli.h"

/* send_main runs the command; argv[0] is "send". Returns an exit code. */
int send_main(struct cli *c, int argc, char *argv[]);

#endif
