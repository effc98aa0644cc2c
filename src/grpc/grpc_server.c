/* The gRPC server transport over nghttp2 (see grpc_server.h). Threads: one accepting, one per
 * connection (owns the socket and the nghttp2 session; every nghttp2 call happens there), one
 * per running call. A call's output (messages, final status) is handed to its connection
 * under the connection's mutex and the connection thread is woken through an eventfd. */
#include "grpc/grpc_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/progress.h"
#include "core/log.h"
#include "grpc/grpc_io.h"
#include "grpc/grpc_wire.h"

#define PATH_MAX_LEN 256
#define HEADER_LIST_MAX 16384
#define MAX_CONNS 1024
#define HANDSHAKE_S 10.0 /* a TLS client must finish its handshake within */

typedef struct conn conn;

struct ws_grpc_call {
    conn *c;
    int32_t id;
    int refs; /* the connection's stream table + the worker; under c->mu */
    const ws_grpc_method *m;
    char path[PATH_MAX_LEN];
    bool path_too_long, bad_method, bad_ctype, has_ctype, bad_timeout;
    double deadline;                   /* ws_now_s() time; 0 = none */
    char *authorization, *traceparent; /* metadata (NULL: absent or too long); owned */
    ws_grpc_deframer df;
    int n_msgs;
    ws_buf req;      /* the request message (unary and server streaming) */
    int fail_status; /* set while receiving (too big, bad framing): answered at once */
    ws_buf fail_msg;
    volatile int cancel;
    struct ws_grpc_call *next; /* the connection's open streams (connection thread only) */
    /* under c->mu: */
    ws_buf out; /* framed messages not yet handed to nghttp2 */
    size_t out_off;
    bool dirty;    /* new output or a final status for the connection thread */
    bool finished; /* final status set */
    int status;
    char *status_msg;
    bool headers_sent, deferred, ended, closed, started;
};

struct conn {
    ws_grpc_server *srv;
    ws_grpc_io io; /* the socket, and TLS on it (set up by the connection thread) */
    int fd, wake;
    nghttp2_session *h2;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on cancellation and drain (ws_grpc_call_wait) */
    int refs;          /* the connection thread + running calls; under mu */
    ws_grpc_call *streams;
    double last_recv, ping_sent;
    bool goaway;
    struct conn *next; /* the server's connections; under srv->mu */
};

struct ws_grpc_server {
    ws_grpc_server_config cfg;
    int lfd, port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_conns, n_calls; /* connection threads and running calls */
    conn *conns;
    atomic_bool draining;
    double drain_at;
    bool waited;
};

static void wake(conn *c)
{
    uint64_t one = 1;
    ssize_t r = write(c->wake, &one, sizeof one);
    (void)r;
}

static void conn_unref(conn *c)
{
    pthread_mutex_lock(&c->mu);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    close(c->wake);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Drops one reference to the call (c->mu held by the caller); true when it was the last. */
static bool call_unref_locked(ws_grpc_call *k)
{
    return --k->refs == 0;
}

static void call_free(ws_grpc_call *k)
{
    ws_grpc_deframer_free(&k->df);
    ws_buf_free(&k->req);
    free(k->authorization);
    free(k->traceparent);
    ws_buf_free(&k->out);
    ws_buf_free(&k->fail_msg);
    free(k->status_msg);
    free(k);
}

/* Sets the final status once (later ones are ignored); c->mu held. A handler that stopped
 * itself with CANCELLED once the call's time was up, the client still there, ends it
 * DEADLINE_EXCEEDED, as gRPC says: the deadline stopped it, not the client. */
static void finish_locked(ws_grpc_call *k, int status, const char *msg)
{
    if (k->finished)
        return;
    if (status == WS_GRPC_CANCELLED && !k->closed && k->deadline > 0 && ws_now_s() >= k->deadline)
        status = WS_GRPC_DEADLINE_EXCEEDED, msg = "deadline exceeded";
    k->finished = true;
    k->status = status;
    k->status_msg = msg && *msg ? ws_xstrdup(msg) : NULL;
    k->dirty = true;
    k->cancel = k->cancel || status != WS_GRPC_OK;
}

/* ---- the call API (worker threads) ---------------------------------------------------- */

int ws_grpc_call_send(ws_grpc_call *k, const uint8_t *msg, size_t len)
{
    if (len > k->c->srv->cfg.max_send_message)
        return WS_ETOOBIG;
    pthread_mutex_lock(&k->c->mu);
    int rc = 0;
    if (k->cancel || k->finished || k->closed) {
        rc = WS_EAGAIN;
    } else {
        ws_grpc_frame(&k->out, msg, len);
        k->dirty = true;
    }
    pthread_mutex_unlock(&k->c->mu);
    if (!rc)
        wake(k->c);
    return rc;
}

const volatile int *ws_grpc_call_cancel_flag(ws_grpc_call *k)
{
    return &k->cancel;
}

bool ws_grpc_call_cancelled(ws_grpc_call *k)
{
    return k->cancel != 0 || (k->deadline > 0 && ws_now_s() >= k->deadline);
}

double ws_grpc_call_deadline(const ws_grpc_call *k)
{
    return k->deadline;
}

bool ws_grpc_call_draining(const ws_grpc_call *k)
{
    return atomic_load(&k->c->srv->draining);
}

const char *ws_grpc_call_metadata(const ws_grpc_call *k, const char *name)
{
    return !strcmp(name, "authorization") ? k->authorization
           : !strcmp(name, "traceparent") ? k->traceparent
                                          : NULL;
}

void ws_grpc_call_wait(ws_grpc_call *k, double seconds)
{
    conn *c = k->c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = ts.tv_sec + ts.tv_nsec / 1e9 + seconds;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&c->mu);
    if (!k->cancel && !k->closed && !atomic_load(&c->srv->draining))
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    pthread_mutex_unlock(&c->mu);
}

