/* The cache test suite, run with the same checks against the in-process cache (always) and
 * a real redis-server when WS_TEST_REDIS_URL is set (tests/cli/store_services.sh starts one
 * on loopback). WS_TEST_REQUIRE_REDIS=1 makes a missing Redis a failure. */
#include "harness.h"

#include <hiredis.h>
#include <pthread.h>
#include <unistd.h>

#include "cache/cache.h"

static const char *cur_url;

/* Empties the Redis database (each test starts clean). */
static int redis_flush(const char *url)
{
    char host[128] = "127.0.0.1";
    int port = 6379;
    if (sscanf(url, "redis://%127[^:/]:%d", host, &port) < 1)
        return -1;
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) {
        redisFree(c);
        return -1;
    }
    redisReply *r = redisCommand(c, "FLUSHDB");
    int ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : -1;
}

static void run_backends(void (*body)(ws_cache *))
{
    const char *redis = getenv("WS_TEST_REDIS_URL");
    const char *require = getenv("WS_TEST_REQUIRE_REDIS");
    if (require && *require == '1')
        CHECK(redis && *redis);
    const char *urls[] = {"memory", redis};
    for (int b = 0; b < 2; b++) {
        if (!urls[b] || !*urls[b])
            continue;
        cur_url = urls[b];
        if (b == 1 && redis_flush(cur_url) < 0) {
            CHECK(!"Redis reachable");
            continue;
        }
        ws_cache *c = NULL;
        ws_error err = {0};
        CHECK_EQ_INT(ws_cache_open(cur_url, &c, &err), 0);
        if (!c) {
            fprintf(stderr, "open %s: %s\n", cur_url, err.msg);
            continue;
        }
        CHECK_EQ_STR(ws_cache_backend(c), b == 0 ? "memory" : "redis");
        int before = ws_t_failed_checks;
        body(c);
        if (ws_t_failed_checks != before)
            fprintf(stderr, "  (failures above on %s)\n", cur_url);
        ws_cache_close(c);
    }
}

