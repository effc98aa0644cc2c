/* config.json of Llama / Qwen2 models -> ws_model_config, and back. */
#include "nn/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"

#define CONFIG_MAX_BYTES (1u << 20)

static int get_int(const ws_json *o, const char *k, int *out, bool required, ws_error *err)
{
    double v;
    if (!ws_json_get_num(o, k, &v)) {
        if (required)
            return ws_error_set(err, WS_EFORMAT, "config.json: missing number '%s'", k);
        return 0;
    }
    if (v < 0 || v > 1e9 || v != (double)(int)v)
        return ws_error_set(err, WS_EFORMAT, "config.json: '%s' is not a valid count", k);
    *out = (int)v;
    return 0;
}

int ws_config_validate(const ws_model_config *c, ws_error *err)
{
    if (c->vocab_size <= 0 || c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->head_dim <= 0 || c->max_pos <= 0)
        return ws_error_set(err, WS_EFORMAT, "config: sizes must be positive");
    if (c->n_heads % c->n_kv_heads)
        return ws_error_set(err, WS_EFORMAT,
                            "config: num_attention_heads (%d) is not a multiple of "
                            "num_key_value_heads (%d)",
                            c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2)
        return ws_error_set(err, WS_EFORMAT, "config: head_dim must be even for RoPE");
    if (c->vocab_size > (1 << 24) || c->dim > 65536 || c->hidden_dim > (1 << 20) || c->n_layers > 1024 ||
        c->n_heads > 1024 || c->head_dim > 1024)
        return ws_error_set(err, WS_EUNSUPPORTED, "config: model sizes beyond the engine's limits");
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        return ws_error_set(err, WS_EFORMAT, "config: rms_norm_eps and rope_theta must be positive");
    return 0;
}

static int parse_rope(const ws_json *rs, ws_model_config *c, ws_error *err)
{
    double v;
    if (ws_json_get_num(rs, "rope_theta", &v))
        c->rope_theta = (float)v;
    const char *type = ws_json_get_str(rs, "rope_type");
    if (!type)
        type = ws_json_get_str(rs, "type");
    if (!type || !strcmp(type, "default"))
        return 0;
    if (!ws_json_get_num(rs, "factor", &v) || v <= 0)
        return ws_error_set(err, WS_EFORMAT, "config.json: rope scaling '%s' needs a positive factor", type);
    c->rope_factor = (float)v;
    if (!strcmp(type, "linear")) {
        c->rope_type = WS_ROPE_LINEAR;
        return 0;
    }
    if (!strcmp(type, "llama3")) {
        c->rope_type = WS_ROPE_LLAMA3;
        double lo, hi, om;
        if (!ws_json_get_num(rs, "low_freq_factor", &lo) || !ws_json_get_num(rs, "high_freq_factor", &hi) ||
            !ws_json_get_num(rs, "original_max_position_embeddings", &om) || hi <= lo || om <= 0)
            return ws_error_set(err, WS_EFORMAT,
                                "config.json: llama3 rope scaling needs low_freq_factor < "
                                "high_freq_factor and original_max_position_embeddings");
        c->rope_low_freq = (float)lo;
        c->rope_high_freq = (float)hi;
        c->rope_orig_max_pos = (int)om;
        return 0;
    }
    return ws_error_set(err, WS_EUNSUPPORTED,
                        "config.json: rope scaling type '%.40s' is not supported "
                        "(default, linear, llama3 are)",
                        type);
}

static void parse_eos(const ws_json *root, ws_model_config *c)
{
    const ws_json *e = ws_json_get(root, "eos_token_id");
    c->n_eos = 0;
    if (e && e->type == WS_JSON_NUMBER && e->number >= 0) {
        c->eos_ids[c->n_eos++] = (int)e->number;
    } else if (e && e->type == WS_JSON_ARRAY) {
        for (size_t i = 0; i < e->len && c->n_eos < WS_MAX_EOS; i++)
            if (e->items[i].type == WS_JSON_NUMBER && e->items[i].number >= 0)
                c->eos_ids[c->n_eos++] = (int)e->items[i].number;
    }
    double b;
    c->bos_id = ws_json_get_num(root, "bos_token_id", &b) && b >= 0 ? (int)b : -1;
}

