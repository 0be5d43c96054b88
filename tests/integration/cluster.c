/* cluster.c: the test cluster's nodes, queues and connections (see
 * cluster.h). Nodes are driven through scripts/cluster.sh; what a process is
 * connected to is read from /proc (its sockets) and from the broker
 * (`rabbitmqctl list_connections`, which names each connection's client). */
#include "cluster.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCRIPT "scripts/cluster.sh"
#define CTL_TIMEOUT_MS 60000
#define MAX_SOCKETS 64

const char *hc_dir(void)
{
    const char *d = getenv("SLUICE_TEST_CLUSTER_DIR");
    ck_assert_msg(d && *d, "SLUICE_TEST_CLUSTER_DIR is not set: run the cluster suites through "
                           "scripts/run-tests.sh cluster (make test, make soak)");
    return d;
}

/* out_path names a file for one script's output, in this test process's own name. */
static void out_path(char *out, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, len, "%s/sluice-cluster-%d.out", tmp && *tmp ? tmp : "/tmp", (int)getpid());
}

/* run runs scripts/cluster.sh VERB DIR ARGS... to completion and returns its
 * output (caller frees); it fails the test unless the script exits 0. */
static char *run(const char *verb, const char *const args[])
{
    char path[PATH_MAX], v[32], dir[PATH_MAX];
    char *argv[24] = {SCRIPT, v, dir};
    int n = 3;
    snprintf(v, sizeof v, "%s", verb);
    snprintf(dir, sizeof dir, "%s", hc_dir());
    for (; args && *args && n < 23; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    out_path(path, sizeof path);
    unlink(path);
    struct h_proc *p = h_spawn("cluster.sh", path, argv, NULL);
    h_proc_wait(p, CTL_TIMEOUT_MS);
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        text = calloc(1, size > 0 ? (size_t)size + 1 : 1);
        ck_assert_ptr_nonnull(text);
        len = size > 0 ? fread(text, 1, (size_t)size, f) : 0;
        fclose(f);
    }
    bool ok = h_proc_clean(p);
    h_proc_free(p);
    unlink(path);
    ck_assert_msg(ok, "%s %s %s failed: %.2000s", SCRIPT, verb, args && args[0] ? args[0] : "",
                  text ? text : "(no output)");
    if (!text) text = calloc(1, 1);
    ck_assert_ptr_nonnull(text);
    text[len] = '\0';
    return text;
}

static void node_arg(int n, char out[4])
{
    ck_assert_msg(n >= 1 && n <= HC_NODES, "no node %d", n);
    snprintf(out, 4, "%d", n);
}

