/* Many users, one base: the GGUF base mapped once and N users' LoRA adapters resident. Prints
 * the memory each extra resident adapter costs (RSS growth over N adapters loaded from disk,
 * as a clone keeps them) and the time to switch users: a reply-sized step (a 48-token prompt
 * then 8 generated tokens) with the adapter just used against one with another adapter, which
 * never reloads the base. Medians.
 * Usage: bench_adapters [N] [GGUF] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/base.h"
#include "nn/lora.h"
#include "nn/model.h"
#include "bench_env.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* resident set size now (not the peak), MB */
static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f && fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    if (f)
        fclose(f);
    return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double step(const ws_model *m, const ws_lora *lo, const int32_t *prompt)
{
    ws_error err = {0};
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    ws_kv_cache *kc = ws_kv_cache_new(m, 64);
    double t0 = now();
    ws_model_infer(m, lo, kc, prompt, 48, logits, NULL, &err);
    for (int i = 0; i < 8; i++) {
        int32_t tok = prompt[i];
        ws_model_infer(m, lo, kc, &tok, 1, logits, NULL, &err);
    }
    double dt = now() - t0;
    ws_kv_cache_free(kc);
    free(logits);
    return dt;
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    int n = argc > 1 ? atoi(argv[1]) : 16;
    const char *path = argc > 2 ? argv[2] : WS_BASE_DEFAULT_PATH;
    ws_base *b = NULL;
    ws_error err = {0};
    double r0 = rss_mb();
    if (ws_base_acquire(path, &b, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t prompt[48];
    for (int i = 0; i < 48; i++)
        prompt[i] = 17 + i * 97;
    step(b->model, NULL, prompt); /* page the weights in */
    double r1 = rss_mb();
    /* adapters as clones keep them: saved by training, loaded from disk (no gradients) */
    char dir[] = "/tmp/ws_bench_adaptersXXXXXX";
    if (!mkdtemp(dir))
        return 1;
    ws_lora_config lc = {.rank = 8, .alpha = 16, .targets = ws_lora_parse_targets("all")};
    ws_lora *tmp = ws_lora_new(&b->model->cfg, &lc, 1);
    ws_lora_save(tmp, dir, path, &err);
    ws_lora_free(tmp);
    ws_lora **ad = calloc((size_t)n, sizeof *ad);
    double t0 = now();
    for (int i = 0; i < n; i++)
        if (ws_lora_load(dir, &b->model->cfg, &ad[i], &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    double load_ms = (now() - t0) * 1000 / n, r2 = rss_mb();
    double same[9], other[9];
    for (int k = 0; k < 9; k++) {
        step(b->model, ad[0], prompt);
        same[k] = step(b->model, ad[0], prompt);                /* the adapter just used */
        other[k] = step(b->model, ad[1 + k % (n - 1)], prompt); /* another user's */
    }
    qsort(same, 9, sizeof *same, cmp_d);
    qsort(other, 9, sizeof *other, cmp_d);
    printf("base mapped and paged in: %.0f MB RSS (process before: %.0f MB)\n", r1, r0);
    printf("%d resident adapters (rank 8, all projections): +%.1f MB, %.2f MB each; load from disk %.1f ms "
           "each\n",
           n, r2 - r1, (r2 - r1) / n, load_ms);
    printf("reply-sized step, same adapter: %.1f ms; after switching to another user's: %.1f ms (medians of "
           "9)\n",
           same[4] * 1000, other[4] * 1000);
    for (int i = 0; i < n; i++)
        ws_lora_free(ad[i]);
    free(ad);
    ws_base_release(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? 1 : 0;
}
