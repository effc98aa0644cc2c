/* libpq's functions, resolved on first use (see pq_lib.h). */
#include "store/pq_lib.h"

ws__pq_api ws__pq;
static const char *const pq_names[] = {WS_PQ_FUNCTIONS(WS_LAZYLIB_NAME)};
static ws_lazylib pq_lib = WS_LAZYLIB_INIT(WS_SONAME_PQ, "libpq5", pq_names, ws__pq);

int ws__pq_load(ws_error *err)
{
    return ws_lazylib_load(&pq_lib, err);
}
