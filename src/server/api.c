/* The REST API (/v1/...), /healthz, /readyz, /metrics: the route table, the request
 * prologue (Bearer key authentication, per-key and per-user rate limits) and the
 * operations that REST and MCP share (reply with the 5-minute reply cache, training
 * uploads, job status, conversations, style profile). */
#include "auth/jwt.h"
#include "server/server_int.h"
#include "server/wa_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "chat/chat.h"
#include "core/clock.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/deadline.h"
#include "core/mem.h"
#include "core/trace.h"

#define MAX_PARTICIPANTS 256

static void op_fail(ws_op_error *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void op_fail(ws_op_error *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

static void put_kv_str(ws_buf *b, const char *k, const char *v, bool comma)
{
    if (comma)
        ws_buf_putc(b, ',');
    ws_json_put_cstr(b, k);
    ws_buf_putc(b, ':');
    ws_json_put_cstr(b, v);
}

static void put_kv_num(ws_buf *b, const char *k, double v, bool comma)
{
    if (comma)
        ws_buf_putc(b, ',');
    ws_json_put_cstr(b, k);
    ws_buf_putc(b, ':');
    ws_json_put_num(b, v);
}

/* ---- prologue: authentication and rate limits ----------------------------------------- */

static int unauthorized(ws_http_ctx *ctx, const char *msg)
{
    ws_server *s = ctx->app;
    ws_metric_add(s->m_auth_failures, 1);
    ws_http_error(ctx, 401, "unauthorized", "%s", msg);
    ws_http_header_add(ctx, "WWW-Authenticate", "Bearer realm=\"whatstyle\"");
    return 1;
}

static int rate_check(ws_http_ctx *ctx, ws_req *r)
{
    ws_server *s = ctx->app;
    char key[128];
    ws_rate_result rr;
    ws_error err = {0};
    struct {
        const char *kind, *id;
        int limit;
    } checks[2] = {
        {"key", r->p.key_id, r->p.rate_limit > 0 ? r->p.rate_limit : s->cfg.key_rate_limit},
        {"user", r->p.user_id, s->cfg.user_rate_limit},
    };
    for (int i = 0; i < 2; i++) {
        size_t kl = strlen(checks[i].kind), il = strlen(checks[i].id);
        if (3 + kl + 1 + il + 1 > sizeof key)
            continue;
        memcpy(key, "rl:", 3);
        memcpy(key + 3, checks[i].kind, kl);
        key[3 + kl] = ':';
        memcpy(key + 4 + kl, checks[i].id, il + 1);
        if (ws_cache_rate_check(s->cache, key, checks[i].limit, 60, &rr, &err) != 0)
            continue; /* the cache is down: fail open rather than refuse every request */
        if (!rr.allowed) {
            ws_metric_add(s->m_rate_limited, 1);
            ws_http_error(ctx, 429, "rate_limited", "rate limit of %d requests per minute per %s exceeded",
                          checks[i].limit, checks[i].kind);
            ws_http_header_add(ctx, "Retry-After", "%d", rr.retry_after_s > 0 ? rr.retry_after_s : 1);
            ws_http_header_add(ctx, "X-RateLimit-Limit", "%lld", (long long)rr.limit);
            ws_http_header_add(ctx, "X-RateLimit-Remaining", "0");
            return 1;
        }
    }
    return 0;
}

/* The request's own time budget from X-Request-Timeout-Ms (milliseconds from its arrival,
 * capped at WS_REQUEST_TIMEOUT_MAX_MS): r->deadline, 0 without the header. 1 when the value is
 * malformed (400 written). */
static int request_deadline(ws_http_ctx *ctx, ws_req *r)
{
    const ws_http_slice *h = ws_http_find_header(ctx->req, "X-Request-Timeout-Ms");
    if (!h)
        return 0;
    long long ms = 0;
    size_t i = 0;
    for (; i < h->len && i < 10 && h->p[i] >= '0' && h->p[i] <= '9'; i++)
        ms = ms * 10 + (h->p[i] - '0');
    if (i == 0 || i != h->len || ms < 1) {
        ws_http_error(ctx, 400, "invalid_timeout",
                      "X-Request-Timeout-Ms must be a positive number of milliseconds");
        return 1;
    }
    r->deadline = r->t0 + (double)(ms < WS_REQUEST_TIMEOUT_MAX_MS ? ms : WS_REQUEST_TIMEOUT_MAX_MS) / 1000.0;
    return 0;
}

int ws_srv_begin(ws_http_ctx *ctx, ws_req **out)
{
    ws_server *s = ctx->app;
    ws_req *r = ctx->scratch;
    if (!r) {
        r = ws_arena_calloc(ctx->arena, sizeof *r);
        r->t0 = ctx->start_s;
        ctx->scratch = r;
        *out = r;
        if (request_deadline(ctx, r))
            return 1;
    }
    *out = r;
    if (r->phase == 0) {
        const ws_http_slice *h = ws_http_find_header(ctx->req, "Authorization");
        const char *tok;
        size_t tl;
        char id[WS_KEY_ID_LEN + 1];
        if (!h) {
            int sr = ws_srv_session_begin(ctx, r); /* the dashboard's cookie */
            if (sr == 0)
                goto limits;
            if (sr != 2)
                return sr;
            return unauthorized(ctx, "missing Authorization: Bearer <API key>");
        }
        if (ws_auth_bearer_token(h->p, h->len, &tok, &tl) != 0 || ws_auth_key_parse(tok, tl, id) != 0)
            return unauthorized(ctx, "invalid API key");
        char hash[WS_KEY_HASH_HEX + 1];
        ws_auth_key_hash(tok, tl, hash);
        auth_entry e;
        if (ws_srv_auth_lookup(s, hash, &e)) {
            ws_metric_add(s->m_auth_cache_hits, 1);
        } else {
            if (ctx->on_loop)
                return WS_EAGAIN;
            memset(&e, 0, sizeof e);
            memcpy(e.hash, hash, sizeof e.hash);
            ws_error err = {0};
            ws_store *st = ws_srv_store_get(s);
            int rc = ws_auth_authenticate(st, tok, tl, &e.p, &err);
            if (rc == 0) {
                ws_user u;
                if (ws_store_user_get(st, ctx->arena, e.p.user_id, &u, &err) == 0 && u.model_version)
                    snprintf(e.model_version, sizeof e.model_version, "%s", u.model_version);
            }
            ws_srv_store_put(s, st);
            if (rc == WS_EPERM)
                return unauthorized(ctx, "invalid API key");
            if (rc != 0) {
                ws_http_error(ctx, 503, "unavailable", "the store is unavailable");
                return 1;
            }
            ws_srv_auth_remember(s, &e);
        }
        r->p = e.p;
        memcpy(r->model_version, e.model_version, sizeof r->model_version);
        /* the request log line's user.id */
        ctx->user_id = ws_arena_strndup(ctx->arena, r->p.user_id, strlen(r->p.user_id));
        r->phase = 1;
    }
limits:
    if (r->phase == 1) {
        if (r->p.role != WS_ROLE_SYSTEM) {
            if (s->cache_blocking && ctx->on_loop)
                return WS_EAGAIN;
            if (rate_check(ctx, r))
                return 1;
        }
        r->phase = 2;
    }
    return 0;
}

/* ---- reply ----------------------------------------------------------------------------- */

/* Appends the normalised form (trimmed, inner whitespace runs as one space, ASCII lower
 * case) of s to the digest. */
static void digest_normalised(EVP_MD_CTX *md, const char *s)
{
    char buf[256];
    size_t n = 0;
    bool space = false, any = false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isspace(*p)) {
            space = any;
            continue;
        }
        if (space) {
            buf[n++] = ' ';
            space = false;
        }
        buf[n++] = (char)tolower(*p);
        any = true;
        if (n >= sizeof buf - 2) {
            EVP_DigestUpdate(md, buf, n);
            n = 0;
        }
    }
    buf[n++] = '\0';
    EVP_DigestUpdate(md, buf, n);
}

