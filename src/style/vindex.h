/* A per-person vector index for retrieval: L2-normalised vectors with caller ids, exact cosine
 * search (a vectorisable scan) and an optional HNSW graph for approximate search, persisted to
 * a versioned, size-checked, checksummed binary file in the model directory.
 *
 * Ownership: ws_vindex_new / ws_vindex_load results belong to the caller (ws_vindex_free).
 * Thread-safety: searches on one index may run concurrently; add/build/load need exclusive use.
 *
 * File format (little-endian), version 1:
 *   "WSVIDX1\n", u32 version, u32 0x01020304 (byte-order tag), u32 dim, u32 space name length,
 *   char[64] space name (the embedder that made the vectors), u64 count, u32 flags (1 = HNSW),
 *   u32 M, u32 ef_construction, u32 max_level, u32 entry, u64 link words, u64 FNV-1a checksum of
 *   the payload; payload: u32 ids[count], f32 vectors[count*dim], then with HNSW u8 levels[count]
 *   and per node, per level 0..level: u32 n, u32 neighbour[n]. */
#ifndef WS_STYLE_VINDEX_H
#define WS_STYLE_VINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define WS_VINDEX_VERSION 1
#define WS_VINDEX_MAX_DIM 4096
#define WS_VINDEX_MAX_COUNT (1u << 24)
#define WS_VINDEX_MAX_M 64
#define WS_VINDEX_MAX_LEVEL 16
/* The project's one threshold for an HNSW graph: from this many vectors on, indexes built by
 * retrieval and by `train` get one; below it the exact scan is fast enough (~0.4 ms for 4,096
 * vectors of 512 dims, docs/clone.md) and exact. */
#define WS_VINDEX_HNSW_FROM 4096

typedef struct ws_vhit {
    uint32_t id;
    float score; /* cosine similarity */
} ws_vhit;

typedef struct ws_hnsw_params {
    uint32_t M;               /* links per node on upper levels (2M on level 0); 0 = 16 */
    uint32_t ef_construction; /* 0 = 200 */
    uint64_t seed;            /* level draws; same seed + same inserts = same graph */
} ws_hnsw_params;

typedef struct ws_vindex ws_vindex;

/* space names the embedding space (embedder name, at most 63 bytes); NULL for a bad dim. */
ws_vindex *ws_vindex_new(size_t dim, const char *space);
void ws_vindex_free(ws_vindex *ix); /* NULL is a no-op */

/* Appends a copy of vec (normalised here) under id. With an HNSW graph built, the vector is
 * inserted into it too. WS_ETOOBIG past WS_VINDEX_MAX_COUNT. */
int ws_vindex_add(ws_vindex *ix, uint32_t id, const float *vec);

/* Builds (or rebuilds) the HNSW graph over every vector; params may be NULL for defaults. */
int ws_vindex_build_hnsw(ws_vindex *ix, const ws_hnsw_params *params);
bool ws_vindex_has_hnsw(const ws_vindex *ix);

size_t ws_vindex_count(const ws_vindex *ix);
size_t ws_vindex_dim(const ws_vindex *ix);
const char *ws_vindex_space(const ws_vindex *ix);
uint32_t ws_vindex_id(const ws_vindex *ix, size_t row);
const float *ws_vindex_vector(const ws_vindex *ix, size_t row);

/* The k best matches of q (dim floats, L2-normalised for cosine scores), best first.
 * Returns how many were written to out (min(k, count)). Exact: full scan. */
size_t ws_vindex_search_exact(const ws_vindex *ix, const float *q, size_t k, ws_vhit *out);
/* Approximate search through the HNSW graph with beam width ef (raised to k); falls back to
 * the exact scan when no graph is built. */
size_t ws_vindex_search(const ws_vindex *ix, const float *q, size_t k, size_t ef, ws_vhit *out);

/* Persistence. Save writes path atomically (temp file + rename). Load checks magic, version,
 * byte order, sizes against the file length, checksum and every graph link: a bad file is
 * WS_EFORMAT (or WS_EUNSUPPORTED for another version), never a crash. */
int ws_vindex_save(const ws_vindex *ix, const char *path, ws_error *err);
int ws_vindex_load(const char *path, ws_vindex **out, ws_error *err);
int ws_vindex_load_memory(const void *data, size_t len, ws_vindex **out, ws_error *err);

#endif
