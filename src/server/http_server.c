/* HTTP/1.1 server on libuv: one loop per thread with a SO_REUSEPORT listener each,
 * connection state machine (head -> body -> handling -> writing), timeouts, optional TLS
 * over memory BIOs, graceful drain (see http_server.h). */
#include "server/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/progress.h"
#include "core/trace.h"

#define READ_CHUNK 4096
/* Recycled per loop (loop thread only): READ_CHUNK-byte buffers for connection input and
 * output and response bodies, and request arenas, so a whole request goes through malloc
 * for none of them. Bounded: what is not in use by a request is at most SPARE_MAX each. */
#define SPARE_MAX 32
#define ARENA_BLOCK 8192
#define ROUTE_NONE ((size_t)-1)

enum { ST_HEAD, ST_BODY, ST_HANDLING, ST_WRITING, ST_LINGER };

typedef struct loop_ctx loop_ctx;
typedef struct conn conn;
typedef struct exch exch;

typedef struct route_metrics {
    ws_metric *by_class[5]; /* 1xx..5xx */
    ws_metric *latency;
} route_metrics;

struct ws_http_server {
    ws_http_config cfg;
    int port;
    int n_loops;
    loop_ctx *loops;
    SSL_CTX *ssl_ctx;
    _Atomic bool stopping;
    _Atomic long n_conns;
    _Atomic size_t body_bytes; /* reserved by large bodies being received or handled */
    bool started;
    bool own_metrics;
    route_metrics *rm; /* n_routes + 1 (last: unmatched) */
    ws_metric *m_conns, *m_accepted, *m_inflight, *m_rejected;
};

struct loop_ctx {
    ws_http_server *srv;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;
    uv_async_t stream_async; /* pool threads have streamed data to send */
    pthread_mutex_t stream_mu;
    exch *stream_list; /* exchanges with pending streamed data */
    uv_timer_t drain_timer;
    int fd; /* listening socket, handed to uv_tcp_open */
    pthread_t thread;
    bool thread_started;
    bool draining;
    bool finished; /* loop handles closed after draining */
    bool drain_timer_on;
    conn *conns; /* all open connections */
    long n_conns;
    ws_http_request scratch; /* head parsing before an exchange exists */
    char date[40];
    time_t date_sec;
    char tls_in[65536]; /* ciphertext read buffer */
    char *spare_bufs[SPARE_MAX]; /* READ_CHUNK bytes each */
    int n_spare_bufs;
    ws_arena *spare_arenas[SPARE_MAX];
    int n_spare_arenas;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    loop_ctx *lc;
    conn *prev, *next;
    char *buf; /* plaintext input */
    size_t len, cap;
    int state;
    int pending_closes;
    bool closing, torn, reading, in_pool, timer_on, close_when_written;
    bool head_timer; /* the armed timer is the head timeout (absolute from the head's first byte) */
    uv_shutdown_t sreq;
    exch *ex;
    uv_write_t wreq;
    bool writing;
    ws_buf wbuf, wfly; /* output waiting / in flight */
    SSL *ssl;
    nghttp2_session *h2; /* HTTP/2 (h2 over TLS via ALPN, or h2c with prior knowledge) */
    exch *h2_streams;    /* exchanges of open streams */
    int h2_in_pool;      /* of them, running on the thread pool */
    char peer[64];
};

struct exch {
    ws_http_ctx ctx;
    ws_http_request req;
    conn *c;
    uv_work_t work;
    size_t head_len;
    const char *parsed_in;  /* the input buffer the head slices point into */
    size_t consumed;        /* input bytes this request used (head + raw body) */
    int64_t content_length; /* -1 when chunked or none */
    bool chunked;
    ws_http_chunked dec;
    ws_buf body; /* decoded chunked body */
    size_t body_cap;
    size_t reserved; /* of srv->body_bytes */
    size_t route;
    int rc;
    bool keep_alive;
    bool is_head;
    /* streaming (ws_http_stream_*): spend is filled by the pool thread under smu */
    bool streaming;
    bool in_stream_list; /* under lc->stream_mu */
    exch *stream_next;
    pthread_mutex_t smu;
    ws_buf spend;
    _Atomic bool gone; /* the connection closed while streaming */
    /* HTTP/2 */
    int32_t stream_id; /* 0 for HTTP/1.x */
    exch *h2_next, **h2_prev;
    size_t head_bytes; /* header bytes received, against max_head_bytes */
    size_t out_off;    /* data provider position in ctx.out */
    int early_status;  /* answered without the handler (404, 405, 413, 431) */
    bool h2_in_pool;
    bool h2_closed; /* nghttp2 closed the stream while the handler ran */
};

static void conn_close(conn *c);
static void conn_linger(conn *c);
static void h2_free_all(conn *c);
static bool h2_detect(conn *c);
static void h2_feed(conn *c);
static void h2_after_work(exch *ex, int status);
static void h2_goaway(conn *c);
static void h2_close_soon(conn *c);
static void process(conn *c);
static void finish_request(conn *c);
static void request_done(ws_http_server *s, size_t route, ws_http_ctx *ctx);

/* ---- small helpers --------------------------------------------------------------------- */

