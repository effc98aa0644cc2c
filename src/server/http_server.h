/* The HTTP server under `whatstyle serve`: one libuv event loop per thread, each with its
 * own SO_REUSEPORT listener; HTTP/1.1 keep-alive and pipelining, HTTP/2 (nghttp2: h2 by ALPN
 * over TLS, h2c with prior knowledge); caps on head and body sizes; timeouts against slow
 * clients; optional TLS 1.3 (OpenSSL); graceful shutdown that stops accepting, closes idle
 * connections and drains requests in flight.
 *
 * Requests are routed through a table of ws_http_route rows. A handler first runs on the
 * loop thread (ctx->on_loop true); when it needs to block (database, network, AI) it returns
 * WS_EAGAIN without side effects and is called again on the libuv thread pool
 * (uv_queue_work) with on_loop false, so the loop never blocks. Routes flagged
 * WS_ROUTE_BLOCKING go to the pool directly.
 *
 * Every request gets a server span (a W3C traceparent header continues the caller's trace)
 * and, once answered, a log line "http.request" (method, route, status, duration, user id;
 * never the query, headers or body); health, readiness and metrics requests log at debug.
 *
 * Ownership: the server borrows cfg->routes, cfg->app and cfg->metrics for its lifetime.
 * Everything in a ws_http_ctx lives until the response is written (the per-request arena).
 * Thread-safety: ws_http_server_stop may be called from any thread (and from a signal
 * handler); the other calls from the thread that created the server. */
#ifndef WS_SERVER_HTTP_SERVER_H
#define WS_SERVER_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "server/http_parser.h"
#include "server/metrics.h"

typedef struct ws_http_server ws_http_server;

#define WS_HTTP_MAX_PARAMS 2

/* One request being answered. Handlers read the request fields and fill the response. */
typedef struct ws_http_ctx {
    /* request */
    const ws_http_request *req;
    const char *body; /* body_len bytes (not NUL-terminated; may be NULL if empty) */
    size_t body_len;
    ws_http_slice params[WS_HTTP_MAX_PARAMS]; /* segments matched by '*' in the pattern */
    ws_arena *arena;                          /* freed after the response is written */
    void *app;                                /* cfg->app */
    const struct ws_http_route *route;
    bool on_loop;   /* running on the event loop: must not block */
    bool tls;       /* arrived over TLS */
    char peer[64];  /* client address, "ip:port" */
    double start_s; /* monotonic time the head was complete */
    /* response */
    int status;               /* default 200 */
    const char *content_type; /* default "application/json" */
    ws_buf out;               /* response body */
    ws_buf headers;           /* extra header lines, each "Name: value\r\n" */
    bool close;               /* close the connection after this response */
    void *scratch;            /* the handler's own state between loop and pool runs */
    /* observability: the request's span (core/trace.h; the thread's current span while a
     * handler runs) and the user the app authenticated (an arena string, for the request
     * log line; NULL = anonymous) */
    struct ws_span *span;
    const char *user_id;
} ws_http_ctx;

/* Returns 0 when the response in ctx is ready, WS_EAGAIN (only when ctx->on_loop) to be run
 * again on the thread pool. Any other negative code answers 500. */
typedef int (*ws_http_handler)(ws_http_ctx *ctx);

enum {
    WS_ROUTE_BLOCKING = 1, /* always run on the thread pool */
};

typedef struct ws_http_route {
    const char *method;  /* "GET", ...; "*" = any */
    const char *pattern; /* a path; each '*' in it matches one non-empty segment */
    ws_http_handler handler;
    int flags;
    size_t max_body; /* 0 = the server's default body cap */
} ws_http_route;

typedef struct ws_http_config {
    const char *host;         /* default "0.0.0.0" */
    int port;                 /* 0 = any free port (see ws_http_server_port) */
    int threads;              /* event loops; 0 = one per core */
    size_t max_head_bytes;    /* request line + headers; default 16 KiB (431 above) */
    size_t max_body_bytes;    /* default 1 MiB (413 above) unless a route says more */
    size_t max_connections;   /* per server; default 20000 (further accepts are closed) */
    size_t max_body_total;    /* bytes of large (> 1 MiB) bodies buffered at once over all
                               * connections; default 1 GiB (503 + Retry-After above) */
    int head_timeout_ms;      /* whole head must arrive within; default 10000 */
    int body_timeout_ms;      /* max gap between body reads; default 15000 */
    int keepalive_timeout_ms; /* idle keep-alive connection; default 120000 */
    int write_timeout_ms;     /* a response must be taken within; default 30000 */
    int drain_timeout_ms;     /* graceful shutdown limit; default 30000 */
    const char *tls_cert;     /* PEM files; both set = TLS 1.3 only */
    const char *tls_key;
    const ws_http_route *routes;
    size_t n_routes;
    void *app;           /* handed to handlers as ctx->app */
    ws_metrics *metrics; /* request/latency/connection metrics go here; may be NULL */
} ws_http_config;

/* Creates the server and binds its listeners (so a busy port fails here). */
int ws_http_server_new(const ws_http_config *cfg, ws_http_server **out, ws_error *err);
int ws_http_server_port(const ws_http_server *s); /* the bound port */
/* Starts the loop threads; returns at once. */
int ws_http_server_start(ws_http_server *s, ws_error *err);
/* Begins the graceful shutdown. Async-signal-safe, idempotent, any thread. */
void ws_http_server_stop(ws_http_server *s);
/* True once stop was called (for /readyz). */
bool ws_http_server_draining(const ws_http_server *s);
/* Waits for every loop thread to finish draining. */
void ws_http_server_wait(ws_http_server *s);
void ws_http_server_free(ws_http_server *s); /* NULL is a no-op */

/* Streaming responses (server-sent events). Only from a handler running on the thread pool
 * (ctx->on_loop false) of an HTTP/1.1 request. ws_http_stream_begin sends the head now
 * (ctx->status, content_type and the headers added so far) with the chunked transfer
 * coding; ws_http_stream_write queues a piece that the loop sends at once. When the handler
 * returns, ctx->out (if not empty) goes as the last piece and the response ends.
 * Errors: WS_EUNSUPPORTED (on the loop, or HTTP/1.0), WS_EIO (the client is gone: stop). */
int ws_http_stream_begin(ws_http_ctx *ctx);
int ws_http_stream_write(ws_http_ctx *ctx, const void *data, size_t n);

/* Response helpers. */
void ws_http_header_add(ws_http_ctx *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets status and a JSON error body {"error":{"code":code,"message":message}}. */
void ws_http_error(ws_http_ctx *ctx, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The value of a request header (case-insensitive) as an arena string, or NULL. */
const char *ws_http_header_get(ws_http_ctx *ctx, const char *name);
/* A query parameter, percent-decoded into the arena; NULL if absent or malformed. */
const char *ws_http_query_param(ws_http_ctx *ctx, const char *name);

#endif