static void *worker(void *p)
{
    ws_grpc_call *k = p;
    conn *c = k->c;
    ws_buf msg = WS_BUF_INIT;
    int st = k->m->handler(k, (const uint8_t *)(k->req.data ? k->req.data : ""), k->req.len, c->srv->cfg.arg,
                           &msg);
    pthread_mutex_lock(&c->mu);
    finish_locked(k, st, msg.data);
    bool last = call_unref_locked(k);
    pthread_mutex_unlock(&c->mu);
    wake(c);
    if (last)
        call_free(k);
    ws_buf_free(&msg);
    ws_grpc_server *s = c->srv;
    conn_unref(c);
    pthread_mutex_lock(&s->mu);
    s->n_calls--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- responses (connection thread) ---------------------------------------------------- */

static nghttp2_nv mknv(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE};
}

/* The grpc-status / grpc-message pair (value buffers from the caller). */
static size_t status_nv(nghttp2_nv *nv, int status, const char *msg, char *num, ws_buf *enc)
{
    snprintf(num, 12, "%d", status);
    nv[0] = mknv("grpc-status", num);
    if (!msg || !*msg)
        return 1;
    ws_grpc_percent_encode(enc, msg);
    nv[1] = mknv("grpc-message", enc->data);
    return 2;
}

static ssize_t read_out(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    ws_grpc_call *k = source->ptr;
    conn *c = user;
    pthread_mutex_lock(&c->mu);
    size_t avail = k->out.len - k->out_off, n = avail < length ? avail : length;
    if (n)
        memcpy(buf, k->out.data + k->out_off, n);
    k->out_off += n;
    if (k->out_off == k->out.len) {
        ws_buf_reset(&k->out);
        k->out_off = 0;
    }
    ssize_t ret = (ssize_t)n;
    if (n == 0 && !k->finished) {
        k->deferred = true;
        ret = NGHTTP2_ERR_DEFERRED;
    } else if (k->finished && k->out.len == 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv nv[2];
        char num[12];
        ws_buf enc = WS_BUF_INIT;
        size_t nn = status_nv(nv, k->status, k->status_msg, num, &enc);
        nghttp2_submit_trailer(session, stream_id, nv, nn);
        ws_buf_free(&enc);
        k->ended = true;
    }
    pthread_mutex_unlock(&c->mu);
    return ret;
}

/* Trailers-Only (status in the one HEADERS frame, END_STREAM) or an HTTP error status. */
static void submit_trailers_only(conn *c, ws_grpc_call *k, const char *http_status, int status,
                                 const char *msg)
{
    nghttp2_nv nv[4];
    char num[12];
    ws_buf enc = WS_BUF_INIT;
    nv[0] = mknv(":status", http_status);
    nv[1] = mknv("content-type", "application/grpc");
    size_t n = 2 + status_nv(nv + 2, status, msg, num, &enc);
    nghttp2_submit_response(c->h2, k->id, nv, n, NULL);
    ws_buf_free(&enc);
    k->headers_sent = k->ended = true;
}