static const char *date_now(loop_ctx *lc)
{
    time_t now = time(NULL);
    if (now != lc->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(lc->date, sizeof lc->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        lc->date_sec = now;
    }
    return lc->date;
}

/* Timers are armed only when a wait begins (an incomplete head or body, an idle keep-alive
 * connection, a slow write): a request that arrives whole costs one stop and one start of
 * the connection's timer, not one per state. */
/* A READ_CHUNK-byte block, recycled or new. */
static char *spare_buf_get(loop_ctx *lc)
{
    return lc->n_spare_bufs ? lc->spare_bufs[--lc->n_spare_bufs] : ws_xmalloc(READ_CHUNK);
}

/* Frees p (of cap bytes), or keeps it for reuse when it is a READ_CHUNK-byte block. */
static void spare_buf_put(loop_ctx *lc, char *p, size_t cap)
{
    if (p && cap == READ_CHUNK && lc->n_spare_bufs < SPARE_MAX)
        lc->spare_bufs[lc->n_spare_bufs++] = p;
    else
        free(p);
}

/* Gives an empty, unallocated ws_buf a recycled block (one allocation instead of the
 * doublings from 64 bytes). */
static void buf_adopt(loop_ctx *lc, ws_buf *b)
{
    if (b->data)
        return;
    b->data = spare_buf_get(lc);
    b->cap = READ_CHUNK;
    b->len = 0;
    b->data[0] = '\0';
}

/* ws_buf_free that keeps a READ_CHUNK-byte block for reuse. */
static void buf_release(loop_ctx *lc, ws_buf *b)
{
    spare_buf_put(lc, b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void spares_free(loop_ctx *lc)
{
    while (lc->n_spare_bufs)
        free(lc->spare_bufs[--lc->n_spare_bufs]);
    while (lc->n_spare_arenas)
        ws_arena_free(lc->spare_arenas[--lc->n_spare_arenas]);
}

static void timer_arm(conn *c, int ms, uv_timer_cb cb)
{
    uv_timer_start(&c->timer, cb, (uint64_t)ms, 0);
    c->timer_on = true;
    c->head_timer = false;
}

static void timer_off(conn *c)
{
    if (c->timer_on) {
        uv_timer_stop(&c->timer);
        c->timer_on = false;
    }
    c->head_timer = false;
}

void ws_http_header_add(ws_http_ctx *ctx, const char *name, const char *fmt, ...)
{
    va_list ap;
    ws_buf_printf(&ctx->headers, "%s: ", name);
    va_start(ap, fmt);
    ws_buf_vprintf(&ctx->headers, fmt, ap);
    va_end(ap);
    ws_buf_puts(&ctx->headers, "\r\n");
}

void ws_http_error(ws_http_ctx *ctx, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->status = status;
    ctx->content_type = "application/json";
    ws_buf_reset(&ctx->out);
    ws_buf_puts(&ctx->out, "{\"error\":{\"code\":");
    ws_json_put_cstr(&ctx->out, code);
    ws_buf_puts(&ctx->out, ",\"message\":");
    ws_json_put_cstr(&ctx->out, msg);
    ws_buf_puts(&ctx->out, "}}");
}

const char *ws_http_header_get(ws_http_ctx *ctx, const char *name)
{
    const ws_http_slice *v = ws_http_find_header(ctx->req, name);
    return v ? ws_arena_strndup(ctx->arena, v->p, v->len) : NULL;
}

const char *ws_http_query_param(ws_http_ctx *ctx, const char *name)
{
    ws_http_slice v;
    if (!ws_http_query_get(ctx->req->query, name, &v))
        return NULL;
    char *out = ws_arena_alloc(ctx->arena, v.len + 1);
    if (ws_http_url_decode(v.p, v.len, out, v.len + 1, true) < 0)
        return NULL;
    return out;
}

/* ---- streaming (pool thread side) ------------------------------------------------------ */

static void stream_notify(exch *ex)
{
    loop_ctx *lc = ex->c->lc;
    pthread_mutex_lock(&lc->stream_mu);
    if (!ex->in_stream_list) {
        ex->stream_next = lc->stream_list;
        lc->stream_list = ex;
        ex->in_stream_list = true;
    }
    pthread_mutex_unlock(&lc->stream_mu);
    uv_async_send(&lc->stream_async);
}

int ws_http_stream_begin(ws_http_ctx *ctx)
{
    exch *ex = (exch *)ctx;
    if (ctx->on_loop || ex->req.minor_version == 0 || ex->streaming || ex->stream_id)
        return WS_EUNSUPPORTED;
    pthread_mutex_init(&ex->smu, NULL);
    ex->streaming = true;
    pthread_mutex_lock(&ex->smu);
    ws_buf_printf(&ex->spend,
                  "HTTP/1.1 %d %s\r\nServer: whatstyle\r\nContent-Type: %s\r\n"
                  "Transfer-Encoding: chunked\r\n",
                  ctx->status, ws_http_reason(ctx->status),
                  ctx->content_type ? ctx->content_type : "application/json");
    if (ctx->headers.len)
        ws_buf_append(&ex->spend, ctx->headers.data, ctx->headers.len);
    ws_buf_puts(&ex->spend, "\r\n");
    pthread_mutex_unlock(&ex->smu);
    stream_notify(ex);
    return 0;
}

int ws_http_stream_write(ws_http_ctx *ctx, const void *data, size_t n)
{
    exch *ex = (exch *)ctx;
    if (!ex->streaming)
        return WS_EUNSUPPORTED;
    if (atomic_load(&ex->gone))
        return WS_EIO;
    if (n == 0)
        return 0;
    pthread_mutex_lock(&ex->smu);
    ws_buf_printf(&ex->spend, "%zx\r\n", n);
    ws_buf_append(&ex->spend, data, n);
    ws_buf_puts(&ex->spend, "\r\n");
    pthread_mutex_unlock(&ex->smu);
    stream_notify(ex);
    return 0;
}

/* ---- routing --------------------------------------------------------------------------- */

static bool pattern_match(const char *pat, ws_http_slice path, ws_http_slice *params)
{
    const char *p = path.p, *end = path.p + path.len;
    int np = 0;
    while (*pat) {
        if (*pat == '*') {
            const char *q = p;
            while (q < end && *q != '/')
                q++;
            if (q == p || np == WS_HTTP_MAX_PARAMS)
                return false;
            params[np++] = (ws_http_slice){p, (size_t)(q - p)};
            p = q;
            pat++;
            continue;
        }
        if (p == end || *p != *pat)
            return false;
        p++;
        pat++;
    }
    return p == end;
}

/* Returns the route index, ROUTE_NONE; *method_mismatch when the path matched another method. */
static size_t route_find(const ws_http_server *s, const ws_http_request *req, ws_http_slice *params,
                         bool *method_mismatch)
{
    *method_mismatch = false;
    for (size_t i = 0; i < s->cfg.n_routes; i++) {
        const ws_http_route *r = &s->cfg.routes[i];
        if (!pattern_match(r->pattern, req->path, params))
            continue;
        bool is_head = ws_http_slice_ieq(req->method, "HEAD");
        if (!strcmp(r->method, "*") ||
            (req->method.len == strlen(r->method) && !memcmp(req->method.p, r->method, req->method.len)) ||
            (is_head && !strcmp(r->method, "GET")))
            return i;
        *method_mismatch = true;
    }
    return ROUTE_NONE;
}

static void allow_header(const ws_http_server *s, ws_http_ctx *ctx)
{
    ws_buf allow = WS_BUF_INIT;
    ws_http_slice params[WS_HTTP_MAX_PARAMS];
    for (size_t i = 0; i < s->cfg.n_routes; i++)
        if (pattern_match(s->cfg.routes[i].pattern, ctx->req->path, params))
            ws_buf_printf(&allow, "%s%s", allow.len ? ", " : "", s->cfg.routes[i].method);
    if (allow.len)
        ws_http_header_add(ctx, "Allow", "%s", allow.data);
    ws_buf_free(&allow);
}

/* ---- output ---------------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status);

static void tls_collect(conn *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    char tmp[16384];
    int n;
    while ((n = BIO_read(wbio, tmp, sizeof tmp)) > 0)
        ws_buf_append(&c->wbuf, tmp, (size_t)n);
}

static void conn_put(conn *c, const void *data, size_t n)
{
    if (!c->ssl) {
        buf_adopt(c->lc, &c->wbuf);
        ws_buf_append(&c->wbuf, data, n);
        return;
    }
    const char *p = data;
    while (n > 0) {
        int chunk = n > 65536 ? 65536 : (int)n;
        int w = SSL_write(c->ssl, p, chunk);
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    tls_collect(c);
}

/* Starts writing whatever is queued. Returns true when everything was written at once. */
static bool conn_flush(conn *c)
{
    if (c->writing || c->wbuf.len == 0)
        return !c->writing;
    uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->wbuf.len) {
        ws_buf_reset(&c->wbuf);
        return true;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return false;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    ws_buf tmp = c->wfly;
    c->wfly = c->wbuf;
    c->wbuf = tmp;
    ws_buf_reset(&c->wbuf);
    b = uv_buf_init(c->wfly.data + done, (unsigned)(c->wfly.len - done));
    c->writing = true;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        c->writing = false;
        conn_close(c);
    }
    return false;
}

static void on_write_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing = false;
    ws_buf_reset(&c->wfly);
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    if (c->wbuf.len) {
        if (!conn_flush(c))
            return;
    }
    if (c->close_when_written) {
        conn_close(c);
        return;
    }
    if (c->state == ST_WRITING) {
        finish_request(c);
        if (!c->closing)
            process(c);
    }
}

/* Serialises ctx's response onto the connection. */
static void queue_response(conn *c, exch *ex)
{
    ws_http_server *s = c->lc->srv;
    ws_http_ctx *ctx = &ex->ctx;
    if (ctx->close || c->lc->draining)
        ex->keep_alive = false;
    bool no_body = ctx->status == 204 || ctx->status == 304 || ctx->status < 200;
    /* the head without printf: this is the hot path of every response */
    char head[512];
    size_t n = 0;
    const char *reason = ws_http_reason(ctx->status);
    const char *date = date_now(c->lc);
    const char *ct = ctx->content_type ? ctx->content_type : "application/json";
    int st = ctx->status >= 100 && ctx->status <= 999 ? ctx->status : 500;
    memcpy(head, "HTTP/1.1 ", 9);
    head[9] = (char)('0' + st / 100);
    head[10] = (char)('0' + st / 10 % 10);
    head[11] = (char)('0' + st % 10);
    head[12] = ' ';
    n = 13;
#define PUT(str, len)                                                                                        \
    do {                                                                                                     \
        size_t l_ = (len);                                                                                   \
        if (n + l_ < sizeof head) {                                                                          \
            memcpy(head + n, (str), l_);                                                                     \
            n += l_;                                                                                         \
        }                                                                                                    \
    } while (0)
    PUT(reason, strlen(reason));
    PUT("\r\nDate: ", 8);
    PUT(date, strlen(date));
    PUT("\r\nServer: whatstyle\r\n", 21);
    if (!no_body) {
        char num[24];
        size_t k = sizeof num, v = ctx->out.len;
        do {
            num[--k] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        PUT("Content-Type: ", 14);
        PUT(ct, strlen(ct));
        PUT("\r\nContent-Length: ", 18);
        PUT(num + k, sizeof num - k);
        PUT("\r\n", 2);
    }
#undef PUT
    conn_put(c, head, n);
    if (!ex->keep_alive)
        conn_put(c, "Connection: close\r\n", 19);
    else if (ex->req.minor_version == 0)
        conn_put(c, "Connection: keep-alive\r\n", 24);
    if (ctx->headers.len)
        conn_put(c, ctx->headers.data, ctx->headers.len);
    conn_put(c, "\r\n", 2);
    if (!no_body && !ex->is_head && ctx->out.len)
        conn_put(c, ctx->out.data, ctx->out.len);

    request_done(s, ex->route, ctx);
}

/* Sends the response of the current exchange; completes it at once when the socket took
 * everything. Returns true if the request finished synchronously. */
static bool send_response(conn *c)
{
    exch *ex = c->ex;
    c->state = ST_WRITING;
    queue_response(c, ex);
    if (conn_flush(c)) {
        finish_request(c);
        return true;
    }
    if (!c->closing)
        timer_arm(c, c->lc->srv->cfg.write_timeout_ms, on_write_timeout);
    return false;
}

/* ---- observability: the request's span, metrics and log line ---------------------------- */

/* Runs the route's handler with the request's span as the thread's current span (begun at
 * the first run: a valid traceparent header continues the caller's trace). */
static int call_handler(ws_http_ctx *ctx)
{
    ws_span *prev;
    if (!ctx->span) {
        ws_trace_ctx remote;
        const ws_http_slice *tp = ws_http_find_header(ctx->req, "traceparent");
        bool has_remote = tp && ws_traceparent_parse(tp->p, tp->len, &remote) == 0;
        prev = ws_span_activate(NULL); /* the span's parent: the remote one or none */
        char name[128];
        snprintf(name, sizeof name, "%s %s", ctx->route->method, ctx->route->pattern);
        ctx->span = ws_span_begin(name, WS_SPAN_SERVER, has_remote ? &remote : NULL);
        ws_span_attr_str(ctx->span, "http.request.method", ctx->route->method);
        ws_span_attr_str(ctx->span, "http.route", ctx->route->pattern);
    } else {
        prev = ws_span_activate(ctx->span);
    }
    int rc = ctx->route->handler(ctx);
    ws_span_deactivate(prev);
    return rc;
}

static bool quiet_route(const char *pattern)
{
    return !strcmp(pattern, "/healthz") || !strcmp(pattern, "/readyz") || !strcmp(pattern, "/metrics");
}

/* The response is queued: count it, end the request's span and write the log line. */
static void request_done(ws_http_server *s, size_t route, ws_http_ctx *ctx)
{
    size_t ri = route == ROUTE_NONE ? s->cfg.n_routes : route;
    int st = ctx->status >= 100 && ctx->status <= 999 ? ctx->status : 500;
    double dur = ws_now_s() - ctx->start_s;
    if (s->rm) {
        int cls = st / 100 - 1;
        if (cls >= 0 && cls < 5)
            ws_metric_add(s->rm[ri].by_class[cls], 1);
        ws_metric_observe(s->rm[ri].latency, dur);
    }
    const char *pattern = route == ROUTE_NONE ? "unmatched" : s->cfg.routes[route].pattern;
    ws_log_level lv = st >= 500 ? WS_LOG_ERROR : quiet_route(pattern) ? WS_LOG_DEBUG : WS_LOG_INFO;
    ws_span *prev = ws_span_activate(ctx->span);
    if (ws_log_enabled(lv)) {
        const ws_http_slice *m = &ctx->req->method;
        char method[16];
        snprintf(method, sizeof method, "%.*s", m->p ? (int)(m->len < 15 ? m->len : 15) : 0, m->p ? m->p : "");
        WS_LOG(lv, "http.request", NULL, WS_LF_S("http.request.method", method), WS_LF_S("http.route", pattern),
               WS_LF_I("http.response.status_code", st), WS_LF_I("event.duration", (int64_t)(dur * 1e9)),
               WS_LF_S("user.id", ctx->user_id), WS_LF_I("http.response.body.bytes", ctx->out.len));
    }
    ws_span_deactivate(prev);
    if (ctx->span) {
        ws_span_attr_int(ctx->span, "http.response.status_code", st);
        if (st >= 500)
            ws_span_error(ctx->span, "server error");
        ws_span_end(ctx->span);
        ctx->span = NULL;
    }
}

/* ---- exchange lifecycle ---------------------------------------------------------------- */

static exch *exch_new(conn *c, const ws_http_request *req, size_t head_len)
{
    loop_ctx *lc = c->lc;
    ws_arena *a = lc->n_spare_arenas ? lc->spare_arenas[--lc->n_spare_arenas] : ws_arena_new(ARENA_BLOCK);
    exch *ex = ws_arena_calloc(a, sizeof *ex);
    ex->ctx.arena = a;
    ex->req = *req;
    ex->ctx.req = &ex->req;
    ex->ctx.app = c->lc->srv->cfg.app;
    ex->ctx.status = 200;
    ex->ctx.tls = c->ssl != NULL;
    ex->ctx.start_s = ws_now_s();
    memcpy(ex->ctx.peer, c->peer, sizeof ex->ctx.peer);
    ex->c = c;
    ex->head_len = head_len;
    ex->content_length = -1;
    ex->route = ROUTE_NONE;
    buf_adopt(lc, &ex->ctx.out);
    return ex;
}

#define LARGE_BODY (1u << 20)

static void exch_free(exch *ex)
{
    if (!ex)
        return;
    loop_ctx *lc = ex->c->lc;
    ws_span_end(ex->ctx.span); /* a request that ended without a response (client gone) */
    if (ex->reserved)
        atomic_fetch_sub(&lc->srv->body_bytes, ex->reserved);
    buf_release(lc, &ex->ctx.out);
    ws_buf_free(&ex->ctx.headers);
    ws_buf_free(&ex->body);
    if (ex->streaming) {
        pthread_mutex_destroy(&ex->smu);
        ws_buf_free(&ex->spend);
    }
    ws_arena *a = ex->ctx.arena; /* ex itself lives in it */
    if (lc->n_spare_arenas < SPARE_MAX) {
        ws_arena_reset(a);
        lc->spare_arenas[lc->n_spare_arenas++] = a;
    } else {
        ws_arena_free(a);
    }
}

/* Drops the bytes of the finished request from the input and resets for the next one. */
static void finish_request(conn *c)
{
    loop_ctx *lc = c->lc;
    exch *ex = c->ex;
    bool keep = ex && ex->keep_alive && !c->closing;
    if (ex) {
        size_t used = ex->consumed > c->len ? c->len : ex->consumed;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        exch_free(ex);
        c->ex = NULL;
        ws_metric_add(lc->srv->m_inflight, -1);
    }
    c->state = ST_HEAD;
    timer_off(c);
    if (c->closing) {
        conn_close(c);
        return;
    }
    if (!keep) {
        conn_linger(c);
        return;
    }
    if (c->len == 0) {
        spare_buf_put(lc, c->buf, c->cap);
        c->buf = NULL;
        c->cap = 0;
        buf_release(lc, &c->wbuf);
        buf_release(lc, &c->wfly);
    }
}

static void on_timeout(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
static bool tls_pull(conn *c);

/* An error answered before the handler runs; the connection closes afterwards. */
static void early_error(conn *c, exch *ex, int status, const char *code, const char *msg)
{
    ex->keep_alive = false;
    ex->consumed = c->len;
    ws_http_error(&ex->ctx, status, code, "%s", msg);
    c->ex = ex;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    send_response(c);
}

static void work_cb(uv_work_t *w)
{
    exch *ex = w->data;
    ex->ctx.on_loop = false;
    ex->rc = call_handler(&ex->ctx);
}

static void stream_unlist(exch *ex)
{
    loop_ctx *lc = ex->c->lc;
    pthread_mutex_lock(&lc->stream_mu);
    if (ex->in_stream_list) {
        for (exch **pp = &lc->stream_list; *pp; pp = &(*pp)->stream_next) {
            if (*pp == ex) {
                *pp = ex->stream_next;
                break;
            }
        }
        ex->in_stream_list = false;
    }
    pthread_mutex_unlock(&lc->stream_mu);
}

/* Moves what the pool thread streamed onto the connection. */
static void stream_drain(exch *ex)
{
    conn *c = ex->c;
    pthread_mutex_lock(&ex->smu);
    if (ex->spend.len && !c->closing)
        conn_put(c, ex->spend.data, ex->spend.len);
    ws_buf_reset(&ex->spend);
    pthread_mutex_unlock(&ex->smu);
}

static void on_stream_async(uv_async_t *a)
{
    loop_ctx *lc = a->data;
    pthread_mutex_lock(&lc->stream_mu);
    exch *list = lc->stream_list;
    lc->stream_list = NULL;
    for (exch *e = list; e; e = e->stream_next)
        e->in_stream_list = false;
    pthread_mutex_unlock(&lc->stream_mu);
    for (exch *e = list, *next; e; e = next) {
        next = e->stream_next;
        stream_drain(e);
        if (!e->c->closing)
            conn_flush(e->c);
    }
}

static void on_write_timeout(uv_timer_t *t);

/* The handler of a streamed response returned: last piece, terminator, done. */
static void stream_end(conn *c, exch *ex)
{
    stream_drain(ex);
    char hdr[32];
    if (ex->ctx.out.len) {
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", ex->ctx.out.len);
        conn_put(c, hdr, (size_t)n);
        conn_put(c, ex->ctx.out.data, ex->ctx.out.len);
        conn_put(c, "\r\n", 2);
    }
    conn_put(c, "0\r\n\r\n", 5);
    ws_http_server *s = c->lc->srv;
    request_done(s, ex->route, &ex->ctx);
    c->state = ST_WRITING;
    if (conn_flush(c)) {
        finish_request(c);
        if (!c->closing)
            process(c);
    } else if (!c->closing) {
        timer_arm(c, s->cfg.write_timeout_ms, on_write_timeout);
    }
}

static void after_work_cb(uv_work_t *w, int status)
{
    exch *ex = w->data;
    conn *c = ex->c;
    if (ex->stream_id) {
        h2_after_work(ex, status);
        return;
    }
    c->in_pool = false;
    if (ex->streaming) {
        stream_unlist(ex);
        if (c->closing) {
            conn_close(c);
            return;
        }
        stream_end(c, ex);
        return;
    }
    if (status < 0 || ex->rc < 0)
        ws_http_error(&ex->ctx, 500, "internal", "internal error");
    if (c->closing) {
        /* the connection was torn down while the handler ran */
        conn_close(c);
        return;
    }
    if (send_response(c) && !c->closing)
        process(c);
}

/* Runs the handler of a complete request. Returns true when the response completed
 * synchronously (the caller may continue with pipelined input). */
static bool dispatch(conn *c)
{
    ws_http_server *s = c->lc->srv;
    exch *ex = c->ex;
    c->state = ST_HANDLING;
    timer_off(c);
    /* The input buffer may have moved (grown for the body) since the head was parsed: then
     * parse it again, so the slices point into the current buffer. */
    if (ex->parsed_in != c->buf) {
        ws_http_parse_request(c->buf, ex->head_len, &ex->req);
        bool mismatch;
        ex->route = route_find(s, &ex->req, ex->ctx.params, &mismatch);
    }
    if (ex->chunked) {
        ex->ctx.body = ex->body.data;
        ex->ctx.body_len = ex->body.len;
    } else if (ex->content_length > 0) {
        ex->ctx.body = c->buf + ex->head_len;
        ex->ctx.body_len = (size_t)ex->content_length;
    }
    const ws_http_route *r = &s->cfg.routes[ex->route];
    ex->ctx.route = r;
    int rc = WS_EAGAIN;
    if (!(r->flags & WS_ROUTE_BLOCKING)) {
        ex->ctx.on_loop = true;
        rc = call_handler(&ex->ctx);
    }
    if (rc == WS_EAGAIN) {
        /* no reading while a pool thread holds the request: the input buffer must not move
         * (the body and the head slices point into it) */
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
        ex->work.data = ex;
        c->in_pool = true;
        if (uv_queue_work(&c->lc->loop, &ex->work, work_cb, after_work_cb) == 0)
            return false;
        c->in_pool = false;
        rc = WS_EINTERNAL;
    }
    if (rc < 0)
        ws_http_error(&ex->ctx, 500, "internal", "internal error");
    return send_response(c);
}

/* The head is complete: decide how the body is framed and check the caps. Returns false
 * when an error response was started. */
static bool begin_body(conn *c, exch *ex)
{
    ws_http_server *s = c->lc->srv;
    const ws_http_request *req = &ex->req;
    const ws_http_slice *conn_h = ws_http_find_header(req, "Connection");
    ex->keep_alive = req->minor_version == 1 ? !(conn_h && ws_http_list_has(*conn_h, "close"))
                                             : (conn_h && ws_http_list_has(*conn_h, "keep-alive"));
    ex->is_head = ws_http_slice_ieq(req->method, "HEAD");
    const ws_http_slice *te = ws_http_find_header(req, "Transfer-Encoding");
    const ws_http_slice *cl = ws_http_find_header(req, "Content-Length");
    if (te) {
        if (cl || !ws_http_slice_ieq(*te, "chunked")) {
            early_error(c, ex, te && !cl ? 501 : 400, "bad_request",
                        cl ? "both Content-Length and Transfer-Encoding"
                           : "only the chunked transfer coding is supported");
            return false;
        }
        ex->chunked = true;
    } else if (cl) {
        ex->content_length = ws_http_parse_uint(*cl);
        for (size_t i = 0; i < req->num_headers; i++) {
            const ws_http_header *h = &req->headers[i];
            if (ws_http_slice_ieq(h->name, "Content-Length") && &h->value != cl &&
                ws_http_parse_uint(h->value) != ex->content_length)
                ex->content_length = -1;
        }
        if (ex->content_length < 0) {
            early_error(c, ex, 400, "bad_request", "bad Content-Length");
            return false;
        }
    }
    bool mismatch;
    ex->route = route_find(s, req, ex->ctx.params, &mismatch);
    if (ex->route == ROUTE_NONE) {
        if (mismatch) {
            allow_header(s, &ex->ctx);
            early_error(c, ex, 405, "method_not_allowed", "method not allowed for this path");
        } else {
            early_error(c, ex, 404, "not_found", "no such endpoint");
        }
        return false;
    }
    size_t cap = s->cfg.routes[ex->route].max_body;
    ex->body_cap = cap ? cap : s->cfg.max_body_bytes;
    if (ex->content_length > 0 && (uint64_t)ex->content_length > ex->body_cap) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is over the limit of %zu bytes", ex->body_cap);
        early_error(c, ex, 413, "payload_too_large", msg);
        return false;
    }
    if (ex->content_length > LARGE_BODY) {
        /* large bodies share one memory budget, so many slow uploads cannot exhaust memory */
        size_t want = (size_t)ex->content_length;
        size_t before = atomic_fetch_add(&s->body_bytes, want);
        ex->reserved = want;
        if (before + want > s->cfg.max_body_total) {
            ws_http_header_add(&ex->ctx, "Retry-After", "5");
            early_error(c, ex, 503, "busy", "too many large uploads at once; retry shortly");
            return false;
        }
    }
    if (ex->chunked)
        ex->body.limit = ex->body_cap;
    const ws_http_slice *expect = ws_http_find_header(req, "Expect");
    if (expect && ws_http_slice_ieq(*expect, "100-continue") && req->minor_version == 1 &&
        (ex->chunked || ex->content_length > 0) && c->len == ex->head_len) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn_put(c, cont, sizeof cont - 1);
        conn_flush(c);
    }
    return true;
}

static void on_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    c->timer_on = false;
    c->head_timer = false;
    if (c->h2) {
        if (c->h2_in_pool) { /* a handler is working: not the client's fault */
            timer_arm(c, c->lc->srv->cfg.body_timeout_ms, on_timeout);
            return;
        }
        if (c->h2_streams) /* a stream that does not finish its request */
            h2_goaway(c);
        h2_close_soon(c);
        return;
    }
    if (c->state == ST_HEAD && c->len == 0) {
        conn_close(c); /* idle keep-alive connection */
        return;
    }
    if (c->state == ST_HEAD || c->state == ST_BODY) {
        exch *ex = c->ex;
        if (!ex) {
            ws_http_request empty = {0};
            ex = exch_new(c, &empty, 0);
            ws_metric_add(c->lc->srv->m_inflight, 1);
        }
        early_error(c, ex, 408, "timeout", "request not received in time");
        return;
    }
    conn_close(c);
}

