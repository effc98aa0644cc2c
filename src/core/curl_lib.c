/* libcurl's functions, resolved and initialised on first use (see curl_lib.h). */
#include "core/curl_lib.h"

ws_curl_api ws_curl;
static const char *const curl_names[] = {WS_CURL_FUNCTIONS(WS_LAZYLIB_NAME)};
static ws_lazylib curl_lib = WS_LAZYLIB_INIT(WS_SONAME_CURL, "libcurl4", curl_names, ws_curl);

static pthread_once_t curl_init_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    ws_curl.curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ws_curl_load(ws_error *err)
{
    int rc = ws_lazylib_load(&curl_lib, err);
    if (rc == 0)
        pthread_once(&curl_init_once, curl_init);
    return rc;
}
