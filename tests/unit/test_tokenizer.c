/* Unit tests for the byte-level BPE tokenizer: every case of the committed reference
 * (tests/reference/tokenizer/cases.jsonl, made by tools/reference/make_tokenizer_ref.py with
 * transformers) must give the same ids and decoded text; plus load errors, queries and
 * concurrent use. */
#include "harness.h"

#include <pthread.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"
#include "nn/tokenizer.h"

#define REF_DIR "tests/reference/tokenizer/"
static const char *const tok_names[] = {"smollm2", "gpt2", "llama3", "qwen2", "mixed"};
#define N_TOKS (sizeof tok_names / sizeof tok_names[0])

static ws_tokenizer *load_named(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, REF_DIR "%s.json", name);
    ws_tokenizer *t = NULL;
    ws_error err = {0};
    int rc = ws_tokenizer_load(path, &t, &err);
    if (rc)
        fprintf(stderr, "load %s: %s\n", path, err.msg);
    return t;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    ws_buf b = WS_BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ws_buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return ws_buf_take(&b);
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
}

static bool ids_match(const ws_json *want, const int32_t *got, size_t n)
{
    if (!want || want->type != WS_JSON_ARRAY || want->len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((int32_t)want->items[i].number != got[i])
            return false;
    return true;
}

static size_t unhex(const char *h, char *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (char)v;
    }
    return n;
}