/* Hands a call's new output and final status to nghttp2; c->mu held. */
static void pump_locked(conn *c, ws_grpc_call *k)
{
    k->dirty = false;
    if (k->ended || k->closed)
        return;
    if (!k->headers_sent) {
        if (k->finished && k->out.len == k->out_off) {
            submit_trailers_only(c, k, "200", k->status, k->status_msg);
            return;
        }
        nghttp2_nv nv[2] = {mknv(":status", "200"), mknv("content-type", "application/grpc")};
        nghttp2_data_provider dp = {.source.ptr = k, .read_callback = read_out};
        k->headers_sent = true;
        nghttp2_submit_response(c->h2, k->id, nv, 2, &dp); /* read_out runs later, in mem_send */
    } else if (k->deferred) {
        k->deferred = false;
        nghttp2_session_resume_data(c->h2, k->id);
    }
}

static void pump_all(conn *c)
{
    pthread_mutex_lock(&c->mu);
    for (ws_grpc_call *k = c->streams; k; k = k->next)
        if (k->dirty)
            pump_locked(c, k);
    pthread_mutex_unlock(&c->mu);
}

/* Ends a call from the connection thread (errors found while receiving, deadlines). */
static void fail_call(conn *c, ws_grpc_call *k, int status, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    finish_locked(k, status, msg);
    k->cancel = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ---- requests (nghttp2 callbacks, connection thread) ----------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    ws_grpc_call *k = ws_xcalloc(1, sizeof *k);
    k->c = c;
    k->id = frame->hd.stream_id;
    k->refs = 1;
    ws_grpc_deframer_init(&k->df, c->srv->cfg.max_recv_message);
    k->next = c->streams;
    c->streams = k;
    nghttp2_session_set_stream_user_data(session, k->id, k);
    return 0;
}

static bool hname(const uint8_t *name, size_t nl, const char *want)
{
    return nl == strlen(want) && !memcmp(name, want, nl);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    ws_grpc_call *k = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!k || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (hname(name, nl, ":path")) {
        if (vl >= PATH_MAX_LEN)
            k->path_too_long = true;
        else
            memcpy(k->path, value, vl), k->path[vl] = '\0';
    } else if (hname(name, nl, ":method")) {
        k->bad_method = !(vl == 4 && !memcmp(value, "POST", 4));
    } else if (hname(name, nl, "content-type")) {
        k->has_ctype = true;
        k->bad_ctype = !(vl >= 16 && !memcmp(value, "application/grpc", 16) &&
                         (vl == 16 || value[16] == '+' || value[16] == ';'));
    } else if (hname(name, nl, "authorization") || hname(name, nl, "traceparent")) {
        char **slot = nl == 13 ? &k->authorization : &k->traceparent;
        free(*slot);
        *slot = vl <= WS_GRPC_MD_MAX ? ws_xstrndup((const char *)value, vl) : NULL;
    } else if (hname(name, nl, "grpc-timeout")) {
        double s;
        if (ws_grpc_parse_timeout((const char *)value, vl, &s) == 0)
            k->deadline = ws_now_s() + s;
        else
            k->bad_timeout = true;
    }
    return 0;
}

/* The request headers are complete: refuses what cannot be served (Trailers-Only). */
static void on_request_headers(conn *c, ws_grpc_call *k)
{
    if (k->bad_method || !k->has_ctype || k->bad_ctype) {
        submit_trailers_only(c, k, k->bad_method ? "405" : "415", WS_GRPC_INTERNAL,
                             k->bad_method ? "gRPC requires POST" : "content-type must be application/grpc");
        k->finished = true;
        return;
    }
    if (k->bad_timeout) {
        fail_call(c, k, WS_GRPC_INVALID_ARGUMENT, "malformed grpc-timeout");
        return;
    }
    for (size_t i = 0; !k->path_too_long && i < c->srv->cfg.n_methods; i++)
        if (!strcmp(c->srv->cfg.methods[i].path, k->path))
            k->m = &c->srv->cfg.methods[i];
    if (!k->m) {
        ws_buf b = WS_BUF_INIT;
        ws_buf_printf(&b, "unknown method %s", k->path_too_long ? "(path too long)" : k->path);
        fail_call(c, k, WS_GRPC_UNIMPLEMENTED, b.data);
        ws_buf_free(&b);
    }
}

