/* Fault injection on the server's paths (the SQLite way, core/fault.h): the store's and the
 * blobs' calls fail on purpose — the 1st, 2nd, ... call of an operation in turn, until the
 * operation runs out of calls to fail — and every injected failure must end in a clean error
 * (a 5xx status with a JSON error body, never a crash, hang or 2xx that lies) and leave nothing
 * half-written (after the failure, with the faults off: no extra key, job or blob; an erasure
 * can be retried to completion). Paths: key create, upload (store and blobs), reply, erasure,
 * and a training job under random faults. SQLite + in-process cache, counting test-double AI. */
#include "harness.h"

#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "ai_double.h"
#include "auth/auth.h"
#include "blobs/blobs.h"
#include "core/fault.h"
#include "core/json.h"
#include "http_client.h"
#include "server/server.h"
#include "store/store.h"

#define MAX_NTH 60 /* more calls than any of these operations makes */

static char data_dir[256];
static counting_ai *ai;
static ws_server *srv;
static int port;
static ws_fault store_fault = WS_FAULT_INIT, blobs_fault = WS_FAULT_INIT;

static void start(bool training)
{
    snprintf(data_dir, sizeof data_dir, "/tmp/ws-test-fault-XXXXXX");
    CHECK(mkdtemp(data_dir) != NULL);
    ai = counting_ai_new();
    ws_server_config cfg = {.data_dir = data_dir,
                            .host = "127.0.0.1",
                            .threads = 2,
                            .key_rate_limit = 100000,
                            .user_rate_limit = 100000,
                            .ai = &ai->base,
                            .store_connections = 4,
                            .no_training = !training,
                            .store_fault = &store_fault,
                            .blobs_fault = &blobs_fault};
    ws_error err = {0};
    int rc = ws_server_new(&cfg, &srv, &err);
    if (rc != 0)
        fprintf(stderr, "server: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(ws_server_start(srv, &err), 0);
    port = ws_server_port(srv);
}

static void stop(void)
{
    ws_fault_disarm(&store_fault);
    ws_fault_disarm(&blobs_fault);
    ws_server_stop(srv);
    ws_server_wait(srv);
    ws_server_free(srv);
    srv = NULL;
    ws_ai_free(&ai->base);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static void make_key(const char *name, char key[WS_KEY_LEN + 1], char uid[64])
{
    ws_error err = {0};
    ws_store *st = NULL;
    char *url = ws_store_url_for_data_dir(data_dir, &err);
    ws_store_config sc = {.url = url};
    CHECK_EQ_INT(ws_store_open(&sc, &st, &err), 0);
    ws_principal p;
    CHECK_EQ_INT(ws_auth_key_create(st, name, WS_ROLE_USER, 0, "tests", 0, key, &p, &err), 0);
    snprintf(uid, 64, "%s", p.user_id);
    ws_store_close(st);
    free(url);
}

/* A failure answer: 5xx with {"error":{"code":...}}. */
static bool clean_error(const http_resp *r, int status)
{
    if (status < 500 || status > 599)
        return false;
    ws_json_doc *d = NULL;
    if (ws_json_parse(r->body, r->body_len, &d, NULL) != 0)
        return false;
    const ws_json *e = ws_json_get(ws_json_root(d), "error");
    bool ok = e && ws_json_get_str(e, "code") && ws_json_get_str(e, "message");
    ws_json_doc_free(d);
    return ok;
}

/* How many items the list at path (a JSON object with "items") holds; -1 on failure. */
static long count_items(const char *path, const char *key)
{
    http_resp r = {0};
    long n = -1;
    if (hc_request(port, "GET", path, key, NULL, NULL, 0, &r) == 200) {
        ws_json_doc *d = NULL;
        if (ws_json_parse(r.body, r.body_len, &d, NULL) == 0) {
            const ws_json *it = ws_json_get(ws_json_root(d), "items");
            n = it && it->type == WS_JSON_ARRAY ? (long)it->len : -1;
            ws_json_doc_free(d);
        }
    }
    hc_free(&r);
    return n;
}

static int count_blob(void *arg, const char *key)
{
    (*(long *)arg)++;
    return 0;
}

/* Objects under users/<uid>/, read through a handle of our own (no faults). */
static long count_blobs(const char *uid)
{
    ws_blobs *b = NULL;
    ws_error err = {0};
    long n = 0;
    char prefix[96];
    snprintf(prefix, sizeof prefix, "users/%s/", uid);
    if (ws_blobs_open(NULL, data_dir, &b, &err) != 0)
        return -1;
    if (ws_blobs_list(b, prefix, count_blob, &n, &err) != 0)
        n = -1;
    ws_blobs_close(b);
    return n;
}

/* Runs op with the Nth call of f failing, N = 1, 2, ... until an attempt injects nothing;
 * check() sees each attempt's status and answer and whether a fault fired. Returns how many
 * attempts had a fault injected. */
typedef int (*op_fn)(const char *key, http_resp *r);
typedef void (*check_fn)(const char *key, const char *uid, int status, const http_resp *r, bool faulted);

static int sweep(ws_fault *f, op_fn op, check_fn check, const char *key, const char *uid)
{
    int faulted_runs = 0;
    for (uint64_t nth = 1; nth <= MAX_NTH; nth++) {
        http_resp r = {0};
        ws_fault_arm(f, nth, 0, 0);
        int status = op(key, &r);
        bool faulted = atomic_load(&f->injected) > 0;
        ws_fault_disarm(f);
        check(key, uid, status, &r, faulted);
        hc_free(&r);
        if (!faulted)
            return faulted_runs;
        faulted_runs++;
    }
    CHECK(!"the operation still hit a fault after MAX_NTH calls");
    return faulted_runs;
}

/* ---- key create ---- */

static long keys_before;

static int op_key_create(const char *key, http_resp *r)
{
    return hc_json(port, "POST", "/v1/keys", key, "{\"name\":\"faulty\"}", r);
}

static void check_key_create(const char *key, const char *uid, int status, const http_resp *r, bool faulted)
{
    long now = count_items("/v1/keys", key);
    if (status == 201) {
        CHECK_EQ_INT(now, keys_before + 1);
        keys_before = now;
        return;
    }
    CHECK(faulted);
    CHECK(clean_error(r, status));
    CHECK_EQ_INT(now, keys_before); /* no key half-made */
}

static void key_create_fails_cleanly(void)
{
    start(false);
    char key[WS_KEY_LEN + 1], uid[64];
    make_key("fault-keys", key, uid);
    keys_before = count_items("/v1/keys", key);
    CHECK(keys_before >= 1);
    CHECK(sweep(&store_fault, op_key_create, check_key_create, key, uid) >= 1);
    stop();
}

/* ---- upload: the export blob and the queued job ---- */

static const char *chat_txt = "12/01/2024, 10:00 - Ann: morning! coffee later?\n"
                              "12/01/2024, 10:01 - Bob: sure, where\n"
                              "12/01/2024, 10:02 - Ann: the usual place haha\n"
                              "12/01/2024, 10:05 - Bob: ok see you at 11\n"
                              "12/01/2024, 10:06 - Ann: perfect\n";
static long jobs_before, blobs_before;

static int op_upload(const char *key, http_resp *r)
{
    return hc_request(port, "POST", "/v1/exports?persona=Ann", key, "Content-Type: text/plain\r\n", chat_txt,
                      strlen(chat_txt), r);
}

static void check_upload(const char *key, const char *uid, int status, const http_resp *r, bool faulted)
{
    long jobs = count_items("/v1/training-jobs", key), blobs = count_blobs(uid);
    if (status == 202) {
        CHECK_EQ_INT(jobs, jobs_before + 1);
        CHECK(blobs > blobs_before);
        jobs_before = jobs;
        blobs_before = blobs;
        return;
    }
    CHECK(faulted);
    CHECK(clean_error(r, status));
    CHECK_EQ_INT(jobs, jobs_before);   /* no job without its export */
    CHECK_EQ_INT(blobs, blobs_before); /* no export without its job */
}

static void upload_fails_cleanly(void)
{
    start(false);
    char key[WS_KEY_LEN + 1], uid[64];
    make_key("fault-upload", key, uid);
    jobs_before = count_items("/v1/training-jobs", key);
    blobs_before = count_blobs(uid);
    CHECK_EQ_INT(jobs_before, 0);
    CHECK(sweep(&store_fault, op_upload, check_upload, key, uid) >= 1);
    CHECK(sweep(&blobs_fault, op_upload, check_upload, key, uid) >= 1);
    stop();
}

/* ---- training under random faults, then reply and erasure ---- */

static const char *job_status(const char *key, const char *job_id, char *out, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/training-jobs/%s", job_id);
    http_resp r = {0};
    snprintf(out, n, "?");
    if (hc_request(port, "GET", path, key, NULL, NULL, 0, &r) == 200) {
        ws_json_doc *d = NULL;
        if (ws_json_parse(r.body, r.body_len, &d, NULL) == 0) {
            const char *s = ws_json_get_str(ws_json_root(d), "status");
            snprintf(out, n, "%s", s ? s : "?");
            ws_json_doc_free(d);
        }
    }
    hc_free(&r);
    return out;
}

/* Uploads (faults off) and lets the job run with a share of the store's and blobs' calls
 * failing, then with none: the job ends completed or failed, never stuck. */
static void train_under_faults(const char *key, uint64_t seed, char *final, size_t n)
{
    http_resp r = {0};
    CHECK_EQ_INT(op_upload(key, &r), 202);
    ws_json_doc *d = NULL;
    char job_id[64] = "";
    if (ws_json_parse(r.body, r.body_len, &d, NULL) == 0) {
        const char *j = ws_json_get_str(ws_json_root(d), "job_id");
        snprintf(job_id, sizeof job_id, "%s", j ? j : "");
        ws_json_doc_free(d);
    }
    hc_free(&r);
    if (seed) { /* 20% of the calls fail while the job runs */
        ws_fault_arm(&store_fault, 0, 200000, seed);
        ws_fault_arm(&blobs_fault, 0, 200000, seed + 1);
        usleep(300000);
    }
    ws_fault_disarm(&store_fault);
    ws_fault_disarm(&blobs_fault);
    for (int i = 0; i < 500; i++) {
        job_status(key, job_id, final, n);
        if (!strcmp(final, "completed") || !strcmp(final, "failed"))
            return;
        usleep(20000);
    }
}

/* Replies with a share of the store's calls failing: each answer is 200 or a clean error, and
 * every reply given is listed afterwards (the writer retries a failed row, loses none). */
static void replies_under_faults(const char *key)
{
    long before = count_items("/v1/conversations?limit=200", key), given = 0;
    CHECK(before >= 0);
    ws_fault_arm(&store_fault, 0, 300000, 7);
    for (int i = 0; i < 20; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"message\":\"coffee %d?\"}", i); /* no cache hits */
        http_resp r = {0};
        int st = hc_json(port, "POST", "/v1/reply", key, body, &r);
        if (st == 200)
            given++;
        else
            CHECK(clean_error(&r, st));
        hc_free(&r);
    }
    /* the replies' own store calls are few (the writer batches rows): list under the faults
     * until one is injected, each answer 200 or a clean error */
    for (int i = 0; i < 100 && atomic_load(&store_fault.injected) == 0; i++) {
        http_resp r = {0};
        int st = hc_request(port, "GET", "/v1/conversations?limit=5", key, NULL, NULL, 0, &r);
        if (st != 200)
            CHECK(clean_error(&r, st));
        hc_free(&r);
    }
    CHECK(atomic_load(&store_fault.injected) > 0);
    ws_fault_disarm(&store_fault);
    CHECK(given > 0);
    /* the writer may be sleeping in its backoff (up to 2 s): wait for it, up to 10 s */
    long now = -1;
    for (int i = 0; i < 50 && now != before + given; i++) {
        now = count_items("/v1/conversations?limit=200", key);
        if (now != before + given)
            usleep(200000);
    }
    CHECK_EQ_INT(now, before + given);
}

static int op_erase(const char *key, http_resp *r)
{
    return hc_request(port, "DELETE", "/v1/me", key, NULL, NULL, 0, r);
}

static void training_reply_and_erasure_fail_cleanly(void)
{
    start(true);
    char key[WS_KEY_LEN + 1], uid[64], status[32];
    make_key("fault-train", key, uid);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        train_under_faults(key, seed, status, sizeof status);
        CHECK(!strcmp(status, "completed") || !strcmp(status, "failed"));
    }
    /* a last run without faults gives the user a model to reply with */
    train_under_faults(key, 0, status, sizeof status);
    CHECK_EQ_STR(status, "completed");
    replies_under_faults(key);
    /* erasure: each failure is clean; the retry with no faults erases everything */
    for (uint64_t nth = 1; nth <= MAX_NTH; nth++) {
        http_resp r = {0};
        ws_fault_arm(nth % 2 ? &store_fault : &blobs_fault, (nth + 1) / 2, 0, 0);
        int st = op_erase(key, &r);
        bool faulted = atomic_load(&store_fault.injected) + atomic_load(&blobs_fault.injected) > 0;
        ws_fault_disarm(&store_fault);
        ws_fault_disarm(&blobs_fault);
        if (st >= 200 && st < 300) {
            hc_free(&r);
            break;
        }
        CHECK(faulted);
        CHECK(clean_error(&r, st));
        hc_free(&r);
    }
    http_resp r = {0};
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", key, NULL, NULL, 0, &r), 401); /* the user is gone */
    hc_free(&r);
    CHECK_EQ_INT(count_blobs(uid), 0);
    stop();
}

