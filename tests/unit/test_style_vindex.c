/* Unit tests for src/style: text helpers, the hashed n-gram embedder and the vector index. */
#include "harness.h"

#include <unistd.h>

#include "style/embed.h"
#include "style/text.h"
#include "style/vindex.h"

static void utf8_decodes_and_replaces(void)
{
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xc3";
    size_t i = 0, n = strlen(s);
    CHECK_EQ_INT(ws_utf8_next(s, n, &i), 'a');
    CHECK_EQ_INT(ws_utf8_next(s, n, &i), 0xE9);
    CHECK_EQ_INT(ws_utf8_next(s, n, &i), 0x20AC);
    CHECK_EQ_INT(ws_utf8_next(s, n, &i), 0x1F600);
    CHECK_EQ_INT(ws_utf8_next(s, n, &i), 0xFFFD); /* 0xff */
    CHECK_EQ_INT(ws_utf8_next(s, n, &i), 0xFFFD); /* truncated */
    CHECK_EQ_INT(i, n);
    const char *sur = "\xed\xa0\x80"; /* encoded surrogate */
    i = 0;
    CHECK_EQ_INT(ws_utf8_next(sur, 3, &i), 0xFFFD);
    char out[4];
    CHECK_EQ_INT(ws_utf8_put(out, 0x1F600), 4);
    CHECK(memcmp(out, "\xf0\x9f\x98\x80", 4) == 0);
    CHECK_EQ_INT(ws_utf8_count("h\xc3\xa9llo", 6), 5);
}

static size_t emoji_len(const char *s)
{
    return ws_emoji_at(s, strlen(s), 0);
}

static void emoji_graphemes(void)
{
    CHECK_EQ_INT(emoji_len("\xf0\x9f\x98\x82 lol"), 4);              /* 😂 */
    CHECK_EQ_INT(emoji_len("\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd!"), 8); /* 👍🏽 */
    CHECK_EQ_INT(emoji_len("\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa"), 8);  /* 🇩🇪 */
    CHECK_EQ_INT(emoji_len("\xf0\x9f\x87\xa9x"), 0);                 /* lone indicator */
    /* 👨‍👩‍👧 family: man ZWJ woman ZWJ girl */
    CHECK_EQ_INT(emoji_len("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7"), 18);
    CHECK_EQ_INT(emoji_len("\xe2\x9d\xa4\xef\xb8\x8f"), 6);  /* ❤️ */
    CHECK_EQ_INT(emoji_len("\xe2\x98\xba\xef\xb8\x8f"), 6);  /* ☺️ */
    CHECK_EQ_INT(emoji_len("\xe2\x98\xba"), 0);              /* ☺ text style */
    CHECK_EQ_INT(emoji_len("1\xef\xb8\x8f\xe2\x83\xa3"), 7); /* 1️⃣ */
    CHECK_EQ_INT(emoji_len("1"), 0);
    CHECK_EQ_INT(emoji_len("\xc2\xa9"), 0); /* © */
    /* 🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland: black flag + tags */
    CHECK_EQ_INT(emoji_len("\xf0\x9f\x8f\xb4\xf3\xa0\x81\xa7\xf3\xa0\x81\xa2\xf3\xa0\x81\xb3\xf3\xa0\x81\xa3"
                           "\xf3\xa0\x81\xb4\xf3\xa0\x81\xbf"),
                 28);
    /* 👩🏽‍💻 woman, skin tone, ZWJ, laptop */
    CHECK_EQ_INT(emoji_len("\xf0\x9f\x91\xa9\xf0\x9f\x8f\xbd\xe2\x80\x8d\xf0\x9f\x92\xbb"), 15);
}

