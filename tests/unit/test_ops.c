/* Unit tests of the operations layer: the logger's lines (ECS JSON, escaping, caps, the
 * human format, levels) and W3C trace context (traceparent parse/format, span parents,
 * sampling, the current span across threads). */
#include "harness.h"

#include "core/json.h"
#include "core/log.h"
#include "core/trace.h"
#include "core/trace_export.h"

static const ws_json *parse_line(ws_buf *b, ws_json_doc **doc)
{
    CHECK(b->len > 0 && b->data[b->len - 1] == '\n');
    CHECK(ws_json_parse(b->data, b->len - 1, doc, NULL) == 0);
    return *doc ? ws_json_root(*doc) : NULL;
}

static void test_log_json(void)
{
    ws_log_setup("serve", WS_LOG_INFO, WS_LOG_JSON, stderr);
    ws_buf b = WS_BUF_INIT;
    ws_log_field f[] = {WS_LF_S("http.route", "/v1/\"x\"\n"),
                        WS_LF_I("http.response.status_code", 201),
                        WS_LF_D("x.ratio", 0.25),
                        WS_LF_B("x.flag", 1),
                        WS_LF_S("user.id", NULL),
                        {.type = WS_LF_END}};
    ws_log_render(&b, true, WS_LOG_WARN, "http.request", "caf\xc3\xa9 \x01", f, 6);
    ws_json_doc *doc = NULL;
    const ws_json *r = parse_line(&b, &doc);
    if (r) {
        CHECK_EQ_STR(ws_json_get_str(r, "log.level"), "warn");
        CHECK_EQ_STR(ws_json_get_str(r, "event.action"), "http.request");
        CHECK_EQ_STR(ws_json_get_str(r, "message"), "caf\xc3\xa9 \x01");
        CHECK_EQ_STR(ws_json_get_str(r, "service.node.role"), "serve");
        CHECK_EQ_STR(ws_json_get_str(r, "http.route"), "/v1/\"x\"\n");
        double v = 0;
        CHECK(ws_json_get_num(r, "http.response.status_code", &v) && v == 201);
        CHECK(ws_json_get_num(r, "x.ratio", &v) && v == 0.25);
        bool fl = false;
        CHECK(ws_json_get_bool(r, "x.flag", &fl) && fl);
        CHECK(ws_json_get(r, "user.id") && ws_json_get(r, "user.id")->type == WS_JSON_NULL);
        CHECK(ws_json_get(r, "trace.id") == NULL); /* no current span */
        CHECK_EQ_INT(strlen(ws_json_get_str(r, "@timestamp")), 24);
    }
    ws_json_doc_free(doc);
    ws_buf_free(&b);
}

static void test_log_caps_and_trace(void)
{
    ws_log_setup("ai", WS_LOG_INFO, WS_LOG_JSON, stderr);
    char big[WS_LOG_VALUE_MAX * 2];
    memset(big, 'a', sizeof big - 3);
    memcpy(big + WS_LOG_VALUE_MAX - 1, "\xc3\xa9", 2); /* a character across the cap */
    big[sizeof big - 1] = '\0';
    ws_span *sp = ws_span_begin("t", WS_SPAN_INTERNAL, NULL);
    ws_buf b = WS_BUF_INIT;
    ws_log_render(&b, true, WS_LOG_INFO, "x", big, NULL, 0);
    ws_json_doc *doc = NULL;
    const ws_json *r = parse_line(&b, &doc);
    if (r) {
        const ws_json *m = ws_json_get(r, "message");
        CHECK(m && m->len == WS_LOG_VALUE_MAX - 1); /* cut before the split character */
        char tid[33];
        ws_trace_id_hex(ws_span_ctx(sp), tid);
        CHECK_EQ_STR(ws_json_get_str(r, "trace.id"), tid);
    }
    ws_json_doc_free(doc);
    ws_span_end(sp);
    CHECK(ws_trace_current() == NULL);
    ws_buf_free(&b);
}

static void test_log_text_and_levels(void)
{
    ws_log_setup("worker", WS_LOG_WARN, WS_LOG_TEXT, stderr);
    CHECK(!ws_log_enabled(WS_LOG_INFO));
    CHECK(ws_log_enabled(WS_LOG_ERROR));
    ws_buf b = WS_BUF_INIT;
    ws_log_field f[] = {WS_LF_S("job.id", "job_1"), WS_LF_I("n", 3)};
    ws_log_render(&b, false, WS_LOG_ERROR, "job.failed", "no space", f, 2);
    CHECK(b.data && strstr(b.data, " error worker job.failed: no space job.id=job_1 n=3\n"));
    CHECK_EQ_INT(ws_log_level_parse("debug"), WS_LOG_DEBUG);
    CHECK_EQ_INT(ws_log_level_parse("loud"), -1);
    CHECK_EQ_INT(ws_log_format_parse("json"), WS_LOG_JSON);
    uint64_t before = ws_log_lines();
    ws_log_write(WS_LOG_INFO, "dropped", NULL, NULL, 0); /* under the level */
    CHECK_EQ_INT(ws_log_lines(), before);
    ws_log_setup(NULL, WS_LOG_INFO, WS_LOG_AUTO, NULL);
    ws_buf_free(&b);
}

