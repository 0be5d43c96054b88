/* itest_cluster.c: sluice on a three-node RabbitMQ cluster (scripts/cluster.sh,
 * docs/clustering.md), in quorum mode. An ingress and two workers, their
 * amqp_url the list of the three nodes, take a steady load while the node
 * that leads the queue the test route's requests go to is killed (SIGKILL).
 * The ingress's two connections and one worker are placed on that node
 * first, the other worker on another, so the kill costs each kind of client
 * its connection. The test checks the promises across the failover: every
 * submission is answered 202 or 503, every 202 reaches a final state,
 * succeeded, and the backend saw it (duplicates with the same
 * Idempotency-Key); the ingress, cut off from the node its status stream
 * came from, keeps answering status for every ID; the processes reconnect to
 * the surviving nodes without a restart and /readyz recovers. The node then
 * restarts, rejoins, and every queue ends with its three members online.
 * The figures of docs/clustering.md come from this test's output line.
 *
 * A second case holds the broker to what the sessions rely on when a stream's
 * leader dies: publishes to a stream on a channel of their own
 * (MQ_STREAM_CHANNEL, common/mq.h) that the broker confirms are in the
 * stream. On the channel that also publishes elsewhere, RabbitMQ 3.10.8
 * confirms some it never wrote (mq.h says why). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "harness.h"
#include "ledger.h"
#include "mq.h"

#define RATE 50.0        /* submissions per second */
#define PATH "/delay/20" /* the backend takes 20 ms a call */
#define WARMUP 100       /* 202s before the kill, and again after it */
#define SETTLE_MS 120000 /* for every accepted request to become final */
#define REPLICAS_MS 120000

/* requests_queue names the queue the requests of route go to: its lane
 * (common/topology.c; the test's routes have no limits, so not a lane-sac). */
static void requests_queue(struct h_stack *s, const char *route, char *out, size_t len)
{
    snprintf(out, len, "%s.lane.%s", h_stack_namespace(s), route);
}

/* answers counts the 202s answered after from_ms, and the other answers in other. */
static size_t answers(struct ledger *l, long long from_ms, size_t *other, size_t *waiting,
                      char *why, size_t whylen)
{
    size_t n, k = 0;
    *other = *waiting = 0;
    struct ledger_entry *e = ledger_copy(l, &n);
    for (size_t i = 0; i < n; i++) {
        if (e[i].code < 0) ++*waiting;
        if (e[i].answered_ms <= from_ms) continue;
        if (e[i].code == 202)
            k++;
        else if (++*other == 1)
            snprintf(why, whylen, "%d %s", e[i].code, e[i].why);
    }
    free(e);
    return k;
}

static void wait_accepted(struct ledger *l, long long from_ms, size_t want, int timeout_ms)
{
    long long deadline = h_mono_ms() + timeout_ms;
    size_t got, other, waiting;
    char why[128] = "";
    while ((got = answers(l, from_ms, &other, &waiting, why, sizeof why)) < want) {
        ck_assert_msg(h_mono_ms() < deadline,
                      "only %zu requests accepted in %d ms, not %zu (%zu other answers, the "
                      "first: %s; %zu waiting for one)",
                      got, timeout_ms, want, other, why, waiting);
        h_sleep_ms(100);
    }
}

/* status_of_all GETs the status of every request accepted so far through
 * the ingress and fails unless each one answers 200; returns how many. */
static size_t status_of_all(struct h_stack *s, struct ledger *l)
{
    size_t n, k = 0;
    struct ledger_entry *e = ledger_copy(l, &n);
    for (size_t i = 0; i < n; i++) {
        if (e[i].code != 202) continue;
        long http = 0;
        struct json_object *st = h_get_status(s, H_TOKEN, e[i].id, &http);
        ck_assert_msg(http == 200, "status of %s answered %ld: %s", e[i].id, http,
                      st ? json_object_to_json_string(st) : "(no JSON)");
        json_object_put(st);
        k++;
    }
    free(e);
    return k;
}

