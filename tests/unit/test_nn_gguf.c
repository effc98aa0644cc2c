/* The GGUF reader and writer: a round trip of every metadata value type and of tensors of
 * every weight type; the real base model (SmolLM2-135M-Instruct Q4_1, which must be
 * installed); one broken file per check the reader makes (error code and a word of the
 * message); a valid file cut at every byte; and the fuzz target's seed corpus (made here:
 * WS_WRITE_CORPUS=DIR build/test_nn_gguf fuzz_seeds writes it). */
#include "harness.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "core/file.h"
#include "nn/gguf.h"

#define BASE_MODEL "models/base/SmolLM2-135M-Instruct.Q4_1.gguf"

static uint8_t *image(ws_gguf_writer *w, size_t *len)
{
    uint8_t *img = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_gguf_writer_bytes(w, &img, len, &err), 0);
    ws_gguf_writer_free(w);
    return img;
}

#define ANY_ERROR 1 /* for expect_open: any failure */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Opens a copy of img[0..len) in a buffer of exactly len bytes (so the sanitizers catch a read
 * past its end) and checks the result: rc and, for a failure, a word of the message. */
static void expect_open(const uint8_t *img, size_t len, int want_rc, const char *word, const char *what)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, img, len);
    ws_gguf *g = NULL;
    ws_error err = {0};
    int rc = ws_gguf_open_mem(copy, len, "x.gguf", &g, &err); /* the name is in every message */
    if ((want_rc == ANY_ERROR ? rc >= 0 : rc != want_rc) || (rc && word && !strstr(err.msg, word)) ||
        (rc != 0) != (g == NULL)) {
        ws_t_failed_checks++;
        fprintf(stderr, "%s: %s: rc %d (want %d), message \"%s\" (want the word \"%s\")\n", ws_t_current,
                what, rc, want_rc, err.msg, word ? word : "");
    }
    ws_gguf_close(g);
    free(copy);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed * 7 + 3);
}

/* ---- round trip ---- */

typedef struct {
    const char *name;
    ws_qtype type;
    int n_dims;
    int64_t ne[4];
} tspec;

static const tspec rich_tensors[] = {
    {"f32", WS_QT_F32, 2, {4, 3}},           {"f16", WS_QT_F16, 1, {8}},
    {"bf16", WS_QT_BF16, 3, {2, 2, 2}},      {"q8_0", WS_QT_Q8_0, 2, {64, 2}},
    {"q4_0", WS_QT_Q4_0, 2, {32, 3}},        {"q4_1", WS_QT_Q4_1, 3, {32, 1, 2}},
    {"q4_k", WS_QT_Q4_K, 2, {256, 2}},       {"q5_k", WS_QT_Q5_K, 1, {256}},
    {"q6_k", WS_QT_Q6_K, 4, {256, 1, 1, 2}},
};
#define N_RICH (sizeof rich_tensors / sizeof rich_tensors[0])

static size_t spec_bytes(const tspec *t)
{
    int64_t rows = 1;
    for (int d = 1; d < t->n_dims; d++)
        rows *= t->ne[d];
    return ws_qtype_row_bytes(t->type, t->ne[0]) * (size_t)rows;
}

/* A writer holding a value of every type, arrays of every element type (an array of arrays
 * among them) and the tensors above. */
