/* The gRPC layer in-process: message framing in every split, grpc-timeout and grpc-message
 * encoding, reflection answers over the embedded descriptor set, and the server with our own
 * client end to end (echo, status and message, unknown method, size caps, a deadline that
 * raises the handler's cancel flag so its work stops, a handler stopped by the deadline answering
 * DEADLINE_EXCEEDED, drain with a call in flight). */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/progress.h"
#include "grpc/grpc_client.h"
#include "grpc/grpc_reflect.h"
#include "grpc/grpc_server.h"
#include "grpc/grpc_wire.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

typedef struct collect {
    ws_buf all;
    int n;
} collect;

static int on_msg(void *arg, const uint8_t *m, size_t n)
{
    collect *c = arg;
    ws_buf_printf(&c->all, "[%zu:", n);
    ws_buf_append(&c->all, m, n);
    ws_buf_putc(&c->all, ']');
    c->n++;
    return 0;
}

static void framing_any_split(void)
{
    ws_buf f = WS_BUF_INIT;
    ws_grpc_frame(&f, (const uint8_t *)"hello", 5);
    ws_grpc_frame(&f, (const uint8_t *)"", 0);
    ws_grpc_frame(&f, (const uint8_t *)"xy", 2);
    for (size_t step = 1; step <= f.len; step++) {
        ws_grpc_deframer d;
        ws_grpc_deframer_init(&d, 16);
        collect c = {WS_BUF_INIT, 0};
        for (size_t off = 0; off < f.len; off += step) {
            size_t n = f.len - off < step ? f.len - off : step;
            CHECK_EQ_INT(ws_grpc_deframe(&d, (const uint8_t *)f.data + off, n, on_msg, &c, NULL), 0);
        }
        CHECK_EQ_INT(c.n, 3);
        CHECK_EQ_STR(c.all.data, "[5:hello][0:][2:xy]");
        CHECK(ws_grpc_deframer_idle(&d));
        ws_buf_free(&c.all);
        ws_grpc_deframer_free(&d);
    }
    ws_buf_free(&f);
}

static void framing_errors(void)
{
    ws_grpc_deframer d;
    collect c = {WS_BUF_INIT, 0};
    ws_grpc_deframer_init(&d, 4);
    CHECK_EQ_INT(ws_grpc_deframe(&d, (const uint8_t *)"\0\0\0\0\5", 5, on_msg, &c, NULL), WS_ETOOBIG);
    ws_grpc_deframer_free(&d);
    ws_grpc_deframer_init(&d, 4);
    CHECK_EQ_INT(ws_grpc_deframe(&d, (const uint8_t *)"\1\0\0\0\1x", 6, on_msg, &c, NULL), WS_EUNSUPPORTED);
    ws_grpc_deframer_free(&d);
    ws_grpc_deframer_init(&d, 4);
    CHECK_EQ_INT(ws_grpc_deframe(&d, (const uint8_t *)"\2\0\0\0\1x", 6, on_msg, &c, NULL), WS_EFORMAT);
    ws_grpc_deframer_free(&d);
    ws_grpc_deframer_init(&d, 4);
    CHECK_EQ_INT(ws_grpc_deframe(&d, (const uint8_t *)"\0\0\0\0\3ab", 7, on_msg, &c, NULL), 0);
    CHECK(!ws_grpc_deframer_idle(&d)); /* a message cut short */
    CHECK_EQ_INT(c.n, 0);
    ws_grpc_deframer_free(&d);
    ws_buf_free(&c.all);
}

