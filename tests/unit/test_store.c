/* The store test suite, run against every configured backend with the same checks:
 * SQLite always (a temporary file), PostgreSQL when WS_TEST_PG_URL is set (by
 * tests/cli/store_services.sh, which starts a real server — and a streaming replica, given
 * as WS_TEST_PG_REPLICA_URL — on loopback). WS_TEST_REQUIRE_PG=1 makes a missing or
 * unreachable PostgreSQL a failure instead of a SQLite-only run. */
#include "harness.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/json.h"
#include "store/store.h"
#include "store/store_int.h"

/* ------------------------------------------------------------------ backends */

static char cur_url[600];
static const char *cur_backend;
static int db_seq;

static void sqlite_path(char *out, size_t n)
{
    snprintf(out, n, "/tmp/ws_test_store_%d_%d.db", (int)getpid(), db_seq);
}

static void sqlite_cleanup(void)
{
    char p[300], q2[320];
    sqlite_path(p, sizeof p);
    unlink(p);
    snprintf(q2, sizeof q2, "%s-wal", p);
    unlink(q2);
    snprintf(q2, sizeof q2, "%s-shm", p);
    unlink(q2);
}

/* Empties the PostgreSQL database the test owns. */
static int pg_reset(const char *url)
{
    PGconn *c = PQconnectdb(url);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, "SET client_min_messages = warning;"
                                " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "pg reset: %s", PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "pg reset: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

static ws_store *open_cur(void)
{
    ws_store *s = NULL;
    ws_error err = {0};
    ws_store_config cfg = {.url = cur_url};
    if (ws_store_open(&cfg, &s, &err) < 0) {
        fprintf(stderr, "open %s: %s\n", cur_url, err.msg);
        return NULL;
    }
    return s;
}

static void run_backends(void (*body)(ws_store *), bool migrate)
{
    const char *pg = getenv("WS_TEST_PG_URL");
    const char *require = getenv("WS_TEST_REQUIRE_PG");
    if (require && *require == '1')
        CHECK(pg && *pg);
    for (int b = 0; b < 2; b++) {
        db_seq++;
        if (b == 0) {
            char p[300];
            sqlite_cleanup();
            sqlite_path(p, sizeof p);
            snprintf(cur_url, sizeof cur_url, "sqlite:%s", p);
            cur_backend = "sqlite";
        } else {
            if (!pg || !*pg)
                continue;
            snprintf(cur_url, sizeof cur_url, "%s", pg);
            cur_backend = "postgres";
            if (pg_reset(pg) < 0) {
                CHECK(!"PostgreSQL reachable");
                continue;
            }
        }
        ws_store *s = open_cur();
        CHECK(s != NULL);
        if (s) {
            CHECK_EQ_STR(ws_store_backend(s), cur_backend);
            if (migrate) {
                ws_error err = {0};
                int rc = ws_store_migrate(s, NULL, &err);
                if (rc < 0)
                    fprintf(stderr, "migrate: %s\n", err.msg);
                CHECK_EQ_INT(rc, 0);
            }
            int before = ws_t_failed_checks;
            body(s);
            if (ws_t_failed_checks != before)
                fprintf(stderr, "  (failures above on backend %s)\n", cur_backend);
            ws_store_close(s);
        }
        if (b == 0)
            sqlite_cleanup();
    }
}

#define STORE_TEST(name)                                                                                     \
    static void name##_body(ws_store *s);                                                                    \
    static void name(void)                                                                                   \
    {                                                                                                        \
        run_backends(name##_body, true);                                                                     \
    }                                                                                                        \
    static void name##_body(ws_store *s)

/* ------------------------------------------------------------------ migrations */

static void migrate_body(ws_store *s)
{
    ws_error err = {0};
    int v = -1, latest = -1, applied = -1;
    CHECK_EQ_INT(ws_store_schema_version(s, &v, &latest, &err), 0);
    CHECK_EQ_INT(v, 0);
    CHECK(latest >= 1);
    CHECK_EQ_INT(ws_store_migrate(s, &applied, &err), 0);
    CHECK_EQ_INT(applied, latest);
    CHECK_EQ_INT(ws_store_schema_version(s, &v, NULL, &err), 0);
    CHECK_EQ_INT(v, latest);
    CHECK_EQ_INT(ws_store_migrate(s, &applied, &err), 0);
    CHECK_EQ_INT(applied, 0);
    CHECK_EQ_INT(ws_store_ping(s, &err), 0);
}

static void migrations_apply_once(void)
{
    run_backends(migrate_body, false);
}

static void migrations_same_versions_for_both_backends(void)
{
    CHECK_EQ_INT(ws_store_migrations_sqlite_count, ws_store_migrations_postgres_count);
    for (size_t i = 0; i < ws_store_migrations_sqlite_count && i < ws_store_migrations_postgres_count; i++) {
        CHECK_EQ_INT(ws_store_migrations_sqlite[i].version, ws_store_migrations_postgres[i].version);
        CHECK_EQ_STR(ws_store_migrations_sqlite[i].name, ws_store_migrations_postgres[i].name);
        if (i)
            CHECK(ws_store_migrations_sqlite[i].version > ws_store_migrations_sqlite[i - 1].version);
    }
}

/* ------------------------------------------------------------------ users */

STORE_TEST(users_create_get_conflict)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u, g;
    CHECK_EQ_INT(ws_store_user_create(s, a, "alice", "+49123", NULL, &u, &err), 0);
    CHECK(!strncmp(u.id, "usr_", 4));
    CHECK_EQ_STR(u.name, "alice");
    CHECK_EQ_STR(u.phone, "+49123");
    CHECK_EQ_STR(u.tier, "free");
    CHECK(u.is_active);
    CHECK(u.created_at > 1600000000000LL);
    CHECK_EQ_INT(u.last_active, 0);
    CHECK(u.model_version == NULL);
    CHECK_EQ_INT(ws_store_user_create(s, a, "alice", NULL, NULL, NULL, &err), WS_ECONFLICT);
    CHECK_EQ_INT(ws_store_user_create(s, a, "bob", "+49123", NULL, NULL, &err), WS_ECONFLICT);
    /* a phone number that looks like a number keeps its leading zeros */
    CHECK_EQ_INT(ws_store_user_create(s, a, "carol", "0071", "pro", &g, &err), 0);
    CHECK_EQ_INT(ws_store_user_get(s, a, g.id, &g, &err), 0);
    CHECK_EQ_STR(g.phone, "0071");
    CHECK_EQ_STR(g.tier, "pro");
    CHECK_EQ_INT(ws_store_user_get(s, a, u.id, &g, &err), 0);
    CHECK_EQ_STR(g.name, "alice");
    CHECK_EQ_INT(ws_store_user_get_by_name(s, a, "alice", &g, &err), 0);
    CHECK_EQ_STR(g.id, u.id);
    CHECK_EQ_INT(ws_store_user_get_by_name(s, a, "nobody", &g, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_user_get(s, a, "usr_missing", &g, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_user_touch(s, u.id, &err), 0);
    CHECK_EQ_INT(ws_store_user_get(s, a, u.id, &g, &err), 0);
    CHECK(g.last_active >= u.created_at);
    CHECK_EQ_INT(ws_store_user_touch(s, "usr_missing", &err), WS_ENOENT);
    /* bad input: empty, too long, not UTF-8 */
    char longname[WS_STORE_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_EQ_INT(ws_store_user_create(s, a, "", NULL, NULL, NULL, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_store_user_create(s, a, longname, NULL, NULL, NULL, &err), WS_ETOOBIG);
    CHECK_EQ_INT(ws_store_user_create(s, a, "bad\xff\xfe", NULL, NULL, NULL, &err), WS_EINVAL);
    /* non-ASCII names round-trip */
    CHECK_EQ_INT(ws_store_user_create(s, a, "Zoë 😀", NULL, NULL, &u, &err), 0);
    CHECK_EQ_INT(ws_store_user_get_by_name(s, a, "Zoë 😀", &g, &err), 0);
    CHECK_EQ_STR(g.id, u.id);
    ws_arena_free(a);
}

/* ------------------------------------------------------------------ keys and auth */

STORE_TEST(keys_create_authenticate_revoke)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    char key[WS_KEY_LEN + 1], key2[WS_KEY_LEN + 1];
    ws_principal p, q2;
    CHECK_EQ_INT(ws_auth_key_create(s, "dana", WS_ROLE_USER, 30, "laptop", 0, key, &p, &err), 0);
    CHECK_EQ_INT(strlen(key), WS_KEY_LEN);
    CHECK(!strncmp(key, "ws_live_", 8));
    CHECK_EQ_STR(p.user_name, "dana");
    CHECK(!strncmp(key, p.key_id, WS_KEY_ID_LEN));
    /* the same user gets a second key; an admin key for another user */
    CHECK_EQ_INT(ws_auth_key_create(s, "dana", WS_ROLE_USER, 0, NULL, 0, key2, &q2, &err), 0);
    CHECK_EQ_STR(q2.user_id, p.user_id);
    CHECK(strcmp(key, key2) != 0);
    char adm[WS_KEY_LEN + 1];
    ws_principal pa;
    CHECK_EQ_INT(ws_auth_key_create(s, "root", WS_ROLE_ADMIN, 0, NULL, 0, adm, &pa, &err), 0);

    ws_principal got;
    CHECK_EQ_INT(ws_auth_authenticate(s, key, strlen(key), &got, &err), 0);
    CHECK_EQ_STR(got.user_id, p.user_id);
    CHECK_EQ_STR(got.user_name, "dana");
    CHECK_EQ_STR(got.key_id, p.key_id);
    CHECK_EQ_INT(got.role, WS_ROLE_USER);
    CHECK_EQ_INT(got.rate_limit, 30);
    CHECK_EQ_INT(ws_auth_authenticate(s, adm, strlen(adm), &got, &err), 0);
    CHECK_EQ_INT(got.role, WS_ROLE_ADMIN);
    CHECK(ws_auth_can_access(&got, p.user_id));
    CHECK(ws_auth_can_access(&p, p.user_id));
    CHECK(!ws_auth_can_access(&p, pa.user_id));

    /* a well-formed key that was never issued, a mangled one, garbage */
    char forged[WS_KEY_LEN + 1], forged_id[WS_KEY_ID_LEN + 1];
    CHECK_EQ_INT(ws_auth_key_generate(forged, forged_id), 0);
    CHECK_EQ_INT(ws_auth_authenticate(s, forged, strlen(forged), &got, &err), WS_EPERM);
    char mangled[WS_KEY_LEN + 1];
    memcpy(mangled, key, sizeof mangled);
    mangled[30] = mangled[30] == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(ws_auth_authenticate(s, mangled, strlen(mangled), &got, &err), WS_EPERM);
    CHECK_EQ_INT(ws_auth_authenticate(s, "hello", 5, &got, &err), WS_EPERM);

    /* the database holds only the hash */
    ws_api_key *keys = NULL;
    size_t n = 0;
    CHECK_EQ_INT(ws_store_key_list(s, a, p.user_id, &keys, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ws_store_key_list(s, a, NULL, &keys, &n, &err), 0);
    CHECK_EQ_INT(n, 3);
    char hash[WS_KEY_HASH_HEX + 1];
    ws_auth_key_hash(key, strlen(key), hash);
    ws_api_key k;
    CHECK_EQ_INT(ws_store_key_get_by_hash(s, a, hash, &k, &err), 0);
    CHECK_EQ_STR(k.key_id, p.key_id);
    CHECK_EQ_STR(k.client_name, "laptop");
    CHECK_EQ_STR(k.role, "user");
    CHECK(k.is_active);
    CHECK_EQ_INT(ws_store_key_touch(s, k.key_id, &err), 0);
    CHECK_EQ_INT(ws_store_key_get_by_hash(s, a, hash, &k, &err), 0);
    CHECK(k.last_used_at > 0);

    /* revoke: only by the owner (or unrestricted), then the key stops working */
    CHECK_EQ_INT(ws_store_key_revoke(s, p.key_id, pa.user_id, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_key_revoke(s, p.key_id, p.user_id, &err), 0);
    CHECK_EQ_INT(ws_auth_authenticate(s, key, strlen(key), &got, &err), WS_EPERM);
    CHECK_EQ_INT(ws_auth_authenticate(s, key2, strlen(key2), &got, &err), 0);
    CHECK_EQ_INT(ws_store_key_revoke(s, "ws_live_00000000", NULL, &err), WS_ENOENT);

    /* a suspended user's keys do not authenticate until reactivated */
    CHECK_EQ_INT(ws_store_user_set_active(s, p.user_id, false, &err), 0);
    CHECK_EQ_INT(ws_auth_authenticate(s, key2, strlen(key2), &got, &err), WS_EPERM);
    CHECK_EQ_INT(ws_store_user_set_active(s, p.user_id, true, &err), 0);
    CHECK_EQ_INT(ws_auth_authenticate(s, key2, strlen(key2), &got, &err), 0);
    CHECK_EQ_STR(got.user_name, "dana");
    CHECK_EQ_INT(ws_store_user_set_active(s, "usr_nope", true, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_key_list(s, a, p.user_id, &keys, &n, &err), 0);
    CHECK(n == 2 && !strcmp(keys[0].user_name, "dana") && keys[0].user_is_active);

    /* an expired key does not authenticate */
    char old[WS_KEY_LEN + 1];
    CHECK_EQ_INT(
        ws_auth_key_create(s, "dana", WS_ROLE_USER, 0, NULL, ws_store_now_ms() - 1000, old, NULL, &err), 0);
    CHECK_EQ_INT(ws_auth_authenticate(s, old, strlen(old), &got, &err), WS_EPERM);
    ws_arena_free(a);
}

static void key_format_and_bearer(void)
{
    char key[WS_KEY_LEN + 1], id[WS_KEY_ID_LEN + 1], pid[WS_KEY_ID_LEN + 1];
    for (int i = 0; i < 50; i++) {
        CHECK_EQ_INT(ws_auth_key_generate(key, id), 0);
        CHECK_EQ_INT(ws_auth_key_parse(key, strlen(key), pid), 0);
        CHECK_EQ_STR(pid, id);
    }
    CHECK_EQ_INT(ws_auth_key_parse(key, strlen(key) - 1, pid), WS_EINVAL);
    char bad[WS_KEY_LEN + 1];
    memcpy(bad, key, sizeof bad);
    bad[9] = 'G'; /* id must be lowercase hex */
    CHECK_EQ_INT(ws_auth_key_parse(bad, WS_KEY_LEN, pid), WS_EINVAL);
    memcpy(bad, key, sizeof bad);
    bad[WS_KEY_ID_LEN] = '-';
    CHECK_EQ_INT(ws_auth_key_parse(bad, WS_KEY_LEN, pid), WS_EINVAL);
    memcpy(bad, key, sizeof bad);
    bad[40] = '=';
    CHECK_EQ_INT(ws_auth_key_parse(bad, WS_KEY_LEN, pid), WS_EINVAL);
    CHECK_EQ_INT(ws_auth_key_parse("ws_test_12345678_x", 18, pid), WS_EINVAL);
    /* SHA-256 of "abc" (FIPS 180-2 test vector) */
    char hex[WS_KEY_HASH_HEX + 1];
    ws_auth_key_hash("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *tok;
    size_t tl;
    const char *h = "  Bearer  ws_live_abc  ";
    CHECK_EQ_INT(ws_auth_bearer_token(h, strlen(h), &tok, &tl), 0);
    CHECK_EQ_INT(tl, 11);
    CHECK(!strncmp(tok, "ws_live_abc", tl));
    CHECK_EQ_INT(ws_auth_bearer_token("Basic abc", 9, &tok, &tl), WS_EINVAL);
    CHECK_EQ_INT(ws_auth_bearer_token("Bearer", 6, &tok, &tl), WS_EINVAL);
    CHECK_EQ_INT(ws_auth_bearer_token("Bearer a b", 10, &tok, &tl), WS_EINVAL);
    ws_role r;
    CHECK_EQ_INT(ws_role_parse("admin", &r), 0);
    CHECK_EQ_INT(r, WS_ROLE_ADMIN);
    CHECK_EQ_INT(ws_role_parse("root", &r), WS_EINVAL);
    CHECK_EQ_STR(ws_role_name(WS_ROLE_SYSTEM), "system");
}

/* ------------------------------------------------------------------ jobs */

static int outbox_count(ws_store *s, const char *topic)
{
    ws_arena *a = ws_arena_new(0);
    ws_outbox_msg *m = NULL;
    size_t n = 0;
    int c = 0;
    if (ws_store_outbox_fetch(s, a, WS_STORE_PAGE_MAX, &m, &n, NULL) == 0)
        for (size_t i = 0; i < n; i++)
            c += !strcmp(m[i].topic, topic);
    ws_arena_free(a);
    return c;
}

STORE_TEST(jobs_lifecycle_with_outbox)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u;
    ws_job j, g;
    CHECK_EQ_INT(ws_store_user_create(s, a, "erin", NULL, NULL, &u, &err), 0);
    CHECK_EQ_INT(ws_store_job_create(s, a, u.id, "exports/erin.txt.enc",
                                     "{\"persona\":\"Erin\",\"epochs\":3}", &j, &err),
                 0);
    CHECK(!strncmp(j.id, "job_", 4));
    CHECK_EQ_INT(j.status, WS_JOB_QUEUED);
    CHECK_EQ_STR(j.user_id, u.id);
    CHECK_EQ_STR(j.data_path, "exports/erin.txt.enc");
    CHECK(j.params_json && strstr(j.params_json, "Erin"));
    CHECK_EQ_INT(outbox_count(s, "training-jobs"), 1);
    CHECK_EQ_INT(ws_store_job_get(s, a, j.id, &g, &err), 0);
    CHECK_EQ_STR(g.id, j.id);
    CHECK_EQ_INT(g.created_at, j.created_at);
    CHECK_EQ_INT(ws_store_job_get(s, a, "job_nope", &g, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_job_create(s, a, "usr_nope", NULL, NULL, &g, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_job_create(s, a, u.id, NULL, "{not json", &g, &err), WS_EINVAL);
    CHECK_EQ_INT(outbox_count(s, "training-jobs"), 1); /* failed creates left nothing */

    /* claim: the oldest queued job, once */
    ws_job j2;
    CHECK_EQ_INT(ws_store_job_create(s, a, u.id, NULL, NULL, &j2, &err), 0);
    ws_job c;
    CHECK_EQ_INT(ws_store_job_claim(s, a, "worker-1", &c, &err), 0);
    CHECK_EQ_STR(c.id, j.id);
    CHECK_EQ_INT(c.status, WS_JOB_RUNNING);
    CHECK_EQ_STR(c.worker_id, "worker-1");
    CHECK(c.started_at > 0);
    CHECK_EQ_INT(ws_store_job_claim(s, a, "worker-2", &c, &err), 0);
    CHECK_EQ_STR(c.id, j2.id);
    CHECK_EQ_INT(ws_store_job_claim(s, a, "worker-3", &c, &err), WS_ENOENT);

    /* progress, then completion with metrics */
    ws_job_update up = WS_JOB_UPDATE_INIT;
    up.progress = 0.5;
    up.samples_processed = 120;
    CHECK_EQ_INT(ws_store_job_update(s, j.id, &up, &err), 0);
    CHECK_EQ_INT(ws_store_job_get(s, a, j.id, &g, &err), 0);
    CHECK_NEAR(g.progress, 0.5, 1e-9);
    CHECK_EQ_INT(g.samples_processed, 120);
    CHECK_EQ_INT(g.status, WS_JOB_RUNNING);
    CHECK_EQ_INT(outbox_count(s, "training-events"), 0);
    ws_job_update done = WS_JOB_UPDATE_INIT;
    done.status = WS_JOB_COMPLETED;
    done.samples_processed = 240;
    done.metrics_json = "{\"loss_lift\":0.25,\"verifier_accuracy\":0.55}";
    CHECK_EQ_INT(ws_store_job_update(s, j.id, &done, &err), 0);
    CHECK_EQ_INT(ws_store_job_get(s, a, j.id, &g, &err), 0);
    CHECK_EQ_INT(g.status, WS_JOB_COMPLETED);
    CHECK_NEAR(g.progress, 1.0, 1e-9);
    CHECK(g.completed_at > 0);
    CHECK(g.metrics_json && strstr(g.metrics_json, "loss_lift"));
    CHECK_EQ_INT(outbox_count(s, "training-events"), 1);
    /* a finished job cannot change state */
    ws_job_update again = WS_JOB_UPDATE_INIT;
    again.status = WS_JOB_FAILED;
    CHECK_EQ_INT(ws_store_job_update(s, j.id, &again, &err), WS_ECONFLICT);
    ws_job_update fail = WS_JOB_UPDATE_INIT;
    fail.status = WS_JOB_FAILED;
    fail.error_message = "no messages from that person";
    CHECK_EQ_INT(ws_store_job_update(s, j2.id, &fail, &err), 0);
    CHECK_EQ_INT(ws_store_job_get(s, a, j2.id, &g, &err), 0);
    CHECK_EQ_INT(g.status, WS_JOB_FAILED);
    CHECK_EQ_STR(g.error_message, "no messages from that person");
    CHECK_EQ_INT(outbox_count(s, "training-events"), 2);
    ws_job_update badm = WS_JOB_UPDATE_INIT;
    badm.metrics_json = "[1,";
    CHECK_EQ_INT(ws_store_job_update(s, j2.id, &badm, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_store_job_update(s, "job_nope", &up, &err), WS_ENOENT);

    ws_job *list = NULL;
    size_t n = 0;
    CHECK_EQ_INT(ws_store_job_list(s, a, u.id, 10, &list, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ws_store_job_list(s, a, u.id, 1, &list, &n, &err), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ws_store_job_list(s, a, u.id, 0, &list, &n, &err), WS_EINVAL);

    /* the outbox payload is JSON naming the job */
    ws_outbox_msg *m = NULL;
    CHECK_EQ_INT(ws_store_outbox_fetch(s, a, 10, &m, &n, &err), 0);
    CHECK(n >= 1);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(m[0].payload, strlen(m[0].payload), &doc, &err), 0);
    if (doc) {
        const ws_json *job = ws_json_get(ws_json_root(doc), "job");
        CHECK_EQ_STR(ws_json_get_str(ws_json_root(doc), "type"), "training.requested");
        CHECK_EQ_STR(ws_json_get_str(job, "job_id"), j.id);
        ws_json_doc_free(doc);
    }
    CHECK_EQ_STR(m[0].key, u.id);
    ws_arena_free(a);
}

typedef struct claimer {
    int got;
    char ids[40][WS_STORE_ID_MAX + 1];
    int errors;
} claimer;

static void *claim_thread(void *arg)
{
    claimer *c = arg;
    ws_store *s = open_cur();
    if (!s) {
        c->errors++;
        return NULL;
    }
    for (;;) {
        ws_arena *a = ws_arena_new(0);
        ws_job j;
        ws_error err = {0};
        int rc = ws_store_job_claim(s, a, "w", &j, &err);
        if (rc == 0 && c->got < 40)
            snprintf(c->ids[c->got++], sizeof c->ids[0], "%s", j.id);
        else if (rc != WS_ENOENT) {
            fprintf(stderr, "claim: %s\n", err.msg);
            c->errors++;
        }
        ws_arena_free(a);
        if (rc != 0)
            break;
    }
    ws_store_close(s);
    return NULL;
}

STORE_TEST(jobs_claimed_once_by_concurrent_workers)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(s, a, "fred", NULL, NULL, &u, &err), 0);
    enum { N = 30 };
    char ids[N][WS_STORE_ID_MAX + 1];
    for (int i = 0; i < N; i++) {
        ws_job j;
        CHECK_EQ_INT(ws_store_job_create(s, a, u.id, NULL, NULL, &j, &err), 0);
        snprintf(ids[i], sizeof ids[i], "%s", j.id);
    }
    static claimer cl[3];
    memset(cl, 0, sizeof cl);
    pthread_t th[3];
    for (int t = 0; t < 3; t++)
        pthread_create(&th[t], NULL, claim_thread, &cl[t]);
    for (int t = 0; t < 3; t++)
        pthread_join(th[t], NULL);
    int total = 0;
    for (int t = 0; t < 3; t++) {
        CHECK_EQ_INT(cl[t].errors, 0);
        total += cl[t].got;
    }
    CHECK_EQ_INT(total, N);
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (int t = 0; t < 3; t++)
            for (int k = 0; k < cl[t].got; k++)
                seen += !strcmp(cl[t].ids[k], ids[i]);
        CHECK_EQ_INT(seen, 1);
    }
    ws_arena_free(a);
}

/* ------------------------------------------------------------------ conversations */

STORE_TEST(conversations_keyset_pagination)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u, v;
    CHECK_EQ_INT(ws_store_user_create(s, a, "gina", NULL, NULL, &u, &err), 0);
    CHECK_EQ_INT(ws_store_user_create(s, a, "hank", NULL, NULL, &v, &err), 0);
    enum { N = 25 };
    int64_t base = 1700000000000LL;
    for (int i = 0; i < N; i++) {
        char msg[32], rep[32];
        snprintf(msg, sizeof msg, "msg %d", i);
        snprintf(rep, sizeof rep, "reply %d", i);
        /* pairs share a timestamp so the id must break ties */
        ws_conversation c = {.user_id = u.id,
                             .message = msg,
                             .response = rep,
                             .confidence = 0.5 + i / 100.0,
                             .processing_ms = 10 + i,
                             .model_version = "v1",
                             .created_at = base + (i / 2) * 1000};
        int64_t id = 0;
        CHECK_EQ_INT(ws_store_conv_insert(s, &c, &id, &err), 0);
        CHECK(id > 0);
        ws_conversation other = c;
        other.user_id = v.id;
        CHECK_EQ_INT(ws_store_conv_insert(s, &other, NULL, &err), 0);
    }
    const char *cursor = NULL;
    int seen = 0, pages = 0;
    int64_t last_ts = INT64_MAX, last_id = INT64_MAX;
    bool order_ok = true, mine = true;
    int expect_i = N - 1;
    do {
        ws_conversation *items = NULL;
        size_t n = 0;
        const char *next = NULL;
        CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, 10, cursor, &items, &n, &next, &err), 0);
        pages++;
        for (size_t i = 0; i < n; i++) {
            char want[32];
            snprintf(want, sizeof want, "msg %d", expect_i--);
            if (strcmp(items[i].message, want))
                order_ok = false;
            if (items[i].created_at > last_ts || (items[i].created_at == last_ts && items[i].id >= last_id))
                order_ok = false;
            last_ts = items[i].created_at;
            last_id = items[i].id;
            mine = mine && !strcmp(items[i].user_id, u.id);
        }
        seen += (int)n;
        if (pages == 1 && n) {
            CHECK_EQ_STR(items[0].response, "reply 24");
            CHECK_NEAR(items[0].confidence, 0.74, 1e-9);
            CHECK_EQ_INT(items[0].processing_ms, 34);
            CHECK_EQ_STR(items[0].model_version, "v1");
        }
        cursor = next;
    } while (cursor && pages < 10);
    CHECK_EQ_INT(seen, N);
    CHECK_EQ_INT(pages, 3);
    CHECK(order_ok);
    CHECK(mine);
    ws_conversation *items;
    size_t n;
    const char *next;
    CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, 10, "c1.garbage!", &items, &n, &next, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, 25, NULL, &items, &n, &next, &err), 0);
    CHECK_EQ_INT(n, 25);
    CHECK(next == NULL);
    ws_conversation bad = {.user_id = "usr_nope", .message = "x", .response = "y"};
    CHECK_EQ_INT(ws_store_conv_insert(s, &bad, NULL, &err), WS_ENOENT);
    ws_arena_free(a);
}

/* The batch insert: rows of several users over more than one multi-row chunk, with analytics
 * events and their outbox messages, a row of a user that does not exist (skipped), and the
 * all-or-nothing validation. */
STORE_TEST(conversations_batch_insert)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u, v;
    CHECK_EQ_INT(ws_store_user_create(s, a, "ivan", NULL, NULL, &u, &err), 0);
    CHECK_EQ_INT(ws_store_user_create(s, a, "judy", NULL, NULL, &v, &err), 0);
    enum { N = 150 };
    ws_conv_batch_row rows[N];
    char msg[N][24], data[N][48];
    int want_u = 0, want_v = 0, want_ev_u = 0, want_ev_v = 0;
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < N; i++) {
        snprintf(msg[i], sizeof msg[i], "batch %d", i);
        snprintf(data[i], sizeof data[i], "{\"i\":%d,\"cached\":false}", i);
        bool gone = i == 77;
        bool to_u = i % 3 != 0;
        rows[i].conv = (ws_conversation){.user_id = gone   ? "usr_000000000000000000000000"
                                                    : to_u ? u.id
                                                           : v.id,
                                         .message = msg[i],
                                         .response = "ok 👍",
                                         .confidence = i / 200.0,
                                         .processing_ms = i,
                                         .model_version = i % 2 ? "v2" : NULL,
                                         .created_at = i % 5 ? 1700000000000LL + i : 0};
        if (i % 4 != 1) {
            rows[i].event_type = "reply";
            rows[i].event_data_json = data[i];
        }
        if (gone)
            continue;
        if (to_u) {
            want_u++;
            want_ev_u += rows[i].event_type != NULL;
        } else {
            want_v++;
            want_ev_v += rows[i].event_type != NULL;
        }
    }
    ws_outbox_msg *m = NULL;
    size_t nm = 0;
    CHECK_EQ_INT(ws_store_outbox_fetch(s, a, WS_STORE_PAGE_MAX, &m, &nm, &err), 0);
    size_t outbox_before = nm;

    size_t written = 0;
    int rc = ws_store_conv_insert_batch(s, rows, N, &written, &err);
    if (rc)
        fprintf(stderr, "batch: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(written, N - 1);
    CHECK_EQ_INT(rows[77].status, WS_ENOENT);
    CHECK_EQ_INT(rows[77].id, 0);
    int64_t cu = -1, cv = -1, eu = -1, ev = -1;
    CHECK_EQ_INT(ws_store_conv_count(s, u.id, &cu, &err), 0);
    CHECK_EQ_INT(ws_store_conv_count(s, v.id, &cv, &err), 0);
    CHECK_EQ_INT(cu, want_u);
    CHECK_EQ_INT(cv, want_v);
    CHECK_EQ_INT(ws_store_event_count(s, u.id, &eu, &err), 0);
    CHECK_EQ_INT(ws_store_event_count(s, v.id, &ev, &err), 0);
    CHECK_EQ_INT(eu, want_ev_u);
    CHECK_EQ_INT(ev, want_ev_v);

    /* every returned id is the row written from that input row */
    ws_conversation *items = NULL;
    size_t n = 0;
    const char *next = NULL;
    CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, WS_STORE_PAGE_MAX, NULL, &items, &n, &next, &err), 0);
    CHECK_EQ_INT(n, want_u);
    int matched = 0;
    for (size_t k = 0; k < n; k++) {
        int i = atoi(items[k].message + strlen("batch "));
        CHECK(i >= 0 && i < N);
        if (i < 0 || i >= N)
            continue;
        if (rows[i].id == items[k].id && rows[i].status == 0 && !strcmp(rows[i].conv.user_id, u.id) &&
            items[k].processing_ms == i && !strcmp(items[k].response, "ok 👍"))
            matched++;
        if (i % 5)
            CHECK_EQ_INT(items[k].created_at, 1700000000000LL + i);
        else
            CHECK(items[k].created_at > 1700000000000LL + N);
        if (i % 2)
            CHECK_EQ_STR(items[k].model_version, "v2");
        else
            CHECK(items[k].model_version == NULL);
    }
    CHECK_EQ_INT(matched, want_u);

    /* one outbox message per event, carrying that event's data */
    CHECK_EQ_INT(ws_store_outbox_fetch(s, a, WS_STORE_PAGE_MAX, &m, &nm, &err), 0);
    CHECK_EQ_INT(nm - outbox_before, want_ev_u + want_ev_v);
    int good = 0;
    for (size_t k = outbox_before; k < nm; k++) {
        ws_json_doc *d = NULL;
        CHECK_EQ_STR(m[k].topic, "analytics-events");
        if (ws_json_parse(m[k].payload, strlen(m[k].payload), &d, NULL) != 0) {
            CHECK(!"outbox payload is JSON");
            continue;
        }
        const ws_json *root = ws_json_root(d);
        double i = -1;
        ws_json_get_num(ws_json_get(root, "data"), "i", &i);
        const char *uid = ws_json_get_str(root, "user_id");
        if (i >= 0 && i < N && uid && !strcmp(uid, rows[(int)i].conv.user_id) &&
            !strcmp(ws_json_get_str(root, "event_type"), "reply") && m[k].key && !strcmp(m[k].key, uid))
            good++;
        ws_json_doc_free(d);
    }
    CHECK_EQ_INT(good, want_ev_u + want_ev_v);

    /* validation is all or nothing, naming the bad row */
    rows[5].conv.message = NULL;
    CHECK_EQ_INT(ws_store_conv_insert_batch(s, rows, N, &written, &err), WS_EINVAL);
    CHECK(strstr(err.msg, "row 5") != NULL);
    CHECK_EQ_INT(written, 0);
    rows[5].conv.message = msg[5];
    rows[8].event_data_json = "{not json";
    CHECK_EQ_INT(ws_store_conv_insert_batch(s, rows, N, &written, &err), WS_EINVAL);
    CHECK(strstr(err.msg, "row 8") != NULL);
    rows[8].event_data_json = data[8];
    CHECK_EQ_INT(ws_store_conv_count(s, u.id, &cu, &err), 0);
    CHECK_EQ_INT(cu, want_u);
    CHECK_EQ_INT(ws_store_conv_insert_batch(s, rows, WS_STORE_BATCH_MAX + 1, &written, &err), WS_ETOOBIG);
    CHECK_EQ_INT(ws_store_conv_insert_batch(s, rows, 0, &written, &err), 0);
    CHECK_EQ_INT(written, 0);

    /* the largest batch in one call */
    static ws_conv_batch_row big[WS_STORE_BATCH_MAX];
    for (int i = 0; i < WS_STORE_BATCH_MAX; i++)
        big[i] = (ws_conv_batch_row){.conv = {.user_id = v.id, .message = "m", .response = "r"},
                                     .event_type = i % 2 ? "reply" : NULL};
    CHECK_EQ_INT(ws_store_conv_insert_batch(s, big, WS_STORE_BATCH_MAX, &written, &err), 0);
    CHECK_EQ_INT(written, WS_STORE_BATCH_MAX);
    CHECK_EQ_INT(ws_store_conv_count(s, v.id, &cv, &err), 0);
    CHECK_EQ_INT(cv, want_v + WS_STORE_BATCH_MAX);
    ws_arena_free(a);
}

