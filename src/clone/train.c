/* `whatstyle train`: export -> pairs, profile, retrieval index, model (from scratch or LoRA on
 * a base) within a time budget with resumable checkpoints, fidelity report and manifest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/chat.h"
#include "clone/clone_int.h"
#include "clone/train_data.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/progress.h"
#include "nn/ops.h"
#include "nn/train.h"
#include "style/mask.h"
#include "style/profile.h"

/* The default model trained from scratch: ~0.8M parameters, byte vocabulary. */
#define SCRATCH_DIM 128
#define SCRATCH_LAYERS 4
#define SCRATCH_HEADS 4
#define SCRATCH_KV 2
#define SCRATCH_HIDDEN 352
#define SCRATCH_MAX_POS 640
#define TRAIN_B 8
#define TRAIN_T 192
#define LORA_T 128
#define CHAT_T 256 /* one example in the base's chat template fits */
#define MAX_EPOCHS 40
#define LORA_EPOCHS 3 /* on a pretrained base: the seed's setting, when the budget allows */
#define CHECKPOINT_EVERY_S 15.0

static void phase(const ws_clone_train_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void phase(const ws_clone_train_opts *o, const char *fmt, ...)
{
    if (o->quiet)
        return;
    if (!ws_log_enabled(WS_LOG_INFO))
        return;
    va_list ap;
    va_start(ap, fmt);
    static double t0;
    if (!t0)
        t0 = ws_now_s();
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    WS_LOG(WS_LOG_INFO, "train.phase", msg, WS_LF_D("train.elapsed_s", ws_now_s() - t0));
}

static bool cancelled(const ws_clone_train_opts *o, double fraction, const char *ph, uint64_t samples)
{
    if (o->cancel && *o->cancel)
        return true;
    return o->progress && o->progress(o->progress_arg, fraction, ph, samples) != 0;
}

void ws_clone_train_result_clear(ws_clone_train_result *r)
{
    free(r->profile_json);
    free(r->profile_summary);
    free(r->fidelity_json);
    free(r->fidelity_summary);
    memset(r, 0, sizeof *r);
}

/* ---- reading the export ---- */
static int read_pairs(const ws_clone_train_opts *o, ws_pairs **out, ws_error *err)
{
    ws_mask_rules rules;
    ws_pairs_options popt = {0};
    if (o->mask_rules) {
        int rc = ws_mask_rules_load(o->mask_rules, &rules, err);
        if (rc)
            return rc;
        popt.mask = &rules;
    }
    ws_chat_reader *r = NULL;
    int rc = ws_chat_open_file(o->export_path, NULL, &r, err);
    if (rc)
        return rc;
    ws_pairs_builder *b = ws_pairs_builder_new(o->persona, &popt);
    ws_message m;
    uint64_t n = 0;
    while ((rc = ws_chat_next(r, &m, err)) == 1) {
        ws_pairs_builder_add(b, &m);
        n++;
    }
    ws_chat_close(r);
    if (rc < 0) {
        ws_pairs_builder_free(b);
        return rc;
    }
    if (n == 0) {
        ws_pairs_builder_free(b);
        return ws_error_set(err, WS_EEMPTY, "%s holds no messages", o->export_path);
    }
    return ws_pairs_builder_finish(b, out, err);
}

/* ---- train state (resume) ---- */
typedef struct train_state {
    int steps_done, total_steps;
    char key[128]; /* data + settings this checkpoint belongs to */
} train_state;

static bool read_state(const char *path, train_state *st)
{
    char *data = NULL;
    size_t len = 0;
    ws_json_doc *doc = NULL;
    bool ok = false;
    if (ws_file_read(path, 65536, &data, &len, NULL) == 0 && ws_json_parse(data, len, &doc, NULL) == 0) {
        const ws_json *r = ws_json_root(doc);
        double a, b;
        const char *k = ws_json_get_str(r, "key");
        if (ws_json_get_num(r, "steps_done", &a) && ws_json_get_num(r, "total_steps", &b) && k &&
            strlen(k) < sizeof st->key && a >= 0 && b >= 1 && a <= b) {
            st->steps_done = (int)a;
            st->total_steps = (int)b;
            snprintf(st->key, sizeof st->key, "%s", k);
            ok = true;
        }
    }
    ws_json_doc_free(doc);
    free(data);
    return ok;
}

static int save_state(const char *dir, ws_trainer *tr, const train_state *st, ws_error *err)
{
    char *ck = ws__clone_path(dir, "checkpoint.safetensors"), *sp = ws__clone_path(dir, "train_state.json");
    int rc = ws_trainer_save(tr, ck, err);
    if (!rc) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_printf(&b, "{\"steps_done\": %d, \"total_steps\": %d, \"key\": \"%s\"}\n", st->steps_done,
                      st->total_steps, st->key);
        rc = ws_file_write_atomic(sp, b.data, b.len, err);
        ws_buf_free(&b);
    }
    free(ck);
    free(sp);
    return rc;
}