static void scripts_and_case(void)
{
    CHECK_EQ_INT(ws_script_of('a'), WS_SCRIPT_LATIN);
    CHECK_EQ_INT(ws_script_of(0x0436), WS_SCRIPT_CYRILLIC);
    CHECK_EQ_INT(ws_script_of(0x0645), WS_SCRIPT_ARABIC);
    CHECK_EQ_INT(ws_script_of(0x4F60), WS_SCRIPT_HAN);
    CHECK_EQ_INT(ws_script_of('7'), WS_SCRIPT_NONE);
    CHECK_EQ_INT(ws_cp_case('Q'), 1);
    CHECK_EQ_INT(ws_cp_case(0xE9), -1);
    CHECK_EQ_INT(ws_cp_lower(0xC9), 0xE9);
    CHECK_EQ_INT(ws_cp_lower(0x0416), 0x0436);
    CHECK_EQ_INT(ws_cp_lower(0x0401), 0x0451);
    CHECK_EQ_INT(ws_cp_lower(0x0394), 0x03B4);
    CHECK(ws_cp_is_space(0x3000));
    CHECK(!ws_cp_is_space('x'));
}

static char *lowered(const char *s)
{
    ws_buf b = WS_BUF_INIT;
    ws_text_lower_capitalised(s, strlen(s), &b);
    return ws_buf_take(&b);
}

/* Word case shapes, and a lower-case writer's version of a text: capitalised words (a lone "I"
 * included) lower-cased, all caps and the rest as they are, any script with case. */
static void case_shapes_and_lowering(void)
{
    ws_case_shapes c = {0};
    ws_text_case_shapes("I said WAIT, Lisbon in 5 days iPhone x\nÉcole ok", &c);
    CHECK_EQ_INT((int)c.capitalised, 3); /* I, Lisbon, École */
    CHECK_EQ_INT((int)c.caps, 1);        /* WAIT */
    CHECK_EQ_INT((int)c.lower, 5);       /* said in days x ok; "5" and "iPhone" count in none */
    char *s = lowered("I'm off to Lisbon!! SO good.\nЖора and NASA, iPhone 2x");
    CHECK_EQ_STR(s, "i'm off to lisbon!! SO good.\nжора and NASA, iPhone 2x");
    free(s);
    s = lowered("\xff Bad byte Kept \xf0\x9f\x98\x82 Émoji");
    CHECK_EQ_STR(s, "\xff bad byte kept \xf0\x9f\x98\x82 émoji");
    free(s);
    CHECK_EQ_INT((int)ws_text_whole_words("see u in Lis", 12), 9); /* "Lis" may go on */
    CHECK_EQ_INT((int)ws_text_whole_words("see u in Lis ", 13), 13);
    CHECK_EQ_INT((int)ws_text_whole_words("Lis", 3), 0);
    CHECK_EQ_INT((int)ws_text_whole_words("", 0), 0);
}

static void hash_embedder_is_normalised_and_similar(void)
{
    ws_embedder *e = ws_embed_hash_new(512);
    CHECK(e != NULL);
    CHECK_EQ_STR(e->name, "hash-ngram-512");
    float a[512], b[512], c[512], d[512];
    const char *ta = "are we still meeting tomorrow at the cafe?";
    const char *tb = "Are we STILL meeting tomorrow at the cafe";
    const char *tc = "the invoice for march is attached, please check";
    CHECK_EQ_INT(ws_embedder_embed(e, ta, strlen(ta), a, NULL), 0);
    CHECK_EQ_INT(ws_embedder_embed(e, tb, strlen(tb), b, NULL), 0);
    CHECK_EQ_INT(ws_embedder_embed(e, tc, strlen(tc), c, NULL), 0);
    CHECK_NEAR(ws_vec_dot(a, a, 512), 1.0, 1e-5);
    CHECK(ws_vec_dot(a, b, 512) > 0.9f);
    CHECK(ws_vec_dot(a, c, 512) < 0.5f);
    CHECK_EQ_INT(ws_embedder_embed(e, "   ", 3, d, NULL), 0); /* no features: all zero */
    CHECK_NEAR(ws_vec_dot(d, d, 512), 0.0, 0);
    CHECK(ws_embed_hash_new(3) == NULL);
    ws_embedder_free(e);
    ws_embedder_free(NULL);
}

