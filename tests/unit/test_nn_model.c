/* The decoder against PyTorch: logits, loss and the gradient of every parameter for each
 * reference variant (tied/untied, QKV bias, llama3 RoPE scaling, GQA/MHA; F32, F16, BF16,
 * sharded), plus config and safetensors error handling. */
#include "harness.h"
#include "nn_ref.h"

#include <unistd.h>

#include "nn/config.h"
#include "nn/lora.h"
#include "nn/model.h"
#include "nn/ops.h"

static void check_forward_and_grads(const char *variant)
{
    nn_ref r;
    CHECK(nn_ref_open(&r, variant) == 0);
    printf(" %s\n", variant);
    ws_model *m = NULL;
    ws_error err = {0};
    int rc = ws_model_load(r.dir, WS_LOAD_COPY, &m, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        nn_ref_close(&r);
        return;
    }
    double B = 0, T = 0;
    CHECK(ws_json_get_num(r.json, "B", &B) && ws_json_get_num(r.json, "T", &T));
    int32_t *inputs = nn_ref_i32(&r, "train_inputs", NULL), *targets = nn_ref_i32(&r, "train_targets", NULL);
    CHECK(inputs && targets);
    ws_acts *a = ws_acts_new(m, NULL, (int)B, (int)T);
    CHECK_EQ_INT(ws_model_enable_grads(m, &err), 0);
    float loss = 0;
    CHECK_EQ_INT(ws_model_forward(m, NULL, a, inputs, targets, (int)B, (int)T, true, &loss), 0);
    int fails = 0;
    size_t n = 0;
    float *ref = nn_ref_f32(&r, "logits", &n);
    CHECK(n == (size_t)(B * T) * m->cfg.vocab_size);
    nn_compare("logits", ws_acts_logits(a), ref, n, 1e-4, 1e-5, &fails);
    free(ref);
    double ref_loss;
    CHECK(ws_json_get_num(r.json, "loss", &ref_loss));
    printf("  loss %.7f ref %.7f\n", loss, ref_loss);
    CHECK_NEAR(loss, ref_loss, 1e-5 * fabs(ref_loss));
    ws_model_backward(m, NULL, a, 1.0f);
    for (int i = 0; i < m->n_params; i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", m->params[i].name);
        float *g = nn_ref_f32(&r, name, &n);
        CHECK(g && n == m->params[i].numel);
        if (g)
            nn_compare(name, ws_model_param_ptr(m, &m->g, i), g, n, 1e-6, 2e-4, &fails);
        free(g);
    }
    CHECK_EQ_INT(fails, 0);
    free(inputs);
    free(targets);
    ws_acts_free(a);
    ws_model_free(m);
    nn_ref_close(&r);
}

static void forward_and_grads_match_pytorch(void)
{
    for (int v = 0; v < NN_N_VARIANTS; v++)
        check_forward_and_grads(nn_variants[v]);
}

/* The mmapped (zero-copy) load computes the same logits as the copied one, via the KV-cache
 * path token by token and as one chunk. */
static void infer_path_matches_training_forward(void)
{
    for (int v = 0; v < NN_N_VARIANTS; v++) {
        nn_ref r;
        CHECK(nn_ref_open(&r, nn_variants[v]) == 0);
        ws_model *m = NULL;
        ws_error err = {0};
        CHECK_EQ_INT(ws_model_load(r.dir, 0, &m, &err), 0);
        int32_t *inputs = nn_ref_i32(&r, "train_inputs", NULL);
        size_t n;
        float *ref = nn_ref_f32(&r, "logits", &n);
        int T = 16, V = m->cfg.vocab_size;
        ws_kv_cache *kc = ws_kv_cache_new(m, 64);
        float *all = malloc((size_t)T * V * sizeof(float)), *one = malloc((size_t)V * sizeof(float));
        int fails = 0;
        /* row 1 of the batch, as one chunk */
        CHECK_EQ_INT(ws_model_infer(m, NULL, kc, inputs + T, T, NULL, all, &err), 0);
        nn_compare("infer chunk logits", all, ref + (size_t)T * V, (size_t)T * V, 1e-4, 1e-5, &fails);
        /* row 0, split 5 + 1 + 1 + ... */
        ws_kv_cache_reset(kc);
        CHECK_EQ_INT(ws_model_infer(m, NULL, kc, inputs, 5, one, NULL, &err), 0);
        nn_compare("infer prefix last logits", one, ref + (size_t)4 * V, (size_t)V, 1e-4, 1e-5, &fails);
        for (int t = 5; t < T; t++) {
            CHECK_EQ_INT(ws_model_infer(m, NULL, kc, inputs + t, 1, one, NULL, &err), 0);
            char what[64];
            snprintf(what, sizeof what, "infer step %d logits", t);
            if (t == T - 1 || t == 6)
                nn_compare(what, one, ref + (size_t)t * V, (size_t)V, 1e-4, 1e-5, &fails);
        }
        CHECK_EQ_INT(ws_kv_cache_len(kc), T);
        CHECK_EQ_INT(fails, 0);
        free(all);
        free(one);
        free(ref);
        free(inputs);
        ws_kv_cache_free(kc);
        ws_model_free(m);
        nn_ref_close(&r);
    }
}