static ws_gguf_writer *rich_writer(void)
{
    ws_gguf_writer *w = ws_gguf_writer_new();
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 18000000000000000000ull;
    int64_t i64 = -9000000000000000000ll;
    double f64 = 2.718281828459045;
    ws_gguf_add_str(w, "general.architecture", "llama");
    ws_gguf_add_num(w, "t.u8", WS_GGUF_U8, &u8);
    ws_gguf_add_num(w, "t.i8", WS_GGUF_I8, &i8);
    ws_gguf_add_num(w, "t.u16", WS_GGUF_U16, &u16);
    ws_gguf_add_num(w, "t.i16", WS_GGUF_I16, &i16);
    ws_gguf_add_u32(w, "t.u32", 4000000000u);
    ws_gguf_add_num(w, "t.i32", WS_GGUF_I32, &i32);
    ws_gguf_add_f32(w, "t.f32", 1.5f);
    ws_gguf_add_bool(w, "t.bool", true);
    ws_gguf_add_str(w, "t.str", "héllo, wörld");
    ws_gguf_add_num(w, "t.u64", WS_GGUF_U64, &u64);
    ws_gguf_add_num(w, "t.i64", WS_GGUF_I64, &i64);
    ws_gguf_add_num(w, "t.f64", WS_GGUF_F64, &f64);
    static const uint8_t a_u8[] = {0, 1, 255};
    static const int8_t a_i8[] = {-128, 0, 127};
    static const uint16_t a_u16[] = {1, 65535};
    static const int16_t a_i16[] = {-32768, 32767};
    static const uint32_t a_u32[] = {7, 4294967295u};
    static const int32_t a_i32[] = {-5, 0, 5, 2147483647};
    static const float a_f32[] = {0.25f, -3.0f, 1e10f};
    static const bool a_bool[] = {true, false, true};
    static const uint64_t a_u64[] = {1, 18446744073709551615ull};
    static const int64_t a_i64[] = {-9223372036854775807ll - 1, 42};
    static const double a_f64[] = {-0.5, 1e300};
    static const char *const a_str[] = {"<|endoftext|>", "", "ä"};
    ws_gguf_add_num_arr(w, "a.u8", WS_GGUF_U8, a_u8, 3);
    ws_gguf_add_num_arr(w, "a.i8", WS_GGUF_I8, a_i8, 3);
    ws_gguf_add_num_arr(w, "a.u16", WS_GGUF_U16, a_u16, 2);
    ws_gguf_add_num_arr(w, "a.i16", WS_GGUF_I16, a_i16, 2);
    ws_gguf_add_num_arr(w, "a.u32", WS_GGUF_U32, a_u32, 2);
    ws_gguf_add_i32_arr(w, "a.i32", a_i32, 4);
    ws_gguf_add_f32_arr(w, "a.f32", a_f32, 3);
    ws_gguf_add_num_arr(w, "a.bool", WS_GGUF_BOOL, a_bool, 3);
    ws_gguf_add_num_arr(w, "a.u64", WS_GGUF_U64, a_u64, 2);
    ws_gguf_add_num_arr(w, "a.i64", WS_GGUF_I64, a_i64, 2);
    ws_gguf_add_num_arr(w, "a.f64", WS_GGUF_F64, a_f64, 2);
    ws_gguf_add_str_arr(w, "a.str", a_str, 3);
    ws_gguf_add_str_arr(w, "a.empty", NULL, 0);
    /* [[1, 2], ["x"]]: an array of two arrays */
    uint8_t nested[4 + 8 + (4 + 8 + 2) + (4 + 8 + 8 + 1)], *p = nested;
    put_le(p, WS_GGUF_ARRAY, 4), put_le(p + 4, 2, 8), p += 12;
    put_le(p, WS_GGUF_U8, 4), put_le(p + 4, 2, 8), p[12] = 1, p[13] = 2, p += 14;
    put_le(p, WS_GGUF_STRING, 4), put_le(p + 4, 1, 8), put_le(p + 12, 1, 8), p[20] = 'x';
    ws_gguf_add_raw(w, "a.nested", WS_GGUF_ARRAY, nested, sizeof nested);
    for (size_t i = 0; i < N_RICH; i++) {
        const tspec *t = &rich_tensors[i];
        size_t n = spec_bytes(t);
        uint8_t *data = malloc(n);
        fill(data, n, (unsigned)i);
        ws_gguf_add_tensor(w, t->name, t->n_dims, t->ne, t->type, data);
        free(data);
    }
    return w;
}

