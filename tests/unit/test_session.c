/* test_session.c: a broker session's way round the nodes of amqp_url
 * (common/session.c with common/nodes.c), against real sockets: three
 * loopback listeners that accept each connection and close it at once, so
 * every attempt fails at the AMQP handshake. Each failed attempt goes to the
 * next node of the list, wrapping around; a node that refuses connections
 * (nothing listens) is passed over the same way; sessions created together
 * start on different nodes. No broker is needed. */
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "session.h"

#define N_NODES 3
#define ATTEMPTS 9
#define HOUR_MS 3600000

/* closer accepts every connection on its listeners, notes which listener
 * took it, and closes it: the client's handshake then fails at once. */
struct closer {
    int fds[N_NODES];
    int ports[N_NODES];
    int stop[2]; /* a pipe: written to stop the thread */
    pthread_mutex_t lock;
    int order[64]; /* listener index of each accepted connection */
    int n;
    pthread_t thread;
};

static void *closer_main(void *arg)
{
    struct closer *c = arg;
    struct pollfd pfd[N_NODES + 1];
    for (int i = 0; i < N_NODES; i++)
        pfd[i] = (struct pollfd){.fd = c->fds[i], .events = POLLIN};
    pfd[N_NODES] = (struct pollfd){.fd = c->stop[0], .events = POLLIN};
    while (poll(pfd, N_NODES + 1, -1) > 0 && !pfd[N_NODES].revents) {
        for (int i = 0; i < N_NODES; i++) {
            if (!(pfd[i].revents & POLLIN)) continue;
            int fd = accept(c->fds[i], NULL, NULL);
            if (fd < 0) continue;
            close(fd);
            pthread_mutex_lock(&c->lock);
            if (c->n < 64) c->order[c->n++] = i;
            pthread_mutex_unlock(&c->lock);
        }
    }
    return NULL;
}

static int listen_loopback(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void closer_start(struct closer *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < N_NODES; i++)
        c->fds[i] = listen_loopback(&c->ports[i]);
    ck_assert_int_eq(pipe(c->stop), 0);
    ck_assert_int_eq(pthread_create(&c->thread, NULL, closer_main, c), 0);
}

static void closer_stop(struct closer *c)
{
    ck_assert_int_eq(write(c->stop[1], "x", 1), 1);
    pthread_join(c->thread, NULL);
    for (int i = 0; i < N_NODES; i++)
        close(c->fds[i]);
    close(c->stop[0]);
    close(c->stop[1]);
}

/* accepted waits until the closer noted n connections and returns the i-th's listener. */
static int accepted(struct closer *c, int n, int i)
{
    for (int tries = 0; tries < 5000; tries++) {
        pthread_mutex_lock(&c->lock);
        int got = c->n, who = got >= n ? c->order[i] : -1;
        pthread_mutex_unlock(&c->lock);
        if (got >= n) return who;
        usleep(1000);
    }
    ck_abort_msg("the closer saw %d connections, not %d", c->n, n);
    return -1;
}

static void load_cfg(struct cfg *cfg, const int ports[N_NODES])
{
    char doc[512], err[256];
    snprintf(doc, sizeof doc,
             "{\"amqp_url\":\"amqp://127.0.0.1:%d/, amqp://127.0.0.1:%d/,amqp://127.0.0.1:%d/\"}",
             ports[0], ports[1], ports[2]);
    ck_assert_msg(cfg_load_string(cfg, doc, "test", err, sizeof err) == 0, "%s", err);
}

static int node_index(const struct session *s, const int ports[N_NODES])
{
    char label[32];
    for (int i = 0; i < N_NODES; i++) {
        snprintf(label, sizeof label, "127.0.0.1:%d", ports[i]);
        if (!strcmp(session_node(s), label)) return i;
    }
    ck_abort_msg("session_node is %s, none of the nodes", session_node(s));
    return -1;
}

/* Each failed attempt goes to the next node: the listeners see the
 * attempts in list order from wherever the session started, and
 * session_node names the node the next attempt goes to. */
START_TEST(test_attempts_go_round)
{
    struct closer c;
    struct cfg cfg;
    closer_start(&c);
    load_cfg(&cfg, c.ports);
    struct session_params p = {.cfg = &cfg, .name = "test"};
    struct session *s = session_new(&p);
    ck_assert_ptr_nonnull(s);
    int start = node_index(s, c.ports);
    int64_t now = clock_mono_ms();
    for (int i = 0; i < ATTEMPTS; i++) {
        ck_assert_int_eq(node_index(s, c.ports), (start + i) % N_NODES);
        session_run(s, now);
        ck_assert(!session_up(s));
        ck_assert_int_eq(accepted(&c, i + 1, i), (start + i) % N_NODES);
        /* The next attempt waits for the backoff (at most 5.1 s): not yet... */
        ck_assert_int_gt(session_timeout_ms(s, now, HOUR_MS), 0);
        ck_assert_int_le(session_timeout_ms(s, now, HOUR_MS), 5100);
        now += 5100; /* ...and then it is due. */
        ck_assert_int_eq(session_timeout_ms(s, now, HOUR_MS), 0);
    }
    session_free(s);
    cfg_free(&cfg);
    closer_stop(&c);
}
END_TEST

/* A node where nothing listens (connection refused) is passed over like
 * one that drops the handshake. */
START_TEST(test_refusing_node_passed_over)
{
    struct closer c;
    struct cfg cfg;
    closer_start(&c);
    int refusing;
    close(listen_loopback(&refusing)); /* a port where nothing listens any more */
    int ports[N_NODES] = {c.ports[0], refusing, c.ports[2]};
    load_cfg(&cfg, ports);
    struct session_params p = {.cfg = &cfg, .name = "test"};
    struct session *s = session_new(&p);
    ck_assert_ptr_nonnull(s);
    int64_t now = clock_mono_ms();
    int seen = 0;
    for (int i = 0; i < 6; i++) {
        int node = node_index(s, ports);
        session_run(s, now);
        now += 5100;
        if (node != 1) {
            ck_assert_int_eq(accepted(&c, seen + 1, seen), node);
            seen++;
        }
        ck_assert_int_eq(node_index(s, ports), (node + 1) % N_NODES);
    }
    ck_assert_int_eq(seen, 4);
    session_free(s);
    cfg_free(&cfg);
    closer_stop(&c);
}
END_TEST

/* Processes started together do not all go to one node. */
START_TEST(test_sessions_spread)
{
    int ports[N_NODES] = {1, 2, 3}; /* never connected to */
    struct cfg cfg;
    load_cfg(&cfg, ports);
    int count[N_NODES] = {0};
    struct session_params p = {.cfg = &cfg, .name = "test"};
    for (int i = 0; i < 60; i++) {
        struct session *s = session_new(&p);
        ck_assert_ptr_nonnull(s);
        count[node_index(s, ports)]++;
        session_free(s);
    }
    for (int i = 0; i < N_NODES; i++)
        ck_assert_msg(count[i] > 0, "no session of 60 started on node %d", i);
    cfg_free(&cfg);
}
END_TEST

static Suite *session_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("session");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_attempts_go_round);
    tcase_add_test(tc, test_refusing_node_passed_over);
    tcase_add_test(tc, test_sessions_spread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init("test", LOG_ERROR);
    SRunner *sr = srunner_create(session_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
