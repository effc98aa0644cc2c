/* Dashboard sessions: sign in with an API key (POST /v1/session) or sign up where the
 * operator allows it (POST /v1/signup); the session is an HttpOnly SameSite=Strict cookie
 * (Secure over TLS) holding a 15-minute EdDSA JWT (auth/jwt.h), renewed while in use, and
 * kept revocable in the cache ("sess:<user>:<sid>" -> the signing-in key's hash and the
 * CSRF token). Every state-changing cookie request must carry X-CSRF-Token; signing out
 * deletes every session of the user, on every instance sharing the cache. */
#include "server/server_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/jwt.h"
#include "core/base64.h"
#include "core/file.h"
#include "core/mem.h"

#define COOKIE "ws_session"
#define TOKEN_TTL_S (15 * 60)               /* the JWT's life; renewed when half is left */
#define SESSION_TTL_MS (12 * 3600 * 1000LL) /* the session's absolute life in the cache */
#define ISSUER "whatstyle"
#define AUDIENCE "dashboard"
#define SIGNIN_PER_MIN 20 /* sign-in attempts per client address */
#define SIGNUP_PER_HOUR 5 /* sign-ups per client address */
#define RAND_ID_BYTES 24

int ws_srv_session_init(ws_server *s, ws_error *err)
{
    size_t n = strlen(s->data_dir) + 32;
    char *path = ws_xmalloc(n);
    snprintf(path, n, "%s/session-ed25519.pem", s->data_dir);
    int rc = ws_jwt_key_load_or_create(path, &s->session_key, err);
    free(path);
    return rc;
}

/* ---- helpers ------------------------------------------------------------------------- */

static void random_id(char out[WS_BASE64URL_LEN(RAND_ID_BYTES) + 1])
{
    unsigned char b[RAND_ID_BYTES];
    if (RAND_bytes(b, sizeof b) != 1)
        abort(); /* no randomness: nothing secure can be issued */
    ws_base64url_encode(b, sizeof b, out);
}

/* The value of cookie name in the request, as an arena string, or NULL. */
static const char *cookie_get(ws_http_ctx *ctx, const char *name)
{
    const char *h = ws_http_header_get(ctx, "Cookie");
    size_t nl = strlen(name);
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && !strncmp(p, name, nl) && p[nl] == '=')
            return ws_arena_strndup(ctx->arena, p + nl + 1, len - nl - 1);
        p = end;
    }
    return NULL;
}

/* The client address without the port (rate-limit key). */
static void peer_ip(const ws_http_ctx *ctx, char *out, size_t cap)
{
    snprintf(out, cap, "%s", ctx->peer);
    char *colon = strrchr(out, ':');
    if (colon)
        *colon = '\0';
}

static bool rate_ok(ws_http_ctx *ctx, const char *kind, int limit, int window_s)
{
    ws_server *s = ctx->app;
    char ip[64], key[128];
    ws_rate_result rr;
    peer_ip(ctx, ip, sizeof ip);
    snprintf(key, sizeof key, "rl:%s:%s", kind, ip);
    if (ws_cache_rate_check(s->cache, key, limit, window_s, &rr, NULL) != 0 || rr.allowed)
        return true; /* fail open like the API's other limits */
    ws_metric_add(s->m_rate_limited, 1);
    ws_http_error(ctx, 429, "rate_limited", "too many attempts from this address; try again in %d s",
                  rr.retry_after_s);
    ws_http_header_add(ctx, "Retry-After", "%d", rr.retry_after_s > 0 ? rr.retry_after_s : 1);
    return false;
}

static void session_key(char *out, size_t cap, const char *user_id, const char *sid)
{
    snprintf(out, cap, "sess:%s:%s", user_id, sid);
}

/* Signs a token for (user, sid) and sets the cookie. */
static int set_cookie(ws_http_ctx *ctx, const ws_principal *p, const char *sid)
{
    ws_server *s = ctx->app;
    ws_jwt_claims c = {0};
    int64_t now = (int64_t)(ws_store_now_ms() / 1000);
    snprintf(c.sub, sizeof c.sub, "%s", p->user_id);
    snprintf(c.role, sizeof c.role, "%s", ws_role_name(p->role));
    snprintf(c.jti, sizeof c.jti, "%s", sid);
    snprintf(c.iss, sizeof c.iss, ISSUER);
    snprintf(c.aud, sizeof c.aud, AUDIENCE);
    c.iat = now;
    c.exp = now + TOKEN_TTL_S;
    ws_buf tok = WS_BUF_INIT;
    int rc = ws_jwt_sign(s->session_key, &c, &tok, NULL);
    if (rc == 0)
        ws_http_header_add(ctx, "Set-Cookie", COOKIE "=%.*s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
                           (int)tok.len, tok.data, (int)(SESSION_TTL_MS / 1000), ctx->tls ? "; Secure" : "");
    ws_buf_free(&tok);
    return rc;
}

