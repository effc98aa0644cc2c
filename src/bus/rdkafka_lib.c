/* librdkafka's functions, resolved on first use (see rdkafka_lib.h). */
#include "bus/rdkafka_lib.h"

ws__rk_api ws__rk;
static const char *const rk_names[] = {WS_RK_FUNCTIONS(WS_LAZYLIB_NAME)};
static ws_lazylib rk_lib = WS_LAZYLIB_INIT(WS_SONAME_RDKAFKA, "librdkafka1", rk_names, ws__rk);

int ws__rk_load(ws_error *err)
{
    return ws_lazylib_load(&rk_lib, err);
}
