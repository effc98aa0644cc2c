/* Benchmark of the store and cache backends, each measured in the same run as its peer:
 * SQLite vs PostgreSQL for the server's hot store calls, in-process vs Redis for the cache.
 * Prints the median microseconds per operation over several rounds and the ratio.
 * PostgreSQL / Redis URLs come from WS_BENCH_PG_URL / WS_BENCH_REDIS_URL (bench/store_cache.sh
 * starts both on loopback); without them only the embedded backends are measured. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cache/cache.h"
#include "store/store.h"

#define ROUNDS 5
#define OPS 300

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

typedef struct store_ctx {
    ws_store *s;
    char user[WS_STORE_ID_MAX + 1];
    char key[WS_KEY_LEN + 1];
} store_ctx;

enum { OP_CONV_INSERT, OP_CONV_PAGE, OP_AUTH, OP_JOB_CREATE, OP_EVENT, N_STORE_OPS };
static const char *store_op_names[] = {"conversation insert", "conversation page (20)",
                                       "authenticate API key", "job create (+outbox)",
                                       "analytics event (+outbox)"};

static int store_op(store_ctx *c, int op, ws_arena *a)
{
    ws_error err = {0};
    switch (op) {
    case OP_CONV_INSERT: {
        ws_conversation cv = {.user_id = c->user,
                              .message = "how are you doing today?",
                              .response = "great, you? 😄",
                              .confidence = 0.8,
                              .processing_ms = 42,
                              .model_version = "v1"};
        return ws_store_conv_insert(c->s, &cv, NULL, &err);
    }
    case OP_CONV_PAGE: {
        ws_conversation *items;
        size_t n;
        const char *next;
        return ws_store_conv_list(c->s, a, c->user, 20, NULL, &items, &n, &next, &err);
    }
    case OP_AUTH: {
        ws_principal p;
        return ws_auth_authenticate(c->s, c->key, strlen(c->key), &p, &err);
    }
    case OP_JOB_CREATE: {
        ws_job j;
        return ws_store_job_create(c->s, a, c->user, "exports/x", "{\"persona\":\"A\"}", &j, &err);
    }
    default: return ws_store_event_append(c->s, c->user, "reply", "{\"ms\":12}", NULL, &err);
    }
}

static int store_setup(const char *url, store_ctx *c)
{
    ws_error err = {0};
    ws_store_config cfg = {.url = url};
    ws_arena *a = ws_arena_new(0);
    ws_principal p;
    int rc = ws_store_open(&cfg, &c->s, &err);
    if (rc == 0)
        rc = ws_store_migrate(c->s, NULL, &err);
    if (rc == 0)
        rc = ws_auth_key_create(c->s, "bench", WS_ROLE_USER, 0, NULL, 0, c->key, &p, &err);
    if (rc == 0)
        snprintf(c->user, sizeof c->user, "%s", p.user_id);
    if (rc < 0)
        fprintf(stderr, "bench: %s: %s\n", url, err.msg);
    ws_arena_free(a);
    return rc;
}

static void bench_store(const char *pg_url)
{
    char path[128], url[160];
    snprintf(path, sizeof path, "/tmp/ws_bench_store_%d.db", (int)getpid());
    snprintf(url, sizeof url, "sqlite:%s", path);
    const char *urls[2] = {url, pg_url};
    const char *names[2] = {"sqlite", "postgres"};
    store_ctx ctx[2] = {0};
    int nb = 0;
    for (int b = 0; b < 2 && urls[b]; b++, nb++)
        if (store_setup(urls[b], &ctx[b]) < 0)
            return;
    printf("store (median us/op over %d rounds of %d; one connection, loopback)\n", ROUNDS, OPS);
    printf("  %-28s %10s %10s %8s\n", "operation", names[0], nb > 1 ? names[1] : "-",
           nb > 1 ? "pg/sqlite" : "");
    for (int op = 0; op < N_STORE_OPS; op++) {
        double med[2] = {0, 0};
        for (int b = 0; b < nb; b++) {
            double t[ROUNDS];
            for (int r = 0; r < ROUNDS; r++) {
                ws_arena *a = ws_arena_new(0);
                double t0 = now_us();
                for (int i = 0; i < OPS; i++)
                    if (store_op(&ctx[b], op, a) < 0) {
                        fprintf(stderr, "bench: %s failed on %s\n", store_op_names[op], names[b]);
                        exit(1);
                    }
                t[r] = (now_us() - t0) / OPS;
                ws_arena_free(a);
            }
            med[b] = median(t, ROUNDS);
        }
        if (nb > 1)
            printf("  %-28s %10.1f %10.1f %8.2f\n", store_op_names[op], med[0], med[1], med[1] / med[0]);
        else
            printf("  %-28s %10.1f\n", store_op_names[op], med[0]);
    }
    for (int b = 0; b < nb; b++)
        ws_store_close(ctx[b].s);
    unlink(path);
    char side[200];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static void bench_cache(const char *redis_url)
{
    const char *urls[2] = {"memory", redis_url};
    ws_cache *c[2] = {0};
    int nb = 0;
    for (int b = 0; b < 2 && urls[b]; b++, nb++) {
        ws_error err = {0};
        if (ws_cache_open(urls[b], &c[b], &err) < 0) {
            fprintf(stderr, "bench: %s: %s\n", urls[b], err.msg);
            return;
        }
    }
    static const char *ops[] = {"set (1 KiB, TTL 5 min)", "get hit (1 KiB)", "rate-limit check"};
    char val[1024];
    memset(val, 'v', sizeof val);
    printf("cache (median us/op over %d rounds of %d)\n", ROUNDS, OPS * 10);
    printf("  %-28s %10s %10s %8s\n", "operation", "memory", nb > 1 ? "redis" : "-",
           nb > 1 ? "redis/mem" : "");
    for (int op = 0; op < 3; op++) {
        double med[2] = {0, 0};
        for (int b = 0; b < nb; b++) {
            double t[ROUNDS];
            ws_buf out = WS_BUF_INIT;
            for (int r = 0; r < ROUNDS; r++) {
                double t0 = now_us();
                for (int i = 0; i < OPS * 10; i++) {
                    char key[48];
                    snprintf(key, sizeof key, "reply:usr_bench:%d", i % 500);
                    ws_rate_result rr;
                    int rc = op == 0   ? ws_cache_set(c[b], key, val, sizeof val, WS_CACHE_REPLY_TTL_MS, NULL)
                             : op == 1 ? (ws_buf_reset(&out), ws_cache_get(c[b], key, &out, NULL))
                                       : ws_cache_rate_check(c[b], "rl:user:bench", 1000000, 60, &rr, NULL);
                    if (rc < 0) {
                        fprintf(stderr, "bench: cache op %d failed on %s\n", op, urls[b]);
                        exit(1);
                    }
                }
                t[r] = (now_us() - t0) / (OPS * 10);
            }
            ws_buf_free(&out);
            med[b] = median(t, ROUNDS);
        }
        if (nb > 1)
            printf("  %-28s %10.2f %10.2f %8.1f\n", ops[op], med[0], med[1], med[1] / med[0]);
        else
            printf("  %-28s %10.2f\n", ops[op], med[0]);
    }
    for (int b = 0; b < nb; b++)
        ws_cache_close(c[b]);
}

/* The conversation writer's throughput: rows (each with its "reply" analytics event and
 * outbox message) per second written one at a time (insert + event, what the writer did
 * before batching) and in batches of WRITER_BATCH in one transaction. */
