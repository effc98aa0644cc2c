/* MCP server at /mcp: protocol revision 2025-11-25 over Streamable HTTP (JSON-RPC 2.0 in
 * POST bodies; answers as application/json, or as a one-event text/event-stream when the
 * client only accepts SSE; train_style with a progressToken streams notifications/progress
 * over SSE until the job is final, reply_as with one the reply's text as it is generated),
 * Bearer key authentication (the REST prologue), Origin
 * validation against DNS rebinding, sessions (Mcp-Session-Id, kept in the cache so every
 * instance sees them), and the tools table: reply_as, train_style, training_status,
 * style_profile, list_conversations, each with input and output JSON Schemas; two read-only
 * resources (style profile, recent conversations) and logging/setLevel. */
#include "server/server_int.h"
#include "server/wa_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/clock.h"
#include "core/mem.h"
#include "mcp_tools.h" /* generated from src/server/mcp_tools: WS_MCP_TOOL_<name> */

#define MCP_LATEST "2025-11-25"
#define MCP_SESSION_TTL_MS (24LL * 3600 * 1000)

static const char *const mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

static bool version_supported(const char *v, size_t n)
{
    for (size_t i = 0; i < sizeof mcp_versions / sizeof mcp_versions[0]; i++)
        if (strlen(mcp_versions[i]) == n && !memcmp(mcp_versions[i], v, n))
            return true;
    return false;
}

/* ---- tools ----------------------------------------------------------------------------- */

typedef struct mcp_call {
    ws_server *s;
    ws_req *r;
    const ws_json *args; /* object (maybe empty) */
    ws_buf *out;         /* structured result, a JSON object */
    ws_op_error e;
    ws_arena *arena;
    ws_ai_piece_fn on_piece; /* reply_as with a progressToken over SSE: the reply's pieces */
    void *piece_arg;
} mcp_call;

typedef int (*tool_fn)(mcp_call *c); /* 0 ok, 1 tool error in c->e */

typedef struct mcp_tool {
    const char *name;
    const char *json; /* the whole definition tools/list shows, its "name" equal to name */
    tool_fn fn;
} mcp_tool;

static int bad_arg(mcp_call *c, const char *msg)
{
    c->e.status = 400;
    c->e.code = "invalid_arguments";
    snprintf(c->e.msg, sizeof c->e.msg, "%s", msg);
    return 1;
}

static int t_reply_as(mcp_call *c)
{
    const ws_json *m = ws_json_get(c->args, "message");
    if (!m || m->type != WS_JSON_STRING || m->len == 0 || m->len > WS_STORE_TEXT_MAX ||
        strlen(m->str) != m->len)
        return bad_arg(c, "\"message\" must be a non-empty string");
    const ws_json *ctxv = ws_json_get(c->args, "context");
    ws_ai_turn *turns = NULL;
    size_t n = 0;
    if (ctxv && ctxv->type != WS_JSON_NULL) {
        if (ctxv->type != WS_JSON_ARRAY || ctxv->len > WS_MAX_CONTEXT_TURNS)
            return bad_arg(c, "\"context\" must be an array of at most 32 turns");
        turns = ws_arena_calloc(c->arena, (ctxv->len + 1) * sizeof *turns);
        for (size_t i = 0; i < ctxv->len; i++) {
            const ws_json *t = ws_json_at(ctxv, i);
            const ws_json *text = t && t->type == WS_JSON_OBJECT ? ws_json_get(t, "text") : NULL;
            const ws_json *author = t && t->type == WS_JSON_OBJECT ? ws_json_get(t, "author") : NULL;
            if (!text || text->type != WS_JSON_STRING ||
                (author && author->type != WS_JSON_STRING && author->type != WS_JSON_NULL))
                return bad_arg(c, "each context turn must be {\"author\": string, \"text\": string}");
            turns[i].text = text->str;
            turns[i].author = author && author->type == WS_JSON_STRING ? author->str : NULL;
        }
        n = ctxv->len;
    }
    if (c->on_piece)
        return ws_op_reply_stream(c->s, c->r, false, m->str, turns, n, c->on_piece, c->piece_arg, c->out,
                                  &c->e);
    return ws_op_reply(c->s, c->r, false, m->str, turns, n, c->out, &c->e);
}

