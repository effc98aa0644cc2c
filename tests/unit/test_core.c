/* Unit tests for src/core: buffers, arena, JSON writer and parser. */
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/fanout.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/utf8.h"
#include "core/json.h"
#include "core/lazylib.h"
#include <math.h>

static void buf_grows_and_caps(void)
{
    ws_buf b = WS_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(ws_buf_printf(&b, "%d,", i), 0);
    CHECK(b.len > 2000);
    CHECK_EQ_INT(b.data[b.len], 0);
    ws_buf_free(&b);
    ws_buf capped = {.limit = 8};
    CHECK_EQ_INT(ws_buf_puts(&capped, "12345678"), 0);
    CHECK_EQ_INT(ws_buf_putc(&capped, 'x'), WS_ETOOBIG);
    CHECK_EQ_INT(capped.len, 8);
    ws_buf_free(&capped);
    /* printf: fits the free space (one pass), needs growth (two), refused by the cap */
    ws_buf p = WS_BUF_INIT;
    CHECK_EQ_INT(ws_buf_printf(&p, "%s-%d", "ab", 7), 0);
    CHECK_EQ_STR(p.data, "ab-7");
    char big[300];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(ws_buf_printf(&p, "%s", big), 0);
    CHECK_EQ_INT(p.len, 4 + 299);
    CHECK_EQ_INT(p.data[p.len], 0);
    ws_buf_free(&p);
    ws_buf pc = {.limit = 6};
    CHECK_EQ_INT(ws_buf_printf(&pc, "%d", 1234), 0);
    CHECK_EQ_INT(ws_buf_printf(&pc, "%d", 567), WS_ETOOBIG);
    CHECK_EQ_STR(pc.data, "1234");
    CHECK_EQ_INT(ws_buf_printf(&pc, "%s", big), WS_ETOOBIG);
    CHECK_EQ_STR(pc.data, "1234");
    ws_buf_free(&pc);
    ws_buf n = WS_BUF_INIT;
    const long long vals[] = {0, 7, -7, 1234567890123LL, -9223372036854775807LL - 1};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char want[32];
        snprintf(want, sizeof want, "%lld", vals[i]);
        ws_buf_reset(&n);
        CHECK_EQ_INT(ws_buf_put_i64(&n, vals[i]), 0);
        CHECK_EQ_STR(n.data, want);
    }
    ws_buf_free(&n);
}

static int hook_calls;
static void count_hook(void *arg)
{
    hook_calls += *(int *)arg;
}

static void arena_allocates_and_runs_hooks(void)
{
    ws_arena *a = ws_arena_new(64);
    static int one = 1;
    for (int i = 0; i < 100; i++) {
        char *p = ws_arena_alloc(a, 100);
        memset(p, 'x', 100);
        CHECK(((uintptr_t)p & 15) == 0);
    }
    ws_arena_on_free(a, count_hook, &one);
    ws_arena_on_free(a, count_hook, &one);
    /* reset: hooks run once, nothing is in use, the arena serves again */
    int before = hook_calls;
    ws_arena_reset(a);
    CHECK_EQ_INT(hook_calls, before + 2);
    CHECK_EQ_INT(ws_arena_used(a), 0);
    char *q = ws_arena_alloc(a, 50);
    memset(q, 'z', 50);
    CHECK_EQ_INT(ws_arena_used(a), 64);
    ws_arena_reset(a);
    CHECK_EQ_INT(hook_calls, before + 2);
    ws_arena_on_free(a, count_hook, &one);
    ws_arena_on_free(a, count_hook, &one);
    ws_arena_free(a);
    CHECK_EQ_INT(hook_calls, 4);
    ws_arena_free(NULL);
}

static void json_writer_escapes(void)
{
    ws_buf b = WS_BUF_INIT;
    ws_json_put_str(&b, "a\"b\\c\n\x01\xf0\x9f\x98\x80", 11);
    CHECK_EQ_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\xf0\x9f\x98\x80\"");
    ws_buf_reset(&b);
    /* outside long long's range (the integer path must not convert it) and the sign of zero */
    ws_json_put_num(&b, 1e300);
    CHECK_EQ_STR(b.data, "1e+300");
    ws_buf_reset(&b);
    ws_json_put_num(&b, -0.0);
    CHECK_EQ_STR(b.data, "-0");
    ws_buf_reset(&b);
    ws_json_put_num(&b, 0.1);
    CHECK_EQ_STR(b.data, "0.1");
    ws_buf_reset(&b);
    ws_json_put_num(&b, -42);
    CHECK_EQ_STR(b.data, "-42");
    ws_buf_free(&b);
}

