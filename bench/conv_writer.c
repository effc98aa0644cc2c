/* Benchmark (not a test): the CPU cost per row of the conversation writer's batch insert
 * (ws_store_conv_insert_batch: conversation + "reply" analytics event + outbox message) on
 * SQLite, in batches of the sizes the server's writer sees (500 when it is behind, a few
 * dozen when it keeps up). CPU time (user + system of this process) is what the writer takes
 * from the event loops on a small machine, so it is reported next to wall time.
 * Usage: build/bench_conv_writer [ROWS per size, default 20000] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "store/store.h"

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? atoi(argv[1]) : 20000;
    char path[128], url[160], key[WS_KEY_LEN + 1];
    snprintf(path, sizeof path, "/tmp/ws_bench_conv_writer_%d.db", (int)getpid());
    snprintf(url, sizeof url, "sqlite:%s", path);
    ws_store_config cfg = {.url = url};
    ws_store *s = NULL;
    ws_error err = {0};
    ws_principal p;
    if (ws_store_open(&cfg, &s, &err) < 0 || ws_store_migrate(s, NULL, &err) < 0 ||
        ws_auth_key_create(s, "bench", WS_ROLE_USER, 0, NULL, 0, key, &p, &err) < 0) {
        fprintf(stderr, "bench_conv_writer: %s\n", err.msg);
        return 1;
    }
    static ws_conv_batch_row rows[500];
    static char data[500][96];
    const int sizes[] = {500, 64, 17};
    printf("conversation writer batch insert, SQLite (%d rows per batch size)\n", total);
    printf("  %-10s %12s %14s %12s\n", "batch", "rows/s", "cpu us/row", "wall us/row");
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int b = sizes[k];
        double w0 = wall_s(), c0 = cpu_s();
        for (int done = 0; done < total; done += b) {
            for (int i = 0; i < b; i++) {
                snprintf(data[i], sizeof data[i],
                         "{\"cached\":true,\"confidence\":%.4f,\"processing_ms\":%d}", 0.8, i % 7);
                rows[i] = (ws_conv_batch_row){.conv = {.user_id = p.user_id,
                                                       .message = "are we still on for coffee tomorrow?",
                                                       .response = "yes! see you at 10 😄",
                                                       .confidence = 0.8,
                                                       .processing_ms = i % 7,
                                                       .model_version = "v1"},
                                              .event_type = "reply",
                                              .event_data_json = data[i]};
            }
            if (ws_store_conv_insert_batch(s, rows, (size_t)b, NULL, &err) < 0) {
                fprintf(stderr, "bench_conv_writer: %s\n", err.msg);
                return 1;
            }
        }
        double w = wall_s() - w0, c = cpu_s() - c0;
        printf("  %-10d %12.0f %14.2f %12.2f\n", b, total / w, c / total * 1e6, w / total * 1e6);
    }
    ws_store_close(s);
    char side[160];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return 0;
}
