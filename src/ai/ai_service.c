/* The gRPC AI service: AiService, Health and reflection handlers over a ws_ai (see ai_service.h). */
#include "ai/ai_service.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ai/ai_grpc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/progress.h"
#include "core/tls.h"
#include "core/trace.h"
#include "core/utf8.h"
#include "grpc/grpc_reflect.h"
#include "grpc/grpc_server.h"
#include "grpc/grpc_wire.h"
#include "grpc/health/v1/health.pb-c.h"
#include "whatstyle/ai/v1/ai.pb-c.h"

#define SERVICE_NAME "whatstyle.ai.v1.AiService"
#define MAX_CONTEXT_TURNS 64
#define USER_ID_MAX 128

struct ws_ai_service {
    ws_ai *ai;
    ws_grpc_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, workers;          /* replies being computed, and how many may run at once */
    const ws_jwt_key *gateway_key; /* borrowed; NULL = no authentication */
};

/* Checks the call's bearer token: OK, UNAUTHENTICATED (missing, malformed, not signed by the
 * gateway, expired) or PERMISSION_DENIED (for another user than user; NULL = any user). */
static int authorize(const ws_ai_service *svc, ws_grpc_call *call, const char *user, ws_buf *msg)
{
    if (!svc->gateway_key)
        return WS_GRPC_OK;
    const char *h = ws_grpc_call_metadata(call, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        ws_buf_puts(msg, "a bearer token (authorization metadata) is required");
        return WS_GRPC_UNAUTHENTICATED;
    }
    ws_jwt_expect x = {
        .now = (int64_t)time(NULL), .leeway_s = 5, .iss = WS_AI_TOKEN_ISS, .aud = WS_AI_TOKEN_AUD};
    ws_jwt_claims c;
    ws_error e = {0};
    if (ws_jwt_verify(svc->gateway_key, h + 7, strlen(h + 7), &x, &c, &e) != 0) {
        ws_buf_printf(msg, "invalid token: %s", e.msg);
        return WS_GRPC_UNAUTHENTICATED;
    }
    if (user && strcmp(c.sub, user) != 0) {
        ws_buf_puts(msg, "the token is for another user");
        return WS_GRPC_PERMISSION_DENIED;
    }
    return WS_GRPC_OK;
}

/* The time the running call was given (its grpc-timeout) in ms, -1 without one: set by
 * call_span, logged by call_end. Each call runs on its own thread. */
static _Thread_local int64_t call_timeout_ms = -1;

/* The call's server span, continuing the caller's traceparent (a new trace without one). */
static ws_span *call_span(ws_grpc_call *call, const char *name)
{
    const char *tp = ws_grpc_call_metadata(call, "traceparent");
    ws_trace_ctx remote;
    bool has = tp && ws_traceparent_parse(tp, strlen(tp), &remote) == 0;
    ws_span *sp = ws_span_begin(name, WS_SPAN_SERVER, has ? &remote : NULL);
    ws_span_attr_str(sp, "rpc.system", "grpc");
    double d = ws_grpc_call_deadline(call), left = d > 0 ? d - ws_now_s() : -1;
    call_timeout_ms = d > 0 ? (int64_t)(left > 0 ? left * 1000 + 0.5 : 0) : -1;
    if (d > 0)
        ws_span_attr_int(sp, "rpc.grpc.timeout_ms", call_timeout_ms);
    return sp;
}

/* Ends the span with the call's status and writes the call's log line (inside the span, so
 * it carries the trace id). */
static int call_end(ws_span *sp, const char *method, int st)
{
    ws_span_attr_int(sp, "rpc.grpc.status_code", st);
    if (st != WS_GRPC_OK)
        ws_span_error(sp, ws_grpc_status_name(st));
    WS_LOG(WS_LOG_INFO, "ai.call", NULL, WS_LF_S("rpc.method", method),
           WS_LF_S("rpc.grpc.status", ws_grpc_status_name(st)),
           call_timeout_ms >= 0 ? WS_LF_I("rpc.grpc.timeout_ms", call_timeout_ms)
                                : (ws_log_field){.type = WS_LF_END});
    ws_span_end(sp);
    return st;
}

/* Waits for one of the engine's slots (replies beyond the cores only thrash the caches); false
 * when the call was cancelled or timed out while it waited. */
