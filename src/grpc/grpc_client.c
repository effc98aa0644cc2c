/* The gRPC client over nghttp2, unary and server-streaming calls (see grpc_client.h). */
#include "grpc/grpc_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/progress.h"
#include "grpc/grpc_io.h"
#include "grpc/grpc_wire.h"

#define POOL_MAX 64

typedef struct cconn {
    ws_grpc_io io;
    nghttp2_session *h2;
    bool dead;  /* the connection cannot carry another call */
    bool heard; /* the server sent a frame (it speaks HTTP/2) */
    /* the call in progress */
    int32_t sid;
    const uint8_t *body; /* framed request */
    size_t body_len, body_off;
    ws_grpc_deframer df;
    ws_buf *resp;
    int n_msgs, http_status, grpc_status;
    bool have_status, closed, too_big;
    uint32_t close_code;
    ws_buf *message;
    ws_grpc_msg_fn on_msg; /* server streaming: each message to it (NULL: unary, into resp) */
    void *msg_arg;
    bool cancelled; /* on_msg asked to stop: RST_STREAM sent */
} cconn;

struct ws_grpc_channel {
    char *host, authority[300];
    int port;
    SSL_CTX *tls; /* a reference; NULL = h2c */
    pthread_mutex_t mu;
    cconn *idle[POOL_MAX];
    int n_idle;
};

ws_grpc_channel *ws_grpc_channel_new(const char *host, int port)
{
    return ws_grpc_channel_new_tls(host, port, NULL);
}

ws_grpc_channel *ws_grpc_channel_new_tls(const char *host, int port, SSL_CTX *tls)
{
    ws_grpc_channel *ch = ws_xcalloc(1, sizeof *ch);
    ch->host = ws_xstrdup(host);
    ch->port = port;
    if (tls && SSL_CTX_up_ref(tls) == 1)
        ch->tls = tls;
    snprintf(ch->authority, sizeof ch->authority, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    pthread_mutex_init(&ch->mu, NULL);
    return ch;
}

static void cconn_free(cconn *c)
{
    if (!c)
        return;
    if (c->h2)
        nghttp2_session_del(c->h2);
    ws_grpc_io_close(&c->io);
    ws_grpc_deframer_free(&c->df);
    free(c);
}

void ws_grpc_channel_reset(ws_grpc_channel *ch)
{
    pthread_mutex_lock(&ch->mu);
    int n = ch->n_idle;
    cconn *list[POOL_MAX];
    memcpy(list, ch->idle, sizeof list);
    ch->n_idle = 0;
    pthread_mutex_unlock(&ch->mu);
    for (int i = 0; i < n; i++)
        cconn_free(list[i]);
}

void ws_grpc_channel_free(ws_grpc_channel *ch)
{
    if (!ch)
        return;
    ws_grpc_channel_reset(ch);
    pthread_mutex_destroy(&ch->mu);
    SSL_CTX_free(ch->tls);
    free(ch->host);
    free(ch);
}

void ws_grpc_result_free(ws_grpc_result *res)
{
    ws_buf_free(&res->message);
}

/* ---- nghttp2 callbacks ---- */

static int c_on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                       const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    cconn *c = user;
    if (frame->hd.stream_id != c->sid)
        return 0;
    if (nl == 7 && !memcmp(name, ":status", 7)) {
        c->http_status = atoi((const char *)value);
    } else if (nl == 11 && !memcmp(name, "grpc-status", 11)) {
        char num[12] = {0};
        memcpy(num, value, vl < 11 ? vl : 11);
        c->grpc_status = atoi(num);
        c->have_status = true;
    } else if (nl == 12 && !memcmp(name, "grpc-message", 12)) {
        ws_buf_reset(c->message);
        ws_grpc_percent_decode(c->message, (const char *)value, vl < 1024 ? vl : 1024);
    }
    return 0;
}

static int c_on_msg(void *arg, const uint8_t *msg, size_t len)
{
    cconn *c = arg;
    if (c->on_msg) {
        c->n_msgs++;
        if (!c->cancelled && c->on_msg(c->msg_arg, msg, len)) {
            c->cancelled = true;
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, c->sid, NGHTTP2_CANCEL);
        }
        return 0;
    }
    if (++c->n_msgs == 1)
        ws_buf_append(c->resp, msg, len);
    return 0;
}

static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                     void *user)
{
    cconn *c = user;
    if (sid != c->sid || c->too_big || c->cancelled)
        return 0;
    if (ws_grpc_deframe(&c->df, data, len, c_on_msg, c, NULL) != 0) {
        c->too_big = true;
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
    }
    return 0;
}

static int c_on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *user)
{
    cconn *c = user;
    if (sid == c->sid) {
        c->closed = true;
        c->close_code = code;
    }
    return 0;
}

static int c_on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    cconn *c = user;
    c->heard = true;
    if (frame->hd.type == NGHTTP2_GOAWAY)
        c->dead = true; /* finish what runs; no new calls on it */
    return 0;
}