/* Advances the state machine over the input buffered so far. */
static void process(conn *c)
{
    ws_http_server *s = c->lc->srv;
    for (;;) {
        bool head_now = false; /* the head was parsed in this round */
        if (c->closing || (c->state != ST_HEAD && c->state != ST_BODY))
            return;
        if (c->h2 || (c->state == ST_HEAD && h2_detect(c))) {
            for (;;) {
                h2_feed(c);
                /* TLS may hold more than the input buffer took: keep going */
                if (c->closing || !c->ssl ||
                    !(SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(c->ssl)) > 0))
                    return;
                if (!tls_pull(c)) {
                    conn_close(c);
                    return;
                }
            }
        }
        if (!c->reading) {
            c->reading = true;
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
        if (c->ssl && (SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(c->ssl)) > 0)) {
            if (!tls_pull(c)) {
                conn_close(c);
                return;
            }
        }
        if (c->state == ST_HEAD) {
            if (c->len == 0) {
                timer_arm(c, c->lc->draining ? 1 : s->cfg.keepalive_timeout_ms, on_timeout);
                return;
            }
            int r = ws_http_parse_request(c->buf, c->len, &c->lc->scratch);
            if (r == -2) {
                if (c->len >= s->cfg.max_head_bytes) {
                    ws_http_request empty = {0};
                    exch *ex = exch_new(c, &empty, 0);
                    ws_metric_add(s->m_inflight, 1);
                    early_error(c, ex, 431, "headers_too_large", "request head is over the size limit");
                } else if (!c->head_timer) {
                    /* the head is incomplete: its time runs from its first byte (this read
                     * or an earlier one, which armed it) */
                    timer_arm(c, s->cfg.head_timeout_ms, on_timeout);
                    c->head_timer = true;
                }
                return;
            }
            ws_metric_add(s->m_inflight, 1);
            if (r == -1 || (size_t)r > s->cfg.max_head_bytes) {
                ws_http_request empty = {0};
                exch *ex = exch_new(c, &empty, 0);
                if (r == -1)
                    early_error(c, ex, 400, "bad_request", "malformed request");
                else
                    early_error(c, ex, 431, "headers_too_large", "request head is over the size limit");
                return;
            }
            c->ex = exch_new(c, &c->lc->scratch, (size_t)r);
            c->ex->parsed_in = c->buf;
            c->state = ST_BODY;
            head_now = true;
            if (!begin_body(c, c->ex))
                return;
        }
        if (c->state == ST_BODY) {
            exch *ex = c->ex;
            if (ex->chunked) {
                size_t used = 0;
                int r = ws_http_decode_chunked(&ex->dec, c->buf + ex->head_len, c->len - ex->head_len,
                                               &ex->body, &used);
                if (r < 0) {
                    early_error(c, ex, r == WS_ETOOBIG ? 413 : 400,
                                r == WS_ETOOBIG ? "payload_too_large" : "bad_request",
                                r == WS_ETOOBIG ? "request body is over the limit" : "bad chunked encoding");
                    return;
                }
                /* the raw chunks are decoded: drop them from the input */
                memmove(c->buf + ex->head_len, c->buf + ex->head_len + used, c->len - ex->head_len - used);
                c->len -= used;
                if (r == 0) {
                    if (head_now) /* later reads re-arm it (on_read) */
                        timer_arm(c, s->cfg.body_timeout_ms, on_timeout);
                    return;
                }
                ex->consumed = ex->head_len;
            } else {
                size_t need = ex->head_len + (size_t)(ex->content_length > 0 ? ex->content_length : 0);
                if (c->len < need) {
                    if (head_now) /* later reads re-arm it (on_read) */
                        timer_arm(c, s->cfg.body_timeout_ms, on_timeout);
                    return;
                }
                ex->consumed = need;
            }
            if (!dispatch(c))
                return;
            continue;
        }
        return;
    }
}