static void clear_cookie(ws_http_ctx *ctx)
{
    ws_http_header_add(ctx, "Set-Cookie", COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
                       ctx->tls ? "; Secure" : "");
}

/* Stores a new session for the principal signed in with the key of that hash; writes
 * {"user_id","name","role","csrf_token"} (and the key when key_once is given) and the
 * cookie. Returns 0 or writes a 503. */
static int open_session(ws_http_ctx *ctx, const ws_principal *p, const char *hash, const char *key_once)
{
    ws_server *s = ctx->app;
    char sid[64], csrf[64], key[256];
    random_id(sid);
    random_id(csrf);
    session_key(key, sizeof key, p->user_id, sid);
    ws_buf v = WS_BUF_INIT;
    ws_buf_printf(&v, "v1\n%s\n%s", hash, csrf);
    int rc = ws_cache_set(s->cache, key, v.data, v.len, SESSION_TTL_MS, NULL);
    ws_buf_free(&v);
    if (rc != 0 || set_cookie(ctx, p, sid) != 0) {
        ws_http_error(ctx, 503, "unavailable", "the session store is unavailable; try again");
        return 1;
    }
    ws_buf *o = &ctx->out;
    ws_buf_puts(o, "{\"user_id\":");
    ws_json_put_cstr(o, p->user_id);
    ws_buf_puts(o, ",\"name\":");
    ws_json_put_cstr(o, p->user_name);
    ws_buf_puts(o, ",\"role\":");
    ws_json_put_cstr(o, ws_role_name(p->role));
    ws_buf_puts(o, ",\"csrf_token\":");
    ws_json_put_cstr(o, csrf);
    ws_buf_puts(o, ",\"max_export_bytes\":");
    ws_buf_put_i64(o, (long long)s->cfg.max_export_bytes);
    if (key_once) {
        ws_buf_puts(o, ",\"key\":");
        ws_json_put_cstr(o, key_once);
    }
    ws_buf_putc(o, '}');
    ctx->status = key_once ? 201 : 200;
    ws_http_header_add(ctx, "Cache-Control", "no-store");
    return 0;
}

/* ---- the cookie in the request prologue ------------------------------------------------ */

typedef struct sess_state {
    ws_jwt_claims c;
    char hash[WS_KEY_HASH_HEX + 1];
    char csrf[64];
} sess_state;

static bool safe_method(const char *m, size_t n)
{
    return (n == 3 && !memcmp(m, "GET", 3)) || (n == 4 && !memcmp(m, "HEAD", 4)) ||
           (n == 7 && !memcmp(m, "OPTIONS", 7));
}

static int session_unauthorized(ws_http_ctx *ctx, const char *msg)
{
    ws_server *s = ctx->app;
    ws_metric_add(s->m_auth_failures, 1);
    clear_cookie(ctx);
    ws_http_error(ctx, 401, "unauthorized", "%s", msg);
    return 1;
}

