/* Black-box tests of the dashboard's sessions over real HTTP (src/server/session.c): the
 * cookie's attributes, CSRF, forged / tampered / expired / foreign tokens, revocation (sign
 * out everywhere, a revoked key), renewal, sign-up and its per-address limit, the signing
 * key's file. Embedded defaults; tests/cli/server_services.sh runs it again with Redis as
 * the cache (WS_TEST_CACHE_URL), where sessions also survive a restart. */
#include "harness.h"

#include <sys/stat.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "core/file.h"
#include "core/json.h"
#include "http_client.h"
#include "server/server.h"
#include "store/store.h"

static char data_dir[256];
static ws_server *srv;
static int port;
static char tag[16];

static void start(bool signup)
{
    ws_server_config cfg = {.data_dir = data_dir,
                            .cache_url = getenv("WS_TEST_CACHE_URL"),
                            .host = "127.0.0.1",
                            .threads = 2,
                            .allow_signup = signup,
                            .no_training = true,
                            .store_connections = 2};
    ws_error err = {0};
    CHECK_EQ_INT(ws_server_new(&cfg, &srv, &err), 0);
    CHECK_EQ_INT(ws_server_start(srv, &err), 0);
    port = ws_server_port(srv);
}

static void stop(void)
{
    ws_server_stop(srv);
    ws_server_wait(srv);
    ws_server_free(srv);
    srv = NULL;
}

static void make_key(const char *name, char key[WS_KEY_LEN + 1])
{
    ws_error err = {0};
    ws_store *st = NULL;
    char *url = ws_store_url_for_data_dir(data_dir, &err);
    ws_store_config sc = {.url = url};
    CHECK_EQ_INT(ws_store_open(&sc, &st, &err), 0);
    char full[64];
    snprintf(full, sizeof full, "%s-%s", name, tag);
    CHECK_EQ_INT(ws_auth_key_create(st, full, WS_ROLE_USER, 0, "tests", 0, key, NULL, &err), 0);
    ws_store_close(st);
    free(url);
}

typedef struct sess {
    char cookie[2048]; /* "Cookie: ws_session=...\r\n" */
    char token[1024];
    char csrf[64];
} sess;

/* Signs in with key; fills *s from the answer. Returns the status. */
static int sign_in(const char *key, sess *s)
{
    http_resp r = {0};
    char body[256], set[1500];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", key);
    int st = hc_json(port, "POST", "/v1/session", NULL, body, &r);
    memset(s, 0, sizeof *s);
    if (st == 200 && hc_header(&r, "Set-Cookie", set, sizeof set)) {
        CHECK(strstr(set, "HttpOnly") && strstr(set, "SameSite=Strict") && strstr(set, "Path=/"));
        CHECK(strstr(set, "Secure") == NULL); /* plain HTTP here */
        const char *v = set + strlen("ws_session="), *e = strchr(v, ';');
        snprintf(s->token, sizeof s->token, "%.*s", (int)(e - v), v);
        snprintf(s->cookie, sizeof s->cookie, "Cookie: theme=dark; ws_session=%s\r\n", s->token);
        ws_json_doc *d = NULL;
        ws_json_parse(r.body, r.body_len, &d, NULL);
        const char *c = d ? ws_json_get_str(ws_json_root(d), "csrf_token") : NULL;
        snprintf(s->csrf, sizeof s->csrf, "%s", c ? c : "");
        ws_json_doc_free(d);
    }
    hc_free(&r);
    return st;
}

/* A request with the session's cookie, with the CSRF header when csrf != NULL. */
static int with_cookie(const sess *s, const char *method, const char *path, const char *csrf,
                       const char *json, http_resp *r)
{
    char h[3072];
    snprintf(h, sizeof h, "%sContent-Type: application/json\r\n", s->cookie);
    if (csrf)
        snprintf(h + strlen(h), sizeof h - strlen(h), "X-CSRF-Token: %s\r\n", csrf);
    return hc_request(port, method, path, NULL, h, json, json ? strlen(json) : 0, r);
}

static int get_me(const sess *s)
{
    http_resp r = {0};
    int st = with_cookie(s, "GET", "/v1/me", NULL, NULL, &r);
    hc_free(&r);
    return st;
}

