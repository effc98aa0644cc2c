/* REST endpoints the dashboard needs besides the API's own: API keys (list, create — shown
 * once —, revoke), the user's training jobs, a job's progress as server-sent events, and
 * the participants of an export before training. Authenticated like every /v1 route (key
 * or session cookie + CSRF, see session.c). */
#include "server/server_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "chat/chat.h"
#include "core/clock.h"
#include "core/mem.h"

#define MAX_PEOPLE 256
#define EVENTS_POLL_MS 500
#define EVENTS_MAX_S 3600 /* a stream ends after an hour; EventSource reconnects */
#define EVENTS_MAX_OPEN 8 /* each open stream holds a pool thread: beyond, one event and the end */

static _Atomic int events_open; /* streams open in this process */

#define BEGIN_OR_RETURN(ctx, r)                                                                              \
    do {                                                                                                     \
        int b_ = ws_srv_begin((ctx), &(r));                                                                  \
        if (b_)                                                                                              \
            return b_ == 1 ? 0 : b_;                                                                         \
    } while (0)

static void kv_str(ws_buf *o, const char *k, const char *v, bool comma)
{
    if (comma)
        ws_buf_putc(o, ',');
    ws_json_put_cstr(o, k);
    ws_buf_putc(o, ':');
    ws_json_put_cstr(o, v);
}

static void kv_time(ws_buf *o, const char *k, int64_t ms)
{
    ws_buf_printf(o, ",\"%s\":", k);
    if (ms)
        ws_buf_put_i64(o, ms);
    else
        ws_buf_puts(o, "null");
}

/* GET /v1/keys */
int ws_srv_h_keys_list(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN_OR_RETURN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_api_key *items = NULL;
    size_t n = 0;
    ws_store *db = ws_srv_store_get(s);
    int rc = ws_store_key_list(db, ctx->arena, r->p.user_id, &items, &n, NULL);
    ws_srv_store_put(s, db);
    if (rc != 0) {
        ws_http_error(ctx, 503, "unavailable", "the store is unavailable");
        return 0;
    }
    ws_buf *o = &ctx->out;
    ws_buf_puts(o, "{\"items\":[");
    for (size_t i = 0; i < n; i++) {
        ws_buf_puts(o, i ? ",{" : "{");
        kv_str(o, "key_id", items[i].key_id, false);
        kv_str(o, "name", items[i].client_name, true);
        kv_str(o, "role", items[i].role, true);
        ws_buf_puts(o, items[i].is_active ? ",\"active\":true" : ",\"active\":false");
        ws_buf_puts(o, !strcmp(items[i].key_id, r->p.key_id) ? ",\"current\":true" : ",\"current\":false");
        kv_time(o, "created_at", items[i].created_at);
        kv_time(o, "last_used_at", items[i].last_used_at);
        kv_time(o, "expires_at", items[i].expires_at);
        ws_buf_putc(o, '}');
    }
    ws_buf_puts(o, "]}");
    return 0;
}

/* POST /v1/keys {"name": "..."}: a new user key of the caller; the key is in this answer only. */
int ws_srv_h_keys_create(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN_OR_RETURN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_json_doc *doc = NULL;
    const char *name = NULL;
    if (ctx->body_len && ws_json_parse(ctx->body, ctx->body_len, &doc, NULL) != 0) {
        ws_http_error(ctx, 400, "invalid_json", "the body must be JSON: {\"name\": \"...\"}");
        return 0;
    }
    if (doc) {
        ws_arena_on_free(ctx->arena, (void (*)(void *))ws_json_doc_free, doc);
        name = ws_json_get_str(ws_json_root(doc), "name");
    }
    if (name && strlen(name) > 64) {
        ws_http_error(ctx, 400, "invalid_request", "a key's name is at most 64 bytes");
        return 0;
    }
    char key[WS_KEY_LEN + 1];
    ws_principal p;
    ws_error err = {0};
    ws_store *db = ws_srv_store_get(s);
    int rc = ws_auth_key_create(db, r->p.user_name, WS_ROLE_USER, 0, name && *name ? name : "dashboard", 0,
                                key, &p, &err);
    if (rc == 0) {
        ws_audit_entry audit = {.actor = r->p.key_id,
                                .user_id = r->p.user_id,
                                .action = "key_create",
                                .resource = "api key",
                                .detail = p.key_id};
        ws_store_audit_append(db, &audit, NULL);
    }
    ws_srv_store_put(s, db);
    if (rc != 0) {
        ws_http_error(ctx, 503, "unavailable", "cannot create a key now; try again");
        return 0;
    }
    ws_buf *o = &ctx->out;
    ws_buf_putc(o, '{');
    kv_str(o, "key_id", p.key_id, false);
    kv_str(o, "key", key, true);
    kv_str(o, "name", name && *name ? name : "dashboard", true);
    ws_buf_putc(o, '}');
    OPENSSL_cleanse(key, sizeof key);
    ws_http_header_add(ctx, "Cache-Control", "no-store");
    ctx->status = 201;
    return 0;
}

