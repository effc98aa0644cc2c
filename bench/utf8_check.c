/* Throughput of the reader's UTF-8 validation (src/core/utf8_check.c) per implementation on
 * one file held in memory, next to memchr over the same bytes (the scan limit). Prints the
 * median of RUNS passes for each. Usage: bench_utf8_check FILE [RUNS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/utf8.h"
#include "core/mem.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 9;
    if (runs < 1 || runs > 99)
        runs = 9;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = ws_xmalloc((size_t)size + 1);
    if (fread(data, 1, (size_t)size, f) != (size_t)size) {
        perror("read");
        return 1;
    }
    fclose(f);
    static const char *const names[] = {"scalar", "avx2", "avx512bw"};
    double times[99], base = 0;
    /* memchr for a byte that is not there: one read of every byte */
    for (int k = 0; k < runs; k++) {
        double t = now();
        const void *volatile p = memchr(data, 0, (size_t)size);
        (void)p;
        times[k] = now() - t;
    }
    qsort(times, (size_t)runs, sizeof times[0], cmp_double);
    base = times[runs / 2];
    printf("%-10s %8.2f ms %8.0f MB/s\n", "memchr", base * 1e3, (double)size / 1e6 / base);
    for (int impl = WS_UTF8_SCALAR; impl <= WS_UTF8_AVX512; impl++) {
        size_t out = 0;
        if (!ws_utf8_valid_prefix_with((ws_utf8_impl)impl, data, (size_t)size, &out)) {
            printf("%-10s (not on this CPU)\n", names[impl]);
            continue;
        }
        for (int k = 0; k < runs; k++) {
            double t = now();
            ws_utf8_valid_prefix_with((ws_utf8_impl)impl, data, (size_t)size, &out);
            times[k] = now() - t;
        }
        qsort(times, (size_t)runs, sizeof times[0], cmp_double);
        double m = times[runs / 2];
        printf("%-10s %8.2f ms %8.0f MB/s  %.2fx of memchr%s\n", names[impl], m * 1e3, (double)size / 1e6 / m,
               base / m, out == (size_t)size ? "" : "  (stopped at invalid UTF-8)");
    }
    printf("picked at run time: %s\n", names[ws_utf8_impl_used()]);
    free(data);
    return 0;
}
