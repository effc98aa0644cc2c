/* Unit tests for src/server: the request parser, the chunked decoder, metrics exposition and
 * the libuv HTTP server driven over real loopback sockets (keep-alive, pipelining, caps,
 * timeouts, graceful drain). */
#include "harness.h"
#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/progress.h"
#include "server/http_parser.h"
#include "server/http_server.h"
#include "server/metrics.h"

/* ---- parser ---------------------------------------------------------------------------- */

static void parser_parses_complete_head(void)
{
    const char *r = "GET /v1/reply?x=1&y=%20z HTTP/1.1\r\nHost: a\r\nX-Long:  v  v \t\r\n\r\nBODY";
    ws_http_request req;
    int n = ws_http_parse_request(r, strlen(r), &req);
    CHECK_EQ_INT(n, (int)(strstr(r, "BODY") - r));
    CHECK(ws_http_slice_ieq(req.method, "GET"));
    CHECK_EQ_INT(req.path.len, 9);
    CHECK(!memcmp(req.path.p, "/v1/reply", 9));
    CHECK_EQ_INT(req.query.len, 10);
    CHECK_EQ_INT(req.minor_version, 1);
    CHECK_EQ_INT(req.num_headers, 2);
    const ws_http_slice *v = ws_http_find_header(&req, "x-long");
    CHECK(v && v->len == 4 && !memcmp(v->p, "v  v", 4));
    ws_http_slice q;
    CHECK(ws_http_query_get(req.query, "y", &q));
    char dec[16];
    CHECK_EQ_INT(ws_http_url_decode(q.p, q.len, dec, sizeof dec, true), 2);
    CHECK_EQ_STR(dec, " z");
    CHECK(!ws_http_query_get(req.query, "z", &q));
}

static void parser_needs_more_for_every_prefix(void)
{
    const char *r = "POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\n";
    ws_http_request req;
    size_t len = strlen(r);
    for (size_t i = 0; i < len; i++)
        CHECK_EQ_INT(ws_http_parse_request(r, i, &req), -2);
    CHECK_EQ_INT(ws_http_parse_request(r, len, &req), (int)len);
    CHECK_EQ_INT(req.minor_version, 0);
    /* bare LF line endings are accepted too */
    CHECK_EQ_INT(ws_http_parse_request("GET / HTTP/1.1\nA: b\n\n", 21, &req), 21);
}

static void parser_rejects_bad_input(void)
{
    static const char *bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET / HTTP/1.1\r\nNo-Colon\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
    };
    ws_http_request req;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(ws_http_parse_request(bad[i], strlen(bad[i]), &req), -1);
    ws_buf many = WS_BUF_INIT;
    ws_buf_puts(&many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= WS_HTTP_MAX_HEADERS; i++)
        ws_buf_printf(&many, "H%d: v\r\n", i);
    ws_buf_puts(&many, "\r\n");
    CHECK_EQ_INT(ws_http_parse_request(many.data, many.len, &req), -1);
    ws_buf_free(&many);
}

static void chunked_decodes_in_pieces(void)
{
    const char *enc = "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrail: x\r\n\r\nNEXT";
    size_t total = strlen(enc);
    for (size_t step = 1; step <= total; step++) {
        ws_http_chunked d = {0};
        ws_buf out = WS_BUF_INIT;
        size_t pos = 0, used = 0;
        int r = 0;
        while (pos < total) {
            size_t n = total - pos < step ? total - pos : step;
            r = ws_http_decode_chunked(&d, enc + pos, n, &out, &used);
            pos += used;
            if (r != 0)
                break;
        }
        CHECK_EQ_INT(r, 1);
        CHECK_EQ_STR(out.data, "Wikipedia in\r\n\r\nchunks.");
        CHECK_EQ_STR(enc + pos, "NEXT");
        ws_buf_free(&out);
    }
    ws_http_chunked d = {0};
    ws_buf out = {.limit = 3};
    size_t used;
    CHECK_EQ_INT(ws_http_decode_chunked(&d, "4\r\nWiki\r\n", 9, &out, &used), WS_ETOOBIG);
    ws_buf_free(&out);
    ws_http_chunked d2 = {0};
    CHECK_EQ_INT(ws_http_decode_chunked(&d2, "zz\r\n", 4, &out, &used), -1);
    ws_http_chunked d3 = {0};
    CHECK_EQ_INT(ws_http_decode_chunked(&d3, "ffffffffffffffff\r\n", 18, &out, &used), -1);
    ws_buf_free(&out);
}

