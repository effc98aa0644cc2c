/* The API gateway's conversation writer (src/server/server.c) is lossless: a burst much
 * larger than its queue, written from many request threads at once (some of them "loop"
 * threads that must not block), ends with every row and its analytics event in the store;
 * the queue is drained at shutdown; rows after shutdown are written synchronously; rows of
 * an erased user are discarded, not failed. Runs on SQLite, and on PostgreSQL when
 * WS_TEST_STORE_URL is set (tests/cli/server_services.sh starts a real server), where the
 * database connections are also killed in the middle of a burst. */
#include "harness.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "server/server_int.h"
#include "store/store.h"

static char data_dir[256];
static char run_tag[16];

static const char *store_url(void)
{
    const char *u = getenv("WS_TEST_STORE_URL");
    return u && *u ? u : NULL;
}

static ws_server *start(size_t queue_max)
{
    snprintf(data_dir, sizeof data_dir, "/tmp/ws-test-writer-XXXXXX");
    CHECK(mkdtemp(data_dir) != NULL);
    ws_server_config cfg = {.data_dir = data_dir,
                            .store_url = store_url(),
                            .host = "127.0.0.1",
                            .threads = 1,
                            .no_training = true,
                            .store_connections = 4,
                            .writer_queue_max = queue_max};
    ws_error err = {0};
    ws_server *s = NULL;
    int rc = ws_server_new(&cfg, &s, &err);
    if (rc != 0)
        fprintf(stderr, "server: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0)
        CHECK_EQ_INT(ws_server_start(s, &err), 0);
    return s;
}

static void stop(ws_server *s)
{
    ws_server_stop(s);
    ws_server_wait(s);
}

static void cleanup(ws_server *s)
{
    ws_server_free(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static ws_store *open_store(void)
{
    ws_error err = {0};
    char *url = store_url() ? ws_xstrdup(store_url()) : ws_store_url_for_data_dir(data_dir, &err);
    ws_store_config sc = {.url = url};
    ws_store *st = NULL;
    if (ws_store_open(&sc, &st, &err) != 0)
        fprintf(stderr, "open: %s\n", err.msg);
    free(url);
    return st;
}

/* A fresh user (unique per run, so a shared PostgreSQL is fine); id into uid. */
static void make_user(const char *name, char uid[WS_STORE_ID_MAX + 1])
{
    if (!run_tag[0]) {
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        snprintf(run_tag, sizeof run_tag, "%08x", (unsigned)rand());
    }
    ws_store *st = open_store();
    CHECK(st != NULL);
    if (!st)
        return;
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    char full[64];
    snprintf(full, sizeof full, "%s-%s", name, run_tag);
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(st, a, full, NULL, NULL, &u, &err), 0);
    snprintf(uid, WS_STORE_ID_MAX + 1, "%s", u.id ? u.id : "");
    ws_arena_free(a);
    ws_store_close(st);
}

static int64_t count_rows(const char *uid, int64_t *events)
{
    ws_store *st = open_store();
    int64_t n = -1;
    ws_error err = {0};
    if (st) {
        CHECK_EQ_INT(ws_store_conv_count(st, uid, &n, &err), 0);
        if (events)
            CHECK_EQ_INT(ws_store_event_count(st, uid, events, &err), 0);
        ws_store_close(st);
    }
    return n;
}

/* ---- the burst ------------------------------------------------------------------------- */

typedef struct burst {
    ws_server *s;
    const char *uid;
    int thread, rows;
    bool loop; /* behaves like the loop thread: may not block */
    int again; /* WS_EAGAIN answers (then retried "on the pool") */
    int errors;
} burst;

static void *burst_thread(void *arg)
{
    burst *b = arg;
    for (int i = 0; i < b->rows; i++) {
        char msg[64], rep[64];
        snprintf(msg, sizeof msg, "t%d message %d", b->thread, i);
        snprintf(rep, sizeof rep, "reply %d 🙂", i);
        ws_conversation c = {.user_id = b->uid,
                             .message = msg,
                             .response = rep,
                             .confidence = 0.5,
                             .processing_ms = i % 100,
                             .model_version = "v1"};
        int rc = ws_srv_record_reply(b->s, &c, i % 2 == 0, !b->loop);
        if (rc == WS_EAGAIN && b->loop) {
            b->again++;
            rc = ws_srv_record_reply(b->s, &c, i % 2 == 0, true); /* the pool run */
        }
        if (rc != 0)
            b->errors++;
    }
    return NULL;
}

/* Kills every other connection to the PostgreSQL database a few times during the burst. */
typedef struct killer {
    atomic_bool stop;
    int kills;
} killer;

static void *killer_thread(void *arg)
{
    killer *k = arg;
    PGconn *c = PQconnectdb(store_url());
    while (PQstatus(c) == CONNECTION_OK && !atomic_load(&k->stop) && k->kills < 5) {
        usleep(30000);
        PGresult *r = PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                                " AND application_name = 'whatstyle'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            k->kills++;
        PQclear(r);
    }
    PQfinish(c);
    return NULL;
}

static void burst_larger_than_the_queue_loses_no_row(void)
{
    enum { QUEUE = 16, THREADS = 8, LOOPS = 2, ROWS = 1000 };
    ws_server *s = start(QUEUE);
    if (!s)
        return;
    char uid[WS_STORE_ID_MAX + 1] = "";
    make_user("burst", uid);
    burst b[THREADS + LOOPS];
    pthread_t t[THREADS + LOOPS], kt;
    killer k = {0};
    bool pg = store_url() != NULL;
    if (pg)
        CHECK_EQ_INT(pthread_create(&kt, NULL, killer_thread, &k), 0);
    for (int i = 0; i < THREADS + LOOPS; i++) {
        b[i] = (burst){.s = s, .uid = uid, .thread = i, .rows = ROWS, .loop = i >= THREADS};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, burst_thread, &b[i]), 0);
    }
    int again = 0, errors = 0;
    for (int i = 0; i < THREADS + LOOPS; i++) {
        pthread_join(t[i], NULL);
        again += b[i].again;
        errors += b[i].errors;
    }
    if (pg) {
        atomic_store(&k.stop, true);
        pthread_join(kt, NULL);
        printf("  postgres connections killed %d times during the burst\n", k.kills);
        CHECK(k.kills > 0);
    }
    stop(s);
    const int total = (THREADS + LOOPS) * ROWS;
    int64_t events = -1;
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(count_rows(uid, &events), total);
    CHECK_EQ_INT(events, total);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_written), total);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_failed), 0);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_discarded), 0);
    CHECK(ws_metric_get(s->m_conv_waits) > 0); /* the queue was full: requests waited */
    CHECK(again > 0);                          /* and "loop" callers were sent to the pool */
    printf("  %d rows, queue %d: %lld waits, %d loop hand-offs, %lld written by requests\n", total, QUEUE,
           (long long)ws_metric_get(s->m_conv_waits), again, (long long)ws_metric_get(s->m_conv_sync));
    cleanup(s);
}

