/* Training against PyTorch: 10 AdamW steps (warmup + cosine, clipping, 2-way accumulation) of
 * full training and of LoRA training give the same losses and parameters as torch.optim.AdamW;
 * checkpoints resume bit-exactly; the schedule has the documented shape. */
#include "harness.h"
#include "nn_ref.h"

#include <unistd.h>

#include "nn/lora.h"
#include "nn/model.h"
#include "nn/train.h"

static void opts_from(const ws_json *h, ws_train_opts *o, int steps, int accum)
{
    double v;
    ws_train_opts_init(o, steps);
    ws_json_get_num(h, "lr", &v);
    o->lr = (float)v;
    ws_json_get_num(h, "min_lr", &v);
    o->min_lr = (float)v;
    ws_json_get_num(h, "warmup", &v);
    o->warmup_steps = (int)v;
    ws_json_get_num(h, "wd", &v);
    o->weight_decay = (float)v;
    ws_json_get_num(h, "clip", &v);
    o->grad_clip = (float)v;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->accum = accum;
}

static void check_losses(const char *what, const float *got, const ws_json *ref, int n, double tol)
{
    double md = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(got[i] - ref->items[i].number);
        md = d > md ? d : md;
    }
    for (int i = 0; i < n; i++)
        printf(" %.5f/%.5f", got[i], ref->items[i].number);
    printf("\n");
    printf("  %-40s 10-step losses: first %.5f last %.5f, max|diff| vs torch %.3g\n", what, got[0],
           got[n - 1], md);
    CHECK(md <= tol);
}

static void full_training_matches_pytorch(void)
{
    for (int v = 0; v < NN_N_VARIANTS; v++) {
        nn_ref r;
        CHECK(nn_ref_open(&r, nn_variants[v]) == 0);
        ws_model *m = NULL;
        ws_error err = {0};
        CHECK_EQ_INT(ws_model_load(r.dir, WS_LOAD_COPY, &m, &err), 0);
        double B, T, steps, accum;
        ws_json_get_num(r.json, "B", &B);
        ws_json_get_num(r.json, "T", &T);
        ws_json_get_num(r.json, "steps", &steps);
        ws_json_get_num(r.json, "accum", &accum);
        ws_train_opts o;
        opts_from(ws_json_get(r.json, "train"), &o, (int)steps, (int)accum);
        ws_trainer *t = NULL;
        CHECK_EQ_INT(ws_trainer_new(m, NULL, (int)B, (int)T, &o, &t, &err), 0);
        int32_t *in = nn_ref_i32(&r, "train_inputs", NULL), *tg = nn_ref_i32(&r, "train_targets", NULL);
        float losses[16];
        size_t per = (size_t)(B * T * accum);
        for (int s = 0; s < (int)steps; s++)
            CHECK_EQ_INT(ws_trainer_step(t, in + s * per, tg + s * per, &losses[s]), 0);
        char what[64];
        snprintf(what, sizeof what, "%s full", nn_variants[v]);
        check_losses(what, losses, ws_json_get(r.json, "full_losses"), (int)steps, 2e-4);
        int fails = 0;
        size_t n = 0;
        float *ref = nn_ref_f32(&r, "final.model.norm.weight", &n);
        nn_compare("params after 10 steps: model.norm.weight", m->w.final_norm, ref, n, 1e-4, 1e-4, &fails);
        free(ref);
        ref = nn_ref_f32(&r, "final.model.layers.1.mlp.down_proj.weight", &n);
        nn_compare("params after 10 steps: layers.1.mlp.down_proj", m->w.layers[1].wd, ref, n, 1e-4, 1e-4,
                   &fails);
        free(ref);
        CHECK_EQ_INT(fails, 0);
        free(in);
        free(tg);
        ws_trainer_free(t);
        ws_model_free(m);
        nn_ref_close(&r);
    }
}

