/* LoRA adapters: creation, PEFT-format load/save. The forward/backward terms live in model.c. */
#include "nn/lora.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"
#include "nn/safetensors.h"

static const char *const target_names[WS_LORA_NT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                     "gate_proj", "up_proj", "down_proj"};
static const char *const target_modules[WS_LORA_NT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

static int target_index(const char *s, size_t n)
{
    static const char *const short_names[WS_LORA_NT] = {"q", "k", "v", "o", "gate", "up", "down"};
    for (int t = 0; t < WS_LORA_NT; t++)
        if ((strlen(target_names[t]) == n && !strncmp(s, target_names[t], n)) ||
            (strlen(short_names[t]) == n && !strncmp(s, short_names[t], n)))
            return t;
    return -1;
}

unsigned ws_lora_parse_targets(const char *list)
{
    if (!strcmp(list, "all") || !strcmp(list, "all-linear"))
        return (1u << WS_LORA_NT) - 1;
    unsigned bits = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int t = target_index(p, n);
        if (t < 0)
            return 0;
        bits |= 1u << t;
        p += n + (e ? 1 : 0);
    }
    return bits;
}

void ws_lora_dims(const ws_model_config *mc, int t, int *in, int *out)
{
    int C = mc->dim, HD = mc->n_heads * mc->head_dim, KD = mc->n_kv_heads * mc->head_dim, F = mc->hidden_dim;
    switch (t) {
    case WS_LORA_Q:
        *in = C;
        *out = HD;
        break;
    case WS_LORA_K:
    case WS_LORA_V:
        *in = C;
        *out = KD;
        break;
    case WS_LORA_O:
        *in = HD;
        *out = C;
        break;
    case WS_LORA_GATE:
    case WS_LORA_UP:
        *in = C;
        *out = F;
        break;
    default:
        *in = F;
        *out = C;
        break;
    }
}

static ws_lora *lora_alloc(const ws_model_config *mc, const ws_lora_config *cfg)
{
    ws_lora *l = ws_xcalloc(1, sizeof *l);
    l->cfg = *cfg;
    l->mcfg = *mc;
    l->scale = cfg->rslora ? cfg->alpha / sqrtf((float)cfg->rank) : cfg->alpha / (float)cfg->rank;
    size_t n = (size_t)mc->n_layers * WS_LORA_NT;
    l->A = ws_xcalloc(n, sizeof(float *));
    l->B = ws_xcalloc(n, sizeof(float *));
    l->gA = ws_xcalloc(n, sizeof(float *));
    l->gB = ws_xcalloc(n, sizeof(float *));
    size_t total = 0;
    for (int t = 0; t < WS_LORA_NT; t++)
        if (cfg->targets & (1u << t)) {
            int in, out;
            ws_lora_dims(mc, t, &in, &out);
            total += (size_t)mc->n_layers * cfg->rank * (size_t)(in + out);
        }
    l->n_floats = total;
    l->block = ws_xaligned(64, (total ? total : 1) * sizeof(float));
    size_t off = 0;
    for (int layer = 0; layer < mc->n_layers; layer++)
        for (int t = 0; t < WS_LORA_NT; t++)
            if (cfg->targets & (1u << t)) {
                int in, out;
                ws_lora_dims(mc, t, &in, &out);
                size_t i = (size_t)layer * WS_LORA_NT + t;
                l->A[i] = l->block + off;
                off += (size_t)cfg->rank * in;
                l->B[i] = l->block + off;
                off += (size_t)cfg->rank * out;
            }
    return l;
}

/* dst[cols][rows] = src[rows][cols] */
static void transpose(float *dst, const float *src, int rows, int cols)
{
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++)
            dst[(size_t)x * rows + y] = src[(size_t)y * cols + x];
}

/* B of module i from [out,r] to [r,out] (by_rank) or back, in place through a copy */
static void transpose_b(ws_lora *l, size_t i, bool by_rank)
{
    int in, out, r = l->cfg.rank;
    ws_lora_dims(&l->mcfg, (int)(i % WS_LORA_NT), &in, &out);
    float *tmp = ws_xmalloc((size_t)r * out * sizeof *tmp);
    memcpy(tmp, l->B[i], (size_t)r * out * sizeof *tmp);
    transpose(l->B[i], tmp, by_rank ? out : r, by_rank ? r : out);
    free(tmp);
}

