/* A gRPC client over HTTP/2 (nghttp2), cleartext (h2c) or TLS (h2 by ALPN, the server's
 * certificate and host name verified), for unary and server-streaming calls: a channel to one
 * host:port keeps a pool of connections, each carrying one call at a time driven by the calling thread
 * (no hand-off to another thread: the added latency is one loopback round trip). Calls carry
 * their deadline as grpc-timeout and are cancelled with RST_STREAM when it passes.
 *
 * Ownership: a channel belongs to the caller (ws_grpc_channel_free); it is thread-safe (any
 * number of threads may call at once; each takes its own connection). A TLS channel holds its
 * own reference on the SSL_CTX. With TLS the process must ignore SIGPIPE (OpenSSL writes to the
 * socket with write()). */
#ifndef WS_GRPC_GRPC_CLIENT_H
#define WS_GRPC_GRPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct ws_grpc_channel ws_grpc_channel;

/* host is a name or address (no brackets for IPv6). Nothing is connected yet. */
ws_grpc_channel *ws_grpc_channel_new(const char *host, int port);
/* The same over TLS with a client context (core/tls.h: ws_tls_client_ctx_new, ALPN h2) when
 * tls is not NULL: the server's certificate must verify and name host. A TLS failure ends the
 * call UNAVAILABLE with the reason ("the certificate did not verify: certificate has
 * expired", ...) in its message. */
ws_grpc_channel *ws_grpc_channel_new_tls(const char *host, int port, SSL_CTX *tls);
void ws_grpc_channel_free(ws_grpc_channel *ch); /* NULL is a no-op */
/* Closes the pooled connections (after the peer was found dead). */
void ws_grpc_channel_reset(ws_grpc_channel *ch);

typedef struct ws_grpc_result {
    int status;     /* the gRPC status (WS_GRPC_*) */
    bool sent;      /* the request may have reached the server (false: surely not) */
    ws_buf message; /* grpc-message, decoded (caller frees: ws_grpc_result_free) */
} ws_grpc_result;

/* One unary call: req (len bytes) to path, the response message into resp (at most max_resp
 * bytes), by deadline (ws_now_s() time). Transport failures (cannot connect, the connection
 * dies, GOAWAY refused the stream) come back as UNAVAILABLE, a passed deadline as
 * DEADLINE_EXCEEDED. Returns res->status. */
int ws_grpc_unary(ws_grpc_channel *ch, const char *path, const uint8_t *req, size_t len, double deadline,
                  size_t max_resp, ws_buf *resp, ws_grpc_result *res);
/* One piece of request metadata (a custom header: lower-case name, ASCII value); borrowed. */
typedef struct ws_grpc_md {
    const char *name;
    const char *value;
} ws_grpc_md;
/* ws_grpc_unary with n_md metadata entries sent as request headers (authorization,
 * traceparent). */
int ws_grpc_unary_md(ws_grpc_channel *ch, const char *path, const ws_grpc_md *md, size_t n_md,
                     const uint8_t *req, size_t len, double deadline, size_t max_resp, ws_buf *resp,
                     ws_grpc_result *res);
void ws_grpc_result_free(ws_grpc_result *res);

/* Called with each message of a server-streaming response (msg valid during the call only);
 * a non-zero return cancels the call (RST_STREAM) and no further message comes. */
typedef int (*ws_grpc_msg_fn)(void *arg, const uint8_t *msg, size_t len);
/* One server-streaming call: as ws_grpc_unary_md, each response message (at most max_msg
 * bytes) handed to on_msg as it arrives, from the calling thread. Returns res->status:
 * CANCELLED when on_msg stopped it. */
int ws_grpc_server_stream_md(ws_grpc_channel *ch, const char *path, const ws_grpc_md *md, size_t n_md,
                             const uint8_t *req, size_t len, double deadline, size_t max_msg,
                             ws_grpc_msg_fn on_msg, void *arg, ws_grpc_result *res);

#endif
