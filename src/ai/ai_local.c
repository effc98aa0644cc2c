/* The in-process AI implementation on top of src/clone (see ai_local.h). */
#include "ai/ai_local.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blobs/blobs.h"
#include "clone/clone.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/deadline.h"
#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/trace.h"

/* Caps on what is read back from the blobs: one artifact file, and the "current" pointer. */
#define ARTIFACT_CAP ((size_t)2 << 30)
#define POINTER_CAP ((size_t)64 << 10)

typedef struct entry {
    char *user;
    ws_clone *clone;
    int refs;           /* the cache's own reference + callers in flight */
    uint64_t bytes;     /* memory it holds: RSS growth on open, at least its files' size */
    double last_used;   /* ws_now_s() */
    struct entry *next; /* most recently used first */
} entry;

typedef struct local {
    char *root;
    ws_blobs *blobs; /* borrowed; NULL = plaintext directories in root */
    char *scratch;   /* private (0700) plaintext scratch when blobs is set */
    char *base_model;
    double budget;
    pthread_mutex_t mu;
    entry *cache;
    unsigned long seq;
    uint64_t memory_budget; /* bytes of opened clones kept; 0 = unbounded */
    uint64_t resident, loads, evictions;
    pthread_mutex_t open_mu; /* one clone opened at a time (its RSS growth is measured) */
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

static _Atomic uint64_t st_hits, st_misses;
static _Atomic int64_t st_resident;

void ws_ai_local_get_stats(ws_ai_local_stats *out)
{
    out->cache_hits = atomic_load_explicit(&st_hits, memory_order_relaxed);
    out->cache_misses = atomic_load_explicit(&st_misses, memory_order_relaxed);
    out->resident = atomic_load_explicit(&st_resident, memory_order_relaxed);
}

static void release(local *l, entry *e)
{
    pthread_mutex_lock(&l->mu);
    bool last = --e->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (last) {
        atomic_fetch_sub_explicit(&st_resident, 1, memory_order_relaxed);
        ws_clone_free(e->clone);
        free(e->user);
        free(e);
    }
}

static int open_clone(local *l, const char *user, ws_clone **out, uint64_t *bytes, ws_error *err);

/* Resident memory of the process in bytes (/proc/self/statm), 0 when unknown. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Moves e to the front (most recently used); l->mu held. */
static void touch_locked(local *l, entry *e)
{
    e->last_used = ws_now_s();
    entry **pp = &l->cache;
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = e->next;
        e->next = l->cache;
        l->cache = e;
    }
}

/* Unlinks least recently used clones (never keep) while over the budget; returns them. */
static entry *evict_locked(local *l, const entry *keep)
{
    entry *gone = NULL;
    while (l->memory_budget && l->resident > l->memory_budget) {
        entry **pp = &l->cache, **last = NULL;
        for (; *pp; pp = &(*pp)->next)
            if (*pp != keep)
                last = pp;
        if (!last)
            break;
        entry *e = *last;
        *last = e->next;
        l->resident -= e->bytes;
        l->evictions++;
        e->next = gone;
        gone = e;
    }
    return gone;
}

static entry *find_locked(local *l, const char *user)
{
    for (entry *e = l->cache; e; e = e->next)
        if (!strcmp(e->user, user))
            return e;
    return NULL;
}

/* The user's clone with a reference taken (release() it), opened on first use; opening one
 * may evict the least recently used others to stay within the memory budget. */
