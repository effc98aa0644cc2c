/* AdamW training loop pieces (see train.h). */
#include "nn/train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/parallel.h"
#include "nn/prof.h"
#include "nn/safetensors.h"

typedef struct {
    size_t off, n;
    bool decay;
} segment;

struct ws_trainer {
    ws_model *m;
    ws_lora *lora;
    ws_acts *acts;
    ws_train_opts o;
    int B, T;
    float *params, *grads, *mom, *vel;
    size_t n;
    segment *segs;
    int n_segs;
    int step;
    float last_lr, last_norm;
    float *nll, *w; /* [B*T] per-position losses and weights (ws_trainer_step_weighted) */
};

void ws_train_opts_init(ws_train_opts *o, int total_steps)
{
    *o = (ws_train_opts){.lr = 1e-3f,
                         .min_lr = 1e-4f,
                         .warmup_steps = 0,
                         .total_steps = total_steps,
                         .beta1 = 0.9f,
                         .beta2 = 0.95f,
                         .eps = 1e-8f,
                         .weight_decay = 0.1f,
                         .grad_clip = 1.0f,
                         .accum = 1};
}

float ws_lr_at(const ws_train_opts *o, int step)
{
    if (step < o->warmup_steps)
        return o->lr * (float)(step + 1) / (float)o->warmup_steps;
    int span = o->total_steps - o->warmup_steps;
    double prog = span > 0 ? (double)(step - o->warmup_steps) / span : 1.0;
    if (prog > 1)
        prog = 1;
    return (float)(o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * prog)));
}

int ws_trainer_new(ws_model *m, ws_lora *lora, int B, int T, const ws_train_opts *o, ws_trainer **out,
                   ws_error *err)
{
    *out = NULL;
    if (B <= 0 || T <= 0 || T > m->cfg.max_pos)
        return ws_error_set(err, WS_EINVAL, "bad batch shape %d x %d (max_position_embeddings %d)", B, T,
                            m->cfg.max_pos);
    if (o->accum <= 0)
        return ws_error_set(err, WS_EINVAL, "accum must be positive");
    int rc;
    if (!lora && (rc = ws_model_enable_grads(m, err)))
        return rc;
    ws_trainer *t = ws_xcalloc(1, sizeof *t);
    t->m = m;
    t->lora = lora;
    t->o = *o;
    t->B = B;
    t->T = T;
    if (lora) {
        t->params = lora->block;
        ws_lora_enable_grads(lora);
        t->grads = lora->grad_block;
        t->n = lora->n_floats;
        t->segs = ws_xcalloc(1, sizeof *t->segs);
        t->segs[0] = (segment){0, t->n, true};
        t->n_segs = 1;
        ws_lora_zero_grads(lora);
    } else {
        t->params = m->block;
        t->grads = m->grad_block;
        t->n = m->n_floats;
        t->segs = ws_xcalloc((size_t)m->n_params, sizeof *t->segs);
        for (int i = 0; i < m->n_params; i++)
            t->segs[t->n_segs++] = (segment){m->params[i].offset, m->params[i].numel, m->params[i].ndim >= 2};
    }
    t->mom = ws_xaligned(64, (t->n ? t->n : 1) * sizeof(float));
    t->vel = ws_xaligned(64, (t->n ? t->n : 1) * sizeof(float));
    memset(t->mom, 0, t->n * sizeof(float));
    memset(t->vel, 0, t->n * sizeof(float));
    t->acts = ws_acts_new(m, lora, B, T);
    if (lora) {
        ws_acts_head_on_targets(t->acts, true); /* the loss needs the head on targeted rows only */
        if (!o->exact_base)
            ws_acts_base_8bit(t->acts, m, lora);
    }
    *out = t;
    return 0;
}

void ws_trainer_free(ws_trainer *t)
{
    if (!t)
        return;
    ws_acts_free(t->acts);
    free(t->mom);
    free(t->vel);
    free(t->segs);
    free(t->nll);
    free(t->w);
    free(t);
}