/* ---- HTTP/2 (nghttp2) ---------------------------------------------------------------------
 * A connection becomes HTTP/2 when its first bytes are the client preface (h2c with prior
 * knowledge, or h2 after ALPN over TLS). Each stream is an exchange with its own arena; the
 * handlers are the same as for HTTP/1.1 (loop first, then the pool on WS_EAGAIN). Streamed
 * responses are HTTP/1.1 only (ws_http_stream_begin answers WS_EUNSUPPORTED here). */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void h2_flush(conn *c);

/* True when the input starts with the HTTP/2 preface (then the connection switches). */
static bool h2_detect(conn *c)
{
    size_t n = c->len < 24 ? c->len : 24;
    if (n == 0 || memcmp(c->buf, h2_preface, n) != 0)
        return false;
    if (c->len < 24)
        return false; /* a prefix of the preface: the HTTP/1 parser will wait too (-2) */
    return true;
}

static void h2_unlink(exch *ex)
{
    if (ex->h2_prev) {
        *ex->h2_prev = ex->h2_next;
        if (ex->h2_next)
            ex->h2_next->h2_prev = ex->h2_prev;
        ex->h2_prev = NULL;
    }
}

static void h2_free_all(conn *c)
{
    if (c->h2) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    while (c->h2_streams) {
        exch *ex = c->h2_streams;
        h2_unlink(ex);
        ws_metric_add(c->lc->srv->m_inflight, -1);
        exch_free(ex);
    }
}

