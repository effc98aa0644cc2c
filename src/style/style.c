/* Building, saving and loading a persona's style model (see style.h). */
#include "style/style.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/json.h"
#include "core/mem.h"

void ws_style_free(ws_style *s)
{
    if (!s)
        return;
    ws_profile_free(s->profile);
    ws_retrieval_free(s->retrieval);
    ws_embedder_free(s->embedder);
    free(s);
}

int ws_style_build(const ws_pairs *p, ws_embedder *e, const ws_retrieval_options *opt, ws_style **out,
                   ws_error *err)
{
    *out = NULL;
    ws_style *s = ws_xcalloc(1, sizeof *s);
    s->embedder = e;
    /* the profile must not see the held-out replies the fidelity report compares against */
    ws_profile_builder *b = ws_profile_builder_new();
    bool *held = ws_xcalloc(p->n_turns ? p->n_turns : 1, sizeof *held);
    for (size_t i = 0; i < p->n_examples; i++)
        if (p->examples[i].heldout)
            held[p->examples[i].turn] = true;
    for (size_t i = 0; i < p->n_turns; i++) {
        const ws_turn *t = &p->turns[i];
        if (!t->persona)
            ws_profile_add_other(b, t->text, strlen(t->text));
        else if (t->reply && !held[i])
            ws_profile_add_message(b, t->reply, strlen(t->reply), t->hour, t->weekday, t->n_bubbles);
    }
    for (size_t i = 0; i < p->n_examples; i++)
        if (!p->examples[i].heldout)
            ws_profile_add_response(b, p->examples[i].response_s);
    free(held);
    s->profile = ws_profile_builder_finish(b);
    int rc = 0;
    if (p->n_examples > p->n_heldout) {
        ws_retrieval_options o = opt ? *opt : (ws_retrieval_options){0};
        o.include_heldout = false;
        rc = ws_retrieval_build(p, e, &o, &s->retrieval, err);
    }
    if (rc) {
        ws_style_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int write_file(const char *dir, const char *name, const ws_buf *b, ws_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return ws_file_write_atomic(path, b->data, b->len, err);
}

/* Reads dir/name (capped) into b, replacing what b held. */
static int read_file(const char *dir, const char *name, ws_buf *b, ws_error *err)
{
    char path[4096], *data;
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = ws_file_read(path, WS_STYLE_MAX_JSON, &data, &len, err);
    if (rc)
        return rc;
    ws_buf_free(b);
    b->data = data;
    b->len = len;
    b->cap = len + 1;
    return 0;
}

int ws_style_save(const ws_style *s, const char *dir, ws_error *err)
{
    ws_buf b = WS_BUF_INIT;
    int rc = 0;
    if (s->retrieval && (rc = ws_retrieval_save(s->retrieval, dir, err)))
        goto out;
    ws_profile_to_json(s->profile, &b);
    if ((rc = write_file(dir, "profile.json", &b, err)))
        goto out;
    /* the manifest last: a directory with style.json is complete */
    ws_buf_reset(&b);
    ws_buf_printf(&b, "{\"version\":%d,\"embedder\":", WS_STYLE_VERSION);
    ws_json_put_cstr(&b, s->embedder->name);
    ws_buf_printf(&b, ",\"dim\":%zu,\"indexed_examples\":%zu,\"hnsw\":%s}\n", s->embedder->dim,
                  s->retrieval ? ws_retrieval_count(s->retrieval) : 0,
                  s->retrieval && ws_vindex_has_hnsw(ws_retrieval_index(s->retrieval)) ? "true" : "false");
    rc = write_file(dir, "style.json", &b, err);
out:
    ws_buf_free(&b);
    return rc;
}

int ws_style_load(const char *dir, const char *minilm_dir, ws_style **out, ws_error *err)
{
    *out = NULL;
    ws_style *s = ws_xcalloc(1, sizeof *s);
    ws_buf b = WS_BUF_INIT;
    ws_json_doc *doc = NULL;
    int rc = read_file(dir, "style.json", &b, err);
    if (rc)
        goto out;
    if ((rc = ws_json_parse(b.data, b.len, &doc, err)))
        goto out;
    const ws_json *root = ws_json_root(doc);
    double version = 0, indexed = 0;
    const char *space = ws_json_get_str(root, "embedder");
    if (!ws_json_get_num(root, "version", &version) || version != WS_STYLE_VERSION || !space) {
        rc = ws_error_set(err, version > WS_STYLE_VERSION ? WS_EUNSUPPORTED : WS_EFORMAT,
                          "%s/style.json: not a version %d style model", dir, WS_STYLE_VERSION);
        goto out;
    }
    ws_json_get_num(root, "indexed_examples", &indexed);
    if ((rc = ws_embed_for_space(space, minilm_dir, &s->embedder, err)))
        goto out;
    ws_buf_reset(&b);
    if ((rc = read_file(dir, "profile.json", &b, err)) ||
        (rc = ws_profile_from_json(b.data, b.len, &s->profile, err)))
        goto out;
    if (indexed > 0) {
        if ((rc = ws_retrieval_load(dir, &s->retrieval, err)))
            goto out;
        if (strcmp(ws_vindex_space(ws_retrieval_index(s->retrieval)), space) != 0) {
            rc = ws_error_set(err, WS_EFORMAT, "%s: retrieval index space differs from style.json", dir);
            goto out;
        }
    }
out:
    ws_json_doc_free(doc);
    ws_buf_free(&b);
    if (rc) {
        ws_style_free(s);
        return rc;
    }
    *out = s;
    return 0;
}