static void shutdown_drains_the_queue(void)
{
    enum { N = 20000 };
    ws_server *s = start(0);
    if (!s)
        return;
    char uid[WS_STORE_ID_MAX + 1] = "";
    make_user("drain", uid);
    for (int i = 0; i < N; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "m%d", i);
        ws_conversation c = {.user_id = uid, .message = msg, .response = "r", .confidence = 1};
        CHECK_EQ_INT(ws_srv_record_reply(s, &c, false, true), 0);
    }
    stop(s); /* right away: most rows are still queued */
    int64_t events = -1;
    CHECK_EQ_INT(count_rows(uid, &events), N);
    CHECK_EQ_INT(events, N);
    CHECK_EQ_INT(ws_metric_get(s->m_writer_queue), 0);

    /* after shutdown: a pool caller writes synchronously, a loop caller is sent away */
    ws_conversation c = {.user_id = uid, .message = "late", .response = "r"};
    int64_t sync_before = ws_metric_get(s->m_conv_sync);
    CHECK_EQ_INT(ws_srv_record_reply(s, &c, false, false), WS_EAGAIN);
    CHECK_EQ_INT(ws_srv_record_reply(s, &c, false, true), 0);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_sync), sync_before + 1);
    CHECK_EQ_INT(count_rows(uid, NULL), N + 1);
    cleanup(s);
}

static void rows_of_an_erased_user_are_discarded(void)
{
    ws_server *s = start(0);
    if (!s)
        return;
    char uid[WS_STORE_ID_MAX + 1] = "", keep[WS_STORE_ID_MAX + 1] = "";
    make_user("gone", uid);
    make_user("kept", keep);
    ws_store *st = open_store();
    ws_error err = {0};
    CHECK(st != NULL);
    if (st) {
        CHECK_EQ_INT(ws_store_user_delete(st, uid, &err), 0);
        ws_store_close(st);
    }
    for (int i = 0; i < 10; i++) {
        ws_conversation c = {.user_id = i % 2 ? uid : keep, .message = "m", .response = "r"};
        CHECK_EQ_INT(ws_srv_record_reply(s, &c, false, true), 0);
    }
    stop(s);
    CHECK_EQ_INT(count_rows(keep, NULL), 5);
    CHECK_EQ_INT(count_rows(uid, NULL), 0);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_discarded), 5);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_written), 5);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_failed), 0);
    cleanup(s);
}

/* The database blocks writes for longer than a request waits for room (another session
 * holds a lock): the waiting requests write their rows themselves once it is released,
 * and still nothing is lost. */
static void requests_write_themselves_when_the_writer_is_stuck(void)
{
    enum { QUEUE = 4, THREADS = 4, ROWS = 25 };
    ws_server *s = start(QUEUE);
    if (!s)
        return;
    char uid[WS_STORE_ID_MAX + 1] = "";
    make_user("stuck", uid);
    PGconn *pc = NULL;
    sqlite3 *lite = NULL;
    if (store_url()) {
        pc = PQconnectdb(store_url());
        PGresult *r = PQexec(pc, "BEGIN; LOCK TABLE conversations IN EXCLUSIVE MODE");
        CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
        PQclear(r);
    } else {
        char path[300];
        snprintf(path, sizeof path, "%s/whatstyle.db", data_dir);
        CHECK_EQ_INT(sqlite3_open(path, &lite), SQLITE_OK);
        CHECK_EQ_INT(sqlite3_exec(lite, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    }
    burst b[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        b[i] = (burst){.s = s, .uid = uid, .thread = i, .rows = ROWS};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, burst_thread, &b[i]), 0);
    }
    usleep((WS_WRITER_WAIT_MS + 600) * 1000);
    if (pc) {
        PGresult *r = PQexec(pc, "COMMIT");
        PQclear(r);
        PQfinish(pc);
    } else {
        sqlite3_exec(lite, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(lite);
    }
    int errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        errors += b[i].errors;
    }
    stop(s);
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(count_rows(uid, NULL), THREADS * ROWS);
    CHECK(ws_metric_get(s->m_conv_sync) > 0);
    CHECK_EQ_INT(ws_metric_get(s->m_conv_failed), 0);
    cleanup(s);
}

WS_TEST_MAIN(T(burst_larger_than_the_queue_loses_no_row), T(shutdown_drains_the_queue),
             T(requests_write_themselves_when_the_writer_is_stuck), T(rows_of_an_erased_user_are_discarded))
