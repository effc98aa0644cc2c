/* libFuzzer target: a GGUF file as a base model. Whatever the metadata and tensor table say,
 * building the tokenizer (tokens, merges, types, pre-tokenizer), recognising the chat template
 * and building the model (architecture, sizes, tensor names and shapes, Q/K un-permutation)
 * must refuse bad input with a message and never crash, leak or read outside the input; a model
 * that loads must run a forward pass (small models only, to keep the fuzzer fast). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/chat_template.h"
#include "nn/gguf.h"
#include "nn/model.h"
#include "nn/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_tokenizer(const ws_gguf *g)
{
    ws_tokenizer *tok = NULL;
    ws_error err = {0};
    if (ws_tokenizer_load_gguf(g, "fuzz", &tok, &err)) {
        if (!err.msg[0])
            abort(); /* every refusal says why */
        return;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (!ws_tokenizer_encode(tok, "hello <|im_start|> 12 x", 23, false, &ids, &n, &err))
        free(ids);
    ws_tokenizer_free(tok);
}

static void try_template(const ws_gguf *g)
{
    const char *s;
    size_t n;
    ws_chat_template t;
    ws_error err = {0};
    if (ws_gguf_get_str(g, "tokenizer.chat_template", &s, &n, &err) ||
        ws_chat_template_detect(s, n, &t, &err))
        return;
    ws_buf b = WS_BUF_INIT;
    ws_chat_msg m[2] = {{"user", "hi"}, {"assistant", "yo"}};
    ws_chat_template_render(&t, m, 2, true, &b);
    ws_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_gguf *g = NULL;
    ws_error err = {0};
    if (ws_gguf_open_mem(data, size, "fuzz", &g, &err))
        return 0;
    try_tokenizer(g);
    try_template(g);
    ws_model *m = NULL;
    if (ws_model_load_gguf(g, "fuzz", 0, &m, &err)) { /* takes g */
        if (!err.msg[0])
            abort();
        return 0;
    }
    const ws_model_config *c = &m->cfg;
    if ((size_t)c->dim * c->hidden_dim * c->n_layers < (1u << 20) &&
        (size_t)c->vocab_size * c->dim < (1u << 20)) {
        int32_t toks[2] = {0, c->vocab_size - 1};
        ws_kv_cache *kc = ws_kv_cache_new(m, 4);
        float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
        if (ws_model_infer(m, NULL, kc, toks, 2, logits, NULL, &err)) {
            fprintf(stderr, "a loaded model failed its forward pass: %s\n", err.msg);
            abort();
        }
        free(logits);
        ws_kv_cache_free(kc);
    }
    ws_model_free(m);
    return 0;
}
