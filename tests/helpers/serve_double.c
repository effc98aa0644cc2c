/* Test helper (not a test): runs the API gateway with the counting TEST-DOUBLE AI
 * (tests/unit/ai_double.h) for the Node clients of tests/mcp/ and the benchmarks, until
 * SIGTERM/SIGINT. Creates users and keys and writes them as JSON to INFO_FILE:
 *   {"port":N,"key":"...","key2":"...","admin_key":"...","bench_key":"..."}
 * Usage: helper_serve_double DATA_DIR INFO_FILE [PORT] [THREADS]
 * WS_TEST_TRAIN_DELAY_MS makes each training run take that long (progress tests);
 * WS_TEST_WA_SECRET and WS_TEST_WA_VERIFY_TOKEN configure the WhatsApp webhook. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "ai_double.h"
#include "auth/auth.h"
#include "server/server.h"
#include "store/store.h"

static int make_key(const char *url, const char *user, ws_role role, int rate, char key[WS_KEY_LEN + 1])
{
    ws_store_config sc = {.url = url};
    ws_store *st = NULL;
    ws_error err = {0};
    int rc = ws_store_open(&sc, &st, &err);
    if (rc == 0)
        rc = ws_auth_key_create(st, user, role, rate, "helper", 0, key, NULL, &err);
    if (rc)
        fprintf(stderr, "helper_serve_double: %s\n", err.msg);
    ws_store_close(st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: helper_serve_double DATA_DIR INFO_FILE [PORT] [THREADS]\n");
        return 2;
    }
    /* the logger as `whatstyle serve` sets it up (bench/http.sh passes WS_LOG_LEVEL=warn:
     * nginx, its yardstick, runs without an access log) */
    const char *lv = getenv("WS_LOG_LEVEL");
    ws_log_setup("serve",
                 lv && ws_log_level_parse(lv) >= 0 ? (ws_log_level)ws_log_level_parse(lv) : WS_LOG_INFO,
                 WS_LOG_JSON, stderr);
    /* as `whatstyle serve` does (--uv-threadpool-size, default 16): libuv reads it at first use */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    counting_ai *ai = counting_ai_new();
    if (getenv("WS_TEST_TRAIN_DELAY_MS"))
        ai->train_delay_ms = atoi(getenv("WS_TEST_TRAIN_DELAY_MS"));
    ws_server_config cfg = {.data_dir = argv[1],
                            .host = "127.0.0.1",
                            .port = argc > 3 ? atoi(argv[3]) : 0,
                            .threads = argc > 4 ? atoi(argv[4]) : 0,
                            .store_url = getenv("WS_STORE_URL"),
                            .cache_url = getenv("WS_CACHE_URL"),
                            .key_rate_limit = 600,
                            .user_rate_limit = 100000000,
                            .ai = &ai->base,
                            /* the WhatsApp webhook, when the test gives a secret */
                            .whatsapp_app_secret = getenv("WS_TEST_WA_SECRET"),
                            .whatsapp_verify_token = getenv("WS_TEST_WA_VERIFY_TOKEN")};
    ws_server *srv = NULL;
    ws_error err = {0};
    if (ws_server_new(&cfg, &srv, &err) != 0 || ws_server_start(srv, &err) != 0) {
        fprintf(stderr, "helper_serve_double: %s\n", err.msg);
        return 1;
    }
    char *url = getenv("WS_STORE_URL") ? ws_xstrdup(getenv("WS_STORE_URL"))
                                       : ws_store_url_for_data_dir(argv[1], &err);
    char k1[WS_KEY_LEN + 1], k2[WS_KEY_LEN + 1], ka[WS_KEY_LEN + 1], kb[WS_KEY_LEN + 1];
    char names[4][64];
    unsigned tag = (unsigned)getpid();
    snprintf(names[0], 64, "alice-%u", tag);
    snprintf(names[1], 64, "bob-%u", tag);
    snprintf(names[2], 64, "admin-%u", tag);
    snprintf(names[3], 64, "bench-%u", tag);
    if (make_key(url, names[0], WS_ROLE_USER, 0, k1) || make_key(url, names[1], WS_ROLE_USER, 0, k2) ||
        make_key(url, names[2], WS_ROLE_ADMIN, 0, ka) || make_key(url, names[3], WS_ROLE_USER, 100000000, kb))
        return 1;
    free(url);
    FILE *f = fopen(argv[2], "w");
    if (!f)
        return 1;
    fprintf(f, "{\"port\":%d,\"key\":\"%s\",\"key2\":\"%s\",\"admin_key\":\"%s\",\"bench_key\":\"%s\"}\n",
            ws_server_port(srv), k1, k2, ka, kb);
    fclose(f);
    int sig;
    sigwait(&set, &sig);
    ws_server_stop(srv);
    ws_server_wait(srv);
    ws_server_free(srv);
    ws_ai_free(&ai->base);
    return 0;
}
