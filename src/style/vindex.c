/* Vector index: exact scan, HNSW graph (Malkov & Yashunin) and the binary file format. */
#include "style/vindex.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/mem.h"
#include "style/embed.h"

struct ws_vindex {
    size_t dim, count, cap;
    char space[64];
    uint32_t *ids;
    float *vecs; /* count * dim */
    /* HNSW */
    bool hnsw;
    uint32_t M, ef_construction;
    uint64_t rng;
    int max_level;
    uint32_t entry;
    uint8_t *levels;  /* per node */
    uint32_t **links; /* per node: level 0 block [n, 2M slots], then per level [n, M slots] */
};

static size_t cap_of(const ws_vindex *ix, int level)
{
    return level == 0 ? 2 * ix->M : ix->M;
}

static uint32_t *links_at(const ws_vindex *ix, uint32_t node, int level)
{
    uint32_t *p = ix->links[node];
    if (level == 0)
        return p;
    return p + (1 + 2 * ix->M) + (size_t)(level - 1) * (1 + ix->M);
}

ws_vindex *ws_vindex_new(size_t dim, const char *space)
{
    if (dim == 0 || dim > WS_VINDEX_MAX_DIM)
        return NULL;
    ws_vindex *ix = ws_xcalloc(1, sizeof *ix);
    ix->dim = dim;
    snprintf(ix->space, sizeof ix->space, "%s", space ? space : "");
    return ix;
}

static void drop_graph(ws_vindex *ix)
{
    if (ix->links)
        for (size_t i = 0; i < ix->count; i++)
            free(ix->links[i]);
    free(ix->links);
    free(ix->levels);
    ix->links = NULL;
    ix->levels = NULL;
    ix->hnsw = false;
}

void ws_vindex_free(ws_vindex *ix)
{
    if (!ix)
        return;
    drop_graph(ix);
    free(ix->ids);
    free(ix->vecs);
    free(ix);
}

size_t ws_vindex_count(const ws_vindex *ix)
{
    return ix->count;
}
size_t ws_vindex_dim(const ws_vindex *ix)
{
    return ix->dim;
}
const char *ws_vindex_space(const ws_vindex *ix)
{
    return ix->space;
}
bool ws_vindex_has_hnsw(const ws_vindex *ix)
{
    return ix->hnsw;
}
uint32_t ws_vindex_id(const ws_vindex *ix, size_t row)
{
    return ix->ids[row];
}
const float *ws_vindex_vector(const ws_vindex *ix, size_t row)
{
    return ix->vecs + row * ix->dim;
}

static void reserve(ws_vindex *ix, size_t n)
{
    if (n <= ix->cap)
        return;
    size_t cap = ix->cap ? ix->cap : 64;
    while (cap < n)
        cap *= 2;
    ix->ids = ws_xrealloc(ix->ids, cap * sizeof *ix->ids);
    ix->vecs = ws_xrealloc(ix->vecs, cap * ix->dim * sizeof *ix->vecs);
    if (ix->hnsw) {
        ix->levels = ws_xrealloc(ix->levels, cap);
        ix->links = ws_xrealloc(ix->links, cap * sizeof *ix->links);
    }
    ix->cap = cap;
}

/* ---- top-k heaps ------------------------------------------------------------------------ */

/* A binary heap of hits; min-heap on score when min is true (worst on top), else max-heap. */
typedef struct heap {
    ws_vhit *v;
    size_t n, cap;
    bool min;
} heap;

static bool before(const heap *h, ws_vhit a, ws_vhit b)
{
    return h->min ? a.score < b.score : a.score > b.score;
}

static void heap_push(heap *h, ws_vhit x)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = ws_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(h, x, h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
}

static ws_vhit heap_pop(heap *h)
{
    ws_vhit top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        ws_vhit best = x;
        if (l < h->n && before(h, h->v[l], best)) {
            m = l;
            best = h->v[l];
        }
        if (r < h->n && before(h, h->v[r], best)) {
            m = r;
        }
        if (m == i)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n)
        h->v[i] = x;
    return top;
}