int hc_node_port(int n)
{
    char arg[4];
    node_arg(n, arg);
    const char *const args[] = {arg, NULL};
    char *url = run("url", args);
    const char *colon = strrchr(url, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    ck_assert_msg(port > 0 && port < 65536, "node %d has no port in its URL %s", n, url);
    free(url);
    return (int)port;
}

int hc_node_of_port(int port)
{
    static int ports[HC_NODES + 1];
    for (int n = 1; n <= HC_NODES; n++) {
        if (!ports[n]) ports[n] = hc_node_port(n);
        if (ports[n] == port) return n;
    }
    return 0;
}

int hc_node_of_name(const char *name)
{
    static char names[HC_NODES + 1][128];
    for (int n = 1; n <= HC_NODES; n++) {
        if (!names[n][0]) {
            char arg[4];
            node_arg(n, arg);
            const char *const args[] = {arg, NULL};
            char *text = run("node", args);
            text[strcspn(text, "\n")] = '\0';
            snprintf(names[n], sizeof names[n], "%s", text);
            free(text);
        }
        if (!strcmp(names[n], name)) return n;
    }
    return 0;
}

long long hc_kill(int n)
{
    char arg[4];
    node_arg(n, arg);
    const char *const args[] = {arg, NULL};
    char *out = run("kill", args);
    long long ms = strtoll(out, NULL, 10);
    free(out);
    ck_assert_msg(ms > 0, "cluster.sh kill did not say when");
    return ms;
}

struct h_proc *hc_restart_begin(int n, const char *log)
{
    char arg[4], dir[PATH_MAX];
    node_arg(n, arg);
    snprintf(dir, sizeof dir, "%s", hc_dir());
    char *argv[] = {SCRIPT, "restart", dir, arg, NULL};
    return h_spawn("cluster.sh restart", log, argv, NULL);
}

void hc_restart(int n)
{
    char arg[4];
    node_arg(n, arg);
    const char *const args[] = {arg, NULL};
    free(run("restart", args));
}

bool hc_running(int n)
{
    char arg[4], dir[PATH_MAX], path[PATH_MAX];
    node_arg(n, arg);
    snprintf(dir, sizeof dir, "%s", hc_dir());
    out_path(path, sizeof path);
    char *argv[] = {SCRIPT, "running", dir, arg, NULL};
    struct h_proc *p = h_spawn("cluster.sh running", path, argv, NULL);
    h_proc_wait(p, CTL_TIMEOUT_MS);
    bool up = h_proc_clean(p);
    h_proc_free(p);
    unlink(path);
    return up;
}

void hc_heal(void)
{
    for (int n = 1; n <= HC_NODES; n++) {
        if (hc_running(n)) continue;
        printf("cluster: node %d was down at the start of the suite; restarting it\n", n);
        fflush(stdout);
        hc_restart(n);
    }
}

/* ---- queues ---- */

/* token cuts the next token out of *p: it skips delims, ends the token with
 * a NUL and moves *p past it; NULL when none is left. */
static char *token(char **p, const char *delims)
{
    char *t = *p + strspn(*p, delims);
    if (!*t) return NULL;
    size_t n = strcspn(t, delims);
    *p = t + n + (t[n] != '\0');
    t[n] = '\0';
    return t;
}

/* node_set reads "[a@localhost, b@localhost]" into a bit set of nodes. */
static unsigned node_set(char *list)
{
    unsigned set = 0;
    for (char *p = list, *tok; (tok = token(&p, "[], "));) {
        int n = hc_node_of_name(tok);
        if (n) set |= 1u << n;
    }
    return set;
}

/* parse_queue reads one line "name\tleader\tmembers\tonline" of list_queues. */
static bool parse_queue(char *line, const char *prefix, struct hc_queue *q)
{
    char *field[4];
    int n = 0;
    for (char *p = line; n < 4; n++) {
        field[n] = p;
        p = strchr(p, '\t');
        if (!p) {
            n++;
            break;
        }
        *p++ = '\0';
    }
    if (n < 4 || strncmp(field[0], prefix, strlen(prefix)) != 0) return false;
    *q = (struct hc_queue){0};
    snprintf(q->name, sizeof q->name, "%s", field[0]);
    q->leader = hc_node_of_name(field[1]);
    q->members = node_set(field[2]);
    q->online = node_set(field[3]);
    return true;
}

int hc_queues(int via, const char *prefix, struct hc_queue *out, int max)
{
    char arg[4];
    node_arg(via, arg);
    const char *const args[] = {
        arg, "list_queues", "--no-table-headers", "name", "leader", "members", "online", NULL};
    char *text = run("ctl", args);
    int n = 0;
    for (char *p = text, *line; n < max && (line = token(&p, "\n"));)
        if (parse_queue(line, prefix, &out[n])) n++;
    free(text);
    return n;
}

int hc_leader(int via, const char *queue)
{
    struct hc_queue q[32];
    int n = hc_queues(via, queue, q, 32);
    for (int i = 0; i < n; i++)
        if (!strcmp(q[i].name, queue)) return q[i].leader;
    ck_abort_msg("the cluster has no queue %s", queue);
    return 0;
}

/* ---- connections ---- */

/* socket_inodes lists the inodes of pid's sockets. */
static int socket_inodes(pid_t pid, unsigned long *out, int max)
{
    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char fd[320];
        snprintf(fd, sizeof fd, "%s/%s", path, e->d_name);
        ssize_t len = readlink(fd, link, sizeof link - 1);
        if (len <= 0) continue;
        link[len] = '\0';
        unsigned long inode;
        if (sscanf(link, "socket:[%lu]", &inode) == 1) out[n++] = inode;
    }
    closedir(d);
    return n;
}

