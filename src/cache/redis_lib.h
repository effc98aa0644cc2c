/* hiredis, loaded on first use (core/lazylib.h): only the Redis cache needs it. Call
 * ws__redis_load before the first ws__redis.redis...(); the functions keep hiredis's contracts. */
#ifndef WS_CACHE_REDIS_LIB_H
#define WS_CACHE_REDIS_LIB_H

#include <hiredis.h>

#include "core/lazylib.h"

/* an X-macro list, kept as written (clang-format breaks it differently on each pass) */
/* clang-format off */
#define WS_REDIS_FUNCTIONS(X)                                                                  \
    X(redisConnectWithTimeout) X(redisSetTimeout) X(redisCommand) X(redisCommandArgv)           \
    X(freeReplyObject) X(redisFree)
/* clang-format on */

typedef struct ws__redis_api {
    WS_REDIS_FUNCTIONS(WS_LAZYLIB_SLOT)
} ws__redis_api;

extern ws__redis_api ws__redis; /* filled by ws__redis_load */

/* 0 once hiredis is loaded; WS_EUNSUPPORTED with a message naming the package otherwise. */
int ws__redis_load(ws_error *err);

#endif
