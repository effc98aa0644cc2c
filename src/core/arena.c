/* Bump allocator with cleanup hooks. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

typedef struct block {
    struct block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} block;

typedef struct hook {
    struct hook *next;
    void (*fn)(void *);
    void *arg;
} hook;

struct ws_arena {
    block *head;
    hook *hooks;
    size_t block_size;
    size_t used;
};

ws_arena *ws_arena_new(size_t block_size)
{
    ws_arena *a = ws_xcalloc(1, sizeof *a);
    a->block_size = block_size ? block_size : 16384;
    return a;
}

void ws_arena_free(ws_arena *a)
{
    if (!a)
        return;
    for (hook *h = a->hooks; h; h = h->next)
        h->fn(h->arg);
    for (block *b = a->head; b;) {
        block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void ws_arena_reset(ws_arena *a)
{
    for (hook *h = a->hooks; h; h = h->next)
        h->fn(h->arg);
    a->hooks = NULL;
    block *keep = NULL;
    for (block *b = a->head; b;) {
        block *next = b->next;
        if (!keep && b->size == a->block_size)
            keep = b;
        else
            free(b);
        b = next;
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->used = 0;
}

void *ws_arena_alloc(ws_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > a->block_size ? n : a->block_size;
        b = ws_xmalloc(sizeof *b + size);
        b->size = size;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->used += n;
    return p;
}

void *ws_arena_calloc(ws_arena *a, size_t n)
{
    void *p = ws_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *ws_arena_strndup(ws_arena *a, const char *s, size_t n)
{
    char *p = ws_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ws_arena_on_free(ws_arena *a, void (*fn)(void *), void *arg)
{
    hook *h = ws_arena_alloc(a, sizeof *h);
    h->fn = fn;
    h->arg = arg;
    h->next = a->hooks;
    a->hooks = h;
}

size_t ws_arena_used(const ws_arena *a)
{
    return a->used;
}
