/* HTTP/2 on a connection via nghttp2 (see http_int.h). */
#include "server/http_int.h"

/* ---- HTTP/2 (nghttp2) ---------------------------------------------------------------------
 * A connection becomes HTTP/2 when its first bytes are the client preface (h2c with prior
 * knowledge, or h2 after ALPN over TLS). Each stream is an exchange with its own arena; the
 * handlers are the same as for HTTP/1.1 (loop first, then the pool on WS_EAGAIN). Streamed
 * responses are HTTP/1.1 only (ws_http_stream_begin answers WS_EUNSUPPORTED here). */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void h2_flush(conn *c);

/* True when the input starts with the HTTP/2 preface (then the connection switches). */
bool ws__http_h2_detect(conn *c)
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

void ws__http_h2_free_all(conn *c)
{
    if (c->h2) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    while (c->h2_streams) {
        exch *ex = c->h2_streams;
        h2_unlink(ex);
        ws_metric_add(c->lc->srv->m_inflight, -1);
        ws__http_exch_free(ex);
    }
}

/* Closes once the queued output is on the wire (a close would cancel a pending write). */
void ws__http_h2_close_soon(conn *c)
{
    if (c->writing)
        c->close_when_written = true;
    else
        ws__http_conn_close(c);
}

static int h2_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    ws_http_request empty = {0};
    exch *ex = ws__http_exch_new(c, &empty, 0);
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
    ex->route = ws__http_route_find(s, &ex->req, ex->ctx.params, &mismatch);
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
    ws__http_request_done(s, ex->route, ctx);
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
            ws__http_allow_header(s, &ex->ctx);
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
        rc = ws__http_call_handler(&ex->ctx);
    }
    if (rc == WS_EAGAIN) {
        ex->work.data = ex;
        ex->h2_in_pool = true;
        c->h2_in_pool++;
        if (uv_queue_work(&c->lc->loop, &ex->work, ws__http_work_cb, ws__http_after_work_cb) == 0)
            return;
        ex->h2_in_pool = false;
        c->h2_in_pool--;
        rc = WS_EINTERNAL;
    }
    if (rc < 0)
        ws_http_error(&ex->ctx, 500, "internal", "internal error");
    h2_respond(c, ex);
}

void ws__http_h2_after_work(exch *ex, int status)
{
    conn *c = ex->c;
    ex->h2_in_pool = false;
    c->h2_in_pool--;
    if (c->closing) {
        if (ex->h2_closed) {
            h2_unlink(ex);
            ws_metric_add(c->lc->srv->m_inflight, -1);
            ws__http_exch_free(ex);
        }
        ws__http_conn_close(c);
        return;
    }
    if (ex->h2_closed) { /* the client reset the stream meanwhile */
        h2_unlink(ex);
        ws_metric_add(c->lc->srv->m_inflight, -1);
        ws__http_exch_free(ex);
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
    ws__http_exch_free(ex);
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
            ws__http_conn_close(c);
            return;
        }
        if (n == 0)
            break;
        ws__http_conn_put(c, data, (size_t)n);
    }
    ws__http_conn_flush(c);
    if (c->closing)
        return;
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        ws__http_h2_close_soon(c);
        return;
    }
    /* idle (no open stream): the keep-alive timeout applies, draining closes; open streams
     * must make progress within the body timeout (slow clients) */
    if (!c->h2_streams) {
        if (c->lc->draining)
            ws__http_h2_close_soon(c);
        else
            ws__http_timer_arm(c, c->lc->srv->cfg.keepalive_timeout_ms, ws__http_on_timeout);
    } else {
        ws__http_timer_arm(c, c->lc->srv->cfg.body_timeout_ms, ws__http_on_timeout);
    }
}

void ws__http_h2_goaway(conn *c)
{
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          NGHTTP2_NO_ERROR, NULL, 0);
    h2_flush(c);
}

/* Feeds the buffered input to nghttp2 (starting the session on the first call). */
void ws__http_h2_feed(conn *c)
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
            ws__http_conn_close(c);
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
            ws__http_h2_close_soon(c);
            return;
        }
    }
    h2_flush(c);
}