static int t_train_style(mcp_call *c)
{
    const char *persona = ws_json_get_str(c->args, "persona");
    const ws_json *text = ws_json_get(c->args, "export_text");
    const ws_json *b64 = ws_json_get(c->args, "export_base64");
    double budget = 0;
    const ws_json *bj = ws_json_get(c->args, "budget_seconds");
    if (bj && (bj->type != WS_JSON_NUMBER || !(bj->number > 0 && bj->number <= 7 * 86400)))
        return bad_arg(c, "\"budget_seconds\" must be a number of seconds in (0, 604800]");
    if (bj)
        budget = bj->number;
    if (!persona || !*persona)
        return bad_arg(c, "\"persona\" (the participant to learn) is required");
    if ((text && text->type == WS_JSON_STRING) == (b64 && b64->type == WS_JSON_STRING))
        return bad_arg(c, "give exactly one of \"export_text\" (the .txt export) or \"export_base64\" (a "
                          ".txt or .zip, base64)");
    if (text && text->type == WS_JSON_STRING)
        return ws_op_train(c->s, c->r, text->str, text->len, persona, budget, c->out, &c->e);
    size_t cap = b64->len / 4 * 3 + 3;
    unsigned char *raw = ws_arena_alloc(c->arena, cap);
    long n = ws_base64_decode_lenient(b64->str, b64->len, raw, cap);
    if (n < 0)
        return bad_arg(c, "\"export_base64\" is not valid base64");
    return ws_op_train(c->s, c->r, (const char *)raw, (size_t)n, persona, budget, c->out, &c->e);
}

static int t_training_status(mcp_call *c)
{
    const char *id = ws_json_get_str(c->args, "job_id");
    if (!id || !*id)
        return bad_arg(c, "\"job_id\" is required");
    return ws_op_job(c->s, c->r, id, c->out, &c->e);
}

static int t_style_profile(mcp_call *c)
{
    return ws_op_style_profile(c->s, c->r, c->out, &c->e);
}

static int t_list_conversations(mcp_call *c)
{
    double limit = 20;
    const ws_json *l = ws_json_get(c->args, "limit");
    if (l && (l->type != WS_JSON_NUMBER || l->number < 1 || l->number > WS_STORE_PAGE_MAX ||
              l->number != (double)(int)l->number))
        return bad_arg(c, "\"limit\" must be an integer in 1..200");
    if (l)
        limit = l->number;
    const char *cursor = ws_json_get_str(c->args, "cursor");
    return ws_op_conversations(c->s, c->r, (int)limit, cursor, c->out, &c->e);
}

/* ---- WhatsApp (server/wa_int.h) ---- */

static int t_wa_link(mcp_call *c)
{
    ws_wa_link_req lr = {ws_json_get_str(c->args, "phone_number_id"),
                         ws_json_get_str(c->args, "access_token"), ws_json_get_str(c->args, "mode")};
    return ws_op_wa_link(c->s, c->r, &lr, c->out, &c->e) ? 1 : 0;
}

static int t_wa_set_mode(mcp_call *c)
{
    const char *number = ws_json_get_str(c->args, "phone_number_id");
    if (!number || !*number)
        return bad_arg(c, "\"phone_number_id\" is required");
    return ws_op_wa_mode(c->s, c->r, number, ws_json_get_str(c->args, "contact"),
                         ws_json_get_str(c->args, "mode"), c->out, &c->e)
               ? 1
               : 0;
}

static int t_wa_drafts(mcp_call *c)
{
    double limit = 50;
    const ws_json *l = ws_json_get(c->args, "limit");
    if (l && (l->type != WS_JSON_NUMBER || l->number < 1 || l->number > WS_STORE_PAGE_MAX))
        return bad_arg(c, "\"limit\" must be an integer in 1..200");
    if (l)
        limit = l->number;
    return ws_op_wa_drafts(c->s, c->r, ws_json_get_str(c->args, "status"), (int)limit, c->out, &c->e) ? 1 : 0;
}

static int t_wa_draft(mcp_call *c)
{
    const char *id = ws_json_get_str(c->args, "draft_id"), *action = ws_json_get_str(c->args, "action");
    if (!id || !*id || !action)
        return bad_arg(c, "\"draft_id\" and \"action\" (approve, edit, discard) are required");
    if (strcmp(action, "approve") && strcmp(action, "edit") && strcmp(action, "discard"))
        return bad_arg(c, "\"action\" must be approve, edit or discard");
    bool send = false;
    ws_json_get_bool(c->args, "send", &send);
    return ws_op_wa_draft(c->s, c->r, id, action, ws_json_get_str(c->args, "text"), send, c->out, &c->e) ? 1
                                                                                                         : 0;
}

