/* The WhatsApp channel's HTTP side: the webhook (verification handshake; signed
 * notifications checked over the raw bytes, stored in the inbox, answered 200) and the
 * operations on links, modes and drafts that REST (/v1/whatsapp/...) and MCP share. */
#include "server/wa_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "store/store_whatsapp.h"
#include "whatsapp/whatsapp.h"

#define DAY_MS (24 * 3600 * 1000LL)

static void op_fail(ws_op_error *e, int status, const char *code, const char *msg)
{
    e->status = status;
    e->code = code;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
}

/* A store error as an operation error: 404 / 409 / 400 / 503. */
static int store_fail(ws_op_error *e, int rc, const ws_error *err)
{
    switch (rc) {
    case WS_ENOENT: op_fail(e, 404, "not_found", err->msg); break;
    case WS_ECONFLICT: op_fail(e, 409, "conflict", err->msg); break;
    case WS_EINVAL:
    case WS_ETOOBIG: op_fail(e, 400, "invalid_request", err->msg); break;
    default: op_fail(e, 503, "unavailable", "the store is unavailable"); break;
    }
    return e->status;
}

static bool digits(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* ---- the webhook ---------------------------------------------------------------------- */

int ws_wa_h_verify(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    const char *mode = ws_http_query_param(ctx, "hub.mode");
    const char *token = ws_http_query_param(ctx, "hub.verify_token");
    const char *challenge = ws_http_query_param(ctx, "hub.challenge");
    const char *want = s->wa->verify_token;
    bool ok = want && mode && token && challenge && !strcmp(mode, "subscribe") &&
              strlen(token) == strlen(want) && CRYPTO_memcmp(token, want, strlen(want)) == 0 &&
              strlen(challenge) <= 1024;
    if (!ok) {
        ws_http_error(ctx, 403, "forbidden", "verification failed");
        return 0;
    }
    ctx->content_type = "text/plain";
    ws_buf_puts(&ctx->out, challenge);
    return 0;
}

int ws_wa_h_webhook(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_wa_state *wa = s->wa;
    if (!wa->app_secret) {
        ws_http_error(ctx, 503, "not_configured", "the WhatsApp app secret is not configured");
        return 0;
    }
    if (!ctx->scratch) { /* the loop run checks the signature; the pool run stores the body */
        const char *sig = ws_http_header_get(ctx, "X-Hub-Signature-256");
        if (ws_wa_signature_check(wa->app_secret, wa->app_secret_len, ctx->body, ctx->body_len, sig) != 0) {
            ws_metric_add(wa->m_sig_failures, 1);
            ws_http_error(ctx, 401, "bad_signature",
                          sig ? "X-Hub-Signature-256 does not match the body"
                              : "X-Hub-Signature-256 is missing");
            return 0;
        }
        ctx->scratch = wa;
    }
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_error err = {0};
    int rc = ws_wa_inbox_submit(s, ctx->body ? ctx->body : "", ctx->body_len, &err);
    if (rc == WS_EINVAL || rc == WS_ETOOBIG) {
        /* a signed body we can never store: answering 200 stops Meta's redelivery */
        ws_metric_add(wa->m_bad_bodies, 1);
        ws_buf_puts(&ctx->out, "{\"status\":\"ignored\"}");
        return 0;
    }
    if (rc) {
        ws_http_error(ctx, 503, "unavailable", "the notification could not be stored; retry");
        return 0;
    }
    ws_buf_puts(&ctx->out, "{\"status\":\"received\"}");
    return 0;
}

/* ---- links ---------------------------------------------------------------------------- */

void ws_wa_token_key(const char *user_id, const char *phone_number_id, char *out, size_t n)
{
    snprintf(out, n, "users/%s/whatsapp/%s.token", user_id, phone_number_id);
}

static bool token_ok(const char *t)
{
    size_t n = t ? strnlen(t, WS_WA_TOKEN_MAX + 1) : 0;
    if (n == 0 || n > WS_WA_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

static void put_link(ws_buf *b, const ws_wa_link *l, const char *model_version)
{
    ws_buf_puts(b, "{\"phone_number_id\":");
    ws_json_put_cstr(b, l->phone_number_id);
    ws_buf_puts(b, ",\"mode\":");
    ws_json_put_cstr(b, ws_wa_mode_name(l->default_mode));
    ws_buf_puts(b, ",\"clone\":{\"user_id\":");
    ws_json_put_cstr(b, l->user_id);
    ws_buf_puts(b, ",\"model_version\":");
    ws_json_put_cstr(b, model_version && *model_version ? model_version : NULL);
    ws_buf_printf(b, "},\"created_at\":%lld,\"updated_at\":%lld}", (long long)l->created_at,
                  (long long)l->updated_at);
}

int ws_op_wa_link(ws_server *s, ws_req *r, const ws_wa_link_req *lr, ws_buf *out, ws_op_error *e)
{
    ws_wa_mode mode = WS_WA_MODE_DRAFT;
    if (!digits(lr->phone_number_id, 64)) {
        op_fail(e, 400, "invalid_request",
                "phone_number_id must be the number's id (digits) from the WhatsApp Manager");
        return e->status;
    }
    if (!token_ok(lr->access_token)) {
        op_fail(e, 400, "invalid_request", "access_token must be 1..4096 printable characters");
        return e->status;
    }
    if (lr->mode && ws_wa_mode_parse(lr->mode, &mode) != 0) {
        op_fail(e, 400, "invalid_request", "mode must be off, draft or auto");
        return e->status;
    }
    ws_arena *a = ws_arena_new(1024);
    ws_store *st = ws_srv_store_get(s);
    ws_error err = {0};
    ws_wa_link cur,
        l = {.phone_number_id = lr->phone_number_id, .user_id = r->p.user_id, .default_mode = mode};
    char key[WS_BLOB_KEY_MAX];
    ws_wa_token_key(r->p.user_id, lr->phone_number_id, key, sizeof key);
    l.token_blob = key;
    int rc = ws_store_wa_link_get(st, a, lr->phone_number_id, &cur, &err);
    if (rc == 0 && strcmp(cur.user_id, r->p.user_id) != 0) {
        rc = WS_ECONFLICT;
        snprintf(err.msg, sizeof err.msg, "that number is linked to another account");
    } else if (rc == WS_ENOENT || rc == 0) {
        rc = ws_blobs_put(s->blobs, key, lr->access_token, strlen(lr->access_token), &err);
        if (rc == 0)
            rc = ws_store_wa_link_put(st, &l, &err);
        if (rc == 0)
            rc = ws_store_wa_link_get(st, a, lr->phone_number_id, &cur, &err);
    }
    ws_srv_store_put(s, st);
    if (rc == 0)
        put_link(out, &cur, r->model_version);
    else
        store_fail(e, rc, &err);
    ws_arena_free(a);
    return rc ? e->status : 0;
}

int ws_op_wa_links(ws_server *s, ws_req *r, ws_buf *out, ws_op_error *e)
{
    ws_arena *a = ws_arena_new(1024);
    ws_store *st = ws_srv_store_get(s);
    ws_error err = {0};
    ws_wa_link *items = NULL;
    size_t n = 0;
    int rc = ws_store_wa_link_list(st, a, r->p.user_id, &items, &n, &err);
    ws_srv_store_put(s, st);
    if (rc == 0) {
        ws_buf_puts(out, "{\"items\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                ws_buf_putc(out, ',');
            put_link(out, &items[i], r->model_version);
        }
        ws_buf_puts(out, "]}");
    } else {
        store_fail(e, rc, &err);
    }
    ws_arena_free(a);
    return rc ? e->status : 0;
}

int ws_op_wa_unlink(ws_server *s, ws_req *r, const char *phone_number_id, ws_buf *out, ws_op_error *e)
{
    ws_store *st = ws_srv_store_get(s);
    ws_error err = {0};
    int rc = ws_store_wa_link_delete(st, r->p.user_id, phone_number_id, &err);
    ws_srv_store_put(s, st);
    if (rc)
        return store_fail(e, rc, &err);
    char key[WS_BLOB_KEY_MAX];
    ws_wa_token_key(r->p.user_id, phone_number_id, key, sizeof key);
    ws_blobs_delete(s->blobs, key, NULL);
    ws_buf_puts(out, "{\"unlinked\":");
    ws_json_put_cstr(out, phone_number_id);
    ws_buf_putc(out, '}');
    return 0;
}

int ws_op_wa_mode(ws_server *s, ws_req *r, const char *phone_number_id, const char *contact, const char *mode,
                  ws_buf *out, ws_op_error *e)
{
    ws_wa_mode m;
    if (ws_wa_mode_parse(mode, &m) != 0) {
        op_fail(e, 400, "invalid_request", "mode must be off, draft or auto");
        return e->status;
    }
    if (contact && (!*contact || strlen(contact) > 256)) {
        op_fail(e, 400, "invalid_request",
                "contact must be a phone number (wa_id) or a business-scoped user id");
        return e->status;
    }
    const char *c = contact && contact[0] == '+' ? contact + 1 : contact; /* wa_ids have no '+' */
    ws_store *st = ws_srv_store_get(s);
    ws_error err = {0};
    int rc = ws_store_wa_mode_set(st, r->p.user_id, phone_number_id, c, m, &err);
    ws_srv_store_put(s, st);
    if (rc)
        return store_fail(e, rc, &err);
    ws_buf_puts(out, "{\"phone_number_id\":");
    ws_json_put_cstr(out, phone_number_id);
    ws_buf_puts(out, ",\"contact\":");
    ws_json_put_cstr(out, c);
    ws_buf_puts(out, ",\"mode\":");
    ws_json_put_cstr(out, ws_wa_mode_name(m));
    ws_buf_putc(out, '}');
    return 0;
}

/* ---- drafts --------------------------------------------------------------------------- */

static void put_draft(ws_buf *b, const ws_wa_draft *d)
{
    ws_buf_puts(b, "{\"draft_id\":");
    ws_json_put_cstr(b, d->draft_id);
    ws_buf_puts(b, ",\"phone_number_id\":");
    ws_json_put_cstr(b, d->phone_number_id);
    ws_buf_puts(b, ",\"contact\":");
    ws_json_put_cstr(b, d->contact_phone ? d->contact_phone : d->contact_user_id);
    ws_buf_puts(b, ",\"message_id\":");
    ws_json_put_cstr(b, d->in_wamid);
    ws_buf_puts(b, ",\"message\":");
    ws_json_put_cstr(b, d->in_text);
    ws_buf_puts(b, ",\"mode\":");
    ws_json_put_cstr(b, ws_wa_mode_name(d->mode));
    ws_buf_puts(b, ",\"status\":");
    ws_json_put_cstr(b, d->status);
    ws_buf_puts(b, ",\"reply\":");
    ws_json_put_cstr(b, d->reply);
    ws_buf_puts(b, ",\"confidence\":");
    ws_json_put_num(b, d->confidence);
    ws_buf_puts(b, ",\"reason\":");
    ws_json_put_cstr(b, d->reason);
    ws_buf_puts(b, ",\"error\":");
    if (d->error_code || d->error_message) {
        ws_buf_printf(b, "{\"code\":%d,\"message\":", d->error_code);
        ws_json_put_cstr(b, d->error_message);
        ws_buf_putc(b, '}');
    } else {
        ws_buf_puts(b, "null");
    }
    ws_buf_puts(b, ",\"sent_message_id\":");
    ws_json_put_cstr(b, d->out_wamid);
    ws_buf_printf(b, ",\"attempts\":%d,\"created_at\":%lld,\"updated_at\":%lld}", d->attempts,
                  (long long)d->created_at, (long long)d->updated_at);
}

int ws_op_wa_drafts(ws_server *s, ws_req *r, const char *status, int limit, ws_buf *out, ws_op_error *e)
{
    static const char *const ok[] = {"generating", "pending", "queued", "sent", "failed", "discarded"};
    bool known = !status;
    for (size_t i = 0; status && i < sizeof ok / sizeof ok[0]; i++)
        known |= !strcmp(status, ok[i]);
    if (!known) {
        op_fail(e, 400, "invalid_request",
                "status must be generating, pending, queued, sent, failed or discarded");
        return e->status;
    }
    ws_arena *a = ws_arena_new(4096);
    ws_store *st = ws_srv_store_get(s);
    ws_error err = {0};
    ws_wa_draft *items = NULL;
    size_t n = 0;
    int rc = ws_store_wa_draft_list(st, a, r->p.user_id, status, limit, &items, &n, &err);
    ws_srv_store_put(s, st);
    if (rc == 0) {
        ws_buf_puts(out, "{\"items\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                ws_buf_putc(out, ',');
            put_draft(out, &items[i]);
        }
        ws_buf_puts(out, "]}");
    } else {
        store_fail(e, rc, &err);
    }
    ws_arena_free(a);
    return rc ? e->status : 0;
}

/* Applies action to draft d (owned by the caller, already checked). */
static int draft_act(ws_store *st, ws_wa_draft *d, const char *action, const char *text, bool send,
                     ws_op_error *e)
{
    ws_error err = {0};
    const char *orig = d->status;
    bool open = !strcmp(d->status, "pending") || !strcmp(d->status, "failed");
    if (!strcmp(action, "discard")) {
        if (!open && strcmp(d->status, "generating") != 0) {
            op_fail(e, 409, "conflict", "only a pending, failed or generating draft can be discarded");
            return e->status;
        }
        d->status = "discarded";
        int rc = ws_store_wa_draft_update(st, d, orig, &err);
        return rc ? store_fail(e, rc, &err) : 0;
    }
    if (!open) {
        op_fail(e, 409, "conflict", "only a pending or failed draft can be approved or edited");
        return e->status;
    }
    if (!strcmp(action, "edit")) {
        size_t n = text ? strlen(text) : 0;
        if (!n || ws_utf8_count(text, n) > WS_WA_REPLY_MAX) {
            op_fail(e, 400, "invalid_request", "text must have 1..4096 characters");
            return e->status;
        }
        d->reply = text;
    } else if (strcmp(action, "approve") != 0) {
        op_fail(e, 404, "not_found", "unknown draft action (approve, edit, discard)");
        return e->status;
    }
    if (!strcmp(action, "approve") || send) {
        if (!d->reply || !*d->reply) {
            op_fail(e, 409, "conflict", "the draft has no reply text; edit it first");
            return e->status;
        }
        int64_t last = 0;
        int rc = ws_store_wa_last_incoming(st, d->phone_number_id, d->contact_phone, d->contact_user_id,
                                           &last, &err);
        if (rc)
            return store_fail(e, rc, &err);
        if (last + DAY_MS < ws_store_now_ms()) {
            op_fail(e, 409, "outside_window",
                    "the contact's last message is over 24 hours old: WhatsApp allows only template "
                    "messages outside the customer-service window");
            return e->status;
        }
        d->status = "queued";
        d->attempts = 0;
        d->next_attempt_at = 0;
        d->error_code = 0;
        d->error_message = NULL;
    }
    int rc = ws_store_wa_draft_update(st, d, orig, &err);
    return rc ? store_fail(e, rc, &err) : 0;
}

int ws_op_wa_draft(ws_server *s, ws_req *r, const char *draft_id, const char *action, const char *text,
                   bool send, ws_buf *out, ws_op_error *e)
{
    ws_arena *a = ws_arena_new(4096);
    ws_store *st = ws_srv_store_get(s);
    ws_error err = {0};
    ws_wa_draft d;
    int rc = ws_store_wa_draft_get(st, a, draft_id, &d, &err);
    if (rc == 0 && strcmp(d.user_id, r->p.user_id) != 0) {
        rc = WS_ENOENT;
        snprintf(err.msg, sizeof err.msg, "no such draft");
    }
    if (rc) {
        store_fail(e, rc, &err);
    } else if (strcmp(action, "get") != 0) {
        rc = draft_act(st, &d, action, text, send, e) ? -1 : 0;
        if (rc == 0)
            rc = ws_store_wa_draft_get(st, a, draft_id, &d, &err) ? store_fail(e, WS_EIO, &err), -1 : 0;
    }
    ws_srv_store_put(s, st);
    if (rc == 0) {
        put_draft(out, &d);
        if (!strcmp(d.status, "queued"))
            ws_wa_srv_wake(s);
    }
    ws_arena_free(a);
    return rc ? e->status : 0;
}

/* ---- REST handlers -------------------------------------------------------------------- */

static int result(ws_http_ctx *ctx, int st, const ws_op_error *e)
{
    if (st)
        ws_http_error(ctx, e->status, e->code, "%s", e->msg);
    return 0;
}

/* The JSON body as a document freed with the arena; NULL after writing a 400. */
static const ws_json *body_json(ws_http_ctx *ctx)
{
    ws_json_doc *doc = NULL;
    ws_error err = {0};
    if (!ctx->body_len || ws_json_parse(ctx->body, ctx->body_len, &doc, &err) != 0 ||
        ws_json_root(doc)->type != WS_JSON_OBJECT) {
        ws_json_doc_free(doc);
        ws_http_error(ctx, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    ws_arena_on_free(ctx->arena, (void (*)(void *))ws_json_doc_free, doc);
    return ws_json_root(doc);
}

static const char *param(ws_http_ctx *ctx, int i)
{
    return ws_arena_strndup(ctx->arena, ctx->params[i].p, ctx->params[i].len);
}

int ws_wa_h_links(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    int b = ws_srv_begin(ctx, &r);
    if (b)
        return b == 1 ? 0 : b;
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_op_error e = {0};
    if (ws_http_slice_ieq(ctx->req->method, "GET"))
        return result(ctx, ws_op_wa_links(s, r, &ctx->out, &e), &e);
    const ws_json *j = body_json(ctx);
    if (!j)
        return 0;
    ws_wa_link_req lr = {ws_json_get_str(j, "phone_number_id"), ws_json_get_str(j, "access_token"),
                         ws_json_get_str(j, "mode")};
    int st = ws_op_wa_link(s, r, &lr, &ctx->out, &e);
    if (!st)
        ctx->status = 201;
    return result(ctx, st, &e);
}

int ws_wa_h_link(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    int b = ws_srv_begin(ctx, &r);
    if (b)
        return b == 1 ? 0 : b;
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_op_error e = {0};
    const char *number = param(ctx, 0);
    if (ws_http_slice_ieq(ctx->req->method, "DELETE"))
        return result(ctx, ws_op_wa_unlink(s, r, number, &ctx->out, &e), &e);
    const ws_json *j = body_json(ctx);
    if (!j)
        return 0;
    return result(
        ctx,
        ws_op_wa_mode(s, r, number, ws_json_get_str(j, "contact"), ws_json_get_str(j, "mode"), &ctx->out, &e),
        &e);
}

int ws_wa_h_drafts(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    int b = ws_srv_begin(ctx, &r);
    if (b)
        return b == 1 ? 0 : b;
    const char *ls = ws_http_query_param(ctx, "limit");
    long limit = 50;
    if (ls) {
        char *end;
        limit = strtol(ls, &end, 10);
        if (end == ls || *end || limit < 1 || limit > WS_STORE_PAGE_MAX) {
            ws_http_error(ctx, 400, "invalid_request", "limit must be an integer in 1..%d",
                          WS_STORE_PAGE_MAX);
            return 0;
        }
    }
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_op_error e = {0};
    return result(ctx, ws_op_wa_drafts(s, r, ws_http_query_param(ctx, "status"), (int)limit, &ctx->out, &e),
                  &e);
}

int ws_wa_h_draft(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    int b = ws_srv_begin(ctx, &r);
    if (b)
        return b == 1 ? 0 : b;
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_op_error e = {0};
    const char *id = param(ctx, 0);
    if (ws_http_slice_ieq(ctx->req->method, "GET"))
        return result(ctx, ws_op_wa_draft(s, r, id, "get", NULL, false, &ctx->out, &e), &e);
    const char *action = param(ctx, 1);
    const char *text = NULL;
    bool send = false;
    if (!strcmp(action, "edit")) {
        const ws_json *j = body_json(ctx);
        if (!j)
            return 0;
        text = ws_json_get_str(j, "text");
        ws_json_get_bool(j, "send", &send);
    }
    return result(ctx, ws_op_wa_draft(s, r, id, action, text, send, &ctx->out, &e), &e);
}
