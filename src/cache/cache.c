/* The cache's public functions: argument checks and caps, then dispatch to the
 * implementation chosen by the URL (cache_memory.c or cache_redis.c). */
#include <string.h>

#include "cache/cache_int.h"

int ws_cache_open(const char *url, ws_cache **out, ws_error *err)
{
    *out = NULL;
    if (!url || !*url)
        return ws_error_set(err, WS_EINVAL, "cache: no URL given");
    if (!strcmp(url, "memory") || !strncmp(url, "memory://", 9))
        return ws_cache_memory_open(url, out, err);
    if (!strncmp(url, "redis://", 8))
        return ws_cache_redis_open(url, out, err);
    return ws_error_set(err, WS_EINVAL, "cache: unknown URL '%s' (memory or redis://...)", url);
}

void ws_cache_close(ws_cache *c)
{
    if (c)
        c->ops->close(c);
}

const char *ws_cache_backend(const ws_cache *c)
{
    return c->ops->name;
}

int ws_cache_ping(ws_cache *c, ws_error *err)
{
    return c->ops->ping(c, err);
}

static int check_key(const char *key, size_t *klen, ws_error *err)
{
    *klen = 0;
    if (!key || !*key)
        return ws_error_set(err, WS_EINVAL, "cache: empty key");
    *klen = strnlen(key, WS_CACHE_KEY_MAX + 1);
    if (*klen > WS_CACHE_KEY_MAX)
        return ws_error_set(err, WS_ETOOBIG, "cache: key longer than %d bytes", WS_CACHE_KEY_MAX);
    return 0;
}

int ws_cache_get(ws_cache *c, const char *key, ws_buf *out, ws_error *err)
{
    size_t klen;
    int rc = check_key(key, &klen, err);
    return rc < 0 ? rc : c->ops->get(c, key, klen, out, err);
}

int ws_cache_set(ws_cache *c, const char *key, const void *val, size_t len, int64_t ttl_ms, ws_error *err)
{
    size_t klen;
    int rc = check_key(key, &klen, err);
    if (rc < 0)
        return rc;
    if (!val && len)
        return ws_error_set(err, WS_EINVAL, "cache: no value");
    if (len > WS_CACHE_VALUE_MAX)
        return ws_error_set(err, WS_ETOOBIG, "cache: value larger than %d bytes", WS_CACHE_VALUE_MAX);
    if (ttl_ms < 0)
        return ws_error_set(err, WS_EINVAL, "cache: negative TTL");
    return c->ops->set(c, key, klen, val ? val : "", len, ttl_ms, err);
}

int ws_cache_del(ws_cache *c, const char *key, int *deleted, ws_error *err)
{
    size_t klen;
    int d = 0;
    int rc = check_key(key, &klen, err);
    if (rc == 0)
        rc = c->ops->del(c, key, klen, &d, err);
    if (deleted)
        *deleted = d;
    return rc;
}

int ws_cache_del_prefix(ws_cache *c, const char *prefix, int64_t *deleted, ws_error *err)
{
    size_t plen;
    int64_t d = 0;
    int rc = check_key(prefix, &plen, err);
    if (rc == 0)
        rc = c->ops->del_prefix(c, prefix, plen, &d, err);
    if (deleted)
        *deleted = d;
    return rc;
}

int ws_cache_rate_check(ws_cache *c, const char *key, int64_t limit, int window_s, ws_rate_result *out,
                        ws_error *err)
{
    size_t klen;
    memset(out, 0, sizeof *out);
    int rc = check_key(key, &klen, err);
    if (rc < 0)
        return rc;
    if (limit < 1 || window_s < 1 || window_s > 86400)
        return ws_error_set(err, WS_EINVAL, "cache: rate limit needs limit >= 1 and a window of 1..86400 s");
    rc = c->ops->rate_check(c, key, klen, limit, window_s, out, err);
    if (rc == 0) {
        out->limit = limit;
        out->allowed = out->count <= limit;
        out->remaining = out->count >= limit ? 0 : limit - out->count;
        if (out->retry_after_s < 1)
            out->retry_after_s = 1;
    }
    return rc;
}