/* The tools: their definitions (name, title, description, input and output schemas) are the
 * JSON files src/server/mcp_tools/<name>.json, embedded by the build (gen/mcp_tools.h). */
static const mcp_tool tools[] = {
    {"reply_as", WS_MCP_TOOL_reply_as, t_reply_as},
    {"train_style", WS_MCP_TOOL_train_style, t_train_style},
    {"training_status", WS_MCP_TOOL_training_status, t_training_status},
    {"style_profile", WS_MCP_TOOL_style_profile, t_style_profile},
    {"list_conversations", WS_MCP_TOOL_list_conversations, t_list_conversations},
    {"whatsapp_link", WS_MCP_TOOL_whatsapp_link, t_wa_link},
    {"whatsapp_set_mode", WS_MCP_TOOL_whatsapp_set_mode, t_wa_set_mode},
    {"whatsapp_drafts", WS_MCP_TOOL_whatsapp_drafts, t_wa_drafts},
    {"whatsapp_draft", WS_MCP_TOOL_whatsapp_draft, t_wa_draft},
};

/* ---- JSON-RPC -------------------------------------------------------------------------- */

static void put_id(ws_buf *b, const ws_json *id)
{
    if (!id)
        ws_buf_puts(b, "null");
    else if (id->type == WS_JSON_STRING)
        ws_json_put_str(b, id->str, id->len);
    else
        ws_json_put_num(b, id->number);
}

static void rpc_error(ws_buf *b, const ws_json *id, int code, const char *msg)
{
    ws_buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(b, id);
    ws_buf_printf(b, ",\"error\":{\"code\":%d,\"message\":", code);
    ws_json_put_cstr(b, msg);
    ws_buf_puts(b, "}}");
}

static void rpc_result_open(ws_buf *b, const ws_json *id)
{
    ws_buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(b, id);
    ws_buf_puts(b, ",\"result\":");
}

static void m_initialize(ws_http_ctx *ctx, const ws_json *id, const ws_json *params, ws_buf *b)
{
    const ws_json *pv = params ? ws_json_get(params, "protocolVersion") : NULL;
    const char *version = MCP_LATEST;
    if (pv && pv->type == WS_JSON_STRING && version_supported(pv->str, pv->len))
        version = pv->str;
    rpc_result_open(b, id);
    ws_buf_puts(b, "{\"protocolVersion\":");
    ws_json_put_cstr(b, version);
    ws_buf_puts(
        b, ",\"capabilities\":{\"tools\":{\"listChanged\":false},"
           "\"resources\":{\"subscribe\":false,\"listChanged\":false},\"logging\":{}},"
           "\"serverInfo\":{\"name\":\"whatstyle\",\"title\":\"WhatStyle\",\"version\":\"0.1.0\"},"
           "\"instructions\":\"Learn how a person chats from their WhatsApp export "
           "(train_style, then training_status until completed) and reply as they would (reply_as).\"}}");
    /* a session: remembered in the cache so any instance behind the balancer knows it */
    ws_server *s = ctx->app;
    ws_req *r = ctx->scratch;
    char sid[WS_STORE_ID_MAX + 1], key[WS_STORE_ID_MAX + 16];
    ws_store_new_id("mcp_", sid, sizeof sid);
    snprintf(key, sizeof key, "mcp:sess:%s", sid);
    if (ws_cache_set(s->cache, key, r->p.user_id, strlen(r->p.user_id), MCP_SESSION_TTL_MS, NULL) == 0)
        ws_http_header_add(ctx, "Mcp-Session-Id", "%s", sid);
}

static void m_tools_list(const ws_json *id, ws_buf *b)
{
    rpc_result_open(b, id);
    ws_buf_puts(b, "{\"tools\":[");
    for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
        if (i)
            ws_buf_putc(b, ',');
        ws_buf_puts(b, tools[i].json);
    }
    ws_buf_puts(b, "]}}");
}

#define MCP_MAX_PROGRESS_STREAMS 4   /* each holds a pool thread while it lasts */
#define MCP_PROGRESS_MAX_S (30 * 60) /* then the stream ends with the current status */
static _Atomic int progress_streams;

