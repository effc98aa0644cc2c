/* Benchmark of a master-key rotation on the local blobs backend, against its peer measured in
 * the same run: one read pass over the same objects (ws_blobs_get of each: what a rotation
 * must at least do). A store of N_SMALL 4 KiB objects and N_BIG 1 MiB ones (argv[1], argv[2]
 * override) is rotated ROUNDS times (each round re-seals everything: read, open, seal, read
 * again, atomic fsync'd write, then the final scan); prints medians, objects/s, MB/s and the
 * ratio to the read pass; then `keys reseal` on the finished store (it reads headers only).
 * Usage: bench_blobs_rotate [N_SMALL N_BIG] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blobs/blobs.h"
#include "blobs/blobs_rotate.h"
#include "core/mem.h"

#define ROUNDS 3

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct read_ctx {
    ws_blobs *b;
    size_t n, bytes;
    int failed;
} read_ctx;

static int read_one(void *arg, const char *key)
{
    read_ctx *c = arg;
    ws_buf out = WS_BUF_INIT;
    if (ws_blobs_get(c->b, key, (size_t)1 << 24, &out, NULL) != 0)
        c->failed++;
    c->n++;
    c->bytes += out.len;
    ws_buf_free(&out);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n_small = argc > 2 ? strtoul(argv[1], NULL, 10) : 2000,
           n_big = argc > 2 ? strtoul(argv[2], NULL, 10) : 40;
    char dir[] = "/tmp/ws-bench-rotate-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    unsetenv("WS_MASTER_KEY");
    unsetenv("WS_BLOBS_URL");
    ws_blobs *b = NULL;
    ws_error err = {0};
    if (ws_blobs_open(NULL, dir, &b, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char *data = ws_xmalloc(1 << 20);
    for (size_t i = 0; i < (1 << 20); i++)
        data[i] = (char)(i * 131 + 7);
    for (size_t i = 0; i < n_small + n_big; i++) {
        char k[128];
        bool big = i >= n_small;
        snprintf(k, sizeof k, "users/usr_%zu/%s/o%zu", i % 50, big ? "models/v1" : "exports", i);
        if (ws_blobs_put(b, k, data, big ? (1 << 20) : 4096, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    }
    double read_t[ROUNDS], rot_t[ROUNDS], noop_t[ROUNDS];
    size_t bytes = 0;
    int failed = 0;
    for (int r = 0; r < ROUNDS; r++) {
        read_ctx c = {b, 0, 0, 0};
        double t0 = now_s();
        ws_blobs_list(b, "", read_one, &c, &err);
        read_t[r] = now_s() - t0;
        bytes = c.bytes;
        failed += c.failed;
        ws_blobs_reseal_report rep;
        t0 = now_s();
        if (ws_blobs_rotate_master(NULL, dir, NULL, &rep, &err) != 0 || rep.resealed != n_small + n_big) {
            fprintf(stderr, "rotation: %s (re-sealed %zu)\n", err.msg, rep.resealed);
            failed++;
        }
        rot_t[r] = now_s() - t0;
        /* `keys reseal` on the finished store: headers only */
        t0 = now_s();
        if (ws_blobs_reseal_store(NULL, dir, NULL, &rep, &err) != 0 || rep.current != n_small + n_big)
            failed++;
        noop_t[r] = now_s() - t0;
    }
    qsort(noop_t, ROUNDS, sizeof noop_t[0], cmp_double);
    qsort(read_t, ROUNDS, sizeof read_t[0], cmp_double);
    qsort(rot_t, ROUNDS, sizeof rot_t[0], cmp_double);
    double rd = read_t[ROUNDS / 2], rt = rot_t[ROUNDS / 2], mb = bytes / 1e6;
    size_t n = n_small + n_big;
    printf("store: %zu objects (%zu x 4 KiB, %zu x 1 MiB), %.1f MB, local backend, median of %d\n", n,
           n_small, n_big, mb, ROUNDS);
    printf("read pass (peer):  %8.3f s  %9.0f objects/s  %7.1f MB/s\n", rd, n / rd, mb / rd);
    printf("rotate-master:     %8.3f s  %9.0f objects/s  %7.1f MB/s  (%.1fx the read pass)\n", rt, n / rt,
           mb / rt, rt / rd);
    double nt = noop_t[ROUNDS / 2];
    printf("reseal, all done:  %8.3f s  %9.0f objects/s             (%.2fx the read pass; headers only)\n",
           nt, n / nt, nt / rd);
    ws_blobs_close(b);
    free(data);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        failed++;
    return failed ? 1 : 0;
}
