/* The all-MiniLM-L6-v2 embedder: our BERT forward (src/nn/bert.h) behind ws_embedder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "nn/bert.h"
#include "style/embed.h"

static char minilm_dir[4096]; /* ws_embed_minilm_set_default_dir; "" = models/minilm */

void ws_embed_minilm_set_default_dir(const char *dir)
{
    snprintf(minilm_dir, sizeof minilm_dir, "%s", dir ? dir : "");
}

const char *ws_embed_minilm_default_dir(void)
{
    return minilm_dir[0] ? minilm_dir : "models/minilm";
}

static int minilm_embed(ws_embedder *e, const char *text, size_t len, float *out, ws_error *err)
{
    return ws_bert_embed(e->impl, text, len, out, err);
}

static int minilm_embed_batch(ws_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                              float *out, ws_error *err)
{
    return ws_bert_embed_batch(e->impl, texts, lens, n, out, err);
}

static void minilm_destroy(ws_embedder *e)
{
    ws_bert_free(e->impl);
    free(e);
}

static const ws_embedder_ops minilm_ops = {minilm_embed, minilm_destroy, minilm_embed_batch};

int ws_embed_minilm_new(const char *model_dir, ws_embedder **out, ws_error *err)
{
    *out = NULL;
    ws_bert *m = NULL;
    int rc = ws_bert_load(model_dir ? model_dir : ws_embed_minilm_default_dir(), &m, err);
    if (rc)
        return rc;
    ws_embedder *e = ws_xcalloc(1, sizeof *e);
    e->ops = &minilm_ops;
    e->dim = (size_t)ws_bert_config_of(m)->hidden;
    e->impl = m;
    strcpy(e->name, "all-MiniLM-L6-v2");
    *out = e;
    return 0;
}
