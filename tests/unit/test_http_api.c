/* Black-box tests of the REST contract and MCP endpoint of the API gateway over real HTTP,
 * with the counting test-double AI (tests/unit/ai_double.h). Runs on the embedded defaults
 * (SQLite + in-process cache); tests/cli/server_services.sh runs it again against real
 * PostgreSQL and Redis through WS_TEST_STORE_URL / WS_TEST_CACHE_URL.
 *
 * Covered: auth (401), the whole /v1 contract, cross-user access, rate limits (429 +
 * Retry-After), the reply cache (a hit never calls the AI), bad bodies, 413, right of
 * access and erasure, restart with data intact, MCP over HTTP. */
#include "blobs_settings.h"
#include "harness.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "ai_double.h"
#include "auth/auth.h"
#include "core/json.h"
#include "core/progress.h"
#include "http_client.h"
#include "server/server.h"
#include "store/store.h"

static char data_dir[256];
static counting_ai *ai;
static ws_server *srv;
static int port;
static char run_tag[16];
static size_t writer_queue; /* 0 = the server's default */

static const char *chat_txt = "12/01/2024, 10:00 - Ann: morning! coffee later?\n"
                              "12/01/2024, 10:01 - Bob: sure, where\n"
                              "12/01/2024, 10:02 - Ann: the usual place haha\n"
                              "12/01/2024, 10:05 - Bob: ok see you at 11\n"
                              "12/01/2024, 10:06 - Ann: perfect 👍\n"
                              "12/01/2024, 12:30 - Bob: that was fun\n"
                              "12/01/2024, 12:31 - Ann: totally, same time next week?\n"
                              "12/01/2024, 12:35 - Bob: deal\n"
                              "12/01/2024, 12:36 - Ann: yesss\n";

static const char *store_url(void)
{
    const char *u = getenv("WS_TEST_STORE_URL");
    return u && *u ? u : NULL;
}

static void start(size_t max_export)
{
    /* tests/cli/blobs_s3.sh runs this on S3: the blobs URL and keys as `serve` would hand them */
    t_blobs_keys(NULL, NULL);
    ws_server_config cfg = {.data_dir = data_dir,
                            .store_url = store_url(),
                            .cache_url = getenv("WS_TEST_CACHE_URL"),
                            .blobs_url = getenv("WS_BLOBS_URL"),
                            .host = "127.0.0.1",
                            .threads = 2,
                            .max_export_bytes = max_export,
                            .key_rate_limit = 1000,
                            .user_rate_limit = 5000,
                            .ai = &ai->base,
                            .store_connections = 4,
                            .writer_queue_max = writer_queue};
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
    ws_server_stop(srv);
    ws_server_wait(srv);
    ws_server_free(srv);
    srv = NULL;
}

/* Creates a key for a fresh user (unique per run, so a shared PostgreSQL is fine). */
static void make_key(const char *name, ws_role role, int rate, char key[WS_KEY_LEN + 1], char *uid)
{
    ws_error err = {0};
    ws_store *st = NULL;
    char *url = store_url() ? ws_xstrdup(store_url()) : ws_store_url_for_data_dir(data_dir, &err);
    ws_store_config sc = {.url = url};
    CHECK_EQ_INT(ws_store_open(&sc, &st, &err), 0);
    ws_store_migrate(st, NULL, &err);
    char full[64];
    snprintf(full, sizeof full, "%s-%s", name, run_tag);
    ws_principal p;
    CHECK_EQ_INT(ws_auth_key_create(st, full, role, rate, "tests", 0, key, &p, &err), 0);
    if (uid)
        strcpy(uid, p.user_id);
    ws_store_close(st);
    free(url);
}

static ws_json_doc *parse(const http_resp *r)
{
    ws_json_doc *d = NULL;
    if (ws_json_parse(r->body, r->body_len, &d, NULL) != 0)
        return NULL;
    return d;
}

static const char *jstr(ws_json_doc *d, const char *k)
{
    return d ? ws_json_get_str(ws_json_root(d), k) : NULL;
}

static const char *err_code(const http_resp *r, char *out, size_t n)
{
    ws_json_doc *d = parse(r);
    const ws_json *e = d ? ws_json_get(ws_json_root(d), "error") : NULL;
    const char *c = e ? ws_json_get_str(e, "code") : NULL;
    snprintf(out, n, "%s", c ? c : "(none)");
    ws_json_doc_free(d);
    return out;
}