static void lora_training_matches_peft(void)
{
    for (int v = 0; v < NN_N_VARIANTS; v++) {
        nn_ref r;
        CHECK(nn_ref_open(&r, nn_variants[v]) == 0);
        ws_model *m = NULL;
        ws_lora *lo = NULL, *trained = NULL;
        ws_error err = {0};
        char dir[300];
        CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
        snprintf(dir, sizeof dir, "%s/adapter_init", r.dir);
        CHECK_EQ_INT(ws_lora_load(dir, &m->cfg, &lo, &err), 0);
        snprintf(dir, sizeof dir, "%s/adapter_trained", r.dir);
        CHECK_EQ_INT(ws_lora_load(dir, &m->cfg, &trained, &err), 0);
        ws_lora_set_b_by_rank(trained, false); /* compared as stored, with the trained lo */
        double B, T, steps, accum;
        ws_json_get_num(r.json, "B", &B);
        ws_json_get_num(r.json, "T", &T);
        ws_json_get_num(r.json, "steps", &steps);
        ws_json_get_num(r.json, "accum", &accum);
        ws_train_opts o;
        opts_from(ws_json_get(r.json, "lora"), &o, (int)steps, (int)accum);
        ws_trainer *t = NULL;
        CHECK_EQ_INT(ws_trainer_new(m, lo, (int)B, (int)T, &o, &t, &err), 0);
        int32_t *in = nn_ref_i32(&r, "train_inputs", NULL), *tg = nn_ref_i32(&r, "train_targets", NULL);
        float losses[16];
        size_t per = (size_t)(B * T * accum);
        for (int s = 0; s < (int)steps; s++)
            CHECK_EQ_INT(ws_trainer_step(t, in + s * per, tg + s * per, &losses[s]), 0);
        char what[64];
        snprintf(what, sizeof what, "%s lora", nn_variants[v]);
        check_losses(what, losses, ws_json_get(r.json, "lora_losses"), (int)steps, 2e-4);
        int fails = 0;
        nn_compare("adapter after 10 steps vs PEFT-trained adapter", lo->block, trained->block, lo->n_floats,
                   1e-4, 1e-3, &fails);
        CHECK_EQ_INT(fails, 0);
        free(in);
        free(tg);
        ws_trainer_free(t);
        ws_lora_free(lo);
        ws_lora_free(trained);
        ws_model_free(m);
        nn_ref_close(&r);
    }
}

/* 3 steps, save, fresh objects, load, 3 more == 6 straight steps, bit for bit */
static void run_resume(bool lora_mode)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "qwen2_bias") == 0);
    int32_t *in = nn_ref_i32(&r, "train_inputs", NULL), *tg = nn_ref_i32(&r, "train_targets", NULL);
    ws_train_opts o;
    ws_train_opts_init(&o, 6);
    o.lr = 5e-3f;
    o.warmup_steps = 2;
    o.accum = 2;
    ws_lora_config lc = {
        .rank = 4, .alpha = 8, .dropout = 0.1f, .targets = ws_lora_parse_targets("q,v,down")};
    float *final[2] = {NULL, NULL};
    size_t nf = 0;
    char ckpt[] = "/tmp/ws_nn_ckptXXXXXX";
    int fd = mkstemp(ckpt);
    CHECK(fd >= 0);
    close(fd);
    for (int run = 0; run < 2; run++) {
        ws_error err = {0};
        ws_model *m = NULL;
        ws_lora *lo = NULL;
        ws_trainer *t = NULL;
        CHECK_EQ_INT(ws_model_load(r.dir, WS_LOAD_COPY, &m, &err), 0);
        if (lora_mode)
            lo = ws_lora_new(&m->cfg, &lc, 42);
        CHECK_EQ_INT(ws_trainer_new(m, lo, 2, 16, &o, &t, &err), 0);
        size_t per = 2 * 16 * 2;
        for (int s = 0; s < 6; s++) {
            if (run == 1 && s == 3) { /* save, throw everything away, resume */
                CHECK_EQ_INT(ws_trainer_save(t, ckpt, &err), 0);
                ws_trainer_free(t);
                ws_lora_free(lo);
                ws_model_free(m);
                CHECK_EQ_INT(ws_model_load(r.dir, WS_LOAD_COPY, &m, &err), 0);
                lo = lora_mode ? ws_lora_new(&m->cfg, &lc, 7) : NULL;
                CHECK_EQ_INT(ws_trainer_new(m, lo, 2, 16, &o, &t, &err), 0);
                CHECK_EQ_INT(ws_trainer_load(t, ckpt, &err), 0);
                CHECK_EQ_INT(ws_trainer_steps_done(t), 3);
            }
            float loss;
            CHECK_EQ_INT(ws_trainer_step(t, in + s * per, tg + s * per, &loss), 0);
        }
        nf = lora_mode ? lo->n_floats : m->n_floats;
        final[run] = malloc(nf * sizeof(float));
        memcpy(final[run], lora_mode ? lo->block : m->block, nf * sizeof(float));
        ws_trainer_free(t);
        ws_lora_free(lo);
        ws_model_free(m);
    }
    CHECK(memcmp(final[0], final[1], nf * sizeof(float)) == 0);
    printf("  %s resume: %zu parameters %s\n", lora_mode ? "lora" : "full", nf,
           memcmp(final[0], final[1], nf * sizeof(float)) ? "DIFFER" : "bit-identical");
    /* a checkpoint of the other kind is refused */
    ws_error err = {0};
    ws_model *m = NULL;
    CHECK_EQ_INT(ws_model_load(r.dir, WS_LOAD_COPY, &m, &err), 0);
    ws_lora *lo = lora_mode ? NULL : ws_lora_new(&m->cfg, &lc, 1);
    ws_trainer *t = NULL;
    CHECK_EQ_INT(ws_trainer_new(m, lo, 2, 16, &o, &t, &err), 0);
    CHECK_EQ_INT(ws_trainer_load(t, ckpt, &err), WS_EFORMAT);
    ws_trainer_free(t);
    ws_lora_free(lo);
    ws_model_free(m);
    unlink(ckpt);
    free(final[0]);
    free(final[1]);
    free(in);
    free(tg);
    nn_ref_close(&r);
}

