/* The in-process AI implementation on top of src/clone (see ai_local.h). */
#include "ai/ai_local.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clone/clone.h"
#include "core/buf.h"
#include "core/mem.h"

typedef struct entry {
    char *user;
    ws_clone *clone;
    int refs;                  /* the cache's own reference + callers in flight */
    struct entry *next;
} entry;

typedef struct local {
    char *root;
    char *base_model;
    double budget;
    pthread_mutex_t mu;
    entry *cache;
    unsigned long seq;
} local;

/* User ids become directory names: letters, digits, '-', '_' and '.', not starting with '.'. */
static bool id_ok(const char *id)
{
    if (!id || !*id || *id == '.' || strlen(id) > 128)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return false;
    return true;
}

static char *user_dir(const local *l, const char *user, const char *suffix)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, "%s/%s%s", l->root, user, suffix ? suffix : "");
    return ws_buf_take(&b);
}

static void release(local *l, entry *e)
{
    pthread_mutex_lock(&l->mu);
    bool last = --e->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (last) {
        ws_clone_free(e->clone);
        free(e->user);
        free(e);
    }
}

/* The user's clone with a reference taken (release() it), opened on first use. */
static int acquire(local *l, const char *user, entry **out, ws_error *err)
{
    pthread_mutex_lock(&l->mu);
    for (entry *e = l->cache; e; e = e->next)
        if (!strcmp(e->user, user)) {
            e->refs++;
            *out = e;
            pthread_mutex_unlock(&l->mu);
            return 0;
        }
    pthread_mutex_unlock(&l->mu);
    char *dir = user_dir(l, user, NULL);
    ws_clone *c = NULL;
    int rc = ws_clone_open(dir, &c, err);
    free(dir);
    if (rc == WS_ENOENT)
        return ws_error_set(err, WS_ENOENT, "no trained model for this user");
    if (rc)
        return rc;
    entry *e = ws_xcalloc(1, sizeof *e);
    e->user = ws_xstrdup(user);
    e->clone = c;
    e->refs = 2;
    pthread_mutex_lock(&l->mu);
    for (entry *o = l->cache; o; o = o->next)
        if (!strcmp(o->user, user)) {   /* another thread opened it meanwhile */
            o->refs++;
            pthread_mutex_unlock(&l->mu);
            ws_clone_free(c);
            free(e->user);
            free(e);
            *out = o;
            return 0;
        }
    e->next = l->cache;
    l->cache = e;
    pthread_mutex_unlock(&l->mu);
    *out = e;
    return 0;
}

static void drop(local *l, const char *user)
{
    pthread_mutex_lock(&l->mu);
    entry **pp = &l->cache, *gone = NULL;
    for (; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->user, user)) {
            gone = *pp;
            *pp = gone->next;
            break;
        }
    pthread_mutex_unlock(&l->mu);
    if (gone)
        release(l, gone);
}

static int rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -1;
        struct dirent *de;
        int rc = 0;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            ws_buf b = WS_BUF_INIT;
            ws_buf_printf(&b, "%s/%s", path, de->d_name);
            rc |= rm_tree(b.data);
            ws_buf_free(&b);
        }
        closedir(d);
        return rc | rmdir(path);
    }
    return unlink(path);
}

static int l_generate(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                      size_t n_context, ws_ai_reply *out, ws_error *err)
{
    local *l = ai->impl;
    memset(out, 0, sizeof *out);
    if (!id_ok(user_id))
        return ws_error_set(err, WS_EINVAL, "bad user id");
    entry *e = NULL;
    int rc = acquire(l, user_id, &e, err);
    if (rc)
        return rc;
    ws_clone_turn *ctx = ws_xcalloc(n_context + 1, sizeof *ctx);
    for (size_t i = 0; i < n_context; i++) {
        ctx[i].author = context[i].author;
        ctx[i].text = context[i].text;
    }
    ws_clone_answer a;
    rc = ws_clone_reply(e->clone, message, ctx, n_context, NULL, &a, err);
    free(ctx);
    if (!rc) {
        out->reply = a.reply;
        a.reply = NULL;
        out->confidence = a.confidence;
        out->fallback = a.fallback;
        out->model_version = ws_xstrdup(ws_clone_model_version(e->clone));
        out->processing_ms = a.processing_ms;
        ws_clone_answer_clear(&a);
    }
    release(l, e);
    return rc;
}

typedef struct progress_bridge {
    ws_ai_progress_fn fn;
    void *arg;
} progress_bridge;

static int bridge(void *arg, double fraction, const char *phase, uint64_t samples)
{
    progress_bridge *b = arg;
    return b->fn ? b->fn(b->arg, fraction, phase, samples) : 0;
}

