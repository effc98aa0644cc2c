/* The AI interface over gRPC to `whatstyle ai` nodes (see ai_grpc.h). */
#include "ai/ai_grpc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/mem.h"
#include "core/deadline.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/progress.h"
#include "core/tls.h"
#include "core/trace.h"
#include "grpc/grpc_client.h"
#include "grpc/grpc_wire.h"
#include "grpc/health/v1/health.pb-c.h"
#include "whatstyle/ai/v1/ai.pb-c.h"

#define MAX_NODES 32
#define VNODES 64
#define RESP_CAP (4u << 20)
#define PROBE_S 0.5
#define RELOAD_S 2.0

typedef struct node {
    char name[200];
    ws_grpc_channel *ch;
    pthread_mutex_t mu;
    int fails;         /* transport failures in a row */
    double open_until; /* breaker open (skipped) until then */
    bool probing;      /* one caller is probing it */
} node;

typedef struct vnode {
    uint64_t h;
    int node;
} vnode;

typedef struct gai {
    ws_ai *local;
    node nodes[MAX_NODES];
    int n;
    vnode ring[MAX_NODES * VNODES];
    int n_ring;
    double budget, cooldown;
    const ws_jwt_key *key; /* borrowed; NULL = no token */
    SSL_CTX *tls;          /* grpcs://: the client context (each channel holds a reference) */
} gai;

/* The call's metadata: a fresh token for user and the current traceparent. Returns how many
 * entries md holds; tok (freed by the caller) and tp (WS_TRACEPARENT_LEN + 1) back them. */
static size_t call_md(const gai *g, const char *user, ws_grpc_md md[2], ws_buf *tok, char *tp)
{
    size_t n = 0;
    if (g->key && user && *user) {
        ws_jwt_claims c = {0};
        snprintf(c.sub, sizeof c.sub, "%s", user);
        snprintf(c.role, sizeof c.role, "%s", WS_AI_TOKEN_ROLE);
        snprintf(c.iss, sizeof c.iss, "%s", WS_AI_TOKEN_ISS);
        snprintf(c.aud, sizeof c.aud, "%s", WS_AI_TOKEN_AUD);
        c.iat = (int64_t)time(NULL);
        c.exp = c.iat + WS_AI_TOKEN_TTL_S;
        ws_buf_puts(tok, "Bearer ");
        if (ws_jwt_sign(g->key, &c, tok, NULL) == 0)
            md[n++] = (ws_grpc_md){"authorization", tok->data};
    }
    if (ws_trace_current_traceparent(tp) == 0)
        md[n++] = (ws_grpc_md){"traceparent", tp};
    return n;
}

