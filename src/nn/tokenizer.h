/* Byte-level BPE tokenizer loaded from a Hugging Face `tokenizer.json`.
 *
 * Contract: ws_tokenizer_encode(..., add_special=true) returns exactly the ids of
 * transformers' `tokenizer(text)["input_ids"]` (pre-tokenizer regex named by the file,
 * added/special tokens split out first, post-processor special tokens added).
 * A loaded tokenizer is immutable and safe to use from several threads at once. */
#ifndef WS_NN_TOKENIZER_H
#define WS_NN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct ws_tokenizer ws_tokenizer;

/* Loads tokenizer.json at path. *out belongs to the caller (ws_tokenizer_free).
 * Errors: WS_ENOENT, WS_EFORMAT (bad JSON / missing fields), WS_EUNSUPPORTED (model type or
 * pre-tokenizer we do not implement), each with a message in err. */
int ws_tokenizer_load(const char *path, ws_tokenizer **out, ws_error *err);
void ws_tokenizer_free(ws_tokenizer *tok);

/* Encodes len bytes of UTF-8. *ids is malloc'd and belongs to the caller. */
int ws_tokenizer_encode(const ws_tokenizer *tok, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n_ids, ws_error *err);

/* Decodes ids to UTF-8 (invalid sequences -> U+FFFD). Result malloc'd, caller frees. */
char *ws_tokenizer_decode(const ws_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special);
/* The same, also giving the length (the text may contain NUL bytes). len may be NULL. */
char *ws_tokenizer_decode_len(const ws_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                              size_t *len);

/* The raw bytes a token stands for (for streaming output). Returns 0 or WS_EINVAL. */
int ws_tokenizer_token_bytes(const ws_tokenizer *tok, int32_t id, const char **bytes, size_t *len);

/* Id of a token by its vocabulary string (e.g. "<|im_end|>"), or -1. */
int32_t ws_tokenizer_token_id(const ws_tokenizer *tok, const char *token);
bool ws_tokenizer_is_special(const ws_tokenizer *tok, int32_t id);
size_t ws_tokenizer_vocab_size(const ws_tokenizer *tok);
int32_t ws_tokenizer_bos_id(const ws_tokenizer *tok);   /* -1 when the model has none */
int32_t ws_tokenizer_eos_id(const ws_tokenizer *tok);   /* -1 when the model has none */

#endif
