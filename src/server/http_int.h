/* Private header of the HTTP server (http_server.c, http_conn.c, http1.c, http2.c, http_tls.c):
 * the server, loop, connection and exchange structs and the functions the files share. Not for
 * use outside src/server/http*.c; the public contract is http_server.h. */
#ifndef WS_SERVER_HTTP_INT_H
#define WS_SERVER_HTTP_INT_H

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

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace.h"

#define READ_CHUNK 4096
/* Recycled per loop (loop thread only): READ_CHUNK-byte buffers for connection input and
 * output and response bodies, and request arenas, so a whole request goes through malloc
 * for none of them. Bounded: what is not in use by a request is at most SPARE_MAX each. */
#define SPARE_MAX 32
#define ARENA_BLOCK 8192
#define ROUTE_NONE ((size_t)-1)
#define LARGE_BODY (1u << 20)

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
    char tls_in[65536];          /* ciphertext read buffer */
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

/* http1.c */
void ws__http_after_work_cb(uv_work_t *w, int status);
void ws__http_on_stream_async(uv_async_t *a);
void ws__http_on_timeout(uv_timer_t *t);
void ws__http_process(conn *c);
void ws__http_work_cb(uv_work_t *w);

/* http2.c */
void ws__http_h2_after_work(exch *ex, int status);
void ws__http_h2_close_soon(conn *c);
bool ws__http_h2_detect(conn *c);
void ws__http_h2_feed(conn *c);
void ws__http_h2_free_all(conn *c);
void ws__http_h2_goaway(conn *c);

/* http_conn.c */
void ws__http_conn_close(conn *c);
bool ws__http_conn_flush(conn *c);
void ws__http_conn_put(conn *c, const void *data, size_t n);
const char *ws__http_date_now(loop_ctx *lc);
void ws__http_exch_free(exch *ex);
exch *ws__http_exch_new(conn *c, const ws_http_request *req, size_t head_len);
void ws__http_finish_request(conn *c);
bool ws__http_grow_input(conn *c);
void ws__http_maybe_finish_loop(loop_ctx *lc);
void ws__http_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
void ws__http_on_connection(uv_stream_t *server, int status);
void ws__http_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
void ws__http_on_write_timeout(uv_timer_t *t);
void ws__http_spares_free(loop_ctx *lc);
void ws__http_timer_arm(conn *c, int ms, uv_timer_cb cb);
void ws__http_timer_off(conn *c);

/* http_server.c */
void ws__http_allow_header(const ws_http_server *s, ws_http_ctx *ctx);
int ws__http_call_handler(ws_http_ctx *ctx);
void ws__http_request_done(ws_http_server *s, size_t route, ws_http_ctx *ctx);
size_t ws__http_route_find(const ws_http_server *s, const ws_http_request *req, ws_http_slice *params,
                           bool *method_mismatch);

/* http_tls.c */
void ws__http_tls_collect(conn *c);
int ws__http_tls_init(ws_http_server *s, ws_error *err);
bool ws__http_tls_pull(conn *c);

#endif