static int on_message(void *arg, const uint8_t *msg, size_t len)
{
    ws_grpc_call *k = arg;
    conn *c = k->c;
    k->n_msgs++;
    if (k->m->kind == WS_GRPC_METHOD_BIDI_INLINE) {
        ws_buf m = WS_BUF_INIT;
        int st = k->m->handler(k, msg, len, c->srv->cfg.arg, &m);
        if (st != WS_GRPC_OK)
            fail_call(c, k, st, m.data);
        ws_buf_free(&m);
        return st != WS_GRPC_OK;
    }
    if (k->n_msgs > 1) {
        fail_call(c, k, WS_GRPC_UNIMPLEMENTED, "more than one request message for a unary-request method");
        return 1;
    }
    ws_buf_append(&k->req, msg, len);
    return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *user)
{
    ws_grpc_call *k = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!k || !k->m || k->finished || k->started)
        return 0; /* answered already: the rest of the upload is dropped */
    ws_error e = {0};
    int rc = ws_grpc_deframe(&k->df, data, len, on_message, k, &e);
    if (rc < 0)
        fail_call(k->c, k,
                  rc == WS_ETOOBIG        ? WS_GRPC_RESOURCE_EXHAUSTED
                  : rc == WS_EUNSUPPORTED ? WS_GRPC_UNIMPLEMENTED
                                          : WS_GRPC_INTERNAL,
                  e.msg);
    return 0;
}

/* The client half-closed: run the call (or end an inline one). */
static void on_request_end(conn *c, ws_grpc_call *k)
{
    if (!k->m || k->finished || k->started)
        return;
    if (!ws_grpc_deframer_idle(&k->df)) {
        fail_call(c, k, WS_GRPC_INTERNAL, "the request ended inside a message");
        return;
    }
    if (k->m->kind == WS_GRPC_METHOD_BIDI_INLINE) {
        fail_call(c, k, WS_GRPC_OK, NULL);
        return;
    }
    if (k->n_msgs != 1) {
        fail_call(c, k, WS_GRPC_UNIMPLEMENTED, "no request message for a unary-request method");
        return;
    }
    k->started = true;
    pthread_mutex_lock(&c->mu);
    k->refs++;
    c->refs++;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->srv->mu);
    c->srv->n_calls++;
    pthread_mutex_unlock(&c->srv->mu);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, worker, k) != 0) {
        pthread_mutex_lock(&c->mu);
        k->refs--;
        c->refs--;
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_lock(&c->srv->mu);
        c->srv->n_calls--;
        pthread_mutex_unlock(&c->srv->mu);
        fail_call(c, k, WS_GRPC_RESOURCE_EXHAUSTED, "no thread for the call");
    }
    pthread_attr_destroy(&at);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    conn *c = user;
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK))
        c->ping_sent = 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    ws_grpc_call *k = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!k)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        on_request_headers(c, k);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        on_request_end(c, k);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user)
{
    conn *c = user;
    ws_grpc_call *k = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!k)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    for (ws_grpc_call **pp = &c->streams; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    pthread_mutex_lock(&c->mu);
    k->closed = true;
    if (!k->ended)
        k->cancel = 1; /* RST_STREAM or the connection went away: the work stops */
    pthread_cond_broadcast(&c->cv);
    bool last = call_unref_locked(k);
    pthread_mutex_unlock(&c->mu);
    if (last)
        call_free(k);
    return 0;
}

/* ---- the connection loop --------------------------------------------------------------- */