/* wait_connected waits until pid's connection name is on a node other than dead. */
static int wait_connected(int via, pid_t pid, const char *name, int dead)
{
    long long deadline = h_mono_ms() + 60000;
    for (;;) {
        int node = hc_proc_node(via, pid, name);
        if (node && node != dead) return node;
        ck_assert_msg(h_mono_ms() < deadline, "%s (pid %d) did not reconnect to a live node",
                      name ? name : "a worker", (int)pid);
        h_sleep_ms(200);
    }
}

/* wait_replicas waits until every queue of the namespace has a member on
 * each node and all of them online. */
static void wait_replicas(struct h_stack *s, int via)
{
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s.", h_stack_namespace(s));
    long long deadline = h_mono_ms() + REPLICAS_MS;
    for (;;) {
        struct hc_queue q[32];
        int n = hc_queues(via, prefix, q, 32), whole = 0;
        for (int i = 0; i < n; i++)
            whole += q[i].members == HC_ALL_NODES && q[i].online == HC_ALL_NODES && q[i].leader;
        if (n >= 3 && whole == n) return;
        ck_assert_msg(h_mono_ms() < deadline, "after %d ms, %d of %d queues have all replicas",
                      REPLICAS_MS, whole, n);
        h_sleep_ms(1000);
    }
}

/* longest_without_202 is the longest time in [from_ms, to_ms] between two
 * 202 answers (or from_ms and the first). */
static double longest_without_202(const struct ledger_entry *e, size_t n, long long from_ms,
                                  long long to_ms)
{
    long long prev = from_ms, longest = 0;
    for (size_t i = 0; i < n; i++) {
        long long at = e[i].answered_ms;
        if (e[i].code != 202 || at < from_ms || at > to_ms) continue;
        if (at - prev > longest) longest = at - prev;
        if (at > prev) prev = at;
    }
    return (double)longest / 1000;
}

/* backend_idle is the longest time in [from_ms, to_ms] the backend got no
 * new request (a first call). */
static double backend_idle(const struct ledger_entry *e, size_t n, long long from_ms,
                           long long to_ms)
{
    long long prev = from_ms, longest = 0;
    for (size_t i = 0; i < n; i++) {
        long long at = e[i].first_call_ms;
        if (!at || at < from_ms || at > to_ms) continue;
        if (at - prev > longest) longest = at - prev;
        if (at > prev) prev = at;
    }
    return (double)longest / 1000;
}

/* reconnect_s reads in a process's log how long after kill_ms its
 * connection called name (the session's name that starts the line) was up
 * again; -1 if it was not. */
static double reconnect_s(const char *log, const char *name, long long kill_ms)
{
    char line[2048], want[128];
    snprintf(want, sizeof want, "\"%s: connected to the broker at", name);
    FILE *f = fopen(log, "r");
    ck_assert_msg(f != NULL, "cannot open %s", log);
    double s = -1;
    while (s < 0 && fgets(line, sizeof line, f)) {
        const char *ts = strstr(line, "\"ts\":\"");
        long long at = ts && strstr(line, want) ? ledger_time_ms(ts + 6) : -1;
        if (at > kill_ms) s = (double)(at - kill_ms) / 1000;
    }
    fclose(f);
    return s;
}

/* times are the moments of the test the figures are about. */
struct times {
    long long kill, reconnected, restart, replicas;
    double publisher_s, events_s, worker_s; /* reconnections after the kill */
};