static void metrics_render_prometheus_text(void)
{
    ws_metrics *m = ws_metrics_new();
    ws_metric *c = ws_metrics_counter(m, "t_total", "a=\"1\"", "A counter.");
    ws_metric *c2 = ws_metrics_counter(m, "t_total", "a=\"2\"", "A counter.");
    double b[] = {0.1, 1};
    ws_metric *h = ws_metrics_histogram(m, "t_seconds", NULL, "A histogram.", b, 2);
    ws_metric_add(c, 3);
    ws_metric_add(c2, 1);
    ws_metric_observe(h, 0.05);
    ws_metric_observe(h, 0.5);
    ws_metric_observe(h, 5);
    ws_buf out = WS_BUF_INIT;
    ws_metrics_render(m, &out);
    CHECK(strstr(out.data, "# TYPE t_total counter\nt_total{a=\"1\"} 3\nt_total{a=\"2\"} 1\n"));
    CHECK(strstr(out.data, "t_seconds_bucket{le=\"0.1\"} 1\n"));
    CHECK(strstr(out.data, "t_seconds_bucket{le=\"1\"} 2\n"));
    CHECK(strstr(out.data, "t_seconds_bucket{le=\"+Inf\"} 3\n"));
    CHECK(strstr(out.data, "t_seconds_count 3\n"));
    CHECK(strstr(out.data, "t_seconds_sum 5.55"));
    ws_buf_free(&out);
    ws_metrics_free(m);
}

/* ---- server ---------------------------------------------------------------------------- */

static int h_hello(ws_http_ctx *ctx)
{
    ctx->content_type = "text/plain";
    ws_buf_puts(&ctx->out, "hi");
    return 0;
}

static int h_echo(ws_http_ctx *ctx)
{
    /* first on the loop, then (EAGAIN) on the pool: proves the hand-off works */
    if (ctx->on_loop)
        return WS_EAGAIN;
    ctx->content_type = "application/octet-stream";
    ws_buf_append(&ctx->out, ctx->body ? ctx->body : "", ctx->body_len);
    return 0;
}

static int h_slow(ws_http_ctx *ctx)
{
    usleep(300 * 1000);
    ws_buf_puts(&ctx->out, "{\"slow\":true}");
    return 0;
}

static int h_item(ws_http_ctx *ctx)
{
    ws_buf_append(&ctx->out, ctx->params[0].p, ctx->params[0].len);
    return 0;
}

static int h_len(ws_http_ctx *ctx)
{
    ws_buf_printf(&ctx->out, "%zu", ctx->body_len);
    return 0;
}

static const ws_http_route test_routes[] = {
    {"POST", "/big", h_len, 0, 8u << 20}, {"GET", "/hello", h_hello, 0, 0},
    {"POST", "/echo", h_echo, 0, 64},     {"GET", "/slow", h_slow, WS_ROUTE_BLOCKING, 0},
    {"GET", "/items/*", h_item, 0, 0},
};

static ws_http_server *start_server(int threads)
{
    ws_http_config cfg = {.host = "127.0.0.1",
                          .threads = threads,
                          .routes = test_routes,
                          .n_routes = sizeof test_routes / sizeof test_routes[0],
                          .max_head_bytes = 1024,
                          .head_timeout_ms = 300,
                          .body_timeout_ms = 300,
                          .keepalive_timeout_ms = 2000,
                          .drain_timeout_ms = 3000,
                          .max_body_total = 3u << 20};
    ws_http_server *s = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_http_server_new(&cfg, &s, &err), 0);
    CHECK_EQ_INT(ws_http_server_start(s, &err), 0);
    return s;
}

/* Reads one response (head + Content-Length body) into out; returns the status or -1. */
static int read_response(int fd, ws_buf *out)
{
    ws_buf_reset(out);
    for (;;) {
        char *end = out->data ? strstr(out->data, "\r\n\r\n") : NULL;
        if (end) {
            size_t head = (size_t)(end + 4 - out->data);
            const char *cl = strstr(out->data, "Content-Length: ");
            size_t blen = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
            if (out->len >= head + blen) {
                if (out->len > head + blen) {
                    /* keep only this response; the caller reads the rest again */
                    return -2;
                }
                return atoi(out->data + 9);
            }
        }
        char tmp[1]; /* byte at a time: never swallow the next pipelined response */
        ssize_t n = recv(fd, tmp, 1, 0);
        if (n <= 0)
            return out->len ? atoi(out->data + 9) : -1;
        ws_buf_append(out, tmp, 1);
    }
}