static void check_rich_scalars(const ws_gguf *g)
{
    ws_error err = {0};
    uint32_t u32 = 0;
    int64_t i64 = 0;
    float f = 0;
    bool b = false;
    const char *s = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ws_gguf_get_str(g, "general.architecture", &s, &len, &err), 0);
    CHECK(len == 5 && !memcmp(s, "llama", 5));
    CHECK_EQ_INT(ws_gguf_get_u32(g, "t.u8", &u32, &err), 0);
    CHECK_EQ_INT(u32, 200);
    CHECK_EQ_INT(ws_gguf_get_i64(g, "t.i8", &i64, &err), 0);
    CHECK_EQ_INT(i64, -100);
    CHECK_EQ_INT(ws_gguf_get_u32(g, "t.u16", &u32, &err), 0);
    CHECK_EQ_INT(u32, 60000);
    CHECK_EQ_INT(ws_gguf_get_i64(g, "t.i16", &i64, &err), 0);
    CHECK_EQ_INT(i64, -30000);
    CHECK_EQ_INT(ws_gguf_get_u32(g, "t.u32", &u32, &err), 0);
    CHECK(u32 == 4000000000u);
    CHECK_EQ_INT(ws_gguf_get_i64(g, "t.u32", &i64, &err), 0);
    CHECK_EQ_INT(i64, 4000000000ll);
    CHECK_EQ_INT(ws_gguf_get_i64(g, "t.i32", &i64, &err), 0);
    CHECK_EQ_INT(i64, -2000000000);
    CHECK_EQ_INT(ws_gguf_get_f32(g, "t.f32", &f, &err), 0);
    CHECK(f == 1.5f);
    CHECK_EQ_INT(ws_gguf_get_f32(g, "t.f64", &f, &err), 0);
    CHECK(f == (float)2.718281828459045);
    CHECK_EQ_INT(ws_gguf_get_bool(g, "t.bool", &b, &err), 0);
    CHECK(b);
    CHECK_EQ_INT(ws_gguf_get_str(g, "t.str", &s, &len, &err), 0);
    CHECK(len == strlen("héllo, wörld") && !memcmp(s, "héllo, wörld", len));
    CHECK_EQ_INT(ws_gguf_get_i64(g, "t.i64", &i64, &err), 0);
    CHECK(i64 == -9000000000000000000ll);
    /* U64 above INT64_MAX does not fit I64; the message names the key and both types */
    CHECK_EQ_INT(ws_gguf_get_i64(g, "t.u64", &i64, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "t.u64") && strstr(err.msg, "U64") && strstr(err.msg, "I64"));
    CHECK_EQ_INT(ws_gguf_get_u32(g, "t.i8", &u32, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "t.i8") && strstr(err.msg, "I8") && strstr(err.msg, "U32"));
    CHECK_EQ_INT(ws_gguf_get_u32(g, "t.str", &u32, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "t.str") && strstr(err.msg, "STRING") && strstr(err.msg, "U32"));
    CHECK_EQ_INT(ws_gguf_get_str(g, "t.u8", &s, &len, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "U8") && strstr(err.msg, "STRING"));
    CHECK_EQ_INT(ws_gguf_get_bool(g, "t.u8", &b, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_gguf_get_f32(g, "t.u32", &f, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_gguf_get_u32(g, "no.such.key", &u32, &err), WS_ENOENT);
    CHECK(strstr(err.msg, "no.such.key"));
}

static void check_rich_arrays(const ws_gguf *g)
{
    ws_error err = {0};
    ws_gguf_vtype et;
    uint64_t n = 0;
    int64_t v = 0;
    double d = 0;
    const char *s = NULL;
    size_t len = 0;
    static const struct {
        const char *key;
        ws_gguf_vtype t;
        uint64_t n;
        int64_t first, last;
    } arrs[] = {
        {"a.u8", WS_GGUF_U8, 3, 0, 255},
        {"a.i8", WS_GGUF_I8, 3, -128, 127},
        {"a.u16", WS_GGUF_U16, 2, 1, 65535},
        {"a.i16", WS_GGUF_I16, 2, -32768, 32767},
        {"a.u32", WS_GGUF_U32, 2, 7, 4294967295ll},
        {"a.i32", WS_GGUF_I32, 4, -5, 2147483647},
        {"a.bool", WS_GGUF_BOOL, 3, 1, 1},
        {"a.i64", WS_GGUF_I64, 2, INT64_MIN, 42},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        CHECK_EQ_INT(ws_gguf_get_arr(g, arrs[i].key, &et, &n, &err), 0);
        CHECK_EQ_INT(et, arrs[i].t);
        CHECK_EQ_INT(n, arrs[i].n);
        CHECK_EQ_INT(ws_gguf_arr_i64(g, arrs[i].key, 0, &v, &err), 0);
        CHECK(v == arrs[i].first);
        CHECK_EQ_INT(ws_gguf_arr_i64(g, arrs[i].key, n - 1, &v, &err), 0);
        CHECK(v == arrs[i].last);
        CHECK_EQ_INT(ws_gguf_arr_i64(g, arrs[i].key, n, &v, &err), WS_EINVAL);
    }
    CHECK_EQ_INT(ws_gguf_arr_i64(g, "a.bool", 1, &v, &err), 0);
    CHECK_EQ_INT(v, 0);
    CHECK_EQ_INT(ws_gguf_arr_f64(g, "a.f32", 0, &d, &err), 0);
    CHECK(d == 0.25);
    CHECK_EQ_INT(ws_gguf_arr_i64(g, "a.f32", 1, &v, &err), 0);
    CHECK_EQ_INT(v, -3);
    CHECK_EQ_INT(ws_gguf_arr_i64(g, "a.f32", 0, &v, &err), WS_EFORMAT); /* 0.25 is no integer */
    CHECK_EQ_INT(ws_gguf_arr_f64(g, "a.f64", 1, &d, &err), 0);
    CHECK(d == 1e300);
    CHECK_EQ_INT(ws_gguf_arr_f64(g, "a.u64", 1, &d, &err), 0);
    CHECK(d == 18446744073709551615.0);
    CHECK_EQ_INT(ws_gguf_arr_i64(g, "a.u64", 1, &v, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_gguf_arr_f64(g, "a.i8", 0, &d, &err), 0);
    CHECK(d == -128);
    CHECK_EQ_INT(ws_gguf_get_arr(g, "a.str", &et, &n, &err), 0);
    CHECK(et == WS_GGUF_STRING && n == 3);
    CHECK_EQ_INT(ws_gguf_arr_str(g, "a.str", 0, &s, &len, &err), 0);
    CHECK(len == 13 && !memcmp(s, "<|endoftext|>", 13));
    CHECK_EQ_INT(ws_gguf_arr_str(g, "a.str", 1, &s, &len, &err), 0);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(ws_gguf_arr_str(g, "a.str", 2, &s, &len, &err), 0);
    CHECK(len == 2 && !memcmp(s, "ä", 2));
    CHECK_EQ_INT(ws_gguf_arr_str(g, "a.str", 3, &s, &len, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_gguf_arr_str(g, "a.u8", 0, &s, &len, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_gguf_arr_i64(g, "a.str", 0, &v, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_gguf_arr_i64(g, "t.u8", 0, &v, &err), WS_EFORMAT);
    CHECK_EQ_INT(ws_gguf_get_arr(g, "a.empty", &et, &n, &err), 0);
    CHECK(et == WS_GGUF_STRING && n == 0);
    CHECK_EQ_INT(ws_gguf_get_arr(g, "a.nested", &et, &n, &err), 0);
    CHECK(et == WS_GGUF_ARRAY && n == 2);
    CHECK_EQ_INT(ws_gguf_arr_i64(g, "a.nested", 0, &v, &err), WS_EFORMAT);
    CHECK(strstr(err.msg, "ARRAY"));
}

static void check_rich_tensors(const ws_gguf *g)
{
    CHECK_EQ_INT(ws_gguf_n_tensors(g), N_RICH);
    for (size_t i = 0; i < N_RICH; i++) {
        const tspec *s = &rich_tensors[i];
        const ws_gguf_tensor *t = ws_gguf_tensor_at(g, (int)i);
        CHECK(t && t == ws_gguf_find_tensor(g, s->name));
        if (!t)
            continue;
        CHECK_EQ_STR(t->name, s->name);
        CHECK_EQ_INT(t->n_dims, s->n_dims);
        CHECK_EQ_INT(t->type, s->type);
        for (int d = 0; d < 4; d++)
            CHECK_EQ_INT(t->ne[d], d < s->n_dims ? s->ne[d] : 1);
        size_t n = spec_bytes(s);
        CHECK_EQ_INT(t->nbytes, n);
        CHECK_EQ_INT(t->offset % 32, 0);
        uint8_t *want = malloc(n);
        fill(want, n, (unsigned)i);
        CHECK(!memcmp(t->data, want, n));
        free(want);
    }
    CHECK(ws_gguf_tensor_at(g, (int)N_RICH) == NULL && ws_gguf_tensor_at(g, -1) == NULL);
    CHECK(ws_gguf_find_tensor(g, "nope") == NULL);
}

static void roundtrip_every_type(void)
{
    char dir[] = "/tmp/ws_gguf_XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/rich.gguf", dir);
    ws_gguf_writer *w = rich_writer();
    ws_error err = {0};
    CHECK_EQ_INT(ws_gguf_write(w, path, &err), 0);
    ws_gguf_writer_free(w);
    ws_gguf *g = NULL;
    CHECK_EQ_INT(ws_gguf_open(path, &g, &err), 0);
    if (g) {
        CHECK_EQ_INT(ws_gguf_version(g), 3);
        CHECK_EQ_INT(ws_gguf_alignment(g), 32);
        CHECK_EQ_INT(ws_gguf_n_keys(g), 27);
        CHECK_EQ_STR(ws_gguf_key_name(g, 0), "general.architecture");
        CHECK_EQ_STR(ws_gguf_key_name(g, 1), "t.u8");
        CHECK_EQ_INT(ws_gguf_find_key(g, "a.nested"), 26);
        CHECK_EQ_INT(ws_gguf_find_key(g, "a.nest"), -1);
        static const ws_gguf_vtype order[] = {
            WS_GGUF_STRING, WS_GGUF_U8,   WS_GGUF_I8,     WS_GGUF_U16, WS_GGUF_I16, WS_GGUF_U32, WS_GGUF_I32,
            WS_GGUF_F32,    WS_GGUF_BOOL, WS_GGUF_STRING, WS_GGUF_U64, WS_GGUF_I64, WS_GGUF_F64};
        for (int i = 0; i < 13; i++)
            CHECK_EQ_INT(ws_gguf_key_type(g, i), order[i]);
        CHECK(ws_gguf_key_name(g, 27) == NULL);
        check_rich_scalars(g);
        check_rich_arrays(g);
        check_rich_tensors(g);
    }
    ws_gguf_close(g);
    CHECK_EQ_INT(ws_gguf_open("/tmp/ws_gguf_no/such.gguf", &g, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_gguf_open(dir, &g, &err), WS_EIO);
    CHECK_EQ_INT(ws_file_remove_tree(dir, NULL, &err), 0);
}

/* A "general.alignment" the writer honours; a tensor it cannot lay out. */
static void writer_alignment_and_bad_tensor(void)
{
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_u32(w, "general.alignment", 256);
    float x[3] = {1, 2, 3};
    int64_t ne[1] = {3};
    ws_gguf_add_tensor(w, "x", 1, ne, WS_QT_F32, x);
    ws_gguf_add_tensor(w, "y", 1, ne, WS_QT_F32, x);
    size_t len = 0;
    uint8_t *img = image(w, &len);
    ws_gguf *g = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_gguf_open_mem(img, len, "aligned", &g, &err), 0);
    if (g) {
        CHECK_EQ_INT(ws_gguf_alignment(g), 256);
        const ws_gguf_tensor *y = ws_gguf_find_tensor(g, "y");
        CHECK(y && y->offset == 256 && ((const uint8_t *)y->data - img) % 256 == 0);
        CHECK(y && !memcmp(y->data, x, sizeof x));
    }
    ws_gguf_close(g);
    free(img);
    w = ws_gguf_writer_new();
    int64_t bad[2] = {33, 1};
    ws_gguf_add_tensor(w, "q", 2, bad, WS_QT_Q8_0, x); /* 33 is no multiple of 32 */
    CHECK_EQ_INT(ws_gguf_writer_bytes(w, &img, &len, &err), WS_EINVAL);
    CHECK(strstr(err.msg, "'q'") != NULL && img == NULL);
    ws_gguf_writer_free(w);
}

/* ---- the real base model ---- */

static void base_model(void)
{
    ws_gguf *g = NULL;
    ws_error err = {0};
    int rc = ws_gguf_open(BASE_MODEL, &g, &err);
    if (rc)
        fprintf(stderr, "%s (install it with tools/setup-base-model.sh)\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    if (!g)
        return;
    CHECK_EQ_INT(ws_gguf_version(g), 3);
    CHECK_EQ_INT(ws_gguf_n_tensors(g), 272);
    CHECK_EQ_INT(ws_gguf_n_keys(g), 33);
    uint32_t u = 0;
    const char *s = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ws_gguf_get_str(g, "general.architecture", &s, &len, &err), 0);
    CHECK(len == 5 && !memcmp(s, "llama", 5));
    static const struct {
        const char *key;
        uint32_t v;
    } nums[] = {{"llama.block_count", 30},
                {"llama.embedding_length", 576},
                {"llama.attention.head_count", 9},
                {"llama.attention.head_count_kv", 3},
                {"llama.feed_forward_length", 1536}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        CHECK_EQ_INT(ws_gguf_get_u32(g, nums[i].key, &u, &err), 0);
        CHECK_EQ_INT(u, nums[i].v);
    }
    ws_gguf_vtype et;
    uint64_t n = 0;
    CHECK_EQ_INT(ws_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &err), 0);
    CHECK(et == WS_GGUF_STRING && n == 49152);
    CHECK_EQ_INT(ws_gguf_arr_str(g, "tokenizer.ggml.tokens", 0, &s, &len, &err), 0);
    CHECK(len == 13 && !memcmp(s, "<|endoftext|>", 13));
    CHECK_EQ_INT(ws_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &len, &err), 0);
    CHECK(len == 12 && !memcmp(s, "<|im_start|>", 12));
    CHECK_EQ_INT(ws_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, &err), 0);
    CHECK(et == WS_GGUF_STRING && n == 48900);
    const ws_gguf_tensor *t = ws_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->type == WS_QT_Q8_0 && t->n_dims == 2 && t->ne[0] == 576 && t->ne[1] == 49152);
    CHECK(t && t->nbytes == (size_t)576 / 32 * 34 * 49152);
    t = ws_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(t && t->type == WS_QT_Q4_1 && t->n_dims == 2 && t->ne[0] == 1536 && t->ne[1] == 576);
    t = ws_gguf_find_tensor(g, "blk.29.attn_norm.weight");
    CHECK(t && t->type == WS_QT_F32 && t->n_dims == 1 && t->ne[0] == 576);
    size_t total = 0;
    for (int i = 0; i < ws_gguf_n_tensors(g); i++)
        total += ws_gguf_tensor_at(g, i)->nbytes;
    printf("  %d tensors, %zu bytes of tensor data\n", ws_gguf_n_tensors(g), total);
    CHECK(total > 90u << 20 && total < 98362432);
    ws_gguf_close(g);
}