/* A user erased while batches for them are being written: every batch succeeds (no foreign
 * key failure, no error), and afterwards nothing of theirs is left. */
typedef struct erase_race {
    const char *user_id;
    int failures;
    size_t written, skipped;
} erase_race;

static void *batch_writer_thread(void *arg)
{
    erase_race *er = arg;
    ws_store *s = open_cur();
    if (!s) {
        er->failures++;
        return NULL;
    }
    enum { M = 50 };
    ws_conv_batch_row rows[M];
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < M; i++)
            rows[i] = (ws_conv_batch_row){.conv = {.user_id = er->user_id, .message = "m", .response = "r"},
                                          .event_type = "reply"};
        size_t w = 0;
        ws_error err = {0};
        if (ws_store_conv_insert_batch(s, rows, M, &w, &err) != 0) {
            fprintf(stderr, "batch during erasure: %s\n", err.msg);
            er->failures++;
        }
        er->written += w;
        for (int i = 0; i < M; i++)
            er->skipped += rows[i].status == WS_ENOENT;
    }
    ws_store_close(s);
    return NULL;
}

STORE_TEST(conversations_batch_races_erasure)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(s, a, "kate", NULL, NULL, &u, &err), 0);
    erase_race er = {.user_id = u.id};
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, batch_writer_thread, &er), 0);
    int64_t c = 0;
    for (int i = 0; i < 2000 && c == 0; i++) { /* delete once some rows are in */
        usleep(1000);
        ws_store_conv_count(s, u.id, &c, &err);
    }
    CHECK_EQ_INT(ws_store_user_delete(s, u.id, &err), 0);
    pthread_join(t, NULL);
    CHECK_EQ_INT(er.failures, 0);
    CHECK_EQ_INT(er.written + er.skipped, 40 * 50);
    CHECK(er.written > 0);
    CHECK_EQ_INT(ws_store_conv_count(s, u.id, &c, &err), 0);
    CHECK_EQ_INT(c, 0);
    CHECK_EQ_INT(ws_store_event_count(s, u.id, &c, &err), 0);
    CHECK_EQ_INT(c, 0);
    ws_arena_free(a);
}