int ws_srv_session_begin(ws_http_ctx *ctx, ws_req *r)
{
    ws_server *s = ctx->app;
    const char *tok = cookie_get(ctx, COOKIE);
    if (!tok || !*tok)
        return 2;
    /* verified again on a pool run: a signature check costs ~50 µs, less than keeping state */
    sess_state *st = ws_arena_calloc(ctx->arena, sizeof *st);
    ws_jwt_expect x = {
        .now = (int64_t)(ws_store_now_ms() / 1000), .leeway_s = 5, .iss = ISSUER, .aud = AUDIENCE};
    if (ws_jwt_verify(s->session_key, tok, strlen(tok), &x, &st->c, NULL) != 0 || !st->c.jti[0])
        return session_unauthorized(ctx, "your session has ended; sign in again");
    if (s->cache_blocking && ctx->on_loop)
        return WS_EAGAIN;
    char key[256];
    session_key(key, sizeof key, st->c.sub, st->c.jti);
    ws_buf v = WS_BUF_INIT;
    int rc = ws_cache_get(s->cache, key, &v, NULL);
    char *nl1 = rc == 0 ? memchr(v.data, '\n', v.len) : NULL;
    char *nl2 = nl1 ? memchr(nl1 + 1, '\n', v.len - (size_t)(nl1 + 1 - v.data)) : NULL;
    if (rc != 0 || v.len < 3 || memcmp(v.data, "v1\n", 3) != 0 || !nl2 || nl2 - nl1 - 1 != WS_KEY_HASH_HEX ||
        v.len - (size_t)(nl2 + 1 - v.data) >= sizeof st->csrf) {
        ws_buf_free(&v);
        return session_unauthorized(ctx, "your session has ended; sign in again");
    }
    memcpy(st->hash, nl1 + 1, WS_KEY_HASH_HEX);
    memcpy(st->csrf, nl2 + 1, v.len - (size_t)(nl2 + 1 - v.data));
    ws_buf_free(&v);
    if (!safe_method(ctx->req->method.p, ctx->req->method.len)) {
        const char *got = ws_http_header_get(ctx, "X-CSRF-Token");
        size_t gl = got ? strlen(got) : 0;
        if (!got || gl != strlen(st->csrf) || CRYPTO_memcmp(got, st->csrf, gl) != 0) {
            ws_http_error(ctx, 403, "csrf", "this request lacks the page's CSRF token; reload the page");
            return 1;
        }
    }
    /* who: the key the session was opened with (revoking it ends the session) */
    auth_entry e;
    if (!ws_srv_auth_lookup(s, st->hash, &e)) {
        if (ctx->on_loop)
            return WS_EAGAIN;
        memset(&e, 0, sizeof e);
        memcpy(e.hash, st->hash, sizeof e.hash);
        ws_error err = {0};
        ws_store *db = ws_srv_store_get(s);
        rc = ws_auth_authenticate_hash(db, st->hash, NULL, &e.p, &err);
        if (rc == 0) {
            ws_user u;
            if (ws_store_user_get(db, ctx->arena, e.p.user_id, &u, &err) == 0 && u.model_version)
                snprintf(e.model_version, sizeof e.model_version, "%s", u.model_version);
        }
        ws_srv_store_put(s, db);
        if (rc == WS_EPERM)
            return session_unauthorized(ctx, "the key this session was opened with is no longer valid");
        if (rc != 0) {
            ws_http_error(ctx, 503, "unavailable", "the store is unavailable");
            return 1;
        }
        ws_srv_auth_remember(s, &e);
    }
    if (strcmp(e.p.user_id, st->c.sub) != 0)
        return session_unauthorized(ctx, "your session has ended; sign in again");
    r->p = e.p;
    memcpy(r->model_version, e.model_version, sizeof r->model_version);
    r->phase = 1;
    r->sid = ws_arena_strndup(ctx->arena, st->c.jti, strlen(st->c.jti));
    r->csrf = ws_arena_strndup(ctx->arena, st->csrf, strlen(st->csrf));
    /* renew the short-lived token while the session is in use */
    if (st->c.exp - x.now < TOKEN_TTL_S / 2)
        set_cookie(ctx, &r->p, st->c.jti);
    return 0;
}

/* ---- handlers ------------------------------------------------------------------------ */

/* Parses the JSON body into *doc (freed with the arena) and returns its string member, or
 * writes a 400 and returns NULL. */
static const char *body_str(ws_http_ctx *ctx, const char *member, size_t max)
{
    ws_json_doc *doc = NULL;
    /* JSON only: a cross-site HTML form cannot send this type without a CORS preflight,
     * so no other site can sign a browser in (login CSRF) */
    const char *ct = ws_http_header_get(ctx, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        ws_http_error(ctx, 415, "unsupported_media_type", "send JSON (Content-Type: application/json)");
        return NULL;
    }
    if (ws_json_parse(ctx->body ? ctx->body : "", ctx->body_len, &doc, NULL) != 0) {
        ws_http_error(ctx, 400, "invalid_json", "the body must be JSON: {\"%s\": \"...\"}", member);
        return NULL;
    }
    ws_arena_on_free(ctx->arena, (void (*)(void *))ws_json_doc_free, doc);
    const ws_json *v = ws_json_get(ws_json_root(doc), member);
    if (!v || v->type != WS_JSON_STRING || v->len == 0 || v->len > max || strlen(v->str) != v->len) {
        ws_http_error(ctx, 400, "invalid_request", "\"%s\" must be a non-empty string of at most %zu bytes",
                      member, max);
        return NULL;
    }
    return v->str;
}

