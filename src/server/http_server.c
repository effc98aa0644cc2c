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

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/progress.h"

#define READ_CHUNK 4096
#define ROUTE_NONE ((size_t)-1)

enum { ST_HEAD, ST_BODY, ST_HANDLING, ST_WRITING, ST_LINGER };

typedef struct loop_ctx loop_ctx;
typedef struct conn conn;
typedef struct exch exch;

typedef struct route_metrics {
    ws_metric *by_class[5];      /* 1xx..5xx */
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
    bool started;
    bool own_metrics;
    route_metrics *rm;           /* n_routes + 1 (last: unmatched) */
    ws_metric *m_conns, *m_accepted, *m_inflight, *m_rejected;
};

struct loop_ctx {
    ws_http_server *srv;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;
    uv_timer_t drain_timer;
    int fd;                      /* listening socket, handed to uv_tcp_open */
    pthread_t thread;
    bool thread_started;
    bool draining;
    bool finished;               /* loop handles closed after draining */
    bool drain_timer_on;
    conn *conns;                 /* all open connections */
    long n_conns;
    ws_http_request scratch;     /* head parsing before an exchange exists */
    char date[40];
    time_t date_sec;
    char tls_in[65536];          /* ciphertext read buffer */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    loop_ctx *lc;
    conn *prev, *next;
    char *buf;                   /* plaintext input */
    size_t len, cap;
    int state;
    int pending_closes;
    bool closing, torn, reading, in_pool, timer_on;
    uv_shutdown_t sreq;
    exch *ex;
    uv_write_t wreq;
    bool writing;
    ws_buf wbuf, wfly;           /* output waiting / in flight */
    SSL *ssl;
    char peer[64];
};

struct exch {
    ws_http_ctx ctx;
    ws_http_request req;
    conn *c;
    uv_work_t work;
    size_t head_len;
    size_t consumed;             /* input bytes this request used (head + raw body) */
    int64_t content_length;      /* -1 when chunked or none */
    bool chunked;
    ws_http_chunked dec;
    ws_buf body;                 /* decoded chunked body */
    size_t body_cap;
    size_t route;
    int rc;
    bool keep_alive;
    bool is_head;
};

static void conn_close(conn *c);
static void conn_linger(conn *c);
static void process(conn *c);
static void finish_request(conn *c);

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

static void timer_arm(conn *c, int ms, uv_timer_cb cb)
{
    uv_timer_start(&c->timer, cb, (uint64_t)ms, 0);
    c->timer_on = true;
}

static void timer_off(conn *c)
{
    if (c->timer_on) {
        uv_timer_stop(&c->timer);
        c->timer_on = false;
    }
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
static size_t route_find(const ws_http_server *s, const ws_http_request *req,
                         ws_http_slice *params, bool *method_mismatch)
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
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: whatstyle\r\n", ctx->status,
                     ws_http_reason(ctx->status), date_now(c->lc));
    conn_put(c, head, (size_t)n);
    if (!no_body) {
        n = snprintf(head, sizeof head, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                     ctx->content_type ? ctx->content_type : "application/json", ctx->out.len);
        conn_put(c, head, (size_t)n);
    }
    if (!ex->keep_alive)
        conn_put(c, "Connection: close\r\n", 19);
    else if (ex->req.minor_version == 0)
        conn_put(c, "Connection: keep-alive\r\n", 24);
    if (ctx->headers.len)
        conn_put(c, ctx->headers.data, ctx->headers.len);
    conn_put(c, "\r\n", 2);
    if (!no_body && !ex->is_head && ctx->out.len)
        conn_put(c, ctx->out.data, ctx->out.len);

    size_t ri = ex->route == ROUTE_NONE ? s->cfg.n_routes : ex->route;
    if (s->rm) {
        int cls = ctx->status / 100 - 1;
        if (cls >= 0 && cls < 5)
            ws_metric_add(s->rm[ri].by_class[cls], 1);
        ws_metric_observe(s->rm[ri].latency, ws_now_s() - ctx->start_s);
    }
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

/* ---- exchange lifecycle ---------------------------------------------------------------- */

static exch *exch_new(conn *c, const ws_http_request *req, size_t head_len)
{
    ws_arena *a = ws_arena_new(8192);
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
    return ex;
}

static void exch_free(exch *ex)
{
    if (!ex)
        return;
    ws_buf_free(&ex->ctx.out);
    ws_buf_free(&ex->ctx.headers);
    ws_buf_free(&ex->body);
    ws_arena_free(ex->ctx.arena);
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
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
        ws_buf_free(&c->wbuf);
        ws_buf_free(&c->wfly);
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
    ex->rc = ex->c->lc->srv->cfg.routes[ex->route].handler(&ex->ctx);
}