/* DELETE /v1/keys/{key_id}: revokes one of the caller's keys (another user's: 404). */
int ws_srv_h_keys_revoke(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN_OR_RETURN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    char *id = ws_arena_strndup(ctx->arena, ctx->params[0].p, ctx->params[0].len);
    ws_store *db = ws_srv_store_get(s);
    int rc = ws_store_key_revoke(db, id, r->p.user_id, NULL);
    if (rc == 0) {
        ws_audit_entry audit = {.actor = r->p.key_id,
                                .user_id = r->p.user_id,
                                .action = "key_revoke",
                                .resource = "api key",
                                .detail = id};
        ws_store_audit_append(db, &audit, NULL);
    }
    ws_srv_store_put(s, db);
    if (rc == WS_ENOENT) {
        ws_http_error(ctx, 404, "not_found", "no such key");
        return 0;
    }
    if (rc != 0) {
        ws_http_error(ctx, 503, "unavailable", "the store is unavailable");
        return 0;
    }
    ws_srv_auth_forget_user(s, r->p.user_id); /* the key stops working here at once */
    ctx->status = 204;
    return 0;
}

/* GET /v1/training-jobs: the caller's latest jobs, newest first. */
int ws_srv_h_jobs_list(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN_OR_RETURN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_job *jobs = NULL;
    size_t n = 0;
    ws_store *db = ws_srv_store_get(s);
    int rc = ws_store_job_list(db, ctx->arena, r->p.user_id, 20, &jobs, &n, NULL);
    ws_srv_store_put(s, db);
    if (rc != 0) {
        ws_http_error(ctx, 503, "unavailable", "the store is unavailable");
        return 0;
    }
    ws_buf *o = &ctx->out;
    ws_buf_puts(o, "{\"items\":[");
    for (size_t i = 0; i < n; i++) {
        ws_buf_puts(o, i ? ",{" : "{");
        kv_str(o, "job_id", jobs[i].id, false);
        kv_str(o, "status", ws_job_status_name(jobs[i].status), true);
        ws_buf_puts(o, ",\"progress\":");
        ws_json_put_num(o, jobs[i].progress);
        kv_time(o, "created_at", jobs[i].created_at);
        kv_time(o, "completed_at", jobs[i].completed_at);
        ws_buf_puts(o, ",\"params\":");
        ws_buf_puts(o, jobs[i].params_json ? jobs[i].params_json : "null");
        ws_buf_putc(o, '}');
    }
    ws_buf_puts(o, "]}");
    return 0;
}

/* One SSE event: every line of the JSON (metrics are pretty-printed) gets its "data:". */
static void put_event(ws_buf *ev, const char *json, size_t len)
{
    ws_buf_puts(ev, "event: job\n");
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(json + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (json + i)) : len - i;
        ws_buf_puts(ev, "data: ");
        ws_buf_append(ev, json + i, n);
        ws_buf_putc(ev, '\n');
        i += n + (nl ? 1 : 0);
    }
    ws_buf_putc(ev, '\n');
}

static bool job_final(const char *json)
{
    return strstr(json, "\"status\":\"completed\"") || strstr(json, "\"status\":\"failed\"") ||
           strstr(json, "\"status\":\"cancelled\"");
}

/* GET /v1/training-jobs/{id}/events: text/event-stream of "job" events (the job's JSON as
 * GET /v1/training-jobs/{id} gives it) each time it changes, until it is final. */
