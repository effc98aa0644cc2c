/* libcurl, loaded on first use (core/lazylib.h): the S3 blob store and outside HTTP APIs need it,
 * `parse` and `reply` do not. ws_curl_load loads it and runs curl_global_init once; then call
 * ws_curl.curl_...(). Include this header instead of <curl/curl.h>: curl's compile-time option
 * type checks are macros named like the functions, so they are turned off here. */
#ifndef WS_CORE_CURL_LIB_H
#define WS_CORE_CURL_LIB_H

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "core/lazylib.h"

/* an X-macro list, kept as written (clang-format breaks it differently on each pass) */
/* clang-format off */
#define WS_CURL_FUNCTIONS(X)                                                                   \
    X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_perform)              \
    X(curl_easy_getinfo) X(curl_easy_strerror) X(curl_easy_cleanup) X(curl_slist_append)       \
    X(curl_slist_free_all)
/* clang-format on */

typedef struct ws_curl_api {
    WS_CURL_FUNCTIONS(WS_LAZYLIB_SLOT)
} ws_curl_api;

extern ws_curl_api ws_curl; /* filled by ws_curl_load */

/* 0 once libcurl is loaded and initialised; WS_EUNSUPPORTED with a message otherwise. */
int ws_curl_load(ws_error *err);

#endif
