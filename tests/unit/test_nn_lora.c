/* LoRA against PEFT: gradients of every A/B, logits with a PEFT adapter loaded (initial and
 * PEFT-trained), our save -> load round trip, several adapters on one base without copying
 * it, PEFT configs we refuse, and packed rows that train as separate ones. */
#include "harness.h"
#include "nn_ref.h"

#include <sys/stat.h>
#include <unistd.h>

#include "nn/lora.h"
#include "nn/model.h"
#include "nn/ops.h"

static void lora_grads_and_logits_match_peft(void)
{
    for (int v = 0; v < NN_N_VARIANTS; v++) {
        nn_ref r;
        CHECK(nn_ref_open(&r, nn_variants[v]) == 0);
        printf(" %s\n", nn_variants[v]);
        ws_model *m = NULL;
        ws_lora *lo = NULL, *trained = NULL;
        ws_error err = {0};
        char dir[300];
        CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
        snprintf(dir, sizeof dir, "%s/adapter_init", r.dir);
        CHECK_EQ_INT(ws_lora_load(dir, &m->cfg, &lo, &err), 0);
        snprintf(dir, sizeof dir, "%s/adapter_trained", r.dir);
        CHECK_EQ_INT(ws_lora_load(dir, &m->cfg, &trained, &err), 0);
        if (!lo || !trained) {
            fprintf(stderr, "%s\n", err.msg);
            return;
        }
        CHECK_NEAR(lo->scale, 2.0, 0);
        int32_t *in = nn_ref_i32(&r, "train_inputs", NULL), *tg = nn_ref_i32(&r, "train_targets", NULL);
        ws_acts *a = ws_acts_new(m, lo, 2, 16);
        float loss;
        CHECK_EQ_INT(ws_model_forward(m, lo, a, in, tg, 2, 16, true, &loss), 0);
        int fails = 0;
        size_t n = 0;
        float *ref = nn_ref_f32(&r, "lora.logits", &n);
        nn_compare("logits with adapter_init", ws_acts_logits(a), ref, n, 1e-4, 1e-5, &fails);
        free(ref);
        double rl = 0;
        ws_json_get_num(r.json, "lora_loss", &rl);
        CHECK_NEAR(loss, rl, 1e-5 * fabs(rl));
        ws_model_backward(m, lo, a, 1.0f);
        static const char *mods[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                     "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                     "mlp.down_proj"};
        for (int l = 0; l < m->cfg.n_layers; l++)
            for (int t = 0; t < WS_LORA_NT; t++)
                for (int k = 0; k < 2; k++) {
                    char name[200];
                    snprintf(name, sizeof name,
                             "lora.grad.base_model.model.model.layers.%d.%s.lora_%c.weight", l, mods[t],
                             k ? 'B' : 'A');
                    float *g = nn_ref_f32(&r, name, &n);
                    CHECK(g != NULL);
                    if (g)
                        nn_compare(name + 10, k ? lo->gB[l * WS_LORA_NT + t] : lo->gA[l * WS_LORA_NT + t], g,
                                   n, 1e-6, 2e-4, &fails);
                    free(g);
                }
        /* the PEFT-trained adapter */
        ws_acts *a2 = ws_acts_new(m, trained, 2, 16);
        CHECK_EQ_INT(ws_model_forward(m, trained, a2, in, NULL, 2, 16, false, NULL), 0);
        ref = nn_ref_f32(&r, "lora_trained.logits", &n);
        nn_compare("logits with the PEFT-trained adapter", ws_acts_logits(a2), ref, n, 1e-4, 1e-5, &fails);
        /* and through the KV-cache path */
        ws_kv_cache *kc = ws_kv_cache_new(m, 32);
        float *all = malloc((size_t)16 * m->cfg.vocab_size * sizeof(float));
        CHECK_EQ_INT(ws_model_infer(m, trained, kc, in, 16, NULL, all, &err), 0);
        nn_compare("infer logits with the PEFT-trained adapter", all, ref, (size_t)16 * m->cfg.vocab_size,
                   1e-4, 1e-5, &fails);
        /* one token at a time: the loaded adapter's B, held by rank, as row additions */
        CHECK(trained->b_by_rank);
        ws_kv_cache_reset(kc);
        for (int i = 0; i < 16 && !fails; i++) {
            CHECK_EQ_INT(
                ws_model_infer(m, trained, kc, in + i, 1, all + (size_t)i * m->cfg.vocab_size, NULL, &err),
                0);
        }
        nn_compare("token-by-token infer logits with the PEFT-trained adapter", all, ref,
                   (size_t)16 * m->cfg.vocab_size, 1e-4, 1e-5, &fails);
        free(all);
        ws_kv_cache_free(kc);
        free(ref);
        CHECK_EQ_INT(fails, 0);
        ws_acts_free(a);
        ws_acts_free(a2);
        free(in);
        free(tg);
        ws_lora_free(lo);
        ws_lora_free(trained);
        ws_model_free(m);
        nn_ref_close(&r);
    }
}

/* Two adapters on one base: switching per call gives each adapter's own logits, the base is
 * never written or copied, and no adapter equals the base alone. */
static void several_adapters_share_one_base(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "llama3_rope") == 0);
    ws_model *m = NULL;
    ws_lora *a1 = NULL, *a2 = NULL;
    ws_error err = {0};
    char dir[300];
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    snprintf(dir, sizeof dir, "%s/adapter_init", r.dir);
    CHECK_EQ_INT(ws_lora_load(dir, &m->cfg, &a1, &err), 0);
    snprintf(dir, sizeof dir, "%s/adapter_trained", r.dir);
    CHECK_EQ_INT(ws_lora_load(dir, &m->cfg, &a2, &err), 0);
    const float *wq = m->w.layers[0].wq;
    float wq0 = wq[0];
    int32_t *in = nn_ref_i32(&r, "train_inputs", NULL);
    size_t n = 0;
    float *r1 = nn_ref_f32(&r, "lora.logits", &n), *r2 = nn_ref_f32(&r, "lora_trained.logits", &n),
          *r0 = nn_ref_f32(&r, "logits", &n);
    int V = m->cfg.vocab_size, fails = 0;
    float *out = malloc((size_t)16 * V * sizeof(float));
    ws_kv_cache *kc = ws_kv_cache_new(m, 16);
    const ws_lora *order[] = {a1, a2, NULL, a2, a1};
    float *refs[] = {r1, r2, r0, r2, r1};
    for (int i = 0; i < 5; i++) {
        ws_kv_cache_reset(kc);
        CHECK_EQ_INT(ws_model_infer(m, order[i], kc, in, 16, NULL, out, &err), 0);
        char what[64];
        snprintf(what, sizeof what, "switch %d: %s", i,
                 order[i] == a1 ? "adapter 1"
                 : order[i]     ? "adapter 2"
                                : "base");
        nn_compare(what, out, refs[i], (size_t)16 * V, 1e-4, 1e-5, &fails);
    }
    CHECK_EQ_INT(fails, 0);
    CHECK(m->w.layers[0].wq == wq && wq[0] == wq0);
    free(out);
    free(r0);
    free(r1);
    free(r2);
    free(in);
    ws_kv_cache_free(kc);
    ws_lora_free(a1);
    ws_lora_free(a2);
    ws_model_free(m);
    nn_ref_close(&r);
}