static void sse_event(ws_http_ctx *ctx, ws_buf *json, bool *alive)
{
    ws_buf ev = WS_BUF_INIT;
    ws_buf_puts(&ev, "event: message\ndata: ");
    ws_buf_append(&ev, json->data, json->len);
    ws_buf_puts(&ev, "\n\n");
    if (ws_http_stream_write(ctx, ev.data, ev.len) != 0)
        *alive = false;
    ws_buf_free(&ev);
}

/* train_style with a progressToken, to a client that accepts SSE: the answer is an event
 * stream of notifications/progress (the job's progress, 0..100) that ends with the tool
 * result once the training job is final. Returns false (nothing sent) when streaming is not
 * possible; the caller then answers at once with the queued job. */
static bool stream_training(ws_http_ctx *ctx, const ws_json *id, const ws_json *token, const char *job_id,
                            const char *persona)
{
    ws_server *s = ctx->app;
    if (atomic_fetch_add(&progress_streams, 1) >= MCP_MAX_PROGRESS_STREAMS) {
        atomic_fetch_sub(&progress_streams, 1);
        return false;
    }
    ctx->status = 200;
    ctx->content_type = "text/event-stream";
    ws_http_header_add(ctx, "Cache-Control", "no-cache");
    if (ws_http_stream_begin(ctx) != 0) {
        atomic_fetch_sub(&progress_streams, 1);
        ws_buf_reset(&ctx->headers);
        return false;
    }
    bool alive = true;
    double last = -1, t0 = ws_now_s();
    char status[16] = "queued";
    ws_buf job = WS_BUF_INIT, ev = WS_BUF_INIT;
    while (alive && !atomic_load(&s->stopping) && ws_now_s() - t0 < MCP_PROGRESS_MAX_S) {
        ws_op_error e = {0};
        ws_buf_reset(&job);
        if (ws_op_job(s, ctx->scratch, job_id, &job, &e) != 0)
            break;
        ws_json_doc *d = NULL;
        double progress = 0;
        if (ws_json_parse(job.data, job.len, &d, NULL) == 0) {
            const char *st = ws_json_get_str(ws_json_root(d), "status");
            snprintf(status, sizeof status, "%s", st ? st : "queued");
            ws_json_get_num(ws_json_root(d), "progress", &progress);
        }
        ws_json_doc_free(d);
        bool final = strcmp(status, "queued") && strcmp(status, "running");
        double pct = (double)(int)((final ? 1.0 : progress) * 100);
        if (pct > last) { /* progress must increase */
            ws_buf_reset(&ev);
            ws_buf_puts(
                &ev,
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":");
            put_id(&ev, token);
            ws_buf_printf(&ev, ",\"progress\":%g,\"total\":100,\"message\":", pct);
            ws_json_put_cstr(&ev, status);
            ws_buf_puts(&ev, "}}");
            sse_event(ctx, &ev, &alive);
            last = pct;
        }
        if (final)
            break;
        usleep(200 * 1000);
    }
    /* the tool result: the job as it stands now */
    ws_buf out = WS_BUF_INIT;
    ws_buf_putc(&out, '{');
    ws_buf_puts(&out, "\"job_id\":");
    ws_json_put_cstr(&out, job_id);
    ws_buf_puts(&out, ",\"status\":");
    ws_json_put_cstr(&out, status);
    ws_buf_puts(&out, ",\"persona\":");
    ws_json_put_cstr(&out, persona);
    ws_buf_putc(&out, '}');
    ws_buf_reset(&ev);
    rpc_result_open(&ev, id);
    ws_buf_puts(&ev, "{\"content\":[{\"type\":\"text\",\"text\":");
    ws_json_put_str(&ev, out.data, out.len);
    ws_buf_printf(&ev, "}],\"structuredContent\":%s,\"isError\":false}}", out.data);
    if (alive) {
        ws_buf_puts(&ctx->out, "event: message\ndata: ");
        ws_buf_append(&ctx->out, ev.data, ev.len);
        ws_buf_puts(&ctx->out, "\n\n"); /* sent as the last piece when the handler returns */
    }
    ws_buf_free(&out);
    ws_buf_free(&ev);
    ws_buf_free(&job);
    atomic_fetch_sub(&progress_streams, 1);
    return true;
}

