/* Building, persisting and querying the per-persona retrieval index (see retrieval.h). */
#include "style/retrieval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fanout.h"
#include "core/json.h"
#include "core/mem.h"

struct ws_retrieval {
    ws_vindex *ix;
    char **context, **reply; /* per row */
    size_t n;
};

void ws_retrieval_key(const char *const *turns, size_t n, ws_buf *out)
{
    size_t first = n > WS_RETRIEVAL_KEY_TURNS ? n - WS_RETRIEVAL_KEY_TURNS : 0;
    for (size_t i = first; i < n; i++) {
        if (i > first)
            ws_buf_putc(out, '\n');
        ws_buf_puts(out, turns[i] ? turns[i] : "");
    }
    if (!out->data)
        ws_buf_puts(out, "");
}

void ws_retrieval_free(ws_retrieval *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->context[i]);
        free(r->reply[i]);
    }
    free(r->context);
    free(r->reply);
    ws_vindex_free(r->ix);
    free(r);
}

size_t ws_retrieval_count(const ws_retrieval *r)
{
    return r->n;
}
const ws_vindex *ws_retrieval_index(const ws_retrieval *r)
{
    return r->ix;
}

typedef struct job {
    ws_embedder *e;
    char **keys;
    float *vecs;
    size_t from, to, dim;
    int rc;
    ws_error err;
} job;

#define EMBED_BATCH 32

static void embed_range(void *arg)
{
    job *j = arg;
    size_t lens[EMBED_BATCH];
    for (size_t i = j->from; i < j->to && !j->rc; i += EMBED_BATCH) {
        size_t n = j->to - i < EMBED_BATCH ? j->to - i : EMBED_BATCH;
        for (size_t k = 0; k < n; k++)
            lens[k] = strlen(j->keys[i + k]);
        j->rc = ws_embedder_embed_batch(j->e, (const char *const *)j->keys + i, lens, n, j->vecs + i * j->dim,
                                        &j->err);
    }
}