/* Uploads the chat for persona and waits until the job completes; returns the job id. */
static void train(const char *key, const char *persona, char job_id[64])
{
    http_resp r = {0};
    char path[128];
    snprintf(path, sizeof path, "/v1/exports?persona=%s", persona);
    CHECK_EQ_INT(
        hc_request(port, "POST", path, key, "Content-Type: text/plain\r\n", chat_txt, strlen(chat_txt), &r),
        202);
    ws_json_doc *d = parse(&r);
    snprintf(job_id, 64, "%s", jstr(d, "job_id") ? jstr(d, "job_id") : "");
    CHECK(!strncmp(job_id, "job_", 4));
    CHECK_EQ_STR(jstr(d, "status"), "queued");
    ws_json_doc_free(d);
    snprintf(path, sizeof path, "/v1/training-jobs/%s", job_id);
    char status[32] = "";
    for (int i = 0; i < 200; i++) {
        CHECK_EQ_INT(hc_request(port, "GET", path, key, NULL, NULL, 0, &r), 200);
        d = parse(&r);
        snprintf(status, sizeof status, "%s", jstr(d, "status") ? jstr(d, "status") : "");
        ws_json_doc_free(d);
        if (!strcmp(status, "completed") || !strcmp(status, "failed"))
            break;
        usleep(20000);
    }
    CHECK_EQ_STR(status, "completed");
    hc_free(&r);
}

static void setup(void)
{
    snprintf(data_dir, sizeof data_dir, "/tmp/ws-test-api-XXXXXX");
    CHECK(mkdtemp(data_dir) != NULL);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(run_tag, sizeof run_tag, "%08x", (unsigned)rand());
    ai = counting_ai_new();
}

static void teardown(void)
{
    ws_ai_free(&ai->base);
    ai = NULL;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void api_requires_a_valid_key(void)
{
    setup();
    start(0);
    http_resp r = {0};
    char code[64], hv[128];
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", NULL, NULL, NULL, 0, &r), 401);
    CHECK_EQ_STR(err_code(&r, code, sizeof code), "unauthorized");
    CHECK(hc_header(&r, "WWW-Authenticate", hv, sizeof hv) != NULL);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", "not-a-key", NULL, NULL, 0, &r), 401);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me",
                            "ws_live_00000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, NULL, 0,
                            &r),
                 401);
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/reply", NULL, NULL, "{}", 2, &r), 401);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/training-jobs/job_x", NULL, NULL, NULL, 0, &r), 401);
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", NULL, NULL, "{}", 2, &r), 401);
    CHECK_EQ_INT(hc_request(port, "GET", "/healthz", NULL, NULL, NULL, 0, &r), 200);
    CHECK_EQ_INT(hc_request(port, "GET", "/readyz", NULL, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "\"ai\":\"ok\""));
    hc_free(&r);
    stop();
    teardown();
}