/* ---- the training loop ---- */
typedef struct train_run {
    ws_model *model;
    ws_lora *lora; /* NULL: full training */
    clone_fmt fmt;
    int B, T;
    float lr, min_lr;
    uint64_t data_hash;
} train_run;

/* Seconds per optimizer step, from the second of two steps on a throwaway copy (the real weights stay
 * untouched, so the schedule can be sized before training starts). */
static int calibrate(const train_run *tr, clone_packer *pk, clone_batch *bt, double *per, ws_error *err)
{
    ws_model *m = tr->model;
    ws_model *scratch = NULL;
    ws_lora *l = NULL;
    if (tr->lora)
        l = ws_lora_new(&m->cfg, &tr->lora->cfg, 7);
    else
        m = scratch = ws_model_new(&tr->model->cfg, 7);
    ws_train_opts to;
    ws_train_opts_init(&to, 10);
    ws_trainer *t = NULL;
    int rc = ws_trainer_new(m, l, tr->B, tr->T, &to, &t, err);
    if (!rc) {
        for (int b = 0; b < tr->B; b++)
            ws__clone_copy_row(pk, pk->n_rows ? (size_t)b % pk->n_rows : 0, bt, b);
        float loss;
        rc = ws__clone_train_step(t, pk, bt, tr->B, &loss);
        double t0 = ws_now_s();
        if (!rc)
            rc = ws__clone_train_step(t, pk, bt, tr->B, &loss);
        *per = 1.2 * (ws_now_s() - t0) + 1e-6; /* later steps share the core with more */
        if (rc)
            ws_error_set(err, rc, "training step failed");
    }
    ws_trainer_free(t);
    ws_lora_free(l);
    ws_model_free(scratch);
    return rc;
}

/* Sizes the run (from the checkpoint when it matches this data and setting, else from the speed
 * of two calibration steps) and makes the trainer, resumed from the checkpoint when there is one:
 * *out owned by the caller. */
static int start_trainer(const ws_clone_train_opts *o, train_run *tr, clone_packer *pk, clone_batch *bt,
                         double train_deadline, train_state *st, const char *ck, ws_clone_train_result *res,
                         ws_trainer **out, ws_error *err)
{
    size_t rows_per_epoch = pk->n_rows ? pk->n_rows : 1;
    char *sp = ws__clone_path(o->out_dir, "train_state.json");
    train_state old = {0};
    bool resume = read_state(sp, &old) && !strcmp(old.key, st->key) && ws__clone_exists(ck);
    free(sp);
    int max_steps = (int)((tr->lora ? LORA_EPOCHS : MAX_EPOCHS) * rows_per_epoch / (size_t)tr->B) + 1;
    int rc = 0;
    if (resume) {
        st->total_steps = old.total_steps;
    } else {
        /* size the run to the budget from the speed of two steps of a throwaway copy */
        double per = 0;
        if ((rc = calibrate(tr, pk, bt, &per, err)))
            return rc;
        int fit = (int)((train_deadline - ws_now_s()) / per);
        st->total_steps = fit < 2 ? 2 : fit > max_steps ? max_steps : fit;
    }
    ws_train_opts to;
    ws_train_opts_init(&to, st->total_steps);
    to.lr = tr->lr;
    to.min_lr = tr->min_lr;
    to.warmup_steps = st->total_steps / 20;
    if ((rc = ws_trainer_new(tr->model, tr->lora, tr->B, tr->T, &to, out, err)))
        return rc;
    if (resume) {
        if ((rc = ws_trainer_load(*out, ck, err)))
            return rc;
        res->resumed = true;
        /* replay the data order up to where the checkpoint stopped */
        for (int s = 0; s < ws_trainer_steps_done(*out); s++)
            ws__clone_next_batch(pk, tr->B, bt);
        phase(o, "resuming at step %d of %d", ws_trainer_steps_done(*out), st->total_steps);
    }
    return 0;
}

