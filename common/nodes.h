/* nodes.h: the broker nodes that amqp_url names, and which one to try next.
 * amqp_url is one AMQP URL, or the URLs of one cluster's nodes separated by
 * commas ("amqp://u:p@mq-1:5672/,amqp://u:p@mq-2:5672/"). A broker session
 * (common/session.c) starts at a node picked at random, so that a fleet of
 * processes spreads over the cluster, and moves to the next node of the list
 * (wrapping around) after every failed attempt or lost connection.
 *
 * struct nodes is a value: nodes_parse fills it, nodes_free frees what it
 * owns. Labels ("host:port") name a node in logs without its credentials. */
#ifndef SLUICE_NODES_H
#define SLUICE_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* NODES_MAX bounds the list: a cluster has a handful of nodes. */
#define NODES_MAX 16
#define NODES_LABEL_MAX 280 /* a host name (255) and ":65535" */

struct nodes {
    size_t n;              /* nodes in the list, 1..NODES_MAX once parsed */
    size_t cur;            /* the node in use or to try next */
    char *urls[NODES_MAX]; /* owned, each one URL as written, without spaces */
    char labels[NODES_MAX][NODES_LABEL_MAX];
};

/* nodes_parse reads list: URLs separated by commas, spaces around each
 * ignored; each must start with amqp:// or amqps:// and be a URL
 * rabbitmq-c accepts. Returns 0 with ns filled (cur = 0), or -1 with err
 * (which never repeats a URL, since URLs hold passwords) and ns empty. */
__attribute__((warn_unused_result)) int nodes_parse(struct nodes *ns, const char *list, char *err,
                                                    size_t errlen);
/* nodes_valid tells whether nodes_parse would accept list. */
bool nodes_valid(const char *list);
void nodes_free(struct nodes *ns);

/* nodes_start makes a node picked from rnd (any 64-bit random value) the
 * current one. */
void nodes_start(struct nodes *ns, uint64_t rnd);
/* nodes_next makes the next node of the list the current one. */
void nodes_next(struct nodes *ns);
/* The current node's URL and label. */
const char *nodes_url(const struct nodes *ns);
const char *nodes_label(const struct nodes *ns);

#endif
