/* daemon.c: start-up chores shared by sluice-ingress and sluice-worker (see daemon.h). */
#include "daemon.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"

const char *daemon_config_path(int argc, char **argv, const char *prog)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--config-table") == 0) {
            cfg_usage(stdout); /* docs/configuration.md is made from this */
            exit(0);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s [--config FILE] [--config-table]\n"
                   "Settings come from FILE (default ./sluice.json if present) and SLUICE_* "
                   "environment variables; --config-table lists them (docs/configuration.md).\n",
                   prog);
            exit(0);
        } else {
            fprintf(stderr, "%s: unknown argument \"%s\" (try --help)\n", prog, argv[i]);
            exit(2);
        }
    }
    if (!path && access("sluice.json", R_OK) == 0) path = "sluice.json";
    return path;
}

int daemon_signal_fd(int flags)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | flags);
}

int daemon_parse_addr(const char *key, const char *listen, struct sockaddr_storage *ss, char *err,
                      size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    char host[128];
    if (!colon || (size_t)(colon - listen) >= sizeof(host)) goto bad;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || port < 0 || port > 65535) goto bad;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1) return 0;
    } else {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &v4->sin_addr) == 1) return 0;
    }
bad:
    snprintf(err, errlen, "%s: \"%s\" is not HOST:PORT with a numeric address", key, listen);
    return -1;
}
