/* Clone benchmark: training time per 1k examples and reply latency p50/p95/p99 (one thread),
 * for the default model trained from scratch and for a LoRA adapter on a base model, plus
 * peak memory. On a base, also the latency the issue defines: one 20-token generated reply after
 * 8 turns of context (prompt through the clone's prompt cache, then 20 sampled tokens; the end of
 * the turn is masked so every reply has 20), p50/p95 over the same messages, with the prompt's
 * and the generation's shares. Messages are other participants' turns of the export and messages the chat
 * never holds.
 * Usage: bench_clone_reply [EXPORT] [PERSONA] [BUDGET_S] [REPLIES]
 * Every reply follows 8 turns of context. BENCH_CLONE=DIR measures the replies of a clone trained
 * before (with BENCH_BASE set, its run is the base one). Env: BENCH_BASE=PATH (a GGUF file or a base model
 * dir) or BENCH_BASE=smollm2-135m (a random model of that shape, byte vocabulary: real compute cost,
 * meaningless text); BENCH_EMBED=minilm to index with MiniLM (default: hashed n-grams);
 * BENCH_REPLY_BUDGET_MS=MS gives every reply that latency budget (ws_clone_reply_opts.budget_ms);
 * BENCH_RANKED=0 measures only the 20-token replies; BENCH_GUIDANCE=0 samples them unguided. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "chat/chat.h"
#include "clone/clone_int.h"
#include "core/file.h"
#include "core/mem.h"
#include "core/progress.h"
#include "bench_env.h"
#include "nn/generate.h"
#include "nn/ops.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU seconds of the whole process: with one engine thread (WS_NN_THREADS=1) what a reply
 * costs whatever else the machine runs (wall time on a shared machine includes the waits). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static const char *const novel[] = {"are you free on saturday for a barbecue",
                                    "I finally finished my thesis",
                                    "did anyone see the news",
                                    "my cat knocked over a plant",
                                    "should we try the new ramen place",
                                    "happy new year everyone",
                                    "can someone send me the address",
                                    "I'm stuck in traffic, sorry",
                                    "who wants to join the pub quiz?",
                                    "the wifi at my place is broken again"};

/* The reply latency: per message, the chat prompt (8 turns + the message, its common
 * prefix with the last prompt from the clone's cache, as ws_clone_reply runs it), then 20 tokens
 * sampled one at a time with the adapter, guided as the clone's replies are (each token also
 * after the prompt without the conversation, in the same batched pass; BENCH_GUIDANCE=0: not).
 * ms/pre_ms get the wall times of each reply and of its prompt. */

static int gen20_one(ws_clone *c, const char *m, const ws_clone_turn *ctx, size_t n_ctx, uint64_t *rng,
                     double *ms, double *pre_ms, double *cpu_ms, ws_error *err)
{
    enum { N_GEN = 20 };
    int V = c->model->cfg.vocab_size, rc;
    ibuf prompt = {0};
    float *last = ws_xmalloc((size_t)V * sizeof *last);
    ws_kv_cache *kc = NULL;
    ws_gen_opts o;
    ws__clone_sample_opts(c, 0.8f, &o);
    const char *ge = getenv("BENCH_GUIDANCE");
    o.guidance = ge && !strcmp(ge, "0") ? 0 : o.guidance;
    clone_guided g = {0};
    int32_t ids[N_GEN], *ban = ws_xmalloc((size_t)V * sizeof *ban);
    int n_ban = 0;
    for (int32_t id = 0; id < V; id++)
        if (id == c->fmt.end || ws_tokenizer_is_special(c->tok, id))
            ban[n_ban++] = id;
    double t0 = ws_now_s(), c0 = cpu_s();
    ws__clone_build_prompt(c, NULL, 0, ctx, n_ctx, m, &prompt);
    rc = ws__clone_prefix_run(c, &prompt, N_GEN + 8, &kc, last, err);
    if (!rc)
        rc = ws__clone_guided_begin(c, kc, &o, &g, err);
    *pre_ms = (ws_now_s() - t0) * 1000.0;
    for (int i = 0; i < N_GEN && !rc; i++) {
        for (int b = 0; b < n_ban; b++) /* every reply runs its 20 tokens */
            last[ban[b]] = -INFINITY;
        ids[i] = ws_sample(last, V, &o, ids, i, rng, NULL);
        rc = ws__clone_guided_next(c, kc, &g, ids[i], last, err);
    }
    ws__clone_guided_end(&g);
    *ms = (ws_now_s() - t0) * 1000.0;
    *cpu_ms = (cpu_s() - c0) * 1000.0;
    if (!rc) { /* the full prompt's cache goes back, as a reply hands it back */
        ws_kv_cache_truncate(kc, (int)prompt.n);
        ws__clone_prefix_put(c, kc, &prompt, last);
    } else
        ws_kv_cache_free(kc);
    ws__clone_ibuf_free(&prompt);
    free(last);
    free(ban);
    return rc;
}

