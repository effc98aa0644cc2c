/* Insertion-ordered string set with open addressing. */
#include "core/strset.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

static long probe(const ws_strset *set, const char *s, size_t n, size_t *slot)
{
    size_t mask = set->n_slots - 1;
    size_t i = (size_t)ws_hash_fnv1a(s, n) & mask;
    for (;;) {
        uint32_t v = set->slots[i];
        if (!v) {
            *slot = i;
            return -1;
        }
        if (set->lens[v - 1] == n && memcmp(set->items[v - 1], s, n) == 0) {
            *slot = i;
            return (long)(v - 1);
        }
        i = (i + 1) & mask;
    }
}

static void rehash(ws_strset *set)
{
    size_t n_slots = set->n_slots ? set->n_slots * 2 : 16;
    free(set->slots);
    set->slots = ws_xcalloc(n_slots, sizeof *set->slots);
    set->n_slots = n_slots;
    for (size_t k = 0; k < set->count; k++) {
        size_t slot;
        probe(set, set->items[k], set->lens[k], &slot);
        set->slots[slot] = (uint32_t)(k + 1);
    }
}

size_t ws_strset_add(ws_strset *set, const char *s, size_t n)
{
    size_t slot;
    if (set->n_slots == 0 || (set->count + 1) * 2 > set->n_slots) {
        rehash(set); /* doubles n_slots; items hold at most n_slots / 2 */
        set->items = ws_xrealloc(set->items, set->n_slots / 2 * sizeof *set->items);
        set->lens = ws_xrealloc(set->lens, set->n_slots / 2 * sizeof *set->lens);
    }
    long found = probe(set, s, n, &slot);
    if (found >= 0)
        return (size_t)found;
    set->items[set->count] = ws_xstrndup(s, n);
    set->lens[set->count] = n;
    set->slots[slot] = (uint32_t)(set->count + 1);
    return set->count++;
}

long ws_strset_find(const ws_strset *set, const char *s, size_t n)
{
    size_t slot;
    if (!set->n_slots)
        return -1;
    return probe(set, s, n, &slot);
}

void ws_strset_free(ws_strset *set)
{
    for (size_t i = 0; i < set->count; i++)
        free(set->items[i]);
    free(set->items);
    free(set->lens);
    free(set->slots);
    memset(set, 0, sizeof *set);
}