static ssize_t c_read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length, uint32_t *flags,
                           nghttp2_data_source *src, void *user)
{
    cconn *c = user;
    size_t n = c->body_len - c->body_off < length ? c->body_len - c->body_off : length;
    memcpy(buf, c->body + c->body_off, n);
    c->body_off += n;
    if (c->body_off == c->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* ---- connections ---- */

static int connect_to(const char *host, int port, double deadline)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -1;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno == EINPROGRESS) {
        double left = deadline - ws_now_s();
        struct pollfd pf = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        if (left <= 0 || poll(&pf, 1, (int)(left * 1000) + 1) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0)
            rc = -1;
        else
            rc = 0;
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* A new connection (TCP, then TLS with a TLS channel); NULL with the reason in why. */
static cconn *cconn_new(ws_grpc_channel *ch, double deadline, char *why, size_t cap)
{
    int fd = connect_to(ch->host, ch->port, deadline);
    if (fd < 0) {
        snprintf(why, cap, "cannot connect");
        return NULL;
    }
    cconn *c = ws_xcalloc(1, sizeof *c);
    if (!ws_grpc_io_init(&c->io, fd, ch->tls, false, ch->host) || !ws_grpc_io_handshake(&c->io, deadline)) {
        snprintf(why, cap, "TLS with %.200s failed: %.200s", ch->authority, c->io.why);
        cconn_free(c);
        return NULL;
    }
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_on_frame);
    int rc = nghttp2_session_client_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) {
        c->h2 = NULL;
        cconn_free(c);
        snprintf(why, cap, "cannot start HTTP/2");
        return NULL;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 1);
    return c;
}

/* Runs the submitted call to its end or the deadline; false when the connection failed. */
static bool c_run(cconn *c, double deadline, bool *timed_out)
{
    uint8_t buf[16384];
    while (!c->closed) {
        if (!ws_grpc_h2_flush(c->h2, &c->io))
            return false;
        double left = deadline - ws_now_s();
        if (left <= 0) {
            *timed_out = true;
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, c->sid, NGHTTP2_CANCEL);
            if (!ws_grpc_h2_flush(c->h2, &c->io))
                c->dead = true;
            return true;
        }
        if (!ws_grpc_io_pending(&c->io)) {
            struct pollfd pf = {c->io.fd, POLLIN, 0};
            int n = poll(&pf, 1, (int)(left * 1000) + 1);
            if (n < 0 && errno != EINTR)
                return false;
            if (n <= 0)
                continue;
        }
        ssize_t r = ws_grpc_io_read(&c->io, buf, sizeof buf);
        if (r < 0 || (r > 0 && nghttp2_session_mem_recv(c->h2, buf, (size_t)r) < 0))
            return false;
    }
    return ws_grpc_h2_flush(c->h2, &c->io);
}

/* Reads what an idle connection received meanwhile (pings, GOAWAY, EOF); false when it is
 * no longer usable. */
static bool still_good(cconn *c)
{
    uint8_t buf[4096];
    while (!c->dead) {
        ssize_t r = ws_grpc_io_read(&c->io, buf, sizeof buf);
        if (r == 0)
            break;
        if (r < 0 || nghttp2_session_mem_recv(c->h2, buf, (size_t)r) < 0)
            return false;
    }
    return !c->dead && ws_grpc_h2_flush(c->h2, &c->io);
}

static cconn *take(ws_grpc_channel *ch, double deadline, bool *pooled, char *why, size_t cap)
{
    for (;;) {
        pthread_mutex_lock(&ch->mu);
        cconn *c = ch->n_idle ? ch->idle[--ch->n_idle] : NULL;
        pthread_mutex_unlock(&ch->mu);
        if (!c)
            break;
        if (still_good(c)) {
            *pooled = true;
            return c;
        }
        cconn_free(c);
    }
    *pooled = false;
    return cconn_new(ch, deadline, why, cap);
}