/* Deadlines, keepalive and drain; returns the poll timeout in ms, or -2 to close now. */
static int housekeeping(conn *c)
{
    ws_grpc_server *s = c->srv;
    double now = ws_now_s(), next = now + 3600;
    for (ws_grpc_call *k = c->streams; k; k = k->next) {
        if (k->deadline > 0 && !k->finished && !k->ended) {
            if (now >= k->deadline)
                fail_call(c, k, WS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
            else if (k->deadline < next)
                next = k->deadline;
        }
    }
    if (atomic_load(&s->draining)) {
        if (!c->goaway) {
            nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            c->goaway = true;
            pthread_mutex_lock(&c->mu);
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
        }
        if (!c->streams)
            return -2;
        if (now >= s->drain_at + s->cfg.drain_grace_s) {
            for (ws_grpc_call *k = c->streams; k; k = k->next)
                fail_call(c, k, WS_GRPC_UNAVAILABLE, "the server is shutting down");
        }
        if (s->drain_at + s->cfg.drain_grace_s < next && now < s->drain_at + s->cfg.drain_grace_s)
            next = s->drain_at + s->cfg.drain_grace_s;
    }
    if (c->ping_sent > 0) {
        if (now - c->ping_sent > s->cfg.keepalive_timeout_s)
            return -2; /* the peer stopped answering */
        if (c->ping_sent + s->cfg.keepalive_timeout_s < next)
            next = c->ping_sent + s->cfg.keepalive_timeout_s;
    } else if (now - c->last_recv >= s->cfg.keepalive_s) {
        nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
        c->ping_sent = now;
        next = now + s->cfg.keepalive_timeout_s < next ? now + s->cfg.keepalive_timeout_s : next;
    } else if (c->last_recv + s->cfg.keepalive_s < next) {
        next = c->last_recv + s->cfg.keepalive_s;
    }
    double ms = (next - now) * 1000.0 + 1;
    return ms < 1 ? 1 : ms > 60000 ? 60000 : (int)ms;
}

static int session_new(conn *c)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rc = nghttp2_session_server_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0)
        return -1;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                   {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEADER_LIST_MAX}};
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
    return 0;
}

/* After a failed handshake: our alert must reach the client before the socket closes, but
 * closing with its bytes unread would send a reset that destroys the alert in flight; so stop
 * writing and read what comes until it closes too (at most a second). */
static void linger_close(int fd)
{
    shutdown(fd, SHUT_WR);
    uint8_t buf[4096];
    double end = ws_now_s() + 1.0;
    for (double left; (left = end - ws_now_s()) > 0;) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(left * 1000) + 1) <= 0 || recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0)
            break;
    }
}

/* The TLS handshake of a new connection (no-op in the clear); a failure is logged (the
 * reason and the peer's address: no certificate contents, no data). */
static bool conn_handshake(conn *c)
{
    if (!ws_grpc_io_init(&c->io, c->fd, c->srv->cfg.tls, true, NULL) ||
        !ws_grpc_io_handshake(&c->io, ws_now_s() + HANDSHAKE_S)) {
        char addr[INET6_ADDRSTRLEN] = "?";
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0)
            inet_ntop(ss.ss_family,
                      ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                               : (void *)&((struct sockaddr_in *)&ss)->sin_addr,
                      addr, sizeof addr);
        WS_LOG(WS_LOG_WARN, "grpc.tls_failed", c->io.why, WS_LF_S("client.address", addr));
        linger_close(c->fd);
        return false;
    }
    return true;
}

/* Reads what the peer sent into the session (all TLS holds, too); false when the connection
 * is over. */
static bool conn_read(conn *c, uint8_t *buf, size_t cap)
{
    for (int i = 0; i < 64; i++) {
        ssize_t r = ws_grpc_io_read(&c->io, buf, cap);
        if (r < 0)
            return false;
        if (r == 0)
            return true;
        c->last_recv = ws_now_s();
        if (nghttp2_session_mem_recv(c->h2, buf, (size_t)r) < 0) {
            ws_grpc_h2_flush(c->h2, &c->io); /* nghttp2 queued a GOAWAY */
            return false;
        }
    }
    return true;
}

