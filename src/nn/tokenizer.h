/* Byte-level BPE tokenizer loaded from a Hugging Face `tokenizer.json`.
 *
 * Contract: ws_tokenizer_encode(..., add_special=true) returns exactly the ids of
 * transformers' `tokenizer(text)["input_ids"]` (pre-tokenizer regex named by the file,
 * added/special tokens split out first, post-processor special tokens added).
 * A loaded tokenizer is immutable and safe to use from several threads at once.
 *
 * Supported tokenizer.json components (anything else fails to load with WS_EUNSUPPORTED naming
 * it): model BPE over the GPT-2 byte alphabet (merges as "a b" or [a, b], ignore_merges,
 * unk_token/fuse_unk); normalizer none, NFC or a Sequence of NFC; pre_tokenizer ByteLevel
 * (add_prefix_space, use_regex), Split with the GPT-2, Llama-3 or Qwen2 regex or a literal
 * string (every behavior, invert), Digits, or a Sequence of these ending in ByteLevel;
 * added_tokens with special/normalized/lstrip/rstrip/single_word; post_processor ByteLevel,
 * TemplateProcessing (single template) or a Sequence of them; decoder ByteLevel.
 * Decoding equals the tokenizers library's decode (transformers' optional
 * clean_up_tokenization_spaces is not applied). */
#ifndef WS_NN_TOKENIZER_H
#define WS_NN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct ws_tokenizer ws_tokenizer;

/* Loads tokenizer.json at path. *out belongs to the caller (ws_tokenizer_free). BOS/EOS come
 * from a tokenizer_config.json in the same directory when there is one; otherwise BOS is the
 * first special token of the post-processor template (or none) and EOS the first present of
 * <|im_end|>, <|eot_id|>, <|end_of_text|>, <|endoftext|>, </s>.
 * Errors: WS_ENOENT, WS_EFORMAT (bad JSON / missing fields), WS_EUNSUPPORTED (model type or
 * pre-tokenizer we do not implement), each with a message in err. */
int ws_tokenizer_load(const char *path, ws_tokenizer **out, ws_error *err);
/* The same from len bytes of tokenizer.json already in memory (e.g. from a model archive);
 * name is used in error messages. No tokenizer_config.json is consulted. */
int ws_tokenizer_load_mem(const char *json, size_t len, const char *name, ws_tokenizer **out, ws_error *err);
void ws_tokenizer_free(ws_tokenizer *tok);

typedef struct ws_gguf ws_gguf;
/* The tokenizer of a GGUF file, from its metadata: tokenizer.ggml.model "gpt2" (byte-level
 * BPE) with tokenizer.ggml.pre "smollm", "llama-bpe" or "qwen2" (the pre-tokenizers of those
 * model families; "gpt-2"/"default" too), tokens, merges, token types (control tokens are
 * special, user-defined ones added), bos/eos ids and add_bos_token. Ids equal those of the
 * same model's tokenizer.json through the tokenizers library. Errors: WS_EFORMAT (missing or
 * malformed field, named), WS_EUNSUPPORTED (another tokenizer model or pre-tokenizer, named). */
int ws_tokenizer_load_gguf(const ws_gguf *g, const char *name, ws_tokenizer **out, ws_error *err);
/* Sets the ids ws_tokenizer_bos_id / ws_tokenizer_eos_id report (-1: none); only right after
 * loading, before the tokenizer is shared. */
void ws_tokenizer_set_bos_eos(ws_tokenizer *tok, int32_t bos, int32_t eos);

/* Encodes len bytes of UTF-8 (ill-formed sequences are read as U+FFFD, as Python's
 * errors="replace" would give them to transformers). *ids is malloc'd and belongs to the caller.
 * Errors: WS_ETOOBIG above 256 MiB of text. */
int ws_tokenizer_encode(const ws_tokenizer *tok, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n_ids, ws_error *err);

/* Decodes ids to UTF-8 (invalid sequences -> U+FFFD). Result malloc'd, caller frees. */
char *ws_tokenizer_decode(const ws_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special);
/* The same, also giving the length (the text may contain NUL bytes). len may be NULL. */
char *ws_tokenizer_decode_len(const ws_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                              size_t *len);

/* The raw bytes a token stands for (for streaming output). Returns 0 or WS_EINVAL. */
int ws_tokenizer_token_bytes(const ws_tokenizer *tok, int32_t id, const char **bytes, size_t *len);

/* Streaming decode for generation: tokens arrive one at a time and a character may be split
 * across tokens. put appends the text of id to out, holding back an unfinished UTF-8 sequence
 * at the end until a later token completes it; flush emits what is held (as U+FFFD).
 * The concatenated output equals ws_tokenizer_decode of all the ids. Zero-initialise the
 * stream; it belongs to one caller. put returns 0, or WS_EINVAL for an unknown id (skipped). */
typedef struct ws_tokenizer_stream {
    char held[4];
    size_t n_held;
} ws_tokenizer_stream;
int ws_tokenizer_stream_put(const ws_tokenizer *tok, ws_tokenizer_stream *st, int32_t id, bool skip_special,
                            ws_buf *out);
void ws_tokenizer_stream_flush(ws_tokenizer_stream *st, ws_buf *out);

/* Id of a token by its vocabulary string (e.g. "<|im_end|>"), or -1. */
int32_t ws_tokenizer_token_id(const ws_tokenizer *tok, const char *token);
bool ws_tokenizer_is_special(const ws_tokenizer *tok, int32_t id);
size_t ws_tokenizer_vocab_size(const ws_tokenizer *tok);
int32_t ws_tokenizer_bos_id(const ws_tokenizer *tok); /* -1 when the model has none */
int32_t ws_tokenizer_eos_id(const ws_tokenizer *tok); /* -1 when the model has none */

#endif