static ws_jwt_key *server_key(void)
{
    char path[300], *pem = NULL;
    size_t len = 0;
    ws_jwt_key *k = NULL;
    snprintf(path, sizeof path, "%s/session-ed25519.pem", data_dir);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK_EQ_INT(ws_file_read(path, 16384, &pem, &len, NULL), 0);
    CHECK_EQ_INT(ws_jwt_key_from_pem(pem, len, &k, NULL), 0);
    free(pem);
    return k;
}

/* A session whose cookie holds a token made from the real one's claims, changed by fn. */
static void forged(const sess *real, ws_jwt_key *k, void (*fn)(ws_jwt_claims *), sess *out)
{
    ws_jwt_claims c;
    CHECK_EQ_INT(ws_jwt_decode_unverified(real->token, strlen(real->token), &c, NULL), 0);
    fn(&c);
    ws_buf t = WS_BUF_INIT;
    CHECK_EQ_INT(ws_jwt_sign(k, &c, &t, NULL), 0);
    *out = *real;
    snprintf(out->cookie, sizeof out->cookie, "Cookie: ws_session=%.*s\r\n", (int)t.len, t.data);
    ws_buf_free(&t);
}

static void expired(ws_jwt_claims *c)
{
    c->iat = time(NULL) - 3600;
    c->exp = time(NULL) - 60;
}
static void other_sid(ws_jwt_claims *c)
{
    strcpy(c->jti, "not-a-session");
}
static void other_aud(ws_jwt_claims *c)
{
    strcpy(c->aud, "service");
}
static void nearly_done(ws_jwt_claims *c)
{
    c->iat = time(NULL) - 840;
    c->exp = time(NULL) + 60;
}
static void unchanged(ws_jwt_claims *c)
{
    (void)c;
}

static void test_cookie_and_csrf(void)
{
    char key[WS_KEY_LEN + 1];
    make_key("ann", key);
    sess s;
    http_resp r = {0};
    CHECK_EQ_INT(sign_in(key, &s), 200);
    CHECK(s.csrf[0] != '\0');
    CHECK_EQ_INT(get_me(&s), 200);
    CHECK_EQ_INT(with_cookie(&s, "GET", "/v1/session", NULL, NULL, &r), 200);
    CHECK(strstr(r.body, s.csrf) != NULL);
    /* state-changing requests need the token */
    CHECK_EQ_INT(with_cookie(&s, "POST", "/v1/keys", NULL, "{}", &r), 403);
    CHECK(strstr(r.body, "\"csrf\"") != NULL);
    CHECK_EQ_INT(with_cookie(&s, "POST", "/v1/keys", "wrong", "{}", &r), 403);
    CHECK_EQ_INT(with_cookie(&s, "DELETE", "/v1/me", NULL, NULL, &r), 403);
    CHECK_EQ_INT(with_cookie(&s, "POST", "/v1/reply", NULL, "{\"message\":\"hi\"}", &r), 403);
    CHECK_EQ_INT(with_cookie(&s, "POST", "/v1/keys", s.csrf, "{\"name\":\"t\"}", &r), 201);
    /* a key-authenticated request needs no CSRF token */
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/keys", key, "{}", &r), 201);
    /* bad keys and bodies */
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/session", NULL, "{\"key\":\"nope\"}", &r), 401);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/session", NULL, "{nope", &r), 400);
    char form[128];
    snprintf(form, sizeof form, "{\"key\":\"%s\"}", key); /* as a cross-site form would send it */
    CHECK_EQ_INT(
        hc_request(port, "POST", "/v1/session", NULL, "Content-Type: text/plain\r\n", form, strlen(form), &r),
        415);
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", NULL, "Cookie: ws_session=\r\n", NULL, 0, &r), 401);
    hc_free(&r);
}

