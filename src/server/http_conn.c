/* HTTP server connections: accept, buffered input and output, timers, recycled buffers,
 * the exchange (one request) life cycle, lingering close and teardown (see http_int.h). */
#include "server/http_int.h"

static void conn_linger(conn *c);

/* ---- small helpers --------------------------------------------------------------------- */

const char *ws__http_date_now(loop_ctx *lc)
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

void ws__http_spares_free(loop_ctx *lc)
{
    while (lc->n_spare_bufs)
        free(lc->spare_bufs[--lc->n_spare_bufs]);
    while (lc->n_spare_arenas)
        ws_arena_free(lc->spare_arenas[--lc->n_spare_arenas]);
}

void ws__http_timer_arm(conn *c, int ms, uv_timer_cb cb)
{
    uv_timer_start(&c->timer, cb, (uint64_t)ms, 0);
    c->timer_on = true;
    c->head_timer = false;
}

void ws__http_timer_off(conn *c)
{
    if (c->timer_on) {
        uv_timer_stop(&c->timer);
        c->timer_on = false;
    }
    c->head_timer = false;
}
/* ---- output ---------------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status);

void ws__http_conn_put(conn *c, const void *data, size_t n)
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
    ws__http_tls_collect(c);
}

/* Starts writing whatever is queued. Returns true when everything was written at once. */
bool ws__http_conn_flush(conn *c)
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
        ws__http_conn_close(c);
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
        ws__http_conn_close(c);
    }
    return false;
}

void ws__http_on_write_timeout(uv_timer_t *t)
{
    ws__http_conn_close(t->data);
}

static void on_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing = false;
    ws_buf_reset(&c->wfly);
    if (status < 0 || c->closing) {
        ws__http_conn_close(c);
        return;
    }
    if (c->wbuf.len) {
        if (!ws__http_conn_flush(c))
            return;
    }
    if (c->close_when_written) {
        ws__http_conn_close(c);
        return;
    }
    if (c->state == ST_WRITING) {
        ws__http_finish_request(c);
        if (!c->closing)
            ws__http_process(c);
    }
}

/* ---- exchange lifecycle ---------------------------------------------------------------- */

exch *ws__http_exch_new(conn *c, const ws_http_request *req, size_t head_len)
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

void ws__http_exch_free(exch *ex)
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
void ws__http_finish_request(conn *c)
{
    loop_ctx *lc = c->lc;
    exch *ex = c->ex;
    bool keep = ex && ex->keep_alive && !c->closing;
    if (ex) {
        size_t used = ex->consumed > c->len ? c->len : ex->consumed;
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        ws__http_exch_free(ex);
        c->ex = NULL;
        ws_metric_add(lc->srv->m_inflight, -1);
    }
    c->state = ST_HEAD;
    ws__http_timer_off(c);
    if (c->closing) {
        ws__http_conn_close(c);
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

bool ws__http_grow_input(conn *c)
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

void ws__http_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    conn *c = h->data;
    if (c->ssl) {
        *b = uv_buf_init(c->lc->tls_in, sizeof c->lc->tls_in);
        return;
    }
    if (!ws__http_grow_input(c)) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

void ws__http_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
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
            ws__http_process(c); /* buffer full: lets the parser answer 431/413 */
            if (!c->closing && (c->state == ST_HEAD || c->state == ST_BODY))
                ws__http_conn_close(c);
            return;
        }
        ws__http_conn_close(c);
        return;
    }
    if (c->ssl) {
        BIO_write(SSL_get_rbio(c->ssl), b->base, (int)nread);
        if (!ws__http_tls_pull(c)) {
            ws__http_conn_close(c);
            return;
        }
        if (c->closing)
            return;
    } else {
        c->len += (size_t)nread;
    }
    /* ws__http_process() arms the head timer when the head stays incomplete */
    if (c->state == ST_BODY)
        ws__http_timer_arm(c, c->lc->srv->cfg.body_timeout_ms, ws__http_on_timeout);
    ws__http_process(c);
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

void ws__http_maybe_finish_loop(loop_ctx *lc)
{
    if (!lc->draining || lc->n_conns > 0 || lc->finished)
        return;
    lc->finished = true;
    uv_close((uv_handle_t *)&lc->stop_async, NULL);
    uv_close((uv_handle_t *)&lc->stream_async, NULL);
    if (lc->drain_timer_on)
        uv_close((uv_handle_t *)&lc->drain_timer, NULL);
}

void ws__http_conn_close(conn *c)
{
    c->closing = true;
    if (c->ex && c->ex->streaming)
        atomic_store(&c->ex->gone, true);
    if (c->in_pool || c->h2_in_pool || c->torn)
        return; /* in the pool: ws__http_after_work_cb comes back here */
    c->torn = true;
    ws__http_h2_free_all(c);
    if (c->ex) {
        ws__http_exch_free(c->ex);
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
    ws__http_maybe_finish_loop(lc);
}

/* Lingering close after a final response: send FIN, then read and discard what the client
 * still sends (so an unread request body does not turn into a reset that destroys the
 * response) until it closes or 2 s pass. */
static void on_linger_timeout(uv_timer_t *t)
{
    ws__http_conn_close(t->data);
}

static void on_linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    conn *c = h->data;
    *b = uv_buf_init(c->lc->tls_in, sizeof c->lc->tls_in);
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    if (nread < 0)
        ws__http_conn_close(st->data);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    conn *c = r->data;
    if (status < 0)
        ws__http_conn_close(c);
}

static void conn_linger(conn *c)
{
    c->state = ST_LINGER;
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = true;
    ws__http_timer_arm(c, 2000, on_linger_timeout);
    c->sreq.data = c;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_linger_alloc, on_linger_read) != 0 ||
        uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        ws__http_conn_close(c);
}

void ws__http_on_connection(uv_stream_t *server, int status)
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
        ws__http_conn_close(c);
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
    uv_read_start((uv_stream_t *)&c->tcp, ws__http_on_alloc, ws__http_on_read);
    ws__http_timer_arm(c, s->cfg.head_timeout_ms, ws__http_on_timeout);
}
