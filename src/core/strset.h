/* A set of byte strings with insertion order kept (open addressing, FNV-1a hashing).
 * The set owns copies of the strings it holds. Not thread-safe. */
#ifndef WS_CORE_STRSET_H
#define WS_CORE_STRSET_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h" /* ws_hash_fnv1a */

typedef struct ws_strset {
    char **items; /* insertion order; NUL-terminated copies */
    size_t *lens;
    size_t count;
    uint32_t *slots; /* index+1 into items, 0 = empty */
    size_t n_slots;
} ws_strset;

#define WS_STRSET_INIT                                                                                       \
    {                                                                                                        \
        0                                                                                                    \
    }

/* Adds s if absent. Returns its index (insertion order). */
size_t ws_strset_add(ws_strset *set, const char *s, size_t n);
/* Index of s, or -1. */
long ws_strset_find(const ws_strset *set, const char *s, size_t n);
void ws_strset_free(ws_strset *set);

#endif