/* SHA-256 fetched once: an implicit fetch on every digest costs a lookup under a lock. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
/* One digest context per thread, reused (allocating one per request showed in profiles);
 * freed when the thread exits. */
static pthread_key_t md_ctx_key;
static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    pthread_key_create(&md_ctx_key, (void (*)(void *))EVP_MD_CTX_free);
}

static void reply_cache_key(const ws_req *r, const char *message, const ws_ai_turn *context, size_t n_context,
                            char *out, size_t out_size)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    pthread_once(&sha256_once, fetch_sha256);
    EVP_MD_CTX *md = pthread_getspecific(md_ctx_key);
    if (!md) {
        md = EVP_MD_CTX_new();
        pthread_setspecific(md_ctx_key, md);
    }
    EVP_DigestInit_ex(md, sha256_md ? sha256_md : EVP_sha256(), NULL);
    digest_normalised(md, message);
    for (size_t i = 0; i < n_context; i++) {
        digest_normalised(md, context[i].author ? context[i].author : "");
        digest_normalised(md, context[i].text);
    }
    EVP_DigestFinal_ex(md, d, &dl);
    /* "reply:<user>:<model version>:<hex digest>", cut to out_size like snprintf */
    size_t n = 0;
    const char *parts[3] = {r->p.user_id, r->model_version, NULL};
    memcpy(out, "reply:", 6);
    n = 6;
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(parts[k]);
        if (n + l + 1 >= out_size)
            l = out_size - n - 2;
        memcpy(out + n, parts[k], l);
        n += l;
        out[n++] = ':';
    }
    size_t fit = out_size - 1 > n ? (out_size - 1 - n) / 2 : 0; /* whole bytes that fit */
    ws_hex_encode(d, fit < dl ? fit : dl, out + n);
}

/* 504 when the request's own time budget is spent before its AI call. */
static bool budget_gone(const ws_req *r, ws_op_error *e)
{
    if (!(r->deadline > 0 && ws_now_s() >= r->deadline))
        return false;
    op_fail(e, 504, "deadline_exceeded",
            "the request's time budget (X-Request-Timeout-Ms) ran out before the AI call");
    return true;
}

static void reply_json(ws_buf *out, const char *reply, size_t reply_len, double confidence, bool fallback,
                       bool cached, const char *model_version, double ms)
{
    ws_buf_puts(out, "{\"reply\":");
    ws_json_put_str(out, reply, reply_len);
    put_kv_num(out, "confidence", confidence, true);
    ws_buf_puts(out, fallback ? ",\"fallback\":true" : ",\"fallback\":false");
    ws_buf_puts(out, cached ? ",\"cached\":true" : ",\"cached\":false");
    put_kv_str(out, "model_version", model_version, true);
    put_kv_num(out, "processing_time_ms", (double)(int64_t)(ms * 1000) / 1000, true);
    ws_buf_putc(out, '}');
}

int ws_op_reply(ws_server *s, ws_req *r, bool on_loop, const char *message, const ws_ai_turn *context,
                size_t n_context, ws_buf *out, ws_op_error *e)
{
    return ws_op_reply_stream(s, r, on_loop, message, context, n_context, NULL, NULL, out, e);
}