static int acquire(local *l, const char *user, entry **out, ws_error *err)
{
    pthread_mutex_lock(&l->mu);
    entry *e = find_locked(l, user);
    if (e) {
        e->refs++;
        touch_locked(l, e);
        *out = e;
        pthread_mutex_unlock(&l->mu);
        atomic_fetch_add_explicit(&st_hits, 1, memory_order_relaxed);
        return 0;
    }
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_lock(&l->open_mu);
    pthread_mutex_lock(&l->mu);
    e = find_locked(l, user); /* another thread opened it meanwhile */
    if (e) {
        e->refs++;
        touch_locked(l, e);
        *out = e;
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_unlock(&l->open_mu);
        atomic_fetch_add_explicit(&st_hits, 1, memory_order_relaxed);
        return 0;
    }
    pthread_mutex_unlock(&l->mu);
    atomic_fetch_add_explicit(&st_misses, 1, memory_order_relaxed);
    ws_clone *c = NULL;
    uint64_t before = rss_bytes(), files = 0;
    ws_span *sp = ws_span_begin("model load", WS_SPAN_INTERNAL, NULL);
    int rc = open_clone(l, user, &c, &files, err);
    if (rc)
        ws_span_error(sp, "model load failed");
    ws_span_end(sp);
    uint64_t after = rss_bytes();
    if (rc) {
        pthread_mutex_unlock(&l->open_mu);
        return rc == WS_ENOENT ? ws_error_set(err, WS_ENOENT, "no trained model for this user") : rc;
    }
    e = ws_xcalloc(1, sizeof *e);
    e->user = ws_xstrdup(user);
    e->clone = c;
    e->refs = 2;
    /* what opening it added to the resident set, at least the size of its files (memory freed
     * by an evicted model is reused, so the growth alone may read low) */
    e->bytes = after > before ? after - before : 0;
    e->bytes = e->bytes > files ? e->bytes : files;
    e->bytes = e->bytes > (64u << 10) ? e->bytes : 64u << 10;
    e->last_used = ws_now_s();
    pthread_mutex_lock(&l->mu);
    e->next = l->cache;
    l->cache = e;
    l->resident += e->bytes;
    l->loads++;
    entry *gone = evict_locked(l, e);
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->open_mu);
    atomic_fetch_add_explicit(&st_resident, 1, memory_order_relaxed);
    while (gone) {
        entry *n = gone->next;
        release(l, gone);
        gone = n;
    }
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
            l->resident -= gone->bytes;
            break;
        }
    pthread_mutex_unlock(&l->mu);
    if (gone)
        release(l, gone);
}

/* Removes a directory tree; -1 when something could not be deleted. */
static int rm_tree(const char *path)
{
    return ws_file_remove_tree(path, NULL, NULL) ? -1 : 0;
}

/* ---- trained clones kept as encrypted blobs ----
 * Layout: users/<id>/models/<version>/<file> for manifest.json and every file it lists, then
 * users/<id>/models/current = {"version":…,"files":[…]} written last, so a reader never sees
 * half a model. Opening one decrypts its files into a fresh private directory under scratch,
 * loads the clone (weights are mmap'd, so they stay readable once unlinked) and deletes the
 * directory at once: no plaintext copy outlives the open. */

static bool key_segment_ok(const char *s)
{
    char key[WS_BLOB_KEY_MAX + 1];
    snprintf(key, sizeof key, "x/%s", s);
    return *s && !strchr(s, '/') && ws_blobs_check_key(key, NULL) == 0;
}

static char *models_key(const char *user, const char *version, const char *file)
{
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, "users/%s/models/", user);
    if (version)
        ws_buf_printf(&b, "%s/%s", version, file ? file : "");
    else if (file)
        ws_buf_append(&b, file, strlen(file));
    return ws_buf_take(&b);
}

/* The version and file list of users/<id>/models/current. WS_ENOENT when there is none. */
static int read_pointer(local *l, const char *user, ws_json_doc **doc, const char **version,
                        const ws_json **files, ws_error *err)
{
    *doc = NULL;
    char *key = models_key(user, NULL, "current");
    ws_buf b = WS_BUF_INIT;
    int rc = ws_blobs_get(l->blobs, key, POINTER_CAP, &b, err);
    if (rc)
        goto out;
    if (ws_json_parse(b.data ? b.data : "", b.len, doc, NULL) != 0 ||
        !(*version = ws_json_get_str(ws_json_root(*doc), "version")) || !key_segment_ok(*version) ||
        !(*files = ws_json_get(ws_json_root(*doc), "files")) || (*files)->type != WS_JSON_ARRAY) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: corrupted model pointer", key);
        ws_json_doc_free(*doc);
        *doc = NULL;
    }
out:
    free(key);
    ws_buf_free(&b);
    return rc;
}