static void test_forged_tokens(void)
{
    char key[WS_KEY_LEN + 1];
    make_key("bea", key);
    sess s, f;
    CHECK_EQ_INT(sign_in(key, &s), 200);
    ws_jwt_key *k = server_key(), *stranger = NULL;
    ws_jwt_key_generate(&stranger, NULL);
    forged(&s, k, unchanged, &f); /* re-signed with the server's key: still fine */
    CHECK_EQ_INT(get_me(&f), 200);
    forged(&s, stranger, unchanged, &f);
    CHECK_EQ_INT(get_me(&f), 401);
    forged(&s, k, expired, &f);
    CHECK_EQ_INT(get_me(&f), 401);
    forged(&s, k, other_sid, &f); /* a valid token of no live session */
    CHECK_EQ_INT(get_me(&f), 401);
    forged(&s, k, other_aud, &f);
    CHECK_EQ_INT(get_me(&f), 401);
    /* every character of the signature flipped in turn */
    size_t dot = (size_t)(strrchr(s.token, '.') - s.token);
    for (size_t i = dot + 1; i < strlen(s.token); i += 7) {
        f = s;
        char *p = strstr(f.cookie, "ws_session=") + strlen("ws_session=") + i;
        *p = *p == 'A' ? 'B' : 'A';
        CHECK_EQ_INT(get_me(&f), 401);
    }
    /* renewal: a token near its end gets a fresh cookie for the same session */
    forged(&s, k, nearly_done, &f);
    http_resp r = {0};
    char set[1500];
    CHECK_EQ_INT(with_cookie(&f, "GET", "/v1/me", NULL, NULL, &r), 200);
    CHECK(hc_header(&r, "Set-Cookie", set, sizeof set) != NULL);
    ws_jwt_claims a, b;
    const char *v = set + strlen("ws_session=");
    CHECK_EQ_INT(ws_jwt_decode_unverified(v, (size_t)(strchr(v, ';') - v), &b, NULL), 0);
    ws_jwt_decode_unverified(s.token, strlen(s.token), &a, NULL);
    CHECK_EQ_STR(a.jti, b.jti);
    CHECK(b.exp >= time(NULL) + 800);
    CHECK_EQ_INT(with_cookie(&s, "GET", "/v1/me", NULL, NULL, &r), 200); /* young: no new cookie */
    CHECK(hc_header(&r, "Set-Cookie", set, sizeof set) == NULL);
    hc_free(&r);
    ws_jwt_key_free(k);
    ws_jwt_key_free(stranger);
}

static void test_revocation(void)
{
    char key[WS_KEY_LEN + 1], other[WS_KEY_LEN + 1], id[WS_KEY_ID_LEN + 1];
    make_key("cat", key);
    make_key("dan", other);
    sess s1, s2, s3;
    http_resp r = {0};
    CHECK_EQ_INT(sign_in(key, &s1), 200);
    CHECK_EQ_INT(sign_in(key, &s2), 200);
    CHECK_EQ_INT(sign_in(other, &s3), 200);
    /* sign out from one browser ends both of the user's sessions, not another user's */
    CHECK_EQ_INT(with_cookie(&s1, "DELETE", "/v1/session", s1.csrf, NULL, &r), 204);
    CHECK_EQ_INT(get_me(&s1), 401);
    CHECK_EQ_INT(get_me(&s2), 401);
    CHECK_EQ_INT(get_me(&s3), 200);
    /* revoking the key a session was opened with ends it */
    CHECK_EQ_INT(sign_in(key, &s1), 200);
    char path[64];
    CHECK_EQ_INT(ws_auth_key_parse(key, strlen(key), id), 0);
    snprintf(path, sizeof path, "/v1/keys/%s", id);
    CHECK_EQ_INT(hc_request(port, "DELETE", path, other, NULL, NULL, 0, &r), 404); /* not dan's */
    CHECK_EQ_INT(get_me(&s1), 200);
    CHECK_EQ_INT(with_cookie(&s1, "DELETE", path, s1.csrf, NULL, &r), 204);
    CHECK_EQ_INT(get_me(&s1), 401);
    CHECK_EQ_INT(sign_in(key, &s1), 401);
    hc_free(&r);
}

