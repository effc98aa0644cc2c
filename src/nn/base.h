/* A pretrained base model as the clone uses it: the decoder, its tokenizer, its chat template
 * and an identity (SHA-256) that adapters record, loaded from one GGUF file (weights used in
 * place, quantized) or a Hugging Face directory (config.json, safetensors, tokenizer.json,
 * tokenizer_config.json for the chat template).
 *
 * One ws_base is shared by any number of adapters and threads (it is only read after loading);
 * the caller owns it (ws_base_free). */
#ifndef WS_NN_BASE_H
#define WS_NN_BASE_H

#include <stdbool.h>

#include "core/error.h"
#include "nn/chat_template.h"
#include "nn/model.h"
#include "nn/tokenizer.h"

/* Where tools/setup-base-model.sh installs the default base (relative to the working
 * directory, as models/minilm for the sentence encoder). */
#define WS_BASE_DEFAULT_PATH "models/base/SmolLM2-135M-Instruct.Q4_1.gguf"

typedef struct ws_base {
    ws_model *model;
    ws_tokenizer *tok;
    bool has_template;
    ws_chat_template tpl;
    char *path;
    char id[65]; /* hex SHA-256 of the GGUF file, or of config.json + the weight files */
    bool gguf;
    int refs; /* holders of a shared base (ws_base_acquire) */
} ws_base;

/* Loads path (a .gguf file or a model directory); flags as ws_model_load (WS_LOAD_COPY: f32
 * copy, e.g. for full training). Errors: WS_ENOENT (with a hint to run
 * tools/setup-base-model.sh when path is the default), WS_EFORMAT, WS_EUNSUPPORTED. */
int ws_base_load(const char *path, int flags, ws_base **out, ws_error *err);
void ws_base_free(ws_base *b);

/* The process-wide shared copy of the base at path: loaded (quantized, in place) on first use
 * and kept while anyone holds it, so many clones on one base map it once and switching between
 * them never reloads it. Thread-safe. Each successful acquire needs one ws_base_release. */
int ws_base_acquire(const char *path, ws_base **out, ws_error *err);
void ws_base_release(ws_base *b);

/* Renders msgs with the base's chat template (adding the generation prompt) and encodes it.
 * Without a template: the contents joined by newlines. *ids malloc'd (caller frees). */
int ws_base_encode_chat(const ws_base *b, const ws_chat_msg *msgs, size_t n, bool add_generation_prompt,
                        int32_t **ids, size_t *n_ids, ws_error *err);

#endif