/* figures prints what docs/clustering.md quotes, from the settled ledger. */
static void figures(struct ledger *l, const struct ledger_totals *t, const struct times *at)
{
    size_t n, waiting = 0, unfinished = 0;
    struct ledger_entry *e = ledger_copy(l, &n);
    for (size_t i = 0; i < n; i++) {
        /* Submissions waiting for their answer, and accepted ones not yet
         * final, when the node died. */
        if (e[i].sent_ms <= at->kill && (!e[i].answered_ms || e[i].answered_ms > at->kill))
            waiting++;
        if (e[i].code == 202 && e[i].answered_ms <= at->kill && e[i].final_ms > at->kill)
            unfinished++;
    }
    printf("cluster figures: {\"kill\":{\"longest_without_202_s\":%.2f,"
           "\"backend_idle_s\":%.2f,\"readyz_not_ready_s\":%.2f,\"reconnected_s\":"
           "{\"publisher\":%.2f,\"events\":%.2f,\"worker\":%.2f},"
           "\"submissions_waiting\":%zu,\"accepted_not_final\":%zu},"
           "\"rejoin\":{\"longest_without_202_s\":%.2f,\"backend_idle_s\":%.2f,"
           "\"replicas_back_s\":%.2f},\"duplicate_calls\":%zu,\"unavailable_503\":%zu,"
           "\"called_without_202\":%zu}\n",
           longest_without_202(e, n, at->kill, at->restart),
           backend_idle(e, n, at->kill, at->restart),
           (double)ledger_not_ready_ms(l, 0, at->kill) / 1000, at->publisher_s, at->events_s,
           at->worker_s, waiting, unfinished,
           longest_without_202(e, n, at->restart, at->replicas + 5000),
           backend_idle(e, n, at->restart, at->replicas + 5000),
           (double)(at->replicas - at->restart) / 1000, t->duplicates, t->unavailable,
           t->unaccepted_called);
    fflush(stdout);
    free(e);
}

START_TEST(test_leader_killed_under_load)
{
    ck_assert_msg(h_quorum_mode(), "the cluster suite runs in quorum mode (run-tests.sh cluster)");
    hc_heal();
    struct h_stack *s = h_stack_new();
    h_stack_start(s, 2);
    char queue[160], path[4096];
    requests_queue(s, "echo", queue, sizeof queue);
    int leader = hc_leader(1, queue), other = leader % HC_NODES + 1;
    ck_assert_msg(leader, "%s has no leader", queue);
    pid_t ingress = h_proc_pid(h_stack_ingress(s));
    pid_t w0 = h_proc_pid(h_stack_worker(s, 0)), w1 = h_proc_pid(h_stack_worker(s, 1));
    hc_place(other, ingress, "sluice-ingress publisher", leader);
    hc_place(other, ingress, "sluice-ingress events", leader);
    hc_place(other, w0, "sluice-worker", leader);
    hc_place(other, w1, "sluice-worker", other);
    char ready[128];
    snprintf(ready, sizeof ready, "%s/readyz", h_stack_url(s));
    h_wait_http(ready, 200, H_READY_TIMEOUT_MS, h_stack_ingress(s));
    printf("cluster: %s leads on node %d; the ingress and worker 0 on it, worker 1 on node %d\n",
           queue, leader, other);

    const char *urls[] = {h_stack_url(s)};
    struct ledger *l = ledger_start(urls, 1, H_TOKEN, "echo", PATH, RATE);
    wait_accepted(l, 0, WARMUP, 60000);
    struct times at = {.kill = hc_kill(leader)};

    /* Its status stream cut off, the ingress still knows every request. */
    size_t known = status_of_all(s, l);
    printf("cluster: node %d killed; the ingress answered status for all %zu accepted IDs\n",
           leader, known);
    int pub = wait_connected(other, ingress, "sluice-ingress publisher", leader);
    int ev = wait_connected(other, ingress, "sluice-ingress events", leader);
    int n0 = wait_connected(other, w0, "sluice-worker", leader);
    wait_connected(other, w0, "sluice-worker claims", leader);
    h_wait_http(ready, 200, 60000, h_stack_ingress(s));
    at.reconnected = ledger_now_ms();
    wait_accepted(l, ledger_now_ms(), WARMUP, 60000);
    printf("cluster: reconnected without a restart: publisher to node %d, events to node %d, "
           "worker 0 to node %d; %s now leads on node %d\n",
           pub, ev, n0, queue, hc_leader(other, queue));

    at.restart = ledger_now_ms();
    hc_restart(leader);
    wait_replicas(s, other);
    at.replicas = ledger_now_ms();
    printf("cluster: node %d restarted and every queue has its 3 replicas online\n", leader);
    wait_accepted(l, ledger_now_ms(), RATE, 60000);
    ledger_stop(l);

    ledger_settle(l, h_stack_url(s), H_TOKEN, SETTLE_MS);
    snprintf(path, sizeof path, "%s/backend-access.log", h_stack_dir(s));
    ledger_reconcile(l, path);
    snprintf(path, sizeof path, "%s/ledger.txt", h_stack_dir(s));
    ledger_write(l, path);
    struct ledger_totals t;
    ledger_totals(l, &t);
    ledger_print(stdout, "cluster ledger", &t);
    snprintf(path, sizeof path, "%s/ingress.log", h_stack_dir(s));
    at.publisher_s = reconnect_s(path, "sluice-ingress publisher", at.kill);
    at.events_s = reconnect_s(path, "sluice-ingress events", at.kill);
    snprintf(path, sizeof path, "%s/worker-0.log", h_stack_dir(s));
    at.worker_s = reconnect_s(path, "sluice-worker", at.kill);
    figures(l, &t, &at);
    ledger_check_totals(&t, false);
    ck_assert(h_proc_running(h_stack_ingress(s)));
    ck_assert(h_proc_running(h_stack_worker(s, 0)));
    ck_assert(h_proc_running(h_stack_worker(s, 1)));
    ledger_free(l);
    h_stack_teardown(s);
}
END_TEST