static void test_traceparent(void)
{
    ws_trace_ctx c;
    const char *v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    CHECK_EQ_INT(ws_traceparent_parse(v, strlen(v), &c), 0);
    CHECK(c.sampled);
    char out[WS_TRACEPARENT_LEN + 1];
    ws_traceparent_format(&c, out);
    CHECK_EQ_STR(out, v);
    CHECK_EQ_INT(ws_traceparent_parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ", 57, &c),
                 0);
    CHECK(!c.sampled);
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 with more */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(ws_traceparent_parse(bad[i], strlen(bad[i]), &c), WS_EINVAL);
    const char *fut = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
    CHECK_EQ_INT(ws_traceparent_parse(fut, strlen(fut), &c), 0);
}

static ws_span *sunk[8];
static size_t n_sunk;
static void sink(ws_span *sp)
{
    if (n_sunk < 8)
        sunk[n_sunk++] = sp;
    else
        ws_span_free(sp);
}

static void test_spans(void)
{
    ws_trace_set_sink(sink);
    ws_trace_set_ratio(1);
    ws_trace_ctx remote;
    const char *v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    ws_traceparent_parse(v, strlen(v), &remote);
    ws_span *req = ws_span_begin("POST /v1/reply", WS_SPAN_SERVER, &remote);
    ws_span *c1 = ws_span_begin("cache get", WS_SPAN_CLIENT, NULL);
    ws_span_attr_str(c1, "cache.hit", "true");
    ws_span_attr_int(c1, "n", 3);
    char tp[WS_TRACEPARENT_LEN + 1];
    CHECK_EQ_INT(ws_trace_current_traceparent(tp), 0);
    CHECK(!memcmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36)); /* the trace goes on */
    ws_span_end(c1);
    CHECK(ws_trace_current() == ws_span_ctx(req));
    ws_span *prev = ws_span_activate(NULL); /* the request moves to another thread */
    CHECK(prev == req && ws_trace_current() == NULL);
    ws_span_deactivate(prev);
    ws_span_error(req, "server error");
    ws_span_end(req);
    CHECK(ws_trace_current() == NULL);
    CHECK_EQ_INT(ws_trace_current_traceparent(tp), WS_ENOENT);
    CHECK_EQ_INT(n_sunk, 2);
    if (n_sunk == 2) {
        CHECK(!memcmp(sunk[1]->parent_id, remote.span_id, 8));
        CHECK(!memcmp(sunk[0]->parent_id, sunk[1]->ctx.span_id, 8));
        CHECK_EQ_INT(sunk[0]->n_attrs, 2);
        CHECK(sunk[1]->error && !strcmp(sunk[1]->error, "server error"));
        CHECK(sunk[0]->end_ns >= sunk[0]->start_ns);
    }
    for (size_t i = 0; i < n_sunk; i++)
        ws_span_free(sunk[i]);
    n_sunk = 0;
    /* ratio 0: new traces are not recorded, a sampled parent still wins */
    ws_trace_set_ratio(0);
    ws_span_end(ws_span_begin("a", WS_SPAN_INTERNAL, NULL));
    CHECK_EQ_INT(n_sunk, 0);
    ws_span_end(ws_span_begin("b", WS_SPAN_INTERNAL, &remote));
    CHECK_EQ_INT(n_sunk, 1);
    for (size_t i = 0; i < n_sunk; i++)
        ws_span_free(sunk[i]);
    n_sunk = 0;
    /* child spans only inside a recorded trace */
    CHECK(ws_span_begin_child("db query", WS_SPAN_CLIENT) == NULL);
    ws_span *unsampled = ws_span_begin("u", WS_SPAN_SERVER, NULL);
    CHECK(ws_span_begin_child("db query", WS_SPAN_CLIENT) == NULL);
    ws_span_end(unsampled);
    ws_span *sampled = ws_span_begin("s", WS_SPAN_SERVER, &remote);
    ws_span *child = ws_span_begin_child("db query", WS_SPAN_CLIENT);
    CHECK(child && !memcmp(child->parent_id, sampled->ctx.span_id, 8));
    ws_span_end(child);
    ws_span_end(sampled);
    CHECK_EQ_INT(n_sunk, 2);
    for (size_t i = 0; i < n_sunk; i++)
        ws_span_free(sunk[i]);
    n_sunk = 0;
    ws_trace_set_sink(NULL);
}