void ws_lora_set_b_by_rank(ws_lora *l, bool by_rank)
{
    if (l->b_by_rank == by_rank)
        return;
    for (size_t i = 0; i < (size_t)l->mcfg.n_layers * WS_LORA_NT; i++)
        if (l->B[i])
            transpose_b(l, i, by_rank);
    l->b_by_rank = by_rank;
}

void ws_lora_enable_grads(ws_lora *l)
{
    ws_lora_set_b_by_rank(l, false); /* the trainer's products read B as [out,r] */
    if (l->grad_block)
        return;
    l->grad_block = ws_xaligned(64, (l->n_floats ? l->n_floats : 1) * sizeof(float));
    if (l->grad_block)
        memset(l->grad_block, 0, l->n_floats * sizeof(float));
    for (size_t i = 0; i < (size_t)l->mcfg.n_layers * WS_LORA_NT; i++)
        if (l->A[i]) { /* gradients sit at the parameters' offsets in their own block */
            l->gA[i] = l->grad_block + (l->A[i] - l->block);
            l->gB[i] = l->grad_block + (l->B[i] - l->block);
        }
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

ws_lora *ws_lora_new(const ws_model_config *mc, const ws_lora_config *cfg, uint64_t seed)
{
    ws_lora *l = lora_alloc(mc, cfg);
    ws_lora_enable_grads(l);
    uint64_t s = seed ^ 0x1234567ull;
    l->rng = splitmix(&s);
    for (size_t i = 0; i < (size_t)mc->n_layers * WS_LORA_NT; i++) {
        if (!l->A[i])
            continue;
        int in, out;
        ws_lora_dims(mc, (int)(i % WS_LORA_NT), &in, &out);
        float bound = 1.0f / sqrtf((float)in); /* kaiming_uniform(a=sqrt(5)), as PEFT */
        for (size_t k = 0; k < (size_t)cfg->rank * in; k++)
            l->A[i][k] = bound * (float)(2.0 * ((splitmix(&s) >> 11) / 9007199254740992.0) - 1.0);
        memset(l->B[i], 0, (size_t)cfg->rank * out * sizeof(float));
    }
    return l;
}

void ws_lora_free(ws_lora *l)
{
    if (!l)
        return;
    free(l->A);
    free(l->B);
    free(l->gA);
    free(l->gB);
    free(l->block);
    free(l->grad_block);
    free(l);
}

void ws_lora_zero_grads(ws_lora *l)
{
    if (l->grad_block)
        memset(l->grad_block, 0, l->n_floats * sizeof(float));
}

static bool json_empty_or_null(const ws_json *v)
{
    return !v || v->type == WS_JSON_NULL ||
           ((v->type == WS_JSON_OBJECT || v->type == WS_JSON_ARRAY) && !v->len);
}

int ws_lora_load(const char *dir, const ws_model_config *mc, ws_lora **out, ws_error *err)
{
    char path[4096];
    ws_buf text = WS_BUF_INIT;
    ws_json_doc *doc = NULL;
    ws_safetensors *st = NULL;
    ws_lora *l = NULL;
    ws_error jerr = {0};
    int rc;
    *out = NULL;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if ((rc = ws_file_read(path, 1u << 20, &text.data, &text.len, err)))
        goto out;
    if ((rc = ws_json_parse(text.data ? text.data : "", text.len, &doc, &jerr))) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: %s", path, jerr.msg);
        goto out;
    }
    const ws_json *r = ws_json_root(doc);
    const char *type = ws_json_get_str(r, "peft_type");
    if (!type || strcmp(type, "LORA")) {
        rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: peft_type must be LORA", path);
        goto out;
    }
    ws_lora_config cfg = {0};
    double v;
    if (!ws_json_get_num(r, "r", &v) || v < 1 || v > 4096) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: bad or missing r", path);
        goto out;
    }
    cfg.rank = (int)v;
    cfg.alpha = ws_json_get_num(r, "lora_alpha", &v) ? (float)v : 8.0f;
    cfg.dropout = ws_json_get_num(r, "lora_dropout", &v) ? (float)v : 0.0f;
    bool b;
    cfg.rslora = ws_json_get_bool(r, "use_rslora", &b) && b;
    if ((ws_json_get_bool(r, "use_dora", &b) && b) ||
        !json_empty_or_null(ws_json_get(r, "modules_to_save")) ||
        !json_empty_or_null(ws_json_get(r, "rank_pattern")) ||
        !json_empty_or_null(ws_json_get(r, "alpha_pattern")) ||
        !json_empty_or_null(ws_json_get(r, "layers_to_transform")) ||
        (ws_json_get_str(r, "bias") && strcmp(ws_json_get_str(r, "bias"), "none")) ||
        (ws_json_get_bool(r, "fan_in_fan_out", &b) && b)) {
        rc = ws_error_set(err, WS_EUNSUPPORTED,
                          "%s: DoRA, modules_to_save, rank/alpha patterns, "
                          "layers_to_transform, bias training and fan_in_fan_out are not supported",
                          path);
        goto out;
    }
    const ws_json *tm = ws_json_get(r, "target_modules");
    if (tm && tm->type == WS_JSON_ARRAY) {
        for (size_t i = 0; i < tm->len; i++) {
            const ws_json *e = &tm->items[i];
            int t = e->type == WS_JSON_STRING ? target_index(e->str, e->len) : -1;
            if (t < 0) {
                rc = ws_error_set(err, WS_EUNSUPPORTED, "%s: target module '%.60s' is not supported", path,
                                  e->type == WS_JSON_STRING ? e->str : "?");
                goto out;
            }
            cfg.targets |= 1u << t;
        }
    } else if (tm && tm->type == WS_JSON_STRING && !strcmp(tm->str, "all-linear")) {
        cfg.targets = (1u << WS_LORA_NT) - 1;
    } else {
        rc =
            ws_error_set(err, WS_EUNSUPPORTED, "%s: target_modules must be a list of projection names", path);
        goto out;
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if ((rc = ws_st_open(path, &st, err)))
        goto out;
    l = lora_alloc(mc, &cfg);
    l->rng = 0x9e3779b97f4a7c15ull;
    size_t found = 0;
    for (size_t i = 0; i < ws_st_count(st); i++) {
        const ws_st_tensor *t = ws_st_at(st, i);
        int layer = -1, n = 0;
        char ab = 0;
        int ti = -1;
        /* base_model.model.model.layers.<l>.<module>.lora_<A|B>[.<adapter>].weight */
        if (sscanf(t->name, "base_model.model.model.layers.%d.%n", &layer, &n) == 1 && n > 0) {
            const char *rest = t->name + n, *lp = strstr(rest, ".lora_");
            if (lp && (lp[6] == 'A' || lp[6] == 'B') && lp[7] == '.') {
                const char *tail = lp + 8;
                const char *w = strstr(tail, "weight");
                if (w && !strcmp(w, "weight") && (w == tail || (w > tail && w[-1] == '.'))) {
                    ab = lp[6];
                    for (int k = 0; k < WS_LORA_NT; k++)
                        if (strlen(target_modules[k]) == (size_t)(lp - rest) &&
                            !strncmp(rest, target_modules[k], (size_t)(lp - rest)))
                            ti = k;
                }
            }
        }
        if (ti < 0 || layer < 0 || layer >= mc->n_layers || !(cfg.targets & (1u << ti))) {
            rc = ws_error_set(err, WS_EFORMAT,
                              "%s: tensor '%.100s' does not fit the adapter config or the base", path,
                              t->name);
            goto out;
        }
        int in, outd;
        ws_lora_dims(mc, ti, &in, &outd);
        int64_t e0 = ab == 'A' ? cfg.rank : outd, e1 = ab == 'A' ? in : cfg.rank;
        if (t->ndim != 2 || t->shape[0] != e0 || t->shape[1] != e1 || t->dtype == WS_DT_I32 ||
            t->dtype == WS_DT_I64) {
            rc =
                ws_error_set(err, WS_EFORMAT,
                             "%s: tensor '%.100s' has the wrong shape or dtype for this base", path, t->name);
            goto out;
        }
        size_t idx = (size_t)layer * WS_LORA_NT + ti;
        ws_st_to_f32(t, ab == 'A' ? l->A[idx] : l->B[idx]);
        found++;
    }
    size_t want = 0;
    for (int t = 0; t < WS_LORA_NT; t++)
        if (cfg.targets & (1u << t))
            want += 2 * (size_t)mc->n_layers;
    if (found != want) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: %zu LoRA tensors, expected %zu", path, found, want);
        goto out;
    }
    ws_lora_set_b_by_rank(l, true); /* an adapter read from disk serves replies first */