/* The AI's reply: streamed to on_piece when it is set and the AI streams, else whole. */
static int ai_reply(ws_server *s, ws_req *r, const char *message, const ws_ai_turn *context, size_t n_context,
                    ws_ai_piece_fn on_piece, void *arg, ws_ai_reply *ar, ws_error *err)
{
    if (!on_piece || !s->ai->ops->generate_stream)
        return s->ai->ops->generate(s->ai, r->p.user_id, message, context, n_context, ar, err);
    return s->ai->ops->generate_stream(s->ai, r->p.user_id, message, context, n_context, NULL, on_piece, arg,
                                       ar, err);
}

int ws_op_reply_stream(ws_server *s, ws_req *r, bool on_loop, const char *message, const ws_ai_turn *context,
                       size_t n_context, ws_ai_piece_fn on_piece, void *arg, ws_buf *out, ws_op_error *e)
{
    if (on_piece && on_loop)
        return WS_EAGAIN; /* a stream is written from the pool */
    if (!r->model_version[0]) {
        op_fail(
            e, 409, "no_model",
            "no trained model yet: upload an export to POST /v1/exports and wait for the job to complete");
        return 1;
    }
    char key[WS_STORE_ID_MAX + WS_MODEL_VERSION_MAX + 2 * EVP_MAX_MD_SIZE + 16];
    reply_cache_key(r, message, context, n_context, key, sizeof key);
    double t0 = r->t0 ? r->t0 : ws_now_s();
    ws_conversation conv = {.user_id = r->p.user_id, .message = message, .model_version = r->model_version};
    if (!r->miss_counted) {
        if (on_loop && s->cache_blocking)
            return WS_EAGAIN;
        ws_buf val = WS_BUF_INIT;
        ws_span *cs = ws_span_begin_child("cache get", WS_SPAN_CLIENT);
        int crc = ws_cache_get(s->cache, key, &val, NULL);
        ws_span_attr_str(cs, "cache.backend", ws_cache_backend(s->cache));
        ws_span_attr_str(cs, "cache.hit", crc == 0 ? "true" : "false");
        ws_span_end(cs);
        if (crc == 0) {
            /* "v1\n<confidence>\n<fallback>\n<reply text>" */
            char *p = val.data, *nl1, *nl2, *nl3;
            if (val.len > 3 && !strncmp(p, "v1\n", 3) && (nl1 = strchr(p + 3, '\n')) &&
                (nl2 = strchr(nl1 + 1, '\n'))) {
                nl3 = nl2 + 1;
                double conf = strtod(p + 3, NULL);
                bool fb = nl1[1] == '1';
                size_t rlen = val.len - (size_t)(nl3 - p);
                double ms = (ws_now_s() - t0) * 1000;
                conv.response = nl3;
                conv.confidence = conf;
                conv.processing_ms = (int)ms;
                /* the row first: with the writer's queue full the loop hands the request
                 * to the pool (which waits for room) before anything is answered */
                if (ws_srv_record_reply(s, &conv, true, !on_loop) == WS_EAGAIN) {
                    ws_buf_free(&val);
                    return WS_EAGAIN;
                }
                if (on_piece && on_piece(arg, nl3, rlen)) { /* a cached reply is one piece */
                    ws_buf_free(&val);
                    op_fail(e, 499, "cancelled", "the client went away");
                    return 1;
                }
                reply_json(out, nl3, rlen, conf, fb, true, r->model_version, ms);
                ws_metric_add(s->m_cache_hits, 1);
                ws_buf_free(&val);
                return 0;
            }
        }
        ws_buf_free(&val);
        ws_metric_add(s->m_cache_misses, 1);
        r->miss_counted = true; /* a pool run goes straight to the AI */
    }
    if (on_loop)
        return WS_EAGAIN;
    if (!s->ai) {
        op_fail(e, 503, "ai_unavailable", "no AI engine is configured in this server");
        return 1;
    }
    if (budget_gone(r, e))
        return 1;
    ws_ai_reply ar = {0};
    ws_error err = {0};
    ws_metric_add(s->m_ai_calls, 1);
    double a0 = ws_now_s(), prev = ws_deadline_set(r->deadline); /* the AI call ends by then */
    ws_span *as = ws_span_begin_child("ai generate", WS_SPAN_CLIENT);
    ws_span_attr_int(as, "ai.context_turns", (int64_t)n_context);
    int rc = ai_reply(s, r, message, context, n_context, on_piece, arg, &ar, &err);
    if (rc == WS_EAGAIN && on_piece) { /* the stream's client went away: the engine stopped */
        ws_span_end(as);
        op_fail(e, 499, "cancelled", "the client went away");
        return 1;
    }
    if (rc != 0 && rc != WS_ENOENT)
        ws_span_error(as, "ai call failed");
    ws_span_end(as);
    ws_deadline_set(prev);
    ws_metric_observe(s->m_ai_latency, ws_now_s() - a0);
    if (rc == WS_ENOENT) {
        op_fail(e, 409, "no_model", "no trained model yet");
        return 1;
    }
    if (rc == WS_ETIMEDOUT) {
        ws_metric_add(s->m_ai_errors, 1);
        op_fail(e, 504, "deadline_exceeded", "%s", err.msg);
        return 1;
    }
    if (rc == WS_EIO) { /* the AI service did not answer in time (Retry-After: op_result) */
        ws_metric_add(s->m_ai_errors, 1);
        op_fail(e, 503, "ai_unavailable", "%s", err.msg[0] ? err.msg : "the AI service is unavailable");
        return 1;
    }
    bool whole = rc == 0 && ar.reply && on_piece && !s->ai->ops->generate_stream; /* one piece */
    if (whole && on_piece(arg, ar.reply, strlen(ar.reply))) {
        ws_ai_reply_clear(&ar);
        op_fail(e, 499, "cancelled", "the client went away");
        return 1;
    }
    if (rc != 0 || !ar.reply) {
        ws_metric_add(s->m_ai_errors, 1);
        op_fail(e, 502, "ai_error", "the AI failed: %s", err.msg[0] ? err.msg : ws_strerror(rc));
        ws_ai_reply_clear(&ar);
        return 1;
    }
    const char *mv = ar.model_version ? ar.model_version : r->model_version;
    ws_buf val = WS_BUF_INIT;
    ws_buf_printf(&val, "v1\n%.17g\n%d\n", ar.confidence, ar.fallback ? 1 : 0);
    ws_buf_puts(&val, ar.reply);
    ws_cache_set(s->cache, key, val.data, val.len, WS_CACHE_REPLY_TTL_MS, NULL);
    ws_buf_free(&val);
    double ms = (ws_now_s() - t0) * 1000;
    reply_json(out, ar.reply, strlen(ar.reply), ar.confidence, ar.fallback, false, mv, ms);
    conv.response = ar.reply;
    conv.confidence = ar.confidence;
    conv.processing_ms = (int)ms;
    conv.model_version = mv;
    ws_srv_record_reply(s, &conv, false, true); /* on a pool thread: may wait, never refuses */
    ws_ai_reply_clear(&ar);
    return 0;
}