static void test_otlp_encode(void)
{
    ws_trace_set_sink(sink);
    ws_trace_set_ratio(1);
    ws_span *a = ws_span_begin("POST /v1/reply", WS_SPAN_SERVER, NULL);
    ws_span *b = ws_span_begin("cache get", WS_SPAN_CLIENT, NULL);
    ws_span_attr_str(b, "cache.hit", "tr\"ue");
    ws_span_attr_int(b, "n", -3);
    ws_span_end(b);
    ws_span_error(a, "server error");
    ws_span_end(a);
    CHECK_EQ_INT(n_sunk, 2);
    ws_buf out = WS_BUF_INIT;
    ws_trace_export_encode(&out, "whatstyle-serve", sunk, n_sunk);
    ws_json_doc *doc = NULL;
    CHECK(ws_json_parse(out.data, out.len, &doc, NULL) == 0);
    const ws_json *rs = doc ? ws_json_at(ws_json_get(ws_json_root(doc), "resourceSpans"), 0) : NULL;
    const ws_json *svc = rs ? ws_json_at(ws_json_get(ws_json_get(rs, "resource"), "attributes"), 0) : NULL;
    CHECK(svc && !strcmp(ws_json_get_str(ws_json_get(svc, "value"), "stringValue"), "whatstyle-serve"));
    const ws_json *spans = rs ? ws_json_get(ws_json_at(ws_json_get(rs, "scopeSpans"), 0), "spans") : NULL;
    CHECK(spans && spans->len == 2);
    if (spans && spans->len == 2) {
        const ws_json *c = ws_json_at(spans, 0), *r = ws_json_at(spans, 1);
        CHECK_EQ_STR(ws_json_get_str(c, "name"), "cache get");
        CHECK_EQ_STR(ws_json_get_str(c, "parentSpanId"), ws_json_get_str(r, "spanId"));
        CHECK_EQ_STR(ws_json_get_str(c, "traceId"), ws_json_get_str(r, "traceId"));
        CHECK(strlen(ws_json_get_str(r, "traceId")) == 32 && !ws_json_get(r, "parentSpanId"));
        double kind = 0;
        CHECK(ws_json_get_num(c, "kind", &kind) && kind == WS_SPAN_CLIENT);
        const ws_json *at = ws_json_get(c, "attributes");
        CHECK(at && at->len == 2);
        CHECK_EQ_STR(ws_json_get_str(ws_json_get(ws_json_at(at, 0), "value"), "stringValue"), "tr\"ue");
        CHECK_EQ_STR(ws_json_get_str(ws_json_get(ws_json_at(at, 1), "value"), "intValue"), "-3");
        const ws_json *st = ws_json_get(r, "status");
        double code = 0;
        CHECK(st && ws_json_get_num(st, "code", &code) && code == 2);
        CHECK(strtoull(ws_json_get_str(r, "endTimeUnixNano"), NULL, 10) >=
              strtoull(ws_json_get_str(r, "startTimeUnixNano"), NULL, 10));
    }
    ws_json_doc_free(doc);
    ws_buf_free(&out);
    for (size_t i = 0; i < n_sunk; i++)
        ws_span_free(sunk[i]);
    n_sunk = 0;
    ws_trace_set_sink(NULL);
    ws_trace_set_ratio(0);
}

/* A full queue drops spans (counted) at once instead of waiting; stop sends what is queued. */
static void test_exporter_queue(void)
{
    ws_error err = {0};
    ws_trace_export_opts bad = {.endpoint = "http://127.0.0.1:9", .ratio = 1.5};
    CHECK_EQ_INT(ws_trace_export_start(&bad, &err), WS_EINVAL);
    ws_trace_export_opts o = {.endpoint = "http://127.0.0.1:9/",
                              .service_name = "t",
                              .ratio = 1,
                              .queue_max = 4,
                              .batch_max = 4,
                              .flush_ms = 60000,
                              .timeout_ms = 500};
    ws_trace_export_stats before, after;
    ws_trace_export_get_stats(&before);
    CHECK_EQ_INT(ws_trace_export_start(&o, &err), 0);
    CHECK_EQ_INT(ws_trace_export_start(&o, &err), WS_ECONFLICT);
    for (int i = 0; i < 3; i++)
        ws_span_end(ws_span_begin("x", WS_SPAN_INTERNAL, NULL));
    ws_trace_export_get_stats(&after);
    CHECK_EQ_INT(after.queued, 3);
    CHECK_EQ_INT(after.dropped - before.dropped, 0);
    /* the 4th fills the batch and wakes the sender; more than the queue holds are dropped */
    for (int i = 0; i < 20; i++)
        ws_span_end(ws_span_begin("x", WS_SPAN_INTERNAL, NULL));
    ws_trace_export_stop(); /* port 9 refuses: every span ends dropped, none exported */
    ws_trace_export_get_stats(&after);
    CHECK_EQ_INT(after.dropped - before.dropped, 23);
    CHECK_EQ_INT(after.exported, before.exported);
    CHECK(after.failed_sends > before.failed_sends);
    CHECK_EQ_INT(after.queued, 0);
}

WS_TEST_MAIN({"log_json", test_log_json}, {"log_caps_and_trace", test_log_caps_and_trace},
             {"log_text_and_levels", test_log_text_and_levels}, {"traceparent", test_traceparent},
             {"spans", test_spans}, {"otlp_encode", test_otlp_encode},
             {"exporter_queue", test_exporter_queue})