static void config_parsing(void)
{
    ws_model_config c;
    ws_error err = {0};
    CHECK_EQ_INT(ws_config_load(NN_REF_DIR "/llama3_rope", &c, &err), 0);
    CHECK_EQ_INT(c.rope_type, WS_ROPE_LLAMA3);
    CHECK_NEAR(c.rope_theta, 500000, 0);
    CHECK(!c.tied);
    CHECK_EQ_INT(ws_config_load(NN_REF_DIR "/llama_tied", &c, &err), 0);
    CHECK(c.tied && c.n_kv_heads == 2 && c.head_dim == 8 && c.bos_id == 1 && c.n_eos == 1 &&
          c.eos_ids[0] == 2);
    CHECK_EQ_INT(ws_config_load(NN_REF_DIR "/qwen2_bias", &c, &err), 0);
    CHECK(c.qkv_bias && !c.o_bias && c.arch == WS_ARCH_QWEN2);
    const char *bad_arch = "{\"architectures\":[\"GPT2LMHeadModel\"],\"vocab_size\":10}";
    CHECK_EQ_INT(ws_config_parse(bad_arch, strlen(bad_arch), &c, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "GPT2LMHeadModel") != NULL);
    const char *gelu =
        "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":10,\"hidden_size\":8,"
        "\"intermediate_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"hidden_act\":\"gelu\"}";
    CHECK_EQ_INT(ws_config_parse(gelu, strlen(gelu), &c, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "hidden_act") != NULL);
    const char *yarn = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"vocab_size\":10,\"hidden_size\":8,"
                       "\"intermediate_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                       "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}";
    CHECK_EQ_INT(ws_config_parse(yarn, strlen(yarn), &c, &err), WS_EUNSUPPORTED);
    const char *heads = "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":10,\"hidden_size\":8,"
                        "\"intermediate_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":3,"
                        "\"num_key_value_heads\":2,\"head_dim\":4}";
    CHECK_EQ_INT(ws_config_parse(heads, strlen(heads), &c, &err), WS_EFORMAT);
    const char *missing = "{\"architectures\":[\"LlamaForCausalLM\"]}";
    CHECK_EQ_INT(ws_config_parse(missing, strlen(missing), &c, &err), WS_EFORMAT);
    /* round trip through our writer */
    CHECK_EQ_INT(ws_config_load(NN_REF_DIR "/llama3_rope", &c, &err), 0);
    char *js = ws_config_to_json(&c);
    ws_model_config c2;
    CHECK_EQ_INT(ws_config_parse(js, strlen(js), &c2, &err), 0);
    CHECK(c2.rope_type == c.rope_type && c2.rope_factor == c.rope_factor && c2.dim == c.dim &&
          c2.rope_orig_max_pos == c.rope_orig_max_pos && c2.tied == c.tied && c2.n_kv_heads == c.n_kv_heads);
    free(js);
}

static void safetensors_roundtrip_and_errors(void)
{
    char dir[] = "/tmp/ws_nn_stXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    float a[6] = {1, 2, 3, 4, 5, 6};
    int32_t ids[3] = {7, -1, 9};
    ws_st_entry e[2] = {{.name = "a", .dtype = WS_DT_F32, .ndim = 2, .shape = {2, 3}, .data = a},
                        {.name = "ids", .dtype = WS_DT_I32, .ndim = 1, .shape = {3}, .data = ids}};
    const char *meta[] = {"step", "12"};
    ws_error err = {0};
    CHECK_EQ_INT(ws_st_write(path, e, 2, meta, 1, &err), 0);
    ws_safetensors *st = NULL;
    CHECK_EQ_INT(ws_st_open(path, &st, &err), 0);
    CHECK_EQ_INT(ws_st_count(st), 2);
    const ws_st_tensor *t = ws_st_find(st, "a");
    CHECK(t && t->ndim == 2 && t->shape[1] == 3 && t->numel == 6 && !memcmp(t->data, a, sizeof a));
    CHECK_EQ_STR(ws_st_metadata(st, "step"), "12");
    ws_st_close(st);
    /* corrupt images */
    const char *bad[] = {
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}",
        "{\"x\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
        "[1,2]",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char img[256] = {0};
        size_t hl = strlen(bad[i]);
        img[0] = (unsigned char)hl;
        memcpy(img + 8, bad[i], hl);
        CHECK(ws_st_parse(img, 8 + hl + 8, &st, &err) < 0);
        CHECK(st == NULL);
    }
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    CHECK_EQ_INT(ws_st_parse(huge, sizeof huge, &st, &err), WS_ETOOBIG);
    CHECK_EQ_INT(ws_st_open_dir(dir, &st, &err), WS_ENOENT);
    unlink(path);
    rmdir(dir);
    /* f16 / bf16 conversion */
    CHECK_NEAR(ws_f16_to_f32(0x3c00), 1.0, 0);
    CHECK_NEAR(ws_f16_to_f32(0xc000), -2.0, 0);
    CHECK_NEAR(ws_f16_to_f32(0x0001), 5.960464477539063e-08, 1e-20);
    CHECK_NEAR(ws_bf16_to_f32(0x3f80), 1.0, 0);
    CHECK(isinf(ws_f16_to_f32(0x7c00)));
}

static void load_errors_are_clear(void)
{
    ws_model *m = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_model_load("/nonexistent/model", 0, &m, &err), WS_ENOENT);
    CHECK(m == NULL && strstr(err.msg, "config.json"));
    /* a config whose shapes do not match the weights */
    char dir[] = "/tmp/ws_nn_cfgXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cp " NN_REF_DIR "/llama_tied/model.safetensors %s/ && sed 's/\"intermediate_size\": 64/"
             "\"intermediate_size\": 48/' " NN_REF_DIR "/llama_tied/config.json > %s/config.json",
             dir, dir);
    CHECK(system(cmd) == 0);
    CHECK_EQ_INT(ws_model_load(dir, 0, &m, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "shape") != NULL);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

WS_TEST_MAIN(T(forward_and_grads_match_pytorch), T(infer_path_matches_training_forward), T(config_parsing),
             T(safetensors_roundtrip_and_errors), T(load_errors_are_clear))
