/* hiredis's functions, resolved on first use (see redis_lib.h). */
#include "cache/redis_lib.h"

ws__redis_api ws__redis;
static const char *const redis_names[] = {WS_REDIS_FUNCTIONS(WS_LAZYLIB_NAME)};
static ws_lazylib redis_lib = WS_LAZYLIB_INIT(WS_SONAME_HIREDIS, "libhiredis0.14", redis_names, ws__redis);

int ws__redis_load(ws_error *err)
{
    return ws_lazylib_load(&redis_lib, err);
}