static void api_contract_end_to_end(void)
{
    setup();
    start(0);
    char key[WS_KEY_LEN + 1], uid[64];
    make_key("ann", WS_ROLE_USER, 0, key, uid);
    http_resp r = {0};
    char code[64];

    /* before training: 409 */
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"hi\"}", &r), 409);
    CHECK_EQ_STR(err_code(&r, code, sizeof code), "no_model");
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/style-profile", key, NULL, NULL, 0, &r), 409);

    char job[64];
    train(key, "Ann", job);
    /* >= 1: on a shared PostgreSQL this server's worker may also train jobs left queued by
     * an earlier run (any worker takes any queued job) */
    CHECK(atomic_load(&ai->train_calls) >= 1);
    CHECK(atomic_load(&ai->reload_calls) >= 1);
    char path[128];
    snprintf(path, sizeof path, "/v1/training-jobs/%s", job);
    CHECK_EQ_INT(hc_request(port, "GET", path, key, NULL, NULL, 0, &r), 200);
    ws_json_doc *d = parse(&r);
    double samples = 0;
    CHECK(ws_json_get_num(ws_json_root(d), "samples_processed", &samples) && samples == 5);
    CHECK(ws_json_get(ws_json_root(d), "error") &&
          ws_json_get(ws_json_root(d), "error")->type == WS_JSON_NULL);
    ws_json_doc_free(d);

    /* reply: a miss calls the AI once, the same question again is a cache hit */
    const char *q =
        "{\"message\":\"are we still on for coffee?\",\"context\":[{\"author\":\"Bob\",\"text\":\"hey\"}]}";
    int calls0 = atomic_load(&ai->generate_calls);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, q, &r), 200);
    d = parse(&r);
    CHECK(d != NULL);
    const char *reply = jstr(d, "reply");
    CHECK(reply && strstr(chat_txt, reply) && strcmp(reply, "are we still on for coffee?"));
    bool cached = true, fallback;
    double conf = -1, ms = -1;
    CHECK(ws_json_get_bool(ws_json_root(d), "cached", &cached) && !cached);
    CHECK(ws_json_get_bool(ws_json_root(d), "fallback", &fallback));
    CHECK(ws_json_get_num(ws_json_root(d), "confidence", &conf) && conf >= 0 && conf <= 1);
    CHECK(ws_json_get_num(ws_json_root(d), "processing_time_ms", &ms) && ms >= 0);
    CHECK_EQ_STR(jstr(d, "model_version"), "v1");
    char first_reply[256];
    snprintf(first_reply, sizeof first_reply, "%s", reply ? reply : "");
    ws_json_doc_free(d);
    CHECK_EQ_INT(atomic_load(&ai->generate_calls), calls0 + 1);
    /* same message with different spacing/case: normalised to the same cache key */
    const char *q2 = "{\"message\":\"  Are we still on   for COFFEE? "
                     "\",\"context\":[{\"author\":\"Bob\",\"text\":\"hey\"}]}";
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, i ? q : q2, &r), 200);
        d = parse(&r);
        CHECK(ws_json_get_bool(ws_json_root(d), "cached", &cached) && cached);
        CHECK_EQ_STR(jstr(d, "reply"), first_reply);
        ws_json_doc_free(d);
    }
    CHECK_EQ_INT(atomic_load(&ai->generate_calls), calls0 + 1); /* hits never call the AI */
    CHECK_EQ_INT(hc_request(port, "GET", "/metrics", NULL, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "ws_reply_cache_hits_total 3\n"));
    const char *aic = strstr(r.body, "\nws_ai_calls_total ");
    CHECK(aic && atoi(aic + 19) == atomic_load(&ai->train_calls) + atomic_load(&ai->generate_calls));
    CHECK(strstr(
        r.body,
        "ws_http_request_duration_seconds_bucket{route=\"/v1/reply\",method=\"POST\",le=\"+Inf\"} 5\n"));

    /* conversations: written asynchronously, yet a list right after the replies shows them
     * (read-your-writes), newest first, paginated */
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations?limit=10", key, NULL, NULL, 0, &r), 200);
    d = parse(&r);
    const ws_json *items = ws_json_get(ws_json_root(d), "items");
    int n_items = items ? (int)items->len : 0;
    ws_json_doc_free(d);
    CHECK_EQ_INT(n_items, 4);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations?limit=3", key, NULL, NULL, 0, &r), 200);
    d = parse(&r);
    const char *cur = jstr(d, "next_cursor");
    CHECK(cur != NULL);
    char cpath[256];
    snprintf(cpath, sizeof cpath, "/v1/conversations?limit=3&cursor=%s", cur ? cur : "");
    ws_json_doc_free(d);
    CHECK_EQ_INT(hc_request(port, "GET", cpath, key, NULL, NULL, 0, &r), 200);
    d = parse(&r);
    CHECK_EQ_INT(ws_json_get(ws_json_root(d), "items")->len, 1);
    CHECK(ws_json_get(ws_json_root(d), "next_cursor")->type == WS_JSON_NULL);
    ws_json_doc_free(d);

    CHECK_EQ_INT(hc_request(port, "GET", "/v1/style-profile", key, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "\"profile\":{\"messages\":5"));
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", key, NULL, NULL, 0, &r), 200);
    d = parse(&r);
    CHECK_EQ_STR(jstr(d, "user_id"), uid);
    CHECK_EQ_STR(jstr(d, "role"), "user");
    CHECK_EQ_STR(jstr(d, "model_version"), "v1");
    ws_json_doc_free(d);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me/export", key, NULL, NULL, 0, &r), 200);
    d = parse(&r);
    CHECK(d && ws_json_get(ws_json_root(d), "conversations") &&
          ws_json_get(ws_json_root(d), "conversations")->len == 4);
    CHECK(d && ws_json_get(ws_json_root(d), "training_jobs") &&
          ws_json_get(ws_json_root(d), "training_jobs")->len == 1);
    ws_json_doc_free(d);
    hc_free(&r);
    stop();
    teardown();
}

