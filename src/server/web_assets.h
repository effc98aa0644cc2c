/* The dashboard's built files (web/dist), compiled into the binary by
 * tools/embed-web.cmake so one file deploys the whole product. Empty when the build machine
 * had no Node (then / explains how to build it). */
#ifndef WS_SERVER_WEB_ASSETS_H
#define WS_SERVER_WEB_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ws_web_asset {
    const char *path; /* URL path: "/index.html", "/assets/index-3f9a.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    bool immutable; /* a content-hashed name: cache for a year */
} ws_web_asset;

extern const ws_web_asset ws_web_assets[];
extern const size_t ws_web_n_assets;

#endif