static void cursor_round_trip_and_rejects(void)
{
    char c[WS_STORE_CURSOR_MAX];
    int64_t ts, id;
    const int64_t cases[][2] = {{0, 0}, {1, 2}, {1700000000123LL, 42}, {INT64_MAX, INT64_MAX}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ_INT(ws_store_cursor_encode(cases[i][0], cases[i][1], c, sizeof c), 0);
        CHECK_EQ_INT(ws_store_cursor_decode(c, strlen(c), &ts, &id), 0);
        CHECK_EQ_INT(ts, cases[i][0]);
        CHECK_EQ_INT(id, cases[i][1]);
    }
    const char *bad[] = {"",
                         "c1.",
                         "c2.MS4y",
                         "c1.MS4y=",
                         "c1.MTIz",
                         "c1.LTEuMg",
                         "c1.OTk5OTk5OTk5OTk5OTk5OTk5OTkuMQ",
                         "c1.MS4yLg",
                         "c1.MS4y!"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(ws_store_cursor_decode(bad[i], strlen(bad[i]), &ts, &id), WS_EINVAL);
    CHECK_EQ_INT(ws_store_cursor_decode("c1.MS4y", 7, &ts, &id), 0); /* "1.2" */
    CHECK_EQ_INT(ts, 1);
    CHECK_EQ_INT(id, 2);
}

/* ------------------------------------------------------------------ events, outbox, audit, models */

STORE_TEST(events_outbox_audit_models)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(s, a, "ivy", NULL, NULL, &u, &err), 0);
    int64_t id1 = 0, id2 = 0, cnt = 0;
    CHECK_EQ_INT(ws_store_event_append(s, u.id, "reply", "{\"cached\":false,\"ms\":12}", &id1, &err), 0);
    CHECK_EQ_INT(ws_store_event_append(s, u.id, "reply", NULL, &id2, &err), 0);
    CHECK(id2 > id1);
    CHECK_EQ_INT(ws_store_event_append(s, NULL, "startup", "{}", NULL, &err), 0);
    CHECK_EQ_INT(ws_store_event_append(s, u.id, "x", "{bad", NULL, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_store_event_append(s, "usr_nope", "x", NULL, NULL, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_event_count(s, u.id, &cnt, &err), 0);
    CHECK_EQ_INT(cnt, 2);
    CHECK_EQ_INT(ws_store_outbox_put(s, "custom", NULL, "{\"a\":1}", &err), 0);
    CHECK_EQ_INT(ws_store_outbox_put(s, "custom", NULL, "nope", &err), WS_EINVAL);

    ws_outbox_msg *m = NULL;
    size_t n = 0;
    CHECK_EQ_INT(ws_store_outbox_fetch(s, a, 2, &m, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(m[0].id < m[1].id);
    CHECK_EQ_STR(m[0].topic, "analytics-events");
    int64_t ids[2] = {m[0].id, m[1].id};
    CHECK_EQ_INT(ws_store_outbox_mark_published(s, ids, 2, &err), 0);
    CHECK_EQ_INT(ws_store_outbox_fetch(s, a, 100, &m, &n, &err), 0);
    CHECK_EQ_INT(n, 2); /* the startup event and the custom message remain */
    CHECK(m[0].id > ids[1]);
    CHECK_EQ_STR(m[1].topic, "custom");

    ws_audit_entry e = {
        .actor = "ws_live_abcd1234", .user_id = u.id, .action = "read", .resource = "conversations"};
    CHECK_EQ_INT(ws_store_audit_append(s, &e, &err), 0);
    e.action = "export";
    e.resource = "/v1/me/export";
    e.detail = "{\"ip\":\"127.0.0.1\"}";
    CHECK_EQ_INT(ws_store_audit_append(s, &e, &err), 0);
    e.actor = NULL;
    CHECK_EQ_INT(ws_store_audit_append(s, &e, &err), WS_EINVAL);
    ws_audit_entry *al = NULL;
    CHECK_EQ_INT(ws_store_audit_list(s, a, u.id, 10, &al, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(al[0].action, "export");
        CHECK_EQ_STR(al[1].action, "read");
        CHECK(al[1].detail == NULL);
    }

    ws_model_rec mr;
    CHECK_EQ_INT(ws_store_model_get_current(s, a, u.id, &mr, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_model_set_current(s, u.id, "v1", "models/ivy/v1", NULL, &err), 0);
    CHECK_EQ_INT(ws_store_model_set_current(s, u.id, "v2", "models/ivy/v2", "job_x", &err), 0);
    CHECK_EQ_INT(ws_store_model_set_current(s, u.id, "v2", "models/ivy/v2b", NULL, &err), WS_ECONFLICT);
    CHECK_EQ_INT(ws_store_model_set_current(s, "usr_nope", "v1", "p", NULL, &err), WS_ENOENT);
    /* an earlier version made current again (a retraining that gave the same model) */
    CHECK_EQ_INT(ws_store_model_make_current(s, u.id, "v1", &err), 0);
    ws_user g1;
    CHECK_EQ_INT(ws_store_user_get(s, a, u.id, &g1, &err), 0);
    CHECK_EQ_STR(g1.model_version, "v1");
    CHECK_EQ_INT(ws_store_model_make_current(s, u.id, "v9", &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_model_make_current(s, u.id, "v2", &err), 0);
    CHECK_EQ_INT(ws_store_model_get_current(s, a, u.id, &mr, &err), 0);
    CHECK_EQ_STR(mr.version, "v2");
    CHECK_EQ_STR(mr.artifact_path, "models/ivy/v2");
    CHECK_EQ_STR(mr.job_id, "job_x");
    ws_user g;
    CHECK_EQ_INT(ws_store_user_get(s, a, u.id, &g, &err), 0);
    CHECK_EQ_STR(g.model_version, "v2");
    ws_arena_free(a);
}

/* ------------------------------------------------------------------ export and erasure */

/* Gives a user one of everything; returns the job id in job_out. */
static void populate(ws_store *s, ws_arena *a, const char *name, ws_user *u, char *job_out)
{
    ws_error err = {0};
    char key[WS_KEY_LEN + 1];
    CHECK_EQ_INT(ws_auth_key_create(s, name, WS_ROLE_USER, 0, NULL, 0, key, NULL, &err), 0);
    CHECK_EQ_INT(ws_store_user_get_by_name(s, a, name, u, &err), 0);
    ws_job j;
    CHECK_EQ_INT(ws_store_job_create(s, a, u->id, "exports/x", "{\"persona\":\"X\"}", &j, &err), 0);
    snprintf(job_out, WS_STORE_ID_MAX + 1, "%s", j.id);
    ws_conversation c = {.user_id = u->id,
                         .message = "hi \"there\"\n",
                         .response = "hey 👋",
                         .confidence = 0.9,
                         .processing_ms = 5};
    CHECK_EQ_INT(ws_store_conv_insert(s, &c, NULL, &err), 0);
    CHECK_EQ_INT(ws_store_event_append(s, u->id, "reply", "{\"n\":1}", NULL, &err), 0);
    ws_audit_entry e = {.actor = "system", .user_id = u->id, .action = "read", .resource = "profile"};
    CHECK_EQ_INT(ws_store_audit_append(s, &e, &err), 0);
    CHECK_EQ_INT(ws_store_model_set_current(s, u->id, "v1", "models/x", j.id, &err), 0);
}

static size_t json_array_len(const ws_json *root, const char *key)
{
    const ws_json *arr = ws_json_get(root, key);
    return arr && arr->type == WS_JSON_ARRAY ? arr->len : (size_t)-1;
}

STORE_TEST(export_holds_everything)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u;
    char job[WS_STORE_ID_MAX + 1];
    populate(s, a, "jack", &u, job);
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_store_user_export(s, u.id, &b, &err), 0);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(b.data ? b.data : "", b.len, &doc, &err), 0);
    if (doc) {
        const ws_json *r = ws_json_root(doc);
        CHECK_EQ_STR(ws_json_get_str(ws_json_get(r, "user"), "name"), "jack");
        CHECK_EQ_INT(json_array_len(r, "api_keys"), 1);
        CHECK_EQ_INT(json_array_len(r, "training_jobs"), 1);
        CHECK_EQ_INT(json_array_len(r, "conversations"), 1);
        CHECK_EQ_INT(json_array_len(r, "analytics_events"), 1);
        CHECK_EQ_INT(json_array_len(r, "audit_log"), 1);
        CHECK_EQ_INT(json_array_len(r, "models"), 1);
        const ws_json *conv = ws_json_at(ws_json_get(r, "conversations"), 0);
        CHECK_EQ_STR(ws_json_get_str(conv, "message"), "hi \"there\"\n");
        CHECK_EQ_STR(ws_json_get_str(conv, "response"), "hey 👋");
        const ws_json *ev = ws_json_at(ws_json_get(r, "analytics_events"), 0);
        double nv = 0;
        CHECK(ws_json_get_num(ws_json_get(ev, "event_data"), "n", &nv) && nv == 1);
        ws_json_doc_free(doc);
    }
    CHECK(b.data && !strstr(b.data, "hashed"));
    ws_buf_free(&b);
    CHECK_EQ_INT(ws_store_user_export(s, "usr_nope", &b, &err), WS_ENOENT);
    ws_buf_free(&b);
    ws_arena_free(a);
}

STORE_TEST(delete_user_erases_everything_they_own)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u, keep;
    char job[WS_STORE_ID_MAX + 1], keep_job[WS_STORE_ID_MAX + 1];
    populate(s, a, "kate", &u, job);
    populate(s, a, "liam", &keep, keep_job);
    CHECK_EQ_INT(ws_store_user_delete(s, u.id, &err), 0);
    CHECK_EQ_INT(ws_store_user_delete(s, u.id, &err), WS_ENOENT);

    ws_user g;
    CHECK_EQ_INT(ws_store_user_get(s, a, u.id, &g, &err), WS_ENOENT);
    ws_api_key *keys;
    size_t n;
    CHECK_EQ_INT(ws_store_key_list(s, a, u.id, &keys, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    ws_job jb;
    CHECK_EQ_INT(ws_store_job_get(s, a, job, &jb, &err), WS_ENOENT);
    ws_job *jobs;
    CHECK_EQ_INT(ws_store_job_list(s, a, u.id, 10, &jobs, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    ws_conversation *conv;
    const char *next;
    CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, 10, NULL, &conv, &n, &next, &err), 0);
    CHECK_EQ_INT(n, 0);
    int64_t cnt = -1;
    CHECK_EQ_INT(ws_store_event_count(s, u.id, &cnt, &err), 0);
    CHECK_EQ_INT(cnt, 0);
    ws_audit_entry *al;
    CHECK_EQ_INT(ws_store_audit_list(s, a, u.id, 10, &al, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    ws_model_rec mr;
    CHECK_EQ_INT(ws_store_model_get_current(s, a, u.id, &mr, &err), WS_ENOENT);
    /* the outbox: none of kate's pending messages remain except the erasure notice */
    ws_outbox_msg *m;
    CHECK_EQ_INT(ws_store_outbox_fetch(s, a, 100, &m, &n, &err), 0);
    int kate_msgs = 0, deleted_notice = 0;
    for (size_t i = 0; i < n; i++)
        if (m[i].key && !strcmp(m[i].key, u.id)) {
            kate_msgs++;
            deleted_notice +=
                !strcmp(m[i].topic, "user-events") && strstr(m[i].payload, "user.deleted") != NULL;
        }
    CHECK_EQ_INT(kate_msgs, 1);
    CHECK_EQ_INT(deleted_notice, 1);

    /* liam is untouched */
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_store_user_export(s, keep.id, &b, &err), 0);
    ws_json_doc *doc = NULL;
    CHECK_EQ_INT(ws_json_parse(b.data ? b.data : "", b.len, &doc, &err), 0);
    if (doc) {
        const ws_json *r = ws_json_root(doc);
        CHECK_EQ_INT(json_array_len(r, "api_keys"), 1);
        CHECK_EQ_INT(json_array_len(r, "training_jobs"), 1);
        CHECK_EQ_INT(json_array_len(r, "conversations"), 1);
        CHECK_EQ_INT(json_array_len(r, "analytics_events"), 1);
        CHECK_EQ_INT(json_array_len(r, "audit_log"), 1);
        CHECK_EQ_INT(json_array_len(r, "models"), 1);
        ws_json_doc_free(doc);
    }
    ws_buf_free(&b);
    ws_arena_free(a);
}

/* ------------------------------------------------------------------ pool */

typedef struct pool_worker {
    ws_store_pool *pool;
    const char *user_id;
    int inserted, errors;
} pool_worker;

static void *pool_thread(void *arg)
{
    pool_worker *w = arg;
    for (int i = 0; i < 10; i++) {
        ws_store *s = NULL;
        ws_error err = {0};
        if (ws_store_pool_acquire(w->pool, 10000, &s, &err) < 0) {
            w->errors++;
            continue;
        }
        ws_conversation c = {.user_id = w->user_id, .message = "m", .response = "r"};
        int rc = ws_store_conv_insert(s, &c, NULL, &err);
        w->inserted += rc == 0;
        w->errors += rc != 0;
        ws_store_pool_release(w->pool, s, rc == WS_EIO);
    }
    return NULL;
}

STORE_TEST(pool_hands_out_at_most_max_handles)
{
    ws_arena *a = ws_arena_new(0);
    ws_error err = {0};
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(s, a, "nora", NULL, NULL, &u, &err), 0);
    ws_store_pool *pool = NULL;
    ws_store_config cfg = {.url = cur_url};
    CHECK_EQ_INT(ws_store_pool_new(&cfg, 2, &pool, &err), 0);
    if (!pool)
        goto out;
    ws_store *h1 = NULL, *h2 = NULL, *h3 = NULL;
    CHECK_EQ_INT(ws_store_pool_acquire(pool, 1000, &h1, &err), 0);
    CHECK_EQ_INT(ws_store_pool_acquire(pool, 1000, &h2, &err), 0);
    CHECK(h1 && h2 && h1 != h2);
    CHECK_EQ_INT(ws_store_pool_acquire(pool, 50, &h3, &err), WS_EAGAIN);
    ws_store_pool_release(pool, h2, false);
    CHECK_EQ_INT(ws_store_pool_acquire(pool, 50, &h3, &err), 0);
    CHECK(h3 == h2);                       /* the idle handle is reused, not a third one opened */
    ws_store_pool_release(pool, h3, true); /* broken: closed, a new one may open */
    ws_store_pool_release(pool, h1, false);
    pool_worker w[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (pool_worker){pool, u.id, 0, 0};
        pthread_create(&th[t], NULL, pool_thread, &w[t]);
    }
    int total = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(w[t].errors, 0);
        total += w[t].inserted;
    }
    CHECK_EQ_INT(total, 40);
    ws_conversation *items;
    size_t n;
    const char *next;
    CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, 100, NULL, &items, &n, &next, &err), 0);
    CHECK_EQ_INT(n, 40);
    ws_store_pool_free(pool);
out:
    ws_arena_free(a);
}

/* ------------------------------------------------------------------ read replica */

static void replica_serves_reads(void)
{
    const char *pg = getenv("WS_TEST_PG_URL"), *rep = getenv("WS_TEST_PG_REPLICA_URL");
    const char *require = getenv("WS_TEST_REQUIRE_PG");
    if (!pg || !*pg || !rep || !*rep) {
        CHECK(!(require && *require == '1')); /* the services run always provides one */
        return;
    }
    CHECK_EQ_INT(pg_reset(pg), 0);
    ws_error err = {0};
    ws_store *s = NULL;
    ws_store_config cfg = {.url = pg, .replica_url = rep};
    CHECK_EQ_INT(ws_store_open(&cfg, &s, &err), 0);
    if (!s) {
        fprintf(stderr, "replica open: %s\n", err.msg);
        return;
    }
    CHECK(ws_store_reads_from_replica(s));
    CHECK_EQ_INT(ws_store_migrate(s, NULL, &err), 0);
    CHECK_EQ_INT(ws_store_ping(s, &err), 0);
    ws_arena *a = ws_arena_new(0);
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(s, a, "mia", NULL, NULL, &u, &err), 0);
    ws_conversation c = {.user_id = u.id, .message = "m", .response = "r", .confidence = 1};
    CHECK_EQ_INT(ws_store_conv_insert(s, &c, NULL, &err), 0);
    /* streaming replication is asynchronous: wait (bounded, 10 s) until the replica itself
     * has the schema and the row (the store would read a lagging replica's misses from the
     * primary, so ask the replica directly) */
    PGconn *rc_conn = PQconnectdb(rep);
    bool replicated = false;
    for (int i = 0; i < 200 && !replicated; i++) {
        PGresult *cr = PQexec(rc_conn, "SELECT COUNT(*) FROM conversations");
        replicated = PQresultStatus(cr) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(cr, 0, 0), "1");
        PQclear(cr);
        if (!replicated)
            usleep(50 * 1000);
    }
    PQfinish(rc_conn);
    CHECK(replicated);
    size_t n = 0;
    ws_conversation *items;
    const char *next;
    int rc = ws_store_conv_list(s, a, u.id, 10, NULL, &items, &n, &next, &err);
    if (rc < 0)
        fprintf(stderr, "replica read: %s\n", err.msg);
    CHECK(ws_store_reads_from_replica(s)); /* the read ran on the replica, which answered */
    CHECK_EQ_INT(n, 1);
    /* the replica refuses writes: a store opened on it alone cannot create users */
    ws_store *ro = NULL;
    ws_store_config rcfg = {.url = rep};
    CHECK_EQ_INT(ws_store_open(&rcfg, &ro, &err), 0);
    if (ro) {
        CHECK_EQ_INT(ws_store_user_create(ro, a, "nope", NULL, NULL, NULL, &err), WS_EIO);
        if (!strstr(err.msg, "read-only"))
            fprintf(stderr, "replica write: %s\n", err.msg);
        CHECK(strstr(err.msg, "read-only") != NULL);
        ws_store_close(ro);
    }
    ws_arena_free(a);
    ws_store_close(s);
}