static void checkpoint_resume_is_exact(void)
{
    run_resume(false);
    run_resume(true);
}

static void schedule_shape(void)
{
    ws_train_opts o;
    ws_train_opts_init(&o, 100);
    o.lr = 1.0f;
    o.min_lr = 0.1f;
    o.warmup_steps = 10;
    CHECK_NEAR(ws_lr_at(&o, 0), 0.1, 1e-6);
    CHECK_NEAR(ws_lr_at(&o, 9), 1.0, 1e-6);
    CHECK_NEAR(ws_lr_at(&o, 10), 1.0, 1e-6);
    CHECK_NEAR(ws_lr_at(&o, 55), 0.55, 1e-6);
    CHECK_NEAR(ws_lr_at(&o, 100), 0.1, 1e-6);
    CHECK_NEAR(ws_lr_at(&o, 500), 0.1, 1e-6);
    for (int s = 11; s < 100; s++)
        CHECK(ws_lr_at(&o, s) <= ws_lr_at(&o, s - 1));
}

/* A small model trained from scratch on a repeating sequence learns it. */
static void from_scratch_learns(void)
{
    ws_model_config c = {.arch = WS_ARCH_LLAMA,
                         .vocab_size = 32,
                         .dim = 32,
                         .hidden_dim = 64,
                         .n_layers = 2,
                         .n_heads = 4,
                         .n_kv_heads = 2,
                         .head_dim = 8,
                         .max_pos = 64,
                         .norm_eps = 1e-5f,
                         .rope_theta = 10000,
                         .tied = true,
                         .bos_id = -1};
    ws_model *m = ws_model_new(&c, 3);
    ws_train_opts o;
    ws_train_opts_init(&o, 60);
    o.lr = 1e-2f;
    o.min_lr = 1e-3f;
    o.warmup_steps = 5;
    ws_trainer *t = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_trainer_new(m, NULL, 2, 16, &o, &t, &err), 0);
    int32_t in[32], tg[32];
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 16; i++) {
            in[b * 16 + i] = (i * 7 + b * 3) % 13 + 1;
            tg[b * 16 + i] = ((i + 1) * 7 + b * 3) % 13 + 1;
        }
    float first = 0, loss = 0;
    for (int s = 0; s < 60; s++) {
        CHECK_EQ_INT(ws_trainer_step(t, in, tg, &loss), 0);
        if (s == 0)
            first = loss;
    }
    printf("  from scratch: loss %.3f -> %.3f\n", first, loss);
    CHECK(first > 3.0f && loss < 0.2f);
    ws_trainer_free(t);
    ws_model_free(m);
}

WS_TEST_MAIN(T(full_training_matches_pytorch), T(lora_training_matches_peft), T(checkpoint_resume_is_exact),
             T(schedule_shape), T(from_scratch_learns))