static int bench_one(const char *label, const char *export_path, const char *persona, const char *dir,
                     const char *base, double budget, char **msgs, size_t n_msgs, size_t n_replies)
{
    ws_clone_train_opts o = {
        .export_path = export_path,
        .persona = persona,
        .out_dir = dir,
        .base_model = base,
        .budget_s = budget,
        .quiet = true,
        .embed_dir = getenv("BENCH_EMBED") && !strcmp(getenv("BENCH_EMBED"), "minilm") ? NULL : "none"};
    ws_clone_train_result res;
    ws_error err = {0};
    const char *ready = getenv("BENCH_CLONE"); /* replies only, from a clone trained before */
    if (ready && *ready) {
        dir = ready;
        printf("%s (trained before: %s)\n", label, dir);
        goto replies;
    }
    double t0 = ws_now_s();
    if (ws_clone_train(&o, &res, &err)) {
        fprintf(stderr, "%s: train: %s\n", label, err.msg);
        return 1;
    }
    double wall = ws_now_s() - t0;
    printf("%s\n", label);
    printf(
        "  train: %.1f s wall (budget %.0f), %llu steps, %.0f tokens/s, %.0f examples seen -> %.2f s per 1k "
        "examples; %llu training examples\n",
        wall, budget, (unsigned long long)res.steps, res.tokens_per_s, res.examples_seen,
        res.examples_seen > 0 ? res.train_s / res.examples_seen * 1000.0 : 0,
        (unsigned long long)(res.n_examples - res.n_heldout));
    ws_clone_train_result_clear(&res);
replies:;
    ws_clone *c = NULL;
    if (ws_clone_open(dir, &c, &err)) {
        fprintf(stderr, "%s: open: %s\n", label, err.msg);
        return 1;
    }
    double *ms = ws_xmalloc(n_replies * sizeof *ms), *cpu = ws_xmalloc(n_replies * sizeof *cpu);
    size_t fb = 0;
    if (c->fmt.chat) {
        double *pre = ws_xmalloc(n_replies * sizeof *pre);
        uint64_t rng = 0x2545F4914F6CDD1Dull;
        for (size_t i = 0; i < n_replies; i++) {
            const char *m = i % 3 == 0 ? novel[(i / 3) % 10] : msgs[(i * 7919) % n_msgs];
            ws_clone_turn ctx[8];
            for (size_t k = 0; k < 8; k++)
                ctx[k] = (ws_clone_turn){k % 2 ? persona : NULL, msgs[(i * 31 + k * 7) % n_msgs]};
            if (gen20_one(c, m, ctx, 8, &rng, &ms[i], &pre[i], &cpu[i], &err)) {
                fprintf(stderr, "%s: 20-token reply: %s\n", label, err.msg);
                return 1;
            }
        }
        qsort(ms, n_replies, sizeof *ms, cmp_d);
        qsort(pre, n_replies, sizeof *pre, cmp_d);
        qsort(cpu, n_replies, sizeof *cpu, cmp_d);
        printf("  20-token reply (%zu, 8 turns of context, %d engine threads): p50 %.1f ms  p95 %.1f ms; its "
               "prompt p50 %.1f ms  p95 %.1f ms; CPU time (all threads) p50 %.1f ms  p95 %.1f ms\n",
               n_replies, ws_nn_threads(), ms[n_replies / 2], ms[n_replies * 95 / 100], pre[n_replies / 2],
               pre[n_replies * 95 / 100], cpu[n_replies / 2], cpu[n_replies * 95 / 100]);
        free(pre);
        if (getenv("BENCH_RANKED") && !strcmp(getenv("BENCH_RANKED"), "0"))
            goto done; /* the 20-token replies only (a profile of them) */
    }
    for (size_t i = 0; i < n_replies; i++) {
        const char *m = i % 3 == 0 ? novel[(i / 3) % 10] : msgs[(i * 7919) % n_msgs];
        ws_clone_turn ctx[8]; /* 8 turns of context, as a conversation in progress gives */
        for (size_t k = 0; k < 8; k++)
            ctx[k] = (ws_clone_turn){k % 2 ? persona : NULL, msgs[(i * 31 + k * 7) % n_msgs]};
        ws_clone_answer a;
        double s = ws_now_s(), cs = cpu_s();
        ws_clone_reply_opts ro = {
            .budget_ms = getenv("BENCH_REPLY_BUDGET_MS") ? atof(getenv("BENCH_REPLY_BUDGET_MS")) : 0};
        if (ws_clone_reply(c, m, ctx, 8, &ro, &a, &err)) {
            fprintf(stderr, "%s: reply: %s\n", label, err.msg);
            return 1;
        }
        ms[i] = (ws_now_s() - s) * 1000.0;
        cpu[i] = (cpu_s() - cs) * 1000.0;
        fb += a.fallback;
        ws_clone_answer_clear(&a);
    }
    qsort(ms, n_replies, sizeof *ms, cmp_d);
    qsort(cpu, n_replies, sizeof *cpu, cmp_d);
    printf("  reply (%zu, 8 turns of context): p50 %.1f ms  p95 %.1f ms  p99 %.1f ms; fallback %.0f%%; peak "
           "RSS so far %.0f MB\n",
           n_replies, ms[n_replies / 2], ms[n_replies * 95 / 100], ms[n_replies * 99 / 100],
           100.0 * (double)fb / (double)n_replies, rss_mb());
    printf("  reply CPU time (all threads): p50 %.1f ms  p95 %.1f ms\n", cpu[n_replies / 2],
           cpu[n_replies * 95 / 100]);
done:
    free(ms);
    free(cpu);
    ws_clone_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    ws_bench_blas_kernels();
    const char *path = argc > 1 ? argv[1] : "samples/group_chat.txt";
    if (getenv("WS_NN_THREADS")) /* the engine's threads (else one per core; the CPU time counts their
                                    spinning) */
        ws_nn_set_threads(atoi(getenv("WS_NN_THREADS")));
    const char *persona = argc > 2 ? argv[2] : "Maya";
    double budget = argc > 3 ? atof(argv[3]) : 60;
    size_t n_replies = argc > 4 ? strtoull(argv[4], NULL, 10) : 200;
    ws_chat_reader *r = NULL;
    ws_error err = {0};
    if (ws_chat_open_file(path, NULL, &r, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char **msgs = NULL;
    size_t nm = 0;
    ws_message m;
    while (ws_chat_next(r, &m, &err) == 1)
        if (m.kind == WS_MSG_TEXT && m.author && strcmp(m.author, persona) != 0) {
            msgs = ws_xrealloc(msgs, (nm + 1) * sizeof *msgs);
            msgs[nm++] = ws_xstrdup(m.text);
        }
    ws_chat_close(r);
    char tmpl[] = "/tmp/bench_clone_XXXXXX";
    char *root = mkdtemp(tmpl);
    char *d1 = ws__clone_path(root, "scratch");
    printf("clone benchmark: %s as %s, budget %.0f s, %ld cores online\n", path, persona, budget,
           sysconf(_SC_NPROCESSORS_ONLN));
    bool only_base = getenv("BENCH_CLONE") && getenv("BENCH_BASE");
    int rc = only_base ? 0
                       : bench_one("default model (from scratch, 4x128, byte-pair vocabulary of the chat)",
                                   path, persona, d1, NULL, budget, msgs, nm, n_replies);
    const char *base = getenv("BENCH_BASE");
    char *bdir = NULL;
    if (!rc && base) {
        if (!strcmp(base, "smollm2-135m")) {
            /* the SmolLM2-135M shape with random weights and the byte vocabulary */
            bdir = ws__clone_path(root, "base");
            ws_file_make_dirs(bdir, NULL);
            ws_model_config mc = {.arch = WS_ARCH_LLAMA,
                                  .vocab_size = CLONE_VOCAB,
                                  .dim = 576,
                                  .hidden_dim = 1536,
                                  .n_layers = 30,
                                  .n_heads = 9,
                                  .n_kv_heads = 3,
                                  .head_dim = 64,
                                  .max_pos = 2048,
                                  .norm_eps = 1e-5f,
                                  .rope_theta = 100000,
                                  .tied = true,
                                  .bos_id = -1,
                                  .eos_ids = {CLONE_TOK_END},
                                  .n_eos = 1};
            ws_model *bm = ws_model_new(&mc, 5);
            char *tp = ws__clone_path(bdir, "tokenizer.json");
            if (ws_model_save(bm, bdir, &err) || ws__clone_write_byte_tokenizer(tp, &err)) {
                fprintf(stderr, "base: %s\n", err.msg);
                rc = 1;
            }
            free(tp);
            ws_model_free(bm);
            base = bdir;
        }
        char *d2 = ws__clone_path(root, "lora");
        if (!rc)
            rc = bench_one("LoRA r8 (every projection) on the base model", path, persona, d2, base, budget,
                           msgs, nm, n_replies / 4 ? n_replies / 4 : 1);
        free(d2);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    for (size_t i = 0; i < nm; i++)
        free(msgs[i]);
    free(msgs);
    free(d1);
    free(bdir);
    return rc;
}
