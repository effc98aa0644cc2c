/* Private to src/cache: the operations each cache implementation provides (a struct of
 * function pointers) and the handle layout the dispatch functions in cache.c use. */
#ifndef WS_CACHE_CACHE_INT_H
#define WS_CACHE_CACHE_INT_H

#include "cache/cache.h"

typedef struct ws_cache_ops {
    const char *name;
    void (*close)(ws_cache *c);
    int (*ping)(ws_cache *c, ws_error *err);
    int (*get)(ws_cache *c, const char *key, size_t klen, ws_buf *out, ws_error *err);
    int (*set)(ws_cache *c, const char *key, size_t klen, const void *val, size_t len, int64_t ttl_ms,
               ws_error *err);
    int (*del)(ws_cache *c, const char *key, size_t klen, int *deleted, ws_error *err);
    int (*del_prefix)(ws_cache *c, const char *prefix, size_t plen, int64_t *deleted, ws_error *err);
    int (*rate_check)(ws_cache *c, const char *key, size_t klen, int64_t limit, int window_s,
                      ws_rate_result *out, ws_error *err);
} ws_cache_ops;

/* Every implementation's handle starts with this header. */
struct ws_cache {
    const ws_cache_ops *ops;
};

int ws_cache_memory_open(const char *url, ws_cache **out, ws_error *err);
int ws_cache_redis_open(const char *url, ws_cache **out, ws_error *err);

#endif