static void save_load_roundtrip_and_refusals(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "qwen2_bias") == 0);
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    ws_lora_config lc = {
        .rank = 3, .alpha = 6, .dropout = 0.05f, .targets = ws_lora_parse_targets("q,v,o,down")};
    CHECK_EQ_INT(lc.targets,
                 (1u << WS_LORA_Q) | (1u << WS_LORA_V) | (1u << WS_LORA_O) | (1u << WS_LORA_DOWN));
    CHECK_EQ_INT(ws_lora_parse_targets("q_proj,bogus"), 0);
    CHECK_EQ_INT(ws_lora_parse_targets("all"), (1u << WS_LORA_NT) - 1);
    ws_lora *lo = ws_lora_new(&m->cfg, &lc, 5);
    for (size_t i = 0; i < lo->n_floats; i++)
        lo->block[i] += 0.01f * (float)(i % 7);
    char dir[] = "/tmp/ws_nn_loraXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/adapter", dir);
    CHECK_EQ_INT(ws_lora_save(lo, sub, "tests/reference/nn/qwen2_bias", &err), 0);
    ws_lora *back = NULL;
    CHECK_EQ_INT(ws_lora_load(sub, &m->cfg, &back, &err), 0);
    if (back) {
        CHECK(back->b_by_rank);
        ws_lora_set_b_by_rank(back, false); /* the layout lo has */
        CHECK(back->n_floats == lo->n_floats &&
              !memcmp(back->block, lo->block, lo->n_floats * sizeof(float)));
        CHECK(back->cfg.rank == 3 && back->cfg.alpha == 6 && back->cfg.targets == lc.targets);
        CHECK_NEAR(back->cfg.dropout, 0.05, 1e-7);
    }
    /* the base it does not fit */
    ws_model_config other = m->cfg;
    other.dim = 48;
    ws_lora *bad = NULL;
    CHECK_EQ_INT(ws_lora_load(sub, &other, &bad, &err), WS_EFORMAT);
    CHECK(bad == NULL);
    /* DoRA is refused */
    char cfgp[400], cmd[900];
    snprintf(cfgp, sizeof cfgp, "%s/adapter_config.json", sub);
    snprintf(cmd, sizeof cmd, "sed -i 's/\"use_dora\": false/\"use_dora\": true/' %s", cfgp);
    CHECK(system(cmd) == 0);
    CHECK_EQ_INT(ws_lora_load(sub, &m->cfg, &bad, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "DoRA") != NULL);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    CHECK_EQ_INT(ws_lora_load("/nonexistent", &m->cfg, &bad, &err), WS_ENOENT);
    ws_lora_free(back);
    ws_lora_free(lo);
    ws_model_free(m);
    nn_ref_close(&r);
}

