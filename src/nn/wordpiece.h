/* WordPiece tokenizer of BERT models (all-MiniLM-L6-v2 and other uncased BERTs), matching the
 * Hugging Face fast tokenizer: BertNormalizer (clean-up of control characters, whitespace to
 * spaces, spaces around CJK ideographs, accent stripping by NFD minus non-spacing marks,
 * lowercasing), BertPreTokenizer (split on whitespace and punctuation), then greedy
 * longest-match-first WordPiece with "##" continuations ([UNK] for a word that cannot be
 * covered or is longer than 100 characters), and [CLS] ... [SEP] around the result.
 *
 * Ownership: a loaded tokenizer belongs to the caller (ws_wordpiece_free); it is immutable and
 * safe to use from several threads at once. */
#ifndef WS_NN_WORDPIECE_H
#define WS_NN_WORDPIECE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define WS_WORDPIECE_MAX_VOCAB_FILE (16u << 20)
#define WS_WORDPIECE_MAX_TOKEN 256      /* bytes in one vocabulary entry */
#define WS_WORDPIECE_MAX_WORD_CHARS 100 /* longer words become [UNK] */

typedef struct ws_wordpiece ws_wordpiece;

/* Loads a vocab.txt (one token per line, id = line number). lowercase selects uncased
 * normalisation (lowercase + accent stripping). Errors: WS_ENOENT, WS_EIO, WS_ETOOBIG, and
 * WS_EFORMAT for a vocabulary without [UNK], [CLS] and [SEP] or with an over-long line. */
int ws_wordpiece_load(const char *vocab_path, bool lowercase, ws_wordpiece **out, ws_error *err);
int ws_wordpiece_load_memory(const char *text, size_t len, bool lowercase, ws_wordpiece **out, ws_error *err);
void ws_wordpiece_free(ws_wordpiece *wp); /* NULL is a no-op */

/* Encodes len bytes of UTF-8 (invalid bytes act as U+FFFD, which the clean-up removes) into
 * [CLS] tokens [SEP], truncated to max_len ids in all (0 = 512). *ids is malloc'd and belongs
 * to the caller. */
int ws_wordpiece_encode(const ws_wordpiece *wp, const char *text, size_t len, size_t max_len, int32_t **ids,
                        size_t *n_ids, ws_error *err);

/* The normalised text (what the pre-tokenizer sees), for tests. */
void ws_wordpiece_normalize(const char *text, size_t len, bool lowercase, ws_buf *out);

int32_t ws_wordpiece_id(const ws_wordpiece *wp, const char *token); /* -1 when absent */
const char *ws_wordpiece_token(const ws_wordpiece *wp, int32_t id); /* NULL out of range */
size_t ws_wordpiece_vocab_size(const ws_wordpiece *wp);

#endif