/* ---- broken files ---- */

/* tiny(): header (24 bytes); key "general.architecture" = "llama" (24..69: name length at 24,
 * type at 52, value length at 56); tensor infos "a" F32 {4, 2} at 69 and "b" Q8_0 {32, 1} at
 * 110 (each 41 bytes, fields at the TI_ offsets); padding to 160; data of a at 160 (32 bytes),
 * of b at 192 (34 bytes, padded: 256 in all). */
enum {
    T_A = 69,
    T_B = 110,
    TI_NDIMS = 9,
    TI_NE0 = 13,
    TI_NE1 = 21,
    TI_TYPE = 29,
    TI_OFF = 33,
    TINY_LEN = 256
};

static uint8_t *tiny(size_t *len)
{
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_str(w, "general.architecture", "llama");
    uint8_t a[32], b[34];
    fill(a, sizeof a, 1);
    fill(b, sizeof b, 2);
    ws_gguf_add_tensor(w, "a", 2, (const int64_t[]){4, 2}, WS_QT_F32, a);
    ws_gguf_add_tensor(w, "b", 2, (const int64_t[]){32, 1}, WS_QT_Q8_0, b);
    return image(w, len);
}

/* tiny() with n bytes at off set to v (little-endian), and as much at off2 to v2 when n2 > 0,
 * then opened. */