/* A replica that is down at open, or whose connection dies later, costs no read: the reads
 * go to the primary (the replica is tried again after 5 s). */
static void replica_down_falls_back_to_primary(void)
{
    const char *pg = getenv("WS_TEST_PG_URL"), *rep = getenv("WS_TEST_PG_REPLICA_URL");
    if (!pg || !*pg || !rep || !*rep)
        return;
    CHECK_EQ_INT(pg_reset(pg), 0);
    ws_error err = {0};
    ws_arena *a = ws_arena_new(0);
    /* down at open: port 1 refuses; open, ping and reads still work, on the primary */
    ws_store *s = NULL;
    ws_store_config dead = {.url = pg, .replica_url = "postgresql://postgres@127.0.0.1:1/postgres"};
    CHECK_EQ_INT(ws_store_open(&dead, &s, &err), 0);
    if (!s)
        return;
    CHECK(!ws_store_reads_from_replica(s));
    CHECK_EQ_INT(ws_store_migrate(s, NULL, &err), 0);
    CHECK_EQ_INT(ws_store_ping(s, &err), 0);
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(s, a, "fallback", NULL, NULL, &u, &err), 0);
    ws_conversation c = {.user_id = u.id, .message = "m", .response = "r", .confidence = 1};
    CHECK_EQ_INT(ws_store_conv_insert(s, &c, NULL, &err), 0);
    ws_conversation *items;
    const char *next;
    size_t n = 0;
    CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, 10, NULL, &items, &n, &next, &err), 0);
    CHECK_EQ_INT(n, 1); /* read on the primary: no replication lag to wait for */
    ws_store_close(s);
    /* a live replica whose connection is killed: the next read still answers (primary) */
    ws_store_config cfg = {.url = pg, .replica_url = rep};
    CHECK_EQ_INT(ws_store_open(&cfg, &s, &err), 0);
    if (!s) {
        ws_arena_free(a);
        return;
    }
    CHECK(ws_store_reads_from_replica(s));
    PGconn *admin = PQconnectdb(rep);
    PGresult *r = PQexec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE application_name = 'whatstyle'");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1);
    PQclear(r);
    PQfinish(admin);
    n = 0;
    CHECK_EQ_INT(ws_store_conv_list(s, a, u.id, 10, NULL, &items, &n, &next, &err), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ws_store_ping(s, &err), 0);
    ws_store_close(s);
    ws_arena_free(a);
}

