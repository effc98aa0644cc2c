/* The dashboard's static files at / and under /assets/ from the table compiled into the binary
 * (web_assets.h): content-hashed assets cached for a year, index.html revalidated every
 * time, and on every page a strict Content-Security-Policy (scripts, styles and requests
 * only from this origin; no inline script, no framing). */
#include "server/server_int.h"

#include <string.h>

#include "server/web_assets.h"

#define CSP                                                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "    \
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static const ws_web_asset *find(const char *path, size_t len)
{
    for (size_t i = 0; i < ws_web_n_assets; i++)
        if (strlen(ws_web_assets[i].path) == len && !memcmp(ws_web_assets[i].path, path, len))
            return &ws_web_assets[i];
    return NULL;
}

int ws_srv_h_static(ws_http_ctx *ctx)
{
    const ws_http_slice *p = &ctx->req->path;
    const ws_web_asset *a = p->len == 1 ? find("/index.html", 11) : find(p->p, p->len);
    ws_http_header_add(ctx, "X-Content-Type-Options", "nosniff");
    ws_http_header_add(ctx, "Referrer-Policy", "no-referrer");
    if (!a) {
        ctx->content_type = "text/plain; charset=utf-8";
        ctx->status = 404;
        ws_buf_puts(&ctx->out, p->len == 1 ? "The dashboard is not built into this binary: install Node "
                                             "(tools/install-deps.sh) and run make.\n"
                                           : "Not found.\n");
        return 0;
    }
    ctx->content_type = a->content_type;
    if (a->immutable) {
        ws_http_header_add(ctx, "Cache-Control", "public, max-age=31536000, immutable");
    } else {
        ws_http_header_add(ctx, "Cache-Control", "no-cache");
        ws_http_header_add(ctx, "Content-Security-Policy", CSP);
        ws_http_header_add(ctx, "X-Frame-Options", "DENY");
    }
    ws_buf_append(&ctx->out, a->data, a->len);
    return 0;
}