/* POST /v1/session {"key": "ws_live_..."} (pool): opens a session for a valid API key. */
int ws_srv_h_session_create(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    if (!rate_ok(ctx, "signin", SIGNIN_PER_MIN, 60))
        return 0;
    const char *key = body_str(ctx, "key", 256);
    if (!key)
        return 0;
    char id[WS_KEY_ID_LEN + 1], hash[WS_KEY_HASH_HEX + 1];
    ws_principal p;
    if (ws_auth_key_parse(key, strlen(key), id) != 0) {
        ws_metric_add(s->m_auth_failures, 1);
        ws_http_error(ctx, 401, "unauthorized", "that is not an API key (they look like ws_live_…_…)");
        return 0;
    }
    ws_auth_key_hash(key, strlen(key), hash);
    ws_store *db = ws_srv_store_get(s);
    int rc = ws_auth_authenticate_hash(db, hash, id, &p, NULL);
    ws_srv_store_put(s, db);
    if (rc == WS_EPERM) {
        ws_metric_add(s->m_auth_failures, 1);
        ws_http_error(ctx, 401, "unauthorized", "this API key is not valid (revoked, expired or mistyped)");
        return 0;
    }
    if (rc != 0) {
        ws_http_error(ctx, 503, "unavailable", "the store is unavailable; try again");
        return 0;
    }
    open_session(ctx, &p, hash, NULL);
    return 0;
}

/* GET /v1/session: who is signed in and the CSRF token (for a page that was reloaded). */
int ws_srv_h_session_get(ws_http_ctx *ctx)
{
    ws_req *r;
    int b = ws_srv_begin(ctx, &r);
    if (b)
        return b == 1 ? 0 : b;
    ws_buf *o = &ctx->out;
    ws_buf_puts(o, "{\"user_id\":");
    ws_json_put_cstr(o, r->p.user_id);
    ws_buf_puts(o, ",\"name\":");
    ws_json_put_cstr(o, r->p.user_name);
    ws_buf_puts(o, ",\"role\":");
    ws_json_put_cstr(o, ws_role_name(r->p.role));
    ws_buf_puts(o, ",\"csrf_token\":");
    ws_json_put_cstr(o, r->csrf);
    ws_buf_puts(o, ",\"max_export_bytes\":");
    ws_buf_put_i64(o, (long long)((ws_server *)ctx->app)->cfg.max_export_bytes);
    ws_buf_puts(o, ",\"model_version\":");
    ws_json_put_cstr(o, r->model_version[0] ? r->model_version : NULL);
    ws_buf_putc(o, '}');
    ws_http_header_add(ctx, "Cache-Control", "no-store");
    return 0;
}

/* DELETE /v1/session: signs the user out everywhere (every session of theirs). */
int ws_srv_h_session_delete(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    ws_req *r;
    int b = ws_srv_begin(ctx, &r);
    if (b)
        return b == 1 ? 0 : b;
    if (s->cache_blocking && ctx->on_loop)
        return WS_EAGAIN;
    char prefix[WS_STORE_ID_MAX + 16];
    snprintf(prefix, sizeof prefix, "sess:%s:", r->p.user_id);
    if (ws_cache_del_prefix(s->cache, prefix, NULL, NULL) != 0) {
        ws_http_error(ctx, 503, "unavailable", "the session store is unavailable; try again");
        return 0;
    }
    clear_cookie(ctx);
    ctx->status = 204;
    return 0;
}

static bool name_ok(const char *n)
{
    for (const unsigned char *p = (const unsigned char *)n; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* POST /v1/signup {"name": "..."} (pool, only with --allow-signup): a new user, their first
 * key (shown once, in this answer) and a session. */
int ws_srv_h_signup(ws_http_ctx *ctx)
{
    ws_server *s = ctx->app;
    if (!s->cfg.allow_signup) {
        ws_http_error(ctx, 403, "signup_disabled",
                      "this server does not allow signing up; ask its operator for a key");
        return 0;
    }
    if (!rate_ok(ctx, "signup", SIGNUP_PER_HOUR, 3600))
        return 0;
    const char *name = body_str(ctx, "name", 64);
    if (!name)
        return 0;
    if (!name_ok(name)) {
        ws_http_error(ctx, 400, "invalid_request", "the name must not contain control characters");
        return 0;
    }
    ws_store *db = ws_srv_store_get(s);
    ws_user u;
    ws_error err = {0};
    char key[WS_KEY_LEN + 1], hash[WS_KEY_HASH_HEX + 1];
    ws_principal p;
    int rc = ws_store_user_get_by_name(db, ctx->arena, name, &u, &err);
    if (rc == 0) {
        ws_srv_store_put(s, db);
        ws_http_error(ctx, 409, "name_taken", "that name is taken; choose another");
        return 0;
    }
    rc = rc == WS_ENOENT ? ws_auth_key_create(db, name, WS_ROLE_USER, 0, "dashboard", 0, key, &p, &err) : rc;
    ws_srv_store_put(s, db);
    if (rc != 0) {
        ws_http_error(ctx, 503, "unavailable", "cannot create the account now; try again");
        return 0;
    }
    ws_auth_key_hash(key, WS_KEY_LEN, hash);
    open_session(ctx, &p, hash, key);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}