static int run_training(const ws_clone_train_opts *o, train_run *tr, const ws_pairs *p, double train_deadline,
                        ws_clone_train_result *res, ws_error *err)
{
    size_t n_segs = 0;
    uint64_t dh = 0;
    clone_seg *segs = ws__clone_segments_build(p, &tr->fmt, &n_segs, &dh);
    clone_batch bt = ws__clone_batch_new(tr->B, tr->T);
    clone_packer pk = {.segs = segs,
                       .n_segs = n_segs,
                       .T = tr->T,
                       .pad = tr->fmt.bytes ? CLONE_TOK_PAD : tr->fmt.end,
                       .isolate = tr->fmt.chat,
                       .seed = o->seed};
    ws__clone_pack_epoch(&pk);
    ws_trainer *t = NULL;
    train_state st = {0};
    char *ck = ws__clone_path(o->out_dir, "checkpoint.safetensors");
    snprintf(st.key, sizeof st.key, "%016llx-%d-%d-%s-%llu-packed", (unsigned long long)dh, tr->B, tr->T,
             tr->lora ? "lora" : "scratch", (unsigned long long)o->seed);
    int rc = start_trainer(o, tr, &pk, &bt, train_deadline, &st, ck, res, &t, err);
    if (rc)
        goto out;
    ws_progress pb;
    ws_progress_start(&pb, "training", (uint64_t)st.total_steps);
    pb.enabled = pb.enabled && o->show_progress;
    double t0 = ws_now_s(), last_ck = t0, loss_ema = 0;
    uint64_t tokens = 0;
    int first_step = ws_trainer_steps_done(t);
    for (;;) {
        int step = ws_trainer_steps_done(t);
        if (step >= st.total_steps)
            break;
        if (cancelled(o, (double)step / st.total_steps, "training", (uint64_t)step * tr->B)) {
            st.steps_done = step;
            int src = save_state(o->out_dir, t, &st, err);
            rc = src ? src
                     : ws_error_set(err, WS_EAGAIN, "training interrupted at step %d; run again to resume",
                                    step);
            goto out;
        }
        double now = ws_now_s();
        if (now > train_deadline && step > first_step) {
            phase(o, "budget reached at step %d of %d; run again with the same -o to continue", step,
                  st.total_steps);
            break;
        }
        ws__clone_next_batch(&pk, tr->B, &bt);
        res->examples_seen += (double)tr->B * (double)n_segs / (double)(pk.n_rows ? pk.n_rows : 1);
        float loss = 0;
        if ((rc = ws__clone_train_step(t, &pk, &bt, tr->B, &loss))) {
            ws_error_set(err, rc, "training step %d failed", step);
            goto out;
        }
        for (int i = 0; i < tr->B * tr->T; i++)
            tokens += bt.tg[i] >= 0 || bt.in[i] != pk.pad;
        loss_ema = step == first_step ? loss : 0.9 * loss_ema + 0.1 * loss;
        double el = ws_now_s() - t0;
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.3f  %.0f tok/s  step %d/%d", loss_ema, el > 0 ? tokens / el : 0,
                 ws_trainer_steps_done(t), st.total_steps);
        ws_progress_update(&pb, (uint64_t)ws_trainer_steps_done(t), extra);
        if (ws_now_s() - last_ck > (o->checkpoint_every_s > 0 ? o->checkpoint_every_s : CHECKPOINT_EVERY_S)) {
            st.steps_done = ws_trainer_steps_done(t);
            if ((rc = save_state(o->out_dir, t, &st, err)))
                goto out;
            last_ck = ws_now_s();
        }
    }
    ws_progress_finish(&pb, NULL);
    st.steps_done = ws_trainer_steps_done(t);
    if ((rc = save_state(o->out_dir, t, &st, err)))
        goto out;
    res->steps = (uint64_t)st.steps_done;
    res->total_steps = (uint64_t)st.total_steps;
    res->tokens = tokens;
    res->train_s = ws_now_s() - t0;
    res->tokens_per_s = res->train_s > 0 ? tokens / res->train_s : 0;
    phase(o, "trained %d of %d steps in %.1f s (%.0f tokens/s, loss %.3f)", st.steps_done, st.total_steps,
          res->train_s, res->tokens_per_s, loss_ema);
out:
    ws_trainer_free(t);
    ws__clone_packer_free(&pk);
    ws__clone_batch_free(&bt);
    free(ck);
    ws__clone_segments_free(segs, n_segs);
    return rc;
}

/* ---- fallback reply: the persona's most common short reply ---- */
static char *typical_reply(char **replies, size_t n)
{
    ws_strset set = WS_STRSET_INIT;
    size_t *cnt = ws_xcalloc(n + 1, sizeof *cnt);
    for (size_t i = 0; i < n; i++) {
        size_t k = ws_strset_add(&set, replies[i], strlen(replies[i]));
        cnt[k]++;
    }
    long best = -1;
    for (int pass = 0; pass < 2 && best < 0; pass++)
        for (size_t k = 0; k < set.count; k++) {
            size_t len = set.lens[k];
            if (pass == 0 && (len > 30 || len == 0 || strchr(set.items[k], '<')))
                continue;
            if (best < 0 || cnt[k] > cnt[best] || (cnt[k] == cnt[best] && len < set.lens[best]))
                best = (long)k;
        }
    char *r = ws_xstrdup(best >= 0 ? set.items[best] : "ok");
    ws_strset_free(&set);
    free(cnt);
    return r;
}