static void api_rejects_bad_input(void)
{
    setup();
    start(4096); /* a small upload cap for the 413 case */
    char key[WS_KEY_LEN + 1];
    make_key("bad", WS_ROLE_USER, 0, key, NULL);
    http_resp r = {0};
    char code[64];
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Zed", key, "Content-Type: text/plain\r\n",
                            chat_txt, strlen(chat_txt), &r),
                 422);
    CHECK_EQ_STR(err_code(&r, code, sizeof code), "unknown_persona");
    CHECK(strstr(r.body, "participants: Ann, Bob"));
    const char *junk = "this is not a chat export at all\njust some text\n";
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Ann", key, "Content-Type: text/plain\r\n",
                            junk, strlen(junk), &r),
                 400);
    CHECK_EQ_STR(err_code(&r, code, sizeof code), "not_an_export");
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Ann", key, "Content-Type: application/zip\r\n",
                            "PK\x03\x04garbage", 11, &r),
                 400);
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports", key, "Content-Type: text/plain\r\n", chat_txt,
                            strlen(chat_txt), &r),
                 400);
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Ann", key, "Content-Type: image/png\r\n",
                            chat_txt, strlen(chat_txt), &r),
                 415);
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Ann&budget=-3", key, NULL, chat_txt,
                            strlen(chat_txt), &r),
                 400);
    char *big = ws_xmalloc(8192);
    memset(big, 'a', 8192);
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Ann", key, "Content-Type: text/plain\r\n", big,
                            8192, &r),
                 413);
    free(big);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":", &r), 400);
    CHECK_EQ_STR(err_code(&r, code, sizeof code), "invalid_json");
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":42}", &r), 400);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "[1,2]", &r), 400);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"x\",\"context\":\"no\"}", &r), 400);
    CHECK_EQ_INT(
        hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"x\",\"context\":[{\"text\":1}]}", &r), 400);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"\"}", &r), 400);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations?limit=0", key, NULL, NULL, 0, &r), 400);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations?limit=abc", key, NULL, NULL, 0, &r), 400);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations?cursor=bogus", key, NULL, NULL, 0, &r), 400);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/nothing-here", key, NULL, NULL, 0, &r), 404);
    CHECK_EQ_INT(hc_request(port, "PUT", "/v1/reply", key, NULL, NULL, 0, &r), 405);
    /* huge header */
    ws_buf h = WS_BUF_INIT;
    ws_buf_puts(&h, "X-Huge: ");
    for (int i = 0; i < 20000; i++)
        ws_buf_putc(&h, 'x');
    ws_buf_puts(&h, "\r\n");
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", key, h.data, NULL, 0, &r), 431);
    ws_buf_free(&h);
    hc_free(&r);
    stop();
    teardown();
}

/* A .zip export (as WhatsApp shares it: _chat.txt inside) trains like the .txt. */
static void api_accepts_zip_exports(void)
{
    setup();
    start(0);
    char key[WS_KEY_LEN + 1];
    make_key("zipper", WS_ROLE_USER, 0, key, NULL);
    char cmd[600], path[300];
    snprintf(path, sizeof path, "%s/_chat.txt", data_dir);
    FILE *f = fopen(path, "w");
    fputs(chat_txt, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && zip -q chat.zip _chat.txt", data_dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(path, sizeof path, "%s/chat.zip", data_dir);
    f = fopen(path, "rb");
    char zip[4096];
    size_t n = f ? fread(zip, 1, sizeof zip, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 100 && !memcmp(zip, "PK", 2));
    http_resp r = {0};
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Bob", key, "Content-Type: application/zip\r\n",
                            zip, n, &r),
                 202);
    ws_json_doc *d = parse(&r);
    char jp[128];
    snprintf(jp, sizeof jp, "/v1/training-jobs/%s", jstr(d, "job_id") ? jstr(d, "job_id") : "x");
    ws_json_doc_free(d);
    for (int i = 0; i < 200; i++) {
        hc_request(port, "GET", jp, key, NULL, NULL, 0, &r);
        if (strstr(r.body, "\"completed\"") || strstr(r.body, "\"failed\""))
            break;
        usleep(20000);
    }
    CHECK(strstr(r.body, "\"status\":\"completed\""));
    CHECK(strstr(r.body, "\"samples_processed\":4")); /* Bob's 4 messages */
    /* a zip without a chat inside is not an export */
    snprintf(cmd, sizeof cmd, "cd %s && echo hi > notes.md && zip -q other.zip notes.md", data_dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(path, sizeof path, "%s/other.zip", data_dir);
    f = fopen(path, "rb");
    n = f ? fread(zip, 1, sizeof zip, f) : 0;
    if (f)
        fclose(f);
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Bob", key, "Content-Type: application/zip\r\n",
                            zip, n, &r),
                 400);
    hc_free(&r);
    stop();
    teardown();
}

