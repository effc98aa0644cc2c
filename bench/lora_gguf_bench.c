/* The C engine's side of the LoRA training comparison (bench/lora_bench.sh): LoRA rank 8 /
 * alpha 16 on every projection of the quantized GGUF base (no f32 copy of it), AdamW, a batch of B x T token
 * ids whose targets are the next ids (every position counted, as the PyTorch + PEFT peer does), R timed steps
 * after 1 warm-up; median tokens/s and peak RSS in the JSON format of bench/peft_peer.py. The frozen base's
 * products are 8-bit (as inference: ws_acts_base_8bit) unless the mode is "exact" (f32 products on
 * dequantized blocks, ws_train_opts.exact_base). WS_NN_PROFILE=1 (wall) or cpu (the calling thread's CPU)
 * prints the time per step by op. Usage: bench_lora_gguf_bench [threads] [batch] [seq] [reps] [gguf]
 * [8bit|exact] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nn/lora.h"
#include "nn/model.h"
#include "nn/ops.h"
#include "nn/prof.h"
#include "nn/train.h"
#include "bench_env.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    int threads = argc > 1 ? atoi(argv[1]) : 2, B = argc > 2 ? atoi(argv[2]) : 4,
        T = argc > 3 ? atoi(argv[3]) : 128;
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    const char *path = argc > 5 ? argv[5] : "models/base/SmolLM2-135M-Instruct.Q4_1.gguf";
    ws_nn_set_threads(threads);
    ws_model *m = NULL;
    ws_error err = {0};
    double t0 = now();
    if (ws_model_load(path, 0, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load_s = now() - t0;
    ws_lora_config lc = {.rank = 8, .alpha = 16, .targets = ws_lora_parse_targets("all")};
    ws_lora *lo = ws_lora_new(&m->cfg, &lc, 1);
    ws_train_opts to;
    ws_train_opts_init(&to, reps + 1);
    to.exact_base = argc > 6 && !strcmp(argv[6], "exact");
    ws_trainer *tr = NULL;
    t0 = now();
    if (ws_trainer_new(m, lo, B, T, &to, &tr, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double setup_s = now() - t0; /* the 8-bit mode's transposed copies are made here */
    int V = m->cfg.vocab_size, N = B * T;
    int32_t *in = malloc((size_t)N * sizeof *in), *tg = malloc((size_t)N * sizeof *tg);
    for (int i = 0; i < N; i++)
        in[i] = 17 + (int32_t)(((long)i * 7919) % (V - 17));
    for (int i = 0; i < N; i++) /* labels = inputs, shifted: the last position of a row has none */
        tg[i] = (i + 1) % T ? in[i + 1] : -1;
    float loss = 0, loss0 = 0;
    ws_trainer_step(tr, in, tg, &loss0);
    const char *pe = getenv("WS_NN_PROFILE"); /* as bench_nn_bench: time per step by op */
    ws_prof_enable(pe && *pe && strcmp(pe, "0"), pe && !strcmp(pe, "cpu"));
    ws_prof_reset();
    double *ts = calloc((size_t)reps, sizeof *ts), c0 = cpu_now();
    for (int r = 0; r < reps; r++) {
        double s = now();
        ws_trainer_step(tr, in, tg, &loss);
        ts[r] = now() - s;
    }
    double cpu = (cpu_now() - c0) / reps;
    if (ws_prof_on)
        ws_prof_report(stderr, reps);
    qsort(ts, (size_t)reps, sizeof *ts, cmp_d);
    double med = reps % 2 ? ts[reps / 2] : 0.5 * (ts[reps / 2 - 1] + ts[reps / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(
        "{\"impl\": \"whatstyle\", \"threads\": %d, \"batch\": %d, \"seq\": %d, \"reps\": %d, \"lora_rank\": "
        "8, "
        "\"lora_alpha\": 16, \"trainable_params\": %zu, \"load_s\": %.2f, \"setup_s\": %.2f, \"step_s\": "
        "%.3f, \"cpu_s\": %.3f, "
        "\"tokens_per_s\": %.1f, \"loss0\": %.4f, \"loss\": %.4f, \"peak_mb\": %.0f, \"base\": \"%s\"}\n",
        threads, B, T, reps, lo->n_floats, load_s, setup_s, med, cpu, N / med, loss0, loss,
        (double)ru.ru_maxrss / 1024.0, to.exact_base ? "exact" : "8bit");
    ws_trainer_free(tr);
    ws_lora_free(lo);
    ws_model_free(m);
    free(in), free(tg), free(ts);
    return 0;
}