static void give_back(ws_grpc_channel *ch, cconn *c)
{
    if (!c->dead && nghttp2_session_want_read(c->h2)) {
        pthread_mutex_lock(&ch->mu);
        if (ch->n_idle < POOL_MAX) {
            ch->idle[ch->n_idle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&ch->mu);
    }
    cconn_free(c);
}

/* Why a connection failed during a call, for the caller's message. */
static void conn_failure(const ws_grpc_channel *ch, const cconn *c, bool pooled, char *why, size_t cap)
{
    if (!c->heard && !ch->tls)
        snprintf(why, cap,
                 "the server at %.200s closed the connection before speaking HTTP/2 (a TLS port? use "
                 "grpcs://)",
                 ch->authority);
    else
        snprintf(why, cap, "%s: %.200s", pooled ? "the connection was lost" : "the connection failed",
                 c->io.why[0] ? c->io.why : "unknown error");
}

static int fail(ws_grpc_result *res, int status, const char *msg)
{
    res->status = status;
    ws_buf_reset(&res->message);
    ws_buf_puts(&res->message, msg);
    return status;
}

int ws_grpc_unary(ws_grpc_channel *ch, const char *path, const uint8_t *req, size_t len, double deadline,
                  size_t max_resp, ws_buf *resp, ws_grpc_result *res)
{
    return ws_grpc_unary_md(ch, path, NULL, 0, req, len, deadline, max_resp, resp, res);
}

#define MD_MAX 8

static int do_call(ws_grpc_channel *ch, const char *path, const ws_grpc_md *md, size_t n_md,
                   const uint8_t *req, size_t len, double deadline, size_t max_resp, ws_buf *resp,
                   ws_grpc_msg_fn on_msg, void *arg, ws_grpc_result *res);

int ws_grpc_unary_md(ws_grpc_channel *ch, const char *path, const ws_grpc_md *md, size_t n_md,
                     const uint8_t *req, size_t len, double deadline, size_t max_resp, ws_buf *resp,
                     ws_grpc_result *res)
{
    return do_call(ch, path, md, n_md, req, len, deadline, max_resp, resp, NULL, NULL, res);
}

int ws_grpc_server_stream_md(ws_grpc_channel *ch, const char *path, const ws_grpc_md *md, size_t n_md,
                             const uint8_t *req, size_t len, double deadline, size_t max_msg,
                             ws_grpc_msg_fn on_msg, void *arg, ws_grpc_result *res)
{
    ws_buf unused = WS_BUF_INIT;
    int st = do_call(ch, path, md, n_md, req, len, deadline, max_msg, &unused, on_msg, arg, res);
    ws_buf_free(&unused);
    return st;
}

/* One call; unary (the single message into resp) or, with on_msg, server streaming. */
static int do_call(ws_grpc_channel *ch, const char *path, const ws_grpc_md *md, size_t n_md,
                   const uint8_t *req, size_t len, double deadline, size_t max_resp, ws_buf *resp,
                   ws_grpc_msg_fn on_msg, void *arg, ws_grpc_result *res)
{
    if (n_md > MD_MAX)
        return fail(res, WS_GRPC_INTERNAL, "too much metadata");
    res->sent = false;
    ws_buf_reset(resp);
    if (ws_now_s() >= deadline)
        return fail(res, WS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded before the call");
    bool pooled;
    char why[512];
    cconn *c = take(ch, deadline, &pooled, why, sizeof why);
    if (!c)
        return fail(res, WS_GRPC_UNAVAILABLE, why);
    ws_buf body = WS_BUF_INIT;
    ws_grpc_frame(&body, req, len);
    c->body = (const uint8_t *)body.data;
    c->body_len = body.len;
    c->body_off = 0;
    ws_grpc_deframer_free(&c->df);
    ws_grpc_deframer_init(&c->df, max_resp);
    c->resp = resp;
    c->message = &res->message;
    c->on_msg = on_msg;
    c->msg_arg = arg;
    c->n_msgs = c->http_status = c->grpc_status = 0;
    c->have_status = c->closed = c->too_big = c->cancelled = false;
    c->close_code = 0;
    char tmo[24];
    ws_grpc_format_timeout(deadline - ws_now_s(), tmo, sizeof tmo);
    nghttp2_nv nv[7 + MD_MAX] = {
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}
        NV(":method", "POST"),           NV(":scheme", ch->tls ? "https" : "http"), NV(":path", path),
        NV(":authority", ch->authority), NV("content-type", "application/grpc"),    NV("te", "trailers"),
        NV("grpc-timeout", tmo),
    };
    for (size_t i = 0; i < n_md; i++)
        nv[7 + i] = (nghttp2_nv)NV(md[i].name, md[i].value);
#undef NV
    nghttp2_data_provider dp = {.read_callback = c_read_body};
    c->sid = nghttp2_submit_request(c->h2, NULL, nv, 7 + n_md, &dp, NULL);
    bool timed_out = false, ok = c->sid > 0 && c_run(c, deadline, &timed_out);
    res->sent = c->body_off > 0;
    if (!ok) {
        c->dead = true;
        conn_failure(ch, c, pooled, why, sizeof why);
        fail(res, WS_GRPC_UNAVAILABLE, why);
    } else if (c->cancelled) {
        fail(res, WS_GRPC_CANCELLED, "cancelled by the caller");
    } else if (timed_out) {
        fail(res, WS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    } else if (c->close_code == NGHTTP2_REFUSED_STREAM) {
        res->sent = false; /* GOAWAY or stream limits: the server did not process it */
        fail(res, WS_GRPC_UNAVAILABLE, "the server refused the stream");
    } else if (c->too_big) {
        fail(res, WS_GRPC_RESOURCE_EXHAUSTED, "the response is over the cap");
    } else if (!c->have_status) {
        fail(res, c->http_status && c->http_status != 200 ? WS_GRPC_UNKNOWN : WS_GRPC_INTERNAL,
             "the response has no grpc-status");
    } else {
        res->status = c->grpc_status;
        if (res->status == WS_GRPC_OK && !on_msg && c->n_msgs != 1)
            fail(res, WS_GRPC_INTERNAL, "a unary response must hold one message");
    }
    c->sid = -1; /* frames of the finished stream are ignored from now on */
    c->body = NULL;
    c->resp = NULL;
    c->message = NULL;
    c->on_msg = NULL;
    ws_buf_free(&body);
    give_back(ch, c);
    return res->status;
}