out:
    ws_st_close(st);
    ws_json_doc_free(doc);
    ws_buf_free(&text);
    if (rc) {
        ws_lora_free(l);
        l = NULL;
    }
    *out = l;
    return rc;
}

int ws_lora_save(const ws_lora *l, const char *dir, const char *base_model_name, ws_error *err)
{
    char path[4096];
    int rc = 0;
    if (mkdir(dir, 0755) && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "%s: %s", dir, strerror(errno));
    size_t n = 0, cap = (size_t)l->mcfg.n_layers * WS_LORA_NT * 2;
    ws_st_entry *e = ws_xcalloc(cap ? cap : 1, sizeof *e);
    char(*names)[128] = ws_xcalloc(cap ? cap : 1, sizeof *names);
    float *b_out = NULL; /* B as [out,r] when it is held by rank */
    if (l->b_by_rank) {
        b_out = ws_xmalloc((l->n_floats ? l->n_floats : 1) * sizeof *b_out);
        for (size_t i = 0; i < (size_t)l->mcfg.n_layers * WS_LORA_NT; i++) {
            if (!l->B[i])
                continue;
            int in, out;
            ws_lora_dims(&l->mcfg, (int)(i % WS_LORA_NT), &in, &out);
            transpose(b_out + (l->B[i] - l->block), l->B[i], l->cfg.rank, out);
        }
    }
    for (int layer = 0; layer < l->mcfg.n_layers; layer++)
        for (int t = 0; t < WS_LORA_NT; t++) {
            size_t i = (size_t)layer * WS_LORA_NT + t;
            if (!l->A[i])
                continue;
            int in, out;
            ws_lora_dims(&l->mcfg, t, &in, &out);
            for (int k = 0; k < 2; k++) {
                snprintf(names[n], sizeof names[n], "base_model.model.model.layers.%d.%s.lora_%c.weight",
                         layer, target_modules[t], k ? 'B' : 'A');
                e[n] = (ws_st_entry){.name = names[n],
                                     .dtype = WS_DT_F32,
                                     .ndim = 2,
                                     .shape = {k ? out : l->cfg.rank, k ? l->cfg.rank : in},
                                     .data = !k      ? l->A[i]
                                             : b_out ? b_out + (l->B[i] - l->block)
                                                     : l->B[i]};
                n++;
            }
        }
    static const char *meta[] = {"format", "pt"};
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rc = ws_st_write(path, e, n, meta, 1, err);
    free(b_out);
    free(e);
    free(names);
    if (rc)
        return rc;
    ws_buf b = WS_BUF_INIT;
    ws_buf_puts(
        &b,
        "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"base_model_name_or_path\": ");
    ws_json_put_cstr(&b, base_model_name);
    ws_buf_printf(
        &b,
        ",\n  \"r\": %d,\n  \"lora_alpha\": %.9g,\n  \"lora_dropout\": %.9g,\n  \"use_rslora\": %s,\n"
        "  \"use_dora\": false,\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
        "  \"init_lora_weights\": true,\n  \"inference_mode\": true,\n  \"modules_to_save\": null,\n"
        "  \"rank_pattern\": {},\n  \"alpha_pattern\": {},\n  \"target_modules\": [",
        l->cfg.rank, (double)l->cfg.alpha, (double)l->cfg.dropout, l->cfg.rslora ? "true" : "false");
    bool first = true;
    for (int t = 0; t < WS_LORA_NT; t++)
        if (l->cfg.targets & (1u << t)) {
            ws_buf_printf(&b, "%s\"%s\"", first ? "" : ", ", target_names[t]);
            first = false;
        }
    ws_buf_puts(&b, "]\n}\n");
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b.data, 1, b.len, f) != b.len)
        rc = ws_error_set(err, WS_EIO, "%s: cannot write", path);
    if (f && fclose(f) && !rc)
        rc = ws_error_set(err, WS_EIO, "%s: cannot write", path);
    ws_buf_free(&b);
    return rc;
}