/* ---- stream publishes across a leader kill ---- */

#define GAP 20         /* publishes to a classic queue first, on the main channel */
#define STREAM_PUBS 32 /* then to the stream: one before the kill, the rest after */
#define ELECTION_MS 15000

static void node_url(int n, char *out, size_t len)
{
    snprintf(out, len, "amqp://guest:guest@127.0.0.1:%d/", hc_node_port(n));
}

/* pump reads mq's frames, marking the stream channel's confirms, for at
 * most ms: until publishes 1..upto all have theirs. */
static void pump(struct mq *mq, int ms, bool acked[], bool nacked[], int upto)
{
    long long end = h_mono_ms() + ms;
    for (;;) {
        int done = 1;
        while (done <= upto && (acked[done] || nacked[done]))
            done++;
        if (done > upto || h_mono_ms() >= end) break;
        struct mq_event ev;
        int got = mq_next(mq, &ev, 50);
        ck_assert_msg(got >= 0, "the publishing connection failed: %s", mq_strerror(got));
        if (!got) continue;
        if (ev.channel == MQ_STREAM_CHANNEL && (ev.kind == MQ_ACK || ev.kind == MQ_NACK))
            for (uint64_t t = ev.multiple ? 1 : ev.tag; t <= ev.tag && t <= STREAM_PUBS; t++)
                if (!acked[t] && !nacked[t]) (ev.kind == MQ_ACK ? acked : nacked)[t] = true;
        mq_event_release(&ev);
    }
}

static void publish(struct mq *mq, const char *stream, int i)
{
    char body[16];
    int n = snprintf(body, sizeof body, "m%d", i);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    uint64_t seq;
    ck_assert_int_eq(mq_publish_stream(mq, stream, &props, body, (size_t)n, &seq), 0);
    ck_assert_int_eq(seq, (uint64_t)i + 1);
}

