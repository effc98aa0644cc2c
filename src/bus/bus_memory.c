/* The in-process bus (bus.h): one append-only log per topic in a hub shared by the handles of
 * one process, consumer groups with a delivery cursor and a committed position each. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "core/clock.h"
#include "core/mem.h"

typedef struct mem_msg {
    char *key, *payload, *event_id, *traceparent;
    size_t len;
    int64_t timestamp_ms;
} mem_msg;

typedef struct mem_topic {
    char name[WS_BUS_TOPIC_MAX + 1];
    mem_msg *msgs;
    size_t n, cap;
} mem_topic;

typedef struct mem_group {
    char name[WS_BUS_TOPIC_MAX + 1];
    char topic[WS_BUS_TOPIC_MAX + 1];
    int64_t next, committed; /* delivery cursor (shared by the group's consumers) */
} mem_group;

struct ws_bus_hub {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a message was published */
    mem_topic *topics;
    size_t n_topics;
    mem_group *groups;
    size_t n_groups;
};

typedef struct mem_bus {
    ws_bus_hub *hub;
    char group[WS_BUS_TOPIC_MAX + 1];
    char topics[4][WS_BUS_TOPIC_MAX + 1];
    size_t n_topics;
    mem_msg cur; /* the polled message's copy */
    char cur_topic[WS_BUS_TOPIC_MAX + 1];
} mem_bus;

ws_bus_hub *ws_bus_hub_new(void)
{
    ws_bus_hub *h = ws_xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    return h;
}

static void msg_clear(mem_msg *m)
{
    free(m->key);
    free(m->payload);
    free(m->event_id);
    free(m->traceparent);
    memset(m, 0, sizeof *m);
}

void ws_bus_hub_free(ws_bus_hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_topics; i++) {
        for (size_t j = 0; j < h->topics[i].n; j++)
            msg_clear(&h->topics[i].msgs[j]);
        free(h->topics[i].msgs);
    }
    free(h->topics);
    free(h->groups);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