int ws_config_parse(const char *text, size_t len, ws_model_config *c, ws_error *err)
{
    ws_json_doc *doc = NULL;
    ws_error jerr = {0};
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = ws_json_parse(text, len, &doc, &jerr)))
        return ws_error_set(err, WS_EFORMAT, "config.json: %s", jerr.msg);
    const ws_json *r = ws_json_root(doc);
    const ws_json *archs = ws_json_get(r, "architectures");
    const char *arch = archs ? ws_json_get_str(r, "architectures") : NULL;
    if (archs && archs->type == WS_JSON_ARRAY && archs->len && archs->items[0].type == WS_JSON_STRING)
        arch = archs->items[0].str;
    const char *mtype = ws_json_get_str(r, "model_type");
    if ((arch && !strcmp(arch, "LlamaForCausalLM")) || (!arch && mtype && !strcmp(mtype, "llama"))) {
        c->arch = WS_ARCH_LLAMA;
    } else if ((arch && !strcmp(arch, "Qwen2ForCausalLM")) || (!arch && mtype && !strcmp(mtype, "qwen2"))) {
        c->arch = WS_ARCH_QWEN2;
    } else {
        rc = ws_error_set(err, WS_EUNSUPPORTED,
                          "config.json: architecture '%.80s' is not supported "
                          "(LlamaForCausalLM, Qwen2ForCausalLM are)",
                          arch    ? arch
                          : mtype ? mtype
                                  : "?");
        goto out;
    }
    if ((rc = get_int(r, "vocab_size", &c->vocab_size, true, err)) ||
        (rc = get_int(r, "hidden_size", &c->dim, true, err)) ||
        (rc = get_int(r, "intermediate_size", &c->hidden_dim, true, err)) ||
        (rc = get_int(r, "num_hidden_layers", &c->n_layers, true, err)) ||
        (rc = get_int(r, "num_attention_heads", &c->n_heads, true, err)))
        goto out;
    c->n_kv_heads = c->n_heads;
    c->max_pos = 2048;
    if ((rc = get_int(r, "num_key_value_heads", &c->n_kv_heads, false, err)) ||
        (rc = get_int(r, "max_position_embeddings", &c->max_pos, false, err)))
        goto out;
    c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
    const ws_json *hd = ws_json_get(r, "head_dim");
    if (hd && hd->type == WS_JSON_NUMBER && (rc = get_int(r, "head_dim", &c->head_dim, true, err)))
        goto out;
    double v;
    c->norm_eps = ws_json_get_num(r, "rms_norm_eps", &v) ? (float)v : 1e-6f;
    c->rope_theta = ws_json_get_num(r, "rope_theta", &v) ? (float)v : 10000.0f;
    const char *act = ws_json_get_str(r, "hidden_act");
    if (act && strcmp(act, "silu")) {
        rc = ws_error_set(err, WS_EUNSUPPORTED, "config.json: hidden_act '%.40s' is not supported (silu is)",
                          act);
        goto out;
    }
    bool b = false;
    c->tied = ws_json_get_bool(r, "tie_word_embeddings", &b) && b; /* transformers' default: false */
    if (c->arch == WS_ARCH_QWEN2) {
        c->qkv_bias = true;
        if (ws_json_get_bool(r, "use_sliding_window", &b) && b) {
            rc = ws_error_set(err, WS_EUNSUPPORTED, "config.json: sliding-window attention is not supported");
            goto out;
        }
    } else if (ws_json_get_bool(r, "attention_bias", &b) && b) {
        c->qkv_bias = c->o_bias = true;
    }
    if (ws_json_get_bool(r, "mlp_bias", &b) && b) {
        rc = ws_error_set(err, WS_EUNSUPPORTED, "config.json: mlp_bias is not supported");
        goto out;
    }
    const ws_json *rs = ws_json_get(r, "rope_scaling");
    if (rs && rs->type == WS_JSON_OBJECT && (rc = parse_rope(rs, c, err)))
        goto out;
    rs = ws_json_get(r, "rope_parameters");
    if (rs && rs->type == WS_JSON_OBJECT && (rc = parse_rope(rs, c, err)))
        goto out;
    parse_eos(r, c);
    rc = ws_config_validate(c, err);
out:
    ws_json_doc_free(doc);
    return rc;
}

int ws_config_load(const char *dir, ws_model_config *cfg, ws_error *err)
{
    char path[4096], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = ws_file_read(path, CONFIG_MAX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    rc = ws_config_parse(text, len, cfg, err);
    free(text);
    return rc;
}

char *ws_config_to_json(const ws_model_config *c)
{
    ws_buf b = WS_BUF_INIT;
    bool q = c->arch == WS_ARCH_QWEN2;
    ws_buf_printf(&b, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n",
                  q ? "Qwen2ForCausalLM" : "LlamaForCausalLM", q ? "qwen2" : "llama");
    ws_buf_printf(&b,
                  "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
                  "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                  "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
                  "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.9g,\n"
                  "  \"rope_theta\": %.9g,\n  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": %s,\n",
                  c->vocab_size, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                  c->max_pos, (double)c->norm_eps, (double)c->rope_theta, c->tied ? "true" : "false");
    if (!q)
        ws_buf_printf(&b, "  \"attention_bias\": %s,\n  \"mlp_bias\": false,\n",
                      c->qkv_bias ? "true" : "false");
    if (c->rope_type == WS_ROPE_LINEAR)
        ws_buf_printf(&b, "  \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %.9g},\n",
                      (double)c->rope_factor);
    else if (c->rope_type == WS_ROPE_LLAMA3)
        ws_buf_printf(&b,
                      "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %.9g, "
                      "\"low_freq_factor\": %.9g, \"high_freq_factor\": %.9g, "
                      "\"original_max_position_embeddings\": %d},\n",
                      (double)c->rope_factor, (double)c->rope_low_freq, (double)c->rope_high_freq,
                      c->rope_orig_max_pos);
    if (c->bos_id >= 0)
        ws_buf_printf(&b, "  \"bos_token_id\": %d,\n", c->bos_id);
    if (c->n_eos == 1) {
        ws_buf_printf(&b, "  \"eos_token_id\": %d,\n", c->eos_ids[0]);
    } else if (c->n_eos > 1) {
        ws_buf_puts(&b, "  \"eos_token_id\": [");
        for (int i = 0; i < c->n_eos; i++)
            ws_buf_printf(&b, "%s%d", i ? ", " : "", c->eos_ids[i]);
        ws_buf_puts(&b, "],\n");
    }
    ws_buf_puts(&b, "  \"torch_dtype\": \"float32\"\n}\n");
    return ws_buf_take(&b);
}