/* PostgreSQL: a connection killed by the server fails one call, then the store reconnects. */
static void pg_reconnects_after_backend_killed(void)
{
    const char *pg = getenv("WS_TEST_PG_URL");
    if (!pg || !*pg)
        return;
    ws_error err = {0};
    ws_store *s = NULL;
    ws_store_config cfg = {.url = pg};
    CHECK_EQ_INT(ws_store_open(&cfg, &s, &err), 0);
    if (!s)
        return;
    CHECK_EQ_INT(ws_store_ping(s, &err), 0);
    PGconn *admin = PQconnectdb(pg);
    PGresult *r = PQexec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE application_name = 'whatstyle'");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1);
    PQclear(r);
    PQfinish(admin);
    int first = ws_store_ping(s, &err);
    CHECK(first == 0 || first == WS_EIO);
    CHECK_EQ_INT(ws_store_ping(s, &err), 0);
    ws_store_close(s);
}

static void sqlite_refuses_replica_and_bad_urls(void)
{
    ws_store *s = NULL;
    ws_error err = {0};
    ws_store_config cfg = {.url = "sqlite::memory:", .replica_url = "postgres://x"};
    CHECK_EQ_INT(ws_store_open(&cfg, &s, &err), WS_EINVAL);
    CHECK(s == NULL);
    ws_store_config none = {0};
    CHECK_EQ_INT(ws_store_open(&none, &s, &err), WS_EINVAL);
    ws_store_config mem = {.url = "sqlite::memory:"};
    CHECK_EQ_INT(ws_store_open(&mem, &s, &err), 0);
    CHECK_EQ_INT(ws_store_migrate(s, NULL, &err), 0);
    CHECK(!ws_store_reads_from_replica(s));
    ws_store_close(s);
    ws_store_close(NULL);
    ws_store_config gone = {.url = "postgresql://127.0.0.1:1/none", .timeout_ms = 2000};
    CHECK_EQ_INT(ws_store_open(&gone, &s, &err), WS_EIO);
    char dir[128], want[160], sub[140];
    snprintf(dir, sizeof dir, "/tmp/ws_test_store_dir_%d", (int)getpid());
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    snprintf(want, sizeof want, "sqlite:%s/whatstyle.db", sub);
    char *url = ws_store_url_for_data_dir(sub, &err);
    CHECK(url != NULL);
    CHECK_EQ_STR(url, want);
    free(url);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

WS_TEST_MAIN(T(migrations_apply_once), T(migrations_same_versions_for_both_backends),
             T(users_create_get_conflict), T(keys_create_authenticate_revoke), T(key_format_and_bearer),
             T(jobs_lifecycle_with_outbox), T(jobs_claimed_once_by_concurrent_workers),
             T(conversations_keyset_pagination), T(conversations_batch_insert),
             T(conversations_batch_races_erasure), T(cursor_round_trip_and_rejects),
             T(events_outbox_audit_models), T(export_holds_everything),
             T(delete_user_erases_everything_they_own), T(pool_hands_out_at_most_max_handles),
             T(replica_serves_reads), T(replica_down_falls_back_to_primary),
             T(pg_reconnects_after_backend_killed), T(sqlite_refuses_replica_and_bad_urls))
