/* The request's time budget on the gateway's gRPC AI calls (core/deadline.h, ai_grpc.c): a
 * node whose GetStyleProfile waits until its call is cancelled shows that the thread's deadline
 * reaches it as grpc-timeout, that the call ends WS_ETIMEDOUT by that deadline with the node's
 * work cancelled, that such timeouts under the caller's budget leave the node's breaker closed
 * while timeouts under the gateway's own budget open it, and that a budget spent before the
 * call never reaches the node. Also the TLS option checks of core/tls and ws_ai_grpc_new. */
#include "harness.h"

#include <stdatomic.h>
#include <unistd.h>

#include "ai/ai_grpc.h"
#include "ai_double.h"
#include "core/deadline.h"
#include "core/progress.h"
#include "core/tls.h"
#include "grpc/grpc_server.h"
#include "grpc/grpc_wire.h"
#include "whatstyle/ai/v1/ai.pb-c.h"

static atomic_int mode; /* 0: wait until cancelled; 1: answer at once */
static atomic_int calls, cancelled;
static _Atomic double given; /* the timeout the last call came with, s */

static int h_profile(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    atomic_fetch_add(&calls, 1);
    double d = ws_grpc_call_deadline(call);
    atomic_store(&given, d > 0 ? d - ws_now_s() : -1);
    if (atomic_load(&mode) == 0) {
        while (!ws_grpc_call_cancelled(call))
            ws_grpc_call_wait(call, 0.05);
        atomic_fetch_add(&cancelled, 1);
        return WS_GRPC_CANCELLED;
    }
    Whatstyle__Ai__V1__StyleProfile rep = WHATSTYLE__AI__V1__STYLE_PROFILE__INIT;
    rep.json = "{}";
    uint8_t buf[16];
    size_t n = whatstyle__ai__v1__style_profile__pack(&rep, buf);
    return ws_grpc_call_send(call, buf, n) == 0 ? WS_GRPC_OK : WS_GRPC_CANCELLED;
}

static const ws_grpc_method methods[] = {
    {"/whatstyle.ai.v1.AiService/GetStyleProfile", WS_GRPC_METHOD_UNARY, h_profile},
};

/* style_profile through gw; its duration in *secs. */
static int profile(ws_ai *gw, double *secs, ws_error *e)
{
    char *json = NULL;
    double t0 = ws_now_s();
    int rc = gw->ops->style_profile(gw, "maya", &json, e);
    *secs = ws_now_s() - t0;
    free(json);
    return rc;
}

static void deadline_flows(void)
{
    ws_grpc_server *srv = NULL;
    ws_grpc_server_config cfg = {.methods = methods, .n_methods = 1};
    CHECK_EQ_INT(ws_grpc_server_start(&cfg, &srv, NULL), 0);
    char spec[64];
    snprintf(spec, sizeof spec, "grpc://127.0.0.1:%d", ws_grpc_server_port(srv));
    ws_ai *gw = NULL;
    CHECK_EQ_INT(ws_ai_grpc_new(spec, &counting_ai_new()->base, &(ws_ai_grpc_opts){.budget_s = 5}, &gw, NULL),
                 0);
    ws_error e = {0};
    double secs;

    /* the caller's budget (0.3 s) binds: the node is given it and cancelled at its end */
    for (int i = 0; i < 4; i++) {
        atomic_store(&mode, 0);
        ws_deadline_set(ws_now_s() + 0.3);
        CHECK_EQ_INT(profile(gw, &secs, &e), WS_ETIMEDOUT);
        ws_deadline_set(0);
        CHECK(secs >= 0.25 && secs < 1.0);
        CHECK(strstr(e.msg, "request's time budget") != NULL);
        CHECK(atomic_load(&given) > 0.2 && atomic_load(&given) <= 0.3);
    }
    for (int i = 0; i < 40 && atomic_load(&cancelled) < 4; i++)
        usleep(25000);
    CHECK_EQ_INT(atomic_load(&cancelled), 4);
    /* four timeouts of the caller's making: the breaker stays closed, the node answers */
    atomic_store(&mode, 1);
    CHECK_EQ_INT(profile(gw, &secs, &e), 0);
    CHECK(atomic_load(&given) > 4.0); /* no thread deadline: the gateway's own 5 s */

    /* a budget already spent: WS_ETIMEDOUT at once, the node never called */
    int before = atomic_load(&calls);
    ws_deadline_set(ws_now_s() - 0.01);
    CHECK_EQ_INT(profile(gw, &secs, &e), WS_ETIMEDOUT);
    ws_deadline_set(0);
    CHECK(secs < 0.05);
    CHECK_EQ_INT(atomic_load(&calls), before);
    /* a thread deadline later than the gateway's budget does not extend it */
    ws_deadline_set(ws_now_s() + 60);
    CHECK_EQ_INT(profile(gw, &secs, &e), 0);
    ws_deadline_set(0);
    CHECK(atomic_load(&given) <= 5.0);
    ws_ai_free(gw);

    /* the gateway's own budget (0.2 s) binds: the node is to blame, its breaker opens */
    CHECK_EQ_INT(ws_ai_grpc_new(spec, &counting_ai_new()->base,
                                &(ws_ai_grpc_opts){.budget_s = 0.2, .breaker_cooldown_s = 30}, &gw, NULL),
                 0);
    atomic_store(&mode, 0);
    for (int i = 0; i < WS_AI_GRPC_BREAKER_FAILS; i++) {
        CHECK_EQ_INT(profile(gw, &secs, &e), WS_ETIMEDOUT);
        CHECK(strstr(e.msg, "AI call's time budget") != NULL);
    }
    before = atomic_load(&calls);
    CHECK_EQ_INT(profile(gw, &secs, &e), WS_EIO); /* circuit open: at once, not called */
    CHECK(secs < 0.05);
    CHECK_EQ_INT(atomic_load(&calls), before);
    ws_ai_free(gw);
    ws_grpc_server_free(srv);
}