static void expect_patched2(size_t off, uint64_t v, int n, size_t off2, uint64_t v2, int n2, int want_rc,
                            const char *word, const char *what)
{
    size_t len;
    uint8_t *img = tiny(&len);
    put_le(img + off, v, n);
    put_le(img + off2, v2, n2);
    expect_open(img, len, want_rc, word, what);
    free(img);
}

static void expect_patched(size_t off, uint64_t v, int n, int want_rc, const char *word, const char *what)
{
    expect_patched2(off, v, n, 0, 0, 0, want_rc, word, what);
}

static void tiny_layout_is_as_described(void)
{
    size_t len;
    uint8_t *img = tiny(&len);
    CHECK_EQ_INT(len, TINY_LEN);
    CHECK(img[T_A + 8] == 'a' && img[T_A + TI_NDIMS] == 2 && img[T_A + TI_NE0] == 4 &&
          img[T_A + TI_NE1] == 2);
    CHECK(img[T_B + 8] == 'b' && img[T_B + TI_TYPE] == 8 && img[T_B + TI_OFF] == 32 &&
          img[T_B + TI_NE0] == 32);
    CHECK(img[56] == 5 && !memcmp(img + 64, "llama", 5));
    expect_open(img, len, 0, NULL, "tiny");
    free(img);
}