static uint64_t rs = 42;
static float frand(void)
{
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rs >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
}

/* n clustered random vectors: cluster centres plus noise, so neighbourhoods are meaningful */
static ws_vindex *make_index(size_t n, size_t dim, float *data)
{
    ws_vindex *ix = ws_vindex_new(dim, "test-space");
    float centres[16][64];
    for (int c = 0; c < 16; c++)
        for (size_t j = 0; j < dim; j++)
            centres[c][j] = frand();
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++)
            data[i * dim + j] = centres[i % 16][j] + 0.4f * frand();
        ws_vec_normalize(data + i * dim, dim);
        CHECK_EQ_INT(ws_vindex_add(ix, (uint32_t)(1000 + i), data + i * dim), 0);
    }
    return ix;
}

static void exact_search_finds_itself(void)
{
    enum { N = 300, D = 64 };
    float *data = malloc(sizeof(float) * N * D);
    ws_vindex *ix = make_index(N, D, data);
    ws_vhit hits[10];
    for (size_t i = 0; i < N; i += 37) {
        size_t n = ws_vindex_search_exact(ix, data + i * D, 10, hits);
        CHECK_EQ_INT(n, 10);
        CHECK_EQ_INT(hits[0].id, 1000 + i);
        CHECK_NEAR(hits[0].score, 1.0, 1e-4);
        for (size_t k = 1; k < n; k++)
            CHECK(hits[k - 1].score >= hits[k].score);
    }
    /* brute-force check of the top-10 set for one query */
    float q[D];
    for (size_t j = 0; j < D; j++)
        q[j] = frand();
    ws_vec_normalize(q, D);
    size_t n = ws_vindex_search_exact(ix, q, 10, hits);
    int better = 0;
    for (size_t i = 0; i < N; i++)
        if (ws_vec_dot(q, data + i * D, D) > hits[n - 1].score + 1e-6f)
            better++;
    CHECK_EQ_INT(better, 9);
    CHECK_EQ_INT(ws_vindex_search_exact(ix, q, 0, hits), 0);
    ws_vhit all[400];
    CHECK_EQ_INT(ws_vindex_search_exact(ix, q, 400, all), N);
    ws_vindex_free(ix);
    free(data);
}

static void hnsw_recall_matches_exact(void)
{
    enum { N = 2000, D = 32 };
    float *data = malloc(sizeof(float) * N * D);
    ws_vindex *ix = make_index(N, D, data);
    ws_hnsw_params hp = {.M = 12, .ef_construction = 100, .seed = 7};
    CHECK_EQ_INT(ws_vindex_build_hnsw(ix, &hp), 0);
    CHECK(ws_vindex_has_hnsw(ix));
    /* a few more inserts after the build go into the graph too */
    float extra[D];
    for (size_t j = 0; j < D; j++)
        extra[j] = frand();
    CHECK_EQ_INT(ws_vindex_add(ix, 99999, extra), 0);
    ws_vhit ex[10], ap[10];
    size_t found = 0, total = 0;
    for (int t = 0; t < 50; t++) {
        float q[D];
        for (size_t j = 0; j < D; j++)
            q[j] = data[(size_t)(t * 31 % N) * D + j] + 0.3f * frand();
        ws_vec_normalize(q, D);
        size_t ne = ws_vindex_search_exact(ix, q, 10, ex);
        size_t na = ws_vindex_search(ix, q, 10, 64, ap);
        CHECK_EQ_INT(na, 10);
        for (size_t a = 0; a < na; a++)
            for (size_t b = 0; b < ne; b++)
                if (ap[a].id == ex[b].id)
                    found++;
        total += ne;
    }
    double recall = (double)found / (double)total;
    CHECK(recall > 0.9);
    ws_vhit one;
    ws_vindex_search(ix, extra, 1, 32, &one);
    CHECK_EQ_INT(one.id, 99999);
    ws_vindex_free(ix);
    free(data);
}

