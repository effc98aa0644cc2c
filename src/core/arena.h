/* A bump allocator: many small allocations freed in one go (per request, per parsed
 * document). Allocation aborts on out-of-memory. Cleanup hooks release non-memory
 * resources (file descriptors, result sets) when the arena is freed, in reverse order. */
#ifndef WS_CORE_ARENA_H
#define WS_CORE_ARENA_H

#include <stddef.h>

typedef struct ws_arena ws_arena;

ws_arena *ws_arena_new(size_t block_size); /* caller owns; free with ws_arena_free */
void ws_arena_free(ws_arena *a);           /* runs cleanup hooks; NULL is a no-op */
/* Runs the cleanup hooks and forgets every allocation, keeping one block for reuse (an
 * arena recycled from one request to the next costs no malloc). */
void ws_arena_reset(ws_arena *a);
void *ws_arena_alloc(ws_arena *a, size_t n); /* 16-byte aligned, uninitialised */
void *ws_arena_calloc(ws_arena *a, size_t n);
char *ws_arena_strndup(ws_arena *a, const char *s, size_t n);
/* Registers fn(arg) to run when the arena is freed. */
void ws_arena_on_free(ws_arena *a, void (*fn)(void *), void *arg);
size_t ws_arena_used(const ws_arena *a); /* bytes handed out */

#endif
