/* HTTP/1.1 on a connection: the state machine (head -> body -> handling -> writing), body
 * framing and caps, dispatch to the loop or the thread pool, streamed responses and the
 * response head (see http_int.h). */
#include "server/http_int.h"

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
    const char *date = ws__http_date_now(c->lc);
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
    ws__http_conn_put(c, head, n);
    if (!ex->keep_alive)
        ws__http_conn_put(c, "Connection: close\r\n", 19);
    else if (ex->req.minor_version == 0)
        ws__http_conn_put(c, "Connection: keep-alive\r\n", 24);
    if (ctx->headers.len)
        ws__http_conn_put(c, ctx->headers.data, ctx->headers.len);
    ws__http_conn_put(c, "\r\n", 2);
    if (!no_body && !ex->is_head && ctx->out.len)
        ws__http_conn_put(c, ctx->out.data, ctx->out.len);

    ws__http_request_done(s, ex->route, ctx);
}

/* Sends the response of the current exchange; completes it at once when the socket took
 * everything. Returns true if the request finished synchronously. */
static bool send_response(conn *c)
{
    exch *ex = c->ex;
    c->state = ST_WRITING;
    queue_response(c, ex);
    if (ws__http_conn_flush(c)) {
        ws__http_finish_request(c);
        return true;
    }
    if (!c->closing)
        ws__http_timer_arm(c, c->lc->srv->cfg.write_timeout_ms, ws__http_on_write_timeout);
    return false;
}

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

void ws__http_work_cb(uv_work_t *w)
{
    exch *ex = w->data;
    ex->ctx.on_loop = false;
    ex->rc = ws__http_call_handler(&ex->ctx);
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
        ws__http_conn_put(c, ex->spend.data, ex->spend.len);
    ws_buf_reset(&ex->spend);
    pthread_mutex_unlock(&ex->smu);
}

void ws__http_on_stream_async(uv_async_t *a)
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
            ws__http_conn_flush(e->c);
    }
}

/* The handler of a streamed response returned: last piece, terminator, done. */
static void stream_end(conn *c, exch *ex)
{
    stream_drain(ex);
    char hdr[32];
    if (ex->ctx.out.len) {
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", ex->ctx.out.len);
        ws__http_conn_put(c, hdr, (size_t)n);
        ws__http_conn_put(c, ex->ctx.out.data, ex->ctx.out.len);
        ws__http_conn_put(c, "\r\n", 2);
    }
    ws__http_conn_put(c, "0\r\n\r\n", 5);
    ws_http_server *s = c->lc->srv;
    ws__http_request_done(s, ex->route, &ex->ctx);
    c->state = ST_WRITING;
    if (ws__http_conn_flush(c)) {
        ws__http_finish_request(c);
        if (!c->closing)
            ws__http_process(c);
    } else if (!c->closing) {
        ws__http_timer_arm(c, s->cfg.write_timeout_ms, ws__http_on_write_timeout);
    }
}

void ws__http_after_work_cb(uv_work_t *w, int status)
{
    exch *ex = w->data;
    conn *c = ex->c;
    if (ex->stream_id) {
        ws__http_h2_after_work(ex, status);
        return;
    }
    c->in_pool = false;
    if (ex->streaming) {
        stream_unlist(ex);
        if (c->closing) {
            ws__http_conn_close(c);
            return;
        }
        stream_end(c, ex);
        return;
    }
    if (status < 0 || ex->rc < 0)
        ws_http_error(&ex->ctx, 500, "internal", "internal error");
    if (c->closing) {
        /* the connection was torn down while the handler ran */
        ws__http_conn_close(c);
        return;
    }
    if (send_response(c) && !c->closing)
        ws__http_process(c);
}

/* Runs the handler of a complete request. Returns true when the response completed
 * synchronously (the caller may continue with pipelined input). */