/* Stores the clone in dir as the user's current model; removes the version it replaces. */
static int publish(local *l, const char *user, const char *dir, ws_error *err)
{
    char *data = NULL, *key = NULL, *cur = NULL;
    ws_json_doc *doc = NULL, *old = NULL;
    ws_buf ptr = WS_BUF_INIT, mb = WS_BUF_INIT;
    size_t len = 0;
    ws_buf_printf(&mb, "%s/manifest.json", dir);
    char *mpath = ws_buf_take(&mb);
    int rc = ws_file_read(mpath, POINTER_CAP * 16, &data, &len, err);
    if (rc)
        goto out;
    if (ws_json_parse(data, len, &doc, NULL) != 0) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: corrupted manifest", mpath);
        goto out;
    }
    const ws_json *m = ws_json_root(doc), *files = ws_json_get(m, "files");
    const char *version = ws_json_get_str(m, "model_version");
    if (!version || !key_segment_ok(version) || !files || files->type != WS_JSON_OBJECT) {
        rc = ws_error_set(err, WS_EFORMAT, "%s: no usable model_version or file list", mpath);
        goto out;
    }
    const char *old_version = NULL;
    const ws_json *old_files = NULL;
    int orc = read_pointer(l, user, &old, &old_version, &old_files, NULL);
    ws_buf_printf(&ptr, "{\"version\":");
    ws_json_put_cstr(&ptr, version);
    ws_buf_printf(&ptr, ",\"files\":[\"manifest.json\"");
    for (size_t i = 0; i <= files->len; i++) {
        const char *name = i < files->len ? files->keys[i] : "manifest.json";
        free(key);
        key = models_key(user, version, name);
        if ((rc = ws_blobs_check_key(key, err)))
            goto out;
        char *fpath = NULL, *fdata = NULL;
        size_t flen = 0;
        ws_buf fb = WS_BUF_INIT;
        ws_buf_printf(&fb, "%s/%s", dir, name);
        fpath = ws_buf_take(&fb);
        rc = ws_file_read(fpath, ARTIFACT_CAP, &fdata, &flen, err);
        if (!rc)
            rc = ws_blobs_put(l->blobs, key, fdata, flen, err);
        free(fpath);
        free(fdata);
        if (rc)
            goto out;
        if (i < files->len) {
            ws_buf_putc(&ptr, ',');
            ws_json_put_cstr(&ptr, name);
        }
    }
    ws_buf_printf(&ptr, "]}");
    cur = models_key(user, NULL, "current");
    if ((rc = ws_blobs_put(l->blobs, cur, ptr.data, ptr.len, err)))
        goto out;
    if (orc == 0 && strcmp(old_version, version) != 0) {
        free(key);
        key = models_key(user, old_version, NULL);
        ws_blobs_delete_prefix(l->blobs, key, NULL, NULL); /* a leftover only wastes space */
    }
out:
    ws_json_doc_free(doc);
    ws_json_doc_free(old);
    ws_buf_free(&ptr);
    free(mpath);
    free(data);
    free(key);
    free(cur);
    return rc;
}

/* Decrypts the user's current clone into a private directory, opens it, deletes the files. */
static int open_from_blobs(local *l, const char *user, ws_clone **out, uint64_t *bytes, ws_error *err)
{
    ws_json_doc *doc = NULL;
    const char *version = NULL;
    const ws_json *files = NULL;
    char *dir = NULL;
    int rc = read_pointer(l, user, &doc, &version, &files, err);
    if (rc)
        return rc;
    ws_buf db = WS_BUF_INIT;
    ws_buf_printf(&db, "%s/open-XXXXXX", l->scratch);
    dir = ws_buf_take(&db);
    if (!mkdtemp(dir)) {
        rc = ws_error_set(err, WS_EIO, "cannot create a directory in %s: %s", l->scratch, strerror(errno));
        free(dir);
        dir = NULL;
        goto out;
    }
    for (size_t i = 0; i < files->len; i++) {
        const ws_json *f = &files->items[i];
        if (f->type != WS_JSON_STRING || strstr(f->str, "..") || f->str[0] == '/') {
            rc = ws_error_set(err, WS_EFORMAT, "model pointer of %s: bad file name", user);
            goto out;
        }
        char *key = models_key(user, version, f->str), *path = NULL;
        ws_buf pb = WS_BUF_INIT;
        ws_buf_printf(&pb, "%s/%s", dir, f->str);
        path = ws_buf_take(&pb);
        ws_buf data = WS_BUF_INIT;
        rc = ws_file_make_parents(path, strlen(dir), err);
        if (!rc)
            rc = ws_blobs_get(l->blobs, key, ARTIFACT_CAP, &data, err);
        if (!rc)
            rc = ws_file_write_atomic(path, data.data ? data.data : "", data.len, err);
        *bytes += data.len;
        ws_buf_free(&data);
        free(key);
        free(path);
        if (rc)
            goto out;
    }
    rc = ws_clone_open(dir, out, err);
out:
    if (dir)
        rm_tree(dir);
    free(dir);
    ws_json_doc_free(doc);
    return rc;
}

