/* The AI service's service-to-service authentication and trace propagation, in-process: a
 * `whatstyle ai` service (ws_ai_service over the counting test-double engine) that trusts one
 * gateway key read back from its JWKS, called directly with hand-made tokens (none, another
 * key's signature, expired, another audience, another user's, valid) and through the gateway's
 * gRPC AI implementation (ws_ai_grpc), whose call's server span must continue the caller's
 * trace with the caller's span as parent. */
#include "harness.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "ai/ai_grpc.h"
#include "ai/ai_service.h"
#include "ai_double.h"
#include "auth/jwt.h"
#include "core/progress.h"
#include "core/trace.h"
#include "grpc/grpc_client.h"
#include "grpc/grpc_wire.h"
#include "whatstyle/ai/v1/ai.pb-c.h"

#define GEN "/whatstyle.ai.v1.AiService/GenerateResponse"

typedef struct fixture {
    counting_ai *engine;
    ws_jwt_key *gw;     /* the gateway's private key */
    ws_jwt_key *gw_pub; /* its public half, read from its JWKS */
    ws_ai_service *svc;
    char addr[64];
} fixture;

static void setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->engine = counting_ai_new();
    ws_ai_train_request tr = {.user_id = "maya", .export_path = "samples/group_chat.txt", .persona = "Maya"};
    ws_ai_train_result res = {0};
    CHECK_EQ_INT(f->engine->base.ops->train(&f->engine->base, &tr, NULL, NULL, &res, NULL), 0);
    ws_ai_train_result_clear(&res);
    CHECK_EQ_INT(ws_jwt_key_generate(&f->gw, NULL), 0);
    ws_buf jwks = WS_BUF_INIT;
    ws_jwt_jwks(f->gw, &jwks);
    CHECK_EQ_INT(ws_jwt_key_from_jwks(jwks.data, jwks.len, &f->gw_pub, NULL), 0);
    CHECK_EQ_STR(ws_jwt_key_id(f->gw_pub), ws_jwt_key_id(f->gw));
    ws_buf_free(&jwks);
    ws_ai_service_config sc = {.gateway_key = f->gw_pub, .workers = 2};
    CHECK_EQ_INT(ws_ai_service_start(&f->engine->base, &sc, &f->svc, NULL), 0);
    snprintf(f->addr, sizeof f->addr, "grpc://127.0.0.1:%d", ws_ai_service_port(f->svc));
}

static void teardown(fixture *f)
{
    ws_ai_service_free(f->svc);
    ws_jwt_key_free(f->gw_pub);
    ws_jwt_key_free(f->gw);
    ws_ai_free(&f->engine->base);
}

/* "Bearer <jwt>" for sub, signed by k, valid from now + from_s for ttl_s, with aud. */
static void token(const ws_jwt_key *k, const char *sub, int from_s, int ttl_s, const char *aud, ws_buf *out)
{
    ws_jwt_claims c = {0};
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    snprintf(c.role, sizeof c.role, "user");
    snprintf(c.iss, sizeof c.iss, "%s", WS_AI_TOKEN_ISS);
    snprintf(c.aud, sizeof c.aud, "%s", aud);
    c.iat = (int64_t)time(NULL) + from_s;
    c.exp = c.iat + ttl_s;
    ws_buf_reset(out);
    ws_buf_puts(out, "Bearer ");
    CHECK_EQ_INT(ws_jwt_sign(k, &c, out, NULL), 0);
}

/* A GenerateResponse for user with the given authorization (NULL: none); the gRPC status. */
static int generate(fixture *f, const char *user, const char *authz, const char *path, ws_buf *msg)
{
    Whatstyle__Ai__V1__GenerateRequest rq = WHATSTYLE__AI__V1__GENERATE_REQUEST__INIT;
    rq.user_id = (char *)user;
    rq.message = "are you coming tonight?";
    uint8_t buf[256];
    size_t len = whatstyle__ai__v1__generate_request__pack(&rq, buf);
    ws_grpc_channel *ch = ws_grpc_channel_new("127.0.0.1", ws_ai_service_port(f->svc));
    ws_grpc_md md = {"authorization", authz};
    ws_buf resp = WS_BUF_INIT;
    ws_grpc_result res = {0};
    int st = ws_grpc_unary_md(ch, path, &md, authz ? 1 : 0, buf, len, ws_now_s() + 5, 1 << 20, &resp, &res);
    ws_buf_reset(msg);
    if (res.message.data)
        ws_buf_puts(msg, res.message.data);
    ws_buf_free(&resp);
    ws_grpc_result_free(&res);
    ws_grpc_channel_free(ch);
    return st;
}

