/* Choosing an embedder: the best one installed, or the one an index was built with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "style/embed.h"

ws_embedder *ws_embed_best(const char *model_dir, bool *used_fallback)
{
    ws_embedder *e = NULL;
    if (ws_embed_minilm_new(model_dir, &e, NULL) == 0) {
        if (used_fallback)
            *used_fallback = false;
        return e;
    }
    if (used_fallback)
        *used_fallback = true;
    return ws_embed_hash_new(512);
}

int ws_embed_for_space(const char *space, const char *model_dir, ws_embedder **out, ws_error *err)
{
    *out = NULL;
    if (!strcmp(space, "all-MiniLM-L6-v2"))
        return ws_embed_minilm_new(model_dir, out, err);
    const char *prefix = "hash-ngram-";
    if (!strncmp(space, prefix, strlen(prefix))) {
        char *end;
        unsigned long dim = strtoul(space + strlen(prefix), &end, 10);
        if (*end == '\0' && (*out = ws_embed_hash_new(dim)) != NULL)
            return 0;
    }
    return ws_error_set(err, WS_EUNSUPPORTED, "unknown embedding space '%.80s'", space);
}