/* Under h->mu. */
static mem_topic *topic_get(ws_bus_hub *h, const char *name)
{
    for (size_t i = 0; i < h->n_topics; i++)
        if (!strcmp(h->topics[i].name, name))
            return &h->topics[i];
    h->topics = ws_xrealloc(h->topics, (h->n_topics + 1) * sizeof *h->topics);
    mem_topic *t = &h->topics[h->n_topics++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* Under h->mu. */
static mem_group *group_get(ws_bus_hub *h, const char *group, const char *topic)
{
    for (size_t i = 0; i < h->n_groups; i++)
        if (!strcmp(h->groups[i].name, group) && !strcmp(h->groups[i].topic, topic))
            return &h->groups[i];
    h->groups = ws_xrealloc(h->groups, (h->n_groups + 1) * sizeof *h->groups);
    mem_group *g = &h->groups[h->n_groups++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", group);
    snprintf(g->topic, sizeof g->topic, "%s", topic);
    return g;
}

static int m_publish(ws_bus *b, const ws_bus_out *msgs, size_t n, int *status, int timeout_ms, ws_error *err)
{
    (void)timeout_ms;
    mem_bus *mb = b->impl;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const ws_bus_out *o = &msgs[i];
        status[i] = 0;
        if (!o->topic || strlen(o->topic) > WS_BUS_TOPIC_MAX || !o->event_id || !o->payload)
            status[i] = ws_error_set(err, WS_EINVAL, "bus: a message lacks its topic, event id or payload");
        else if (o->len > WS_BUS_PAYLOAD_MAX)
            status[i] = ws_error_set(err, WS_ETOOBIG, "bus: a message of %zu bytes is above the cap", o->len);
        if (status[i]) {
            rc = rc ? rc : status[i];
            continue;
        }
        pthread_mutex_lock(&mb->hub->mu);
        mem_topic *t = topic_get(mb->hub, o->topic);
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 64;
            t->msgs = ws_xrealloc(t->msgs, t->cap * sizeof *t->msgs);
        }
        mem_msg *m = &t->msgs[t->n++];
        m->key = o->key ? ws_xstrdup(o->key) : NULL;
        m->payload = ws_xstrndup(o->payload, o->len);
        m->len = o->len;
        m->event_id = ws_xstrdup(o->event_id);
        m->traceparent = o->traceparent ? ws_xstrdup(o->traceparent) : NULL;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        m->timestamp_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        pthread_cond_broadcast(&mb->hub->cv);
        pthread_mutex_unlock(&mb->hub->mu);
    }
    return rc;
}

static int m_subscribe(ws_bus *b, const char *group, const char *const *topics, size_t n, ws_error *err)
{
    mem_bus *mb = b->impl;
    if (mb->n_topics || !group || strlen(group) > WS_BUS_TOPIC_MAX || n == 0 || n > 4)
        return ws_error_set(err, WS_EINVAL, "bus: one subscription of 1-4 topics per bus");
    snprintf(mb->group, sizeof mb->group, "%s", group);
    for (size_t i = 0; i < n; i++)
        snprintf(mb->topics[i], sizeof mb->topics[i], "%s", topics[i]);
    mb->n_topics = n;
    return 0;
}

/* Under hub->mu: takes the group's next message of any subscribed topic into mb->cur. */
static bool take_next(mem_bus *mb, ws_bus_msg *out)
{
    for (size_t i = 0; i < mb->n_topics; i++) {
        mem_topic *t = topic_get(mb->hub, mb->topics[i]);
        mem_group *g = group_get(mb->hub, mb->group, mb->topics[i]);
        if ((size_t)g->next >= t->n)
            continue;
        const mem_msg *m = &t->msgs[g->next];
        msg_clear(&mb->cur);
        mb->cur.key = m->key ? ws_xstrdup(m->key) : NULL;
        mb->cur.payload = ws_xstrndup(m->payload, m->len);
        mb->cur.len = m->len;
        snprintf(mb->cur_topic, sizeof mb->cur_topic, "%s", t->name);
        memset(out, 0, sizeof *out);
        out->topic = mb->cur_topic;
        out->key = mb->cur.key;
        out->payload = mb->cur.payload;
        out->len = m->len;
        snprintf(out->event_id, sizeof out->event_id, "%s", m->event_id);
        if (m->traceparent)
            snprintf(out->traceparent, sizeof out->traceparent, "%s", m->traceparent);
        out->offset = g->next++;
        out->timestamp_ms = m->timestamp_ms;
        return true;
    }
    return false;
}

static int m_poll(ws_bus *b, int timeout_ms, ws_bus_msg *out, ws_error *err)
{
    mem_bus *mb = b->impl;
    if (!mb->n_topics)
        return ws_error_set(err, WS_EINVAL, "bus: poll before subscribe");
    struct timespec until = ws_cond_deadline(timeout_ms);
    int rc = WS_EAGAIN;
    pthread_mutex_lock(&mb->hub->mu);
    for (;;) {
        if (take_next(mb, out)) {
            rc = 0;
            break;
        }
        if (timeout_ms <= 0 || pthread_cond_timedwait(&mb->hub->cv, &mb->hub->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&mb->hub->mu);
    return rc;
}

static int m_commit(ws_bus *b, const ws_bus_msg *m, ws_error *err)
{
    mem_bus *mb = b->impl;
    if (!mb->n_topics || !m || !m->topic)
        return ws_error_set(err, WS_EINVAL, "bus: commit without a message");
    pthread_mutex_lock(&mb->hub->mu);
    mem_group *g = group_get(mb->hub, mb->group, m->topic);
    if (m->offset + 1 > g->committed)
        g->committed = m->offset + 1;
    pthread_mutex_unlock(&mb->hub->mu);
    return 0;
}

static void m_destroy(ws_bus *b)
{
    mem_bus *mb = b->impl;
    msg_clear(&mb->cur);
    free(mb);
    free(b);
}

static const ws_bus_ops mem_ops = {m_publish, m_subscribe, m_poll, m_commit, m_destroy};

int ws_bus_memory_new(ws_bus_hub *h, ws_bus **out, ws_error *err)
{
    *out = NULL;
    if (!h)
        return ws_error_set(err, WS_EINVAL, "bus: no hub");
    mem_bus *mb = ws_xcalloc(1, sizeof *mb);
    mb->hub = h;
    ws_bus *b = ws_xcalloc(1, sizeof *b);
    b->ops = &mem_ops;
    b->impl = mb;
    *out = b;
    return 0;
}

bool ws_bus_topic_known(const char *topic)
{
    static const char *const known[] = {WS_TOPIC_TRAINING_JOBS, WS_TOPIC_TRAINING_EVENTS, WS_TOPIC_ANALYTICS,
                                        WS_TOPIC_USERS};
    for (size_t i = 0; topic && i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(topic, known[i]))
            return true;
    return false;
}