static void server_keepalive_and_routes(void)
{
    ws_http_server *s = start_server(2);
    int fd = hc_dial(ws_http_server_port(s));
    CHECK(fd >= 0);
    ws_buf r = WS_BUF_INIT;
    for (int i = 0; i < 3; i++) {
        hc_send(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 32);
        CHECK_EQ_INT(read_response(fd, &r), 200);
        CHECK(r.data && strstr(r.data, "\r\n\r\nhi"));
        CHECK(r.data && !strstr(r.data, "Connection: close"));
    }
    hc_send(fd, "GET /items/abc HTTP/1.1\r\n\r\n", 27);
    CHECK_EQ_INT(read_response(fd, &r), 200);
    CHECK(r.data && strstr(r.data, "\r\n\r\nabc"));
    hc_send(fd, "HEAD /hello HTTP/1.1\r\nConnection: close\r\n\r\n", 43);
    ws_buf_reset(&r);
    char tmp[512];
    ssize_t n;
    while ((n = recv(fd, tmp, sizeof tmp, 0)) > 0)
        ws_buf_append(&r, tmp, (size_t)n);
    CHECK(r.data && strstr(r.data, "Content-Length: 2\r\n")); /* ... but no body follows */
    CHECK(r.data && r.len >= 4 && !strcmp(r.data + r.len - 4, "\r\n\r\n"));
    close(fd);

    fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "GET /nope HTTP/1.1\r\n\r\n", 22);
    CHECK_EQ_INT(read_response(fd, &r), 404);
    CHECK(r.data && strstr(r.data, "{\"error\":{\"code\":\"not_found\""));
    close(fd);
    fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "DELETE /hello HTTP/1.1\r\n\r\n", 26);
    CHECK_EQ_INT(read_response(fd, &r), 405);
    CHECK(r.data && strstr(r.data, "Allow: GET"));
    close(fd);
    ws_buf_free(&r);
    ws_http_server_stop(s);
    ws_http_server_wait(s);
    ws_http_server_free(s);
}

static void server_pipelining_and_bodies(void)
{
    ws_http_server *s = start_server(1);
    int fd = hc_dial(ws_http_server_port(s));
    const char *two = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /echo HTTP/1.1\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                      "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n";
    hc_send(fd, two, strlen(two));
    ws_buf all = WS_BUF_INIT;
    char tmp[4096];
    ssize_t n;
    while ((n = recv(fd, tmp, sizeof tmp, 0)) > 0)
        ws_buf_append(&all, tmp, (size_t)n);
    CHECK(all.data && strstr(all.data, "\r\n\r\nhello"));
    CHECK(all.data && strstr(all.data, "\r\n\r\nabcde"));
    CHECK(all.data && strstr(all.data, "Connection: close\r\n\r\nhi"));
    close(fd);
    ws_buf r = WS_BUF_INIT;
    fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 45);
    CHECK_EQ_INT(read_response(fd, &r), 413);
    close(fd);
    fd = hc_dial(ws_http_server_port(s));
    const char *big = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n";
    hc_send(fd, big, strlen(big));
    hc_send(fd, "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n", 81);
    CHECK_EQ_INT(read_response(fd, &r), 413);
    close(fd);
    fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 37);
    CHECK_EQ_INT(read_response(fd, &r), 400);
    close(fd);
    fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "garbage\r\n\r\n", 11);
    CHECK_EQ_INT(read_response(fd, &r), 400);
    close(fd);
    fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "GET /hello HTTP/1.1\r\n", 21);
    for (int i = 0; i < 40; i++)
        hc_send(fd, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 50);
    CHECK_EQ_INT(read_response(fd, &r), 431);
    close(fd);
    ws_buf_free(&r);
    ws_buf_free(&all);
    ws_http_server_stop(s);
    ws_http_server_wait(s);
    ws_http_server_free(s);
}