/* Finite differences through LoRA with dropout (same dropout mask for every evaluation). */
static void lora_dropout_gradient(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "llama_tied") == 0);
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    ws_lora_config lc = {.rank = 2, .alpha = 4, .dropout = 0.3f, .targets = ws_lora_parse_targets("all")};
    ws_lora *lo = ws_lora_new(&m->cfg, &lc, 9);
    for (size_t i = 0; i < lo->n_floats; i++) /* B non-zero so A gets gradients */
        lo->block[i] += 0.05f * (float)((int)(i % 11) - 5);
    int32_t *in = nn_ref_i32(&r, "train_inputs", NULL), *tg = nn_ref_i32(&r, "train_targets", NULL);
    ws_acts *a = ws_acts_new(m, lo, 2, 16);
    uint64_t rng0 = lo->rng;
    float loss;
    ws_model_forward(m, lo, a, in, tg, 2, 16, true, &loss);
    ws_lora_zero_grads(lo);
    ws_model_backward(m, lo, a, 1.0f);
    double md = 0;
    for (size_t k = 0; k < lo->n_floats; k += lo->n_floats / 23) {
        float keep = lo->block[k], lp, lm;
        const float h = 1e-2f;
        lo->block[k] = keep + h;
        lo->rng = rng0;
        ws_model_forward(m, lo, a, in, tg, 2, 16, true, &lp);
        lo->block[k] = keep - h;
        lo->rng = rng0;
        ws_model_forward(m, lo, a, in, tg, 2, 16, true, &lm);
        lo->block[k] = keep;
        double fd = ((double)lp - lm) / (2 * h), d = fabs(fd - lo->grad_block[k]);
        if (d > 2e-3 + 2e-2 * fabs(fd))
            fprintf(stderr, "  lora param %zu: analytic %g, finite difference %g\n", k, lo->grad_block[k],
                    fd);
        CHECK(d <= 2e-3 + 2e-2 * fabs(fd));
        md = d > md ? d : md;
    }
    printf("  lora with dropout: max|analytic - finite difference| %.3g\n", md);
    /* eval mode: no dropout, deterministic */
    float e1, e2;
    ws_model_forward(m, lo, a, in, tg, 2, 16, false, &e1);
    ws_model_forward(m, lo, a, in, tg, 2, 16, false, &e2);
    CHECK(e1 == e2);
    ws_acts_free(a);
    free(in);
    free(tg);
    ws_lora_free(lo);
    ws_model_free(m);
    nn_ref_close(&r);
}

/* With a frozen base, backward stops at the lowest adapted layer (and skips what that layer's
 * adapters do not need): adapters missing from the bottom layers, or from parts of the lowest
 * one, leave the other adapters' gradients exactly as with every module adapted (the missing
 * ones having B = 0, a no-op in the forward). */