/* Runs every reference case; reports the first mismatch of each kind in detail. */
static void matches_transformers_on_reference_cases(void)
{
    ws_tokenizer *toks[N_TOKS];
    for (size_t i = 0; i < N_TOKS; i++) {
        toks[i] = load_named(tok_names[i]);
        CHECK(toks[i] != NULL);
        if (!toks[i])
            return;
    }
    size_t len = 0;
    char *data = read_all(REF_DIR "cases.jsonl", &len);
    CHECK(data != NULL);
    if (!data)
        return;
    size_t n_cases = 0, n_bad = 0;
    for (char *line = data; line < data + len;) {
        char *nl = memchr(line, '\n', (size_t)(data + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(data + len - line);
        ws_json_doc *doc = NULL;
        ws_error err = {0};
        if (ll == 0 || ws_json_parse(line, ll, &doc, &err) != 0) {
            CHECK(ll == 0);
            line += ll + 1;
            continue;
        }
        line += ll + 1;
        const ws_json *c = ws_json_root(doc);
        const char *name = ws_json_get_str(c, "tok");
        ws_tokenizer *t = NULL;
        for (size_t i = 0; i < N_TOKS; i++)
            if (name && strcmp(name, tok_names[i]) == 0)
                t = toks[i];
        CHECK(t != NULL);
        const ws_json *tv = ws_json_get(c, "text");
        const char *hex = ws_json_get_str(c, "hex");
        char raw[4096];
        const char *text = tv ? tv->str : raw;
        size_t tlen = tv ? tv->len : (hex ? unhex(hex, raw) : 0);
        bool bad = false;
        for (int special = 1; special >= 0 && t; special--) {
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK_EQ_INT(ws_tokenizer_encode(t, text, tlen, special, &ids, &n, &err), 0);
            const ws_json *want = ws_json_get(c, special ? "ids" : "ids_nospecial");
            if (!ids_match(want, ids, n)) {
                if (n_bad < 5) {
                    fprintf(stderr, "MISMATCH %s add_special=%d text=\"%.*s\"\n", name, special, (int)tlen,
                            text);
                    int32_t w[4096];
                    size_t wn = 0;
                    for (size_t i = 0; want && i < want->len && i < 4096; i++)
                        w[wn++] = (int32_t)want->items[i].number;
                    print_ids("expected", w, wn);
                    print_ids("got     ", ids, n);
                }
                bad = true;
            }
            if (special) {
                char *d = ws_tokenizer_decode(t, ids, n, false);
                char *ds = ws_tokenizer_decode(t, ids, n, true);
                const char *wd = ws_json_get_str(c, "decoded"), *wds = ws_json_get_str(c, "decoded_skip");
                if (!wd || !wds || strcmp(d, wd) != 0 || strcmp(ds, wds) != 0) {
                    if (n_bad < 5)
                        fprintf(stderr, "DECODE MISMATCH %s: \"%s\" / \"%s\", expected \"%s\" / \"%s\"\n",
                                name, d, ds, wd ? wd : "?", wds ? wds : "?");
                    bad = true;
                }
                free(d);
                free(ds);
            }
            free(ids);
        }
        n_bad += bad;
        n_cases++;
        ws_json_doc_free(doc);
    }
    printf("reference cases: %zu, mismatching: %zu\n", n_cases, n_bad);
    CHECK(n_cases > 400);
    CHECK_EQ_INT(n_bad, 0);
    free(data);
    for (size_t i = 0; i < N_TOKS; i++)
        ws_tokenizer_free(toks[i]);
}

static void queries_and_special_tokens(void)
{
    ws_tokenizer *t = load_named("llama3");
    CHECK(t != NULL);
    if (!t)
        return;
    int32_t bot = ws_tokenizer_token_id(t, "<|begin_of_text|>"), eot = ws_tokenizer_token_id(t, "<|eot_id|>");
    CHECK(bot >= 0 && eot >= 0);
    CHECK_EQ_INT(ws_tokenizer_bos_id(t), bot);
    CHECK_EQ_INT(ws_tokenizer_eos_id(t), eot);
    CHECK(ws_tokenizer_is_special(t, eot));
    CHECK(!ws_tokenizer_is_special(t, 0));
    CHECK_EQ_INT(ws_tokenizer_token_id(t, "no such token"), -1);
    CHECK_EQ_INT(ws_tokenizer_vocab_size(t), 921);
    const char *b;
    size_t bl;
    CHECK_EQ_INT(ws_tokenizer_token_bytes(t, eot, &b, &bl), 0);
    CHECK(bl == 10 && memcmp(b, "<|eot_id|>", 10) == 0);
    int32_t sp = ws_tokenizer_token_id(t, "\xc4\xa0"); /* "Ġ" is the byte ' ' */
    CHECK_EQ_INT(ws_tokenizer_token_bytes(t, sp, &b, &bl), 0);
    CHECK(bl == 1 && b[0] == ' ');
    CHECK_EQ_INT(ws_tokenizer_token_bytes(t, -1, &b, &bl), WS_EINVAL);
    CHECK_EQ_INT(ws_tokenizer_token_bytes(t, 1 << 20, &b, &bl), WS_EINVAL);
    /* decoding skips unknown ids; a token cut inside a UTF-8 sequence decodes to U+FFFD */
    int32_t bad_ids[] = {-5, 1 << 20};
    char *d = ws_tokenizer_decode(t, bad_ids, 2, false);
    CHECK_EQ_STR(d, "");
    free(d);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_EQ_INT(ws_tokenizer_encode(t, "\xe4\xbd\xa0", 3, false, &ids, &n, NULL), 0);
    CHECK(n >= 1);
    d = ws_tokenizer_decode(t, ids, n - 1 ? n - 1 : 0, false);
    CHECK(n == 1 || strcmp(d, "\xef\xbf\xbd") == 0 || strcmp(d, "\xef\xbf\xbd\xef\xbf\xbd") == 0);
    free(d);
    free(ids);
    ws_tokenizer_free(t);

    t = load_named("smollm2");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(ws_tokenizer_bos_id(t), -1);
        CHECK_EQ_INT(ws_tokenizer_eos_id(t), ws_tokenizer_token_id(t, "<|im_end|>"));
        ws_tokenizer_free(t);
    }
    ws_tokenizer_free(NULL);
}

static int load_text(const char *json, ws_error *err)
{
    char path[] = "/tmp/ws_tok_testXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -100;
    size_t n = strlen(json);
    CHECK(write(fd, json, n) == (ssize_t)n);
    close(fd);
    ws_tokenizer *t = NULL;
    int rc = ws_tokenizer_load(path, &t, err);
    ws_tokenizer_free(t);
    unlink(path);
    return rc;
}

#define MODEL_OK "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"
#define BL "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"

static void load_errors_are_clear(void)
{
    ws_tokenizer *t = (ws_tokenizer *)1;
    ws_error err = {0};
    CHECK_EQ_INT(ws_tokenizer_load("tests/reference/tokenizer/nope.json", &t, &err), WS_ENOENT);
    CHECK(t == NULL);
    CHECK(strstr(err.msg, "nope.json") != NULL);

    CHECK_EQ_INT(load_text("{\"model\": [1, 2", &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "offset") != NULL || strstr(err.msg, "JSON") != NULL || err.msg[0]);
    CHECK_EQ_INT(load_text("[]", &err), WS_EFORMAT);
    CHECK_EQ_INT(load_text("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "Unigram") != NULL);
    CHECK_EQ_INT(
        load_text("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[\"a b\"]},\"pre_tokenizer\":" BL
                  ",\"decoder\":" BL "}",
                  &err),
        WS_EFORMAT);
    CHECK(strstr(err.msg, "merge 0") != NULL);
    CHECK_EQ_INT(load_text("{" MODEL_OK ",\"normalizer\":{\"type\":\"NFKC\"},\"pre_tokenizer\":" BL
                           ",\"decoder\":" BL "}",
                           &err),
                 WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "NFKC") != NULL);
    CHECK_EQ_INT(
        load_text("{" MODEL_OK
                  ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                  "\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Isolated\",\"invert\":false}," BL "]},"
                  "\"decoder\":" BL "}",
                  &err),
        WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "\\w+") != NULL);
    CHECK_EQ_INT(
        load_text("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Metaspace\"},\"decoder\":" BL "}", &err),
        WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "Metaspace") != NULL);
    CHECK_EQ_INT(
        load_text("{" MODEL_OK ",\"pre_tokenizer\":" BL ",\"decoder\":{\"type\":\"Metaspace\"}}", &err),
        WS_EUNSUPPORTED);
    CHECK_EQ_INT(load_text("{" MODEL_OK ",\"pre_tokenizer\":null,\"decoder\":" BL "}", &err),
                 WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "ByteLevel") != NULL);
    CHECK_EQ_INT(load_text("{" MODEL_OK ",\"pre_tokenizer\":" BL ",\"decoder\":" BL "}", &err), 0);
}