static void api_isolates_users(void)
{
    setup();
    start(0);
    char ka[WS_KEY_LEN + 1], kb[WS_KEY_LEN + 1], kadmin[WS_KEY_LEN + 1];
    make_key("alice", WS_ROLE_USER, 0, ka, NULL);
    make_key("bob", WS_ROLE_USER, 0, kb, NULL);
    make_key("root", WS_ROLE_ADMIN, 0, kadmin, NULL);
    char job[64], path[128];
    train(ka, "Ann", job);
    http_resp r = {0};
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", ka, "{\"message\":\"hello\"}", &r), 200);
    snprintf(path, sizeof path, "/v1/training-jobs/%s", job);
    CHECK_EQ_INT(hc_request(port, "GET", path, kb, NULL, NULL, 0, &r), 404); /* not 403: no leak */
    CHECK_EQ_INT(hc_request(port, "GET", path, kadmin, NULL, NULL, 0, &r), 200);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/training-jobs/job_doesnotexist", ka, NULL, NULL, 0, &r), 404);
    /* bob has no model of his own and never sees alice's replies or conversations */
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", kb, "{\"message\":\"hello\"}", &r), 409);
    usleep(200000);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations", kb, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "\"items\":[]"));
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/style-profile", kb, NULL, NULL, 0, &r), 409);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me/export", kb, NULL, NULL, 0, &r), 200);
    CHECK(!strstr(r.body, "hello"));
    hc_free(&r);
    stop();
    teardown();
}

static void api_rate_limits_per_key_and_user(void)
{
    setup();
    start(0);
    char k1[WS_KEY_LEN + 1], uid[64];
    make_key("limited", WS_ROLE_USER, 3, k1, uid);
    http_resp r = {0};
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations", k1, NULL, NULL, 0, &r), 200);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations", k1, NULL, NULL, 0, &r), 429);
    char hv[32], code[64];
    CHECK(hc_header(&r, "Retry-After", hv, sizeof hv) && atoi(hv) >= 1 && atoi(hv) <= 60);
    CHECK_EQ_STR(err_code(&r, code, sizeof code), "rate_limited");
    CHECK_EQ_INT(hc_request(port, "GET", "/metrics", NULL, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "ws_rate_limited_total 1\n"));
    hc_free(&r);
    stop();
    teardown();
    /* per user: a server whose user limit (2/min) is below the key's own limit */
    setup();
    ws_server_config cfg = {.data_dir = data_dir,
                            .store_url = store_url(),
                            .cache_url = getenv("WS_TEST_CACHE_URL"),
                            .host = "127.0.0.1",
                            .threads = 1,
                            .key_rate_limit = 100,
                            .user_rate_limit = 2,
                            .ai = &ai->base};
    ws_error err = {0};
    CHECK_EQ_INT(ws_server_new(&cfg, &srv, &err), 0);
    CHECK_EQ_INT(ws_server_start(srv, &err), 0);
    port = ws_server_port(srv);
    char ka[WS_KEY_LEN + 1];
    make_key("multi", WS_ROLE_USER, 0, ka, NULL);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", ka, NULL, NULL, 0, &r), 200);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", ka, NULL, NULL, 0, &r), 200);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", ka, NULL, NULL, 0, &r), 429);
    CHECK(strstr(r.body, "per user"));
    hc_free(&r);
    stop();
    teardown();
}

static void api_deletes_everything_of_a_user(void)
{
    setup();
    start(0);
    char key[WS_KEY_LEN + 1], other[WS_KEY_LEN + 1], uid[64];
    make_key("gone", WS_ROLE_USER, 0, key, uid);
    make_key("stays", WS_ROLE_USER, 0, other, NULL);
    char job[64];
    train(key, "Ann", job);
    train(other, "Bob", job);
    http_resp r = {0};
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"bye\"}", &r), 200);
    usleep(100000);
    /* the user's export is in the blobs until the delete: encrypted (the chat's text is not
     * in the file, the blob header is), and no decrypted copy is left after training */
    char cmd[768];
    snprintf(cmd, sizeof cmd, "ls %s/blobs/users/%s/exports | grep -q '^exp_.*\\.txt$'", data_dir, uid);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "cat %s/blobs/users/%s/exports/* | grep -q 'coffee later'", data_dir, uid);
    CHECK(system(cmd) != 0);
    snprintf(cmd, sizeof cmd, "head -c 4 %s/blobs/users/%s/exports/* | grep -q WSBL", data_dir, uid);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/tmp)\"", data_dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "test -d %s/blobs/users/%s", data_dir, uid);
    int forgets = atomic_load(&ai->forget_calls);
    CHECK_EQ_INT(hc_request(port, "DELETE", "/v1/me", key, NULL, NULL, 0, &r), 204);
    CHECK_EQ_INT(r.body_len, 0);
    CHECK_EQ_INT(atomic_load(&ai->forget_calls), forgets + 1);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", key, NULL, NULL, 0, &r), 401);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"bye\"}", &r), 401);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me/export", key, NULL, NULL, 0, &r), 401);
    CHECK(system(cmd) != 0); /* the user's blobs are gone */
    snprintf(cmd, sizeof cmd, "ls %s/blobs/users | wc -l | grep -qx 1", data_dir);
    CHECK_EQ_INT(system(cmd), 0); /* the other user's stay */
    /* the model is gone from the AI too */
    ws_ai_reply ar = {0};
    CHECK_EQ_INT(ai->base.ops->generate(&ai->base, uid, "x", NULL, 0, &ar, NULL), WS_ENOENT);
    /* the other user is untouched */
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", other, "{\"message\":\"still here?\"}", &r), 200);
    hc_free(&r);
    stop();
    teardown();
}