static void upper_layer_adapters_skip_the_rest(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "llama_tied") == 0);
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    int L = m->cfg.n_layers;
    CHECK(L >= 2);
    int32_t *in = nn_ref_i32(&r, "train_inputs", NULL), *tg = nn_ref_i32(&r, "train_targets", NULL);
    ws_lora_config lc = {.rank = 2, .alpha = 4, .dropout = 0.0f, .targets = ws_lora_parse_targets("all")};
    /* the modules dropped in each case: bit t of drop[l] */
    const unsigned qkv = 1u << WS_LORA_Q | 1u << WS_LORA_K | 1u << WS_LORA_V, all = (1u << WS_LORA_NT) - 1;
    const unsigned cases[][2] = {{all, 0},
                                 {all, qkv},
                                 {all, all & ~(1u << WS_LORA_GATE)},
                                 {qkv, 0},
                                 {all, all & ~(1u << WS_LORA_DOWN)},
                                 {all, all & ~(1u << WS_LORA_O)}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ws_lora *lf = ws_lora_new(&m->cfg, &lc, 9), *lp = ws_lora_new(&m->cfg, &lc, 9);
        for (size_t i = 0; i < lf->n_floats; i++) { /* B non-zero so A gets gradients */
            lf->block[i] += 0.05f * (float)((int)(i % 11) - 5);
            lp->block[i] = lf->block[i];
        }
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < WS_LORA_NT; t++)
                if (cases[k][l] & (1u << t)) {
                    int idx = l * WS_LORA_NT + t, rin, rout;
                    ws_lora_dims(&m->cfg, t, &rin, &rout);
                    memset(lf->B[idx], 0, (size_t)rout * 2 * sizeof(float));
                    lp->A[idx] = lp->B[idx] = NULL;
                }
        float loss_f, loss_p;
        ws_acts *af = ws_acts_new(m, lf, 2, 16), *ap = ws_acts_new(m, lp, 2, 16);
        CHECK_EQ_INT(ws_model_forward(m, lf, af, in, tg, 2, 16, true, &loss_f), 0);
        CHECK_EQ_INT(ws_model_forward(m, lp, ap, in, tg, 2, 16, true, &loss_p), 0);
        CHECK(fabsf(loss_f - loss_p) <= 1e-6f);
        ws_lora_zero_grads(lf);
        ws_lora_zero_grads(lp);
        ws_model_backward(m, lf, af, 1.0f);
        ws_model_backward(m, lp, ap, 1.0f);
        double md = 0, mx = 0;
        for (int idx = 0; idx < L * WS_LORA_NT; idx++) {
            if (!lp->A[idx])
                continue;
            int rin, rout;
            ws_lora_dims(&m->cfg, idx % WS_LORA_NT, &rin, &rout);
            for (int i = 0; i < 2 * rin; i++) {
                md = fmax(md, fabs(lp->gA[idx][i] - lf->gA[idx][i]));
                mx = fmax(mx, fabs(lf->gA[idx][i]));
            }
            for (int i = 0; i < 2 * rout; i++) {
                md = fmax(md, fabs(lp->gB[idx][i] - lf->gB[idx][i]));
                mx = fmax(mx, fabs(lf->gB[idx][i]));
            }
        }
        printf("  adapters dropped (layer 0 %#x, layer 1 %#x): kept gradients max|diff| %.3g (max %.3g)\n",
               cases[k][0], cases[k][1], md, mx);
        CHECK(mx > 0 && md <= 1e-6 * mx);
        ws_acts_free(af);
        ws_acts_free(ap);
        ws_lora_free(lf);
        ws_lora_free(lp);
    }
    free(in);
    free(tg);
    ws_model_free(m);
    nn_ref_close(&r);
}

/* A rank-2 adapter on every projection, its B non-zero so A gets gradients; the same one each
 * call. */
static ws_lora *test_adapter(const ws_model *m)
{
    ws_lora_config lc = {.rank = 2, .alpha = 4, .dropout = 0.0f, .targets = ws_lora_parse_targets("all")};
    ws_lora *lo = ws_lora_new(&m->cfg, &lc, 5);
    for (size_t i = 0; i < lo->n_floats; i++)
        lo->block[i] += 0.05f * (float)((int)(i % 13) - 6);
    return lo;
}