static int cmp_hit_desc(const void *a, const void *b)
{
    const ws_vhit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ---- exact search ------------------------------------------------------------------------- */

size_t ws_vindex_search_exact(const ws_vindex *ix, const float *q, size_t k, ws_vhit *out)
{
    if (k == 0 || ix->count == 0)
        return 0;
    if (k > ix->count)
        k = ix->count;
    /* out[] doubles as a min-heap of the k best rows (worst on top). */
    heap h = {out, 0, k, true};
    for (size_t r = 0; r < ix->count; r++) {
        float s = ws_vec_dot(q, ix->vecs + r * ix->dim, ix->dim);
        if (h.n < k) {
            heap_push(&h, (ws_vhit){(uint32_t)r, s});
        } else if (s > h.v[0].score) {
            heap_pop(&h);
            heap_push(&h, (ws_vhit){(uint32_t)r, s});
        }
    }
    qsort(out, h.n, sizeof *out, cmp_hit_desc);
    for (size_t i = 0; i < h.n; i++)
        out[i].id = ix->ids[out[i].id];
    return h.n;
}

/* ---- HNSW --------------------------------------------------------------------------------- */

/* Visited set: open addressing over node numbers (+1 so 0 means empty). */
typedef struct visited {
    uint32_t *slot;
    size_t mask, n;
} visited;

static void visited_init(visited *v, size_t hint)
{
    size_t cap = 256;
    while (cap < hint * 2)
        cap *= 2;
    v->slot = ws_xcalloc(cap, sizeof *v->slot);
    v->mask = cap - 1;
    v->n = 0;
}

/* Returns true when x was not in the set (and adds it). */
static bool visited_add(visited *v, uint32_t x)
{
    if ((v->n + 1) * 2 > v->mask + 1) {
        visited old = *v;
        visited_init(v, (old.mask + 1));
        for (size_t i = 0; i <= old.mask; i++)
            if (old.slot[i])
                visited_add(v, old.slot[i] - 1);
        free(old.slot);
    }
    size_t i = (x * 2654435761u) & v->mask;
    while (v->slot[i]) {
        if (v->slot[i] == x + 1)
            return false;
        i = (i + 1) & v->mask;
    }
    v->slot[i] = x + 1;
    v->n++;
    return true;
}

static float sim(const ws_vindex *ix, const float *q, uint32_t node)
{
    return ws_vec_dot(q, ix->vecs + (size_t)node * ix->dim, ix->dim);
}

/* Beam search on one level from entry ep; leaves the best ef nodes in *res (min-heap). */
static void search_layer(const ws_vindex *ix, const float *q, ws_vhit ep, size_t ef, int level, heap *res)
{
    heap cand = {NULL, 0, 0, false};
    visited vis;
    visited_init(&vis, ef * ix->M * 2);
    visited_add(&vis, ep.id);
    heap_push(&cand, ep);
    heap_push(res, ep);
    while (cand.n) {
        ws_vhit c = heap_pop(&cand);
        if (res->n >= ef && c.score < res->v[0].score)
            break;
        const uint32_t *l = links_at(ix, c.id, level);
        /* mark and prefetch the unseen neighbours first, then score them */
        uint32_t todo[2 * WS_VINDEX_MAX_M];
        uint32_t nt = 0;
        for (uint32_t j = 0; j < l[0]; j++) {
            uint32_t nb = l[1 + j];
            if (!visited_add(&vis, nb))
                continue;
            const char *v = (const char *)(ix->vecs + (size_t)nb * ix->dim);
            __builtin_prefetch(v);
            __builtin_prefetch(v + 64);
            __builtin_prefetch(v + 128);
            __builtin_prefetch(v + 192);
            todo[nt++] = nb;
        }
        for (uint32_t j = 0; j < nt; j++) {
            uint32_t nb = todo[j];
            float s = sim(ix, q, nb);
            if (res->n < ef || s > res->v[0].score) {
                heap_push(&cand, (ws_vhit){nb, s});
                heap_push(res, (ws_vhit){nb, s});
                if (res->n > ef)
                    heap_pop(res);
            }
        }
    }
    free(cand.v);
    free(vis.slot);
}

static ws_vhit greedy(const ws_vindex *ix, const float *q, ws_vhit ep, int level)
{
    bool moved = true;
    while (moved) {
        moved = false;
        const uint32_t *l = links_at(ix, ep.id, level);
        for (uint32_t j = 0; j < l[0]; j++) {
            float s = sim(ix, q, l[1 + j]);
            if (s > ep.score) {
                ep = (ws_vhit){l[1 + j], s};
                moved = true;
            }
        }
    }
    return ep;
}

/* The neighbour heuristic: from cands (sorted best first), keep a candidate only when it is
 * closer to the base than to every one already kept. Writes at most m node numbers to out. */
static size_t select_neighbors(const ws_vindex *ix, const ws_vhit *cands, size_t n, size_t m, uint32_t *out)
{
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < m; i++) {
        bool good = true;
        const float *ci = ix->vecs + (size_t)cands[i].id * ix->dim;
        for (size_t j = 0; j < kept; j++)
            if (sim(ix, ci, out[j]) > cands[i].score) {
                good = false;
                break;
            }
        if (good)
            out[kept++] = cands[i].id;
    }
    return kept;
}

