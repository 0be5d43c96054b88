/* metrics.h: `sluice metrics`, which prints the Prometheus text of the
 * ingress or of a worker. */
#ifndef SLUICE_CLI_METRICS_H
#define SLUICE_CLI_METRICS_H

#include "cli.h"

/* metrics_main runs the command; argv[0] is "metrics". Returns an exit code. */
int metrics_main(struct cli *c, int argc, char *argv[]);

#endif
