/* admin.h: `sluice dead` and `sluice routes`, the admin API's commands
 * (docs/cli.md): the token must be an admin key's (or the status page's
 * admin token). */
#ifndef SLUICE_CLI_ADMIN_H
#define SLUICE_CLI_ADMIN_H

#include "cli.h"

int dead_main(struct cli *c, int argc, char *argv[]);
int routes_main(struct cli *c, int argc, char *argv[]);

#endif