static void after_work_cb(uv_work_t *w, int status)
{
    exch *ex = w->data;
    conn *c = ex->c;
    c->in_pool = false;
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
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    /* The input buffer may have moved since the head was parsed: parse it again. */
    ws_http_parse_request(c->buf, ex->head_len, &ex->req);
    bool mismatch;
    ex->route = route_find(s, &ex->req, ex->ctx.params, &mismatch);
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
        rc = r->handler(&ex->ctx);
    }
    if (rc == WS_EAGAIN) {
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
    if (c->state == ST_HEAD && c->len == 0) {
        conn_close(c);   /* idle keep-alive connection */
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
        if (c->closing || (c->state != ST_HEAD && c->state != ST_BODY))
            return;
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
                    early_error(c, ex, 431, "headers_too_large",
                                "request head is over the size limit");
                } else if (!c->timer_on) {
                    timer_arm(c, s->cfg.head_timeout_ms, on_timeout);
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
                    early_error(c, ex, 431, "headers_too_large",
                                "request head is over the size limit");
                return;
            }
            c->ex = exch_new(c, &c->lc->scratch, (size_t)r);
            c->state = ST_BODY;
            if (!begin_body(c, c->ex))
                return;
            timer_arm(c, s->cfg.body_timeout_ms, on_timeout);
        }
        if (c->state == ST_BODY) {
            exch *ex = c->ex;
            if (ex->chunked) {
                size_t used = 0;
                int r = ws_http_decode_chunked(&ex->dec, c->buf + ex->head_len,
                                               c->len - ex->head_len, &ex->body, &used);
                if (r < 0) {
                    early_error(c, ex, r == WS_ETOOBIG ? 413 : 400,
                                r == WS_ETOOBIG ? "payload_too_large" : "bad_request",
                                r == WS_ETOOBIG ? "request body is over the limit"
                                                : "bad chunked encoding");
                    return;
                }
                /* the raw chunks are decoded: drop them from the input */
                memmove(c->buf + ex->head_len, c->buf + ex->head_len + used,
                        c->len - ex->head_len - used);
                c->len -= used;
                if (r == 0)
                    return;
                ex->consumed = ex->head_len;
            } else {
                size_t need = ex->head_len + (size_t)(ex->content_length > 0 ? ex->content_length : 0);
                if (c->len < need)
                    return;
                ex->consumed = need;
            }
            if (!dispatch(c))
                return;
            continue;
        }
        return;
    }
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
            process(c);     /* buffer full: lets the parser answer 431/413 */
            if (!c->closing && (c->state == ST_HEAD || c->state == ST_BODY))
                conn_close(c);
            return;
        }
        conn_close(c);
        return;
    }
    bool fresh = c->state == ST_HEAD && c->len == 0;
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
    if (fresh && c->len > 0)
        timer_arm(c, c->lc->srv->cfg.head_timeout_ms, on_timeout);
    else if (c->state == ST_BODY)
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
    if (lc->drain_timer_on)
        uv_close((uv_handle_t *)&lc->drain_timer, NULL);
}

static void conn_close(conn *c)
{
    c->closing = true;
    if (c->in_pool || c->torn)
        return;           /* in the pool: after_work_cb comes back here */
    c->torn = true;
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
        if (c->state == ST_HEAD && c->len == 0 && !c->writing)
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
        return ws_error_set(err, WS_EINVAL, "TLS: cannot load %s / %s: %s", s->cfg.tls_cert,
                            s->cfg.tls_key, buf);
    }
    s->ssl_ctx = ctx;
    return 0;
}

static void register_metrics(ws_http_server *s)
{
    ws_metrics *m = s->cfg.metrics;
    if (!m) {
        m = s->cfg.metrics = ws_metrics_new();   /* private registry; freed with the server */
        s->own_metrics = true;
    }
    s->m_conns = ws_metrics_gauge(m, "ws_http_connections", NULL, "Open HTTP connections.");
    s->m_accepted = ws_metrics_counter(m, "ws_http_connections_accepted_total", NULL,
                                       "Accepted HTTP connections.");
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
        s->rm[i].latency = ws_metrics_histogram(m, "ws_http_request_duration_seconds", labels,
                                                "Time from a complete request head to the response being queued.",
                                                NULL, 0);
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
    /* handlers block on the store and the AI: give the shared pool room (before first use) */
    if (!getenv("UV_THREADPOOL_SIZE"))
        setenv("UV_THREADPOOL_SIZE", "16", 0);
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