int ws_retrieval_build(const ws_pairs *p, ws_embedder *e, const ws_retrieval_options *opt, ws_retrieval **out,
                       ws_error *err)
{
    *out = NULL;
    ws_retrieval_options o = opt ? *opt : (ws_retrieval_options){0};
    if (!o.hnsw_min)
        o.hnsw_min = WS_VINDEX_HNSW_FROM;
    if (o.threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = c > 0 ? (int)(c > 16 ? 16 : c) : 1;
    }
    ws_retrieval *r = ws_xcalloc(1, sizeof *r);
    r->ix = ws_vindex_new(e->dim, e->name);
    size_t cap = p->n_examples ? p->n_examples : 1;
    r->context = ws_xcalloc(cap, sizeof *r->context);
    r->reply = ws_xcalloc(cap, sizeof *r->reply);
    const char **texts = ws_xmalloc((WS_RETRIEVAL_KEY_TURNS + 1) * sizeof *texts);
    ws_buf key = WS_BUF_INIT;
    for (size_t i = 0; i < p->n_examples; i++) {
        const ws_example *ex = &p->examples[i];
        if (ex->heldout && !o.include_heldout)
            continue;
        size_t nt = 0;
        uint32_t first =
            ex->turn - (ex->n_context < WS_RETRIEVAL_KEY_TURNS ? ex->n_context : WS_RETRIEVAL_KEY_TURNS);
        for (uint32_t t = first; t < ex->turn; t++)
            texts[nt++] = p->turns[t].text;
        ws_buf_reset(&key);
        ws_retrieval_key(texts, nt, &key);
        r->context[r->n] = ws_xstrdup(key.data);
        r->reply[r->n] = ws_xstrdup(p->turns[ex->turn].reply);
        r->n++;
    }
    free(texts);
    ws_buf_free(&key);
    int rc = 0;
    float *vecs = ws_xmalloc((r->n ? r->n : 1) * e->dim * sizeof *vecs);
    int nthreads = r->n < 64 ? 1 : o.threads;
    job *jobs = ws_xcalloc((size_t)nthreads, sizeof *jobs);
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (job){e,
                        r->context,
                        vecs,
                        r->n * (size_t)t / (size_t)nthreads,
                        r->n * (size_t)(t + 1) / (size_t)nthreads,
                        e->dim,
                        0,
                        {0}};
    }
    ws_fanout((size_t)nthreads, embed_range, jobs, sizeof *jobs);
    for (int t = 0; t < nthreads; t++) {
        if (jobs[t].rc && !rc) {
            rc = jobs[t].rc;
            if (err)
                *err = jobs[t].err;
        }
    }
    free(jobs);
    for (size_t i = 0; !rc && i < r->n; i++)
        rc = ws_vindex_add(r->ix, (uint32_t)i, vecs + i * e->dim);
    free(vecs);
    if (!rc && r->n >= o.hnsw_min)
        rc = ws_vindex_build_hnsw(r->ix, &o.hnsw);
    if (rc) {
        ws_retrieval_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static void join_path(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

int ws_retrieval_save(const ws_retrieval *r, const char *dir, ws_error *err)
{
    char path[4096], tmp[4200];
    join_path(path, sizeof path, dir, "retrieval.idx");
    int rc = ws_vindex_save(r->ix, path, err);
    if (rc)
        return rc;
    join_path(path, sizeof path, dir, "retrieval.jsonl");
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return ws_error_set(err, WS_EIO, "%s: %s", tmp, strerror(errno));
    ws_buf line = WS_BUF_INIT;
    for (size_t i = 0; i < r->n && !rc; i++) {
        ws_buf_reset(&line);
        ws_buf_puts(&line, "{\"context\":");
        ws_json_put_cstr(&line, r->context[i]);
        ws_buf_puts(&line, ",\"reply\":");
        ws_json_put_cstr(&line, r->reply[i]);
        ws_buf_puts(&line, "}\n");
        if (fwrite(line.data, 1, line.len, f) != line.len)
            rc = ws_error_set(err, WS_EIO, "%s: write failed", tmp);
    }
    ws_buf_free(&line);
    if (fclose(f) != 0 && !rc)
        rc = ws_error_set(err, WS_EIO, "%s: write failed", tmp);
    if (!rc && rename(tmp, path) != 0)
        rc = ws_error_set(err, WS_EIO, "%s: %s", path, strerror(errno));
    if (rc)
        remove(tmp);
    return rc;
}

int ws_retrieval_load(const char *dir, ws_retrieval **out, ws_error *err)
{
    *out = NULL;
    char path[4096];
    ws_retrieval *r = ws_xcalloc(1, sizeof *r);
    join_path(path, sizeof path, dir, "retrieval.idx");
    int rc = ws_vindex_load(path, &r->ix, err);
    FILE *f = NULL;
    char *lineb = NULL;
    size_t lcap = 0;
    if (rc)
        goto out;
    size_t count = ws_vindex_count(r->ix);
    r->context = ws_xcalloc(count ? count : 1, sizeof *r->context);
    r->reply = ws_xcalloc(count ? count : 1, sizeof *r->reply);
    join_path(path, sizeof path, dir, "retrieval.jsonl");
    f = fopen(path, "rb");
    if (!f) {
        rc = ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    uint64_t total = 0;
    ssize_t got;
    while (r->n < count && (got = getline(&lineb, &lcap, f)) > 0) {
        total += (uint64_t)got;
        if (total > WS_RETRIEVAL_MAX_JSONL) {
            rc = ws_error_set(err, WS_ETOOBIG, "%s: above the size cap", path);
            goto out;
        }
        ws_json_doc *doc = NULL;
        rc = ws_json_parse(lineb, (size_t)got, &doc, err);
        if (rc) {
            ws_error_set(err, rc, "%s line %zu: bad JSON", path, r->n + 1);
            goto out;
        }
        const ws_json *root = ws_json_root(doc);
        const char *c = ws_json_get_str(root, "context"), *rp = ws_json_get_str(root, "reply");
        if (!c || !rp) {
            ws_json_doc_free(doc);
            rc =
                ws_error_set(err, WS_EFORMAT, "%s line %zu: needs \"context\" and \"reply\"", path, r->n + 1);
            goto out;
        }
        r->context[r->n] = ws_xstrdup(c);
        r->reply[r->n] = ws_xstrdup(rp);
        r->n++;
        ws_json_doc_free(doc);
    }
    if (r->n != count)
        rc = ws_error_set(err, WS_EFORMAT, "%s: %zu examples for an index of %zu", path, r->n, count);
    for (size_t i = 0; !rc && i < count; i++)
        if (ws_vindex_id(r->ix, i) >= count)
            rc = ws_error_set(err, WS_EFORMAT, "%s: index row %zu names a missing example", dir, i);
out:
    free(lineb);
    if (f)
        fclose(f);
    if (rc) {
        ws_retrieval_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int ws_retrieval_query(const ws_retrieval *r, ws_embedder *e, const char *key, size_t len, size_t k,
                       ws_retrieval_hit *hits, size_t *n_hits, ws_error *err)
{
    *n_hits = 0;
    if (strcmp(e->name, ws_vindex_space(r->ix)) != 0 || e->dim != ws_vindex_dim(r->ix))
        return ws_error_set(err, WS_EINVAL, "retrieval index was built with '%s', query embedder is '%s'",
                            ws_vindex_space(r->ix), e->name);
    float *q = ws_xmalloc(e->dim * sizeof *q);
    ws_vhit *vh = ws_xmalloc((k ? k : 1) * sizeof *vh);
    int rc = ws_embedder_embed(e, key, len, q, err);
    if (!rc) {
        size_t n = ws_vindex_search(r->ix, q, k, k * 4 < 64 ? 64 : k * 4, vh);
        for (size_t i = 0; i < n; i++) {
            uint32_t row = vh[i].id;
            hits[i] = (ws_retrieval_hit){row, vh[i].score, r->context[row], r->reply[row]};
        }
        *n_hits = n;
    }
    free(q);
    free(vh);
    return rc;
}
