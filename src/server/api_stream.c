/* POST /v1/reply answered as Server-Sent Events (docs/server.md, "Streaming replies"): "token"
 * events with the reply's text as the engine generates it (the fallback, when none of it made it
 * out, as one piece), then one "done" event with the JSON of the plain reply; a failure after the stream
 * began is an "error" event, one before it the usual HTTP error. */
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "server/server_int.h"

typedef struct sse_run {
    ws_http_ctx *ctx;
    bool begun; /* the 200 head is decided */
    bool live;  /* events go out as they are written (HTTP/1.1); else all at the end in ctx->out */
    int pieces; /* token events sent */
    ws_buf ev;
} sse_run;

/* Writes one event whose data is one line of JSON; non-zero when the client is gone. */
static int sse_send(sse_run *sr, const char *event, const char *json, size_t len)
{
    ws_http_ctx *ctx = sr->ctx;
    if (!sr->begun) {
        sr->begun = true;
        ctx->status = 200;
        ctx->content_type = "text/event-stream";
        ws_http_header_add(ctx, "Cache-Control", "no-store");
        ws_http_header_add(ctx, "X-Accel-Buffering", "no");
        sr->live = ws_http_stream_begin(ctx) == 0; /* HTTP/2 or 1.0: the events come in one body */
    }
    ws_buf *b = sr->live ? &sr->ev : &ctx->out;
    if (sr->live)
        ws_buf_reset(b);
    ws_buf_printf(b, "event: %s\ndata: ", event);
    ws_buf_append(b, json, len);
    ws_buf_puts(b, "\n\n");
    return sr->live && ws_http_stream_write(ctx, b->data, b->len) != 0 ? WS_EIO : 0;
}

static int on_piece(void *arg, const char *piece, size_t len)
{
    sse_run *sr = arg;
    ws_buf j = WS_BUF_INIT;
    sr->pieces++;
    ws_buf_puts(&j, "{\"text\":");
    ws_json_put_str(&j, piece, len);
    ws_buf_putc(&j, '}');
    int rc = sse_send(sr, "token", j.data, j.len);
    ws_buf_free(&j);
    return rc != 0; /* the client left: the engine stops */
}

/* One token event with the "reply" of the reply's JSON (when it has a non-empty one). */
static void piece_of_reply(sse_run *sr, const ws_buf *reply_json)
{
    ws_json_doc *doc = NULL;
    if (ws_json_parse(reply_json->data, reply_json->len, &doc, NULL) == 0) {
        const char *text = ws_json_get_str(ws_json_root(doc), "reply");
        if (text && *text)
            on_piece(sr, text, strlen(text));
    }
    ws_json_doc_free(doc);
}

int ws_srv_h_reply_sse(ws_http_ctx *ctx, ws_req *r, const char *message, const ws_ai_turn *turns, size_t n)
{
    if (ctx->on_loop)
        return WS_EAGAIN; /* written from a pool thread */
    sse_run sr = {.ctx = ctx, .ev = WS_BUF_INIT};
    ws_buf out = WS_BUF_INIT;
    ws_op_error e = {0};
    int rc = ws_op_reply_stream(ctx->app, r, false, message, turns, n, on_piece, &sr, &out, &e);
    if (rc == 0) {
        if (!sr.pieces) /* nothing generated made it out (the fallback): the reply as one piece */
            piece_of_reply(&sr, &out);
        sse_send(&sr, "done", out.data, out.len);
    } else if (sr.begun) {
        ws_buf j = WS_BUF_INIT;
        ws_buf_puts(&j, "{\"error\":{\"code\":");
        ws_json_put_str(&j, e.code, strlen(e.code));
        ws_buf_puts(&j, ",\"message\":");
        ws_json_put_str(&j, e.msg, strlen(e.msg));
        ws_buf_puts(&j, "}}");
        sse_send(&sr, "error", j.data, j.len);
        ws_buf_free(&j);
    } else {
        ws_http_error(ctx, e.status, e.code, "%s", e.msg);
        if (e.status == 503)
            ws_http_header_add(ctx, "Retry-After", "1");
    }
    ws_buf_free(&out);
    ws_buf_free(&sr.ev);
    return 0;
}