static bool dispatch(conn *c)
{
    ws_http_server *s = c->lc->srv;
    exch *ex = c->ex;
    c->state = ST_HANDLING;
    ws__http_timer_off(c);
    /* The input buffer may have moved (grown for the body) since the head was parsed: then
     * parse it again, so the slices point into the current buffer. */
    if (ex->parsed_in != c->buf) {
        ws_http_parse_request(c->buf, ex->head_len, &ex->req);
        bool mismatch;
        ex->route = ws__http_route_find(s, &ex->req, ex->ctx.params, &mismatch);
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
        rc = ws__http_call_handler(&ex->ctx);
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
        if (uv_queue_work(&c->lc->loop, &ex->work, ws__http_work_cb, ws__http_after_work_cb) == 0)
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
    ex->route = ws__http_route_find(s, req, ex->ctx.params, &mismatch);
    if (ex->route == ROUTE_NONE) {
        if (mismatch) {
            ws__http_allow_header(s, &ex->ctx);
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
        ws__http_conn_put(c, cont, sizeof cont - 1);
        ws__http_conn_flush(c);
    }
    return true;
}

void ws__http_on_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    c->timer_on = false;
    c->head_timer = false;
    if (c->h2) {
        if (c->h2_in_pool) { /* a handler is working: not the client's fault */
            ws__http_timer_arm(c, c->lc->srv->cfg.body_timeout_ms, ws__http_on_timeout);
            return;
        }
        if (c->h2_streams) /* a stream that does not finish its request */
            ws__http_h2_goaway(c);
        ws__http_h2_close_soon(c);
        return;
    }
    if (c->state == ST_HEAD && c->len == 0) {
        ws__http_conn_close(c); /* idle keep-alive connection */
        return;
    }
    if (c->state == ST_HEAD || c->state == ST_BODY) {
        exch *ex = c->ex;
        if (!ex) {
            ws_http_request empty = {0};
            ex = ws__http_exch_new(c, &empty, 0);
            ws_metric_add(c->lc->srv->m_inflight, 1);
        }
        early_error(c, ex, 408, "timeout", "request not received in time");
        return;
    }
    ws__http_conn_close(c);
}

/* Advances the state machine over the input buffered so far. */
void ws__http_process(conn *c)
{
    ws_http_server *s = c->lc->srv;
    for (;;) {
        bool head_now = false; /* the head was parsed in this round */
        if (c->closing || (c->state != ST_HEAD && c->state != ST_BODY))
            return;
        if (c->h2 || (c->state == ST_HEAD && ws__http_h2_detect(c))) {
            for (;;) {
                ws__http_h2_feed(c);
                /* TLS may hold more than the input buffer took: keep going */
                if (c->closing || !c->ssl ||
                    !(SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(c->ssl)) > 0))
                    return;
                if (!ws__http_tls_pull(c)) {
                    ws__http_conn_close(c);
                    return;
                }
            }
        }
        if (!c->reading) {
            c->reading = true;
            uv_read_start((uv_stream_t *)&c->tcp, ws__http_on_alloc, ws__http_on_read);
        }
        if (c->ssl && (SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(SSL_get_rbio(c->ssl)) > 0)) {
            if (!ws__http_tls_pull(c)) {
                ws__http_conn_close(c);
                return;
            }
        }
        if (c->state == ST_HEAD) {
            if (c->len == 0) {
                ws__http_timer_arm(c, c->lc->draining ? 1 : s->cfg.keepalive_timeout_ms, ws__http_on_timeout);
                return;
            }
            int r = ws_http_parse_request(c->buf, c->len, &c->lc->scratch);
            if (r == -2) {
                if (c->len >= s->cfg.max_head_bytes) {
                    ws_http_request empty = {0};
                    exch *ex = ws__http_exch_new(c, &empty, 0);
                    ws_metric_add(s->m_inflight, 1);
                    early_error(c, ex, 431, "headers_too_large", "request head is over the size limit");
                } else if (!c->head_timer) {
                    /* the head is incomplete: its time runs from its first byte (this read
                     * or an earlier one, which armed it) */
                    ws__http_timer_arm(c, s->cfg.head_timeout_ms, ws__http_on_timeout);
                    c->head_timer = true;
                }
                return;
            }
            ws_metric_add(s->m_inflight, 1);
            if (r == -1 || (size_t)r > s->cfg.max_head_bytes) {
                ws_http_request empty = {0};
                exch *ex = ws__http_exch_new(c, &empty, 0);
                if (r == -1)
                    early_error(c, ex, 400, "bad_request", "malformed request");
                else
                    early_error(c, ex, 431, "headers_too_large", "request head is over the size limit");
                return;
            }
            c->ex = ws__http_exch_new(c, &c->lc->scratch, (size_t)r);
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
                    if (head_now) /* later reads re-arm it (ws__http_on_read) */
                        ws__http_timer_arm(c, s->cfg.body_timeout_ms, ws__http_on_timeout);
                    return;
                }
                ex->consumed = ex->head_len;
            } else {
                size_t need = ex->head_len + (size_t)(ex->content_length > 0 ? ex->content_length : 0);
                if (c->len < need) {
                    if (head_now) /* later reads re-arm it (ws__http_on_read) */
                        ws__http_timer_arm(c, s->cfg.body_timeout_ms, ws__http_on_timeout);
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
