/* The tokenizer of a GGUF file: its metadata (tokens, merges, token types, pre-tokenizer name,
 * special ids) written out as the equivalent tokenizer.json and loaded by the one BPE
 * implementation (tokenizer.c), so GGUF and Hugging Face models tokenize through the same
 * verified code. */
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "nn/tokenizer_int.h"
#include "nn/gguf.h"
#include "nn/tokenizer.h"

enum {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,
    TOKEN_USER = 4,
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6
};

#define DIGITS_BYTELEVEL                                                                                     \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"            \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]}"
#define SPLIT_BYTELEVEL(re)                                                                                  \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":" re "},"          \
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"        \
    "\"trim_offsets\":true,\"use_regex\":false}]}"
#define LLAMA3_RE                                                                                            \
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "                 \
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\""
#define QWEN2_RE                                                                                             \
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "                      \
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\""

typedef struct {
    const char *pre, *normalizer, *pretok;
    bool ignore_merges;
} pre_kind;

static const pre_kind pre_kinds[] = {
    {"smollm", "null", DIGITS_BYTELEVEL, false},
    {"llama-bpe", "null", SPLIT_BYTELEVEL(LLAMA3_RE), true},
    {"llama3", "null", SPLIT_BYTELEVEL(LLAMA3_RE), true},
    {"qwen2", "{\"type\":\"NFC\"}", SPLIT_BYTELEVEL(QWEN2_RE), false},
    {"gpt-2", "null",
     "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}", false},
    {"default", "null",
     "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}", false},
};

static int check_model(const ws_gguf *g, const char *name, const pre_kind **kind, ws_error *err)
{
    const char *s;
    size_t n;
    int rc = ws_gguf_get_str(g, "tokenizer.ggml.model", &s, &n, err);
    if (rc == WS_ENOENT)
        return ws_error_set(err, WS_EFORMAT, "%s: metadata 'tokenizer.ggml.model' is missing", name);
    if (rc)
        return rc;
    if (!(n == 4 && !memcmp(s, "gpt2", 4)))
        return ws_error_set(err, WS_EUNSUPPORTED,
                            "%s: tokenizer.ggml.model is '%.*s'; WhatStyle reads 'gpt2' "
                            "(byte-level BPE)",
                            name, (int)(n > 40 ? 40 : n), s);
    rc = ws_gguf_get_str(g, "tokenizer.ggml.pre", &s, &n, err);
    if (rc == WS_ENOENT) {
        s = "default";
        n = 7;
    } else if (rc) {
        return rc;
    }
    for (size_t i = 0; i < sizeof pre_kinds / sizeof pre_kinds[0]; i++)
        if (strlen(pre_kinds[i].pre) == n && !memcmp(pre_kinds[i].pre, s, n)) {
            *kind = &pre_kinds[i];
            return 0;
        }
    return ws_error_set(err, WS_EUNSUPPORTED,
                        "%s: tokenizer.ggml.pre is '%.*s'; WhatStyle knows smollm, "
                        "llama-bpe, qwen2 and gpt-2",
                        name, (int)(n > 40 ? 40 : n), s);
}

static int put_vocab(const ws_gguf *g, const char *name, uint64_t n_tok, ws_buf *b, ws_error *err)
{
    const char *s;
    size_t n;
    int rc;
    ws_buf_puts(b, "\"vocab\":{");
    for (uint64_t i = 0; i < n_tok; i++) {
        if ((rc = ws_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &n, err)))
            return rc;
        if (ws_utf8_valid_prefix(s, n) != n)
            return ws_error_set(err, WS_EFORMAT, "%s: token %llu is not valid UTF-8", name,
                                (unsigned long long)i);
        if (i)
            ws_buf_putc(b, ',');
        ws_json_put_str(b, s, n);
        ws_buf_printf(b, ":%llu", (unsigned long long)i);
    }
    ws_buf_putc(b, '}');
    return 0;
}

static int put_merges(const ws_gguf *g, const char *name, ws_buf *b, ws_error *err)
{
    ws_gguf_vtype et;
    uint64_t n_merges = 0;
    const char *s;
    size_t n;
    int rc = ws_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n_merges, err);
    if (rc == WS_ENOENT)
        return ws_error_set(err, WS_EFORMAT, "%s: metadata 'tokenizer.ggml.merges' is missing", name);
    if (rc)
        return rc;
    if (et != WS_GGUF_STRING)
        return ws_error_set(err, WS_EFORMAT, "%s: tokenizer.ggml.merges is not an array of strings", name);
    ws_buf_puts(b, ",\"merges\":[");
    for (uint64_t i = 0; i < n_merges; i++) {
        if ((rc = ws_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s, &n, err)))
            return rc;
        if (ws_utf8_valid_prefix(s, n) != n || !memchr(s, ' ', n))
            return ws_error_set(err, WS_EFORMAT, "%s: merge %llu is not two tokens separated by a space",
                                name, (unsigned long long)i);
        if (i)
            ws_buf_putc(b, ',');
        ws_json_put_str(b, s, n);
    }
    ws_buf_putc(b, ']');
    return 0;
}

