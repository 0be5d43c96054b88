/* itest_soak.c: the chaos soak (`make soak`, and a 2-minute run in `make
 * test`). Against the three-node cluster, in quorum mode, two ingress
 * replicas and three workers take a steady load for SOAK_S seconds (default
 * 600) while three actors SIGKILL and restart, at random moments, a worker,
 * an ingress replica and a broker node: one of each kind down at a time, so
 * never two nodes at once, and a node is killed again only once every queue
 * has its three replicas back. The ledger (tests/integration/ledger.h) holds
 * every answer; at the end every request that got a 202 must be final and
 * succeeded and seen by the backend, and every repeated backend call must
 * carry the request's own Idempotency-Key. The totals are printed as one
 * line ("soak ledger: {...}"), with the chaos actors' counts.
 *
 * SOAK_RATE (submissions per second, default 40) and SOAK_SEED (to replay a
 * run's random moments, printed at the start) change the run. */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "harness.h"
#include "ledger.h"

#define N_INGRESS 2
#define N_WORKERS 3
#define PATH "/delay/50" /* the backend takes 50 ms a call */
#define TICK_MS 200
#define START_MS 120000  /* a restarted process or node must be up within this */
#define SETTLE_MS 300000 /* for every accepted request to become final */

/* ---- processes ---- */

enum kind { WORKER, INGRESS, NODE, N_KINDS };
static const char *const kind_name[N_KINDS] = {"worker", "ingress", "node"};

/* member is one ingress replica or worker: its process and its ports. */
struct member {
    enum kind kind;
    int index;
    int port; /* ingress: HTTP; worker: metrics (/healthz) */
    struct h_proc *proc;
    char url[64];
};

struct soak {
    struct h_stack *s;
    const char *config;
    struct member ingress[N_INGRESS], workers[N_WORKERS];
    uint64_t rnd;
    long long t0;      /* when the load started, monotonic */
    long long t0_real; /* the same moment, Unix milliseconds */
};

static uint64_t next_rand(struct soak *k)
{
    /* xorshift64*: good enough to pick moments and victims. */
    k->rnd ^= k->rnd >> 12;
    k->rnd ^= k->rnd << 25;
    k->rnd ^= k->rnd >> 27;
    return k->rnd * 0x2545F4914F6CDD1DULL;
}

/* between picks a whole number in [lo, hi]. */
static long between(struct soak *k, long lo, long hi)
{
    return lo + (long)(next_rand(k) % (uint64_t)(hi - lo + 1));
}

static void spawn(struct soak *k, struct member *m)
{
    char bin[PATH_MAX], log[PATH_MAX], name[32], env[64];
    snprintf(bin, sizeof bin, "%s/%s", h_bin_dir(),
             m->kind == INGRESS ? "sluice-ingress" : "sluice-worker");
    snprintf(log, sizeof log, "%s/%s-%d.log", h_stack_dir(k->s), kind_name[m->kind], m->index);
    snprintf(name, sizeof name, "%s-%d", kind_name[m->kind], m->index);
    snprintf(env, sizeof env, "%s=127.0.0.1:%d",
             m->kind == INGRESS ? "SLUICE_LISTEN" : "SLUICE_METRICS_LISTEN", m->port);
    char *argv[] = {bin, "--config", (char *)k->config, NULL};
    char *envp[] = {env, NULL};
    h_proc_free(m->proc);
    m->proc = h_spawn(name, log, argv, envp);
}

/* member_up tells whether m answers: /readyz for an ingress, /healthz for a worker. */
static bool member_up(struct member *m)
{
    char url[96];
    snprintf(url, sizeof url, "%s/%s", m->url, m->kind == INGRESS ? "readyz" : "healthz");
    struct h_resp *r = h_request("GET", url, NULL, NULL, 0);
    bool up = r->status == 200;
    h_resp_free(r);
    if (!up && !h_proc_running(m->proc)) {
        h_proc_assert_clean(m->proc);
        ck_abort_msg("%s %d exited by itself; log %s", kind_name[m->kind], m->index,
                     h_proc_log(m->proc));
    }
    return up;
}

static void start_fleet(struct soak *k)
{
    int used[N_INGRESS + N_WORKERS];
    for (int i = 0; i < N_INGRESS + N_WORKERS; i++) {
        struct member *m = i < N_INGRESS ? &k->ingress[i] : &k->workers[i - N_INGRESS];
        *m = (struct member){.kind = i < N_INGRESS ? INGRESS : WORKER,
                             .index = i < N_INGRESS ? i : i - N_INGRESS};
        bool fresh;
        do { /* h_free_port may hand out a port twice in a row */
            m->port = h_free_port();
            fresh = true;
            for (int j = 0; j < i; j++)
                fresh &= used[j] != m->port;
        } while (!fresh);
        used[i] = m->port;
        snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", m->port);
        spawn(k, m);
    }
    for (int i = 0; i < N_INGRESS + N_WORKERS; i++) {
        struct member *m = i < N_INGRESS ? &k->ingress[i] : &k->workers[i - N_INGRESS];
        long long deadline = h_mono_ms() + START_MS;
        while (!member_up(m)) {
            ck_assert_msg(h_mono_ms() < deadline, "%s %d did not come up", kind_name[m->kind],
                          m->index);
            h_sleep_ms(100);
        }
    }
}