/* Backward on the same adapter from two forwards (as, ap) gives the same gradients. */
static void check_same_grads(ws_model *m, ws_lora *ls, ws_acts *as, ws_lora *lp, ws_acts *ap)
{
    ws_lora_zero_grads(ls);
    ws_lora_zero_grads(lp);
    ws_model_backward(m, ls, as, 1.0f);
    ws_model_backward(m, lp, ap, 1.0f);
    double md = 0, mx = 0;
    for (int idx = 0; idx < m->cfg.n_layers * WS_LORA_NT; idx++) {
        int rin, rout;
        ws_lora_dims(&m->cfg, idx % WS_LORA_NT, &rin, &rout);
        for (int i = 0; i < 2 * rin; i++) {
            md = fmax(md, fabs(ls->gA[idx][i] - lp->gA[idx][i]));
            mx = fmax(mx, fabs(ls->gA[idx][i]));
        }
        for (int i = 0; i < 2 * rout; i++) {
            md = fmax(md, fabs(ls->gB[idx][i] - lp->gB[idx][i]));
            mx = fmax(mx, fabs(ls->gB[idx][i]));
        }
    }
    printf("  adapter gradients: max|diff| %.3g (max %.3g)\n", md, mx);
    CHECK(mx > 0 && md <= 1e-4 * mx);
}

/* Two sequences packed in one row with their starts (ws_model_forward_packed) train exactly as
 * the same sequences alone in two rows: same loss, same adapter gradients; without the starts
 * the second would see the first and the numbers differ. */
static void packed_rows_train_like_separate_rows(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "llama_tied") == 0);
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    int32_t *ref = nn_ref_i32(&r, "train_inputs", NULL);
    enum { T = 16, L1 = 10, L2 = 6 };
    int32_t sep_in[2 * T], sep_tg[2 * T], pk_in[T], pk_tg[T], pk_st[T];
    for (int i = 0; i < T; i++) {
        sep_in[i] = i < L1 ? ref[i] : 0;
        sep_tg[i] = i + 1 < L1 ? ref[i + 1] : -1;
        sep_in[T + i] = i < L2 ? ref[T + i] : 0;
        sep_tg[T + i] = i + 1 < L2 ? ref[T + i + 1] : -1;
        pk_in[i] = i < L1 ? sep_in[i] : sep_in[T + i - L1];
        pk_tg[i] = i < L1 ? sep_tg[i] : sep_tg[T + i - L1];
        pk_st[i] = i < L1 ? 0 : L1;
    }
    ws_lora *ls = test_adapter(m), *lp = test_adapter(m);
    ws_acts *as = ws_acts_new(m, ls, 2, T), *ap = ws_acts_new(m, lp, 1, T);
    float loss_s, loss_p, loss_mixed;
    CHECK_EQ_INT(ws_model_forward(m, ls, as, sep_in, sep_tg, 2, T, true, &loss_s), 0);
    CHECK_EQ_INT(ws_model_forward(m, lp, ap, pk_in, pk_tg, 1, T, true, &loss_mixed), 0);
    CHECK_EQ_INT(
        ws_model_forward_packed(m, lp, ap, pk_in, &(ws_packing){.starts = pk_st}, pk_tg, 1, T, true, &loss_p),
        0);
    printf("  loss: two rows %.6f, packed %.6f, packed without starts %.6f\n", loss_s, loss_p, loss_mixed);
    CHECK(fabsf(loss_s - loss_p) <= 1e-5f * fabsf(loss_s));
    CHECK(fabsf(loss_s - loss_mixed) > 1e-4f);
    check_same_grads(m, ls, as, lp, ap);
    int32_t bad[T];
    memcpy(bad, pk_st, sizeof bad);
    bad[L1 + 1] = 0; /* a start that goes back */
    CHECK_EQ_INT(
        ws_model_forward_packed(m, lp, ap, pk_in, &(ws_packing){.starts = bad}, pk_tg, 1, T, true, &loss_p),
        WS_EINVAL);
    bad[L1 + 1] = L1 + 2; /* a start after its position */
    CHECK_EQ_INT(
        ws_model_forward_packed(m, lp, ap, pk_in, &(ws_packing){.starts = bad}, pk_tg, 1, T, true, &loss_p),
        WS_EINVAL);
    ws_acts_free(as);
    ws_acts_free(ap);
    ws_lora_free(ls);
    ws_lora_free(lp);
    free(ref);
    ws_model_free(m);
    nn_ref_close(&r);
}