int ws_trainer_steps_done(const ws_trainer *t)
{
    return t->step;
}
float ws_trainer_last_lr(const ws_trainer *t)
{
    return t->last_lr;
}
float ws_trainer_last_grad_norm(const ws_trainer *t)
{
    return t->last_norm;
}
size_t ws_trainer_n_trainable(const ws_trainer *t)
{
    return t->n;
}
size_t ws_trainer_bytes(const ws_trainer *t)
{
    return ws_acts_bytes(t->acts) + 3 * t->n * sizeof(float);
}

typedef struct {
    float *p, *g, *mm, *vv;
    float b1, b2, eps, decay, step_size, bc2_sqrt, gscale;
    double ss[WS_MAX_THREADS];
} adam_job;

static void adamw_range(void *ctx, size_t lo, size_t hi, int chunk)
{
    const adam_job *j = ctx;
    float *p = j->p, *g = j->g, *mm = j->mm, *vv = j->vv;
    float b1 = j->b1, b2 = j->b2, eps = j->eps, decay = j->decay, step_size = j->step_size,
          bc2_sqrt = j->bc2_sqrt;
    float gscale = j->gscale; /* the clipping factor, applied here instead of in a pass of its own */
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i] * gscale;
        mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
        vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(vv[i]) / bc2_sqrt + eps;
        p[i] = p[i] * decay - step_size * mm[i] / denom;
    }
}

static void sumsq_range(void *ctx, size_t lo, size_t hi, int chunk)
{
    adam_job *j = ctx;
    double s = 0;
    const float *g = j->g;
#pragma omp simd reduction(+ : s)
    for (size_t i = lo; i < hi; i++)
        s += (double)g[i] * g[i];
    j->ss[chunk] = s;
}

static void adamw(ws_trainer *t, float lr, float gscale)
{
    const ws_train_opts *o = &t->o;
    int s = t->step + 1;
    float bc1 = 1.0f - powf(o->beta1, (float)s), bc2 = 1.0f - powf(o->beta2, (float)s);
    float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
    for (int k = 0; k < t->n_segs; k++) {
        const segment *sg = &t->segs[k];
        adam_job j = {t->params + sg->off,
                      t->grads + sg->off,
                      t->mom + sg->off,
                      t->vel + sg->off,
                      o->beta1,
                      o->beta2,
                      o->eps,
                      sg->decay ? 1.0f - lr * o->weight_decay : 1.0f,
                      step_size,
                      bc2_sqrt,
                      gscale,
                      {0}};
        ws_parallel_for(sg->n, 16384, adamw_range, &j);
    }
}

int ws_trainer_step(ws_trainer *t, const int32_t *inputs, const int32_t *targets, float *loss)
{
    return ws_trainer_step_packed(t, inputs, NULL, targets, loss);
}

int ws_trainer_step_packed(ws_trainer *t, const int32_t *inputs, const ws_packing *pk, const int32_t *targets,
                           float *loss)
{
    return ws_trainer_step_weighted(t, inputs, pk, targets, NULL, NULL, loss);
}

/* Micro-batch a's part of pk's arrays. */
static ws_packing micro_packing(const ws_packing *pk, size_t off)
{
    if (!pk || !pk->starts)
        return (ws_packing){0};
    return (ws_packing){pk->starts + off, pk->skip_from ? pk->skip_from + off : NULL,
                        pk->skip_to ? pk->skip_to + off : NULL};
}