/* ---- training upload ------------------------------------------------------------------- */

static bool is_zip(const char *data, size_t len)
{
    return len >= 4 && !memcmp(data, "PK\x03\x04", 4);
}

int ws_op_train(ws_server *s, ws_req *r, const char *data, size_t len, const char *persona, double budget_s,
                ws_buf *out, ws_op_error *e)
{
    int ret = 1;
    ws_error err = {0};
    ws_chat_reader *rd = NULL;
    ws_arena *a = ws_arena_new(4096);
    char *path = NULL;
    ws_store *st = NULL;
    if (!persona || !*persona) {
        op_fail(e, 400, "invalid_request", "the persona to learn is required (?persona=NAME)");
        goto out;
    }
    if (!data || len == 0) {
        op_fail(e, 400, "not_an_export", "the body is empty: send the WhatsApp export (.txt or .zip)");
        goto out;
    }
    if (len > s->cfg.max_export_bytes) {
        op_fail(e, 413, "payload_too_large", "the export is over the limit of %zu bytes",
                s->cfg.max_export_bytes);
        goto out;
    }
    /* validate: a WhatsApp export that has the persona in it */
    int rc = ws_chat_open_memory(data, len, NULL, &rd, &err);
    const char **names = ws_arena_alloc(a, MAX_PARTICIPANTS * sizeof *names);
    size_t n_names = 0;
    uint64_t persona_msgs = 0, total = 0;
    ws_message m;
    while (rc == 0 && (rc = ws_chat_next(rd, &m, &err)) == 1) {
        rc = 0;
        total++;
        if (!m.author)
            continue;
        if (!strcmp(m.author, persona))
            persona_msgs++;
        bool seen = false;
        for (size_t i = 0; i < n_names && !seen; i++)
            seen = !strcmp(names[i], m.author);
        if (!seen && n_names < MAX_PARTICIPANTS)
            names[n_names++] = ws_arena_strndup(a, m.author, m.author_len);
    }
    if (rc < 0) {
        if (rc == WS_ETOOBIG)
            op_fail(e, 413, "payload_too_large", "%s", err.msg);
        else
            op_fail(e, 400, "not_an_export", "not a WhatsApp chat export: %s",
                    err.msg[0] ? err.msg : ws_strerror(rc));
        goto out;
    }
    if (total == 0 || n_names == 0) {
        op_fail(e, 400, "not_an_export", "not a WhatsApp chat export: no messages found");
        goto out;
    }
    if (persona_msgs == 0) {
        ws_buf list = WS_BUF_INIT;
        for (size_t i = 0; i < n_names; i++)
            ws_buf_printf(&list, "%s%s", i ? ", " : "", names[i]);
        op_fail(e, 422, "unknown_persona", "'%s' is not a participant of this chat; participants: %s",
                persona, list.data);
        ws_buf_free(&list);
        goto out;
    }
    /* keep the raw export for the worker, encrypted in the blobs under the user's folder */
    char id[WS_STORE_ID_MAX + 1];
    ws_store_new_id("exp_", id, sizeof id);
    size_t plen = strlen(r->p.user_id) + strlen(id) + 32;
    path = ws_xmalloc(plen);
    snprintf(path, plen, "users/%s/exports/%s.%s", r->p.user_id, id, is_zip(data, len) ? "zip" : "txt");
    if (ws_blobs_put(s->blobs, path, data, len, &err) != 0) {
        /* the detail (the object store's address, its error) goes to the log, not the caller */
        WS_LOG(WS_LOG_ERROR, "export.store_failed", err.msg, WS_LF_S("user.id", r->p.user_id));
        op_fail(e, 503, "unavailable", "cannot store the export right now; retry shortly");
        goto out;
    }
    ws_buf params = WS_BUF_INIT;
    ws_buf_putc(&params, '{');
    put_kv_str(&params, "persona", persona, false);
    if (budget_s > 0)
        put_kv_num(&params, "budget_s", budget_s, true);
    put_kv_num(&params, "export_bytes", (double)len, true);
    put_kv_num(&params, "export_messages", (double)total, true);
    char tp[WS_TRACEPARENT_LEN + 1]; /* the job continues the upload's trace on the worker */
    if (ws_trace_current_traceparent(tp) == 0)
        put_kv_str(&params, "traceparent", tp, true);
    ws_buf_putc(&params, '}');
    st = ws_srv_store_get(s);
    ws_job job;
    rc = ws_store_job_create(st, a, r->p.user_id, path, params.data, &job, &err);
    ws_buf_free(&params);
    if (rc != 0) {
        op_fail(e, 503, "unavailable", "cannot queue the training job: %s", err.msg);
        ws_blobs_delete(s->blobs, path, NULL);
        goto out;
    }
    ws_audit_entry audit = {.actor = r->p.key_id,
                            .user_id = r->p.user_id,
                            .action = "upload",
                            .resource = "training export",
                            .detail = job.id};
    ws_store_audit_append(st, &audit, NULL);
    ws_metric_add(s->m_jobs_queued, 1);
    ws_srv_wake_trainer(s);
    ws_buf_puts(out, "{");
    put_kv_str(out, "job_id", job.id, false);
    put_kv_str(out, "status", "queued", true);
    put_kv_str(out, "persona", persona, true);
    ws_buf_puts(out, "}");
    ret = 0;
out:
    if (st)
        ws_srv_store_put(s, st);
    free(path);
    ws_chat_close(rd);
    ws_arena_free(a);
    return ret;
}

