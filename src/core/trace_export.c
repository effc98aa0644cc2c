/* OTLP/HTTP JSON span exporter with a bounded queue and one sender thread (see
 * trace_export.h). */
#include "core/trace_export.h"

#include "core/curl_lib.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stopping;
    ws_span **q;
    size_t n, cap, batch_max;
    int flush_ms, timeout_ms;
    char *url, *service;
} ex = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static _Atomic uint64_t n_exported, n_dropped, n_failed, n_queued;

static void put_attr_key(ws_buf *out, const char *key)
{
    ws_buf_puts(out, "{\"key\":");
    ws_json_put_cstr(out, key);
    ws_buf_puts(out, ",\"value\":");
}

static void put_span(ws_buf *out, const ws_span *sp)
{
    char tid[33], sid[17], pid[17];
    ws_trace_id_hex(&sp->ctx, tid);
    ws_span_id_hex(&sp->ctx, sid);
    ws_buf_printf(out, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", tid, sid);
    if (sp->has_parent) {
        ws_trace_ctx p = {0};
        memcpy(p.span_id, sp->parent_id, 8);
        ws_span_id_hex(&p, pid);
        ws_buf_printf(out, ",\"parentSpanId\":\"%s\"", pid);
    }
    ws_buf_puts(out, ",\"name\":");
    ws_json_put_cstr(out, sp->name ? sp->name : "span");
    ws_buf_printf(out,
                  ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",\"attributes\":[",
                  (int)sp->kind, (unsigned long long)sp->start_ns, (unsigned long long)sp->end_ns);
    for (size_t i = 0; i < sp->n_attrs; i++) {
        if (i)
            ws_buf_putc(out, ',');
        put_attr_key(out, sp->attrs[i].key);
        if (sp->attrs[i].str) {
            ws_buf_puts(out, "{\"stringValue\":");
            ws_json_put_cstr(out, sp->attrs[i].str);
            ws_buf_puts(out, "}}");
        } else {
            ws_buf_printf(out, "{\"intValue\":\"%lld\"}}", (long long)sp->attrs[i].num);
        }
    }
    ws_buf_puts(out, "]");
    if (sp->error) {
        ws_buf_puts(out, ",\"status\":{\"code\":2,\"message\":");
        ws_json_put_cstr(out, sp->error);
        ws_buf_puts(out, "}");
    }
    ws_buf_puts(out, "}");
}

void ws_trace_export_encode(ws_buf *out, const char *service_name, ws_span *const *spans, size_t n)
{
    ws_buf_puts(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    put_attr_key(out, "service.name");
    ws_buf_puts(out, "{\"stringValue\":");
    ws_json_put_cstr(out, service_name);
    ws_buf_puts(out, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"whatstyle\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            ws_buf_putc(out, ',');
        put_span(out, spans[i]);
    }
    ws_buf_puts(out, "]}]}]}");
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* Sends n spans in one request (takes them). */
static void send_batch(CURL *h, ws_span **spans, size_t n)
{
    ws_buf body = WS_BUF_INIT;
    ws_trace_export_encode(&body, ex.service, spans, n);
    struct curl_slist *hdr = ws_curl.curl_slist_append(NULL, "Content-Type: application/json");
    ws_curl.curl_easy_setopt(h, CURLOPT_URL, ex.url);
    ws_curl.curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    ws_curl.curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
    ws_curl.curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body.len);
    ws_curl.curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)ex.timeout_ms);
    ws_curl.curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    ws_curl.curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = ws_curl.curl_easy_perform(h);
    long status = 0;
    ws_curl.curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status >= 200 && status < 300) {
        atomic_fetch_add(&n_exported, n);
    } else {
        uint64_t failed = atomic_fetch_add(&n_failed, 1);
        atomic_fetch_add(&n_dropped, n);
        if (failed % 100 == 0) /* the first failure and every 100th after it */
            WS_LOG(WS_LOG_WARN, "trace.export_failed",
                   cc != CURLE_OK ? ws_curl.curl_easy_strerror(cc) : "collector refused",
                   WS_LF_I("http.response.status_code", status), WS_LF_I("trace.spans", (int64_t)n));
    }
    ws_curl.curl_slist_free_all(hdr);
    ws_buf_free(&body);
    for (size_t i = 0; i < n; i++)
        ws_span_free(spans[i]);
}