/* read_back marks which of the stream's messages "m<i>" it holds. */
static void read_back(const char *url, const char *stream, bool got[])
{
    char err[256];
    struct mq *mq;
    ck_assert_msg(mq_open(&mq, url, "itest stream reader", 5000, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(mq_qos(mq, 1000), 0);
    ck_assert_int_eq(mq_consume(mq, stream, "first"), 0);
    long long end = h_mono_ms() + 5000;
    for (int held = 0; held < STREAM_PUBS && h_mono_ms() < end;) {
        struct mq_event ev;
        int rc = mq_next(mq, &ev, 50);
        ck_assert_int_ge(rc, 0);
        if (rc && ev.kind == MQ_DELIVERY) {
            int i = -1;
            char body[16] = "";
            memcpy(body, ev.msg.body.bytes, ev.msg.body.len < 15 ? ev.msg.body.len : 15);
            if (sscanf(body, "m%d", &i) == 1 && i >= 0 && i < STREAM_PUBS && !got[i]) {
                got[i] = true;
                held++;
            }
            ck_assert_int_eq(mq_ack(mq, ev.tag, false), 0);
        }
        if (rc) mq_event_release(&ev);
    }
    mq_close(mq);
}

START_TEST(test_stream_publishes_survive_leader_kill)
{
    hc_heal();
    const int leader = 1, client = 2;
    char leader_url[96], client_url[96], stream[64], queue[64], err[256];
    node_url(leader, leader_url, sizeof leader_url);
    node_url(client, client_url, sizeof client_url);
    snprintf(stream, sizeof stream, "itest-stream-%d", (int)getpid());
    snprintf(queue, sizeof queue, "itest-classic-%d", (int)getpid());

    /* The stream leads on node 1: declared from there, client-local. */
    struct mq *mq;
    amqp_table_entry_t e[2] = {
        {.key = amqp_cstring_bytes("x-queue-type"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("stream")}},
        {.key = amqp_cstring_bytes("x-queue-leader-locator"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8,
                   .value.bytes = amqp_cstring_bytes("client-local")}}};
    amqp_table_t args = {.num_entries = 2, .entries = e};
    ck_assert_msg(mq_open(&mq, leader_url, "itest stream", 5000, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(mq_declare_queue(mq, stream, args, err, sizeof err) == 0, "%s", err);
    mq_close(mq);
    ck_assert_int_eq(hc_leader(client, stream), leader);

    /* From node 2, as a worker does: publishes elsewhere on the main
     * channel, the stream's on the stream channel, one in flight at the kill. */
    bool acked[STREAM_PUBS + 1] = {0}, nacked[STREAM_PUBS + 1] = {0}, got[STREAM_PUBS] = {0};
    ck_assert_msg(mq_open(&mq, client_url, "itest publisher", 5000, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_msg(mq_declare_queue(mq, queue, amqp_empty_table, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(mq_confirm_select(mq), 0);
    ck_assert_int_eq(mq_open_stream_channel(mq, true), 0);
    for (int i = 0; i < GAP; i++)
        ck_assert_int_eq(mq_publish(mq, "", queue, NULL, "q", 1, NULL), 0);
    publish(mq, stream, 0);
    pump(mq, 5000, acked, nacked, 1);
    ck_assert_msg(acked[1], "the first stream publish was not confirmed");
    hc_kill(leader);
    publish(mq, stream, 1);
    pump(mq, ELECTION_MS, acked, nacked, 2); /* its confirm comes once a new leader has it */
    for (int i = 2; i < STREAM_PUBS; i++)
        publish(mq, stream, i);
    pump(mq, 5000, acked, nacked, STREAM_PUBS);
    mq_close(mq);

    read_back(client_url, stream, got);
    int n_acked = 0, n_nacked = 0, missing = 0, held = 0;
    for (int i = 0; i < STREAM_PUBS; i++) {
        n_acked += acked[i + 1];
        n_nacked += nacked[i + 1];
        held += got[i];
        missing += acked[i + 1] && !got[i];
    }
    printf("stream across a leader kill: %d published, %d confirmed, %d refused, %d in the "
           "stream, %d confirmed but missing\n",
           STREAM_PUBS, n_acked, n_nacked, held, missing);
    fflush(stdout);
    hc_restart(leader);
    ck_assert_msg(missing == 0, "%d confirmed stream publishes are not in the stream", missing);
    ck_assert_msg(n_acked + n_nacked == STREAM_PUBS, "%d stream publishes got no confirm",
                  STREAM_PUBS - n_acked - n_nacked);
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *stream = tcase_create("stream");
    tcase_set_timeout(stream, 300);
    tcase_add_test(stream, test_stream_publishes_survive_leader_kill);
    suite_add_tcase(s, stream);
    TCase *tc = tcase_create("failover");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_leader_killed_under_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cluster_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