static _Thread_local uint64_t tree_bytes; /* nftw has no user argument */

static int add_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (type == FTW_F)
        tree_bytes += (uint64_t)st->st_size;
    return 0;
}

/* Opens the user's clone: from the blobs when they are in use (a model left as a plaintext
 * directory by an older version is moved into them first), else from root/<id>. *bytes gets
 * the size of its files. */
static int open_clone(local *l, const char *user, ws_clone **out, uint64_t *bytes, ws_error *err)
{
    char *dir = user_dir(l, user, NULL);
    int rc;
    *bytes = 0;
    if (!l->blobs) {
        tree_bytes = 0;
        nftw(dir, add_file, 16, FTW_PHYS);
        *bytes = tree_bytes;
        rc = ws_clone_open(dir, out, err);
        goto out;
    }
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        if ((rc = publish(l, user, dir, err)))
            goto out;
        rm_tree(dir);
    }
    /* a retraining may delete the version between reading the pointer and its files: retry */
    for (int attempt = 0; attempt < 3; attempt++)
        if ((*bytes = 0, rc = open_from_blobs(l, user, out, bytes, err)) != WS_ENOENT)
            break;
out:
    free(dir);
    return rc;
}

/* A reply, streamed to on_piece when it is set (ws_clone_reply_stream), else ranked among
 * candidates (ws_clone_reply). */
static int l_generate_stream(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                             size_t n_context, const volatile int *cancel, ws_ai_piece_fn on_piece, void *arg,
                             ws_ai_reply *out, ws_error *err)
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
    ws_clone_reply_opts ro = {.cancel = cancel};
    double deadline = ws_deadline_get(); /* a request's own budget (X-Request-Timeout-Ms) */
    if (deadline > 0) {
        double left_ms = (deadline - ws_now_s()) * 1000;
        ro.budget_ms = left_ms > 1 ? left_ms : 1;
    }
    rc = on_piece ? ws_clone_reply_stream(e->clone, message, ctx, n_context, &ro, on_piece, arg, &a, err)
                  : ws_clone_reply(e->clone, message, ctx, n_context, &ro, &a, err);
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

static int generate(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                    size_t n_context, const volatile int *cancel, ws_ai_reply *out, ws_error *err)
{
    return l_generate_stream(ai, user_id, message, context, n_context, cancel, NULL, NULL, out, err);
}

static int l_generate(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                      size_t n_context, ws_ai_reply *out, ws_error *err)
{
    return generate(ai, user_id, message, context, n_context, NULL, out, err);
}