/* broker_ports lists the local ports of pid's established TCP connections
 * to a node of the cluster, and that node of each. */
static int broker_ports(pid_t pid, int *local, int *node, int max)
{
    unsigned long inodes[MAX_SOCKETS];
    int n_inodes = socket_inodes(pid, inodes, MAX_SOCKETS), n = 0;
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    while (fgets(line, sizeof line, f) && n < max) {
        unsigned lport, rport, state;
        unsigned long inode;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %*s %*s %*s %*s %*s %lu", &lport, &rport, &state,
                   &inode) != 4 ||
            state != 1 /* ESTABLISHED */)
            continue;
        for (int i = 0; i < n_inodes; i++) {
            int nd = inodes[i] == inode ? hc_node_of_port((int)rport) : 0;
            if (!nd) continue;
            local[n] = (int)lport;
            node[n++] = nd;
        }
    }
    fclose(f);
    return n;
}

/* conn is one connection as list_connections shows it. */
struct conn {
    char pid[128]; /* the broker's process id of the connection, for close_connection */
    int node;
    int peer_port;
};

/* find_conn finds, among the broker's connections, the one of the local
 * ports given whose client called it name (any name when NULL). */
static bool find_conn(int via, const int *local, int n_local, const char *name, struct conn *c)
{
    char arg[4];
    node_arg(via, arg);
    const char *const args[] = {arg,    "list_connections", "--no-table-headers", "pid",
                                "port", "peer_port",        "client_properties",  NULL};
    char *text = run("ctl", args), want[160];
    snprintf(want, sizeof want, "{\"connection_name\",\"%s\"}", name ? name : "");
    bool found = false;
    for (char *p = text, *line; !found && (line = token(&p, "\n"));) {
        int port, peer;
        char pid[128];
        if (sscanf(line, "%127s %d %d", pid, &port, &peer) != 3) continue;
        if (name && !strstr(line, want)) continue;
        for (int i = 0; i < n_local && !found; i++) {
            if (local[i] != peer) continue;
            snprintf(c->pid, sizeof c->pid, "%s", pid);
            c->node = hc_node_of_port(port);
            c->peer_port = peer;
            found = true;
        }
    }
    free(text);
    return found;
}

int hc_proc_node(int via, pid_t pid, const char *name)
{
    int local[MAX_SOCKETS], node[MAX_SOCKETS];
    int n = broker_ports(pid, local, node, MAX_SOCKETS);
    struct conn c;
    return find_conn(via, local, n, name, &c) ? c.node : 0;
}

/* still_open tells whether pid still has a connection from local port port. */
static bool still_open(pid_t pid, int port)
{
    int local[MAX_SOCKETS], node[MAX_SOCKETS];
    int n = broker_ports(pid, local, node, MAX_SOCKETS);
    for (int i = 0; i < n; i++)
        if (local[i] == port) return true;
    return false;
}

void hc_place(int via, pid_t pid, const char *name, int node)
{
    long long deadline = h_mono_ms() + HC_PLACE_TIMEOUT_MS;
    int closed = 0;
    for (;;) {
        ck_assert_msg(h_mono_ms() < deadline,
                      "process %d's connection %s did not reach node %d (%d closed)", (int)pid,
                      name ? name : "", node, closed);
        int local[MAX_SOCKETS], nodes[MAX_SOCKETS];
        int n = broker_ports(pid, local, nodes, MAX_SOCKETS);
        struct conn c;
        if (!find_conn(via, local, n, name, &c)) {
            h_sleep_ms(100); /* reconnecting, or not yet seen by the broker */
            continue;
        }
        if (c.node == node) return;
        char arg[4];
        node_arg(via, arg);
        const char *const args[] = {arg, "close_connection", c.pid, "moved by the test", NULL};
        free(run("ctl", args));
        closed++;
        while (still_open(pid, c.peer_port) && h_mono_ms() < deadline)
            h_sleep_ms(20);
    }
}