/* Closes once the queued output is on the wire (a close would cancel a pending write). */
static void h2_close_soon(conn *c)
{
    if (c->writing)
        c->close_when_written = true;
    else
        conn_close(c);
}

static int h2_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    ws_http_request empty = {0};
    exch *ex = exch_new(c, &empty, 0);
    ex->stream_id = frame->hd.stream_id;
    ex->req.minor_version = 1;
    ex->keep_alive = true;
    ex->content_length = -1;
    ex->h2_next = c->h2_streams;
    if (c->h2_streams)
        c->h2_streams->h2_prev = &ex->h2_next;
    c->h2_streams = ex;
    ex->h2_prev = &c->h2_streams;
    ws_metric_add(c->lc->srv->m_inflight, 1);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, ex);
    return 0;
}

static ws_http_slice arena_slice(ws_arena *a, const uint8_t *p, size_t n)
{
    return (ws_http_slice){ws_arena_strndup(a, (const char *)p, n), n};
}

static int h2_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    conn *c = user;
    exch *ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!ex || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    ex->head_bytes += namelen + valuelen + 4;
    if (ex->head_bytes > c->lc->srv->cfg.max_head_bytes) {
        ex->early_status = 431;
        return 0;
    }
    ws_arena *a = ex->ctx.arena;
    ws_http_request *req = &ex->req;
    if (namelen == 7 && !memcmp(name, ":method", 7)) {
        req->method = arena_slice(a, value, valuelen);
        ex->is_head = valuelen == 4 && !memcmp(value, "HEAD", 4);
    } else if (namelen == 5 && !memcmp(name, ":path", 5)) {
        req->target = arena_slice(a, value, valuelen);
        const char *qm = memchr(req->target.p, '?', req->target.len);
        req->path = (ws_http_slice){req->target.p, qm ? (size_t)(qm - req->target.p) : req->target.len};
        req->query = qm ? (ws_http_slice){qm + 1, req->target.len - req->path.len - 1}
                        : (ws_http_slice){req->target.p + req->target.len, 0};
    } else if (name[0] == ':') {
        if (namelen == 10 && !memcmp(name, ":authority", 10) && req->num_headers < WS_HTTP_MAX_HEADERS) {
            req->headers[req->num_headers].name = (ws_http_slice){"host", 4};
            req->headers[req->num_headers++].value = arena_slice(a, value, valuelen);
        }
    } else if (req->num_headers < WS_HTTP_MAX_HEADERS) {
        req->headers[req->num_headers].name = arena_slice(a, name, namelen);
        req->headers[req->num_headers++].value = arena_slice(a, value, valuelen);
    } else {
        ex->early_status = 431;
    }
    return 0;
}