#define WRITER_ROWS 2000
#define WRITER_BATCH 500

static double writer_rows_per_s(store_ctx *c, bool batched)
{
    ws_error err = {0};
    static ws_conv_batch_row rows[WRITER_BATCH];
    double t0 = now_us();
    for (int done = 0; done < WRITER_ROWS;) {
        if (batched) {
            for (int i = 0; i < WRITER_BATCH; i++)
                rows[i] = (ws_conv_batch_row){.conv = {.user_id = c->user,
                                                       .message = "how are you doing today?",
                                                       .response = "great, you? 😄",
                                                       .confidence = 0.8,
                                                       .processing_ms = 42,
                                                       .model_version = "v1"},
                                              .event_type = "reply",
                                              .event_data_json = "{\"cached\":false,\"confidence\":0.8}"};
            if (ws_store_conv_insert_batch(c->s, rows, WRITER_BATCH, NULL, &err) < 0)
                fprintf(stderr, "bench: %s\n", err.msg);
            done += WRITER_BATCH;
        } else {
            ws_conversation cv = {.user_id = c->user,
                                  .message = "how are you doing today?",
                                  .response = "great, you? 😄",
                                  .confidence = 0.8,
                                  .processing_ms = 42,
                                  .model_version = "v1"};
            if (ws_store_conv_insert(c->s, &cv, NULL, &err) < 0 ||
                ws_store_event_append(c->s, c->user, "reply", "{\"cached\":false,\"confidence\":0.8}", NULL,
                                      &err) < 0)
                fprintf(stderr, "bench: %s\n", err.msg);
            done++;
        }
    }
    return WRITER_ROWS / ((now_us() - t0) / 1e6);
}

static void bench_writer(const char *pg_url)
{
    char path[128], url[160];
    snprintf(path, sizeof path, "/tmp/ws_bench_writer_%d.db", (int)getpid());
    snprintf(url, sizeof url, "sqlite:%s", path);
    const char *urls[2] = {url, pg_url};
    const char *names[2] = {"sqlite", "postgres"};
    printf("conversation writer (rows/s incl. analytics event + outbox; median of %d rounds of %d rows)\n",
           ROUNDS, WRITER_ROWS);
    printf("  %-10s %14s %18s %8s\n", "backend", "one by one", "batches of 500", "ratio");
    for (int b = 0; b < 2 && urls[b]; b++) {
        store_ctx c = {0};
        if (store_setup(urls[b], &c) < 0)
            break;
        double one[ROUNDS], bat[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            one[r] = writer_rows_per_s(&c, false);
            bat[r] = writer_rows_per_s(&c, true);
        }
        double mo = median(one, ROUNDS), mb = median(bat, ROUNDS);
        printf("  %-10s %14.0f %18.0f %7.1fx\n", names[b], mo, mb, mb / mo);
        ws_store_close(c.s);
    }
    unlink(path);
    char side[160];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(void)
{
    const char *pg = getenv("WS_BENCH_PG_URL"), *redis = getenv("WS_BENCH_REDIS_URL");
    bench_store(pg && *pg ? pg : NULL);
    bench_writer(pg && *pg ? pg : NULL);
    bench_cache(redis && *redis ? redis : NULL);
    return 0;
}