/* A burst of replies much larger than the conversation writer's queue (4 rows): most are
 * reply-cache hits answered on the loop thread, which hands a request to the pool when the
 * queue is full; every reply ends up as a row. */
typedef struct reply_burst {
    const char *key;
    int thread, n, ok;
} reply_burst;

static void *reply_burst_thread(void *arg)
{
    reply_burst *b = arg;
    http_resp r = {0};
    for (int i = 0; i < b->n; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"message\":\"burst %d\"}", i % 7);
        if (hc_json(port, "POST", "/v1/reply", b->key, body, &r) == 200)
            b->ok++;
    }
    hc_free(&r);
    return NULL;
}

static void api_reply_burst_loses_no_row(void)
{
    enum { THREADS = 4, N = 100 };
    setup();
    writer_queue = 4;
    start(0);
    char key[WS_KEY_LEN + 1], uid[64];
    make_key("burst", WS_ROLE_USER, 0, key, uid);
    char job[64];
    train(key, "Ann", job);
    /* another session blocks writes to conversations for the first second of the burst,
     * so the writer's queue fills */
    PGconn *pc = NULL;
    sqlite3 *lite = NULL;
    if (store_url()) {
        pc = PQconnectdb(store_url());
        PGresult *res = PQexec(pc, "BEGIN; LOCK TABLE conversations IN EXCLUSIVE MODE");
        CHECK(PQresultStatus(res) == PGRES_COMMAND_OK);
        PQclear(res);
    } else {
        char path[300];
        snprintf(path, sizeof path, "%s/whatstyle.db", data_dir);
        CHECK_EQ_INT(sqlite3_open(path, &lite), SQLITE_OK);
        sqlite3_busy_timeout(lite, 5000); /* the server may be writing (the training job's rows) */
        CHECK_EQ_INT(sqlite3_exec(lite, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    }
    reply_burst b[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        b[i] = (reply_burst){.key = key, .thread = i, .n = N};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, reply_burst_thread, &b[i]), 0);
    }
    usleep(1000000);
    if (pc) {
        PQclear(PQexec(pc, "COMMIT"));
        PQfinish(pc);
    } else {
        sqlite3_exec(lite, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(lite);
    }
    int ok = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += b[i].ok;
    }
    CHECK_EQ_INT(ok, THREADS * N);
    http_resp r = {0};
    CHECK_EQ_INT(hc_request(port, "GET", "/metrics", NULL, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "\nws_conversations_failed_total 0\n"));
    const char *w = strstr(r.body, "\nws_conversations_backpressure_waits_total ");
    long long waits = w ? atoll(w + strlen("\nws_conversations_backpressure_waits_total ")) : -1;
    printf("  %d replies, writer queue %zu: %lld waited for room\n", ok, writer_queue, waits);
    CHECK(waits > 0);
    hc_free(&r);
    stop(); /* drains the writer */
    writer_queue = 0;
    ws_error err = {0};
    ws_store *st = NULL;
    char *url = store_url() ? ws_xstrdup(store_url()) : ws_store_url_for_data_dir(data_dir, &err);
    ws_store_config sc = {.url = url};
    CHECK_EQ_INT(ws_store_open(&sc, &st, &err), 0);
    int64_t rows = -1, events = -1;
    CHECK_EQ_INT(ws_store_conv_count(st, uid, &rows, &err), 0);
    CHECK_EQ_INT(ws_store_event_count(st, uid, &events, &err), 0);
    CHECK_EQ_INT(rows, THREADS * N);
    CHECK(events >= THREADS * N); /* plus the training events, if any */
    ws_store_close(st);
    free(url);
    teardown();
}