/* ---- manifest ---- */
static const char *const scratch_files[] = {"model/config.json", "model/model.safetensors",
                                            "model/tokenizer.json"};
static const char *const lora_files[] = {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"};
static const char *const common_files[] = {"index.bin", "replies.json", "profile.json", "profile.txt"};

typedef struct manifest_info {
    const char *persona, *kind, *base, *base_id, *embedder, *fallback;
    double threshold, budget;
    const ws_pairs *p;
    const ws_clone_train_result *res;
    const ws_model_config *mc;
    int lora_rank, B, T;
    uint64_t seed;
    bool chat; /* in the base's chat template (with mismatched twins) */
    bool with_fidelity;
    char version[64];
} manifest_info;

static void slug(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    for (; *s && k + 1 < cap && k < 24; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            out[k++] = (char)ch;
        else if (ch >= 'A' && ch <= 'Z')
            out[k++] = (char)(ch - 'A' + 'a');
        else if (k && out[k - 1] != '-')
            out[k++] = '-';
    }
    while (k && out[k - 1] == '-')
        k--;
    if (!k)
        out[k++] = 'p';
    out[k] = '\0';
}

static int write_manifest(const char *dir, manifest_info *mi, ws_error *err)
{
    ws_buf b = WS_BUF_INIT;
    int rc = 0;
    const char *const *mf = strcmp(mi->kind, "lora") ? scratch_files : lora_files;
    size_t nmf = strcmp(mi->kind, "lora") ? 3 : 2;
    char hexw[65] = {0};
    ws_buf files = WS_BUF_INIT;
    for (int g = 0; g < 3 && !rc; g++) {
        const char *const *list = g == 0 ? mf : common_files;
        size_t n = g == 0 ? nmf : g == 1 ? 4 : (mi->with_fidelity ? 2 : 0);
        static const char *const fid[] = {"fidelity.json", "fidelity.txt"};
        if (g == 2)
            list = fid;
        for (size_t i = 0; i < n; i++) {
            char *fp = ws__clone_path(dir, list[i]), hex[65];
            rc = ws_file_sha256(fp, hex, err);
            free(fp);
            if (rc)
                break;
            if (g == 0 && i == 1)
                memcpy(hexw, hex, 65);
            if (files.len)
                ws_buf_puts(&files, ",\n    ");
            ws_json_put_cstr(&files, list[i]);
            ws_buf_printf(&files, ": \"%s\"", hex);
        }
    }
    if (rc)
        goto out;
    char sl[32];
    slug(mi->persona, sl, sizeof sl);
    snprintf(mi->version, sizeof mi->version, "%s-%.12s", sl, hexw);
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    ws_buf_puts(&b, "{\n  \"format\": \"" WS_CLONE_FORMAT "\",\n  \"model_version\": ");
    ws_json_put_cstr(&b, mi->version);
    ws_buf_puts(&b, ",\n  \"persona\": ");
    ws_json_put_cstr(&b, mi->persona);
    ws_buf_printf(&b, ",\n  \"created\": \"%s\",\n  \"kind\": \"%s\",\n  \"base_model\": ", when, mi->kind);
    ws_json_put_cstr(&b, mi->base);
    ws_buf_puts(&b, ",\n  \"base_id\": ");
    ws_json_put_cstr(&b, mi->base_id);
    ws_buf_puts(&b, ",\n  \"embedder\": ");
    ws_json_put_cstr(&b, mi->embedder);
    ws_buf_puts(&b, ",\n  \"threshold\": ");
    ws_json_put_num(&b, mi->threshold);
    ws_buf_puts(&b, ",\n  \"fallback_reply\": ");
    ws_json_put_cstr(&b, mi->fallback);
    const ws_model_config *mc = mi->mc;
    ws_buf_printf(
        &b,
        ",\n  \"settings\": {\"budget_s\": %.1f, \"seed\": %llu, \"batch\": %d, \"seq_len\": %d, "
        "\"steps\": %llu, \"total_steps\": %llu, \"resumed\": %s, \"lora_rank\": %d,\n"
        "    \"model\": {\"vocab\": %d, \"dim\": %d, \"layers\": %d, \"heads\": %d, \"kv_heads\": %d, "
        "\"hidden\": %d, \"max_pos\": %d},\n"
        "    \"pairs\": {\"merge_gap_s\": 120, \"session_gap_s\": 3600, \"max_context\": 8, "
        "\"heldout_fraction\": 0.1, \"model_context_turns\": %d}, \"contrast_weight\": %g},\n",
        mi->budget, (unsigned long long)mi->seed, mi->B, mi->T, (unsigned long long)mi->res->steps,
        (unsigned long long)mi->res->total_steps, mi->res->resumed ? "true" : "false", mi->lora_rank,
        mc->vocab_size, mc->dim, mc->n_layers, mc->n_heads, mc->n_kv_heads, mc->hidden_dim, mc->max_pos,
        mi->chat ? CLONE_CHAT_TURNS : CLONE_CTX_TURNS - 1, mi->chat ? CONTRAST_WEIGHT : 0.0);
    const ws_pairs *p = mi->p;
    ws_buf_printf(&b,
                  "  \"counts\": {\"persona_messages\": %llu, \"messages\": %llu, \"turns\": %zu, "
                  "\"sessions\": %zu, \"participants\": %zu, "
                  "\"examples\": %zu, \"train_examples\": %zu, \"heldout_examples\": %zu, \"masked\": %llu, "
                  "\"tokens_trained\": %llu},\n",
                  (unsigned long long)mi->res->n_messages, (unsigned long long)p->n_messages, p->n_turns,
                  p->n_sessions, p->n_participants, p->n_examples, p->n_examples - p->n_heldout, p->n_heldout,
                  (unsigned long long)p->n_masked, (unsigned long long)mi->res->tokens);
    ws_buf_printf(&b, "  \"files\": {\n    %s\n  }\n}\n", files.data ? files.data : "");
    char *mp = ws__clone_path(dir, "manifest.json");
    rc = ws_file_write_atomic(mp, b.data, b.len, err);
    free(mp);
out:
    ws_buf_free(&b);
    ws_buf_free(&files);
    return rc;
}

/* ---- the pipeline: one function per phase over the state of one training run ---- */
typedef struct train_job {
    ws_clone_train_opts o;
    ws_clone_train_result *res;
    double t_start, deadline;
    ws_base *base; /* acquired; NULL: a model from scratch */
    ws_pairs *p;
    ws_profile *prof;
    ws_embedder *emb;
    ws_vindex *ix;
    char **replies; /* n_train training replies, owned */
    size_t n_train;
    char *fallback;
    ws_model *model; /* base->model (borrowed) or owned when from scratch */
    ws_lora *lora;
    ws_tokenizer *btok; /* the byte-pair tokenizer trained here, NULL: bytes */
    train_run tr;
    int lora_rank;
    ws_clone *c;
    clone_fidelity fid;
} train_job;

/* Writes text to dir/name atomically. */
static int write_file(const char *dir, const char *name, const char *text, size_t n, ws_error *err)
{
    char *path = ws__clone_path(dir, name);
    int rc = ws_file_write_atomic(path, text, n, err);
    free(path);
    return rc;
}

/* Reads the export into pairs and checks there is enough of the persona to learn from. */
static int phase_pairs(train_job *j, ws_error *err)
{
    const ws_clone_train_opts *o = &j->o;
    ws_clone_train_result *res = j->res;
    phase(o, "reading %s", o->export_path);
    int rc = read_pairs(o, &j->p, err);
    if (rc)
        return rc;
    const ws_pairs *p = j->p;
    uint64_t persona_msgs = 0;
    for (size_t i = 0; i < p->n_turns; i++)
        persona_msgs += p->turns[i].persona && p->turns[i].reply;
    res->n_messages = persona_msgs;
    res->n_examples = p->n_examples;
    res->n_heldout = p->n_heldout;
    if (persona_msgs < WS_CLONE_MIN_MESSAGES)
        return ws_error_set(err, WS_EINVAL,
                            "%s has only %llu messages with text in this export; at least %d are "
                            "needed to learn a style",
                            o->persona, (unsigned long long)persona_msgs, WS_CLONE_MIN_MESSAGES);
    if (p->n_examples - p->n_heldout < WS_CLONE_MIN_EXAMPLES || p->n_heldout == 0)
        return ws_error_set(err, WS_EINVAL,
                            "%s answers someone else only %zu times in this export; at least %d "
                            "replies are needed",
                            o->persona, p->n_examples, WS_CLONE_MIN_EXAMPLES + 2);
    phase(o, "%s: %llu messages, %zu examples (%zu held out), %zu participants", o->persona,
          (unsigned long long)persona_msgs, p->n_examples, p->n_heldout, p->n_participants);
    if (cancelled(o, 0.02, "pairs", 0))
        return ws_error_set(err, WS_EAGAIN, "cancelled");
    return 0;
}

/* The style profile: profile.json and profile.txt, and their texts in the result. */
static int phase_profile(train_job *j, ws_error *err)
{
    ws_buf b = WS_BUF_INIT;
    j->prof = ws_profile_from_pairs(j->p, WS_PROFILE_ALL);
    ws_profile_to_json(j->prof, &b);
    j->res->profile_json = ws_buf_take(&b);
    ws_profile_summary(j->prof, &b);
    j->res->profile_summary = ws_buf_take(&b);
    ws_buf_free(&b);
    int rc =
        write_file(j->o.out_dir, "profile.json", j->res->profile_json, strlen(j->res->profile_json), err);
    if (!rc)
        rc = write_file(j->o.out_dir, "profile.txt", j->res->profile_summary, strlen(j->res->profile_summary),
                        err);
    return rc;
}

/* MiniLM when installed (or the directory asked for, which must load), else the hashing embedder. */
static int open_embedder(train_job *j, ws_error *err)
{
    const char *mdir = ws_embed_minilm_default_dir();
    bool use_minilm = !(j->o.embed_dir && !strcmp(j->o.embed_dir, "none"));
    if (use_minilm) {
        ws_error e2 = {0};
        if (ws_embed_minilm_new(j->o.embed_dir ? j->o.embed_dir : mdir, &j->emb, &e2) != 0) {
            if (j->o.embed_dir)
                return ws_error_set(err, e2.code, "%s", e2.msg);
            j->emb = NULL;
        }
    }
    if (!j->emb)
        j->emb = ws_embed_hash_new(512);
    return 0;
}

/* Embeds the context of every training example into the index; collects the replies and writes
 * them with their context keys into *rj (a JSON array). */
static int index_contexts(train_job *j, ws_buf *rj, ws_error *err)
{
    const ws_pairs *p = j->p;
    ws_embedder *emb = j->emb;
    float *vec = ws_xmalloc(emb->dim * sizeof *vec);
    const char **texts = ws_xcalloc(CLONE_CTX_TURNS + 1, sizeof *texts);
    ws_buf key = WS_BUF_INIT;
    int rc = 0;
    ws_buf_puts(rj, "[");
    for (size_t e = 0; e < p->n_examples && !rc; e++) {
        const ws_example *ex = &p->examples[e];
        if (ex->heldout)
            continue;
        size_t nt = 0;
        uint32_t first = ex->n_context > CLONE_CTX_TURNS ? ex->turn - CLONE_CTX_TURNS : ex->ctx_first;
        for (uint32_t t = first; t < ex->turn; t++)
            texts[nt++] = p->turns[t].text;
        ws_buf_reset(&key);
        ws__clone_context_key(texts, nt, &key);
        if ((rc = ws_embedder_embed(emb, key.data, key.len, vec, err)))
            break;
        ws_vindex_add(j->ix, (uint32_t)j->n_train, vec);
        j->replies[j->n_train] = ws_xstrdup(p->turns[ex->turn].reply);
        ws_buf_puts(rj, j->n_train ? ",\n{\"r\": " : "\n{\"r\": ");
        ws_json_put_cstr(rj, j->replies[j->n_train]);
        ws_buf_puts(rj, ", \"c\": ");
        ws_json_put_str(rj, key.data, key.len);
        ws_buf_puts(rj, "}");
        j->n_train++;
    }
    ws_buf_puts(rj, "\n]\n");
    ws_buf_free(&key);
    free(texts);
    free(vec);
    return rc;
}

/* The retrieval index over the training contexts: index.bin, replies.json and the fallback reply. */
static int phase_index(train_job *j, ws_error *err)
{
    int rc = open_embedder(j, err);
    if (rc)
        return rc;
    phase(&j->o, "indexing contexts with %s", j->emb->name);
    j->ix = ws_vindex_new(j->emb->dim, j->emb->name);
    j->replies = ws_xcalloc(j->p->n_examples + 1, sizeof *j->replies);
    ws_buf rj = WS_BUF_INIT;
    rc = index_contexts(j, &rj, err);
    if (!rc && j->n_train >= WS_VINDEX_HNSW_FROM)
        rc = ws_vindex_build_hnsw(j->ix, NULL);
    if (!rc)
        rc = write_file(j->o.out_dir, "replies.json", rj.data, rj.len, err);
    ws_buf_free(&rj);
    if (rc)
        return rc;
    char *path = ws__clone_path(j->o.out_dir, "index.bin");
    rc = ws_vindex_save(j->ix, path, err);
    free(path);
    if (rc)
        return rc;
    j->fallback = j->o.fallback_text ? ws_xstrdup(j->o.fallback_text) : typical_reply(j->replies, j->n_train);
    return 0;
}

/* A LoRA adapter on the shared, frozen base model: only the adapter trains. */
static int setup_lora(train_job *j, ws_error *err)
{
    train_run *tr = &j->tr;
    ws_base *base = j->base;
    j->model = base->model;
    ws_lora_config lc = {.rank = 8, .alpha = 16, .dropout = 0.05f, .targets = ws_lora_parse_targets("all")};
    j->lora_rank = lc.rank;
    j->lora = ws_lora_new(&j->model->cfg, &lc, j->o.seed);
    int rc = base->has_template ? ws__clone_fmt_init_chat(&tr->fmt, base, j->o.persona, err)
                                : ws__clone_fmt_init(&tr->fmt, base->tok, err);
    if (rc)
        return rc;
    tr->T = base->has_template ? CHAT_T : LORA_T;
    if (j->model->cfg.dim >= 512)
        tr->B = 2; /* a real base model: small batches so steps fit the budget */
    tr->lr = 1.5e-3f;
    tr->min_lr = 1e-4f;
    /* resume the adapter too */
    return 0;
}

/* Byte-pair merges learnt from the training period's text (held-out replies excluded) into
 * model/tokenizer.json, loaded as the run's tokenizer. */
static int train_bpe(train_job *j, int merges, ws_error *err)
{
    const ws_pairs *p = j->p;
    int64_t cut = p->n_heldout ? p->turns[p->examples[p->n_examples - p->n_heldout].turn].start : INT64_MAX;
    const char **tt = ws_xcalloc(p->n_turns + 1, sizeof *tt);
    size_t ntt = 0;
    for (size_t i = 0; i < p->n_turns; i++)
        if (p->turns[i].start < cut)
            tt[ntt++] = p->turns[i].text;
    char *path = ws__clone_path(j->o.out_dir, "model");
    char *tp = ws__clone_path(path, "tokenizer.json");
    int rc = ws_file_make_dirs(path, err);
    if (!rc)
        rc = ws__clone_write_bpe_tokenizer(tp, tt, ntt, (size_t)merges, err);
    if (!rc)
        rc = ws_tokenizer_load(tp, &j->btok, err);
    free(tt);
    free(tp);
    free(path);
    if (!rc)
        rc = ws__clone_fmt_init(&j->tr.fmt, j->btok, err);
    return rc;
}

/* A small model from scratch, on byte-pair tokens (or bytes when merges < 0). */
static int setup_scratch(train_job *j, ws_error *err)
{
    int vocab = CLONE_VOCAB;
    int merges = j->o.bpe_merges == 0 ? WS_CLONE_DEFAULT_MERGES : j->o.bpe_merges;
    if (merges > 0) {
        int rc = train_bpe(j, merges, err);
        if (rc)
            return rc;
        vocab = (int)ws_tokenizer_vocab_size(j->btok);
    }
    ws_model_config mc = {.arch = WS_ARCH_LLAMA,
                          .vocab_size = vocab,
                          .dim = SCRATCH_DIM,
                          .hidden_dim = SCRATCH_HIDDEN,
                          .n_layers = SCRATCH_LAYERS,
                          .n_heads = SCRATCH_HEADS,
                          .n_kv_heads = SCRATCH_KV,
                          .head_dim = SCRATCH_DIM / SCRATCH_HEADS,
                          .max_pos = SCRATCH_MAX_POS,
                          .norm_eps = 1e-5f,
                          .rope_theta = 10000,
                          .tied = true,
                          .bos_id = -1,
                          .eos_ids = {CLONE_TOK_END},
                          .n_eos = 1};
    j->model = ws_model_new(&mc, j->o.seed);
    if (!j->btok)
        ws__clone_fmt_init(&j->tr.fmt, NULL, err);
    j->tr.lr = 3e-3f;
    j->tr.min_lr = 3e-4f;
    return 0;
}

/* The language model: set up, trained within the budget (a reserve kept for the fidelity
 * report) and saved (adapter/ or model/). */
static int phase_model(train_job *j, ws_error *err)
{
    const ws_clone_train_opts *o = &j->o;
    j->tr = (train_run){.B = TRAIN_B, .T = TRAIN_T};
    int rc = j->base ? setup_lora(j, err) : setup_scratch(j, err);
    if (rc)
        return rc;
    j->tr.model = j->model;
    j->tr.lora = j->lora;
    int nt = ws__clone_threads();
    ws_nn_set_threads(nt >= 0                    ? nt
                      : j->model->cfg.dim >= 512 ? 0
                                                 : 1); /* small matrices: one core is fastest */
    double reserve = o->budget_s * 0.15 < 2 ? 2 : o->budget_s * 0.15;
    phase(o, "training %s (budget %.0f s)",
          o->base_model ? "a LoRA adapter on the base model" : "a small model from scratch", o->budget_s);
    if ((rc = run_training(o, &j->tr, j->p, j->deadline - reserve, j->res, err)))
        return rc;
    char *path;
    if (o->base_model) {
        path = ws__clone_path(o->out_dir, "adapter");
        rc = ws_lora_save(j->lora, path, o->base_model, err);
    } else {
        path = ws__clone_path(o->out_dir, "model");
        if (!(rc = ws_file_make_dirs(path, err)) && !(rc = ws_model_save(j->model, path, err)) && !j->btok) {
            char *tp = ws__clone_path(path, "tokenizer.json");
            rc = ws__clone_write_byte_tokenizer(tp, err);
            free(tp);
        }
    }
    free(path);
    return rc;
}

/* A first manifest (no threshold yet), then the fidelity report through the real reply path,
 * then the manifest with the threshold. */
static int phase_fidelity(train_job *j, ws_error *err)
{
    const ws_clone_train_opts *o = &j->o;
    ws_clone_train_result *res = j->res;
    manifest_info mi = {.persona = o->persona,
                        .kind = o->base_model ? "lora" : "scratch",
                        .base = o->base_model,
                        .base_id = j->base ? j->base->id : NULL,
                        .embedder = j->emb->name,
                        .fallback = j->fallback,
                        .threshold = 0,
                        .budget = o->budget_s,
                        .p = j->p,
                        .res = res,
                        .mc = &j->model->cfg,
                        .lora_rank = j->lora_rank,
                        .B = j->tr.B,
                        .T = j->tr.T,
                        .seed = o->seed,
                        .chat = j->tr.fmt.chat};
    int rc;
    if ((rc = write_manifest(o->out_dir, &mi, err)))
        return rc;
    if ((rc = ws_clone_open(o->out_dir, &j->c, err)))
        return rc;
    phase(o, "fidelity report on %zu held-out examples", j->p->n_heldout);
    double fdl = j->deadline - ws_now_s() < 5 ? ws_now_s() + 5 : j->deadline;
    if ((rc = ws__clone_fidelity_run(j->c, j->p, 80, fdl, o->seed, &j->fid, err)))
        return rc;
    if ((rc = write_file(o->out_dir, "fidelity.json", j->fid.json, strlen(j->fid.json), err)))
        return rc;
    if ((rc = write_file(o->out_dir, "fidelity.txt", j->fid.summary, strlen(j->fid.summary), err)))
        return rc;
    mi.threshold = j->fid.threshold;
    mi.with_fidelity = true;
    if ((rc = write_manifest(o->out_dir, &mi, err)))
        return rc;
    snprintf(res->model_version, sizeof res->model_version, "%s", mi.version);
    res->fidelity_json = j->fid.json;
    res->fidelity_summary = j->fid.summary;
    j->fid.json = j->fid.summary = NULL;
    return 0;
}

static void train_job_free(train_job *j)
{
    ws__clone_fidelity_clear(&j->fid);
    ws_clone_free(j->c);
    for (size_t i = 0; i < j->n_train; i++)
        free(j->replies[i]);
    free(j->replies);
    free(j->fallback);
    ws_lora_free(j->lora);
    if (!j->base)
        ws_model_free(j->model);
    ws_base_release(j->base);
    ws_tokenizer_free(j->btok);
    ws_vindex_free(j->ix);
    ws_embedder_free(j->emb);
    ws_profile_free(j->prof);
    ws_pairs_free(j->p);
}

int ws_clone_train(const ws_clone_train_opts *opts, ws_clone_train_result *res, ws_error *err)
{
    memset(res, 0, sizeof *res);
    train_job j = {.o = *opts, .res = res};
    if (j.o.budget_s <= 0)
        j.o.budget_s = WS_CLONE_DEFAULT_BUDGET_S;
    if (!j.o.seed)
        j.o.seed = 1;
    if (!j.o.export_path || !j.o.persona || !j.o.out_dir)
        return ws_error_set(err, WS_EINVAL, "train needs an export, a persona and an output directory");
    j.t_start = ws_now_s();
    j.deadline = j.t_start + j.o.budget_s;
    int rc = 0;
    /* the base model is loaded first: a missing or broken one fails before any work */
    if (j.o.base_model && (rc = ws_base_acquire(j.o.base_model, &j.base, err)))
        goto out;
    if ((rc = ws_file_make_dirs(j.o.out_dir, err)))
        goto out;
    if ((rc = phase_pairs(&j, err)) || (rc = phase_profile(&j, err)) || (rc = phase_index(&j, err)) ||
        (rc = phase_model(&j, err)) || (rc = phase_fidelity(&j, err)))
        goto out;
    res->total_s = ws_now_s() - j.t_start;
    phase(&j.o, "done in %.1f s: %s (model %s)", res->total_s, j.o.out_dir, res->model_version);
out:
    if (rc) { /* on failure the result holds nothing to free */
        free(res->profile_json);
        free(res->profile_summary);
        res->profile_json = res->profile_summary = NULL;
    }
    train_job_free(&j);
    return rc;
}