/* End of the request headers: route it and fix the body cap. */
static void h2_route(conn *c, exch *ex)
{
    ws_http_server *s = c->lc->srv;
    if (ex->early_status)
        return;
    if (!ex->req.method.len || !ex->req.path.len || ex->req.path.p[0] != '/') {
        ex->early_status = 400;
        return;
    }
    bool mismatch;
    ex->route = route_find(s, &ex->req, ex->ctx.params, &mismatch);
    if (ex->route == ROUTE_NONE) {
        ex->early_status = mismatch ? 405 : 404;
        return;
    }
    size_t cap = s->cfg.routes[ex->route].max_body;
    ex->body_cap = cap ? cap : s->cfg.max_body_bytes;
    ex->body.limit = ex->body_cap;
    const ws_http_slice *cl = ws_http_find_header(&ex->req, "content-length");
    if (cl && ws_http_parse_uint(*cl) > (int64_t)ex->body_cap)
        ex->early_status = 413;
}

static int h2_on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                      size_t len, void *user)
{
    exch *ex = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!ex || ex->early_status)
        return 0;
    if (ws_buf_append(&ex->body, data, len) != 0)
        ex->early_status = 413;
    return 0;
}

static ssize_t h2_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    exch *ex = source->ptr;
    size_t left = ex->ctx.out.len - ex->out_off;
    size_t n = left < length ? left : length;
    if (n)
        memcpy(buf, ex->ctx.out.data + ex->out_off, n);
    ex->out_off += n;
    if (ex->out_off == ex->ctx.out.len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static nghttp2_nv nv(ws_arena *a, const char *name, size_t nl, const char *value, size_t vl)
{
    nghttp2_nv x = {(uint8_t *)ws_arena_strndup(a, name, nl), (uint8_t *)ws_arena_strndup(a, value, vl), nl,
                    vl, NGHTTP2_NV_FLAG_NONE};
    return x;
}

/* Submits the response in ex->ctx on its stream. */
static void h2_respond(conn *c, exch *ex)
{
    ws_http_server *s = c->lc->srv;
    ws_http_ctx *ctx = &ex->ctx;
    ws_arena *a = ctx->arena;
    nghttp2_nv hdrs[48];
    size_t n = 0;
    char status[4], len[24];
    int st = ctx->status >= 100 && ctx->status <= 999 ? ctx->status : 500;
    snprintf(status, sizeof status, "%d", st);
    hdrs[n++] = nv(a, ":status", 7, status, 3);
    bool no_body = st == 204 || st == 304 || st < 200;
    if (!no_body) {
        const char *ct = ctx->content_type ? ctx->content_type : "application/json";
        hdrs[n++] = nv(a, "content-type", 12, ct, strlen(ct));
        int ln = snprintf(len, sizeof len, "%zu", ctx->out.len);
        hdrs[n++] = nv(a, "content-length", 14, len, (size_t)ln);
    }
    hdrs[n++] = nv(a, "server", 6, "whatstyle", 9);
    /* the handler's extra header lines, names in lower case as HTTP/2 requires */
    const char *p = ctx->headers.data, *end = p ? p + ctx->headers.len : NULL;
    while (p && p < end && n < sizeof hdrs / sizeof hdrs[0]) {
        const char *eol = strstr(p, "\r\n");
        const char *colon = memchr(p, ':', (size_t)((eol ? eol : end) - p));
        if (!eol || !colon)
            break;
        char *lname = ws_arena_strndup(a, p, (size_t)(colon - p));
        for (char *q = lname; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q + 32);
        const char *v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        hdrs[n++] = nv(a, lname, (size_t)(colon - p), v, (size_t)(eol - v));
        p = eol + 2;
    }
    nghttp2_data_provider prd = {.source.ptr = ex, .read_callback = h2_read_body};
    nghttp2_submit_response(c->h2, ex->stream_id, hdrs, n, no_body || ex->is_head ? NULL : &prd);
    request_done(s, ex->route, ctx);
}

/* The request on a stream is complete: answer it (an early error or the handler). */
static void h2_dispatch(conn *c, exch *ex)
{
    ws_http_server *s = c->lc->srv;
    ex->ctx.start_s = ws_now_s();
    if (ex->early_status) {
        static const struct {
            int status;
            const char *code, *msg;
        } errs[] = {{400, "bad_request", "malformed request"},
                    {404, "not_found", "no such endpoint"},
                    {405, "method_not_allowed", "method not allowed for this path"},
                    {413, "payload_too_large", "request body is over the limit"},
                    {431, "headers_too_large", "request headers are over the size limit"}};
        for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
            if (errs[i].status == ex->early_status)
                ws_http_error(&ex->ctx, errs[i].status, errs[i].code, "%s", errs[i].msg);
        if (ex->early_status == 405)
            allow_header(s, &ex->ctx);
        h2_respond(c, ex);
        return;
    }
    ex->ctx.body = ex->body.data;
    ex->ctx.body_len = ex->body.len;
    const ws_http_route *r = &s->cfg.routes[ex->route];
    ex->ctx.route = r;
    int rc = WS_EAGAIN;
    if (!(r->flags & WS_ROUTE_BLOCKING)) {
        ex->ctx.on_loop = true;
        rc = call_handler(&ex->ctx);
    }
    if (rc == WS_EAGAIN) {
        ex->work.data = ex;
        ex->h2_in_pool = true;
        c->h2_in_pool++;
        if (uv_queue_work(&c->lc->loop, &ex->work, work_cb, after_work_cb) == 0)
            return;
        ex->h2_in_pool = false;
        c->h2_in_pool--;
        rc = WS_EINTERNAL;
    }
    if (rc < 0)
        ws_http_error(&ex->ctx, 500, "internal", "internal error");
    h2_respond(c, ex);
}

static void h2_after_work(exch *ex, int status)
{
    conn *c = ex->c;
    ex->h2_in_pool = false;
    c->h2_in_pool--;
    if (c->closing) {
        if (ex->h2_closed) {
            h2_unlink(ex);
            ws_metric_add(c->lc->srv->m_inflight, -1);
            exch_free(ex);
        }
        conn_close(c);
        return;
    }
    if (ex->h2_closed) { /* the client reset the stream meanwhile */
        h2_unlink(ex);
        ws_metric_add(c->lc->srv->m_inflight, -1);
        exch_free(ex);
        return;
    }
    if (status < 0 || ex->rc < 0)
        ws_http_error(&ex->ctx, 500, "internal", "internal error");
    h2_respond(c, ex);
    h2_flush(c);
}

static int h2_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    conn *c = user;
    exch *ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!ex)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_HEADERS))
        h2_route(c, ex);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        h2_dispatch(c, ex);
    return 0;
}

static int h2_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user)
{
    conn *c = user;
    exch *ex = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!ex)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    if (ex->h2_in_pool) {
        ex->h2_closed = true; /* freed when the handler returns */
        return 0;
    }
    h2_unlink(ex);
    ws_metric_add(c->lc->srv->m_inflight, -1);
    exch_free(ex);
    return 0;
}

/* Sends what nghttp2 has queued; closes the connection when neither side wants more. */
static void h2_flush(conn *c)
{
    if (!c->h2 || c->torn)
        return;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            conn_close(c);
            return;
        }
        if (n == 0)
            break;
        conn_put(c, data, (size_t)n);
    }
    conn_flush(c);
    if (c->closing)
        return;
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        h2_close_soon(c);
        return;
    }
    /* idle (no open stream): the keep-alive timeout applies, draining closes; open streams
     * must make progress within the body timeout (slow clients) */
    if (!c->h2_streams) {
        if (c->lc->draining)
            h2_close_soon(c);
        else
            timer_arm(c, c->lc->srv->cfg.keepalive_timeout_ms, on_timeout);
    } else {
        timer_arm(c, c->lc->srv->cfg.body_timeout_ms, on_timeout);
    }
}

