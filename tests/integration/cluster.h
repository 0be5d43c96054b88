/* cluster.h: the three-node RabbitMQ cluster of scripts/cluster.sh, for the
 * suites that `scripts/run-tests.sh cluster` runs (itest_cluster, itest_soak).
 * run-tests.sh starts the cluster, sets SLUICE_TEST_CLUSTER_DIR and puts the
 * three nodes' URLs, comma-separated, in SLUICE_TEST_AMQP_URL; these
 * functions kill and restart nodes, read where queues lead and have their
 * members, and see (and move) which node a process is connected to.
 *
 * Nodes are numbered 1..HC_NODES, in the order of the URL list. Like the
 * harness, every function fails the running test on error. */
#ifndef SLUICE_CLUSTER_H
#define SLUICE_CLUSTER_H

#include <stdbool.h>
#include <sys/types.h>

#include "harness.h"

#define HC_NODES 3
#define HC_RESTART_TIMEOUT_MS 180000

/* hc_dir is SLUICE_TEST_CLUSTER_DIR; it fails the test when unset. */
const char *hc_dir(void);
/* hc_node_port is node n's AMQP port; hc_node_of_port the node listening
 * on port, 0 if none. */
int hc_node_port(int n);
int hc_node_of_port(int port);
/* hc_node_of_name is the node called name ("c123n2@localhost"), 0 if none. */
int hc_node_of_name(const char *name);

/* hc_kill SIGKILLs node n and returns once its VM is gone, with the Unix
 * time of the kill in milliseconds. */
long long hc_kill(int n);
/* hc_restart starts node n again and returns once it runs (it rejoins the
 * cluster by itself). hc_restart_begin does the same in the background and
 * returns the script's process (log: its output), for a caller that polls
 * it with h_proc_running and then h_proc_assert_clean. */
void hc_restart(int n);
struct h_proc *hc_restart_begin(int n, const char *log);
bool hc_running(int n);
/* hc_heal restarts every node that does not run, so that a suite starts on
 * a whole cluster even when the one before it failed with a node down. */
void hc_heal(void);

/* hc_queue is one queue as `rabbitmqctl list_queues` describes it; nodes are
 * bit sets, node n being bit 1 << n. */
struct hc_queue {
    char name[160];
    int leader; /* node, 0 when none is known */
    unsigned members, online;
};
#define HC_ALL_NODES 0xEu /* nodes 1, 2 and 3 */

/* hc_queues lists the queues whose names start with prefix, asking node via
 * (which must run); returns how many were written to out (at most max). */
int hc_queues(int via, const char *prefix, struct hc_queue *out, int max);
/* hc_leader is the node leading queue, 0 when the broker names none. */
int hc_leader(int via, const char *queue);

/* hc_proc_node is the node of process pid's connection that the client
 * named name (the connection_name the management UI shows, e.g. "sluice-ingress
 * publisher"); 0 when it has no such connection right now. */
int hc_proc_node(int via, pid_t pid, const char *name);
/* hc_place moves that connection of pid to node: it closes the connection
 * through the broker until the process, going round its URL list, has
 * reconnected to node. Fails the test after HC_PLACE_TIMEOUT_MS. */
#define HC_PLACE_TIMEOUT_MS 60000
void hc_place(int via, pid_t pid, const char *name, int node);

#endif
