/* The cache: reply cache (TTL 5 min), sessions and rate-limit counters behind one small API
 * with two implementations — an in-process LRU with TTL (embedded default) and Redis
 * (hiredis). Both pass the same test suite (tests/unit/test_cache.c).
 *
 * Backends: a ws_cache_ops (cache_int.h, a struct of function pointers) per implementation;
 * the functions below dispatch to it.
 *
 * Threading: a ws_cache handle is thread-safe (memory: one mutex; Redis: calls on one
 * handle are serialised on its connection). Redis calls block on the network: an
 * event-loop server makes them on worker threads (uv_queue_work), or opens one handle per
 * worker thread for parallelism. Memory calls are short and never block on I/O.
 *
 * Ownership: keys and values are borrowed for the call; values read are appended to a
 * caller-owned ws_buf. Keys are at most WS_CACHE_KEY_MAX bytes, values at most
 * WS_CACHE_VALUE_MAX (WS_ETOOBIG otherwise); keys are any bytes except NUL.
 *
 * Errors: 0 on success or a negative WS_E* code: WS_ENOENT (miss), WS_EINVAL (bad
 * argument), WS_ETOOBIG (over a cap), WS_EIO (Redis unreachable / error; err->msg has it). */
#ifndef WS_CACHE_CACHE_H
#define WS_CACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define WS_CACHE_KEY_MAX 1024
#define WS_CACHE_VALUE_MAX (4 * 1024 * 1024)
#define WS_CACHE_REPLY_TTL_MS (5 * 60 * 1000) /* seed: response cache TTL 5 min */

typedef struct ws_cache ws_cache;

/* Opens a cache:
 *   "memory" or "memory://?max_entries=N&max_bytes=N" -> in-process LRU (defaults 100000
 *       entries, 256 MiB of keys+values); the least recently used entries go first.
 *   "redis://[:password@]host[:port][/db]" -> Redis (connect timeout 2 s, command timeout 2 s).
 * *out belongs to the caller; release with ws_cache_close. */
int ws_cache_open(const char *url, ws_cache **out, ws_error *err);
void ws_cache_close(ws_cache *c);                /* NULL is a no-op */
const char *ws_cache_backend(const ws_cache *c); /* "memory" or "redis" */

/* Liveness (Redis: PING), for /readyz. */
int ws_cache_ping(ws_cache *c, ws_error *err);

/* Appends the value of key to out; WS_ENOENT on a miss or expiry (out unchanged). */
int ws_cache_get(ws_cache *c, const char *key, ws_buf *out, ws_error *err);
/* Sets key to len bytes at val with a TTL in milliseconds (> 0; ttl_ms == 0 = no expiry). */
int ws_cache_set(ws_cache *c, const char *key, const void *val, size_t len, int64_t ttl_ms, ws_error *err);
/* Removes key; missing keys are fine. *deleted (may be NULL) gets 0 or 1. */
int ws_cache_del(ws_cache *c, const char *key, int *deleted, ws_error *err);
/* Removes every key that starts with prefix (e.g. per-user invalidation: keys are built as
 * "reply:<user_id>:..." and invalidated with prefix "reply:<user_id>:"). prefix must be
 * non-empty. *deleted (may be NULL) gets how many. Redis: SCAN + DEL, not atomic with
 * respect to keys set concurrently. */
int ws_cache_del_prefix(ws_cache *c, const char *prefix, int64_t *deleted, ws_error *err);

/* The rate-limit decision for one request. */
typedef struct ws_rate_result {
    bool allowed;
    int64_t count; /* requests counted in the current window, this one included */
    int64_t limit;
    int64_t remaining; /* limit - count, never below 0 */
    int retry_after_s; /* seconds until the window resets (>= 1 when denied) */
} ws_rate_result;

/* ATOMIC fixed-window counter: counts one request against key ("rl:key:<key_id>",
 * "rl:user:<user_id>", ...) in a window of window_s seconds that starts at the key's first
 * request; allowed while count <= limit. Denied requests are counted too (a client that
 * keeps hammering stays blocked until the window ends). Redis: one Lua script (INCR +
 * PEXPIRE + PTTL) so concurrent servers share the counter exactly. limit >= 1, window_s >= 1.
 * WS_EIO when Redis is unreachable: the caller chooses to fail open or closed. Memory: the
 * counters are entries of the same LRU, so they count against max_entries (size it for
 * cached replies + active clients). */
int ws_cache_rate_check(ws_cache *c, const char *key, int64_t limit, int window_s, ws_rate_result *out,
                        ws_error *err);

#endif