int ws_trainer_step_weighted(ws_trainer *t, const int32_t *inputs, const ws_packing *pk,
                             const int32_t *targets, ws_trainer_weigh_fn weigh, void *arg, float *loss)
{
    size_t bt = (size_t)t->B * t->T;
    WS_PROF(WS_PROF_COPY, if (t->lora) ws_lora_zero_grads(t->lora); else ws_model_zero_grads(t->m));
    if (weigh && !t->nll) {
        t->nll = ws_xmalloc(bt * sizeof *t->nll);
        t->w = ws_xmalloc(bt * sizeof *t->w);
    }
    double total = 0;
    for (int a = 0; a < t->o.accum; a++) {
        float l = 0;
        ws_packing mp = micro_packing(pk, a * bt);
        int rc = ws_model_forward_packed(t->m, t->lora, t->acts, inputs + a * bt, mp.starts ? &mp : NULL,
                                         targets + a * bt, t->B, t->T, true, &l);
        if (rc)
            return rc;
        if (weigh) {
            ws_acts_target_nll(t->acts, t->nll);
            l = (float)weigh(arg, a, t->nll, t->w);
            ws_acts_weigh_targets(t->acts, t->w);
        }
        ws_model_backward(t->m, t->lora, t->acts, 1.0f / (float)t->o.accum);
        total += l / t->o.accum;
    }
    WS_PROF_BEGIN();
    adam_job nj = {.g = t->grads};
    ws_parallel_for(t->n, 16384, sumsq_range, &nj);
    double ss = 0;
    for (int c = 0; c < WS_MAX_THREADS; c++)
        ss += nj.ss[c];
    float norm = (float)sqrt(ss);
    t->last_norm = norm;
    float gscale = 1.0f; /* g * 1.0f == g: the same values as without clipping */
    if (t->o.grad_clip > 0) {
        float coef = t->o.grad_clip / (norm + 1e-6f);
        if (coef < 1.0f)
            gscale = coef;
    }
    float lr = ws_lr_at(&t->o, t->step);
    t->last_lr = lr;
    adamw(t, lr, gscale);
    WS_PROF_END(WS_PROF_OPTIM);
    t->step++;
    if (loss)
        *loss = (float)total;
    return 0;
}

int ws_trainer_eval(ws_trainer *t, const int32_t *inputs, const int32_t *targets, int B, float *loss)
{
    if (B > t->B)
        return WS_EINVAL;
    return ws_model_forward(t->m, t->lora, t->acts, inputs, targets, B, t->T, false, loss);
}

int ws_trainer_save(const ws_trainer *t, const char *path, ws_error *err)
{
    char step[32], rng[32], n[32];
    snprintf(step, sizeof step, "%d", t->step);
    snprintf(rng, sizeof rng, "%" PRIu64, t->lora ? t->lora->rng : 0);
    snprintf(n, sizeof n, "%zu", t->n);
    const char *meta[] = {"step", step, "lora_rng", rng, "n_trainable", n, "kind", t->lora ? "lora" : "full"};
    ws_st_entry e[3] = {
        {.name = "params", .dtype = WS_DT_F32, .ndim = 1, .shape = {(int64_t)t->n}, .data = t->params},
        {.name = "adam_m", .dtype = WS_DT_F32, .ndim = 1, .shape = {(int64_t)t->n}, .data = t->mom},
        {.name = "adam_v", .dtype = WS_DT_F32, .ndim = 1, .shape = {(int64_t)t->n}, .data = t->vel},
    };
    return ws_st_write(path, e, 3, meta, 4, err);
}

int ws_trainer_load(ws_trainer *t, const char *path, ws_error *err)
{
    ws_safetensors *st = NULL;
    int rc = ws_st_open(path, &st, err);
    if (rc)
        return rc;
    const ws_st_tensor *p = ws_st_find(st, "params"), *mm = ws_st_find(st, "adam_m"),
                       *vv = ws_st_find(st, "adam_v");
    const char *step = ws_st_metadata(st, "step"), *rng = ws_st_metadata(st, "lora_rng"),
               *kind = ws_st_metadata(st, "kind");
    if (!p || !mm || !vv || !step || !rng || !kind || p->dtype != WS_DT_F32 || mm->dtype != WS_DT_F32 ||
        vv->dtype != WS_DT_F32 || p->numel != t->n || mm->numel != t->n || vv->numel != t->n ||
        strcmp(kind, t->lora ? "lora" : "full")) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: not a checkpoint of this trainer (%zu trainable floats, %s)",
                          path, t->n, t->lora ? "lora" : "full");
        goto out;
    }
    ws_st_to_f32(p, t->params);
    ws_st_to_f32(mm, t->mom);
    ws_st_to_f32(vv, t->vel);
    t->step = atoi(step);
    if (t->lora)
        t->lora->rng = strtoull(rng, NULL, 10);
out:
    ws_st_close(st);
    return rc;
}