static void connect(ws_vindex *ix, uint32_t from, uint32_t to, int level)
{
    uint32_t *l = links_at(ix, from, level);
    size_t cap = cap_of(ix, level);
    if (l[0] < cap) {
        l[1 + l[0]++] = to;
        return;
    }
    /* full: re-select among the current links and the new one */
    ws_vhit c[2 * WS_VINDEX_MAX_M + 1];
    const float *base = ix->vecs + (size_t)from * ix->dim;
    size_t n = 0;
    for (uint32_t j = 0; j < l[0]; j++)
        c[n++] = (ws_vhit){l[1 + j], sim(ix, base, l[1 + j])};
    c[n++] = (ws_vhit){to, sim(ix, base, to)};
    qsort(c, n, sizeof *c, cmp_hit_desc);
    l[0] = (uint32_t)select_neighbors(ix, c, n, cap, l + 1);
}

static double rng_unit(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static size_t links_words(const ws_vindex *ix, int level)
{
    return (1 + 2 * ix->M) + (size_t)level * (1 + ix->M);
}

static void insert(ws_vindex *ix, uint32_t node)
{
    double ml = 1.0 / log((double)ix->M);
    int level = (int)floor(-log(rng_unit(&ix->rng)) * ml);
    if (level >= WS_VINDEX_MAX_LEVEL)
        level = WS_VINDEX_MAX_LEVEL - 1;
    ix->levels[node] = (uint8_t)level;
    ix->links[node] = ws_xcalloc(links_words(ix, level), sizeof(uint32_t));
    if (node == 0 || ix->max_level < 0) {
        ix->entry = node;
        ix->max_level = level;
        return;
    }
    const float *q = ix->vecs + (size_t)node * ix->dim;
    ws_vhit ep = {ix->entry, sim(ix, q, ix->entry)};
    for (int lc = ix->max_level; lc > level; lc--)
        ep = greedy(ix, q, ep, lc);
    heap res = {NULL, 0, 0, true};
    ws_vhit *sorted = NULL;
    for (int lc = level < ix->max_level ? level : ix->max_level; lc >= 0; lc--) {
        res.n = 0;
        search_layer(ix, q, ep, ix->ef_construction, lc, &res);
        sorted = ws_xrealloc(sorted, (res.n ? res.n : 1) * sizeof *sorted);
        size_t n = res.n;
        memcpy(sorted, res.v, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_hit_desc);
        uint32_t *l = links_at(ix, node, lc);
        l[0] = (uint32_t)select_neighbors(ix, sorted, n, ix->M, l + 1);
        for (uint32_t j = 0; j < l[0]; j++)
            connect(ix, l[1 + j], node, lc);
        ep = sorted[0];
    }
    free(sorted);
    free(res.v);
    if (level > ix->max_level) {
        ix->max_level = level;
        ix->entry = node;
    }
}

int ws_vindex_build_hnsw(ws_vindex *ix, const ws_hnsw_params *params)
{
    drop_graph(ix);
    ix->M = params && params->M ? params->M : 16;
    if (ix->M < 2 || ix->M > WS_VINDEX_MAX_M)
        return WS_EINVAL;
    ix->ef_construction = params && params->ef_construction ? params->ef_construction : 200;
    ix->rng = params ? params->seed : 0;
    ix->max_level = -1;
    size_t cap = ix->cap ? ix->cap : 1;
    ix->levels = ws_xcalloc(cap, 1);
    ix->links = ws_xcalloc(cap, sizeof *ix->links);
    ix->hnsw = true;
    for (size_t i = 0; i < ix->count; i++)
        insert(ix, (uint32_t)i);
    return 0;
}

int ws_vindex_add(ws_vindex *ix, uint32_t id, const float *vec)
{
    if (ix->count >= WS_VINDEX_MAX_COUNT)
        return WS_ETOOBIG;
    reserve(ix, ix->count + 1);
    float *v = ix->vecs + ix->count * ix->dim;
    memcpy(v, vec, ix->dim * sizeof *v);
    ws_vec_normalize(v, ix->dim);
    ix->ids[ix->count] = id;
    ix->count++;
    if (ix->hnsw)
        insert(ix, (uint32_t)(ix->count - 1));
    return 0;
}

size_t ws_vindex_search(const ws_vindex *ix, const float *q, size_t k, size_t ef, ws_vhit *out)
{
    if (!ix->hnsw || ix->count == 0 || ix->max_level < 0)
        return ws_vindex_search_exact(ix, q, k, out);
    if (k == 0)
        return 0;
    if (ef < k)
        ef = k;
    ws_vhit ep = {ix->entry, sim(ix, q, ix->entry)};
    for (int lc = ix->max_level; lc > 0; lc--)
        ep = greedy(ix, q, ep, lc);
    heap res = {NULL, 0, 0, true};
    search_layer(ix, q, ep, ef, 0, &res);
    qsort(res.v, res.n, sizeof *res.v, cmp_hit_desc);
    size_t n = res.n < k ? res.n : k;
    for (size_t i = 0; i < n; i++)
        out[i] = (ws_vhit){ix->ids[res.v[i].id], res.v[i].score};
    free(res.v);
    return n;
}

/* ---- file format -------------------------------------------------------------------------- */

#define HEADER_BYTES 136
static const char MAGIC[8] = {'W', 'S', 'V', 'I', 'D', 'X', '1', '\n'};

static void put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static void put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int write_all(FILE *f, const void *p, size_t n, uint64_t *h)
{
    if (h)
        *h = ws_hash_fnv1a_more(*h, p, n);
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : WS_EIO;
}

int ws_vindex_save(const ws_vindex *ix, const char *path, ws_error *err)
{
    int rc = 0;
    size_t plen = strlen(path);
    char *tmp = ws_xmalloc(plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = ws_error_set(err, WS_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    /* an empty graph (no vectors yet) is saved as no graph */
    bool g = ix->hnsw && ix->count > 0 && ix->max_level >= 0;
    uint64_t words = 0;
    if (g)
        for (size_t i = 0; i < ix->count; i++)
            for (int l = 0; l <= ix->levels[i]; l++)
                words += 1 + links_at(ix, (uint32_t)i, l)[0];
    /* checksum first (payload is written in the same order below) */
    uint64_t h = WS_FNV1A_INIT;
    h = ws_hash_fnv1a_more(h, ix->ids, ix->count * sizeof *ix->ids);
    h = ws_hash_fnv1a_more(h, ix->vecs, ix->count * ix->dim * sizeof *ix->vecs);
    if (g) {
        h = ws_hash_fnv1a_more(h, ix->levels, ix->count);
        for (size_t i = 0; i < ix->count; i++)
            for (int l = 0; l <= ix->levels[i]; l++) {
                const uint32_t *lk = links_at(ix, (uint32_t)i, l);
                h = ws_hash_fnv1a_more(h, lk, (1 + lk[0]) * sizeof *lk);
            }
    }
    unsigned char hd[HEADER_BYTES] = {0};
    memcpy(hd, MAGIC, 8);
    put32(hd + 8, WS_VINDEX_VERSION);
    put32(hd + 12, 0x01020304u);
    put32(hd + 16, (uint32_t)ix->dim);
    put32(hd + 20, (uint32_t)strlen(ix->space));
    memcpy(hd + 24, ix->space, strlen(ix->space));
    put64(hd + 88, ix->count);
    put32(hd + 96, g ? 1 : 0);
    put32(hd + 100, g ? ix->M : 0);
    put32(hd + 104, g ? ix->ef_construction : 0);
    put32(hd + 108, g ? (uint32_t)ix->max_level : 0);
    put32(hd + 112, g ? ix->entry : 0);
    put64(hd + 116, words);
    put64(hd + 124, h);
    put32(hd + 132, 0);
    rc = write_all(f, hd, sizeof hd, NULL);
    if (!rc)
        rc = write_all(f, ix->ids, ix->count * sizeof *ix->ids, NULL);
    if (!rc)
        rc = write_all(f, ix->vecs, ix->count * ix->dim * sizeof *ix->vecs, NULL);
    if (!rc && g) {
        rc = write_all(f, ix->levels, ix->count, NULL);
        for (size_t i = 0; !rc && i < ix->count; i++)
            for (int l = 0; !rc && l <= ix->levels[i]; l++) {
                const uint32_t *lk = links_at(ix, (uint32_t)i, l);
                rc = write_all(f, lk, (1 + lk[0]) * sizeof *lk, NULL);
            }
    }
    if (fclose(f) != 0 && !rc)
        rc = WS_EIO;
    f = NULL;
    if (rc) {
        ws_error_set(err, rc, "%s: write failed", tmp);
        remove(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = ws_error_set(err, WS_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
        remove(tmp);
    }
out:
    free(tmp);
    return rc;
}

int ws_vindex_load_memory(const void *data, size_t len, ws_vindex **out, ws_error *err)
{
    const unsigned char *p = data;
    ws_vindex *ix = NULL;
    int rc = 0;
    *out = NULL;
    if (len < HEADER_BYTES || memcmp(p, MAGIC, 8) != 0)
        return ws_error_set(err, WS_EFORMAT, "not a WhatStyle vector index (bad magic or short header)");
    if (get32(p + 8) != WS_VINDEX_VERSION)
        return ws_error_set(err, WS_EUNSUPPORTED, "vector index version %u (this build reads %d)",
                            get32(p + 8), WS_VINDEX_VERSION);
    if (get32(p + 12) != 0x01020304u)
        return ws_error_set(err, WS_EUNSUPPORTED, "vector index written with another byte order");
    uint32_t dim = get32(p + 16), slen = get32(p + 20), flags = get32(p + 96);
    uint64_t count = get64(p + 88), words = get64(p + 116), sum = get64(p + 124);
    uint32_t M = get32(p + 100), efc = get32(p + 104), maxl = get32(p + 108), entry = get32(p + 112);
    if (dim == 0 || dim > WS_VINDEX_MAX_DIM || slen > 63 || count > WS_VINDEX_MAX_COUNT || flags > 1)
        return ws_error_set(err, WS_EFORMAT, "vector index header out of range (dim %u, count %llu)", dim,
                            (unsigned long long)count);
    if (memchr(p + 24, 0, slen))
        return ws_error_set(err, WS_EFORMAT, "vector index space name holds a NUL byte");
    bool hnsw = flags & 1;
    uint64_t need = HEADER_BYTES + count * 4 + count * dim * 4;
    if (hnsw) {
        if (M < 2 || M > WS_VINDEX_MAX_M || maxl >= WS_VINDEX_MAX_LEVEL || count == 0 || entry >= count ||
            words > (uint64_t)count * WS_VINDEX_MAX_LEVEL * (1 + 2 * WS_VINDEX_MAX_M))
            return ws_error_set(err, WS_EFORMAT, "vector index graph header out of range");
        need += count + words * 4;
    }
    if (need != len)
        return ws_error_set(err, WS_EFORMAT, "vector index is %zu bytes, header says %llu", len,
                            (unsigned long long)need);
    if (ws_hash_fnv1a(p + HEADER_BYTES, len - HEADER_BYTES) != sum)
        return ws_error_set(err, WS_EFORMAT, "vector index checksum mismatch (corrupt file)");

    char space[64] = {0};
    memcpy(space, p + 24, slen);
    ix = ws_vindex_new(dim, space);
    reserve(ix, count ? count : 1);
    const unsigned char *q = p + HEADER_BYTES;
    memcpy(ix->ids, q, count * 4);
    q += count * 4;
    memcpy(ix->vecs, q, count * dim * 4);
    q += count * dim * 4;
    ix->count = count;
    if (hnsw) {
        ix->M = M;
        ix->ef_construction = efc;
        ix->max_level = (int)maxl;
        ix->entry = entry;
        ix->levels = ws_xcalloc(ix->cap, 1);
        ix->links = ws_xcalloc(ix->cap, sizeof *ix->links);
        ix->hnsw = true;
        memcpy(ix->levels, q, count);
        q += count;
        const unsigned char *end = p + len;
        for (size_t i = 0; i < count; i++) {
            if (ix->levels[i] > maxl) {
                rc = ws_error_set(err, WS_EFORMAT, "vector index node %zu above the top level", i);
                goto out;
            }
            ix->links[i] = ws_xcalloc(links_words(ix, ix->levels[i]), sizeof(uint32_t));
            for (int l = 0; l <= ix->levels[i]; l++) {
                if (end - q < 4) {
                    rc = ws_error_set(err, WS_EFORMAT, "vector index links truncated");
                    goto out;
                }
                uint32_t n = get32(q);
                q += 4;
                if (n > cap_of(ix, l) || (size_t)(end - q) < (size_t)n * 4) {
                    rc = ws_error_set(err, WS_EFORMAT, "vector index node %zu has a bad link list", i);
                    goto out;
                }
                uint32_t *lk = links_at(ix, (uint32_t)i, l);
                lk[0] = n;
                for (uint32_t j = 0; j < n; j++) {
                    uint32_t nb = get32(q + 4 * j);
                    if (nb >= count) {
                        rc = ws_error_set(err, WS_EFORMAT, "vector index link to missing node %u", nb);
                        goto out;
                    }
                    lk[1 + j] = nb;
                }
                q += (size_t)n * 4;
            }
        }
        if (q != end || ix->levels[entry] != maxl) {
            rc = ws_error_set(err, WS_EFORMAT, "vector index links do not match the header");
            goto out;
        }
        /* every node on level l must reach only nodes that exist on level l */
        for (size_t i = 0; i < count; i++)
            for (int l = 1; l <= ix->levels[i]; l++) {
                const uint32_t *lk = links_at(ix, (uint32_t)i, l);
                for (uint32_t j = 0; j < lk[0]; j++)
                    if (ix->levels[lk[1 + j]] < l) {
                        rc = ws_error_set(err, WS_EFORMAT, "vector index link below its level");
                        goto out;
                    }
            }
    }
out:
    if (rc) {
        ws_vindex_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

int ws_vindex_load(const char *path, ws_vindex **out, ws_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ws_error_set(err, errno == ENOENT ? WS_ENOENT : WS_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = ws_error_set(err, WS_EIO, "%s: cannot seek", path);
        goto out;
    }
    long sz = ftell(f);
    uint64_t max = HEADER_BYTES + (uint64_t)WS_VINDEX_MAX_COUNT * (4 + 4 * 1024 + 1) + (1ull << 31);
    if (sz < 0 || (uint64_t)sz > max) {
        rc = ws_error_set(err, WS_ETOOBIG, "%s: vector index too large", path);
        goto out;
    }
    rewind(f);
    buf = ws_xmalloc((size_t)sz + 1);
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        rc = ws_error_set(err, WS_EIO, "%s: read failed", path);
        goto out;
    }
    rc = ws_vindex_load_memory(buf, (size_t)sz, out, err);
    if (rc && err) {
        char msg[WS_ERROR_MSG_MAX];
        memcpy(msg, err->msg, sizeof msg);
        ws_error_set(err, rc, "%.200s: %.300s", path, msg);
    }
out:
    free(buf);
    fclose(f);
    return rc;
}