static bool slot_take(ws_ai_service *svc, ws_grpc_call *call)
{
    pthread_mutex_lock(&svc->mu);
    while (svc->running >= svc->workers && !ws_grpc_call_cancelled(call)) {
        struct timespec ts = ws_cond_deadline(5);
        pthread_cond_timedwait(&svc->cv, &svc->mu, &ts);
    }
    bool ok = svc->running < svc->workers;
    if (ok)
        svc->running++;
    pthread_mutex_unlock(&svc->mu);
    return ok;
}

static void slot_give(ws_ai_service *svc)
{
    pthread_mutex_lock(&svc->mu);
    svc->running--;
    pthread_cond_signal(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
}

/* Packs and sends one message; a failure to send means the call is over (cancelled). */
static int send_msg(ws_grpc_call *call, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = ws_xmalloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    int rc = ws_grpc_call_send(call, buf, n);
    free(buf);
    if (rc == WS_ETOOBIG)
        return WS_GRPC_RESOURCE_EXHAUSTED;
    return rc ? WS_GRPC_CANCELLED : WS_GRPC_OK;
}

/* True when s is well-formed UTF-8 (proto3 strings must be). */
static bool utf8_ok(const char *s)
{
    return ws_utf8_valid(s, strlen(s));
}

static int user_ok(const char *user_id, ws_buf *msg)
{
    if (!*user_id || strlen(user_id) > USER_ID_MAX) {
        ws_buf_puts(msg, "user_id is required (at most 128 bytes)");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    return WS_GRPC_OK;
}

/* The gRPC status for an error of the engine; cancelled work reports why it stopped. */
static int engine_status(ws_grpc_call *call, int rc, const ws_error *e, ws_buf *msg)
{
    if (rc == WS_EAGAIN) {
        bool late = ws_grpc_call_deadline(call) > 0 && ws_now_s() >= ws_grpc_call_deadline(call);
        ws_buf_puts(msg, late ? "deadline exceeded" : "cancelled");
        return late ? WS_GRPC_DEADLINE_EXCEEDED : WS_GRPC_CANCELLED;
    }
    ws_buf_puts(msg, e->msg[0] ? e->msg : ws_strerror(rc));
    return ws_grpc_status_of(rc);
}

/* Runs a GenerateRequest through the engine (unary and streaming share it): on_piece, when set,
 * gets the reply's pieces as they are generated (when the engine streams). */
static int run_generate(ws_ai_service *svc, ws_grpc_call *call, const uint8_t *req, size_t len,
                        ws_ai_piece_fn on_piece, void *arg, ws_ai_reply *out, ws_buf *msg)
{
    Whatstyle__Ai__V1__GenerateRequest *r = whatstyle__ai__v1__generate_request__unpack(NULL, len, req);
    if (!r) {
        ws_buf_puts(msg, "malformed GenerateRequest");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    int st = user_ok(r->user_id, msg);
    if (st == WS_GRPC_OK)
        st = authorize(svc, call, r->user_id, msg);
    bool text_ok = utf8_ok(r->message);
    for (size_t i = 0; i < r->n_context && text_ok; i++)
        text_ok = utf8_ok(r->context[i]->author) && utf8_ok(r->context[i]->text);
    if (st == WS_GRPC_OK && (!*r->message || !text_ok)) {
        ws_buf_puts(msg, !text_ok ? "strings must be UTF-8" : "message is required");
        st = WS_GRPC_INVALID_ARGUMENT;
    }
    if (st == WS_GRPC_OK) {
        size_t first = r->n_context > MAX_CONTEXT_TURNS ? r->n_context - MAX_CONTEXT_TURNS : 0, n = 0;
        ws_ai_turn *ctx = ws_xcalloc(r->n_context - first + 1, sizeof *ctx);
        for (size_t i = first; i < r->n_context; i++, n++) {
            ctx[n].author = *r->context[i]->author ? r->context[i]->author : NULL;
            ctx[n].text = r->context[i]->text;
        }
        ws_error e = {0};
        const volatile int *cancel = ws_grpc_call_cancel_flag(call);
        int rc = WS_EAGAIN;
        if (slot_take(svc, call)) {
            const ws_ai_ops *ops = svc->ai->ops;
            if (on_piece && ops->generate_stream)
                rc = ops->generate_stream(svc->ai, r->user_id, r->message, ctx, n, cancel, on_piece, arg, out,
                                          &e);
            else if (ops->generate_cancellable)
                rc = ops->generate_cancellable(svc->ai, r->user_id, r->message, ctx, n, cancel, out, &e);
            else
                rc = ops->generate(svc->ai, r->user_id, r->message, ctx, n, out, &e);
            slot_give(svc);
        }
        free(ctx);
        if (rc)
            st = engine_status(call, rc, &e, msg);
    }
    whatstyle__ai__v1__generate_request__free_unpacked(r, NULL);
    return st;
}

static int h_generate(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    ws_ai_reply out = {0};
    ws_span *sp = call_span(call, "AiService/GenerateResponse");
    int st = run_generate(arg, call, req, len, NULL, NULL, &out, msg);
    if (st == WS_GRPC_OK) {
        Whatstyle__Ai__V1__GenerateReply rep = WHATSTYLE__AI__V1__GENERATE_REPLY__INIT;
        rep.reply = out.reply;
        rep.confidence = out.confidence;
        rep.fallback = out.fallback;
        rep.model_version = out.model_version ? out.model_version : "";
        rep.processing_ms = out.processing_ms;
        st = send_msg(call, &rep.base);
    }
    ws_ai_reply_clear(&out);
    return call_end(sp, "GenerateResponse", st);
}

/* One Token with a piece of the reply; non-zero (stop the engine) once the call is over. */
static int send_piece(void *arg, const char *piece, size_t len)
{
    ws_grpc_call *call = arg;
    char *text = ws_xstrndup(piece, len);
    Whatstyle__Ai__V1__Token t = WHATSTYLE__AI__V1__TOKEN__INIT;
    t.text = text;
    int st = send_msg(call, &t.base);
    free(text);
    return st != WS_GRPC_OK;
}

/* Streams the reply as the engine generates it (a Token per piece of whole characters), then a
 * last Token with done = true, the reply's figures and the whole reply. An engine that cannot
 * stream gives its reply in one piece. RST_STREAM or the deadline raise the call's cancel flag,
 * which stops the generation between two tokens. */
static int h_stream(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    ws_ai_service *svc = arg;
    ws_ai_reply out = {0};
    ws_span *sp = call_span(call, "AiService/StreamResponse");
    int st = run_generate(svc, call, req, len, send_piece, call, &out, msg);
    if (st == WS_GRPC_OK && !svc->ai->ops->generate_stream && out.reply && *out.reply)
        st = send_piece(call, out.reply, strlen(out.reply)) ? WS_GRPC_CANCELLED : WS_GRPC_OK;
    if (st == WS_GRPC_OK) {
        Whatstyle__Ai__V1__Token t = WHATSTYLE__AI__V1__TOKEN__INIT;
        t.done = true;
        t.confidence = out.confidence;
        t.fallback = out.fallback;
        t.model_version = out.model_version ? out.model_version : "";
        t.processing_ms = out.processing_ms;
        t.reply = out.reply ? out.reply : "";
        st = send_msg(call, &t.base);
    }
    ws_ai_reply_clear(&out);
    return call_end(sp, "StreamResponse", st);
}

static bool resident(ws_ai *ai, const char *user)
{
    ws_ai_status s;
    bool found = false;
    if (ai->ops->status && ai->ops->status(ai, &s, NULL) == 0) {
        for (size_t i = 0; i < s.n_resident && !found; i++)
            found = !strcmp(s.resident[i].user_id, user);
        ws_ai_status_clear(&s);
    }
    return found;
}

static int h_reload(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    ws_ai_service *svc = arg;
    Whatstyle__Ai__V1__UserRequest *r = whatstyle__ai__v1__user_request__unpack(NULL, len, req);
    if (!r) {
        ws_buf_puts(msg, "malformed UserRequest");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    ws_span *sp = call_span(call, "AiService/ReloadUserModel");
    int st = user_ok(r->user_id, msg);
    if (st == WS_GRPC_OK)
        st = authorize(svc, call, r->user_id, msg);
    if (st == WS_GRPC_OK) {
        Whatstyle__Ai__V1__ReloadReply rep = WHATSTYLE__AI__V1__RELOAD_REPLY__INIT;
        rep.was_resident = resident(svc->ai, r->user_id);
        ws_error e = {0};
        int rc = svc->ai->ops->reload(svc->ai, r->user_id, &e);
        st = rc ? engine_status(call, rc, &e, msg) : send_msg(call, &rep.base);
    }
    whatstyle__ai__v1__user_request__free_unpacked(r, NULL);
    return call_end(sp, "ReloadUserModel", st);
}

static int h_profile(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    ws_ai_service *svc = arg;
    Whatstyle__Ai__V1__UserRequest *r = whatstyle__ai__v1__user_request__unpack(NULL, len, req);
    if (!r) {
        ws_buf_puts(msg, "malformed UserRequest");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    ws_span *sp = call_span(call, "AiService/GetStyleProfile");
    int st = user_ok(r->user_id, msg);
    if (st == WS_GRPC_OK)
        st = authorize(svc, call, r->user_id, msg);
    if (st == WS_GRPC_OK) {
        char *json = NULL;
        ws_error e = {0};
        int rc = svc->ai->ops->style_profile(svc->ai, r->user_id, &json, &e);
        if (rc) {
            st = engine_status(call, rc, &e, msg);
        } else {
            Whatstyle__Ai__V1__StyleProfile rep = WHATSTYLE__AI__V1__STYLE_PROFILE__INIT;
            rep.json = json ? json : "";
            st = send_msg(call, &rep.base);
        }
        free(json);
    }
    whatstyle__ai__v1__user_request__free_unpacked(r, NULL);
    return call_end(sp, "GetStyleProfile", st);
}

static int h_status(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    ws_ai_service *svc = arg;
    Whatstyle__Ai__V1__ModelStatusRequest *r =
        whatstyle__ai__v1__model_status_request__unpack(NULL, len, req);
    if (!r) {
        ws_buf_puts(msg, "malformed ModelStatusRequest");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    whatstyle__ai__v1__model_status_request__free_unpacked(r, NULL);
    int ast = authorize(svc, call, NULL, msg); /* any user's token: the figures name no one's data */
    if (ast != WS_GRPC_OK)
        return ast;
    if (!svc->ai->ops->status) {
        ws_buf_puts(msg, "this engine keeps no model cache");
        return WS_GRPC_UNIMPLEMENTED;
    }
    ws_ai_status s;
    ws_error e = {0};
    int rc = svc->ai->ops->status(svc->ai, &s, &e);
    if (rc)
        return engine_status(call, rc, &e, msg);
    Whatstyle__Ai__V1__ModelStatusReply rep = WHATSTYLE__AI__V1__MODEL_STATUS_REPLY__INIT;
    Whatstyle__Ai__V1__ResidentModel *rm = ws_xcalloc(s.n_resident + 1, sizeof *rm);
    Whatstyle__Ai__V1__ResidentModel **rp = ws_xcalloc(s.n_resident + 1, sizeof *rp);
    for (size_t i = 0; i < s.n_resident; i++) {
        whatstyle__ai__v1__resident_model__init(&rm[i]);
        rm[i].user_id = s.resident[i].user_id;
        rm[i].bytes = s.resident[i].bytes;
        rm[i].idle_s = s.resident[i].idle_s;
        rp[i] = &rm[i];
    }
    rep.memory_budget_bytes = s.memory_budget;
    rep.resident_bytes = s.resident_bytes;
    rep.n_resident = s.n_resident;
    rep.resident = rp;
    rep.base_model = s.base_model ? s.base_model : "";
    rep.loads = s.loads;
    rep.evictions = s.evictions;
    int st = send_msg(call, &rep.base);
    free(rm);
    free(rp);
    ws_ai_status_clear(&s);
    return st;
}

/* ---- grpc.health.v1.Health ---- */

static int health_of(ws_grpc_call *call, const char *service)
{
    if (*service && strcmp(service, SERVICE_NAME) != 0)
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    return ws_grpc_call_draining(call) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

static int send_health(ws_grpc_call *call, int status)
{
    Grpc__Health__V1__HealthCheckResponse rep = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    rep.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    return send_msg(call, &rep.base);
}

static int h_check(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    Grpc__Health__V1__HealthCheckRequest *r = grpc__health__v1__health_check_request__unpack(NULL, len, req);
    if (!r) {
        ws_buf_puts(msg, "malformed HealthCheckRequest");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    int h = health_of(call, r->service), st;
    if (h == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
        ws_buf_printf(msg, "unknown service");
        st = WS_GRPC_NOT_FOUND;
    } else {
        st = send_health(call, h);
    }
    grpc__health__v1__health_check_request__free_unpacked(r, NULL);
    return st;
}

/* Sends the status now and on every change, until the client goes away; a draining server
 * sends NOT_SERVING and ends the stream. */
static int h_watch(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    Grpc__Health__V1__HealthCheckRequest *r = grpc__health__v1__health_check_request__unpack(NULL, len, req);
    if (!r) {
        ws_buf_puts(msg, "malformed HealthCheckRequest");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    int last = -1, st = WS_GRPC_OK;
    for (;;) {
        int h = health_of(call, r->service);
        if (h != last && (st = send_health(call, h)) != WS_GRPC_OK)
            break;
        last = h;
        if (ws_grpc_call_draining(call) || ws_grpc_call_cancelled(call))
            break;
        ws_grpc_call_wait(call, 5.0);
    }
    grpc__health__v1__health_check_request__free_unpacked(r, NULL);
    if (st == WS_GRPC_OK && ws_grpc_call_cancelled(call))
        st = WS_GRPC_CANCELLED;
    return st;
}

static const ws_grpc_method methods[] = {
    {"/" SERVICE_NAME "/GenerateResponse", WS_GRPC_METHOD_UNARY, h_generate},
    {"/" SERVICE_NAME "/StreamResponse", WS_GRPC_METHOD_SERVER_STREAM, h_stream},
    {"/" SERVICE_NAME "/ReloadUserModel", WS_GRPC_METHOD_UNARY, h_reload},
    {"/" SERVICE_NAME "/GetStyleProfile", WS_GRPC_METHOD_UNARY, h_profile},
    {"/" SERVICE_NAME "/ModelStatus", WS_GRPC_METHOD_UNARY, h_status},
    {"/grpc.health.v1.Health/Check", WS_GRPC_METHOD_UNARY, h_check},
    {"/grpc.health.v1.Health/Watch", WS_GRPC_METHOD_SERVER_STREAM, h_watch},
    {WS_GRPC_REFLECTION_PATH, WS_GRPC_METHOD_BIDI_INLINE, ws_grpc_reflect_handler},
};

int ws_ai_service_start(ws_ai *ai, const ws_ai_service_config *cfg, ws_ai_service **out, ws_error *err)
{
    *out = NULL;
    if (!ai)
        return ws_error_set(err, WS_EINVAL, "no AI engine");
    ws_ai_service *s = ws_xcalloc(1, sizeof *s);
    s->ai = ai;
    s->gateway_key = cfg ? cfg->gateway_key : NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    s->workers = cfg && cfg->workers > 0 ? cfg->workers : cores > 0 ? (int)cores : 2;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    ws_grpc_server_config gc = {.host = cfg ? cfg->host : NULL,
                                .port = cfg ? cfg->port : 0,
                                .methods = methods,
                                .n_methods = sizeof methods / sizeof methods[0],
                                .arg = s,
                                .max_recv_message = cfg ? cfg->max_message : 0,
                                .max_send_message = cfg ? cfg->max_message : 0,
                                .keepalive_s = cfg ? cfg->keepalive_s : 0,
                                .keepalive_timeout_s = cfg ? cfg->keepalive_timeout_s : 0,
                                .drain_grace_s = cfg ? cfg->drain_grace_s : 0};
    int rc = 0;
    if (cfg && (cfg->tls_cert || cfg->tls_key)) {
        ws_tls_server_opts to = {.cert_file = cfg->tls_cert,
                                 .key_file = cfg->tls_key,
                                 .client_ca_file = cfg->tls_client_ca,
                                 .min_version = TLS1_2_VERSION,
                                 .alpn = WS_TLS_ALPN_H2,
                                 .alpn_required = true};
        rc = ws_tls_server_ctx_new(&to, &gc.tls, err);
    }
    if (!rc)
        rc = ws_grpc_server_start(&gc, &s->srv, err);
    SSL_CTX_free(gc.tls); /* the server holds its own reference */
    if (rc) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int ws_ai_service_port(const ws_ai_service *s)
{
    return ws_grpc_server_port(s->srv);
}

void ws_ai_service_drain(ws_ai_service *s)
{
    ws_grpc_server_drain(s->srv);
}

void ws_ai_service_free(ws_ai_service *s)
{
    if (!s)
        return;
    ws_grpc_server_free(s->srv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