/* ---- jobs, conversations, profile ------------------------------------------------------ */

static void put_time(ws_buf *b, const char *k, int64_t ms)
{
    ws_buf_printf(b, ",\"%s\":", k);
    if (ms)
        ws_json_put_num(b, (double)ms);
    else
        ws_buf_puts(b, "null");
}

int ws_op_job(ws_server *s, ws_req *r, const char *job_id, ws_buf *out, ws_op_error *e)
{
    ws_arena *a = ws_arena_new(4096);
    ws_store *st = ws_srv_store_get(s);
    ws_job j;
    ws_error err = {0};
    int rc = ws_store_job_get(st, a, job_id, &j, &err);
    ws_srv_store_put(s, st);
    int ret = 1;
    if (rc == WS_ENOENT || rc == WS_EINVAL || rc == WS_ETOOBIG ||
        (rc == 0 && !ws_auth_can_access(&r->p, j.user_id))) {
        /* another user's job looks exactly like a missing one */
        op_fail(e, 404, "not_found", "no such training job");
    } else if (rc != 0) {
        op_fail(e, 503, "unavailable", "the store is unavailable");
    } else {
        ws_buf_putc(out, '{');
        put_kv_str(out, "job_id", j.id, false);
        put_kv_str(out, "status", ws_job_status_name(j.status), true);
        put_kv_num(out, "progress", j.progress, true);
        put_kv_num(out, "samples_processed", (double)j.samples_processed, true);
        put_time(out, "created_at", j.created_at);
        put_time(out, "started_at", j.started_at);
        put_time(out, "completed_at", j.completed_at);
        ws_buf_puts(out, ",\"params\":");
        ws_buf_puts(out, j.params_json ? j.params_json : "null");
        ws_buf_puts(out, ",\"metrics\":");
        ws_buf_puts(out, j.metrics_json ? j.metrics_json : "null");
        put_kv_str(out, "error", j.error_message, true);
        ws_buf_putc(out, '}');
        ret = 0;
    }
    ws_arena_free(a);
    return ret;
}

int ws_op_conversations(ws_server *s, ws_req *r, int limit, const char *cursor, ws_buf *out, ws_op_error *e)
{
    ws_srv_writer_flush(s, 2000); /* the replies just given are listed */
    ws_arena *a = ws_arena_new(16384);
    ws_store *st = ws_srv_store_get(s);
    ws_conversation *items = NULL;
    size_t n = 0;
    const char *next = NULL;
    ws_error err = {0};
    int rc = ws_store_conv_list(st, a, r->p.user_id, limit, cursor, &items, &n, &next, &err);
    ws_srv_store_put(s, st);
    int ret = 1;
    if (rc == WS_EINVAL || rc == WS_ETOOBIG) {
        op_fail(e, 400, "invalid_request", "invalid cursor");
    } else if (rc != 0) {
        op_fail(e, 503, "unavailable", "the store is unavailable");
    } else {
        ws_buf_puts(out, "{\"items\":[");
        for (size_t i = 0; i < n; i++) {
            ws_buf_puts(out, i ? ",{" : "{");
            put_kv_num(out, "id", (double)items[i].id, false);
            put_kv_str(out, "message", items[i].message, true);
            put_kv_str(out, "reply", items[i].response, true);
            put_kv_num(out, "confidence", items[i].confidence, true);
            put_kv_num(out, "processing_time_ms", items[i].processing_ms, true);
            put_kv_str(out, "model_version", items[i].model_version, true);
            put_kv_num(out, "created_at", (double)items[i].created_at, true);
            ws_buf_putc(out, '}');
        }
        ws_buf_puts(out, "],\"next_cursor\":");
        ws_json_put_cstr(out, next);
        ws_buf_putc(out, '}');
        ret = 0;
    }
    ws_arena_free(a);
    return ret;
}

int ws_op_style_profile(ws_server *s, ws_req *r, ws_buf *out, ws_op_error *e)
{
    if (!r->model_version[0]) {
        op_fail(e, 409, "no_model", "no trained model yet");
        return 1;
    }
    if (!s->ai) {
        op_fail(e, 503, "ai_unavailable", "no AI engine is configured in this server");
        return 1;
    }
    if (budget_gone(r, e))
        return 1;
    char *json = NULL;
    ws_error err = {0};
    double prev = ws_deadline_set(r->deadline);
    int rc = s->ai->ops->style_profile(s->ai, r->p.user_id, &json, &err);
    ws_deadline_set(prev);
    if (rc == WS_ENOENT) {
        op_fail(e, 409, "no_model", "no trained model yet");
        return 1;
    }
    if (rc == WS_ETIMEDOUT) {
        free(json);
        op_fail(e, 504, "deadline_exceeded", "%s", err.msg);
        return 1;
    }
    if (rc == WS_EIO) {
        free(json);
        op_fail(e, 503, "ai_unavailable", "%s", err.msg);
        return 1;
    }
    if (rc != 0 || !json) {
        free(json);
        op_fail(e, 502, "ai_error", "the AI failed: %s", err.msg);
        return 1;
    }
    ws_buf_puts(out, "{\"model_version\":");
    ws_json_put_cstr(out, r->model_version);
    ws_buf_puts(out, ",\"profile\":");
    ws_buf_puts(out, json);
    ws_buf_putc(out, '}');
    free(json);
    return 0;
}