static void api_survives_restart(void)
{
    setup();
    start(0);
    char key[WS_KEY_LEN + 1];
    make_key("durable", WS_ROLE_USER, 0, key, NULL);
    char job[64], path[128];
    train(key, "Ann", job);
    http_resp r = {0};
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"remember me\"}", &r), 200);
    usleep(100000);
    stop(); /* drains, flushes the writer */
    start(0);
    snprintf(path, sizeof path, "/v1/training-jobs/%s", job);
    CHECK_EQ_INT(hc_request(port, "GET", path, key, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "\"status\":\"completed\""));
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/conversations", key, NULL, NULL, 0, &r), 200);
    CHECK(strstr(r.body, "remember me"));
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/reply", key, "{\"message\":\"again\"}", &r), 200);
    hc_free(&r);
    stop();
    teardown();
}

static void api_requeues_training_interrupted_by_shutdown(void)
{
    setup();
    ai->train_delay_ms = 2000;
    start(0);
    char key[WS_KEY_LEN + 1];
    make_key("slowtrain", WS_ROLE_USER, 0, key, NULL);
    http_resp r = {0};
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Ann", key, "Content-Type: text/plain\r\n",
                            chat_txt, strlen(chat_txt), &r),
                 202);
    ws_json_doc *d = parse(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/training-jobs/%s", jstr(d, "job_id"));
    ws_json_doc_free(d);
    for (int i = 0; i < 100; i++) {
        hc_request(port, "GET", path, key, NULL, NULL, 0, &r);
        if (strstr(r.body, "\"running\""))
            break;
        usleep(10000);
    }
    CHECK(strstr(r.body, "\"running\""));
    stop();
    ai->train_delay_ms = 0;
    start(0);
    for (int i = 0; i < 200; i++) {
        hc_request(port, "GET", path, key, NULL, NULL, 0, &r);
        if (strstr(r.body, "\"completed\""))
            break;
        usleep(20000);
    }
    CHECK(strstr(r.body, "\"completed\""));
    hc_free(&r);
    stop();
    teardown();
}

static void mcp_over_http(void)
{
    setup();
    start(0);
    char key[WS_KEY_LEN + 1];
    make_key("mcp", WS_ROLE_USER, 0, key, NULL);
    char job[64];
    train(key, "Ann", job);
    http_resp r = {0};
    const char *acc = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";
    const char *init =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
        "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, acc, init, strlen(init), &r), 200);
    CHECK(strstr(r.body, "\"protocolVersion\":\"2025-11-25\""));
    char sid[128], hdrs[512];
    CHECK(hc_header(&r, "Mcp-Session-Id", sid, sizeof sid) != NULL);
    snprintf(hdrs, sizeof hdrs, "%sMcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-11-25\r\n", acc, sid);
    const char *note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, note, strlen(note), &r), 202);
    const char *list = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, list, strlen(list), &r), 200);
    const char *names[] = {"reply_as", "train_style", "training_status", "style_profile",
                           "list_conversations"};
    for (int i = 0; i < 5; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"name\":\"%s\"", names[i]);
        CHECK(strstr(r.body, pat));
    }
    CHECK(strstr(r.body, "\"outputSchema\""));
    const char *call = "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\",\"params\":{\"name\":"
                       "\"reply_as\",\"arguments\":{\"message\":\"coffee?\"}}}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, call, strlen(call), &r), 200);
    CHECK(strstr(r.body, "\"id\":\"c1\""));
    CHECK(strstr(r.body, "\"isError\":false"));
    CHECK(strstr(r.body, "\"structuredContent\":{\"reply\":"));
    const char *bad = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
                      "\"reply_as\",\"arguments\":{\"message\":5}}}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, bad, strlen(bad), &r), 200);
    CHECK(strstr(r.body, "\"isError\":true"));
    const char *unk =
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, unk, strlen(unk), &r), 200);
    CHECK(strstr(r.body, "\"code\":-32602"));
    const char *rl = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"resources/"
                     "read\",\"params\":{\"uri\":\"whatstyle://style-profile\"}}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, rl, strlen(rl), &r), 200);
    CHECK(strstr(r.body, "\"contents\":[{\"uri\":\"whatstyle://style-profile\""));
    const char *nom = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"prompts/list\"}";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, nom, strlen(nom), &r), 200);
    CHECK(strstr(r.body, "\"code\":-32601"));
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, "{oops", 5, &r), 400);
    CHECK(strstr(r.body, "-32700"));
    /* training over MCP, then its status */
    ws_buf tc = WS_BUF_INIT;
    ws_buf_puts(&tc, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
                     "\"train_style\",\"arguments\":{\"persona\":\"Bob\",\"export_text\":");
    ws_json_put_cstr(&tc, chat_txt);
    ws_buf_puts(&tc, "}}}");
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, tc.data, tc.len, &r), 200);
    CHECK(strstr(r.body, "\\\"status\\\":\\\"queued\\\""));
    ws_buf_free(&tc);
    /* only SSE accepted: the answer comes as one event */
    snprintf(hdrs, sizeof hdrs,
             "Content-Type: application/json\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\n", sid);
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, list, strlen(list), &r), 200);
    CHECK(!strncmp(r.body, "event: message\ndata: {", 22));
    /* a foreign Origin is refused (DNS rebinding) */
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key,
                            "Origin: http://evil.example\r\nContent-Type: application/json\r\n", list,
                            strlen(list), &r),
                 403);
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key,
                            "Origin: http://localhost:3000\r\nContent-Type: application/json\r\n", list,
                            strlen(list), &r),
                 200);
    CHECK_EQ_INT(hc_request(port, "GET", "/mcp", key, NULL, NULL, 0, &r), 405);
    /* session end: afterwards the id is unknown */
    snprintf(hdrs, sizeof hdrs, "Mcp-Session-Id: %s\r\n", sid);
    CHECK_EQ_INT(hc_request(port, "DELETE", "/mcp", key, hdrs, NULL, 0, &r), 204);
    snprintf(hdrs, sizeof hdrs, "%sMcp-Session-Id: %s\r\n", acc, sid);
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, hdrs, list, strlen(list), &r), 404);
    hc_free(&r);
    stop();
    teardown();
}