static void *conn_main(void *p)
{
    conn *c = p;
    uint8_t buf[16384];
    c->io.fd = -1;
    c->last_recv = ws_now_s();
    if (!conn_handshake(c) || session_new(c) != 0)
        goto out;
    for (;;) {
        int timeout = housekeeping(c);
        pump_all(c);
        if (!ws_grpc_h2_flush(c->h2, &c->io) || timeout == -2)
            break;
        if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
            break;
        struct pollfd pf[2] = {{c->fd, POLLIN, 0}, {c->wake, POLLIN, 0}};
        int n = poll(pf, 2, ws_grpc_io_pending(&c->io) ? 0 : timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (pf[1].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(c->wake, &v, sizeof v);
            (void)r;
        }
        if (((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) || ws_grpc_io_pending(&c->io)) &&
            !conn_read(c, buf, sizeof buf))
            break;
    }
out:
    shutdown(c->fd, SHUT_RDWR);
    /* every stream still open is cancelled: its worker stops and drops its reference */
    if (c->h2)
        nghttp2_session_del(c->h2); /* frees its streams without callbacks: ours are below */
    while (c->streams) {
        ws_grpc_call *k = c->streams;
        c->streams = k->next;
        pthread_mutex_lock(&c->mu);
        k->closed = true;
        k->cancel = 1;
        bool last = call_unref_locked(k);
        pthread_mutex_unlock(&c->mu);
        if (last)
            call_free(k);
    }
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->io.fd >= 0)
        ws_grpc_io_close(&c->io); /* closes the socket */
    else
        close(c->fd);
    ws_grpc_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    for (conn **pp = &s->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    s->n_conns--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    conn_unref(c);
    return NULL;
}

/* ---- listening -------------------------------------------------------------------------- */

static void *acceptor(void *p)
{
    ws_grpc_server *s = p;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
                continue;
            break; /* the listening socket was shut down: draining */
        }
        if (atomic_load(&s->draining)) {
            close(fd);
            break;
        }
        pthread_mutex_lock(&s->mu);
        bool full = s->n_conns >= MAX_CONNS;
        pthread_mutex_unlock(&s->mu);
        if (full) { /* one thread per connection: refuse beyond the cap */
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = ws_xcalloc(1, sizeof *c);
        c->srv = s;
        c->fd = fd;
        c->refs = 1;
        c->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        pthread_mutex_lock(&s->mu);
        c->next = s->conns;
        s->conns = c;
        s->n_conns++;
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (c->wake < 0 || pthread_create(&t, &at, conn_main, c) != 0) {
            pthread_mutex_lock(&s->mu);
            s->conns = c->next;
            s->n_conns--;
            pthread_mutex_unlock(&s->mu);
            close(fd);
            if (c->wake >= 0)
                close(c->wake);
            pthread_mutex_destroy(&c->mu);
            pthread_cond_destroy(&c->cv);
            free(c);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

static int listen_on(const char *host, int port, int *fd_out, int *port_out, ws_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
                    *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0)
        return ws_error_set(err, WS_EINVAL, "cannot resolve %s: %s", host, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 256) != 0) {
        rc = ws_error_set(err, WS_EIO, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

int ws_grpc_server_start(const ws_grpc_server_config *cfg, ws_grpc_server **out, ws_error *err)
{
    *out = NULL;
    if (!cfg || (!cfg->methods && cfg->n_methods))
        return ws_error_set(err, WS_EINVAL, "no gRPC methods");
    ws_grpc_server *s = ws_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (s->cfg.tls && SSL_CTX_up_ref(s->cfg.tls) != 1)
        s->cfg.tls = NULL;
    if (!s->cfg.max_recv_message)
        s->cfg.max_recv_message = 4u << 20;
    if (!s->cfg.max_send_message)
        s->cfg.max_send_message = 4u << 20;
    if (s->cfg.keepalive_s <= 0)
        s->cfg.keepalive_s = 60;
    if (s->cfg.keepalive_timeout_s <= 0)
        s->cfg.keepalive_timeout_s = 20;
    if (s->cfg.drain_grace_s <= 0)
        s->cfg.drain_grace_s = 10;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = listen_on(cfg->host ? cfg->host : "127.0.0.1", cfg->port, &s->lfd, &s->port, err);
    if (rc)
        goto fail;
    if (pthread_create(&s->acceptor, NULL, acceptor, s) != 0) {
        close(s->lfd);
        rc = ws_error_set(err, WS_EIO, "cannot start the accepting thread");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    SSL_CTX_free(s->cfg.tls);
    free(s);
    return rc;
}

int ws_grpc_server_port(const ws_grpc_server *s)
{
    return s->port;
}

bool ws_grpc_server_draining(const ws_grpc_server *s)
{
    return atomic_load(&s->draining);
}

void ws_grpc_server_drain(ws_grpc_server *s)
{
    if (atomic_exchange(&s->draining, true))
        return;
    s->drain_at = ws_now_s();
    shutdown(s->lfd, SHUT_RDWR);
    pthread_mutex_lock(&s->mu);
    for (conn *c = s->conns; c; c = c->next)
        wake(c);
    pthread_mutex_unlock(&s->mu);
}

void ws_grpc_server_wait(ws_grpc_server *s)
{
    if (s->waited)
        return;
    ws_grpc_server_drain(s);
    pthread_join(s->acceptor, NULL);
    close(s->lfd);
    pthread_mutex_lock(&s->mu);
    while (s->n_conns > 0 || s->n_calls > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    s->waited = true;
}

void ws_grpc_server_free(ws_grpc_server *s)
{
    if (!s)
        return;
    ws_grpc_server_wait(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    SSL_CTX_free(s->cfg.tls);
    free(s);
}