static uint64_t hash64(const char *s)
{
    uint64_t h = ws_hash_fnv1a(s, strlen(s));
    h ^= h >> 33; /* the FNV-1a bits mixed (murmur3's finaliser) so nearby names spread out */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static int vcmp(const void *a, const void *b)
{
    uint64_t x = ((const vnode *)a)->h, y = ((const vnode *)b)->h;
    return x < y ? -1 : x > y;
}

/* The nodes in the order a user's calls try them: the ring from hash(user) on. */
static int order_for(const gai *g, const char *user, int *order)
{
    uint64_t h = hash64(user ? user : "");
    int lo = 0, hi = g->n_ring;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (g->ring[mid].h < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool seen[MAX_NODES] = {0};
    int n = 0;
    for (int i = 0; i < g->n_ring && n < g->n; i++) {
        int k = g->ring[(lo + i) % g->n_ring].node;
        if (!seen[k])
            seen[k] = true, order[n++] = k;
    }
    return n;
}

static double jitter(double base)
{
    static _Thread_local unsigned seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
    return base * (0.5 + (double)rand_r(&seed) / RAND_MAX * 0.5);
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- the circuit breaker ---- */

static bool probe(node *n, double deadline)
{
    Grpc__Health__V1__HealthCheckRequest rq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    uint8_t buf[16];
    size_t len = grpc__health__v1__health_check_request__pack(&rq, buf);
    ws_buf resp = WS_BUF_INIT;
    ws_grpc_result res = {0};
    double d = ws_now_s() + PROBE_S < deadline ? ws_now_s() + PROBE_S : deadline;
    bool ok = false;
    if (ws_grpc_unary(n->ch, "/grpc.health.v1.Health/Check", buf, len, d, 64, &resp, &res) == WS_GRPC_OK) {
        Grpc__Health__V1__HealthCheckResponse *r =
            grpc__health__v1__health_check_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        ok = r && r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        if (r)
            grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    }
    ws_buf_free(&resp);
    ws_grpc_result_free(&res);
    return ok;
}

/* Whether a call may use the node now: yes while the breaker is closed; once the cool-down of
 * an open one has passed, the first caller probes it and closes it again on success. */
static bool admit(gai *g, node *n, double deadline)
{
    pthread_mutex_lock(&n->mu);
    if (n->fails < WS_AI_GRPC_BREAKER_FAILS) {
        pthread_mutex_unlock(&n->mu);
        return true;
    }
    if (ws_now_s() < n->open_until || n->probing) {
        pthread_mutex_unlock(&n->mu);
        return false;
    }
    n->probing = true;
    pthread_mutex_unlock(&n->mu);
    ws_grpc_channel_reset(n->ch);
    bool cut = deadline < ws_now_s() + PROBE_S; /* the caller's budget shortens the probe */
    bool ok = probe(n, deadline);
    pthread_mutex_lock(&n->mu);
    n->probing = false;
    if (ok)
        n->fails = 0;
    else if (!cut || ws_now_s() < deadline) /* a probe cut short proves nothing: the next caller tries */
        n->open_until = ws_now_s() + jitter(g->cooldown);
    pthread_mutex_unlock(&n->mu);
    return ok;
}

/* Counts a call's outcome on the node's breaker; a failure (why: the transport's message,
 * which names no user data) is logged when it starts a run of failures and when it opens the
 * breaker. */
static void record(gai *g, node *n, bool ok, const char *why)
{
    pthread_mutex_lock(&n->mu);
    int fails = ok ? 0 : n->fails + 1;
    n->fails = fails;
    if (fails >= WS_AI_GRPC_BREAKER_FAILS)
        n->open_until = ws_now_s() + jitter(g->cooldown);
    pthread_mutex_unlock(&n->mu);
    if (ok)
        return;
    if (fails == 1 || fails == WS_AI_GRPC_BREAKER_FAILS)
        WS_LOG(WS_LOG_WARN, fails == 1 ? "ai.node_failed" : "ai.node_breaker_open", why ? why : "unavailable",
               WS_LF_S("server.address", n->name), WS_LF_I("ai.node.failures", fails));
    ws_grpc_channel_reset(n->ch); /* its other pooled connections are likely dead too */
}

static int map_status(const ws_grpc_result *res, ws_error *err)
{
    const char *m = res->message.data ? res->message.data : ws_grpc_status_name(res->status);
    switch (res->status) {
    case WS_GRPC_OK: return 0;
    case WS_GRPC_NOT_FOUND: return ws_error_set(err, WS_ENOENT, "%s", m);
    case WS_GRPC_INVALID_ARGUMENT: return ws_error_set(err, WS_EINVAL, "%s", m);
    case WS_GRPC_RESOURCE_EXHAUSTED: return ws_error_set(err, WS_ETOOBIG, "%s", m);
    case WS_GRPC_UNAVAILABLE:
    case WS_GRPC_DEADLINE_EXCEEDED: return ws_error_set(err, WS_EIO, "the AI service is unavailable: %s", m);
    default:
        return ws_error_set(err, WS_EINTERNAL, "the AI service failed (%s): %s",
                            ws_grpc_status_name(res->status), m);
    }
}

/* One idempotent call for user: the user's node first, the next ones on UNAVAILABLE (with
 * jittered backoff), skipping nodes whose breaker is open, all within the time budget: ours,
 * or the request's own when it ends sooner (core/deadline.h). The budget running out is
 * WS_ETIMEDOUT; no node reachable WS_EIO. */
static int call(gai *g, const char *user, const char *path, const ProtobufCMessage *req, ws_buf *resp,
                ws_error *err)
{
    double t0 = ws_now_s(), own = t0 + g->budget, deadline = ws_deadline_bound(own), backoff = 0.02;
    bool theirs = deadline < own; /* the caller's budget binds: a timeout is not the node's fault */
    if (deadline <= t0)
        return ws_error_set(err, WS_ETIMEDOUT, "the request's time budget ran out before the AI call");
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = ws_xmalloc(len ? len : 1);
    protobuf_c_message_pack(req, buf);
    int order[MAX_NODES], n = order_for(g, user, order), rc = WS_EIO;
    ws_grpc_result res = {0};
    ws_grpc_md md[2];
    ws_buf tok = WS_BUF_INIT;
    char tp[WS_TRACEPARENT_LEN + 1];
    size_t n_md = call_md(g, user, md, &tok, tp);
    bool answered = false;
    for (int round = 0; round < 3 && !answered && ws_now_s() < deadline; round++) {
        bool tried = false;
        for (int i = 0; i < n && !answered && ws_now_s() < deadline; i++) {
            node *nd = &g->nodes[order[i]];
            if (!admit(g, nd, deadline))
                continue;
            tried = true;
            int st = ws_grpc_unary_md(nd->ch, path, md, n_md, buf, len, deadline, RESP_CAP, resp, &res);
            if (st != WS_GRPC_UNAVAILABLE && st != WS_GRPC_DEADLINE_EXCEEDED) {
                record(g, nd, true, NULL);
                answered = true;
                break;
            }
            if (st == WS_GRPC_DEADLINE_EXCEEDED && theirs)
                break; /* the caller's budget is spent: the node is not to blame */
            record(g, nd, false, res.message.data);
            double left = deadline - ws_now_s(), pause = jitter(backoff);
            sleep_s(pause < left ? pause : 0);
            backoff = backoff * 2 < 0.5 ? backoff * 2 : 0.5;
        }
        if (!tried)
            break; /* every breaker is open: answer at once rather than wait */
    }
    if (answered)
        rc = map_status(&res, err);
    else if (res.status == WS_GRPC_DEADLINE_EXCEEDED)
        rc = ws_error_set(err, WS_ETIMEDOUT, "the AI did not answer within the %s time budget (%.0f ms)",
                          theirs ? "request's" : "AI call's", (deadline - t0) * 1000);
    else if (res.status == WS_GRPC_UNAVAILABLE)
        rc = ws_error_set(err, WS_EIO, "no AI node answered within %.1f s (%s)", deadline - t0,
                          res.message.data ? res.message.data : "unavailable");
    else
        rc = ws_error_set(err, WS_EIO, "every AI node is unavailable (circuit open)");
    ws_grpc_result_free(&res);
    ws_buf_free(&tok);
    free(buf);
    return rc;
}

/* ReloadUserModel on every node (best effort: a node that is down holds no stale model). */
static void broadcast_reload(gai *g, const char *user)
{
    Whatstyle__Ai__V1__UserRequest rq = WHATSTYLE__AI__V1__USER_REQUEST__INIT;
    rq.user_id = (char *)user;
    size_t len = whatstyle__ai__v1__user_request__get_packed_size(&rq);
    uint8_t *buf = ws_xmalloc(len + 1);
    whatstyle__ai__v1__user_request__pack(&rq, buf);
    ws_grpc_md md[2];
    ws_buf tok = WS_BUF_INIT;
    char tp[WS_TRACEPARENT_LEN + 1];
    size_t n_md = call_md(g, user, md, &tok, tp);
    for (int i = 0; i < g->n; i++) {
        ws_buf resp = WS_BUF_INIT;
        ws_grpc_result res = {0};
        if (ws_grpc_unary_md(g->nodes[i].ch, "/whatstyle.ai.v1.AiService/ReloadUserModel", md, n_md, buf, len,
                             ws_now_s() + RELOAD_S, 1024, &resp, &res) == WS_GRPC_UNAVAILABLE)
            record(g, &g->nodes[i], false, res.message.data);
        ws_buf_free(&resp);
        ws_grpc_result_free(&res);
    }
    ws_buf_free(&tok);
    free(buf);
}

/* ---- the ws_ai operations ---- */

/* Fills a GenerateRequest; turns and tp (n_context + 1 each) hold its turns (borrowed strings). */
static void request_of(Whatstyle__Ai__V1__GenerateRequest *rq, Whatstyle__Ai__V1__Turn *turns,
                       Whatstyle__Ai__V1__Turn **tp, const char *user_id, const char *message,
                       const ws_ai_turn *context, size_t n_context)
{
    for (size_t i = 0; i < n_context; i++) {
        whatstyle__ai__v1__turn__init(&turns[i]);
        turns[i].author = (char *)(context[i].author ? context[i].author : "");
        turns[i].text = (char *)(context[i].text ? context[i].text : "");
        tp[i] = &turns[i];
    }
    rq->user_id = (char *)user_id;
    rq->message = (char *)message;
    rq->n_context = n_context;
    rq->context = tp;
}

static int g_generate(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                      size_t n_context, ws_ai_reply *out, ws_error *err)
{
    gai *g = ai->impl;
    memset(out, 0, sizeof *out);
    Whatstyle__Ai__V1__GenerateRequest rq = WHATSTYLE__AI__V1__GENERATE_REQUEST__INIT;
    Whatstyle__Ai__V1__Turn *turns = ws_xcalloc(n_context + 1, sizeof *turns);
    Whatstyle__Ai__V1__Turn **tp = ws_xcalloc(n_context + 1, sizeof *tp);
    request_of(&rq, turns, tp, user_id, message, context, n_context);
    ws_buf resp = WS_BUF_INIT;
    int rc = call(g, user_id, "/whatstyle.ai.v1.AiService/GenerateResponse", &rq.base, &resp, err);
    if (!rc) {
        Whatstyle__Ai__V1__GenerateReply *r =
            whatstyle__ai__v1__generate_reply__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        if (!r) {
            rc = ws_error_set(err, WS_EFORMAT, "the AI service sent a malformed GenerateReply");
        } else {
            out->reply = ws_xstrdup(r->reply);
            out->confidence = r->confidence;
            out->fallback = r->fallback;
            out->model_version = ws_xstrdup(r->model_version);
            out->processing_ms = r->processing_ms;
            whatstyle__ai__v1__generate_reply__free_unpacked(r, NULL);
        }
    }
    ws_buf_free(&resp);
    free(turns);
    free(tp);
    return rc;
}

/* What a StreamResponse call hands back as its Tokens arrive. */
typedef struct stream_rx {
    ws_ai_piece_fn on_piece;
    void *arg;
    const volatile int *cancel;
    ws_ai_reply *out;
    bool pieces, done, bad; /* pieces: one reached the caller (no failover after that) */
} stream_rx;

static int on_token(void *arg, const uint8_t *msg, size_t len)
{
    stream_rx *rx = arg;
    Whatstyle__Ai__V1__Token *t = whatstyle__ai__v1__token__unpack(NULL, len, msg);
    if (!t || rx->done) {
        rx->bad = true;
        if (t)
            whatstyle__ai__v1__token__free_unpacked(t, NULL);
        return 1;
    }
    int stop = 0;
    if (t->done) {
        rx->done = true;
        rx->out->reply = ws_xstrdup(t->reply);
        rx->out->confidence = t->confidence;
        rx->out->fallback = t->fallback;
        rx->out->model_version = ws_xstrdup(t->model_version);
        rx->out->processing_ms = t->processing_ms;
    } else if (*t->text) {
        rx->pieces = true;
        stop = rx->on_piece(rx->arg, t->text, strlen(t->text));
    }
    whatstyle__ai__v1__token__free_unpacked(t, NULL);
    return stop || (rx->cancel && *rx->cancel);
}

/* StreamResponse on the user's node (the next ones while it is UNAVAILABLE and nothing was
 * handed out yet), the pieces passed on as they come. */
static int g_generate_stream(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                             size_t n_context, const volatile int *cancel, ws_ai_piece_fn on_piece, void *arg,
                             ws_ai_reply *out, ws_error *err)
{
    gai *g = ai->impl;
    memset(out, 0, sizeof *out);
    Whatstyle__Ai__V1__GenerateRequest rq = WHATSTYLE__AI__V1__GENERATE_REQUEST__INIT;
    Whatstyle__Ai__V1__Turn *turns = ws_xcalloc(n_context + 1, sizeof *turns);
    Whatstyle__Ai__V1__Turn **tp = ws_xcalloc(n_context + 1, sizeof *tp);
    request_of(&rq, turns, tp, user_id, message, context, n_context);
    size_t len = protobuf_c_message_get_packed_size(&rq.base);
    uint8_t *buf = ws_xmalloc(len ? len : 1);
    protobuf_c_message_pack(&rq.base, buf);
    double deadline = ws_now_s() + g->budget;
    int order[MAX_NODES], n = order_for(g, user_id, order), st = WS_GRPC_UNAVAILABLE, rc;
    ws_grpc_result res = {0};
    ws_grpc_md md[2];
    ws_buf tok = WS_BUF_INIT;
    char trace[WS_TRACEPARENT_LEN + 1];
    size_t n_md = call_md(g, user_id, md, &tok, trace);
    stream_rx rx = {.on_piece = on_piece, .arg = arg, .cancel = cancel, .out = out};
    for (int i = 0; i < n && st == WS_GRPC_UNAVAILABLE && !rx.pieces && ws_now_s() < deadline; i++) {
        node *nd = &g->nodes[order[i]];
        if (!admit(g, nd, deadline))
            continue;
        st = ws_grpc_server_stream_md(nd->ch, "/whatstyle.ai.v1.AiService/StreamResponse", md, n_md, buf, len,
                                      deadline, RESP_CAP, on_token, &rx, &res);
        record(g, nd, st != WS_GRPC_UNAVAILABLE && st != WS_GRPC_DEADLINE_EXCEEDED, res.message.data);
    }
    if (rx.bad)
        rc = ws_error_set(err, WS_EFORMAT, "the AI service sent a malformed Token");
    else if (st == WS_GRPC_CANCELLED && !rx.done)
        rc = ws_error_set(err, WS_EAGAIN, "the reply was cancelled");
    else if (st == WS_GRPC_OK && !rx.done)
        rc = ws_error_set(err, WS_EFORMAT, "the AI service ended the stream without its last Token");
    else
        rc = st == WS_GRPC_OK ? 0 : map_status(&res, err);
    if (rc)
        ws_ai_reply_clear(out);
    ws_grpc_result_free(&res);
    ws_buf_free(&tok);
    free(buf);
    free(turns);
    free(tp);
    return rc;
}

static int g_style_profile(ws_ai *ai, const char *user_id, char **json_out, ws_error *err)
{
    gai *g = ai->impl;
    *json_out = NULL;
    Whatstyle__Ai__V1__UserRequest rq = WHATSTYLE__AI__V1__USER_REQUEST__INIT;
    rq.user_id = (char *)user_id;
    ws_buf resp = WS_BUF_INIT;
    int rc = call(g, user_id, "/whatstyle.ai.v1.AiService/GetStyleProfile", &rq.base, &resp, err);
    if (!rc) {
        Whatstyle__Ai__V1__StyleProfile *r =
            whatstyle__ai__v1__style_profile__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        if (!r)
            rc = ws_error_set(err, WS_EFORMAT, "the AI service sent a malformed StyleProfile");
        else
            *json_out = ws_xstrdup(r->json);
        if (r)
            whatstyle__ai__v1__style_profile__free_unpacked(r, NULL);
    }
    ws_buf_free(&resp);
    return rc;
}

static int g_train(ws_ai *ai, const ws_ai_train_request *req, ws_ai_progress_fn progress, void *progress_arg,
                   ws_ai_train_result *out, ws_error *err)
{
    gai *g = ai->impl;
    int rc = g->local->ops->train(g->local, req, progress, progress_arg, out, err);
    if (!rc)
        broadcast_reload(g, req->user_id);
    return rc;
}

static int g_reload(ws_ai *ai, const char *user_id, ws_error *err)
{
    gai *g = ai->impl;
    int rc = g->local->ops->reload(g->local, user_id, err);
    broadcast_reload(g, user_id);
    return rc;
}

static int g_forget(ws_ai *ai, const char *user_id, ws_error *err)
{
    gai *g = ai->impl;
    int rc = g->local->ops->forget(g->local, user_id, err);
    broadcast_reload(g, user_id);
    return rc;
}

static void g_destroy(ws_ai *ai)
{
    gai *g = ai->impl;
    for (int i = 0; i < g->n; i++) {
        ws_grpc_channel_free(g->nodes[i].ch);
        pthread_mutex_destroy(&g->nodes[i].mu);
    }
    ws_ai_free(g->local);
    SSL_CTX_free(g->tls);
    free(g);
    free(ai);
}

static const ws_ai_ops grpc_ops = {g_generate, g_train, g_reload, g_style_profile,  g_forget,
                                   g_destroy,  NULL,    NULL,     g_generate_stream};

/* Parses one "host:port" or "[v6]:port" of the spec into the next node. */
static int add_node(gai *g, const char *s, size_t len, ws_error *err)
{
    char item[160], host[160];
    if (len == 0 || len >= sizeof item || g->n >= MAX_NODES)
        return ws_error_set(err, WS_EINVAL, "bad --ai node list (at most %d nodes of host:port)", MAX_NODES);
    memcpy(item, s, len);
    item[len] = '\0';
    char *colon = strrchr(item, ':'), *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == item || end == colon + 1 || *end || port < 1 || port > 65535)
        return ws_error_set(err, WS_EINVAL, "bad AI node '%s': expected host:port", item);
    *colon = '\0';
    const char *h = item;
    if (item[0] == '[' && colon[-1] == ']')
        colon[-1] = '\0', h = item + 1;
    snprintf(host, sizeof host, "%s", h);
    node *n = &g->nodes[g->n];
    snprintf(n->name, sizeof n->name, "%s:%ld", host, port);
    n->ch = ws_grpc_channel_new_tls(host, (int)port, g->tls);
    pthread_mutex_init(&n->mu, NULL);
    for (int v = 0; v < VNODES; v++) {
        char key[240];
        snprintf(key, sizeof key, "%s#%d", n->name, v);
        g->ring[g->n_ring++] = (vnode){hash64(key), g->n};
    }
    g->n++;
    return 0;
}

int ws_ai_grpc_new(const char *spec, ws_ai *local, const ws_ai_grpc_opts *opts, ws_ai **out, ws_error *err)
{
    *out = NULL;
    bool tls = spec && !strncmp(spec, "grpcs://", 8);
    if (!spec || (!tls && strncmp(spec, "grpc://", 7) != 0) || !local) {
        ws_ai_free(local);
        return ws_error_set(err, WS_EINVAL,
                            "--ai must be grpc://host:port[,host:port...] (grpcs:// for TLS)");
    }
    gai *g = ws_xcalloc(1, sizeof *g);
    g->local = local;
    g->budget = opts && opts->budget_s > 0 ? opts->budget_s : 5.0;
    g->cooldown = opts && opts->breaker_cooldown_s > 0 ? opts->breaker_cooldown_s : 2.0;
    g->key = opts ? opts->sign_key : NULL;
    int rc = 0;
    if (tls) {
        ws_tls_client_opts to = {.ca_file = opts ? opts->tls_ca : NULL,
                                 .cert_file = opts ? opts->tls_cert : NULL,
                                 .key_file = opts ? opts->tls_key : NULL,
                                 .alpn = WS_TLS_ALPN_H2};
        rc = ws_tls_client_ctx_new(&to, &g->tls, err);
    } else if (opts && (opts->tls_ca || opts->tls_cert || opts->tls_key)) {
        rc = ws_error_set(err, WS_EINVAL, "--ai-ca, --ai-cert and --ai-key need --ai grpcs://...");
    }
    for (const char *p = spec + (tls ? 8 : 7); !rc && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        rc = add_node(g, p, len, err);
        p += len + (comma ? 1 : 0);
    }
    if (!rc && g->n == 0)
        rc = ws_error_set(err, WS_EINVAL, "--ai names no node");
    if (rc) {
        ws_ai tmp = {&grpc_ops, g};
        ws_ai *t = ws_xcalloc(1, sizeof *t);
        *t = tmp;
        g_destroy(t);
        return rc;
    }
    qsort(g->ring, (size_t)g->n_ring, sizeof g->ring[0], vcmp);
    ws_ai *ai = ws_xcalloc(1, sizeof *ai);
    ai->ops = &grpc_ops;
    ai->impl = g;
    *out = ai;
    return 0;
}