/* reply_as with a progressToken, to a client that accepts SSE: notifications/progress as the
 * reply is generated (progress = pieces so far, message = the reply's text so far), then the
 * tool result as usual. The stream begins with the first piece; without one (a failure before
 * generating) the answer is the usual single message. */
typedef struct reply_progress {
    ws_http_ctx *ctx;
    const ws_json *token;
    ws_buf text, ev;
    int pieces;
    bool begun, live, alive;
} reply_progress;

static int reply_piece(void *arg, const char *piece, size_t len)
{
    reply_progress *rp = arg;
    ws_http_ctx *ctx = rp->ctx;
    if (!rp->begun) {
        rp->begun = true;
        ctx->status = 200;
        ctx->content_type = "text/event-stream";
        ws_http_header_add(ctx, "Cache-Control", "no-cache");
        rp->live = ws_http_stream_begin(ctx) == 0; /* else no notifications: the result alone */
    }
    ws_buf_append(&rp->text, piece, len);
    if (!rp->live)
        return 0;
    ws_buf_reset(&rp->ev);
    ws_buf_puts(&rp->ev,
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":");
    put_id(&rp->ev, rp->token);
    ws_buf_printf(&rp->ev, ",\"progress\":%d,\"message\":", ++rp->pieces);
    ws_json_put_str(&rp->ev, rp->text.data, rp->text.len);
    ws_buf_puts(&rp->ev, "}}");
    sse_event(ctx, &rp->ev, &rp->alive);
    return !rp->alive; /* the client left: the engine stops */
}

/* The JSON-RPC result of a tool call: its structured output, or a tool-level error. */
static void tool_result(ws_buf *b, const ws_json *id, int rc, const ws_buf *out, const mcp_call *c)
{
    rpc_result_open(b, id);
    if (rc == 0) {
        ws_buf_puts(b, "{\"content\":[{\"type\":\"text\",\"text\":");
        ws_json_put_str(b, out->data ? out->data : "{}", out->len);
        ws_buf_printf(b, "}],\"structuredContent\":%s,\"isError\":false}}", out->data ? out->data : "{}");
    } else {
        /* tool-level failure: the model sees it and can correct itself */
        char text[1200];
        snprintf(text, sizeof text, "%s (%s)", c->e.msg, c->e.code ? c->e.code : "error");
        ws_buf_puts(b, "{\"content\":[{\"type\":\"text\",\"text\":");
        ws_json_put_cstr(b, text);
        ws_buf_puts(b, "}],\"isError\":true}}");
    }
}

/* Returns true when the answer was streamed (nothing more to write). */
static bool m_tools_call(ws_http_ctx *ctx, const ws_json *id, const ws_json *params, ws_buf *b, bool sse_ok)
{
    ws_server *s = ctx->app;
    const char *name = params ? ws_json_get_str(params, "name") : NULL;
    const mcp_tool *t = NULL;
    for (size_t i = 0; name && i < sizeof tools / sizeof tools[0]; i++)
        if (!strcmp(tools[i].name, name))
            t = &tools[i];
    if (!t) {
        char msg[160];
        snprintf(msg, sizeof msg, "Unknown tool: %.100s", name ? name : "(no name)");
        rpc_error(b, id, -32602, msg);
        return false;
    }
    const ws_json *args = ws_json_get(params, "arguments");
    static const ws_json empty_obj = {.type = WS_JSON_OBJECT};
    if (!args || args->type == WS_JSON_NULL)
        args = &empty_obj;
    if (args->type != WS_JSON_OBJECT) {
        rpc_error(b, id, -32602, "arguments must be an object");
        return false;
    }
    ws_metric_add(s->m_mcp_calls, 1);
    ws_buf out = WS_BUF_INIT;
    mcp_call c = {.s = s, .r = ctx->scratch, .args = args, .out = &out, .arena = ctx->arena};
    const ws_json *meta = ws_json_get(params, "_meta");
    const ws_json *token = meta && meta->type == WS_JSON_OBJECT ? ws_json_get(meta, "progressToken") : NULL;
    bool token_ok = token && (token->type == WS_JSON_STRING || token->type == WS_JSON_NUMBER);
    reply_progress rp = {.ctx = ctx, .token = token, .text = WS_BUF_INIT, .ev = WS_BUF_INIT, .alive = true};
    if (sse_ok && token_ok && t->fn == t_reply_as) {
        c.on_piece = reply_piece;
        c.piece_arg = &rp;
    }
    int rc = t->fn(&c);
    if (rp.begun) { /* the result as the stream's last event (or after the events in one body) */
        ws_buf res = WS_BUF_INIT;
        tool_result(&res, id, rc, &out, &c);
        ws_buf_puts(&ctx->out, "event: message\ndata: ");
        ws_buf_append(&ctx->out, res.data, res.len);
        ws_buf_puts(&ctx->out, "\n\n");
        ws_buf_free(&res);
        ws_buf_free(&rp.text);
        ws_buf_free(&rp.ev);
        ws_buf_free(&out);
        return true;
    }
    if (rc == 0 && sse_ok && t->fn == t_train_style && token_ok) {
        ws_json_doc *d = NULL;
        bool streamed = false;
        if (ws_json_parse(out.data, out.len, &d, NULL) == 0) {
            const char *job = ws_json_get_str(ws_json_root(d), "job_id");
            const char *persona = ws_json_get_str(ws_json_root(d), "persona");
            if (job)
                streamed = stream_training(ctx, id, token, job, persona ? persona : "");
        }
        ws_json_doc_free(d);
        if (streamed) {
            ws_buf_free(&out);
            return true;
        }
    }
    tool_result(b, id, rc, &out, &c);
    ws_buf_free(&out);
    return false;
}