/* ---- REST handlers --------------------------------------------------------------------- */

static int op_result(ws_http_ctx *ctx, int rc, const ws_op_error *e, int ok_status)
{
    if (rc == WS_EAGAIN)
        return WS_EAGAIN;
    if (rc != 0)
        ws_http_error(ctx, e->status, e->code, "%s", e->msg);
    else
        ctx->status = ok_status;
    if (rc != 0 && e->status == 503)
        ws_http_header_add(ctx, "Retry-After", "1");
    return 0;
}

/* The prologue; returns 0 to go on, or the handler's return value in *ret. */
#define BEGIN(ctx, r)                                                                                        \
    do {                                                                                                     \
        int b_ = ws_srv_begin((ctx), &(r));                                                                  \
        if (b_)                                                                                              \
            return b_ == 1 ? 0 : b_;                                                                         \
    } while (0)

static int h_healthz(ws_http_ctx *ctx)
{
    ws_buf_puts(&ctx->out, "{\"status\":\"ok\"}");
    return 0;
}

/* The gateway's public key for service-to-service tokens (`whatstyle ai --gateway-jwks`). */
static int h_jwks(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    if (!s->service_key) {
        ws_http_error(ctx, 404, "not_found", "no service key");
        return 0;
    }
    ws_jwt_jwks(s->service_key, &ctx->out);
    return 0;
}

static int h_readyz(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_error e1 = {0}, e2 = {0};
    ws_store *st = ws_srv_store_get(s);
    int rs = ws_store_ping(st, &e1);
    ws_srv_store_put(s, st);
    int rcache = ws_cache_ping(s->cache, &e2);
    bool draining = atomic_load(&s->stopping);
    bool ready = rs == 0 && rcache == 0 && !draining;
    ctx->status = ready ? 200 : 503;
    ws_buf_putc(&ctx->out, '{');
    put_kv_str(&ctx->out, "status", ready ? "ready" : draining ? "draining" : "not_ready", false);
    put_kv_str(&ctx->out, "store", rs == 0 ? "ok" : e1.msg, true);
    put_kv_str(&ctx->out, "store_backend", ws_store_backend(st), true);
    put_kv_str(&ctx->out, "cache", rcache == 0 ? "ok" : e2.msg, true);
    put_kv_str(&ctx->out, "cache_backend", ws_cache_backend(s->cache), true);
    put_kv_str(&ctx->out, "ai", s->ai ? "ok" : "absent", true);
    ws_buf_putc(&ctx->out, '}');
    return 0;
}

static int h_metrics(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ctx->content_type = "text/plain; version=0.0.4; charset=utf-8";
    ws_srv_metrics_refresh(s);
    ws_metrics_render(s->metrics, &ctx->out);
    return 0;
}

/* Parses {"message": str, "context": [{"author": str|null, "text": str}]}; on failure
 * writes the 400 and returns false. */
static bool parse_reply_body(ws_http_ctx *ctx, const ws_json *root, const char **message, ws_ai_turn **turns,
                             size_t *n_turns)
{
    if (!root || root->type != WS_JSON_OBJECT) {
        ws_http_error(ctx, 400, "invalid_request", "the body must be a JSON object");
        return false;
    }
    const ws_json *m = ws_json_get(root, "message");
    if (!m || m->type != WS_JSON_STRING || m->len == 0 || m->len > WS_STORE_TEXT_MAX ||
        strlen(m->str) != m->len) {
        ws_http_error(ctx, 400, "invalid_request",
                      "\"message\" must be a non-empty string (at most %d bytes)", WS_STORE_TEXT_MAX);
        return false;
    }
    *message = m->str;
    *turns = NULL;
    *n_turns = 0;
    const ws_json *c = ws_json_get(root, "context");
    if (!c || c->type == WS_JSON_NULL)
        return true;
    if (c->type != WS_JSON_ARRAY || c->len > WS_MAX_CONTEXT_TURNS) {
        ws_http_error(ctx, 400, "invalid_request", "\"context\" must be an array of at most %d turns",
                      WS_MAX_CONTEXT_TURNS);
        return false;
    }
    *turns = ws_arena_calloc(ctx->arena, (c->len ? c->len : 1) * sizeof **turns);
    for (size_t i = 0; i < c->len; i++) {
        const ws_json *t = ws_json_at(c, i);
        const ws_json *text = t && t->type == WS_JSON_OBJECT ? ws_json_get(t, "text") : NULL;
        const ws_json *author = t && t->type == WS_JSON_OBJECT ? ws_json_get(t, "author") : NULL;
        if (!text || text->type != WS_JSON_STRING || text->len > WS_STORE_TEXT_MAX ||
            (author && author->type != WS_JSON_STRING && author->type != WS_JSON_NULL)) {
            ws_http_error(ctx, 400, "invalid_request",
                          "context[%zu] must be {\"author\": string, \"text\": string}", i);
            return false;
        }
        (*turns)[i].text = text->str;
        (*turns)[i].author = author && author->type == WS_JSON_STRING ? author->str : NULL;
    }
    *n_turns = c->len;
    return true;
}