static int l_train(ws_ai *ai, const ws_ai_train_request *req, ws_ai_progress_fn progress, void *progress_arg,
                   ws_ai_train_result *out, ws_error *err)
{
    local *l = ai->impl;
    memset(out, 0, sizeof *out);
    if (!id_ok(req->user_id))
        return ws_error_set(err, WS_EINVAL, "bad user id");
    if (!req->persona || !*req->persona)
        return ws_error_set(err, WS_EINVAL, "the request names no persona");
    /* a fixed work directory per user, so an interrupted job resumes from its checkpoint */
    char *work = user_dir(l, req->user_id, ".training"), *dir = user_dir(l, req->user_id, NULL);
    char *old = NULL;
    progress_bridge pb = {progress, progress_arg};
    ws_clone_train_opts o = {.export_path = req->export_path, .persona = req->persona, .out_dir = work,
                             .base_model = req->base_model ? req->base_model : l->base_model,
                             .budget_s = req->budget_s > 0 ? req->budget_s : l->budget, .quiet = true,
                             .progress = bridge, .progress_arg = &pb};
    ws_clone_train_result res;
    int rc = ws_clone_train(&o, &res, err);
    if (rc)
        goto out;
    /* swap the new directory in: old -> .old-N, work -> dir, remove the old one */
    pthread_mutex_lock(&l->mu);
    unsigned long n = ++l->seq;
    pthread_mutex_unlock(&l->mu);
    ws_buf ob = WS_BUF_INIT;
    ws_buf_printf(&ob, ".old-%ld-%lu", (long)time(NULL), n);
    old = user_dir(l, req->user_id, ob.data);
    ws_buf_free(&ob);
    bool had = rename(dir, old) == 0;
    if (rename(work, dir) != 0) {
        rc = ws_error_set(err, WS_EIO, "cannot install the new model: %s", strerror(errno));
        if (had)
            rename(old, dir);
        ws_clone_train_result_clear(&res);
        goto out;
    }
    if (had)
        rm_tree(old);
    drop(l, req->user_id);
    out->model_version = ws_xstrdup(res.model_version);
    out->samples_processed = res.n_examples;
    out->metrics_json = res.fidelity_json;
    res.fidelity_json = NULL;
    ws_clone_train_result_clear(&res);
out:
    free(work);
    free(dir);
    free(old);
    return rc;
}

static int l_reload(ws_ai *ai, const char *user_id, ws_error *err)
{
    if (!id_ok(user_id))
        return ws_error_set(err, WS_EINVAL, "bad user id");
    drop(ai->impl, user_id);
    return 0;
}

static int l_style_profile(ws_ai *ai, const char *user_id, char **json_out, ws_error *err)
{
    *json_out = NULL;
    if (!id_ok(user_id))
        return ws_error_set(err, WS_EINVAL, "bad user id");
    local *l = ai->impl;
    entry *e = NULL;
    int rc = acquire(l, user_id, &e, err);
    if (rc)
        return rc;
    *json_out = ws_xstrdup(ws_clone_profile_json(e->clone));
    release(l, e);
    return 0;
}

static int l_forget(ws_ai *ai, const char *user_id, ws_error *err)
{
    if (!id_ok(user_id))
        return ws_error_set(err, WS_EINVAL, "bad user id");
    local *l = ai->impl;
    drop(l, user_id);
    char *dir = user_dir(l, user_id, NULL), *work = user_dir(l, user_id, ".training");
    int rc = rm_tree(dir) | rm_tree(work);
    free(dir);
    free(work);
    return rc ? ws_error_set(err, WS_EIO, "could not delete every file of the user") : 0;
}

static void l_destroy(ws_ai *ai)
{
    local *l = ai->impl;
    while (l->cache) {
        entry *e = l->cache;
        l->cache = e->next;
        release(l, e);
    }
    pthread_mutex_destroy(&l->mu);
    free(l->root);
    free(l->base_model);
    free(l);
    free(ai);
}

static const ws_ai_ops local_ops = {l_generate, l_train, l_reload, l_style_profile, l_forget, l_destroy};

int ws_ai_local_new(const char *models_root, const ws_ai_local_opts *opts, ws_ai **out, ws_error *err)
{
    *out = NULL;
    if (mkdir(models_root, 0755) != 0 && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "cannot create %s: %s", models_root, strerror(errno));
    local *l = ws_xcalloc(1, sizeof *l);
    l->root = ws_xstrdup(models_root);
    l->base_model = opts && opts->base_model ? ws_xstrdup(opts->base_model) : NULL;
    l->budget = opts && opts->default_budget_s > 0 ? opts->default_budget_s : 0;
    pthread_mutex_init(&l->mu, NULL);
    ws_ai *ai = ws_xcalloc(1, sizeof *ai);
    ai->ops = &local_ops;
    ai->impl = l;
    *out = ai;
    return 0;
}