static void tls_options(void)
{
    ws_error e = {0};
    SSL_CTX *ctx = NULL;
    CHECK_EQ_INT(ws_tls_server_ctx_new(&(ws_tls_server_opts){.cert_file = "/nonexistent/c.pem",
                                                             .key_file = "/nonexistent/k.pem"},
                                       &ctx, &e),
                 WS_EINVAL);
    CHECK(ctx == NULL && strstr(e.msg, "/nonexistent/c.pem") != NULL);
    CHECK_EQ_INT(ws_tls_server_ctx_new(&(ws_tls_server_opts){.cert_file = "x"}, &ctx, &e), WS_EINVAL);
    CHECK_EQ_INT(ws_tls_client_ctx_new(&(ws_tls_client_opts){.cert_file = "c.pem"}, &ctx, &e), WS_EINVAL);
    CHECK_EQ_INT(ws_tls_client_ctx_new(&(ws_tls_client_opts){.ca_file = "/nonexistent/ca.pem"}, &ctx, &e),
                 WS_EINVAL);
    CHECK(strstr(e.msg, "/nonexistent/ca.pem") != NULL);
    CHECK_EQ_INT(ws_tls_client_ctx_new(&(ws_tls_client_opts){.alpn = WS_TLS_ALPN_H2}, &ctx, &e), 0);
    SSL *ssl = SSL_new(ctx);
    CHECK_EQ_INT(ws_tls_client_expect_host(ssl, "127.0.0.1", &e), 0);
    CHECK_EQ_INT(ws_tls_client_expect_host(ssl, "::1", &e), 0);
    CHECK_EQ_INT(ws_tls_client_expect_host(ssl, "node.internal", &e), 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ws_ai *gw = NULL;
    CHECK_EQ_INT(ws_ai_grpc_new("grpc://127.0.0.1:1", &counting_ai_new()->base,
                                &(ws_ai_grpc_opts){.tls_ca = "/etc/ssl/certs/ca-certificates.crt"}, &gw, &e),
                 WS_EINVAL);
    CHECK(gw == NULL && strstr(e.msg, "grpcs://") != NULL);
    CHECK_EQ_INT(ws_ai_grpc_new("grpcs://127.0.0.1:1", &counting_ai_new()->base,
                                &(ws_ai_grpc_opts){.tls_ca = "/nonexistent/ca.pem"}, &gw, &e),
                 WS_EINVAL);
    CHECK(gw == NULL);
    CHECK_EQ_INT(ws_ai_grpc_new("http://127.0.0.1:1", &counting_ai_new()->base, NULL, &gw, &e), WS_EINVAL);
    CHECK_EQ_INT(ws_deadline_bound(5.0), 5.0);
    ws_deadline_set(3.0);
    CHECK(ws_deadline_bound(5.0) == 3.0 && ws_deadline_bound(2.0) == 2.0 && ws_deadline_get() == 3.0);
    CHECK(ws_deadline_set(0) == 3.0 && ws_deadline_get() == 0);
}

WS_TEST_MAIN(T(deadline_flows), T(tls_options))