/* the decision is the seed's and the call number's alone; nth fails that call only */
static void fault_counts_and_seeds(void)
{
    ws_fault f = WS_FAULT_INIT;
    CHECK(!ws_fault_hit(&f));
    CHECK(!ws_fault_hit(NULL));
    ws_fault_arm(&f, 3, 0, 0);
    CHECK(!ws_fault_hit(&f));
    CHECK(!ws_fault_hit(&f));
    CHECK(ws_fault_hit(&f));
    CHECK(!ws_fault_hit(&f));
    CHECK_EQ_INT(f.injected, 1);
    bool a[200], hits = 0;
    ws_fault_arm(&f, 0, 250000, 42);
    for (int i = 0; i < 200; i++)
        hits += (a[i] = ws_fault_hit(&f));
    CHECK(hits);
    ws_fault_arm(&f, 0, 250000, 42);
    int same = 0, n = 0;
    for (int i = 0; i < 200; i++) {
        bool h = ws_fault_hit(&f);
        same += h == a[i];
        n += h;
    }
    CHECK_EQ_INT(same, 200);
    CHECK(n > 20 && n < 90); /* ~50 of 200 */
}

WS_TEST_MAIN(T(fault_counts_and_seeds), T(key_create_fails_cleanly), T(upload_fails_cleanly),
             T(training_reply_and_erasure_fail_cleanly))