int ws_srv_h_job_events(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN_OR_RETURN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    char *id = ws_arena_strndup(ctx->arena, ctx->params[0].p, ctx->params[0].len);
    ws_buf cur = WS_BUF_INIT, last = WS_BUF_INIT, ev = WS_BUF_INIT;
    ws_op_error e = {0};
    bool streaming = false;
    if (ws_op_job(s, r, id, &cur, &e) != 0) {
        ws_http_error(ctx, e.status, e.code, "%s", e.msg);
        goto out;
    }
    ctx->content_type = "text/event-stream";
    ws_http_header_add(ctx, "Cache-Control", "no-store");
    if (atomic_fetch_add(&events_open, 1) >= EVENTS_MAX_OPEN || ws_http_stream_begin(ctx) != 0) {
        /* too many streams, HTTP/2 or HTTP/1.0: one event now; EventSource asks again in
         * a few seconds (the "retry" field), which amounts to polling */
        atomic_fetch_sub(&events_open, 1);
        ws_buf_puts(&ctx->out, "retry: 2000\n");
        put_event(&ctx->out, cur.data, cur.len);
        goto out;
    }
    streaming = true;
    double t0 = ws_now_s(), beat = t0;
    while (!atomic_load(&s->stopping) && ws_now_s() - t0 < EVENTS_MAX_S) {
        if (cur.len != last.len || memcmp(cur.data, last.data, cur.len) != 0) {
            ws_buf_reset(&ev);
            put_event(&ev, cur.data, cur.len);
            if (ws_http_stream_write(ctx, ev.data, ev.len) != 0)
                goto out; /* the client left */
            ws_buf_reset(&last);
            ws_buf_append(&last, cur.data, cur.len);
            beat = ws_now_s();
            if (job_final(cur.data))
                break;
        } else if (ws_now_s() - beat > 15) {
            if (ws_http_stream_write(ctx, ": keep-alive\n\n", 14) != 0)
                goto out;
            beat = ws_now_s();
        }
        struct timespec ts = {0, EVENTS_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        ws_buf_reset(&cur);
        if (ws_op_job(s, r, id, &cur, &e) != 0)
            break; /* erased meanwhile */
    }
out:
    if (streaming)
        atomic_fetch_sub(&events_open, 1);
    ws_buf_free(&cur);
    ws_buf_free(&last);
    ws_buf_free(&ev);
    return 0;
}

/* POST /v1/exports/inspect (pool; body: the export): who is in the chat and how many
 * messages each wrote, so the page can ask whose style to learn. Nothing is stored. */
int ws_srv_h_exports_inspect(ws_http_ctx *ctx)
{
    ws_req *r;
    BEGIN_OR_RETURN(ctx, r);
    ws_chat_reader *rd = NULL;
    ws_error err = {0};
    const char *names[MAX_PEOPLE];
    uint64_t counts[MAX_PEOPLE] = {0}, total = 0;
    size_t n = 0;
    ws_message m;
    if (!ctx->body || ctx->body_len == 0) {
        ws_http_error(ctx, 400, "not_an_export",
                      "the file is empty: choose a WhatsApp export (.txt or .zip)");
        return 0;
    }
    int rc = ws_chat_open_memory(ctx->body, ctx->body_len, NULL, &rd, &err);
    while (rc == 0 && (rc = ws_chat_next(rd, &m, &err)) == 1) {
        rc = 0;
        total++;
        if (!m.author)
            continue;
        size_t i = 0;
        while (i < n && strcmp(names[i], m.author) != 0)
            i++;
        if (i == n && n < MAX_PEOPLE)
            names[n++] = ws_arena_strndup(ctx->arena, m.author, m.author_len);
        if (i < n)
            counts[i]++;
    }
    ws_chat_close(rd);
    if (rc < 0 || n == 0) {
        if (rc == WS_ETOOBIG)
            ws_http_error(ctx, 413, "payload_too_large", "the export is too big: %s", err.msg);
        else
            ws_http_error(
                ctx, 400, "not_an_export",
                "this is not a WhatsApp chat export (use \"Export chat\" in WhatsApp and upload the "
                ".txt or .zip it makes)");
        return 0;
    }
    ws_buf *o = &ctx->out;
    ws_buf_puts(o, "{\"messages\":");
    ws_buf_put_i64(o, (long long)total);
    ws_buf_puts(o, ",\"participants\":[");
    for (size_t i = 0; i < n; i++) {
        ws_buf_puts(o, i ? ",{" : "{");
        kv_str(o, "name", names[i], false);
        ws_buf_puts(o, ",\"messages\":");
        ws_buf_put_i64(o, (long long)counts[i]);
        ws_buf_putc(o, '}');
    }
    ws_buf_puts(o, "]}");
    (void)r;
    return 0;
}