static void *sender(void *arg)
{
    CURL *h = ws_curl.curl_easy_init();
    ws_span **batch = ws_xmalloc(ex.batch_max * sizeof *batch);
    pthread_mutex_lock(&ex.mu);
    for (;;) {
        if (ex.n < ex.batch_max && !ex.stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += ex.flush_ms / 1000;
            until.tv_nsec += (long)(ex.flush_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L)
                until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&ex.cv, &ex.mu, &until);
        }
        size_t k = ex.n < ex.batch_max ? ex.n : ex.batch_max;
        memcpy(batch, ex.q, k * sizeof *batch);
        memmove(ex.q, ex.q + k, (ex.n - k) * sizeof *ex.q);
        ex.n -= k;
        atomic_store(&n_queued, ex.n);
        bool done = ex.stopping && ex.n == 0;
        pthread_mutex_unlock(&ex.mu);
        if (k)
            send_batch(h, batch, k);
        pthread_mutex_lock(&ex.mu);
        if (done)
            break;
    }
    pthread_mutex_unlock(&ex.mu);
    free(batch);
    ws_curl.curl_easy_cleanup(h);
    return NULL;
}

static void sink(ws_span *sp)
{
    pthread_mutex_lock(&ex.mu);
    if (!ex.running || ex.stopping || ex.n == ex.cap) {
        pthread_mutex_unlock(&ex.mu);
        atomic_fetch_add(&n_dropped, 1);
        ws_span_free(sp);
        return;
    }
    ex.q[ex.n++] = sp;
    atomic_store(&n_queued, ex.n);
    if (ex.n == ex.batch_max)
        pthread_cond_signal(&ex.cv);
    pthread_mutex_unlock(&ex.mu);
}

int ws_trace_export_start(const ws_trace_export_opts *o, ws_error *err)
{
    if (!o->endpoint || !*o->endpoint)
        return ws_error_set(err, WS_EINVAL, "no OTLP endpoint given");
    if (!(o->ratio >= 0 && o->ratio <= 1))
        return ws_error_set(err, WS_EINVAL, "the trace sampling ratio must be in 0..1");
    if (ex.running)
        return ws_error_set(err, WS_ECONFLICT, "the trace exporter is running already");
    ws_buf url = WS_BUF_INIT;
    size_t el = strlen(o->endpoint);
    while (el && o->endpoint[el - 1] == '/')
        el--;
    ws_buf_printf(&url, "%.*s/v1/traces", (int)el, o->endpoint);
    ex.url = url.data;
    ex.service = ws_xstrdup(o->service_name ? o->service_name : "whatstyle");
    ex.cap = o->queue_max ? o->queue_max : 4096;
    ex.batch_max = o->batch_max ? o->batch_max : 512;
    if (ex.batch_max > ex.cap)
        ex.batch_max = ex.cap;
    ex.flush_ms = o->flush_ms > 0 ? o->flush_ms : 1000;
    ex.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    ex.q = ws_xmalloc(ex.cap * sizeof *ex.q);
    ex.n = 0;
    ex.stopping = false;
    int rc = ws_curl_load(err);
    if (rc < 0) {
        free(ex.q);
        free(ex.url);
        free(ex.service);
        return rc;
    }
    if (pthread_create(&ex.thread, NULL, sender, NULL) != 0) {
        free(ex.q);
        free(ex.url);
        free(ex.service);
        return ws_error_set(err, WS_EIO, "cannot start the trace exporter thread");
    }
    ex.running = true;
    ws_trace_set_ratio(o->ratio);
    ws_trace_set_sink(sink);
    return 0;
}

void ws_trace_export_stop(void)
{
    if (!ex.running)
        return;
    pthread_mutex_lock(&ex.mu);
    ex.stopping = true;
    pthread_cond_signal(&ex.cv);
    pthread_mutex_unlock(&ex.mu);
    pthread_join(ex.thread, NULL);
    ws_trace_set_sink(NULL);
    ws_trace_set_ratio(0);
    ex.running = false;
    free(ex.q);
    free(ex.url);
    free(ex.service);
    ex.q = NULL;
    ex.url = ex.service = NULL;
}

void ws_trace_export_get_stats(ws_trace_export_stats *out)
{
    out->exported = atomic_load(&n_exported);
    out->dropped = atomic_load(&n_dropped);
    out->failed_sends = atomic_load(&n_failed);
    out->queued = atomic_load(&n_queued);
}