/* A second reply that shares the first's prompt in the row (ws_packing skips: the prompt's last
 * token again, then the reply, seeing the prompt but not the first reply) trains exactly as the
 * prompt with that reply alone in a row: same loss, same adapter gradients. Skips out of their
 * bounds are refused. */
static void shared_prompt_trains_like_its_own_row(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "llama_tied") == 0);
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    int32_t *ref = nn_ref_i32(&r, "train_inputs", NULL);
    /* prompt ref[0..5], first reply ref[6..9], second reply ref[16..18] */
    enum { T = 16, P = 6, RA = 4, RB = 3 };
    int32_t sep_in[2 * T], sep_tg[2 * T], pk_in[T], pk_tg[T], pk_st[T], pk_sf[T], pk_sk[T];
    for (int i = 0; i < T; i++) {
        sep_in[i] = i < P + RA ? ref[i] : 0;
        sep_tg[i] = i >= P - 1 && i + 1 < P + RA ? ref[i + 1] : -1;
        sep_in[T + i] = i < P ? ref[i] : i < P + RB ? ref[T + i - P] : 0;
        sep_tg[T + i] = i >= P - 1 && i + 1 < P + RB ? sep_in[T + i + 1] : -1;
    }
    const int tw = P + RA; /* where the twin part begins: the prompt's last token again */
    for (int i = 0; i < T; i++) {
        bool twin = i >= tw && i < tw + 1 + RB, pad = i >= tw + 1 + RB;
        pk_in[i] = i < tw ? sep_in[i] : twin ? sep_in[T + P - 1 + (i - tw)] : 0;
        pk_tg[i] = i < tw ? sep_tg[i] : twin ? sep_tg[T + P - 1 + (i - tw)] : -1;
        pk_st[i] = pad ? tw + 1 + RB : 0;
        pk_sf[i] = twin ? P - 1 : pk_st[i];
        pk_sk[i] = twin ? tw : pk_st[i];
    }
    ws_lora *ls = test_adapter(m), *lp = test_adapter(m);
    ws_acts *as = ws_acts_new(m, ls, 2, T), *ap = ws_acts_new(m, lp, 1, T);
    float loss_s, loss_p, loss_noskip;
    ws_packing pk = {pk_st, pk_sf, pk_sk}, noskip = {.starts = pk_st};
    CHECK_EQ_INT(ws_model_forward(m, ls, as, sep_in, sep_tg, 2, T, true, &loss_s), 0);
    CHECK_EQ_INT(ws_model_forward_packed(m, lp, ap, pk_in, &noskip, pk_tg, 1, T, true, &loss_noskip), 0);
    CHECK_EQ_INT(ws_model_forward_packed(m, lp, ap, pk_in, &pk, pk_tg, 1, T, true, &loss_p), 0);
    printf("  loss: two rows %.6f, shared prompt %.6f, without the skip %.6f\n", loss_s, loss_p, loss_noskip);
    CHECK(fabsf(loss_s - loss_p) <= 1e-5f * fabsf(loss_s));
    CHECK(fabsf(loss_s - loss_noskip) > 1e-4f);
    check_same_grads(m, ls, as, lp, ap);
    pk_sk[tw + 1] = tw + 2; /* a skip past its position */
    CHECK_EQ_INT(ws_model_forward_packed(m, lp, ap, pk_in, &pk, pk_tg, 1, T, true, &loss_p), WS_EINVAL);
    pk_sk[tw + 1] = tw;
    pk_sf[tw + 1] = tw + 1; /* a skip that ends before it begins */
    CHECK_EQ_INT(ws_model_forward_packed(m, lp, ap, pk_in, &pk, pk_tg, 1, T, true, &loss_p), WS_EINVAL);
    ws_acts_free(as);
    ws_acts_free(ap);
    ws_lora_free(ls);
    ws_lora_free(lp);
    free(ref);
    ws_model_free(m);
    nn_ref_close(&r);
}

/* The weighted objective of one forward: sum of w[i] * loss_i over the positions. */
static double weighted_sum(const ws_model *m, const ws_lora *lo, ws_acts *a, const int32_t *in,
                           const int32_t *tg, const float *w, float *nll)
{
    float loss;
    CHECK_EQ_INT(ws_model_forward(m, lo, a, in, tg, 2, 16, true, &loss), 0);
    ws_acts_target_nll(a, nll);
    double j = 0;
    for (int i = 0; i < 32; i++)
        j += (double)w[i] * nll[i];
    return j;
}

