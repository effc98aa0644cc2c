/* The gateway's consumer of training-events (server.h, `serve --kafka`): finished jobs drop
 * the user's cached replies and principal and reload the user's model in the AI engine. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/event.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/progress.h"
#include "core/trace.h"
#include "server/server_int.h"

/* A new gateway's group reads training-events from the start of the topic (so no event is
 * missed while the group is being assigned) and acts only on the last minute of them. */
#define WS_SRV_BUS_HISTORY_MS 60000

struct ws_srv_bus {
    ws_server *s;
    ws_bus *bus;
    pthread_t thread;
    atomic_bool stop;
    _Atomic uint64_t handled, duplicates;
    ws_bus_seen seen;
    int64_t since_ms; /* events produced before this are history: skipped */
};

/* A finished job: what this gateway caches about the user goes, the AI engine reloads. */
static void on_finished(ws_server *s, const ws_bus_job_event *ev)
{
    char prefix[WS_STORE_ID_MAX + 16];
    snprintf(prefix, sizeof prefix, "reply:%s:", ev->user_id);
    ws_cache_del_prefix(s->cache, prefix, NULL, NULL);
    ws_srv_auth_forget_user(s, ev->user_id);
    ws_error err = {0};
    if (s->ai && s->ai->ops->reload(s->ai, ev->user_id, &err))
        WS_LOG(WS_LOG_WARN, "bus.reload_failed", err.msg, WS_LF_S("user.id", ev->user_id));
}

static void handle(ws_srv_bus *b, const ws_bus_msg *m)
{
    ws_bus_job_event ev;
    ws_error err = {0};
    if (ws_bus_seen_check(&b->seen, m->event_id)) {
        atomic_fetch_add(&b->duplicates, 1);
        return;
    }
    if (ws_bus_job_event_parse(m->payload, m->len, &ev, &err)) {
        WS_LOG(WS_LOG_WARN, "bus.bad_event", err.msg, WS_LF_I("messaging.kafka.offset", m->offset));
        return;
    }
    if (m->timestamp_ms && m->timestamp_ms < b->since_ms)
        return; /* before this gateway started: nothing of it is cached here */
    atomic_fetch_add(&b->handled, 1);
    if (!strcmp(ev.type, "training.progress"))
        return; /* the job row carries the progress the event streams show */
    ws_trace_ctx up;
    bool has_up = m->traceparent[0] && ws_traceparent_parse(m->traceparent, strlen(m->traceparent), &up) == 0;
    ws_span *sp = ws_span_begin("training event", WS_SPAN_INTERNAL, has_up ? &up : NULL);
    ws_span_attr_str(sp, "job.id", ev.job_id);
    ws_span_attr_str(sp, "event.type", ev.type);
    if (!strcmp(ev.type, "training.completed"))
        on_finished(b->s, &ev);
    WS_LOG(WS_LOG_INFO, "bus.training_event", NULL, WS_LF_S("event.type", ev.type),
           WS_LF_S("job.id", ev.job_id), WS_LF_S("user.id", ev.user_id));
    ws_span_end(sp);
}

static void *events_main(void *arg)
{
    ws_srv_bus *b = arg;
    double last_warn = 0;
    while (!atomic_load(&b->stop)) {
        ws_bus_msg m;
        ws_error err = {0};
        int rc = b->bus->ops->poll(b->bus, 500, &m, &err);
        if (rc == WS_EAGAIN)
            continue;
        if (rc) {
            if (ws_now_s() - last_warn > 10) {
                WS_LOG(WS_LOG_WARN, "bus.poll_failed", err.msg);
                last_warn = ws_now_s();
            }
            continue;
        }
        handle(b, &m);
        if (b->bus->ops->commit(b->bus, &m, &err))
            WS_LOG(WS_LOG_WARN, "bus.commit_failed", err.msg);
    }
    return NULL;
}

int ws_server_bus_start(ws_server *s, ws_bus *bus, const char *group, ws_srv_bus **out, ws_error *err)
{
    *out = NULL;
    const char *topics[] = {WS_TOPIC_TRAINING_EVENTS};
    int rc = bus->ops->subscribe(bus, group, topics, 1, err);
    if (rc)
        return rc;
    ws_srv_bus *b = ws_xcalloc(1, sizeof *b);
    b->s = s;
    b->bus = bus;
    ws_bus_seen_init(&b->seen, 8192);
    b->since_ms = ws_store_now_ms() - WS_SRV_BUS_HISTORY_MS;
    if (pthread_create(&b->thread, NULL, events_main, b) != 0) {
        ws_bus_seen_free(&b->seen);
        free(b);
        return ws_error_set(err, WS_EIO, "cannot start the training events thread");
    }
    *out = b;
    return 0;
}

void ws_server_bus_stop(ws_srv_bus *b)
{
    if (!b)
        return;
    atomic_store(&b->stop, true);
    pthread_join(b->thread, NULL);
    WS_LOG(WS_LOG_INFO, "bus.events_stopped", NULL, WS_LF_I("bus.events_handled", atomic_load(&b->handled)),
           WS_LF_I("bus.duplicates_dropped", atomic_load(&b->duplicates)));
    ws_bus_seen_free(&b->seen);
    free(b);
}