static void h2_goaway(conn *c)
{
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          NGHTTP2_NO_ERROR, NULL, 0);
    h2_flush(c);
}

/* Feeds the buffered input to nghttp2 (starting the session on the first call). */
static void h2_feed(conn *c)
{
    if (!c->h2) {
        nghttp2_session_callbacks *cb;
        nghttp2_session_callbacks_new(&cb);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
        int rc = nghttp2_session_server_new(&c->h2, cb, c);
        nghttp2_session_callbacks_del(cb);
        if (rc != 0) {
            c->h2 = NULL;
            conn_close(c);
            return;
        }
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->lc->srv->cfg.max_head_bytes}};
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
        c->state = ST_BODY; /* never idle-parsed as HTTP/1 again */
    }
    if (c->len) {
        ssize_t n = nghttp2_session_mem_recv(c->h2, (const uint8_t *)c->buf, c->len);
        c->len = 0;
        if (n < 0) {
            h2_flush(c); /* nghttp2 queued a GOAWAY */
            h2_close_soon(c);
            return;
        }
    }
    h2_flush(c);
}

/* ---- reading --------------------------------------------------------------------------- */

/* How much input this connection may buffer in its current state. */
static size_t input_limit(conn *c)
{
    ws_http_server *s = c->lc->srv;
    if (c->state == ST_BODY && c->ex) {
        if (c->ex->chunked)
            return c->ex->head_len + 65536;
        return c->ex->head_len + (size_t)c->ex->content_length + 4096;
    }
    return s->cfg.max_head_bytes + 4096;
}

static bool grow_input(conn *c)
{
    size_t limit = input_limit(c);
    if (c->cap - c->len >= 1024 || c->cap >= limit)
        return c->cap > c->len;
    if (c->cap == 0 && c->state == ST_HEAD && READ_CHUNK <= limit) {
        c->buf = spare_buf_get(c->lc);
        c->cap = READ_CHUNK;
        return c->cap > c->len;
    }
    size_t want = c->cap ? c->cap * 2 : READ_CHUNK;
    if (c->state == ST_BODY && c->ex && !c->ex->chunked) {
        size_t need = c->ex->head_len + (size_t)c->ex->content_length + 1024;
        if (want < need)
            want = need;
    }
    if (want > limit)
        want = limit;
    c->buf = ws_xrealloc(c->buf, want);
    c->cap = want;
    return c->cap > c->len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    conn *c = h->data;
    if (c->ssl) {
        *b = uv_buf_init(c->lc->tls_in, sizeof c->lc->tls_in);
        return;
    }
    if (!grow_input(c)) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* Decrypts what the TLS engine holds into the input buffer. Returns false on a fatal error. */
static bool tls_pull(conn *c)
{
    for (;;) {
        if (!grow_input(c))
            break;
        int n = SSL_read(c->ssl, c->buf + c->len, (int)(c->cap - c->len));
        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        tls_collect(c);
        conn_flush(c);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        return false;
    }
    tls_collect(c);
    conn_flush(c);
    return true;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    conn *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            if (c->state == ST_WRITING || c->state == ST_HANDLING) {
                /* pipelined input piles up behind a response being written: wait */
                uv_read_stop(st);
                c->reading = false;
                return;
            }
            process(c); /* buffer full: lets the parser answer 431/413 */
            if (!c->closing && (c->state == ST_HEAD || c->state == ST_BODY))
                conn_close(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (c->ssl) {
        BIO_write(SSL_get_rbio(c->ssl), b->base, (int)nread);
        if (!tls_pull(c)) {
            conn_close(c);
            return;
        }
        if (c->closing)
            return;
    } else {
        c->len += (size_t)nread;
    }
    /* process() arms the head timer when the head stays incomplete */
    if (c->state == ST_BODY)
        timer_arm(c, c->lc->srv->cfg.body_timeout_ms, on_timeout);
    process(c);
}

/* ---- connections ----------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->pending_closes > 0)
        return;
    loop_ctx *lc = c->lc;
    free(c->buf);
    ws_buf_free(&c->wbuf);
    ws_buf_free(&c->wfly);
    if (c->ssl)
        SSL_free(c->ssl);
    free(c);
    (void)lc;
}

static void maybe_finish_loop(loop_ctx *lc)
{
    if (!lc->draining || lc->n_conns > 0 || lc->finished)
        return;
    lc->finished = true;
    uv_close((uv_handle_t *)&lc->stop_async, NULL);
    uv_close((uv_handle_t *)&lc->stream_async, NULL);
    if (lc->drain_timer_on)
        uv_close((uv_handle_t *)&lc->drain_timer, NULL);
}

static void conn_close(conn *c)
{
    c->closing = true;
    if (c->ex && c->ex->streaming)
        atomic_store(&c->ex->gone, true);
    if (c->in_pool || c->h2_in_pool || c->torn)
        return; /* in the pool: after_work_cb comes back here */
    c->torn = true;
    h2_free_all(c);
    if (c->ex) {
        exch_free(c->ex);
        c->ex = NULL;
        ws_metric_add(c->lc->srv->m_inflight, -1);
    }
    loop_ctx *lc = c->lc;
    if (c->prev)
        c->prev->next = c->next;
    else
        lc->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    lc->n_conns--;
    atomic_fetch_sub(&lc->srv->n_conns, 1);
    ws_metric_add(lc->srv->m_conns, -1);
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    maybe_finish_loop(lc);
}

/* Lingering close after a final response: send FIN, then read and discard what the client
 * still sends (so an unread request body does not turn into a reset that destroys the
 * response) until it closes or 2 s pass. */
static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    conn *c = h->data;
    *b = uv_buf_init(c->lc->tls_in, sizeof c->lc->tls_in);
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    if (nread < 0)
        conn_close(st->data);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    conn *c = r->data;
    if (status < 0)
        conn_close(c);
}

