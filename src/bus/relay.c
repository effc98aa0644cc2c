/* The outbox relay (relay.h): store outbox rows -> bus, marked after the acknowledgement. */
#include "bus/relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/trace.h"
#include "store/store_bus.h"

bool ws_relay_payload_traceparent(const char *payload, size_t len, char *out)
{
    ws_json_doc *doc = NULL;
    bool ok = false;
    out[0] = '\0';
    if (!payload || !memmem(payload, len, "traceparent", 11) || ws_json_parse(payload, len, &doc, NULL))
        return false;
    const ws_json *root = ws_json_root(doc);
    const char *tp = ws_json_get_str(ws_json_get(ws_json_get(root, "job"), "params"), "traceparent");
    if (!tp) /* an analytics event: the request's context in its data */
        tp = ws_json_get_str(ws_json_get(root, "data"), "traceparent");
    ws_trace_ctx c;
    if (tp && ws_traceparent_parse(tp, strlen(tp), &c) == 0) {
        ws_traceparent_format(&c, out);
        ok = true;
    }
    ws_json_doc_free(doc);
    return ok;
}

int ws_relay_step(ws_store *st, ws_bus *bus, int batch, size_t *published, ws_relay_observe_fn observe,
                  void *observe_arg, ws_error *err)
{
    *published = 0;
    if (batch <= 0 || batch > WS_RELAY_BATCH_MAX)
        return ws_error_set(err, WS_EINVAL, "relay: batch must be 1..%d", WS_RELAY_BATCH_MAX);
    ws_arena *a = ws_arena_new(16384);
    ws_outbox_msg *rows = NULL;
    size_t n = 0;
    int rc = ws_store_outbox_fetch(st, a, batch, &rows, &n, err);
    if (rc || n == 0)
        goto out;
    ws_bus_out *msgs = ws_arena_calloc(a, n * sizeof *msgs);
    int *status = ws_arena_calloc(a, n * sizeof *status);
    int64_t *ids = ws_arena_calloc(a, n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        char *eid = ws_arena_alloc(a, 24), *tp = ws_arena_alloc(a, WS_TRACEPARENT_LEN + 1);
        snprintf(eid, 24, "%lld", (long long)rows[i].id);
        size_t len = rows[i].payload ? strlen(rows[i].payload) : 0;
        msgs[i] =
            (ws_bus_out){.topic = rows[i].topic,
                         .key = rows[i].key,
                         .payload = rows[i].payload ? rows[i].payload : "{}",
                         .len = rows[i].payload ? len : 2,
                         .event_id = eid,
                         .traceparent = ws_relay_payload_traceparent(rows[i].payload, len, tp) ? tp : NULL};
    }
    int prc = bus->ops->publish(bus, msgs, n, status, 30000, err);
    int64_t acked = ws_store_now_ms();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (status[i] == 0) {
            ids[k++] = rows[i].id;
            if (observe)
                observe(observe_arg, rows[i].id, rows[i].created_at, acked);
        } else if (status[i] == WS_EINVAL) {
            /* a row the bus can never take (no topic, too big): marked so it does not block */
            WS_LOG(WS_LOG_ERROR, "relay.row_refused", "an outbox row the bus refuses was dropped",
                   WS_LF_I("outbox.id", rows[i].id));
            ids[k++] = rows[i].id;
        }
    }
    ws_error merr = {0};
    rc = ws_store_outbox_mark_many(st, ids, k, &merr);
    if (rc)
        ws_error_set(err, rc, "relay: marking published: %s", merr.msg);
    else
        *published = k;
    if (!rc && prc && prc != WS_EINVAL)
        rc = prc;
out:
    ws_arena_free(a);
    return rc;
}

struct ws_relay {
    ws_relay_config cfg;
    char *store_url;
    pthread_t thread;
    _Atomic bool stop;
    _Atomic uint64_t published;
};

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sleeps ms in short naps, returning early when the relay stops. */
static void wait_ms(ws_relay *r, int ms)
{
    for (int t = 0; t < ms && !atomic_load(&r->stop); t += 20)
        nap(ms - t < 20 ? ms - t : 20);
}

static void *relay_main(void *arg)
{
    ws_relay *r = arg;
    ws_store *st = NULL;
    bool leader = false, said_standby = false;
    while (!atomic_load(&r->stop)) {
        ws_error err = {0};
        if (!st) {
            ws_store_config sc = {.url = r->store_url};
            if (ws_store_open(&sc, &st, &err)) {
                WS_LOG(WS_LOG_WARN, "relay.store_failed", err.msg);
                st = NULL;
                wait_ms(r, 1000);
                continue;
            }
            leader = false;
        }
        if (!leader) {
            if (ws_store_outbox_try_lead(st, &leader, &err)) {
                ws_store_close(st);
                st = NULL;
                continue;
            }
            if (!leader) {
                if (!said_standby)
                    WS_LOG(WS_LOG_INFO, "relay.standby", "another relay publishes the outbox");
                said_standby = true;
                wait_ms(r, 2000);
                continue;
            }
            WS_LOG(WS_LOG_INFO, "relay.leading", "publishing the outbox");
        }
        size_t n = 0;
        int rc = ws_relay_step(st, r->cfg.bus, r->cfg.batch, &n, NULL, NULL, &err);
        atomic_fetch_add(&r->published, n);
        if (rc) {
            WS_LOG(WS_LOG_WARN, "relay.pass_failed", err.msg, WS_LF_S("error.type", ws_strerror(rc)));
            if (rc == WS_EIO && !n) {
                /* the database may be gone: reconnect (the lock goes with the session) */
                ws_store_close(st);
                st = NULL;
            }
            wait_ms(r, 500);
        } else if ((int)n < r->cfg.batch) {
            wait_ms(r, r->cfg.idle_ms);
        }
    }
    ws_store_close(st);
    return NULL;
}

int ws_relay_start(const ws_relay_config *cfg, ws_relay **out, ws_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->store_url || !cfg->bus)
        return ws_error_set(err, WS_EINVAL, "relay: a store URL and a bus are needed");
    ws_relay *r = ws_xcalloc(1, sizeof *r);
    r->cfg = *cfg;
    r->store_url = ws_xstrdup(cfg->store_url);
    r->cfg.batch = cfg->batch > 0 && cfg->batch <= WS_RELAY_BATCH_MAX ? cfg->batch : 100;
    r->cfg.idle_ms = cfg->idle_ms > 0 ? cfg->idle_ms : 50;
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        free(r->store_url);
        free(r);
        return ws_error_set(err, WS_EIO, "relay: cannot start its thread");
    }
    *out = r;
    return 0;
}

void ws_relay_stop(ws_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    free(r->store_url);
    free(r);
}

uint64_t ws_relay_published(ws_relay *r)
{
    return r ? atomic_load(&r->published) : 0;
}