/* Per-position losses (ws_acts_target_nll) and weighted targets (ws_acts_weigh_targets): the
 * losses average to the forward's loss, weights of 1 / count give the mean's gradients, and
 * mixed-sign weights the gradient of the weighted sum (central differences on the adapter). */
static void weighted_targets(void)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, "llama_tied") == 0);
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
    int32_t *ref = nn_ref_i32(&r, "train_inputs", NULL);
    int32_t in[32], tg[32];
    int count = 0;
    for (int i = 0; i < 32; i++) {
        in[i] = ref[i];
        tg[i] = i % 16 < 15 && i % 5 != 2 ? ref[i + 1] : -1;
        count += tg[i] >= 0;
    }
    ws_lora *lo = test_adapter(m);
    ws_acts *a = ws_acts_new(m, lo, 2, 16);
    float loss, nll[32], mean_w[32], mixed[32];
    CHECK_EQ_INT(ws_model_forward(m, lo, a, in, tg, 2, 16, true, &loss), 0);
    ws_acts_target_nll(a, nll);
    double sum = 0;
    for (int i = 0; i < 32; i++) {
        sum += nll[i];
        CHECK(tg[i] >= 0 || nll[i] == 0.0f);
        mean_w[i] = tg[i] >= 0 ? 1.0f / (float)count : 0.0f;
        mixed[i] = tg[i] >= 0 ? (i % 3 ? 0.7f : -0.4f) / (float)count : 0.0f;
    }
    printf("  mean of the position losses %.6f, forward's loss %.6f\n", sum / count, loss);
    CHECK(fabs(sum / count - loss) <= 1e-5 * loss);
    ws_lora_zero_grads(lo);
    ws_model_backward(m, lo, a, 1.0f);
    float *g0 = malloc(lo->n_floats * sizeof *g0);
    memcpy(g0, lo->grad_block, lo->n_floats * sizeof *g0);
    weighted_sum(m, lo, a, in, tg, mean_w, nll);
    ws_acts_weigh_targets(a, mean_w);
    ws_lora_zero_grads(lo);
    ws_model_backward(m, lo, a, 1.0f);
    double md = 0, mx = 0;
    for (size_t i = 0; i < lo->n_floats; i++) {
        md = fmax(md, fabs(g0[i] - lo->grad_block[i]));
        mx = fmax(mx, fabs(g0[i]));
    }
    printf("  weights 1/count against the mean: max|diff| %.3g (max %.3g)\n", md, mx);
    CHECK(mx > 0 && md <= 1e-5 * mx);
    weighted_sum(m, lo, a, in, tg, mixed, nll);
    ws_acts_weigh_targets(a, mixed);
    ws_lora_zero_grads(lo);
    ws_model_backward(m, lo, a, 1.0f);
    memcpy(g0, lo->grad_block, lo->n_floats * sizeof *g0);
    int checked = 0;
    double worst = 0;
    for (size_t i = 0; i < lo->n_floats && checked < 8; i += lo->n_floats / 97) {
        if (fabs(g0[i]) < 1e-3)
            continue;
        float keep = lo->block[i];
        lo->block[i] = keep + 1e-2f;
        double up = weighted_sum(m, lo, a, in, tg, mixed, nll);
        lo->block[i] = keep - 1e-2f;
        double down = weighted_sum(m, lo, a, in, tg, mixed, nll);
        lo->block[i] = keep;
        double fd = (up - down) / 2e-2;
        worst = fmax(worst, fabs(fd - g0[i]) / fmax(fabs(fd), fabs(g0[i])));
        checked++;
    }
    printf("  mixed-sign weights: %d gradients against central differences, worst relative diff %.3g\n",
           checked, worst);
    CHECK(checked >= 4 && worst < 0.05);
    free(g0);
    ws_acts_free(a);
    ws_lora_free(lo);
    free(ref);
    ws_model_free(m);
    nn_ref_close(&r);
}

WS_TEST_MAIN(T(lora_grads_and_logits_match_peft), T(several_adapters_share_one_base),
             T(save_load_roundtrip_and_refusals), T(lora_dropout_gradient),
             T(upper_layer_adapters_skip_the_rest), T(packed_rows_train_like_separate_rows),
             T(shared_prompt_trains_like_its_own_row), T(weighted_targets))