static void timeouts_and_messages(void)
{
    double s = 0;
    CHECK_EQ_INT(ws_grpc_parse_timeout("100m", 4, &s), 0);
    CHECK_NEAR(s, 0.1, 1e-12);
    CHECK_EQ_INT(ws_grpc_parse_timeout("2H", 2, &s), 0);
    CHECK_NEAR(s, 7200, 1e-9);
    CHECK_EQ_INT(ws_grpc_parse_timeout("5n", 2, &s), 0);
    CHECK_NEAR(s, 5e-9, 1e-15);
    CHECK(ws_grpc_parse_timeout("m", 1, &s) < 0);
    CHECK(ws_grpc_parse_timeout("123456789S", 10, &s) < 0); /* at most 8 digits */
    CHECK(ws_grpc_parse_timeout("1x", 2, &s) < 0);
    CHECK(ws_grpc_parse_timeout("-1S", 3, &s) < 0);
    char t[24];
    ws_grpc_format_timeout(1.5, t, sizeof t);
    CHECK_EQ_INT(ws_grpc_parse_timeout(t, strlen(t), &s), 0);
    CHECK_NEAR(s, 1.5, 1e-6);
    ws_grpc_format_timeout(1e6, t, sizeof t);
    CHECK(strlen(t) <= 9);
    ws_buf e = WS_BUF_INIT, d = WS_BUF_INIT;
    ws_grpc_percent_encode(&e, "100% sure\n\xc3\xa9");
    CHECK_EQ_STR(e.data, "100%25 sure%0A%C3%A9");
    ws_grpc_percent_decode(&d, e.data, e.len);
    CHECK_EQ_STR(d.data, "100% sure\n\xc3\xa9");
    ws_buf_reset(&d);
    ws_grpc_percent_decode(&d, "bad%zz%4", 8);
    CHECK_EQ_STR(d.data, "bad%zz%4");
    ws_buf_free(&e);
    ws_buf_free(&d);
    CHECK_EQ_STR(ws_grpc_status_name(WS_GRPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    CHECK_EQ_STR(ws_grpc_status_name(99), "UNKNOWN");
    CHECK_EQ_INT(ws_grpc_status_of(WS_ENOENT), WS_GRPC_NOT_FOUND);
    CHECK_EQ_INT(ws_grpc_status_of(WS_ETOOBIG), WS_GRPC_RESOURCE_EXHAUSTED);
}

/* One reflection round: request built with protobuf-c, answer decoded likewise. */
static Grpc__Reflection__V1__ServerReflectionResponse *
reflect(Grpc__Reflection__V1__ServerReflectionRequest *rq)
{
    uint8_t buf[512];
    size_t n = grpc__reflection__v1__server_reflection_request__pack(rq, buf);
    ws_buf out = WS_BUF_INIT, msg = WS_BUF_INIT;
    CHECK_EQ_INT(ws_grpc_reflect_answer(buf, n, &out, &msg), WS_GRPC_OK);
    Grpc__Reflection__V1__ServerReflectionResponse *r =
        grpc__reflection__v1__server_reflection_response__unpack(NULL, out.len, (const uint8_t *)out.data);
    ws_buf_free(&out);
    ws_buf_free(&msg);
    return r;
}

static void reflection_answers(void)
{
    Grpc__Reflection__V1__ServerReflectionRequest rq = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    rq.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    rq.list_services = "";
    Grpc__Reflection__V1__ServerReflectionResponse *r = reflect(&rq);
    CHECK(r && r->list_services_response && r->list_services_response->n_service == 3);
    int seen = 0;
    for (size_t i = 0; r && r->list_services_response && i < r->list_services_response->n_service; i++)
        seen += !strcmp(r->list_services_response->service[i]->name, "whatstyle.ai.v1.AiService");
    CHECK_EQ_INT(seen, 1);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

    const char *symbols[] = {"whatstyle.ai.v1.AiService", "whatstyle.ai.v1.AiService.StreamResponse",
                             "whatstyle.ai.v1.Turn", "grpc.health.v1.HealthCheckResponse.ServingStatus"};
    for (size_t i = 0; i < 4; i++) {
        rq.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
        rq.file_containing_symbol = (char *)symbols[i];
        r = reflect(&rq);
        CHECK(r && r->file_descriptor_response && r->file_descriptor_response->n_file_descriptor_proto >= 1);
        grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    }
    rq.file_containing_symbol = "no.such.Thing";
    r = reflect(&rq);
    CHECK(r && r->error_response && r->error_response->error_code == WS_GRPC_NOT_FOUND);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    rq.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    rq.file_by_filename = "grpc/health/v1/health.proto";
    r = reflect(&rq);
    CHECK(r && r->file_descriptor_response && r->file_descriptor_response->n_file_descriptor_proto == 1);
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    ws_buf out = WS_BUF_INIT, msg = WS_BUF_INIT;
    CHECK_EQ_INT(ws_grpc_reflect_answer((const uint8_t *)"\x0a\xff", 2, &out, &msg),
                 WS_GRPC_INVALID_ARGUMENT);
    ws_buf_free(&out);
    ws_buf_free(&msg);
}

/* ---- the server and the client end to end ---- */

static atomic_int stopped_by_cancel;

static int h_echo(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    if (len >= 4 && !memcmp(req, "fail", 4)) {
        ws_buf_puts(msg, "failed as asked: 100%");
        return WS_GRPC_FAILED_PRECONDITION;
    }
    if (len >= 3 && !memcmp(req, "big", 3)) {
        static uint8_t big[100000];
        return ws_grpc_call_send(call, big, sizeof big) ? WS_GRPC_CANCELLED : WS_GRPC_OK;
    }
    return ws_grpc_call_send(call, req, len) ? WS_GRPC_CANCELLED : WS_GRPC_OK;
}

/* Works until cancelled (10 s at most), then records that the flag stopped it. */
static int h_slow(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    const volatile int *cancel = ws_grpc_call_cancel_flag(call);
    double t0 = ws_now_s();
    while (!*cancel && ws_now_s() - t0 < 10)
        usleep(1000);
    if (*cancel)
        atomic_fetch_add(&stopped_by_cancel, 1);
    return WS_GRPC_OK;
}

/* Watches the clock itself, as the AI node's handlers do, and answers CANCELLED when the call's
 * time is up (it sees that before the connection thread's deadline check does). */
static int h_until_deadline(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    double t0 = ws_now_s();
    while (!ws_grpc_call_cancelled(call) && ws_now_s() - t0 < 10)
        ;
    return WS_GRPC_CANCELLED;
}

static const ws_grpc_method methods[] = {
    {"/t.T/Echo", WS_GRPC_METHOD_UNARY, h_echo},
    {"/t.T/Slow", WS_GRPC_METHOD_UNARY, h_slow},
    {"/t.T/UntilDeadline", WS_GRPC_METHOD_UNARY, h_until_deadline},
};

static int call(ws_grpc_channel *ch, const char *path, const char *req, double budget, ws_buf *resp,
                ws_grpc_result *res)
{
    return ws_grpc_unary(ch, path, (const uint8_t *)req, strlen(req), ws_now_s() + budget, 1 << 20, resp,
                         res);
}

typedef struct slow_call {
    ws_grpc_channel *ch;
    int status;
} slow_call;

static void *run_slow(void *p)
{
    slow_call *sc = p;
    ws_buf resp = WS_BUF_INIT;
    ws_grpc_result res = {0};
    sc->status = call(sc->ch, "/t.T/Slow", "x", 10, &resp, &res);
    ws_buf_free(&resp);
    ws_grpc_result_free(&res);
    return NULL;
}

static void server_end_to_end(void)
{
    ws_grpc_server_config cfg = {
        .methods = methods, .n_methods = 3, .max_recv_message = 1024, .drain_grace_s = 0.5};
    ws_grpc_server *srv = NULL;
    CHECK_EQ_INT(ws_grpc_server_start(&cfg, &srv, NULL), 0);
    if (!srv)
        return;
    ws_grpc_channel *ch = ws_grpc_channel_new("127.0.0.1", ws_grpc_server_port(srv));
    ws_buf resp = WS_BUF_INIT;
    ws_grpc_result res = {0};
    CHECK_EQ_INT(call(ch, "/t.T/Echo", "hello", 5, &resp, &res), WS_GRPC_OK);
    CHECK(resp.len == 5 && !memcmp(resp.data, "hello", 5));
    CHECK_EQ_INT(call(ch, "/t.T/Echo", "again", 5, &resp, &res), WS_GRPC_OK); /* pooled connection */
    CHECK_EQ_INT(call(ch, "/t.T/Echo", "fail", 5, &resp, &res), WS_GRPC_FAILED_PRECONDITION);
    CHECK_EQ_STR(res.message.data, "failed as asked: 100%");
    CHECK_EQ_INT(call(ch, "/t.T/Nope", "x", 5, &resp, &res), WS_GRPC_UNIMPLEMENTED);
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(call(ch, "/t.T/Echo", big, 5, &resp, &res), WS_GRPC_RESOURCE_EXHAUSTED);
    CHECK_EQ_INT(ws_grpc_unary(ch, "/t.T/Echo", (const uint8_t *)"big", 3, ws_now_s() + 5, 1000, &resp, &res),
                 WS_GRPC_RESOURCE_EXHAUSTED); /* the client's own cap */
    /* a deadline: the client gets DEADLINE_EXCEEDED and the handler's work stops */
    double t0 = ws_now_s();
    CHECK_EQ_INT(call(ch, "/t.T/Slow", "x", 0.2, &resp, &res), WS_GRPC_DEADLINE_EXCEEDED);
    CHECK(ws_now_s() - t0 < 1.0);
    for (int i = 0; i < 200 && atomic_load(&stopped_by_cancel) < 1; i++)
        usleep(10000);
    CHECK_EQ_INT(atomic_load(&stopped_by_cancel), 1);
    /* the server's deadline ends first (a later grpc-timeout header, as from a proxy that shortens
     * it, replaces the client's 5 s): the handler's CANCELLED comes back as DEADLINE_EXCEEDED */
    for (int i = 0; i < 5; i++) {
        ws_grpc_md shorter = {"grpc-timeout", "50m"};
        t0 = ws_now_s();
        CHECK_EQ_INT(ws_grpc_unary_md(ch, "/t.T/UntilDeadline", &shorter, 1, (const uint8_t *)"x", 1,
                                      ws_now_s() + 5, 1000, &resp, &res),
                     WS_GRPC_DEADLINE_EXCEEDED);
        CHECK(ws_now_s() - t0 < 2.0);
    }
    /* drain with a call in flight: it is cancelled after the grace period, the server ends */
    slow_call sc = {ws_grpc_channel_new("127.0.0.1", ws_grpc_server_port(srv)), -1};
    pthread_t t;
    pthread_create(&t, NULL, run_slow, &sc);
    usleep(200000);
    t0 = ws_now_s();
    ws_grpc_server_drain(srv);
    CHECK(ws_grpc_server_draining(srv));
    ws_grpc_server_free(srv);
    pthread_join(t, NULL);
    CHECK(ws_now_s() - t0 < 3.0);
    CHECK_EQ_INT(sc.status, WS_GRPC_UNAVAILABLE);
    CHECK_EQ_INT(atomic_load(&stopped_by_cancel), 2);
    ws_grpc_channel_free(sc.ch);
    CHECK_EQ_INT(call(ch, "/t.T/Echo", "after", 1, &resp, &res), WS_GRPC_UNAVAILABLE);
    ws_grpc_channel_free(ch);
    ws_buf_free(&resp);
    ws_grpc_result_free(&res);
}

WS_TEST_MAIN(T(framing_any_split), T(framing_errors), T(timeouts_and_messages), T(reflection_answers),
             T(server_end_to_end))