/* tokenizer_config.json next to tokenizer.json names BOS/EOS; load_mem reads no config. */
static void config_names_bos_and_eos(void)
{
    char dir[] = "/tmp/ws_tok_cfgXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char tpath[256], cpath[256];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    size_t len = 0;
    char *json = read_all(REF_DIR "llama3.json", &len);
    CHECK(json != NULL);
    if (!json)
        return;
    FILE *f = fopen(tpath, "wb");
    CHECK(f && fwrite(json, 1, len, f) == len);
    fclose(f);
    f = fopen(cpath, "wb");
    CHECK(f != NULL);
    fputs("{\"bos_token\": null, \"eos_token\": {\"content\": \"<|end_of_text|>\", \"special\": true}}", f);
    fclose(f);
    ws_tokenizer *t = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_tokenizer_load(tpath, &t, &err), 0);
    if (t) {
        CHECK_EQ_INT(ws_tokenizer_bos_id(t), -1);
        CHECK_EQ_INT(ws_tokenizer_eos_id(t), ws_tokenizer_token_id(t, "<|end_of_text|>"));
        ws_tokenizer_free(t);
    }
    t = NULL;
    CHECK_EQ_INT(ws_tokenizer_load_mem(json, len, "mem", &t, &err), 0);
    if (t) {
        CHECK_EQ_INT(ws_tokenizer_bos_id(t), ws_tokenizer_token_id(t, "<|begin_of_text|>"));
        CHECK_EQ_INT(ws_tokenizer_eos_id(t), ws_tokenizer_token_id(t, "<|eot_id|>"));
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_EQ_INT(ws_tokenizer_encode(t, "hi", 2, true, &ids, &n, NULL), 0);
        CHECK(n >= 2 && ids[0] == ws_tokenizer_bos_id(t));
        free(ids);
        ws_tokenizer_free(t);
    }
    CHECK_EQ_INT(ws_tokenizer_load_mem("{", 1, "broken.json", &t, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "broken.json") != NULL);
    free(json);
    unlink(tpath);
    unlink(cpath);
    rmdir(dir);
}