/* ---- resources: the same data as style_profile / list_conversations, for clients that
 * attach context rather than call tools ---- */

typedef struct mcp_resource {
    const char *uri, *name, *title, *description;
    tool_fn read;
} mcp_resource;

static const mcp_resource resources[] = {
    {"whatstyle://style-profile", "style-profile", "Style profile",
     "The measured writing style of your trained persona (JSON).", t_style_profile},
    {"whatstyle://conversations", "conversations", "Recent conversations",
     "Your 20 most recent exchanges with the clone (JSON).", t_list_conversations},
};

static void m_resources_list(const ws_json *id, ws_buf *b)
{
    rpc_result_open(b, id);
    ws_buf_puts(b, "{\"resources\":[");
    for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++) {
        ws_buf_puts(b, i ? ",{\"uri\":" : "{\"uri\":");
        ws_json_put_cstr(b, resources[i].uri);
        ws_buf_puts(b, ",\"name\":");
        ws_json_put_cstr(b, resources[i].name);
        ws_buf_puts(b, ",\"title\":");
        ws_json_put_cstr(b, resources[i].title);
        ws_buf_puts(b, ",\"description\":");
        ws_json_put_cstr(b, resources[i].description);
        ws_buf_puts(b, ",\"mimeType\":\"application/json\"}");
    }
    ws_buf_puts(b, "]}}");
}

static void m_resources_read(ws_http_ctx *ctx, const ws_json *id, const ws_json *params, ws_buf *b)
{
    const char *uri = params ? ws_json_get_str(params, "uri") : NULL;
    const mcp_resource *res = NULL;
    for (size_t i = 0; uri && i < sizeof resources / sizeof resources[0]; i++)
        if (!strcmp(resources[i].uri, uri))
            res = &resources[i];
    if (!res) {
        rpc_error(b, id, -32002, "Resource not found");
        return;
    }
    static const ws_json empty_obj = {.type = WS_JSON_OBJECT};
    ws_buf out = WS_BUF_INIT;
    mcp_call c = {.s = ctx->app, .r = ctx->scratch, .args = &empty_obj, .out = &out, .arena = ctx->arena};
    if (res->read(&c) != 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s (%s)", c.e.msg, c.e.code ? c.e.code : "error");
        rpc_error(b, id, -32603, msg);
    } else {
        rpc_result_open(b, id);
        ws_buf_puts(b, "{\"contents\":[{\"uri\":");
        ws_json_put_cstr(b, res->uri);
        ws_buf_puts(b, ",\"mimeType\":\"application/json\",\"text\":");
        ws_json_put_str(b, out.data ? out.data : "{}", out.len);
        ws_buf_puts(b, "}]}}");
    }
    ws_buf_free(&out);
}

/* logging/setLevel: accepted and remembered per request only — this server sends no log
 * notifications (its logs go to stdout as JSON), so any valid level is fine. */