static void conn_linger(conn *c)
{
    c->state = ST_LINGER;
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = true;
    timer_arm(c, 2000, on_linger_timeout);
    c->sreq.data = c;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_linger_alloc, on_linger_read) != 0 ||
        uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    loop_ctx *lc = server->data;
    ws_http_server *s = lc->srv;
    if (status < 0 || lc->draining)
        return;
    conn *c = ws_xcalloc(1, sizeof *c);
    c->lc = lc;
    uv_tcp_init(&lc->loop, &c->tcp);
    uv_timer_init(&lc->loop, &c->timer);
    c->tcp.data = c->timer.data = c->wreq.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->pending_closes = 2;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        uv_close((uv_handle_t *)&c->timer, on_conn_closed);
        return;
    }
    c->next = lc->conns;
    if (lc->conns)
        lc->conns->prev = c;
    lc->conns = c;
    lc->n_conns++;
    ws_metric_add(s->m_conns, 1);
    ws_metric_add(s->m_accepted, 1);
    if ((size_t)atomic_fetch_add(&s->n_conns, 1) >= s->cfg.max_connections) {
        ws_metric_add(s->m_rejected, 1);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    if (s->ssl_ctx) {
        c->ssl = SSL_new(s->ssl_ctx);
        SSL_set_bio(c->ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
        SSL_set_accept_state(c->ssl);
    }
    c->reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    timer_arm(c, s->cfg.head_timeout_ms, on_timeout);
}

/* ---- loops, start, stop ---------------------------------------------------------------- */

static void on_drain_timeout(uv_timer_t *t)
{
    loop_ctx *lc = t->data;
    for (conn *c = lc->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

static void on_stop(uv_async_t *a)
{
    loop_ctx *lc = a->data;
    if (lc->draining)
        return;
    lc->draining = true;
    uv_close((uv_handle_t *)&lc->listener, NULL);
    for (conn *c = lc->conns, *next; c; c = next) {
        next = c->next;
        if (c->h2)
            h2_goaway(c);
        else if (c->state == ST_HEAD && c->len == 0 && !c->writing)
            conn_close(c);
    }
    if (lc->n_conns == 0) {
        maybe_finish_loop(lc);
        return;
    }
    uv_timer_init(&lc->loop, &lc->drain_timer);
    lc->drain_timer_on = true;
    lc->drain_timer.data = lc;
    uv_timer_start(&lc->drain_timer, on_drain_timeout, (uint64_t)lc->srv->cfg.drain_timeout_ms, 0);
}

static void *loop_main(void *arg)
{
    loop_ctx *lc = arg;
    uv_run(&lc->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int open_listener(const char *host, int port, int *fd_out, int *port_out, ws_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (uv_ip6_addr(host, port, a) != 0)
            return ws_error_set(err, WS_EINVAL, "bad listen address '%s'", host);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        if (uv_ip4_addr(host, port, a) != 0)
            return ws_error_set(err, WS_EINVAL, "bad listen address '%s'", host);
        sl = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ws_error_set(err, WS_EIO, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        return ws_error_set(err, WS_EIO, "cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &bl);
    *port_out = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
    *fd_out = fd;
    return 0;
}

/* ALPN: h2 when the client offers it, else http/1.1. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    static const unsigned char prefs[] = "\x02h2\x08http/1.1";
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, prefs, sizeof prefs - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static int tls_init(ws_http_server *s, ws_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return ws_error_set(err, WS_EIO, "TLS: cannot create context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, s->cfg.tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        SSL_CTX_free(ctx);
        return ws_error_set(err, WS_EINVAL, "TLS: cannot load %s / %s: %s", s->cfg.tls_cert, s->cfg.tls_key,
                            buf);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    s->ssl_ctx = ctx;
    return 0;
}

static void register_metrics(ws_http_server *s)
{
    ws_metrics *m = s->cfg.metrics;
    if (!m) {
        m = s->cfg.metrics = ws_metrics_new(); /* private registry; freed with the server */
        s->own_metrics = true;
    }
    s->m_conns = ws_metrics_gauge(m, "ws_http_connections", NULL, "Open HTTP connections.");
    s->m_accepted =
        ws_metrics_counter(m, "ws_http_connections_accepted_total", NULL, "Accepted HTTP connections.");
    s->m_rejected = ws_metrics_counter(m, "ws_http_connections_rejected_total", NULL,
                                       "Connections closed at once because of max_connections.");
    s->m_inflight = ws_metrics_gauge(m, "ws_http_requests_in_flight", NULL,
                                     "Requests being received, handled or answered.");
    s->rm = ws_xcalloc(s->cfg.n_routes + 1, sizeof *s->rm);
    for (size_t i = 0; i <= s->cfg.n_routes; i++) {
        char labels[256];
        const char *pat = i < s->cfg.n_routes ? s->cfg.routes[i].pattern : "unmatched";
        const char *meth = i < s->cfg.n_routes ? s->cfg.routes[i].method : "*";
        for (int k = 0; k < 5; k++) {
            snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",code=\"%dxx\"", pat, meth, k + 1);
            s->rm[i].by_class[k] = ws_metrics_counter(m, "ws_http_requests_total", labels,
                                                      "HTTP requests answered, by route and status class.");
        }
        snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\"", pat, meth);
        s->rm[i].latency =
            ws_metrics_histogram(m, "ws_http_request_duration_seconds", labels,
                                 "Time from a complete request head to the response being queued.", NULL, 0);
    }
}

int ws_http_server_new(const ws_http_config *cfg, ws_http_server **out, ws_error *err)
{
    int rc = 0;
    ws_http_server *s = ws_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (!s->cfg.host)
        s->cfg.host = "0.0.0.0";
    if (s->cfg.threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->cfg.threads = n > 0 ? (int)n : 1;
    }
    if (!s->cfg.max_head_bytes)
        s->cfg.max_head_bytes = 16 * 1024;
    if (!s->cfg.max_body_bytes)
        s->cfg.max_body_bytes = 1024 * 1024;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 20000;
    if (!s->cfg.max_body_total)
        s->cfg.max_body_total = (size_t)1 << 30;
    if (!s->cfg.head_timeout_ms)
        s->cfg.head_timeout_ms = 10000;
    if (!s->cfg.body_timeout_ms)
        s->cfg.body_timeout_ms = 15000;
    if (!s->cfg.keepalive_timeout_ms)
        s->cfg.keepalive_timeout_ms = 120000;
    if (!s->cfg.write_timeout_ms)
        s->cfg.write_timeout_ms = 30000;
    if (!s->cfg.drain_timeout_ms)
        s->cfg.drain_timeout_ms = 30000;
    s->n_loops = s->cfg.threads;
    s->loops = ws_xcalloc((size_t)s->n_loops, sizeof *s->loops);
    for (int i = 0; i < s->n_loops; i++)
        s->loops[i].fd = -1;
    if (s->cfg.tls_cert && s->cfg.tls_key) {
        rc = tls_init(s, err);
        if (rc)
            goto out;
    }
    s->port = s->cfg.port;
    for (int i = 0; i < s->n_loops; i++) {
        rc = open_listener(s->cfg.host, s->port, &s->loops[i].fd, &s->port, err);
        if (rc)
            goto out;
    }
    register_metrics(s);
out:
    if (rc) {
        ws_http_server_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

int ws_http_server_port(const ws_http_server *s)
{
    return s->port;
}

int ws_http_server_start(ws_http_server *s, ws_error *err)
{
    /* handlers block on the store and the AI: the pool's size (UV_THREADPOOL_SIZE, read by
     * libuv at first use) is set by the caller (`whatstyle serve --uv-threadpool-size`) */
    for (int i = 0; i < s->n_loops; i++) {
        loop_ctx *lc = &s->loops[i];
        lc->srv = s;
        uv_loop_init(&lc->loop);
        uv_tcp_init(&lc->loop, &lc->listener);
        lc->listener.data = lc;
        if (uv_tcp_open(&lc->listener, lc->fd) != 0)
            return ws_error_set(err, WS_EIO, "cannot adopt listening socket");
        lc->fd = -1;
        uv_async_init(&lc->loop, &lc->stop_async, on_stop);
        lc->stop_async.data = lc;
        uv_async_init(&lc->loop, &lc->stream_async, on_stream_async);
        lc->stream_async.data = lc;
        pthread_mutex_init(&lc->stream_mu, NULL);
        int r = uv_listen((uv_stream_t *)&lc->listener, 4096, on_connection);
        if (r != 0)
            return ws_error_set(err, WS_EIO, "listen: %s", uv_strerror(r));
    }
    for (int i = 0; i < s->n_loops; i++) {
        if (pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]) != 0)
            return ws_error_set(err, WS_EIO, "cannot start loop thread");
        s->loops[i].thread_started = true;
    }
    s->started = true;
    return 0;
}

void ws_http_server_stop(ws_http_server *s)
{
    if (atomic_exchange(&s->stopping, true))
        return;
    if (!s->started)
        return;
    for (int i = 0; i < s->n_loops; i++)
        uv_async_send(&s->loops[i].stop_async);
}

bool ws_http_server_draining(const ws_http_server *s)
{
    return atomic_load(&((ws_http_server *)s)->stopping);
}

void ws_http_server_wait(ws_http_server *s)
{
    for (int i = 0; i < s->n_loops; i++) {
        if (s->loops[i].thread_started) {
            pthread_join(s->loops[i].thread, NULL);
            s->loops[i].thread_started = false;
        }
    }
}

void ws_http_server_free(ws_http_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_loops; i++) {
        loop_ctx *lc = &s->loops[i];
        if (lc->fd >= 0)
            close(lc->fd);
        if (lc->srv) {
            uv_run(&lc->loop, UV_RUN_NOWAIT);
            uv_loop_close(&lc->loop);
            pthread_mutex_destroy(&lc->stream_mu);
            spares_free(lc);
        }
    }
    free(s->loops);
    free(s->rm);
    if (s->own_metrics)
        ws_metrics_free(s->cfg.metrics);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free(s);
}
