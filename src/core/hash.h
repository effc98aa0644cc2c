/* The project's one non-cryptographic hash: 64-bit FNV-1a over bytes (hash tables, file
 * checksums, consistent hashing, dedup keys). Header-only; no state, thread-safe. Not for
 * anything an attacker may choose to collide (use SHA-256 via OpenSSL there). */
#ifndef WS_CORE_HASH_H
#define WS_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define WS_FNV1A_INIT 0xcbf29ce484222325ull
#define WS_FNV1A_PRIME 0x100000001b3ull

/* Continues hash h (WS_FNV1A_INIT to start) over data[0..n). */
static inline uint64_t ws_hash_fnv1a_more(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= WS_FNV1A_PRIME;
    }
    return h;
}

static inline uint64_t ws_hash_fnv1a(const void *data, size_t n)
{
    return ws_hash_fnv1a_more(WS_FNV1A_INIT, data, n);
}

#endif