static void tokens_checked(void)
{
    fixture f;
    setup(&f);
    ws_jwt_key *other = NULL;
    CHECK_EQ_INT(ws_jwt_key_generate(&other, NULL), 0);
    ws_buf t = WS_BUF_INIT, msg = WS_BUF_INIT;

    CHECK_EQ_INT(generate(&f, "maya", NULL, GEN, &msg), WS_GRPC_UNAUTHENTICATED);
    CHECK(strstr(msg.data, "bearer token") != NULL);
    CHECK_EQ_INT(generate(&f, "maya", "Basic bWF5YTp4", GEN, &msg), WS_GRPC_UNAUTHENTICATED);
    CHECK_EQ_INT(generate(&f, "maya", "Bearer not.a.token", GEN, &msg), WS_GRPC_UNAUTHENTICATED);
    token(other, "maya", 0, 60, WS_AI_TOKEN_AUD, &t); /* signed by another key */
    CHECK_EQ_INT(generate(&f, "maya", t.data, GEN, &msg), WS_GRPC_UNAUTHENTICATED);
    token(f.gw, "maya", -200, 60, WS_AI_TOKEN_AUD, &t); /* expired 140 s ago */
    CHECK_EQ_INT(generate(&f, "maya", t.data, GEN, &msg), WS_GRPC_UNAUTHENTICATED);
    CHECK(strstr(msg.data, "invalid token") != NULL);
    token(f.gw, "maya", 0, 60, "dashboard", &t); /* for another audience */
    CHECK_EQ_INT(generate(&f, "maya", t.data, GEN, &msg), WS_GRPC_UNAUTHENTICATED);
    token(f.gw, "tom", 0, 60, WS_AI_TOKEN_AUD, &t); /* valid, but Tom's: not for Maya's model */
    CHECK_EQ_INT(generate(&f, "maya", t.data, GEN, &msg), WS_GRPC_PERMISSION_DENIED);
    CHECK_EQ_INT(generate(&f, "maya", t.data, "/whatstyle.ai.v1.AiService/StreamResponse", &msg),
                 WS_GRPC_PERMISSION_DENIED);
    CHECK_EQ_INT(atomic_load(&f.engine->generate_calls), 0); /* none reached the engine */
    token(f.gw, "maya", 0, 60, WS_AI_TOKEN_AUD, &t);
    CHECK_EQ_INT(generate(&f, "maya", t.data, GEN, &msg), WS_GRPC_OK);
    CHECK_EQ_INT(atomic_load(&f.engine->generate_calls), 1);

    /* health stays open */
    ws_grpc_channel *ch = ws_grpc_channel_new("127.0.0.1", ws_ai_service_port(f.svc));
    ws_buf resp = WS_BUF_INIT;
    ws_grpc_result res = {0};
    CHECK_EQ_INT(ws_grpc_unary(ch, "/grpc.health.v1.Health/Check", (const uint8_t *)"", 0, ws_now_s() + 5, 64,
                               &resp, &res),
                 WS_GRPC_OK);
    ws_grpc_result_free(&res);
    ws_buf_free(&resp);
    ws_grpc_channel_free(ch);

    ws_buf_free(&t);
    ws_buf_free(&msg);
    ws_jwt_key_free(other);
    teardown(&f);
}

/* ---- the gateway's implementation, and the trace across it ---- */

static pthread_mutex_t spans_mu = PTHREAD_MUTEX_INITIALIZER;
static ws_span *spans[64];
static size_t n_spans;

static void sink(ws_span *sp)
{
    pthread_mutex_lock(&spans_mu);
    if (n_spans < sizeof spans / sizeof spans[0])
        spans[n_spans++] = sp;
    else
        ws_span_free(sp);
    pthread_mutex_unlock(&spans_mu);
}

