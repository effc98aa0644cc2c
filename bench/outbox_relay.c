/* Benchmark of the outbox relay against a real database and broker: throughput (a backlog of
 * N analytics events drained, events/s) and the delay from commit to the broker's
 * acknowledgement (p50/p99) while events are committed at a steady RATE per second and the
 * relay polls as `serve --kafka` does (idle pause 50 ms). Prints one line per run.
 * Usage: bench_outbox_relay STORE_URL BROKERS [N] [RATE] [SECONDS] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "bus/relay.h"
#include "core/progress.h"
#include "store/store.h"

typedef struct delays {
    double *v;
    size_t n, cap;
} delays;

static void observe(void *arg, int64_t id, int64_t created, int64_t acked)
{
    delays *d = arg;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 4096;
        d->v = realloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = (double)(acked - created);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct feeder {
    const char *url, *user;
    int rate;
    double seconds;
    atomic_bool done;
} feeder;

/* Commits `rate` events a second, one transaction each (as requests do), for `seconds`. */
static void *feed(void *arg)
{
    feeder *f = arg;
    ws_store *st = NULL;
    ws_store_config c = {.url = f->url};
    if (ws_store_open(&c, &st, NULL) == 0) {
        double t0 = ws_now_s();
        long i = 0;
        while (ws_now_s() - t0 < f->seconds) {
            ws_store_event_append(st, f->user, "bench", "{\"n\":1}", NULL, NULL);
            i++;
            double due = t0 + (double)i / f->rate, now = ws_now_s();
            if (due > now) {
                struct timespec ts = {0, (long)((due - now) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        ws_store_close(st);
    }
    atomic_store(&f->done, true);
    return NULL;
}

/* Inserts n events in batches of 1000 (one transaction each). */
static int backlog(ws_store *st, const char *user, int n)
{
    ws_conv_batch_row *rows = calloc(1000, sizeof *rows);
    for (int done = 0; done < n;) {
        int k = n - done < 1000 ? n - done : 1000;
        for (int i = 0; i < k; i++)
            rows[i] = (ws_conv_batch_row){
                .conv = {.user_id = user, .message = "m", .response = "r", .confidence = 0.5},
                .event_type = "bench",
                .event_data_json = "{\"n\":1}"};
        if (ws_store_conv_insert_batch(st, rows, (size_t)k, NULL, NULL))
            return -1;
        done += k;
    }
    free(rows);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s STORE_URL BROKERS [N] [RATE] [SECONDS]\n", argv[0]);
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 20000, rate = argc > 4 ? atoi(argv[4]) : 500;
    double secs = argc > 5 ? atof(argv[5]) : 6;
    ws_error err = {0};
    ws_store *st = NULL;
    ws_store_config sc = {.url = argv[1]};
    ws_bus *bus = NULL;
    ws_arena *a = ws_arena_new(4096);
    ws_user u;
    char name[32];
    snprintf(name, sizeof name, "bench%ld", (long)time(NULL) % 100000);
    if (ws_store_open(&sc, &st, &err) || ws_store_migrate(st, NULL, &err) ||
        ws_store_user_create(st, a, name, NULL, NULL, &u, &err) ||
        ws_bus_kafka_new(&(ws_bus_kafka_config){.brokers = argv[2], .client_id = "bench-relay"}, &bus,
                         &err)) {
        fprintf(stderr, "bench_outbox_relay: %s\n", err.msg);
        return 1;
    }
    size_t k = 0;
    while (ws_relay_step(st, bus, 200, &k, NULL, NULL, NULL) == 0 && k > 0) /* earlier rows */
        ;
    /* throughput: drain a backlog */
    if (backlog(st, u.id, n)) {
        fprintf(stderr, "bench_outbox_relay: backlog insert failed\n");
        return 1;
    }
    double t0 = ws_now_s();
    size_t total = 0;
    while (ws_relay_step(st, bus, 200, &k, NULL, NULL, &err) == 0 && k > 0)
        total += k;
    double thr = (double)total / (ws_now_s() - t0);
    /* delay: steady commits while the relay polls */
    feeder f = {.url = argv[1], .user = u.id, .rate = rate, .seconds = secs};
    pthread_t th;
    pthread_create(&th, NULL, feed, &f);
    delays d = {0};
    for (;;) {
        bool fed = atomic_load(&f.done);
        if (ws_relay_step(st, bus, 100, &k, observe, &d, &err))
            break;
        if (k < 100) {
            if (fed && k == 0)
                break;
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    pthread_join(th, NULL);
    qsort(d.v, d.n, sizeof *d.v, cmp);
    double p50 = d.n ? d.v[d.n / 2] : 0, p99 = d.n ? d.v[(size_t)(d.n * 0.99)] : 0;
    printf("relay: %zu events drained at %.0f events/s; %zu events at %d/s: commit->ack p50 %.0f ms p99 %.0f "
           "ms\n",
           total, thr, d.n, rate, p50, p99);
    free(d.v);
    ws_bus_free(bus);
    ws_arena_free(a);
    ws_store_close(st);
    return 0;
}
