/* daemon.h: what both sluice daemons do the same way at start: read their
 * command line, route SIGINT/SIGTERM to a signalfd, parse listen addresses. */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <stddef.h>
#include <sys/socket.h>

/* daemon_config_path handles --config FILE, --config-table (prints the
 * configuration table and exits) and --help; an unknown argument exits with
 * status 2. Returns FILE, else "sluice.json" if readable, else NULL (defaults). */
const char *daemon_config_path(int argc, char **argv, const char *prog);
/* daemon_signal_fd blocks SIGINT and SIGTERM in the calling thread (call it
 * before starting threads, which inherit the mask), ignores SIGPIPE, and
 * returns a signalfd for them (flags: SFD_NONBLOCK or 0), or -1. */
int daemon_signal_fd(int flags);
/* daemon_parse_addr parses "HOST:PORT" or "[V6]:PORT" with a numeric host
 * (empty host: any IPv4 address). Returns 0, or -1 with err naming key. */
int daemon_parse_addr(const char *key, const char *listen, struct sockaddr_storage *ss, char *err,
                      size_t errlen);

#endif