static void m_set_level(const ws_json *id, const ws_json *params, ws_buf *b)
{
    static const char *const levels[] = {"debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency"};
    const char *lv = params ? ws_json_get_str(params, "level") : NULL;
    for (size_t i = 0; lv && i < sizeof levels / sizeof levels[0]; i++) {
        if (!strcmp(levels[i], lv)) {
            rpc_result_open(b, id);
            ws_buf_puts(b, "{}}");
            return;
        }
    }
    rpc_error(b, id, -32602, "Invalid params: unknown log level");
}

/* ---- HTTP side ------------------------------------------------------------------------- */

static bool host_is_local(const char *h, size_t n)
{
    return (n == 9 && !strncmp(h, "localhost", 9)) || (n == 9 && !strncmp(h, "127.0.0.1", 9)) ||
           (n == 5 && !strncmp(h, "[::1]", 5));
}

/* DNS-rebinding protection: a browser's Origin must be local, the server's own host, or
 * listed in allowed_origins. Requests without Origin (non-browser clients) pass. */
static bool origin_allowed(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    const ws_http_slice *o = ws_http_find_header(ctx->req, "Origin");
    if (!o)
        return true;
    const char *p = o->p, *end = o->p + o->len;
    if (s->origins) {
        const char *q = s->origins;
        while (*q) {
            const char *comma = strchr(q, ',');
            size_t n = comma ? (size_t)(comma - q) : strlen(q);
            while (n && *q == ' ') {
                q++;
                n--;
            }
            if (n == o->len && !strncasecmp(q, p, n))
                return true;
            if (!comma)
                break;
            q = comma + 1;
        }
    }
    const char *sep = memmem(p, o->len, "://", 3);
    if (!sep)
        return false;
    const char *host = sep + 3, *hend = host;
    if (hend < end && *hend == '[') {
        while (hend < end && *hend != ']')
            hend++;
        if (hend < end)
            hend++;
    } else {
        while (hend < end && *hend != ':' && *hend != '/')
            hend++;
    }
    if (host_is_local(host, (size_t)(hend - host)))
        return true;
    const ws_http_slice *h = ws_http_find_header(ctx->req, "Host");
    return h && (size_t)(end - host) == h->len && !strncasecmp(host, h->p, h->len);
}

static int finish(ws_http_ctx *ctx, ws_buf *b, bool sse)
{
    if (sse) {
        ctx->content_type = "text/event-stream";
        ws_buf_puts(&ctx->out, "event: message\ndata: ");
        ws_buf_append(&ctx->out, b->data, b->len);
        ws_buf_puts(&ctx->out, "\n\n");
        ws_http_header_add(ctx, "Cache-Control", "no-cache");
    } else {
        ctx->content_type = "application/json";
        ws_buf_append(&ctx->out, b->data, b->len);
    }
    ws_buf_free(b);
    return 0;
}