static void mcp_streams_training_progress(void)
{
    setup();
    ai->train_delay_ms = 900;
    start(0);
    char key[WS_KEY_LEN + 1];
    make_key("progress", WS_ROLE_USER, 0, key, NULL);
    http_resp r = {0};
    ws_buf tc = WS_BUF_INIT;
    ws_buf_puts(&tc, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":"
                     "\"train_style\",\"_meta\":{\"progressToken\":\"tok-1\"},\"arguments\":{\"persona\":"
                     "\"Ann\",\"export_text\":");
    ws_json_put_cstr(&tc, chat_txt);
    ws_buf_puts(&tc, "}}}");
    const char *acc = "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key, acc, tc.data, tc.len, &r), 200);
    char hv[64];
    CHECK(hc_header(&r, "Transfer-Encoding", hv, sizeof hv) && !strcmp(hv, "chunked"));
    CHECK(hc_header(&r, "Content-Type", hv, sizeof hv) && !strcmp(hv, "text/event-stream"));
    /* progress notifications 0 .. 100, increasing, then the result */
    const char *p0 = strstr(r.body, "\"progressToken\":\"tok-1\",\"progress\":0,");
    const char *mid = strstr(r.body, "\"message\":\"running\"");
    const char *p100 = strstr(r.body, "\"progress\":100,\"total\":100,\"message\":\"completed\"");
    const char *res = strstr(r.body, "\"id\":9,\"result\":");
    CHECK(p0 && mid && p100 && res && p0 < mid && mid < p100 && p100 < res);
    if (getenv("WS_TEST_VERBOSE"))
        fprintf(stderr, "%s\n", r.raw.data);
    CHECK(res && strstr(res, "\"structuredContent\":{\"job_id\":"));
    CHECK(strstr(r.body, "\r\n0\r\n\r\n") != NULL); /* the chunked body ended properly */
    /* without SSE in Accept: the plain JSON answer (queued) */
    ws_buf_reset(&tc);
    ws_buf_puts(&tc, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":"
                     "\"train_style\",\"_meta\":{\"progressToken\":2},\"arguments\":{\"persona\":\"Bob\","
                     "\"export_text\":");
    ws_json_put_cstr(&tc, chat_txt);
    ws_buf_puts(&tc, "}}}");
    CHECK_EQ_INT(hc_request(port, "POST", "/mcp", key,
                            "Content-Type: application/json\r\nAccept: application/json\r\n", tc.data, tc.len,
                            &r),
                 200);
    CHECK(strstr(r.body, "\\\"status\\\":\\\"queued\\\""));
    ws_buf_free(&tc);
    hc_free(&r);
    stop();
    teardown();
}

WS_TEST_MAIN(T(api_requires_a_valid_key), T(api_reply_burst_loses_no_row), T(api_contract_end_to_end),
             T(api_rejects_bad_input), T(api_accepts_zip_exports), T(api_isolates_users),
             T(api_rate_limits_per_key_and_user), T(api_deletes_everything_of_a_user),
             T(api_survives_restart), T(api_requeues_training_interrupted_by_shutdown), T(mcp_over_http),
             T(mcp_streams_training_progress))