/* Control tokens (special) and user-defined tokens (added, matched in text) become added tokens. */
static int put_added(const ws_gguf *g, const char *name, uint64_t n_tok, ws_buf *b, ws_error *err)
{
    ws_gguf_vtype et;
    uint64_t n_types = 0;
    int64_t type;
    const char *s;
    size_t n;
    int rc = ws_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n_types, err);
    ws_buf_puts(b, "\"added_tokens\":[");
    if (rc == WS_ENOENT) {
        ws_buf_putc(b, ']');
        return 0;
    }
    if (rc)
        return rc;
    if (n_types != n_tok)
        return ws_error_set(err, WS_EFORMAT, "%s: %llu token types for %llu tokens", name,
                            (unsigned long long)n_types, (unsigned long long)n_tok);
    bool first = true;
    for (uint64_t i = 0; i < n_tok; i++) {
        if ((rc = ws_gguf_arr_i64(g, "tokenizer.ggml.token_type", i, &type, err)))
            return rc;
        if (type != TOKEN_CONTROL && type != TOKEN_USER)
            continue;
        if ((rc = ws_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &n, err)))
            return rc;
        if (!first)
            ws_buf_putc(b, ',');
        first = false;
        ws_buf_printf(b, "{\"id\":%llu,\"content\":", (unsigned long long)i);
        ws_json_put_str(b, s, n);
        ws_buf_printf(
            b, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":%s,\"special\":%s}",
            type == TOKEN_CONTROL ? "false" : "true", type == TOKEN_CONTROL ? "true" : "false");
    }
    ws_buf_putc(b, ']');
    return 0;
}

static int32_t meta_id(const ws_gguf *g, const char *key, uint64_t n_tok)
{
    uint32_t v;
    ws_error e = {0};
    return !ws_gguf_get_u32(g, key, &v, &e) && v < n_tok ? (int32_t)v : -1;
}

/* The post-processor: a BOS template when add_bos_token is set and there is a BOS token. */
static int put_post(const ws_gguf *g, uint64_t n_tok, ws_buf *b)
{
    bool add_bos = false;
    ws_error e = {0};
    const char *s;
    size_t n;
    int32_t bos = meta_id(g, "tokenizer.ggml.bos_token_id", n_tok);
    ws_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &e);
    if (!add_bos || bos < 0 || ws_gguf_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)bos, &s, &n, &e)) {
        ws_buf_puts(
            b, ",\"post_processor\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,"
               "\"use_regex\":true}");
        return 0;
    }
    ws_buf_puts(
        b, ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":");
    ws_json_put_str(b, s, n);
    ws_buf_puts(
        b, ",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{");
    ws_json_put_str(b, s, n);
    ws_buf_puts(b, ":{\"id\":");
    ws_json_put_str(b, s, n);
    ws_buf_printf(b, ",\"ids\":[%d],\"tokens\":[", (int)bos);
    ws_json_put_str(b, s, n);
    ws_buf_puts(b, "]}}}");
    return 0;
}

int ws_tokenizer_load_gguf(const ws_gguf *g, const char *name, ws_tokenizer **out, ws_error *err)
{
    const pre_kind *kind = NULL;
    ws_gguf_vtype et;
    uint64_t n_tok = 0;
    ws_buf b = WS_BUF_INIT;
    int rc;
    *out = NULL;
    if ((rc = check_model(g, name, &kind, err)))
        return rc;
    rc = ws_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, err);
    if (rc == WS_ENOENT)
        return ws_error_set(err, WS_EFORMAT, "%s: metadata 'tokenizer.ggml.tokens' is missing", name);
    if (rc)
        return rc;
    if (et != WS_GGUF_STRING || n_tok == 0 || n_tok > (1u << 24))
        return ws_error_set(err, WS_EFORMAT, "%s: tokenizer.ggml.tokens must be 1 to 16M strings", name);
    ws_buf_puts(&b, "{\"version\":\"1.0\",");
    if ((rc = put_added(g, name, n_tok, &b, err)))
        goto out;
    ws_buf_printf(&b, ",\"normalizer\":%s,\"pre_tokenizer\":%s", kind->normalizer, kind->pretok);
    put_post(g, n_tok, &b);
    ws_buf_puts(&b, ",\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
                    "\"use_regex\":true},\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
                    "\"fuse_unk\":false,\"byte_fallback\":false,");
    ws_buf_printf(&b, "\"ignore_merges\":%s,", kind->ignore_merges ? "true" : "false");
    if ((rc = put_vocab(g, name, n_tok, &b, err)) || (rc = put_merges(g, name, &b, err)))
        goto out;
    ws_buf_puts(&b, "}}");
    if ((rc = ws_tokenizer_load_mem(b.data, b.len, name, out, err)))
        goto out;
    ws_tokenizer_set_bos_eos(*out, meta_id(g, "tokenizer.ggml.bos_token_id", n_tok),
                             meta_id(g, "tokenizer.ggml.eos_token_id", n_tok));
out:
    ws_buf_free(&b);
    return rc;
}