/* stop_fleet stops every process still running and fails unless each one
 * exited cleanly (the killed ones excepted). */
static void stop_fleet(struct soak *k)
{
    struct member *all[N_INGRESS + N_WORKERS];
    for (int i = 0; i < N_INGRESS + N_WORKERS; i++)
        all[i] = i < N_INGRESS ? &k->ingress[i] : &k->workers[i - N_INGRESS];
    for (int i = 0; i < N_INGRESS + N_WORKERS; i++)
        h_proc_term(all[i]->proc);
    for (int i = 0; i < N_INGRESS + N_WORKERS; i++)
        h_proc_wait(all[i]->proc, H_STOP_TIMEOUT_MS);
    for (int i = 0; i < N_INGRESS + N_WORKERS; i++) {
        h_proc_assert_clean(all[i]->proc);
        h_proc_free(all[i]->proc);
        all[i]->proc = NULL;
    }
}

/* ---- the chaos actors ---- */

enum phase { WAITING, DOWN, STARTING };

/* actor kills and restarts members of one kind, one at a time. */
struct actor {
    enum kind kind;
    enum phase phase;
    long long at; /* when the current phase ends (WAITING, DOWN), monotonic */
    int victim;   /* member index, or node 1..3 */
    int kills;
    long long since; /* when the victim was killed */
    double longest_down_s;
    struct h_proc *restart; /* a node's restart script while it runs */
    long long next_check;
};

/* Kills come at random moments: the first within the run's first quarter
 * or so, then every lo..hi seconds after the victim is back. */
static const long gap_s[N_KINDS][2] = {{8, 25}, {12, 35}, {25, 60}};

/* No kill starts in the last tail_s seconds of the run, about the time its
 * victim takes to be back (a node: 15-25 s to restart, then its replicas):
 * the run waits for the last victim before it settles, and a node killed in
 * the last seconds made a 2-minute run last up to a minute longer. The first
 * kill of each kind still comes within 60 s, so a run of 90 s or more kills
 * each kind. */
static const long tail_s[N_KINDS] = {5, 15, 30};

static void schedule(struct soak *k, struct actor *a)
{
    a->phase = WAITING;
    a->at = h_mono_ms() + 1000 * between(k, gap_s[a->kind][0], gap_s[a->kind][1]);
}

static void kill_one(struct soak *k, struct actor *a)
{
    a->kills++;
    a->since = h_mono_ms();
    a->phase = DOWN;
    a->at = a->since + between(k, 500, 5000); /* how long it stays down */
    if (a->kind == NODE) {
        a->victim = (int)between(k, 1, HC_NODES);
        hc_kill(a->victim);
    } else {
        struct member *m = a->kind == INGRESS ? &k->ingress[between(k, 0, N_INGRESS - 1)]
                                              : &k->workers[between(k, 0, N_WORKERS - 1)];
        a->victim = m->index;
        h_proc_kill(m->proc);
    }
    printf("soak: %6.1f s: killed %s %d\n", (double)(a->since - k->t0) / 1000, kind_name[a->kind],
           a->victim);
    fflush(stdout);
}

static void restart_one(struct soak *k, struct actor *a)
{
    a->phase = STARTING;
    a->at = h_mono_ms() + START_MS;
    if (a->kind == NODE) {
        char log[PATH_MAX];
        snprintf(log, sizeof log, "%s/restart-node-%d.log", h_stack_dir(k->s), a->victim);
        a->restart = hc_restart_begin(a->victim, log);
    } else {
        spawn(k, a->kind == INGRESS ? &k->ingress[a->victim] : &k->workers[a->victim]);
    }
}

/* replicas_back tells whether every queue of the namespace has its three
 * members online, asking a node other than the one that was down. */
static bool replicas_back(struct soak *k, int down)
{
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s.", h_stack_namespace(k->s));
    struct hc_queue q[32];
    int n = hc_queues(down % HC_NODES + 1, prefix, q, 32), whole = 0;
    for (int i = 0; i < n; i++)
        whole += q[i].members == HC_ALL_NODES && q[i].online == HC_ALL_NODES && q[i].leader;
    return n >= 3 && whole == n;
}

/* is_back tells whether the actor's victim is back in service. */
static bool is_back(struct soak *k, struct actor *a)
{
    if (a->kind != NODE)
        return member_up(a->kind == INGRESS ? &k->ingress[a->victim] : &k->workers[a->victim]);
    if (a->restart) {
        if (h_proc_running(a->restart)) return false;
        h_proc_assert_clean(a->restart);
        h_proc_free(a->restart);
        a->restart = NULL;
    }
    if (h_mono_ms() < a->next_check) return false;
    a->next_check = h_mono_ms() + 2000; /* each look costs a rabbitmqctl run */
    return replicas_back(k, a->victim);
}

