/* Helpers for the engine tests: the committed PyTorch reference data of tests/reference/nn/
 * (ref.safetensors + ref.json per model variant) and tensor comparison that prints the max
 * difference per tensor. Include after harness.h. */
#ifndef WS_TESTS_NN_REF_H
#define WS_TESTS_NN_REF_H

#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/json.h"
#include "nn/safetensors.h"

#define NN_REF_DIR "tests/reference/nn"
static const char *const nn_variants[] = {"llama_tied", "qwen2_bias", "llama3_rope"};
#define NN_N_VARIANTS 3

typedef struct {
    char dir[256];
    ws_safetensors *st;
    ws_json_doc *doc;
    const ws_json *json;
} nn_ref;

static inline int nn_ref_open(nn_ref *r, const char *variant)
{
    snprintf(r->dir, sizeof r->dir, NN_REF_DIR "/%s", variant);
    char path[512];
    snprintf(path, sizeof path, "%s/ref.safetensors", r->dir);
    ws_error err = {0};
    if (ws_st_open(path, &r->st, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(path, sizeof path, "%s/ref.json", r->dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    ws_buf b = WS_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ws_buf_append(&b, chunk, n);
    fclose(f);
    int rc = ws_json_parse(b.data, b.len, &r->doc, &err);
    ws_buf_free(&b);
    if (rc)
        return -1;
    r->json = ws_json_root(r->doc);
    return 0;
}

static inline void nn_ref_close(nn_ref *r)
{
    ws_st_close(r->st);
    ws_json_doc_free(r->doc);
}

/* f32 copy of a reference tensor (caller frees); NULL and a failed check when absent. */
static inline float *nn_ref_f32(nn_ref *r, const char *name, size_t *numel)
{
    const ws_st_tensor *t = ws_st_find(r->st, name);
    if (numel)
        *numel = 0;
    if (!t) {
        fprintf(stderr, "reference tensor %s missing\n", name);
        return NULL;
    }
    float *x = malloc(t->numel * sizeof(float) + 1);
    ws_st_to_f32(t, x);
    if (numel)
        *numel = t->numel;
    return x;
}

static inline int32_t *nn_ref_i32(nn_ref *r, const char *name, size_t *numel)
{
    const ws_st_tensor *t = ws_st_find(r->st, name);
    if (!t || t->dtype != WS_DT_I32)
        return NULL;
    int32_t *x = malloc(t->nbytes + 1);
    memcpy(x, t->data, t->nbytes);
    if (numel)
        *numel = t->numel;
    return x;
}

/* max |a-b| <= atol + rtol * max|b|; prints the difference. Returns the max difference. */
static inline double nn_compare(const char *what, const float *a, const float *b, size_t n, double atol,
                                double rtol, int *failures)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md))
            md = d; /* NaN propagates */
        if (fabs(b[i]) > mb)
            mb = fabs(b[i]);
    }
    int ok = md <= atol + rtol * mb;
    printf("  %-70s max|diff| %.3g (max|ref| %.3g)%s\n", what, md, mb, ok ? "" : "  <-- FAIL");
    if (!ok)
        (*failures)++;
    return md;
}

#endif