static void bad_header(void)
{
    static const uint8_t empty[1];
    expect_open(empty, 0, WS_EFORMAT, "shorter", "empty file");
    expect_open((const uint8_t *)"GGUF\3\0\0\0", 8, WS_EFORMAT, "shorter", "short header");
    expect_patched(0, 0x46554747, 4, 0, NULL, "magic restored");
    expect_patched(0, 0x46554748, 4, WS_EFORMAT, "GGUF", "bad magic");
    expect_patched(4, 1, 4, WS_EUNSUPPORTED, "version 1", "version 1");
    expect_patched(4, 2, 4, 0, NULL, "version 2");
    expect_patched(4, 4, 4, WS_EUNSUPPORTED, "version 4", "version 4");
    expect_patched(4, 0x03000000, 4, WS_EUNSUPPORTED, "big-endian", "big-endian");
    expect_patched(8, 1000, 8, WS_EFORMAT, "counts", "tensor count");
    expect_patched(16, 1ull << 40, 8, WS_EFORMAT, "counts", "key count");
    expect_patched(16, 2, 8, WS_EFORMAT, NULL, "one key more than there is");
}

/* A one-key file of key = raw value body (the type given), ending right after it, opened. */
static void expect_raw(const char *key, uint32_t type, const void *body, size_t n, int want_rc,
                       const char *word, const char *what)
{
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_raw(w, key, type, body, n);
    size_t len;
    uint8_t *img = image(w, &len);
    len = 24 + 8 + strlen(key) + 4 + n; /* without the padding after it */
    expect_open(img, len, want_rc, word, what);
    free(img);
}

static void bad_metadata_strings(void)
{
    expect_patched(24, 1000, 8, WS_EFORMAT, "past the end", "key name past the end");
    expect_patched(24, WS_GGUF_MAX_STR + 1, 8, WS_EFORMAT, "cap", "key name over the cap");
    expect_patched(56, 1000, 8, WS_EFORMAT, "past the end", "string value past the end");
    expect_patched(56, UINT64_MAX, 8, WS_EFORMAT, "cap", "string value of 2^64-1 bytes");
    expect_patched(24 + 8 + 3, 0, 1, WS_EFORMAT, "NUL", "NUL in a key");
    expect_raw("", WS_GGUF_U8, "\1", 1, WS_EFORMAT, "empty", "empty key");
    char *big = malloc(WS_GGUF_MAX_STR + 2);
    memset(big, 'x', WS_GGUF_MAX_STR + 1);
    big[WS_GGUF_MAX_STR + 1] = 0;
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_str(w, "big", big);
    size_t len;
    uint8_t *img = image(w, &len);
    expect_open(img, len, WS_EFORMAT, "cap", "string value over the cap");
    free(img);
    big[WS_GGUF_MAX_STR] = 0; /* exactly the cap: fine, as a value and as an array element */
    w = ws_gguf_writer_new();
    ws_gguf_add_str(w, "big", big);
    const char *arr[] = {"a", big};
    ws_gguf_add_str_arr(w, "arr", arr, 2);
    img = image(w, &len);
    expect_open(img, len, 0, NULL, "strings at the cap");
    free(img);
    big[WS_GGUF_MAX_STR] = 'x';
    w = ws_gguf_writer_new();
    ws_gguf_add_str_arr(w, "arr", arr, 2);
    img = image(w, &len);
    expect_open(img, len, WS_EFORMAT, "string element 1", "array element over the cap");
    free(img);
    big[WS_GGUF_MAX_STR] = 0;
    w = ws_gguf_writer_new();
    ws_gguf_add_str_arr(w, "arr", arr, 2);
    img = image(w, &len);
    expect_open(img, len - 64, WS_EFORMAT, "string element 1", "array element past the end");
    free(img);
    free(big);
}

static void bad_metadata_values(void)
{
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_u32(w, "k", 1);
    ws_gguf_add_str(w, "k", "again");
    size_t len;
    uint8_t *img = image(w, &len);
    expect_open(img, len, WS_EFORMAT, "duplicate key 'k'", "duplicate keys");
    free(img);
    expect_raw("k", 13, "\0\0\0\0", 4, WS_EFORMAT, "value type 13", "unknown value type");
    expect_raw("k", WS_GGUF_BOOL, "\2", 1, WS_EFORMAT, "bool", "bool of 2");
    expect_raw("k", WS_GGUF_U64, "\1\2\3", 3, WS_EFORMAT, "past the end", "short U64");
    uint8_t body[64] = {0};
    put_le(body, 13, 4);
    expect_raw("k", WS_GGUF_ARRAY, body, 12, WS_EFORMAT, "element type 13", "array of an unknown type");
    put_le(body, WS_GGUF_U32, 4), put_le(body + 4, 1ull << 40, 8);
    expect_raw("k", WS_GGUF_ARRAY, body, 20, WS_EFORMAT, "past the end", "array count beyond the file");
    put_le(body, WS_GGUF_STRING, 4), put_le(body + 4, UINT64_MAX, 8);
    expect_raw("k", WS_GGUF_ARRAY, body, 20, WS_EFORMAT, "past the end", "array of 2^64-1 strings");
    put_le(body, WS_GGUF_BOOL, 4), put_le(body + 4, 3, 8), body[12] = 1, body[13] = 0, body[14] = 7;
    expect_raw("k", WS_GGUF_ARRAY, body, 15, WS_EFORMAT, "element 2", "array with a bool of 7");
    for (int i = 0; i < 5; i++) /* arrays in arrays, 5 levels: [[[[[]]]]] */
        put_le(body + 12 * i, i < 4 ? WS_GGUF_ARRAY : WS_GGUF_U8, 4), put_le(body + 12 * i + 4, i < 4, 8);
    expect_raw("k", WS_GGUF_ARRAY, body, 60, 0, NULL, "arrays nested 5 deep");
    uint8_t deep[12 * (WS_GGUF_MAX_NEST + 1)];
    for (int i = 0; i <= WS_GGUF_MAX_NEST; i++)
        put_le(deep + 12 * i, WS_GGUF_ARRAY, 4), put_le(deep + 12 * i + 4, 1, 8);
    expect_raw("k", WS_GGUF_ARRAY, deep, sizeof deep, WS_EFORMAT, "nested", "arrays nested too deep");
    put_le(body, WS_GGUF_ARRAY, 4), put_le(body + 4, 2, 8), put_le(body + 12, WS_GGUF_U8, 4),
        put_le(body + 16, 0, 8);
    expect_raw("k", WS_GGUF_ARRAY, body, 24, WS_EFORMAT, "past the end", "second inner array missing");
}

