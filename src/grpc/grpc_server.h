/* A gRPC server over HTTP/2 on nghttp2, cleartext (h2c, prior knowledge) or TLS (h2 by ALPN;
 * the handshake runs on the connection's thread, a failed one is logged as grpc.tls_failed):
 * one thread per connection runs the nghttp2 session; each unary or server-streaming call runs its handler on
 * its own thread, which sends messages back through the connection thread. Implements the wire
 * protocol of gRPC over HTTP/2: length-prefixed messages across DATA frames, grpc-status and
 * grpc-message trailers, Trailers-Only responses for calls that fail before any message,
 * grpc-timeout deadlines (the server ends the call with DEADLINE_EXCEEDED and raises the call's
 * cancel flag so the work stops), RST_STREAM from the client raising the same flag, message size
 * caps (RESOURCE_EXHAUSTED), unknown methods (UNIMPLEMENTED), keepalive pings (a connection
 * whose peer stops answering is closed), and on drain a GOAWAY, no new calls, the calls in
 * flight finished (cancelled after a grace period).
 *
 * Ownership: the server belongs to the caller (ws_grpc_server_free after ws_grpc_server_wait);
 * the method table and its arg are borrowed and must outlive it; the server holds its own
 * reference on the TLS context. With TLS the process must ignore SIGPIPE. A ws_grpc_call is valid only
 * inside the handler it was given to. */
#ifndef WS_GRPC_GRPC_SERVER_H
#define WS_GRPC_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct ws_grpc_server ws_grpc_server;
typedef struct ws_grpc_call ws_grpc_call;

typedef enum {
    WS_GRPC_METHOD_UNARY,         /* one request, one response: handler on a worker thread */
    WS_GRPC_METHOD_SERVER_STREAM, /* one request, any number of responses: likewise */
    WS_GRPC_METHOD_BIDI_INLINE,   /* each request answered at once on the connection thread
                                   * (cheap handlers only: server reflection) */
} ws_grpc_method_kind;

/* Runs a call: req is the request message (len bytes, valid during the call). Sends responses
 * with ws_grpc_call_send and returns the call's gRPC status, with a message for the client in
 * msg when not OK (plain text: it is percent-encoded on the wire). For BIDI_INLINE it is called
 * once per request message; a non-OK status ends the call. CANCELLED returned once the call's
 * deadline has passed reaches the client as DEADLINE_EXCEEDED (the deadline, not the client,
 * stopped it). */
typedef int (*ws_grpc_handler)(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg);

typedef struct ws_grpc_method {
    const char *path; /* "/package.Service/Method" */
    ws_grpc_method_kind kind;
    ws_grpc_handler handler;
} ws_grpc_method;

typedef struct ws_grpc_server_config {
    const char *host; /* NULL = 127.0.0.1 */
    int port;         /* 0 = any free port (ws_grpc_server_port) */
    const ws_grpc_method *methods;
    size_t n_methods;
    void *arg;                  /* passed to every handler */
    size_t max_recv_message;    /* 0 = 4 MiB; a larger request: RESOURCE_EXHAUSTED */
    size_t max_send_message;    /* 0 = 4 MiB */
    double keepalive_s;         /* ping an idle connection after this long; 0 = 60 s */
    double keepalive_timeout_s; /* close it when the ping is not answered within; 0 = 20 s */
    double drain_grace_s;       /* on drain, cancel calls still running after; 0 = 10 s */
    SSL_CTX *tls;               /* NULL = h2c; else TLS (core/tls.h: ws_tls_server_ctx_new with
                                 * ALPN h2 required) */
} ws_grpc_server_config;

/* Binds, listens and starts accepting. Errors: WS_EIO (cannot bind), WS_EINVAL. */
int ws_grpc_server_start(const ws_grpc_server_config *cfg, ws_grpc_server **out, ws_error *err);
int ws_grpc_server_port(const ws_grpc_server *s);
/* Stops accepting, sends GOAWAY on every connection, lets the calls in flight finish (cancels
 * them after the grace period). Returns at once; ws_grpc_server_wait waits for the end. */
void ws_grpc_server_drain(ws_grpc_server *s);
bool ws_grpc_server_draining(const ws_grpc_server *s);
void ws_grpc_server_wait(ws_grpc_server *s);
void ws_grpc_server_free(ws_grpc_server *s); /* NULL is a no-op; drains and waits first */

/* Queues one response message. Errors: WS_EAGAIN (the call is cancelled or past its deadline:
 * stop working), WS_ETOOBIG (over max_send_message). */
int ws_grpc_call_send(ws_grpc_call *call, const uint8_t *msg, size_t len);
/* Raised (non-zero) when the client cancelled, the deadline passed or the connection died; pass
 * it to long work so that it stops. */
const volatile int *ws_grpc_call_cancel_flag(ws_grpc_call *call);
bool ws_grpc_call_cancelled(ws_grpc_call *call);
/* The call's deadline as ws_now_s() time; 0 = none. */
double ws_grpc_call_deadline(const ws_grpc_call *call);
/* Sleeps up to seconds, or until the call is cancelled or the server starts draining. */
void ws_grpc_call_wait(ws_grpc_call *call, double seconds);
bool ws_grpc_call_draining(const ws_grpc_call *call);
/* The request's "authorization" or "traceparent" metadata (the only ones kept), or NULL when
 * absent or over WS_GRPC_MD_MAX bytes. Valid during the call. */
#define WS_GRPC_MD_MAX 4200
const char *ws_grpc_call_metadata(const ws_grpc_call *call, const char *name);

#endif
