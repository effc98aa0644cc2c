/* A gRPC connection's byte stream, cleartext or TLS (see grpc_io.h). */
#include "grpc/grpc_io.h"

#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/progress.h"
#include "core/tls.h"

/* A write that makes no progress for this long: the peer is taken as gone. */
#define STALL_S 30.0

bool ws_grpc_io_init(ws_grpc_io *io, int fd, SSL_CTX *tls, bool server, const char *expect_host)
{
    io->fd = fd;
    io->ssl = NULL;
    io->why[0] = '\0';
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (!tls)
        return true;
    io->ssl = SSL_new(tls);
    ws_error e = {0};
    if (!io->ssl || SSL_set_fd(io->ssl, fd) != 1 ||
        (!server && expect_host && ws_tls_client_expect_host(io->ssl, expect_host, &e) != 0)) {
        snprintf(io->why, sizeof io->why, "%.150s", e.msg[0] ? e.msg : "cannot set up TLS");
        ERR_clear_error();
        return false;
    }
    if (server)
        SSL_set_accept_state(io->ssl);
    else
        SSL_set_connect_state(io->ssl);
    return true;
}

/* Waits for the socket to be readable or writable as TLS asks (ret: SSL_get_error's); false
 * at the deadline. */
static bool wait_for(ws_grpc_io *io, int ret, double deadline)
{
    double left = deadline - ws_now_s();
    if (left <= 0)
        return false;
    struct pollfd pf = {io->fd, ret == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, 0};
    int n = poll(&pf, 1, (int)(left * 1000) + 1);
    return n >= 0 || errno == EINTR;
}

bool ws_grpc_io_handshake(ws_grpc_io *io, double deadline)
{
    if (!io->ssl)
        return true;
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(io->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(io->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            ws_tls_describe_error(io->ssl, e, io->why, sizeof io->why);
            return false;
        }
        if (!wait_for(io, e, deadline)) {
            snprintf(io->why, sizeof io->why, "the TLS handshake timed out");
            return false;
        }
    }
    if (!SSL_is_server(io->ssl)) {
        const unsigned char *p = NULL;
        unsigned n = 0;
        SSL_get0_alpn_selected(io->ssl, &p, &n);
        if (n != 2 || memcmp(p, "h2", 2) != 0) {
            snprintf(io->why, sizeof io->why, "the server did not agree on HTTP/2 (ALPN h2)");
            return false;
        }
    }
    return true;
}

ssize_t ws_grpc_io_read(ws_grpc_io *io, uint8_t *buf, size_t cap)
{
    if (!io->ssl) {
        for (;;) {
            ssize_t r = recv(io->fd, buf, cap, 0);
            if (r > 0)
                return r;
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            snprintf(io->why, sizeof io->why, "%s",
                     r == 0 ? "the peer closed the connection" : strerror(errno));
            return -1;
        }
    }
    ERR_clear_error();
    int r = SSL_read(io->ssl, buf, cap > 1 << 30 ? 1 << 30 : (int)cap);
    if (r > 0)
        return r;
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0; /* WANT_WRITE: a key update waits for room; the loop polls again */
    if (e == SSL_ERROR_ZERO_RETURN)
        snprintf(io->why, sizeof io->why, "the peer closed the connection");
    else
        ws_tls_describe_error(io->ssl, e, io->why, sizeof io->why);
    return -1;
}

bool ws_grpc_io_pending(const ws_grpc_io *io)
{
    /* decrypted bytes only: SSL_has_pending would also count a partial record, which
     * needs the socket (polling on it again would spin) */
    return io->ssl && SSL_pending(io->ssl) > 0;
}

bool ws_grpc_io_write(ws_grpc_io *io, const uint8_t *p, size_t n)
{
    double stall = ws_now_s() + STALL_S;
    for (size_t off = 0; off < n;) {
        int want;
        if (!io->ssl) {
            ssize_t w = send(io->fd, p + off, n - off, MSG_NOSIGNAL);
            if (w > 0) {
                off += (size_t)w;
                stall = ws_now_s() + STALL_S;
                continue;
            }
            if (w < 0 && errno == EINTR)
                continue;
            if (!(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
                snprintf(io->why, sizeof io->why, "%s", w < 0 ? strerror(errno) : "cannot send");
                return false;
            }
            want = SSL_ERROR_WANT_WRITE;
        } else {
            size_t chunk = n - off > 1 << 20 ? 1 << 20 : n - off;
            ERR_clear_error();
            int w = SSL_write(io->ssl, p + off, (int)chunk); /* retried with the same arguments */
            if (w > 0) {
                off += (size_t)w;
                stall = ws_now_s() + STALL_S;
                continue;
            }
            want = SSL_get_error(io->ssl, w);
            if (want != SSL_ERROR_WANT_READ && want != SSL_ERROR_WANT_WRITE) {
                ws_tls_describe_error(io->ssl, want, io->why, sizeof io->why);
                return false;
            }
        }
        if (!wait_for(io, want, stall)) {
            snprintf(io->why, sizeof io->why, "the peer stopped reading");
            return false;
        }
    }
    return true;
}

void ws_grpc_io_close(ws_grpc_io *io)
{
    if (io->ssl) {
        /* no close_notify: HTTP/2 ends connections with GOAWAY, and a write to a socket the
         * peer (or we) shut down would raise SIGPIPE */
        SSL_set_quiet_shutdown(io->ssl, 1);
        SSL_shutdown(io->ssl);
        SSL_free(io->ssl);
        ERR_clear_error();
        io->ssl = NULL;
    }
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
}

bool ws_grpc_h2_flush(struct nghttp2_session *h2, ws_grpc_io *io)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h2, &data);
        if (n < 0)
            return false;
        if (n == 0)
            return true;
        if (!ws_grpc_io_write(io, data, (size_t)n))
            return false;
    }
}