static void bad_alignment(void)
{
    static const uint32_t bad[] = {0, 48, 3};
    for (int i = 0; i < 3; i++) {
        ws_gguf_writer *w = ws_gguf_writer_new();
        ws_gguf_add_u32(w, "general.alignment", bad[i]);
        size_t len;
        uint8_t *img = image(w, &len);
        expect_open(img, len, WS_EFORMAT, "power of two", "alignment not a power of two");
        free(img);
    }
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_str(w, "general.alignment", "32");
    size_t len;
    uint8_t *img = image(w, &len);
    expect_open(img, len, WS_EFORMAT, "U32", "alignment as a string");
    free(img);
}

static void bad_tensors(void)
{
    expect_patched(T_A + TI_NDIMS, 0, 4, WS_EFORMAT, "n_dims 0", "n_dims 0");
    expect_patched(T_A + TI_NDIMS, 5, 4, WS_EFORMAT, "n_dims 5", "n_dims 5");
    expect_patched(T_A + TI_NE0, 0, 8, WS_EFORMAT, "ne[0] is 0", "ne[0] = 0");
    expect_patched(T_A + TI_NE1, UINT64_MAX, 8, WS_EFORMAT, "ne[1] is -1", "ne[1] = -1");
    expect_patched(T_A + TI_NE1, 1ull << 63, 8, WS_EFORMAT, "ne[1]", "ne[1] = -2^63");
    expect_patched(T_A + TI_NE0, 3ull << 61, 8, WS_EFORMAT, "overflows", "element count overflows");
    expect_patched2(T_A + TI_NE0, 1ull << 62, 8, T_A + TI_NE1, 1, 8, WS_EFORMAT, "byte size overflows",
                    "2^62 f32 values: the byte size overflows");
    expect_patched(T_B + TI_NE0, 48, 8, WS_EFORMAT, "multiple", "row not a multiple of the block");
    expect_patched(T_A + TI_TYPE, 7, 4, WS_EUNSUPPORTED, "'a' has type 7 (Q5_1)", "type Q5_1");
    expect_patched(T_A + TI_TYPE, 9, 4, WS_EUNSUPPORTED, "Q8_1", "type Q8_1 (not a weight type)");
    expect_patched(T_A + TI_TYPE, 15, 4, WS_EUNSUPPORTED, "Q8_K", "type Q8_K");
    expect_patched(T_A + TI_TYPE, 1000, 4, WS_EUNSUPPORTED, "type 1000", "unknown type id");
    expect_patched(T_B + TI_OFF, 40, 8, WS_EFORMAT, "not a multiple of the alignment", "offset not aligned");
    expect_patched(T_B + TI_OFF, 64, 8, WS_EFORMAT, "outside", "data past the end");
    expect_patched(T_B + TI_OFF, 1ull << 63, 8, WS_EFORMAT, "outside", "offset 2^63");
    expect_patched(T_B + TI_OFF, 0, 8, WS_EFORMAT, "overlap", "overlapping tensors");
    expect_patched(T_A + 0, 1000, 8, WS_EFORMAT, "past the end", "tensor name past the end");
    expect_patched(T_A + 8, 0, 1, WS_EFORMAT, "NUL", "NUL in a tensor name");
    expect_patched(T_B + 8, 'a', 1, WS_EFORMAT, "duplicate tensor name", "duplicate tensor names");
    size_t len;
    uint8_t *img = tiny(&len);
    expect_open(img, T_B + 41, WS_EFORMAT, "data section", "cut after the tensor infos");
    expect_open(img, 192 + 33, WS_EFORMAT, "outside", "last tensor one byte short");
    expect_open(img, 192 + 34, 0, NULL, "file ends with the last tensor");
    free(img);
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_tensor(w, "", 1, (const int64_t[]){1}, WS_QT_F32, "\0\0\0\0");
    img = image(w, &len);
    expect_open(img, len, WS_EFORMAT, "empty", "empty tensor name");
    free(img);
}