#define CACHE_TEST(name)                                                                                     \
    static void name##_body(ws_cache *c);                                                                    \
    static void name(void)                                                                                   \
    {                                                                                                        \
        run_backends(name##_body);                                                                           \
    }                                                                                                        \
    static void name##_body(ws_cache *c)

CACHE_TEST(get_set_del)
{
    ws_error err = {0};
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_cache_ping(c, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "reply:u1:a", &b, &err), WS_ENOENT);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(ws_cache_set(c, "reply:u1:a", "hello", 5, WS_CACHE_REPLY_TTL_MS, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "reply:u1:a", &b, &err), 0);
    CHECK_EQ_STR(b.data, "hello");
    ws_buf_reset(&b);
    /* overwrite; binary values with NUL bytes; empty values */
    const char bin[] = {'a', 0, 'b', (char)0xff};
    CHECK_EQ_INT(ws_cache_set(c, "reply:u1:a", bin, sizeof bin, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "reply:u1:a", &b, &err), 0);
    CHECK_EQ_INT(b.len, 4);
    CHECK(b.data && !memcmp(b.data, bin, 4));
    ws_buf_reset(&b);
    CHECK_EQ_INT(ws_cache_set(c, "empty", "", 0, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "empty", &b, &err), 0);
    CHECK_EQ_INT(b.len, 0);
    int d = -1;
    CHECK_EQ_INT(ws_cache_del(c, "reply:u1:a", &d, &err), 0);
    CHECK_EQ_INT(d, 1);
    CHECK_EQ_INT(ws_cache_del(c, "reply:u1:a", &d, &err), 0);
    CHECK_EQ_INT(d, 0);
    CHECK_EQ_INT(ws_cache_get(c, "reply:u1:a", &b, &err), WS_ENOENT);
    /* caps and bad arguments */
    char longkey[WS_CACHE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    CHECK_EQ_INT(ws_cache_set(c, longkey, "x", 1, 0, &err), WS_ETOOBIG);
    CHECK_EQ_INT(ws_cache_set(c, "", "x", 1, 0, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_cache_set(c, "k", "x", WS_CACHE_VALUE_MAX + 1, 0, &err), WS_ETOOBIG);
    CHECK_EQ_INT(ws_cache_set(c, "k", "x", 1, -5, &err), WS_EINVAL);
    ws_buf_free(&b);
}

CACHE_TEST(ttl_expires)
{
    ws_error err = {0};
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_cache_set(c, "short", "v", 1, 150, &err), 0);
    CHECK_EQ_INT(ws_cache_set(c, "long", "v", 1, 60000, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "short", &b, &err), 0);
    usleep(400 * 1000);
    CHECK_EQ_INT(ws_cache_get(c, "short", &b, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_cache_get(c, "long", &b, &err), 0);
    ws_buf_free(&b);
}

CACHE_TEST(delete_by_prefix_is_per_user)
{
    ws_error err = {0};
    char key[64];
    for (int i = 0; i < 120; i++) {
        snprintf(key, sizeof key, "reply:usr_a:%d", i);
        CHECK_EQ_INT(ws_cache_set(c, key, "x", 1, 60000, &err), 0);
        snprintf(key, sizeof key, "reply:usr_ab:%d", i);
        CHECK_EQ_INT(ws_cache_set(c, key, "y", 1, 60000, &err), 0);
    }
    /* glob characters in a prefix are literal */
    CHECK_EQ_INT(ws_cache_set(c, "reply:*:1", "z", 1, 60000, &err), 0);
    CHECK_EQ_INT(ws_cache_set(c, "session:usr_a", "s", 1, 60000, &err), 0);
    int64_t n = -1;
    CHECK_EQ_INT(ws_cache_del_prefix(c, "reply:usr_a:", &n, &err), 0);
    CHECK_EQ_INT(n, 120);
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_cache_get(c, "reply:usr_a:7", &b, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_cache_get(c, "reply:usr_ab:7", &b, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "session:usr_a", &b, &err), 0);
    CHECK_EQ_INT(ws_cache_del_prefix(c, "reply:*", &n, &err), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ws_cache_get(c, "reply:usr_ab:8", &b, &err), 0);
    CHECK_EQ_INT(ws_cache_del_prefix(c, "", &n, &err), WS_EINVAL);
    ws_buf_free(&b);
}

CACHE_TEST(rate_limit_fixed_window)
{
    ws_error err = {0};
    ws_rate_result r;
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ_INT(ws_cache_rate_check(c, "rl:key:k1", 3, 1, &r, &err), 0);
        CHECK(r.allowed);
        CHECK_EQ_INT(r.count, i);
        CHECK_EQ_INT(r.remaining, 3 - i);
        CHECK_EQ_INT(r.limit, 3);
    }
    CHECK_EQ_INT(ws_cache_rate_check(c, "rl:key:k1", 3, 1, &r, &err), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.count, 4);
    CHECK_EQ_INT(r.remaining, 0);
    CHECK(r.retry_after_s >= 1 && r.retry_after_s <= 1);
    /* another key has its own counter */
    CHECK_EQ_INT(ws_cache_rate_check(c, "rl:user:u1", 3, 60, &r, &err), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.count, 1);
    CHECK(r.retry_after_s >= 59 && r.retry_after_s <= 60);
    /* after the window the key starts over */
    usleep(1100 * 1000);
    CHECK_EQ_INT(ws_cache_rate_check(c, "rl:key:k1", 3, 1, &r, &err), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.count, 1);
    CHECK_EQ_INT(ws_cache_rate_check(c, "rl:key:k1", 0, 1, &r, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_cache_rate_check(c, "rl:key:k1", 5, 0, &r, &err), WS_EINVAL);
}

typedef struct hammer {
    ws_cache *c;
    int allowed, errors;
} hammer;

static void *hammer_thread(void *arg)
{
    hammer *h = arg;
    ws_cache *c = h->c;
    ws_cache *own = NULL;
    if (!c) { /* Redis: a connection per thread, like one per server process */
        if (ws_cache_open(cur_url, &own, NULL) < 0) {
            h->errors++;
            return NULL;
        }
        c = own;
    }
    for (int i = 0; i < 60; i++) {
        ws_rate_result r;
        if (ws_cache_rate_check(c, "rl:shared", 100, 60, &r, NULL) < 0)
            h->errors++;
        else
            h->allowed += r.allowed;
    }
    ws_cache_close(own);
    return NULL;
}

CACHE_TEST(rate_limit_is_atomic_under_concurrency)
{
    bool shared = !strcmp(ws_cache_backend(c), "memory");
    hammer h[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        h[t] = (hammer){shared ? c : NULL, 0, 0};
        pthread_create(&th[t], NULL, hammer_thread, &h[t]);
    }
    int allowed = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(h[t].errors, 0);
        allowed += h[t].allowed;
    }
    CHECK_EQ_INT(allowed, 100); /* 240 requests, exactly the limit got through */
}

static void memory_lru_evicts_least_recent(void)
{
    ws_cache *c = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_cache_open("memory://?max_entries=3", &c, &err), 0);
    if (!c)
        return;
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_cache_set(c, "a", "1", 1, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_set(c, "b", "2", 1, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_set(c, "c", "3", 1, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "a", &b, &err), 0); /* a is now the most recent */
    CHECK_EQ_INT(ws_cache_set(c, "d", "4", 1, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "b", &b, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_cache_get(c, "a", &b, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "c", &b, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "d", &b, &err), 0);
    ws_cache_close(c);
    /* a byte cap: big values push out older ones, one larger than the cache is refused */
    CHECK_EQ_INT(ws_cache_open("memory://?max_bytes=4096", &c, &err), 0);
    if (!c)
        return;
    char big[1500];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(ws_cache_set(c, "x1", big, sizeof big, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_set(c, "x2", big, sizeof big, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_set(c, "x3", big, sizeof big, 0, &err), 0);
    CHECK_EQ_INT(ws_cache_get(c, "x1", &b, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_cache_get(c, "x3", &b, &err), 0);
    char huge[5000] = {0};
    CHECK_EQ_INT(ws_cache_set(c, "h", huge, sizeof huge, 0, &err), WS_ETOOBIG);
    ws_cache_close(c);
    ws_buf_free(&b);
    /* many keys: the table grows */
    CHECK_EQ_INT(ws_cache_open("memory", &c, &err), 0);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_EQ_INT(ws_cache_set(c, key, key, strlen(key), 0, &err), 0);
    }
    CHECK_EQ_INT(ws_cache_get(c, "k4321", &b, &err), 0);
    CHECK_EQ_STR(b.data, "k4321");
    ws_buf_free(&b);
    ws_cache_close(c);
}

static void bad_urls_are_refused(void)
{
    ws_cache *c = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_cache_open("memcached://x", &c, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_cache_open("memory://?max_entries=0", &c, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_cache_open("redis://:99999", &c, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_cache_open("redis://127.0.0.1:70000", &c, &err), WS_EINVAL);
    /* nothing listens on port 1: a clean I/O error */
    CHECK_EQ_INT(ws_cache_open("redis://127.0.0.1:1", &c, &err), WS_EIO);
    CHECK(c == NULL);
    ws_cache_close(NULL);
}

WS_TEST_MAIN(T(get_set_del), T(ttl_expires), T(delete_by_prefix_is_per_user), T(rate_limit_fixed_window),
             T(rate_limit_is_atomic_under_concurrency), T(memory_lru_evicts_least_recent),
             T(bad_urls_are_refused))