static int l_status(ws_ai *ai, ws_ai_status *out, ws_error *err)
{
    local *l = ai->impl;
    memset(out, 0, sizeof *out);
    double now = ws_now_s();
    pthread_mutex_lock(&l->mu);
    size_t n = 0;
    for (entry *e = l->cache; e; e = e->next)
        n++;
    out->resident = ws_xcalloc(n + 1, sizeof *out->resident);
    for (entry *e = l->cache; e; e = e->next) {
        ws_ai_resident *r = &out->resident[out->n_resident++];
        r->user_id = ws_xstrdup(e->user);
        r->bytes = e->bytes;
        r->idle_s = now - e->last_used;
    }
    out->memory_budget = l->memory_budget;
    out->resident_bytes = l->resident;
    out->loads = l->loads;
    out->evictions = l->evictions;
    pthread_mutex_unlock(&l->mu);
    out->base_model = l->base_model ? ws_xstrdup(l->base_model) : NULL;
    return 0;
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
    /* a fixed work directory per user, so an interrupted job resumes from its checkpoint; with
     * blobs it lies in the private scratch directory and goes once the model is stored */
    char *work = NULL, *dir = user_dir(l, req->user_id, NULL);
    if (req->work_dir) {
        work = ws_xstrdup(req->work_dir);
    } else if (l->blobs) {
        ws_buf wb = WS_BUF_INIT;
        ws_buf_printf(&wb, "%s/train-%s", l->scratch, req->user_id);
        work = ws_buf_take(&wb);
    } else {
        work = user_dir(l, req->user_id, ".training");
    }
    char *old = NULL;
    progress_bridge pb = {progress, progress_arg};
    ws_clone_train_opts o = {.export_path = req->export_path,
                             .persona = req->persona,
                             .out_dir = work,
                             .base_model = req->base_model ? req->base_model : l->base_model,
                             .budget_s = req->budget_s > 0 ? req->budget_s : l->budget,
                             .quiet = true,
                             .checkpoint_every_s = req->checkpoint_every_s,
                             .progress = bridge,
                             .progress_arg = &pb};
    ws_clone_train_result res;
    int rc = ws_clone_train(&o, &res, err);
    if (rc)
        goto out;
    if (l->blobs) {
        rc = publish(l, req->user_id, work, err);
        if (!rc) {
            rm_tree(work);
            rm_tree(dir); /* a plaintext model of an older version */
        }
        goto installed;
    }
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
installed:
    if (rc) {
        ws_clone_train_result_clear(&res);
        goto out;
    }
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
    if (rc)
        return ws_error_set(err, WS_EIO, "could not delete every file of the user");
    if (l->blobs) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_printf(&b, "%s/train-%s", l->scratch, user_id);
        rm_tree(b.data);
        ws_buf_free(&b);
        char *prefix = models_key(user_id, NULL, NULL);
        rc = ws_blobs_delete_prefix(l->blobs, prefix, NULL, err);
        free(prefix);
    }
    return rc;
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
    pthread_mutex_destroy(&l->open_mu);
    free(l->root);
    free(l->scratch);
    free(l->base_model);
    free(l);
    free(ai);
}

static const ws_ai_ops local_ops = {l_generate, l_train,  l_reload, l_style_profile,  l_forget,
                                    l_destroy,  generate, l_status, l_generate_stream};

int ws_ai_local_new(const char *models_root, const ws_ai_local_opts *opts, ws_ai **out, ws_error *err)
{
    *out = NULL;
    if (mkdir(models_root, 0755) != 0 && errno != EEXIST)
        return ws_error_set(err, WS_EIO, "cannot create %s: %s", models_root, strerror(errno));
    local *l = ws_xcalloc(1, sizeof *l);
    l->root = ws_xstrdup(models_root);
    if (opts && opts->blobs) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_printf(&b, "%s/.scratch", models_root);
        if (mkdir(b.data, 0700) != 0 && errno != EEXIST) {
            int rc = ws_error_set(err, WS_EIO, "cannot create %s: %s", b.data, strerror(errno));
            ws_buf_free(&b);
            free(l->root);
            free(l);
            return rc;
        }
        chmod(b.data, 0700);
        l->scratch = ws_buf_take(&b);
        l->blobs = opts->blobs;
    }
    l->base_model = opts && opts->base_model ? ws_xstrdup(opts->base_model) : NULL;
    l->budget = opts && opts->default_budget_s > 0 ? opts->default_budget_s : 0;
    l->memory_budget = opts ? opts->memory_budget : 0;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->open_mu, NULL);
    ws_ai *ai = ws_xcalloc(1, sizeof *ai);
    ai->ops = &local_ops;
    ai->impl = l;
    *out = ai;
    return 0;
}
