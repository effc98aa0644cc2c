/* The byte stream under a gRPC connection: a non-blocking TCP socket, in the clear (h2c) or
 * with TLS over it (OpenSSL), read and written by the one thread that drives the connection's
 * nghttp2 session (server: the connection thread; client: the calling thread).
 *
 * Ownership: a ws_grpc_io owns its socket and its SSL (ws_grpc_io_close). */
#ifndef WS_GRPC_GRPC_IO_H
#define WS_GRPC_GRPC_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

typedef struct ws_grpc_io {
    int fd;        /* non-blocking; -1 = none */
    SSL *ssl;      /* NULL = cleartext */
    char why[200]; /* why the last handshake, read or write failed */
} ws_grpc_io;

/* Takes fd (made non-blocking) and, with tls not NULL, a new SSL of that context on it for
 * the side given. A client names the host it expects (ws_tls_client_expect_host). Returns
 * false (io->why set, fd still owned by io) when TLS cannot be set up. */
bool ws_grpc_io_init(ws_grpc_io *io, int fd, SSL_CTX *tls, bool server, const char *expect_host);
/* The TLS handshake (no-op in the clear), waiting up to deadline (ws_now_s() time); a client
 * also insists on HTTP/2 by ALPN. false with io->why on failure. */
bool ws_grpc_io_handshake(ws_grpc_io *io, double deadline);
/* Reads what is there now: the count (> 0), 0 when nothing is (wait for POLLIN, unless
 * ws_grpc_io_pending), -1 when the peer closed or the stream failed (io->why). */
ssize_t ws_grpc_io_read(ws_grpc_io *io, uint8_t *buf, size_t cap);
/* Bytes TLS holds already decrypted (poll would not show them). */
bool ws_grpc_io_pending(const ws_grpc_io *io);
/* Writes all n bytes, waiting for the socket as needed. false when the peer is gone. */
bool ws_grpc_io_write(ws_grpc_io *io, const uint8_t *p, size_t n);
/* Frees the SSL (without close_notify), closes the socket. */
void ws_grpc_io_close(ws_grpc_io *io);

/* Sends everything the nghttp2 session has queued, client or server side alike. false on a
 * session error or when the peer is gone. */
struct nghttp2_session;
bool ws_grpc_h2_flush(struct nghttp2_session *h2, ws_grpc_io *io);

#endif