static int h_reply(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    ws_json_doc *doc = NULL;
    ws_error err = {0};
    if (ws_json_parse(ctx->body ? ctx->body : "", ctx->body_len, &doc, &err) != 0) {
        ws_http_error(ctx, 400, "invalid_json", "malformed JSON: %s", err.msg);
        return 0;
    }
    ws_arena_on_free(ctx->arena, (void (*)(void *))ws_json_doc_free, doc);
    const char *message;
    ws_ai_turn *turns;
    size_t n;
    if (!parse_reply_body(ctx, ws_json_root(doc), &message, &turns, &n))
        return 0;
    const ws_json *st = ws_json_get(ws_json_root(doc), "stream");
    const char *accept = ws_http_header_get(ctx, "Accept");
    if (st && st->type != WS_JSON_BOOL && st->type != WS_JSON_NULL) {
        ws_http_error(ctx, 400, "invalid_request", "\"stream\" must be a boolean");
        return 0;
    }
    if ((st && st->type == WS_JSON_BOOL && st->boolean) || (accept && strstr(accept, "text/event-stream")))
        return ws_srv_h_reply_sse(ctx, r, message, turns, n);
    ws_op_error e = {0};
    int rc = ws_op_reply(s, r, ctx->on_loop, message, turns, n, &ctx->out, &e);
    return op_result(ctx, rc, &e, 200);
}