static void save_load_roundtrip_and_corruption(void)
{
    enum { N = 500, D = 16 };
    float *data = malloc(sizeof(float) * N * D);
    char path[] = "/tmp/ws_vindex_testXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    for (int with_graph = 0; with_graph < 2; with_graph++) {
        ws_vindex *ix = make_index(N, D, data);
        if (with_graph)
            CHECK_EQ_INT(ws_vindex_build_hnsw(ix, NULL), 0);
        ws_error err = {0};
        CHECK_EQ_INT(ws_vindex_save(ix, path, &err), 0);
        ws_vindex *back = NULL;
        CHECK_EQ_INT(ws_vindex_load(path, &back, &err), 0);
        CHECK(back != NULL);
        if (!back)
            break;
        CHECK_EQ_INT(ws_vindex_count(back), N);
        CHECK_EQ_STR(ws_vindex_space(back), "test-space");
        CHECK_EQ_INT(ws_vindex_has_hnsw(back), with_graph);
        ws_vhit h1[5], h2[5];
        size_t n1 = ws_vindex_search(ix, data + 7 * D, 5, 32, h1);
        size_t n2 = ws_vindex_search(back, data + 7 * D, 5, 32, h2);
        CHECK_EQ_INT(n1, n2);
        for (size_t k = 0; k < n1 && k < n2; k++)
            CHECK_EQ_INT(h1[k].id, h2[k].id);
        /* corruption: every flipped byte or truncation is a clean error */
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        rewind(f);
        unsigned char *buf = malloc((size_t)sz);
        CHECK_EQ_INT(fread(buf, 1, (size_t)sz, f), sz);
        fclose(f);
        ws_vindex *bad = NULL;
        CHECK_EQ_INT(ws_vindex_load_memory(buf, (size_t)sz - 1, &bad, &err), WS_EFORMAT);
        CHECK(strstr(err.msg, "bytes") != NULL);
        buf[sz - 3] ^= 0x40;
        CHECK_EQ_INT(ws_vindex_load_memory(buf, (size_t)sz, &bad, &err), WS_EFORMAT);
        CHECK(strstr(err.msg, "checksum") != NULL);
        buf[sz - 3] ^= 0x40;
        buf[8] = 9;
        CHECK_EQ_INT(ws_vindex_load_memory(buf, (size_t)sz, &bad, &err), WS_EUNSUPPORTED);
        buf[0] = 'X';
        CHECK_EQ_INT(ws_vindex_load_memory(buf, (size_t)sz, &bad, &err), WS_EFORMAT);
        CHECK(bad == NULL);
        free(buf);
        ws_vindex_free(ix);
        ws_vindex_free(back);
    }
    /* an empty index, with or without a graph, round-trips */
    ws_vindex *empty = ws_vindex_new(D, "test-space");
    CHECK_EQ_INT(ws_vindex_build_hnsw(empty, NULL), 0);
    CHECK_EQ_INT(ws_vindex_save(empty, path, NULL), 0);
    ws_vindex *none = NULL;
    CHECK_EQ_INT(ws_vindex_load(path, &none, NULL), 0);
    CHECK(none && ws_vindex_count(none) == 0);
    ws_vhit h0[2];
    CHECK_EQ_INT(ws_vindex_search(empty, data, 2, 8, h0), 0);
    ws_vindex_free(none);
    ws_vindex_free(empty);
    none = NULL;
    CHECK_EQ_INT(ws_vindex_load("/nonexistent/ix.bin", &none, NULL), WS_ENOENT);
    remove(path);
    free(data);
}

WS_TEST_MAIN(T(utf8_decodes_and_replaces), T(emoji_graphemes), T(scripts_and_case),
             T(case_shapes_and_lowering), T(hash_embedder_is_normalised_and_similar),
             T(exact_search_finds_itself), T(hnsw_recall_matches_exact),
             T(save_load_roundtrip_and_corruption))