static void test_signup(void)
{
    http_resp r = {0};
    char body[128];
    snprintf(body, sizeof body, "{\"name\":\"eve-%s\"}", tag);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/signup", NULL, body, &r), 403); /* not allowed */
    stop();
    start(true);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/signup", NULL, body, &r), 201);
    ws_json_doc *d = NULL;
    ws_json_parse(r.body, r.body_len, &d, NULL);
    const char *key = d ? ws_json_get_str(ws_json_root(d), "key") : NULL;
    CHECK(key && !strncmp(key, "ws_live_", 8));
    http_resp me = {0};
    CHECK_EQ_INT(hc_request(port, "GET", "/v1/me", key, NULL, NULL, 0, &me), 200);
    hc_free(&me);
    ws_json_doc_free(d);
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/signup", NULL, body, &r), 409); /* name taken */
    CHECK_EQ_INT(hc_json(port, "POST", "/v1/signup", NULL, "{\"name\":\"a\\u0001b\"}", &r), 400);
    /* 5 sign-ups an hour per address (this one counted 3 so far) */
    int last = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body, "{\"name\":\"eve%d-%s\"}", i, tag);
        last = hc_json(port, "POST", "/v1/signup", NULL, body, &r);
    }
    CHECK_EQ_INT(last, 429);
    char ra[16];
    CHECK(hc_header(&r, "Retry-After", ra, sizeof ra) != NULL);
    hc_free(&r);
}

static void test_restart(void)
{
    char key[WS_KEY_LEN + 1];
    make_key("fay", key);
    sess s;
    CHECK_EQ_INT(sign_in(key, &s), 200);
    stop();
    start(false);
    /* the signing key persists; the session lives as long as the cache does */
    bool shared_cache = getenv("WS_TEST_CACHE_URL") && *getenv("WS_TEST_CACHE_URL");
    CHECK_EQ_INT(get_me(&s), shared_cache ? 200 : 401);
}

/* At most 8 job event streams are open at once (each holds a pool thread); the 9th gets
 * one event with a retry hint and ends. The job stays queued (no trainer here). */
static void test_event_stream_cap(void)
{
    static const char chat[] = "12/01/2024, 10:00 - Ann: morning! coffee later?\n"
                               "12/01/2024, 10:01 - Bob: sure, where\n"
                               "12/01/2024, 10:02 - Ann: the usual place haha\n";
    char key[WS_KEY_LEN + 1], path[128], req[512], buf[4096];
    make_key("gus", key);
    http_resp r = {0};
    CHECK_EQ_INT(hc_request(port, "POST", "/v1/exports?persona=Ann", key, "Content-Type: text/plain\r\n",
                            chat, strlen(chat), &r),
                 202);
    ws_json_doc *d = NULL;
    ws_json_parse(r.body, r.body_len, &d, NULL);
    const char *job = d ? ws_json_get_str(ws_json_root(d), "job_id") : NULL;
    CHECK(job != NULL);
    snprintf(path, sizeof path, "/v1/training-jobs/%s/events", job ? job : "x");
    ws_json_doc_free(d);
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n", path, key);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = hc_dial(port);
        hc_send(fds[i], req, strlen(req));
        size_t got = 0;
        ssize_t n;
        buf[0] = '\0';
        while (!strstr(buf, "\n\n") && got < sizeof buf - 1 &&
               (n = recv(fds[i], buf + got, sizeof buf - 1 - got, 0)) > 0) {
            got += (size_t)n;
            buf[got] = '\0';
        }
        CHECK(strstr(buf, "text/event-stream") && strstr(buf, "event: job") && strstr(buf, "\"queued\""));
    }
    CHECK_EQ_INT(hc_request(port, "GET", path, key, NULL, NULL, 0, &r), 200); /* ends: one event */
    CHECK(r.body_len > 0 && strstr(r.body, "retry: 2000") && strstr(r.body, "event: job"));
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    hc_free(&r);
}

static void setup(void)
{
    snprintf(tag, sizeof tag, "%ld%d", (long)time(NULL), (int)getpid());
    snprintf(data_dir, sizeof data_dir, "/tmp/ws_test_session_%s", tag);
    start(false);
}

static void teardown(void)
{
    stop();
    ws_file_remove_tree(data_dir, NULL, NULL);
}

WS_TEST_MAIN(T(setup), T(test_cookie_and_csrf), T(test_forged_tokens), T(test_revocation), T(test_signup),
             T(test_event_stream_cap), T(test_restart), T(teardown))