static bool content_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && !strncasecmp(ct, want, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int h_exports(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    const char *ct = ws_http_header_get(ctx, "Content-Type");
    if (ct && !content_type_is(ct, "text/plain") && !content_type_is(ct, "application/zip") &&
        !content_type_is(ct, "application/x-zip-compressed") &&
        !content_type_is(ct, "application/octet-stream")) {
        ws_http_error(ctx, 415, "unsupported_media_type",
                      "send the export as text/plain (.txt) or application/zip (.zip)");
        return 0;
    }
    const char *persona = ws_http_query_param(ctx, "persona");
    const char *budget = ws_http_query_param(ctx, "budget");
    double b = 0;
    if (budget) {
        char *end;
        b = strtod(budget, &end);
        if (end == budget || *end || !(b > 0 && b <= 7 * 86400)) {
            ws_http_error(ctx, 400, "invalid_request", "budget must be a number of seconds in (0, 604800]");
            return 0;
        }
    }
    ws_op_error e = {0};
    int rc = ws_op_train(s, r, ctx->body, ctx->body_len, persona, b, &ctx->out, &e);
    return op_result(ctx, rc, &e, 202);
}

static int h_job(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    char *id = ws_arena_strndup(ctx->arena, ctx->params[0].p, ctx->params[0].len);
    ws_op_error e = {0};
    return op_result(ctx, ws_op_job(s, r, id, &ctx->out, &e), &e, 200);
}

static int h_conversations(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    const char *ls = ws_http_query_param(ctx, "limit");
    long limit = 20;
    if (ls) {
        char *end;
        limit = strtol(ls, &end, 10);
        if (end == ls || *end || limit < 1 || limit > WS_STORE_PAGE_MAX) {
            ws_http_error(ctx, 400, "invalid_request", "limit must be an integer in 1..%d",
                          WS_STORE_PAGE_MAX);
            return 0;
        }
    }
    const char *cursor = ws_http_query_param(ctx, "cursor");
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_op_error e = {0};
    return op_result(ctx, ws_op_conversations(s, r, (int)limit, cursor, &ctx->out, &e), &e, 200);
}

static int h_style_profile(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_op_error e = {0};
    return op_result(ctx, ws_op_style_profile(s, r, &ctx->out, &e), &e, 200);
}

static int h_me(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_store *st = ws_srv_store_get(s);
    ws_user u;
    int rc = ws_store_user_get(st, ctx->arena, r->p.user_id, &u, NULL);
    ws_srv_store_put(s, st);
    if (rc != 0) {
        ws_http_error(ctx, rc == WS_ENOENT ? 401 : 503, rc == WS_ENOENT ? "unauthorized" : "unavailable",
                      rc == WS_ENOENT ? "the user no longer exists" : "the store is unavailable");
        return 0;
    }
    ws_buf *o = &ctx->out;
    ws_buf_putc(o, '{');
    put_kv_str(o, "user_id", u.id, false);
    put_kv_str(o, "name", u.name, true);
    put_kv_str(o, "role", ws_role_name(r->p.role), true);
    put_kv_str(o, "key_id", r->p.key_id, true);
    put_kv_str(o, "tier", u.tier, true);
    put_kv_str(o, "model_version", u.model_version, true);
    put_kv_num(o, "rate_limit", r->p.rate_limit > 0 ? r->p.rate_limit : s->cfg.key_rate_limit, true);
    put_kv_num(o, "created_at", (double)u.created_at, true);
    ws_buf_putc(o, '}');
    return 0;
}

static int h_me_export(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    ws_store *st = ws_srv_store_get(s);
    ws_audit_entry audit = {
        .actor = r->p.key_id, .user_id = r->p.user_id, .action = "export", .resource = "/v1/me/export"};
    ws_store_audit_append(st, &audit, NULL);
    ws_error err = {0};
    int rc = ws_store_user_export(st, r->p.user_id, &ctx->out, &err);
    ws_srv_store_put(s, st);
    if (rc != 0) {
        ws_http_error(ctx, rc == WS_ENOENT ? 401 : 503, rc == WS_ENOENT ? "unauthorized" : "unavailable",
                      "%s", err.msg);
        return 0;
    }
    ws_http_header_add(ctx, "Content-Disposition", "attachment; filename=\"whatstyle-export.json\"");
    return 0;
}

/* Right to erasure: the uploaded exports, the store rows (one transaction), the models
 * (AI forget), the cached replies and the cached principals. */
static int h_me_delete(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    BEGIN(ctx, r);
    if (ctx->on_loop)
        return WS_EAGAIN;
    /* the user's blobs first: every upload (also one without a job row, after a crash between
     * blob and row) lives under users/<id>/. A failure here leaves the account whole, so the
     * user can ask again; deleting the rows first would leave blobs nobody can erase. */
    char folder[WS_STORE_ID_MAX + 16];
    snprintf(folder, sizeof folder, "users/%s/", r->p.user_id);
    size_t nb = 0;
    ws_error err = {0};
    if (ws_blobs_delete_prefix(s->blobs, folder, &nb, &err) != 0) {
        ws_http_error(ctx, 503, "unavailable", "%s", err.msg);
        return 0;
    }
    ws_store *st = ws_srv_store_get(s);
    ws_job *jobs = NULL;
    size_t nj = 0;
    int rc = ws_store_job_list(st, ctx->arena, r->p.user_id, WS_STORE_PAGE_MAX, &jobs, &nj, &err);
    if (rc == 0)
        rc = ws_store_user_delete(st, r->p.user_id, &err);
    ws_srv_store_put(s, st);
    if (rc != 0) {
        ws_http_error(ctx, rc == WS_ENOENT ? 401 : 503, rc == WS_ENOENT ? "unauthorized" : "unavailable",
                      "%s", err.msg);
        return 0;
    }
    ws_srv_auth_forget_user(s, r->p.user_id);
    /* again, for an upload that raced the erasure (its row is gone with the user's) */
    if (ws_blobs_delete_prefix(s->blobs, folder, &nb, &err) != 0)
        WS_LOG(WS_LOG_ERROR, "user.erase_blobs_failed", err.msg, WS_LF_S("user.id", r->p.user_id));
    /* plaintext files of older versions by path */
    for (size_t i = 0; i < nj; i++)
        if (jobs[i].data_path && jobs[i].data_path[0] == '/')
            unlink(jobs[i].data_path);
    char prefix[WS_STORE_ID_MAX + 16];
    snprintf(prefix, sizeof prefix, "reply:%s:", r->p.user_id);
    ws_cache_del_prefix(s->cache, prefix, NULL, NULL);
    if (s->ai)
        s->ai->ops->forget(s->ai, r->p.user_id, NULL);
    ctx->status = 204;
    return 0;
}

const ws_http_route ws_srv_routes[] = {
    {"GET", "/healthz", h_healthz, 0, 0},
    {"GET", "/.well-known/jwks.json", h_jwks, 0, 0},
    {"GET", "/readyz", h_readyz, WS_ROUTE_BLOCKING, 0},
    {"GET", "/metrics", h_metrics, WS_ROUTE_BLOCKING, 0}, /* refreshing reads the store */
    {"POST", "/v1/reply", h_reply, 0, 0},
    {"POST", "/v1/exports", h_exports, WS_ROUTE_BLOCKING, WS_SRV_EXPORT_CAP},
    {"GET", "/v1/training-jobs/*", h_job, 0, 0},
    {"GET", "/v1/conversations", h_conversations, 0, 0},
    {"GET", "/v1/style-profile", h_style_profile, 0, 0},
    {"GET", "/v1/me", h_me, 0, 0},
    {"GET", "/v1/me/export", h_me_export, 0, 0},
    {"DELETE", "/v1/me", h_me_delete, 0, 0},
    {"GET", "/v1/whatsapp/webhook", ws_wa_h_verify, 0, 0},
    {"POST", "/v1/whatsapp/webhook", ws_wa_h_webhook, 0, WS_WA_WEBHOOK_MAX_BODY},
    {"GET", "/v1/whatsapp/links", ws_wa_h_links, 0, 0},
    {"POST", "/v1/whatsapp/links", ws_wa_h_links, 0, 0},
    {"DELETE", "/v1/whatsapp/links/*", ws_wa_h_link, 0, 0},
    {"PUT", "/v1/whatsapp/links/*/mode", ws_wa_h_link, 0, 0},
    {"GET", "/v1/whatsapp/drafts", ws_wa_h_drafts, 0, 0},
    {"GET", "/v1/whatsapp/drafts/*", ws_wa_h_draft, 0, 0},
    {"POST", "/v1/whatsapp/drafts/*/*", ws_wa_h_draft, 0, 0},
    /* the dashboard (session.c, web_api.c, web_static.c) */
    {"POST", "/v1/session", ws_srv_h_session_create, WS_ROUTE_BLOCKING, 0},
    {"GET", "/v1/session", ws_srv_h_session_get, 0, 0},
    {"DELETE", "/v1/session", ws_srv_h_session_delete, 0, 0},
    {"POST", "/v1/signup", ws_srv_h_signup, WS_ROUTE_BLOCKING, 0},
    {"GET", "/v1/keys", ws_srv_h_keys_list, 0, 0},
    {"POST", "/v1/keys", ws_srv_h_keys_create, 0, 0},
    {"DELETE", "/v1/keys/*", ws_srv_h_keys_revoke, 0, 0},
    {"GET", "/v1/training-jobs", ws_srv_h_jobs_list, 0, 0},
    {"GET", "/v1/training-jobs/*/events", ws_srv_h_job_events, 0, 0},
    {"POST", "/v1/exports/inspect", ws_srv_h_exports_inspect, WS_ROUTE_BLOCKING, WS_SRV_EXPORT_CAP},
    {"GET", "/", ws_srv_h_static, 0, 0},
    {"GET", "/assets/*", ws_srv_h_static, 0, 0},
    {"GET", "/favicon.svg", ws_srv_h_static, 0, 0},
    {"POST", "/mcp", ws_mcp_handle, 0, WS_SRV_MCP_CAP},
    {"GET", "/mcp", ws_mcp_handle, 0, 0},
    {"DELETE", "/mcp", ws_mcp_handle, 0, 0},
};
const size_t ws_srv_n_routes = sizeof ws_srv_routes / sizeof ws_srv_routes[0];
