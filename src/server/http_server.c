/* HTTP server on libuv: the server object, one loop per thread with a SO_REUSEPORT listener
 * each, start, graceful drain and stop; the handler-facing API (headers, errors, streaming),
 * routing and per-request observability. Connections: http_conn.c; HTTP/1.1: http1.c;
 * HTTP/2: http2.c; TLS: http_tls.c; shared structs: http_int.h (see http_server.h). */
#include "server/http_int.h"

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
size_t ws__http_route_find(const ws_http_server *s, const ws_http_request *req, ws_http_slice *params,
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

void ws__http_allow_header(const ws_http_server *s, ws_http_ctx *ctx)
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

/* ---- observability: the request's span, metrics and log line ---------------------------- */

/* Runs the route's handler with the request's span as the thread's current span (begun at
 * the first run: a valid traceparent header continues the caller's trace). */
int ws__http_call_handler(ws_http_ctx *ctx)
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
void ws__http_request_done(ws_http_server *s, size_t route, ws_http_ctx *ctx)
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
        snprintf(method, sizeof method, "%.*s", m->p ? (int)(m->len < 15 ? m->len : 15) : 0,
                 m->p ? m->p : "");
        WS_LOG(lv, "http.request", NULL, WS_LF_S("http.request.method", method),
               WS_LF_S("http.route", pattern), WS_LF_I("http.response.status_code", st),
               WS_LF_I("event.duration", (int64_t)(dur * 1e9)), WS_LF_S("user.id", ctx->user_id),
               WS_LF_I("http.response.body.bytes", ctx->out.len));
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

/* ---- loops, start, stop ---------------------------------------------------------------- */

static void on_drain_timeout(uv_timer_t *t)
{
    loop_ctx *lc = t->data;
    for (conn *c = lc->conns, *next; c; c = next) {
        next = c->next;
        ws__http_conn_close(c);
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
            ws__http_h2_goaway(c);
        else if (c->state == ST_HEAD && c->len == 0 && !c->writing)
            ws__http_conn_close(c);
    }
    if (lc->n_conns == 0) {
        ws__http_maybe_finish_loop(lc);
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
        rc = ws__http_tls_init(s, err);
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
        uv_async_init(&lc->loop, &lc->stream_async, ws__http_on_stream_async);
        lc->stream_async.data = lc;
        pthread_mutex_init(&lc->stream_mu, NULL);
        int r = uv_listen((uv_stream_t *)&lc->listener, 4096, ws__http_on_connection);
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
            ws__http_spares_free(lc);
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