/* act moves an actor on; no new kill starts past end minus its kind's tail. */
static void act(struct soak *k, struct actor *a, long long end)
{
    long long now = h_mono_ms();
    switch (a->phase) {
    case WAITING:
        if (now < end - 1000 * tail_s[a->kind] && now >= a->at) kill_one(k, a);
        break;
    case DOWN:
        if (now >= a->at) restart_one(k, a);
        break;
    case STARTING:
        ck_assert_msg(now < a->at, "%s %d not back %d s after its restart", kind_name[a->kind],
                      a->victim, START_MS / 1000);
        if (!is_back(k, a)) break;
        double down = (double)(h_mono_ms() - a->since) / 1000;
        if (down > a->longest_down_s) a->longest_down_s = down;
        printf("soak: %6.1f s: %s %d back after %.1f s\n", (double)(h_mono_ms() - k->t0) / 1000,
               kind_name[a->kind], a->victim, down);
        fflush(stdout);
        schedule(k, a);
        break;
    }
}

/* ---- the run ---- */

static long env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long n = strtol(v, &end, 10);
    ck_assert_msg(*end == '\0' && n >= min && n <= max, "%s must be %ld..%ld (got %s)", name, min,
                  max, v);
    return n;
}

START_TEST(test_soak)
{
    ck_assert_msg(h_quorum_mode(), "the soak runs in quorum mode (run-tests.sh cluster)");
    long seconds = env_long("SOAK_S", 600, 90, 86400); /* see tail_s */
    long rate = env_long("SOAK_RATE", 40, 1, 10000);
    struct soak k = {
        .rnd = (uint64_t)env_long("SOAK_SEED", (long)(time(NULL) & 0xffffff), 1, LONG_MAX)};
    printf("soak: %ld s at %ld requests/s, seed %llu (SOAK_SEED replays the moments)\n", seconds,
           rate, (unsigned long long)k.rnd);
    hc_heal();
    k.s = h_stack_new();
    h_stack_set(k.s, "ingress.confirm_timeout_ms", "5000");
    k.config = h_stack_write_config(k.s);
    start_fleet(&k);

    const char *urls[N_INGRESS] = {k.ingress[0].url, k.ingress[1].url};
    struct ledger *l = ledger_start(urls, N_INGRESS, H_TOKEN, "echo", PATH, (double)rate);
    k.t0 = h_mono_ms();
    k.t0_real = ledger_now_ms();
    struct actor actors[N_KINDS];
    for (int i = 0; i < N_KINDS; i++) {
        actors[i] = (struct actor){.kind = (enum kind)i};
        schedule(&k, &actors[i]);
    }
    long long end = h_mono_ms() + seconds * 1000;
    for (;;) {
        bool busy = false;
        for (int i = 0; i < N_KINDS; i++) {
            act(&k, &actors[i], end);
            busy |= actors[i].phase != WAITING;
        }
        if (h_mono_ms() >= end && !busy) break;
        h_sleep_ms(TICK_MS);
    }
    ledger_stop(l);

    char path[PATH_MAX];
    ledger_settle(l, k.ingress[0].url, H_TOKEN, SETTLE_MS);
    snprintf(path, sizeof path, "%s/backend-access.log", h_stack_dir(k.s));
    ledger_reconcile(l, path);
    snprintf(path, sizeof path, "%s/ledger.txt", h_stack_dir(k.s));
    ledger_write(l, path);
    struct ledger_totals t;
    ledger_totals(l, &t);
    ledger_print(stdout, "soak ledger", &t);
    printf("soak chaos: {\"kills\":{\"worker\":%d,\"ingress\":%d,\"node\":%d},"
           "\"longest_down_s\":{\"worker\":%.1f,\"ingress\":%.1f,\"node\":%.1f},"
           "\"longest_without_202_from_s\":%.1f}\n",
           actors[WORKER].kills, actors[INGRESS].kills, actors[NODE].kills,
           actors[WORKER].longest_down_s, actors[INGRESS].longest_down_s,
           actors[NODE].longest_down_s, (double)(t.gap_from_ms - k.t0_real) / 1000);
    fflush(stdout);
    ledger_check_totals(&t, true);
    for (int i = 0; i < N_KINDS; i++)
        ck_assert_msg(actors[i].kills > 0, "the run was too short to kill a %s", kind_name[i]);
    ledger_free(l);
    stop_fleet(&k);
    h_stack_teardown(k.s);
}
END_TEST

static Suite *soak_suite(void)
{
    Suite *s = suite_create("soak");
    TCase *tc = tcase_create("chaos");
    long seconds = 600;
    const char *v = getenv("SOAK_S");
    if (v && *v) seconds = strtol(v, NULL, 10);
    tcase_set_timeout(tc, (double)(seconds > 0 ? seconds : 600) + 900);
    tcase_add_test(tc, test_soak);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(soak_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