static void json_parses_documents(void)
{
    const char *text = " {\"a\": [1, 2.5e1, true, null, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {\"c\": \"d\"}} ";
    ws_json_doc *doc = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_json_parse(text, strlen(text), &doc, &err), 0);
    const ws_json *root = ws_json_root(doc);
    const ws_json *a = ws_json_get(root, "a");
    CHECK(a && a->type == WS_JSON_ARRAY && a->len == 5);
    CHECK_NEAR(ws_json_at(a, 1)->number, 25, 0);
    CHECK(ws_json_at(a, 2)->boolean);
    CHECK_EQ_INT(ws_json_at(a, 3)->type, WS_JSON_NULL);
    CHECK_EQ_STR(ws_json_at(a, 4)->str, "x\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_EQ_STR(ws_json_get_str(ws_json_get(root, "b"), "c"), "d");
    CHECK(ws_json_get(root, "zz") == NULL);
    ws_json_doc_free(doc);
}

static void json_rejects_bad_input(void)
{
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "01", "tru", "[1] x", "\"\x01\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ws_json_doc *doc = NULL;
        ws_error err = {0};
        CHECK(ws_json_parse(bad[i], strlen(bad[i]), &doc, &err) == WS_EFORMAT);
        CHECK(doc == NULL);
        CHECK(strstr(err.msg, "invalid JSON at byte") != NULL);
    }
    char deep[400];
    memset(deep, '[', sizeof deep);
    ws_json_doc *doc = NULL;
    CHECK(ws_json_parse(deep, sizeof deep, &doc, NULL) == WS_EFORMAT);
}