/* A valid file cut at every length below its end of data fails cleanly (each cut copied to a
 * buffer of its exact size); the whole file opens. */
static void truncation_at_every_byte(void)
{
    size_t len;
    uint8_t *img = image(rich_writer(), &len);
    ws_gguf *g = NULL;
    CHECK_EQ_INT(ws_gguf_open_mem(img, len, "rich", &g, NULL), 0);
    size_t end = 0;
    for (int i = 0; g && i < ws_gguf_n_tensors(g); i++) {
        const ws_gguf_tensor *t = ws_gguf_tensor_at(g, i);
        size_t e = (size_t)((const uint8_t *)t->data - img) + t->nbytes;
        end = e > end ? e : end;
    }
    ws_gguf_close(g);
    CHECK(end > 0 && end <= len);
    int bad = 0;
    for (size_t cut = 0; cut < end; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, img, cut);
        ws_error err = {0};
        int rc = ws_gguf_open_mem(copy, cut, "cut", &g, &err);
        if (rc != WS_EFORMAT || g || !err.msg[0]) {
            if (bad++ < 5)
                fprintf(stderr, "cut at %zu: rc %d, %s\n", cut, rc, err.msg);
            ws_gguf_close(g);
        }
        free(copy);
    }
    CHECK_EQ_INT(bad, 0);
    printf("  %zu cuts of a %zu-byte file all refused\n", end, len);
    free(img);
}

/* ---- the fuzz target's seeds ---- */

typedef struct {
    const char *name;
    uint8_t *img;
    size_t len;
    bool valid;
} seed;

static size_t make_seeds(seed *s)
{
    size_t n = 0, len;
    uint8_t *img = image(rich_writer(), &len);
    s[n++] = (seed){"rich.gguf", img, len, true};
    img = tiny(&len);
    s[n++] = (seed){"tiny.gguf", img, len, true};
    ws_gguf_writer *w = ws_gguf_writer_new();
    ws_gguf_add_u32(w, "general.alignment", 64);
    ws_gguf_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const[]){"<s>", "a", "b"}, 3);
    img = image(w, &len);
    s[n++] = (seed){"keys_only.gguf", img, len, true};
    static const struct {
        const char *name;
        size_t off;
        uint64_t v;
        int n;
    } cor[] = {
        {"bad_ndims.gguf", T_A + TI_NDIMS, 5, 4},
        {"bad_type.gguf", T_A + TI_TYPE, 7, 4},
        {"bad_offset.gguf", T_B + TI_OFF, 0, 8},
        {"bad_strlen.gguf", 56, 1000, 8},
        {"bad_count.gguf", 8, 3, 8},
        {"bad_ne.gguf", T_B + TI_NE0, 48, 8},
    };
    for (size_t i = 0; i < sizeof cor / sizeof cor[0]; i++) {
        img = tiny(&len);
        put_le(img + cor[i].off, cor[i].v, cor[i].n);
        s[n++] = (seed){cor[i].name, img, len, false};
    }
    img = tiny(&len);
    s[n++] = (seed){"cut_in_infos.gguf", img, T_B + 20, false};
    img = image(rich_writer(), &len);
    s[n++] = (seed){"cut_in_keys.gguf", img, len / 4, false};
    return n;
}

static void fuzz_seeds(void)
{
    seed s[16];
    size_t n = make_seeds(s);
    const char *dir = getenv("WS_WRITE_CORPUS");
    for (size_t i = 0; i < n; i++) {
        expect_open(s[i].img, s[i].len, s[i].valid ? 0 : ANY_ERROR, NULL, s[i].name);
        if (dir && *dir) {
            char path[512];
            ws_error err = {0};
            snprintf(path, sizeof path, "%s/%s", dir, s[i].name);
            CHECK_EQ_INT(ws_file_write_atomic(path, s[i].img, s[i].len, &err), 0);
        }
        free(s[i].img);
    }
}

/* Every file of the committed corpus (seeds and the inputs the fuzzer found) opens or fails
 * cleanly; the valid seeds open. */
static void committed_corpus(void)
{
    DIR *d = opendir("fuzz/corpus/fuzz_gguf");
    CHECK(d != NULL);
    if (!d)
        return;
    int files = 0, ok = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], *data = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "fuzz/corpus/fuzz_gguf/%s", e->d_name);
        CHECK_EQ_INT(ws_file_read(path, 1u << 22, &data, &len, NULL), 0);
        ws_gguf *g = NULL;
        ws_error err = {0};
        int rc = ws_gguf_open_mem(data, len, e->d_name, &g, &err);
        CHECK(rc == 0 ? g != NULL : g == NULL && err.msg[0]);
        ok += rc == 0;
        files++;
        ws_gguf_close(g);
        free(data);
    }
    closedir(d);
    CHECK(files >= 10 && ok >= 3);
}

WS_TEST_MAIN(T(roundtrip_every_type), T(writer_alignment_and_bad_tensor), T(base_model),
             T(tiny_layout_is_as_described), T(bad_header), T(bad_metadata_strings), T(bad_metadata_values),
             T(bad_alignment), T(bad_tensors), T(truncation_at_every_byte), T(fuzz_seeds),
             T(committed_corpus))