static void server_times_out_slow_clients(void)
{
    ws_http_server *s = start_server(1);
    ws_buf r = WS_BUF_INIT;
    int fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "GET /hello HTTP/1.1\r\nHo", 23); /* then stalls: slowloris */
    double t0 = ws_now_s();
    CHECK_EQ_INT(read_response(fd, &r), 408);
    CHECK(ws_now_s() - t0 < 2.0);
    close(fd);
    fd = hc_dial(ws_http_server_port(s));
    hc_send(fd, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 47);
    CHECK_EQ_INT(read_response(fd, &r), 408);
    close(fd);
    /* on a keep-alive connection after a whole request: a stalled head or body gets the
     * head/body timeout (300 ms), not the keep-alive one (2 s); trickled head bytes do not
     * extend the head's time */
    const char *stalls[2] = {"GET /hello HTTP/1.1\r\nHo",
                             "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"};
    for (int k = 0; k < 2; k++) {
        fd = hc_dial(ws_http_server_port(s));
        hc_send(fd, "GET /hello HTTP/1.1\r\n\r\n", 23);
        CHECK_EQ_INT(read_response(fd, &r), 200);
        hc_send(fd, stalls[k], strlen(stalls[k]));
        t0 = ws_now_s();
        if (k == 0)
            for (int i = 0; i < 4; i++) {
                usleep(100 * 1000);
                hc_send(fd, "s", 1);
            }
        CHECK_EQ_INT(read_response(fd, &r), 408);
        CHECK(ws_now_s() - t0 < 1.5);
        close(fd);
    }
    fd = hc_dial(ws_http_server_port(s)); /* never sends anything: closed after the head timeout */
    char c;
    CHECK_EQ_INT(recv(fd, &c, 1, 0), 0);
    close(fd);
    ws_buf_free(&r);
    ws_http_server_stop(s);
    ws_http_server_wait(s);
    ws_http_server_free(s);
}

typedef struct {
    int port;
    int status;
    ws_buf body;
} slow_client;

static void *slow_client_main(void *arg)
{
    slow_client *sc = arg;
    int fd = hc_dial(sc->port);
    hc_send(fd, "GET /slow HTTP/1.1\r\n\r\n", 22);
    sc->status = read_response(fd, &sc->body);
    close(fd);
    return NULL;
}

static void server_drains_in_flight_requests(void)
{
    ws_http_server *s = start_server(2);
    int idle = hc_dial(ws_http_server_port(s));
    ws_buf r = WS_BUF_INIT;
    hc_send(idle, "GET /hello HTTP/1.1\r\n\r\n", 23);
    CHECK_EQ_INT(read_response(idle, &r), 200);
    slow_client sc = {.port = ws_http_server_port(s)};
    pthread_t t;
    pthread_create(&t, NULL, slow_client_main, &sc);
    usleep(100 * 1000); /* the slow request is in the handler now */
    ws_http_server_stop(s);
    CHECK(ws_http_server_draining(s));
    ws_http_server_wait(s);
    pthread_join(t, NULL);
    CHECK_EQ_INT(sc.status, 200);
    CHECK(sc.body.data && strstr(sc.body.data, "Connection: close"));
    CHECK(sc.body.data && strstr(sc.body.data, "{\"slow\":true}"));
    char c;
    CHECK_EQ_INT(recv(idle, &c, 1, 0), 0); /* the idle keep-alive connection was closed */
    close(idle);
    CHECK_EQ_INT(hc_dial(ws_http_server_port(s)), -1); /* no longer accepting */
    ws_buf_free(&sc.body);
    ws_buf_free(&r);
    ws_http_server_free(s);
}

static void server_caps_large_bodies_in_total(void)
{
    ws_http_server *s = start_server(1);
    ws_buf r = WS_BUF_INIT;
    const char *head = "POST /big HTTP/1.1\r\nContent-Length: 2500000\r\n\r\n";
    int a = hc_dial(ws_http_server_port(s));
    hc_send(a, head, strlen(head));
    hc_send(a, "0123456789", 10); /* a slow upload holds its reservation */
    usleep(50000);
    int b = hc_dial(ws_http_server_port(s));
    hc_send(b, head, strlen(head));
    CHECK_EQ_INT(read_response(b, &r), 503); /* 2 x 2.5 MB > the 3 MB budget */
    CHECK(r.data && strstr(r.data, "Retry-After: 5"));
    close(b);
    close(a); /* releases the reservation */
    usleep(50000);
    int c = hc_dial(ws_http_server_port(s));
    hc_send(c, head, strlen(head));
    char *body = calloc(1, 2500000);
    hc_send(c, body, 2500000);
    free(body);
    CHECK_EQ_INT(read_response(c, &r), 200);
    CHECK(r.data && strstr(r.data, "\r\n\r\n2500000"));
    close(c);
    ws_buf_free(&r);
    ws_http_server_stop(s);
    ws_http_server_wait(s);
    ws_http_server_free(s);
}

WS_TEST_MAIN(T(parser_parses_complete_head), T(parser_needs_more_for_every_prefix),
             T(parser_rejects_bad_input), T(chunked_decodes_in_pieces), T(metrics_render_prometheus_text),
             T(server_keepalive_and_routes), T(server_pipelining_and_bodies),
             T(server_times_out_slow_clients), T(server_drains_in_flight_requests),
             T(server_caps_large_bodies_in_total))