int ws_mcp_handle(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    if (!origin_allowed(ctx)) {
        ctx->status = 403;
        rpc_error(&ctx->out, NULL, -32600, "Origin not allowed");
        return 0;
    }
    ws_req *r;
    int b_ = ws_srv_begin(ctx, &r);
    if (b_)
        return b_ == 1 ? 0 : b_;
    if (ctx->on_loop)
        return WS_EAGAIN; /* tools touch the store, the cache and the AI */
    const ws_http_slice *pv = ws_http_find_header(ctx->req, "MCP-Protocol-Version");
    if (pv && !version_supported(pv->p, pv->len)) {
        ctx->status = 400;
        rpc_error(&ctx->out, NULL, -32600, "Unsupported MCP-Protocol-Version");
        return 0;
    }
    const char *sid = ws_http_header_get(ctx, "Mcp-Session-Id");
    char key[160];
    if (sid) {
        ws_buf owner = WS_BUF_INIT;
        snprintf(key, sizeof key, "mcp:sess:%.100s", sid);
        int rc = strlen(sid) > 100 ? WS_ENOENT : ws_cache_get(s->cache, key, &owner, NULL);
        bool ok = rc == 0 && owner.data && !strcmp(owner.data, r->p.user_id);
        ws_buf_free(&owner);
        if (!ok) {
            ctx->status = 404;
            rpc_error(&ctx->out, NULL, -32001, "Session not found");
            return 0;
        }
    }
    bool is_get = ws_http_slice_ieq(ctx->req->method, "GET") || ws_http_slice_ieq(ctx->req->method, "HEAD");
    if (is_get) {
        /* no server-initiated stream is offered */
        ctx->status = 405;
        ws_http_header_add(ctx, "Allow", "POST, DELETE");
        rpc_error(&ctx->out, NULL, -32000, "Method not allowed: this server offers no standalone SSE stream");
        return 0;
    }
    if (ws_http_slice_ieq(ctx->req->method, "DELETE")) {
        if (!sid) {
            ctx->status = 400;
            rpc_error(&ctx->out, NULL, -32000, "Mcp-Session-Id header required");
            return 0;
        }
        ws_cache_del(s->cache, key, NULL, NULL);
        ctx->status = 204;
        return 0;
    }
    const ws_http_slice *accept = ws_http_find_header(ctx->req, "Accept");
    bool wants_json = !accept || ws_http_list_has(*accept, "application/json") ||
                      ws_http_list_has(*accept, "*/*") || ws_http_list_has(*accept, "application/*");
    bool wants_sse = accept && ws_http_list_has(*accept, "text/event-stream");
    if (!wants_json && !wants_sse) {
        ctx->status = 406;
        rpc_error(&ctx->out, NULL, -32000, "Not Acceptable: accept application/json or text/event-stream");
        return 0;
    }
    bool sse = !wants_json;
    ws_buf b = WS_BUF_INIT;
    ws_json_doc *doc = NULL;
    ws_error err = {0};
    if (ws_json_parse(ctx->body ? ctx->body : "", ctx->body_len, &doc, &err) != 0) {
        ctx->status = 400;
        rpc_error(&b, NULL, -32700, "Parse error");
        return finish(ctx, &b, sse);
    }
    ws_arena_on_free(ctx->arena, (void (*)(void *))ws_json_doc_free, doc);
    const ws_json *msg = ws_json_root(doc);
    const ws_json *jr = msg->type == WS_JSON_OBJECT ? ws_json_get(msg, "jsonrpc") : NULL;
    if (msg->type != WS_JSON_OBJECT || !jr || jr->type != WS_JSON_STRING || strcmp(jr->str, "2.0")) {
        ctx->status = 400;
        rpc_error(&b, NULL, -32600, "Invalid Request: one JSON-RPC 2.0 message per POST");
        return finish(ctx, &b, sse);
    }
    const ws_json *id = ws_json_get(msg, "id");
    const ws_json *method = ws_json_get(msg, "method");
    if (id && id->type != WS_JSON_STRING && id->type != WS_JSON_NUMBER) {
        ctx->status = 400;
        rpc_error(&b, NULL, -32600, "Invalid Request: id must be a string or a number");
        return finish(ctx, &b, sse);
    }
    if (!id || !method) {
        /* a notification or a response from the client: accepted, nothing to answer */
        ctx->status = 202;
        ws_buf_free(&b);
        return 0;
    }
    if (method->type != WS_JSON_STRING) {
        rpc_error(&b, id, -32600, "Invalid Request: method must be a string");
        return finish(ctx, &b, sse);
    }
    const ws_json *params = ws_json_get(msg, "params");
    if (params && params->type != WS_JSON_OBJECT) {
        rpc_error(&b, id, -32602, "params must be an object");
        return finish(ctx, &b, sse);
    }
    if (!strcmp(method->str, "initialize")) {
        m_initialize(ctx, id, params, &b);
    } else if (!strcmp(method->str, "ping")) {
        rpc_result_open(&b, id);
        ws_buf_puts(&b, "{}}");
    } else if (!strcmp(method->str, "tools/list")) {
        m_tools_list(id, &b);
    } else if (!strcmp(method->str, "tools/call")) {
        if (m_tools_call(ctx, id, params, &b, wants_sse)) {
            ws_buf_free(&b);
            return 0;
        }
    } else if (!strcmp(method->str, "resources/list")) {
        m_resources_list(id, &b);
    } else if (!strcmp(method->str, "resources/read")) {
        m_resources_read(ctx, id, params, &b);
    } else if (!strcmp(method->str, "resources/templates/list")) {
        rpc_result_open(&b, id);
        ws_buf_puts(&b, "{\"resourceTemplates\":[]}}");
    } else if (!strcmp(method->str, "logging/setLevel")) {
        m_set_level(id, params, &b);
    } else {
        rpc_error(&b, id, -32601, "Method not found");
    }
    return finish(ctx, &b, sse);
}