static ws_span *find_span(const char *name)
{
    ws_span *found = NULL;
    for (int i = 0; i < 200 && !found; i++) {
        pthread_mutex_lock(&spans_mu);
        for (size_t j = 0; j < n_spans && !found; j++)
            if (!strcmp(spans[j]->name, name))
                found = spans[j];
        pthread_mutex_unlock(&spans_mu);
        if (!found)
            usleep(10000);
    }
    return found;
}

static void gateway_signs_and_traces(void)
{
    fixture f;
    setup(&f);
    ws_trace_set_sink(sink);
    ws_trace_set_ratio(1.0);

    /* the gateway with its key: replies, in the caller's trace */
    ws_ai *gw = NULL;
    ws_ai_grpc_opts go = {.budget_s = 5, .sign_key = f.gw};
    CHECK_EQ_INT(ws_ai_grpc_new(f.addr, &counting_ai_new()->base, &go, &gw, NULL), 0);
    ws_span *req = ws_span_begin("gateway request", WS_SPAN_SERVER, NULL);
    ws_ai_reply out = {0};
    ws_error e = {0};
    CHECK_EQ_INT(gw->ops->generate(gw, "maya", "are you coming tonight?", NULL, 0, &out, &e), 0);
    CHECK(out.reply && *out.reply);
    ws_ai_reply_clear(&out);
    ws_trace_ctx caller = *ws_span_ctx(req);
    ws_span_end(req);
    ws_span *served = find_span("AiService/GenerateResponse");
    CHECK(served != NULL);
    if (served) {
        CHECK(!memcmp(served->ctx.trace_id, caller.trace_id, 16));
        CHECK(served->has_parent && !memcmp(served->parent_id, caller.span_id, 8));
        CHECK_EQ_INT(served->kind, WS_SPAN_SERVER);
    }
    ws_ai_free(gw);

    /* a gateway without the key is refused: its calls fail, they never reach the engine */
    int before = atomic_load(&f.engine->generate_calls);
    CHECK_EQ_INT(
        ws_ai_grpc_new(f.addr, &counting_ai_new()->base, &(ws_ai_grpc_opts){.budget_s = 2}, &gw, NULL), 0);
    CHECK(gw->ops->generate(gw, "maya", "hi", NULL, 0, &out, &e) != 0);
    CHECK(strstr(e.msg, "UNAUTHENTICATED") != NULL);
    CHECK_EQ_INT(atomic_load(&f.engine->generate_calls), before);
    ws_ai_free(gw);

    teardown(&f);
    ws_trace_set_sink(NULL);
    for (size_t j = 0; j < n_spans; j++)
        ws_span_free(spans[j]);
    n_spans = 0;
}

static void jwks_and_key_file(void)
{
    ws_jwt_key *k = NULL;
    ws_error e = {0};
    CHECK(ws_jwt_key_from_jwks("{\"keys\":[]}", 11, &k, &e) == WS_EINVAL);
    CHECK(ws_jwt_key_from_jwks("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"x\"}]}", 33, &k, &e) == WS_EINVAL);
    CHECK(ws_jwt_key_from_jwks("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}", 50, &k,
                               &e) == WS_EINVAL);
    CHECK(ws_jwt_key_from_jwks("nope", 4, &k, &e) == WS_EINVAL);
    CHECK(k == NULL);
    char dir[] = "/tmp/ws-ai-auth-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/service.pem", dir);
    ws_jwt_key *a = NULL, *b = NULL;
    CHECK_EQ_INT(ws_jwt_key_load_or_create(path, &a, NULL), 0); /* made */
    CHECK_EQ_INT(ws_jwt_key_load_or_create(path, &b, NULL), 0); /* read back: the same key */
    if (a && b)
        CHECK_EQ_STR(ws_jwt_key_id(a), ws_jwt_key_id(b));
    ws_jwt_key_free(a);
    ws_jwt_key_free(b);
    unlink(path);
    rmdir(dir);
}

WS_TEST_MAIN(T(tokens_checked), T(gateway_signs_and_traces), T(jwks_and_key_file))