static void invalid_utf8_is_replaced(void)
{
    ws_tokenizer *t = load_named("qwen2");
    CHECK(t != NULL);
    if (!t)
        return;
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_EQ_INT(ws_tokenizer_encode(t,
                                     "x\xff"
                                     "y",
                                     3, false, &a, &na, NULL),
                 0);
    CHECK_EQ_INT(ws_tokenizer_encode(t, "x\xef\xbf\xbdy", 5, false, &b, &nb, NULL), 0);
    CHECK(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    free(a);
    free(b);
    /* NUL bytes are ordinary characters */
    CHECK_EQ_INT(ws_tokenizer_encode(t, "a\0b", 3, false, &a, &na, NULL), 0);
    char *d = ws_tokenizer_decode(t, a, na, false);
    CHECK(memcmp(d, "a\0b", 4) == 0);
    free(d);
    free(a);
    ws_tokenizer_free(t);
}

/* Streaming decode, token by token, concatenates to what decode gives, for random ids
 * (which cut characters anywhere and produce invalid sequences) and for a real encoding. */
static void stream_decode_equals_decode(void)
{
    ws_tokenizer *t = load_named("qwen2");
    CHECK(t != NULL);
    if (!t)
        return;
    uint64_t r = 12345;
    int32_t ids[64];
    for (int round = 0; round < 300; round++) {
        size_t n = (size_t)(round % 60) + 1;
        for (size_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int32_t)((r >> 33) % 300); /* mostly single bytes, many >= 0x80 */
        }
        if (round == 0) {
            const char *text = "caf\xc3\xa9 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd<|im_end|>\xe4\xbd\xa0";
            int32_t *enc = NULL;
            ws_tokenizer_encode(t, text, strlen(text), false, &enc, &n, NULL);
            memcpy(ids, enc, n * sizeof *ids);
            free(enc);
        }
        for (int skip = 0; skip < 2; skip++) {
            size_t dl = 0;
            char *want = ws_tokenizer_decode_len(t, ids, n, skip, &dl);
            ws_tokenizer_stream st = {0};
            ws_buf got = WS_BUF_INIT;
            for (size_t i = 0; i < n; i++)
                ws_tokenizer_stream_put(t, &st, ids[i], skip, &got);
            ws_tokenizer_stream_flush(&st, &got);
            CHECK(got.len == dl && memcmp(got.data ? got.data : "", want, dl) == 0);
            free(want);
            ws_buf_free(&got);
        }
    }
    ws_tokenizer_stream st = {0};
    ws_buf b = WS_BUF_INIT;
    CHECK_EQ_INT(ws_tokenizer_stream_put(t, &st, -1, false, &b), WS_EINVAL);
    ws_buf_free(&b);
    ws_tokenizer_free(t);
}

typedef struct {
    const ws_tokenizer *t;
    const char *text;
    int32_t *ids;
    size_t n;
} job;

static void *encode_job(void *arg)
{
    job *j = arg;
    for (int k = 0; k < 20; k++) {
        free(j->ids);
        ws_tokenizer_encode(j->t, j->text, strlen(j->text), true, &j->ids, &j->n, NULL);
    }
    return NULL;
}

static void concurrent_encode_agrees(void)
{
    ws_tokenizer *t = load_named("qwen2");
    CHECK(t != NULL);
    if (!t)
        return;
    const char *text =
        "[12/03/2024, 21:47] Anna: I'LL bring the cake \xf0\x9f\x8d\xb0 don't forget 1234567 cafe\xcc\x81";
    int32_t *ref = NULL;
    size_t nref = 0;
    ws_tokenizer_encode(t, text, strlen(text), true, &ref, &nref, NULL);
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){t, text, NULL, 0};
        pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].n == nref && memcmp(jobs[i].ids, ref, nref * sizeof *ref) == 0);
        free(jobs[i].ids);
    }
    free(ref);
    ws_tokenizer_free(t);
}

WS_TEST_MAIN(T(matches_transformers_on_reference_cases), T(queries_and_special_tokens),
             T(load_errors_are_clear), T(config_names_bos_and_eos), T(invalid_utf8_is_replaced),
             T(stream_decode_equals_decode), T(concurrent_encode_agrees))