static void files_read_capped_and_write_atomically(void)
{
    char dir[] = "/tmp/ws-test-core-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/f.txt", dir);
    ws_error err = {0};
    CHECK_EQ_INT(ws_file_write_atomic(path, "hello world", 11, &err), 0);
    char *data = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ws_file_read(path, 100, &data, &len, &err), 0);
    CHECK_EQ_INT(len, 11);
    CHECK_EQ_STR(data, "hello world");
    free(data);
    CHECK_EQ_INT(ws_file_read(path, 10, &data, &len, &err), WS_ETOOBIG);
    CHECK(strstr(err.msg, "larger than 10 bytes") != NULL);
    CHECK_EQ_INT(ws_file_read("/nonexistent/x", 10, &data, &len, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_file_write_atomic("/nonexistent/dir/x", "a", 1, &err), WS_EIO);
    /* a folder and its parents, private; again is fine; a file in the way is an error */
    char deep[96];
    snprintf(deep, sizeof deep, "%s/a/b", dir);
    CHECK_EQ_INT(ws_file_make_dirs(deep, &err), 0);
    CHECK_EQ_INT(ws_file_make_dirs(deep, &err), 0);
    struct stat st;
    CHECK(stat(deep, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    CHECK_EQ_INT(ws_file_make_dirs(path, &err), WS_EIO);
    rmdir(deep);
    snprintf(deep, sizeof deep, "%s/a", dir);
    rmdir(deep);
    unlink(path);
    rmdir(dir);
}

/* the lazy loader: a library's functions resolve into a typed table once; a missing library
 * or symbol is a clear error naming what to install, remembered rather than retried */
#define MATH_FUNCTIONS(X) X(cos) X(sqrt)
typedef struct {
    MATH_FUNCTIONS(WS_LAZYLIB_SLOT)
} math_api;
static math_api math_table, absent_table;
static const char *const math_names[] = {MATH_FUNCTIONS(WS_LAZYLIB_NAME)};
static const char *const bogus_names[] = {"cos", "ws_no_such_function"};

static void lazylib_loads_once_and_names_what_is_missing(void)
{
    ws_error err = {0};
    ws_lazylib m = WS_LAZYLIB_INIT("libm.so.6", "libc6", math_names, math_table);
    CHECK_EQ_INT(ws_lazylib_load(&m, &err), 0);
    CHECK_EQ_INT(ws_lazylib_load(&m, &err), 0);
    CHECK(math_table.sqrt(16.0) == 4.0);
    CHECK(math_table.cos(0.0) == 1.0);
    ws_lazylib gone = WS_LAZYLIB_INIT("libws-absent.so.9", "ws-absent9", math_names, absent_table);
    CHECK_EQ_INT(ws_lazylib_load(&gone, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "libws-absent.so.9") && strstr(err.msg, "install ws-absent9"));
    CHECK_EQ_INT(ws_lazylib_load(&gone, &err), WS_EUNSUPPORTED);
    ws_lazylib old = WS_LAZYLIB_INIT("libm.so.6", "libc6", bogus_names, absent_table);
    CHECK_EQ_INT(ws_lazylib_load(&old, &err), WS_EUNSUPPORTED);
    CHECK(strstr(err.msg, "ws_no_such_function") != NULL);
}

/* the lenient decoder (files inside JSON): both alphabets, padding and line breaks ignored,
 * anything else and more than the room refused */
static void base64_lenient_decodes_both_alphabets(void)
{
    unsigned char out[16];
    CHECK(ws_base64_decode_lenient("aGk=\r\n", 6, out, sizeof out) == 2 && !memcmp(out, "hi", 2));
    CHECK(ws_base64_decode_lenient("+/8=", 4, out, sizeof out) == 2 && out[0] == 0xfb && out[1] == 0xff);
    CHECK(ws_base64_decode_lenient("-_8", 3, out, sizeof out) == 2 && out[0] == 0xfb && out[1] == 0xff);
    CHECK(ws_base64_decode_lenient("aG!k", 4, out, sizeof out) == -1);
    CHECK(ws_base64_decode_lenient("aGVsbG8=", 8, out, 4) == -1);
    char enc[WS_BASE64URL_LEN(5) + 1];
    CHECK_EQ_INT(ws_base64url_encode("hello", 5, enc), 7);
    CHECK(ws_base64url_decode(enc, 7, out, sizeof out) == 5 && !memcmp(out, "hello", 5));
}

/* every part runs exactly once, each on its own item; item_size 0 hands all the same pointer */
typedef struct fan_item {
    size_t seen;
    _Atomic int *shared;
} fan_item;

static void fan_one(void *arg)
{
    fan_item *it = arg;
    it->seen++;
    if (it->shared)
        (*it->shared)++;
}

static void fan_shared(void *arg)
{
    _Atomic int *n = arg;
    (*n)++;
}

static void fanout_runs_every_part_once(void)
{
    fan_item items[7] = {{0}};
    ws_fanout(7, fan_one, items, sizeof *items);
    for (int i = 0; i < 7; i++)
        CHECK_EQ_INT(items[i].seen, 1);
    _Atomic int n = 0;
    ws_fanout(5, fan_shared, &n, 0);
    CHECK_EQ_INT(n, 5);
    ws_fanout(1, fan_shared, &n, 0);
    ws_fanout(0, fan_shared, &n, 0);
    CHECK_EQ_INT(n, 6);
}

/* FNV-1a's published test vectors; continuing a hash equals hashing the concatenation */
static void hash_is_fnv1a(void)
{
    CHECK(ws_hash_fnv1a("", 0) == 0xcbf29ce484222325ull);
    CHECK(ws_hash_fnv1a("a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(ws_hash_fnv1a("foobar", 6) == 0x85944171f73967e8ull);
    CHECK(ws_hash_fnv1a_more(ws_hash_fnv1a("foo", 3), "bar", 3) == ws_hash_fnv1a("foobar", 6));
}

/* the one validator: strict (overlongs, surrogates, > U+10FFFF and cut sequences refused) */
static void utf8_validator_is_strict(void)
{
    CHECK(ws_utf8_valid("h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    CHECK(!ws_utf8_valid("\xc0\xaf", 2));
    CHECK(!ws_utf8_valid("\xed\xa0\x80", 3));
    CHECK(!ws_utf8_valid("\xf4\x90\x80\x80", 4));
    CHECK_EQ_INT(ws_utf8_valid_prefix("ab\xe2\x82", 4), 2);
}

WS_TEST_MAIN(T(fanout_runs_every_part_once), T(hash_is_fnv1a), T(utf8_validator_is_strict),
             T(base64_lenient_decodes_both_alphabets), T(lazylib_loads_once_and_names_what_is_missing),
             T(files_read_capped_and_write_atomically), T(buf_grows_and_caps),
             T(arena_allocates_and_runs_hooks), T(json_writer_escapes), T(json_parses_documents),
             T(json_rejects_bad_input))
