/* The Kafka bus (bus.h) on librdkafka: an idempotent producer whose publish waits for the
 * broker's acknowledgement of every message, the topics created at start with the configured
 * partition count, and a consumer group with manual, synchronous offset commits. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/rdkafka_lib.h"
#include "core/log.h"
#include "core/mem.h"

#define DELIVERY_TIMEOUT_MS 30000 /* librdkafka resolves every message within this */
#define CONNECT_TIMEOUT_MS 15000

typedef struct kbus {
    ws_bus_kafka_config cfg;
    char *brokers, *client_id;
    rd_kafka_t *producer;
    pthread_mutex_t pub_mu;  /* one publish at a time (flush waits for all) */
    rd_kafka_t *consumer;    /* after subscribe */
    rd_kafka_message_t *cur; /* the polled message */
    char *cur_payload, *cur_key;
} kbus;

/* A delivery report: the status slot of the message (its opaque) gets 0 or WS_EIO. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    int *slot = m->_private;
    if (slot)
        *slot = m->err ? WS_EIO : 0;
    if (m->err)
        WS_LOG(WS_LOG_WARN, "bus.delivery_failed", ws__rk.rd_kafka_err2str(m->err));
}

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v, ws_error *err)
{
    char es[256];
    if (ws__rk.rd_kafka_conf_set(c, k, v, es, sizeof es) != RD_KAFKA_CONF_OK)
        return ws_error_set(err, WS_EINVAL, "kafka: %s: %s", k, es);
    return 0;
}

static rd_kafka_conf_t *base_conf(kbus *k, ws_error *err)
{
    rd_kafka_conf_t *c = ws__rk.rd_kafka_conf_new();
    if (conf_set(c, "bootstrap.servers", k->brokers, err) || conf_set(c, "client.id", k->client_id, err) ||
        conf_set(c, "log_level", "3", err) || conf_set(c, "socket.keepalive.enable", "true", err) ||
        conf_set(c, "reconnect.backoff.max.ms", "1000", err)) {
        ws__rk.rd_kafka_conf_destroy(c);
        return NULL;
    }
    return c;
}

/* Creates the four topics (an existing one is fine). */
static int create_topics(kbus *k, ws_error *err)
{
    static const char *const names[] = {WS_TOPIC_TRAINING_JOBS, WS_TOPIC_TRAINING_EVENTS, WS_TOPIC_ANALYTICS,
                                        WS_TOPIC_USERS};
    enum { N = sizeof names / sizeof names[0] };
    rd_kafka_NewTopic_t *nt[N] = {0};
    rd_kafka_queue_t *q = ws__rk.rd_kafka_queue_new(k->producer);
    rd_kafka_event_t *ev = NULL;
    char es[256];
    int rc = 0;
    for (size_t i = 0; i < N && !rc; i++)
        if (!(nt[i] = ws__rk.rd_kafka_NewTopic_new(names[i], k->cfg.partitions, -1, es, sizeof es)))
            rc = ws_error_set(err, WS_EINVAL, "kafka: topic %s: %s", names[i], es);
    if (rc)
        goto out;
    ws__rk.rd_kafka_CreateTopics(k->producer, nt, N, NULL, q);
    ev = ws__rk.rd_kafka_queue_poll(q, CONNECT_TIMEOUT_MS);
    if (!ev) {
        rc = ws_error_set(err, WS_EIO, "kafka: creating the topics timed out");
        goto out;
    }
    if (ws__rk.rd_kafka_event_error(ev)) {
        rc = ws_error_set(err, WS_EIO, "kafka: creating the topics: %s",
                          ws__rk.rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        ws__rk.rd_kafka_CreateTopics_result_topics(ws__rk.rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n && !rc; i++) {
        rd_kafka_resp_err_t e = ws__rk.rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = ws_error_set(err, WS_EIO, "kafka: topic %s: %s", ws__rk.rd_kafka_topic_result_name(res[i]),
                              ws__rk.rd_kafka_topic_result_error_string(res[i]));
    }
out:
    if (ev)
        ws__rk.rd_kafka_event_destroy(ev);
    for (size_t i = 0; i < N; i++)
        if (nt[i])
            ws__rk.rd_kafka_NewTopic_destroy(nt[i]);
    ws__rk.rd_kafka_queue_destroy(q);
    return rc;
}

static int k_publish(ws_bus *b, const ws_bus_out *msgs, size_t n, int *status, int timeout_ms, ws_error *err)
{
    (void)timeout_ms; /* every message resolves within DELIVERY_TIMEOUT_MS (message.timeout.ms) */
    kbus *k = b->impl;
    int rc = 0;
    pthread_mutex_lock(&k->pub_mu);
    for (size_t i = 0; i < n; i++) {
        const ws_bus_out *o = &msgs[i];
        status[i] = WS_EAGAIN; /* until its delivery report */
        if (!o->topic || !o->event_id || !o->payload || o->len > WS_BUS_PAYLOAD_MAX ||
            strlen(o->event_id) > WS_BUS_EVENT_ID_MAX) {
            status[i] = WS_EINVAL;
            continue;
        }
        rd_kafka_resp_err_t e;
        for (;;) {
            e = ws__rk.rd_kafka_producev(
                k->producer, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_VALUE((void *)o->payload, o->len),
                RD_KAFKA_V_KEY((void *)o->key, o->key ? strlen(o->key) : 0),
                RD_KAFKA_V_HEADER("ws-event-id", o->event_id, (ssize_t)strlen(o->event_id)),
                RD_KAFKA_V_HEADER("traceparent", o->traceparent ? o->traceparent : "",
                                  o->traceparent ? (ssize_t)strlen(o->traceparent) : 0),
                RD_KAFKA_V_OPAQUE(&status[i]), RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            ws__rk.rd_kafka_poll(k->producer, 100);
        }
        if (e)
            status[i] = WS_EIO;
    }
    /* wait for every delivery report: the broker acknowledged (acks=all) or the message failed */
    while (ws__rk.rd_kafka_outq_len(k->producer) > 0)
        ws__rk.rd_kafka_flush(k->producer, 1000);
    ws__rk.rd_kafka_poll(k->producer, 0);
    for (size_t i = 0; i < n; i++)
        if (status[i] && !rc)
            rc = ws_error_set(err, status[i] == WS_EINVAL ? WS_EINVAL : WS_EIO,
                              "kafka: %s was not acknowledged by the broker",
                              msgs[i].topic ? msgs[i].topic : "?");
    pthread_mutex_unlock(&k->pub_mu);
    return rc;
}

static int k_subscribe(ws_bus *b, const char *group, const char *const *topics, size_t n, ws_error *err)
{
    kbus *k = b->impl;
    if (k->consumer || !group || !*group || n == 0)
        return ws_error_set(err, WS_EINVAL, "kafka: one subscription per bus");
    char st[16], hb[16], mp[16], es[256];
    snprintf(st, sizeof st, "%d", k->cfg.session_timeout_ms);
    snprintf(hb, sizeof hb, "%d", k->cfg.session_timeout_ms / 4 > 0 ? k->cfg.session_timeout_ms / 4 : 1);
    snprintf(mp, sizeof mp, "%d", k->cfg.max_poll_interval_ms);
    rd_kafka_conf_t *c = base_conf(k, err);
    if (!c)
        return WS_EINVAL;
    if (conf_set(c, "group.id", group, err) || conf_set(c, "enable.auto.commit", "false", err) ||
        conf_set(c, "auto.offset.reset", "earliest", err) || conf_set(c, "session.timeout.ms", st, err) ||
        conf_set(c, "heartbeat.interval.ms", hb, err) || conf_set(c, "max.poll.interval.ms", mp, err) ||
        conf_set(c, "partition.assignment.strategy", "cooperative-sticky", err)) {
        ws__rk.rd_kafka_conf_destroy(c);
        return WS_EINVAL;
    }
    rd_kafka_t *rk = ws__rk.rd_kafka_new(RD_KAFKA_CONSUMER, c, es, sizeof es);
    if (!rk) {
        ws__rk.rd_kafka_conf_destroy(c);
        return ws_error_set(err, WS_EIO, "kafka: consumer: %s", es);
    }
    ws__rk.rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = ws__rk.rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        ws__rk.rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = ws__rk.rd_kafka_subscribe(rk, l);
    ws__rk.rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        ws__rk.rd_kafka_destroy(rk);
        return ws_error_set(err, WS_EIO, "kafka: subscribe: %s", ws__rk.rd_kafka_err2str(e));
    }
    k->consumer = rk;
    return 0;
}

static void drop_current(kbus *k)
{
    if (k->cur)
        ws__rk.rd_kafka_message_destroy(k->cur);
    k->cur = NULL;
    free(k->cur_payload);
    free(k->cur_key);
    k->cur_payload = k->cur_key = NULL;
}

/* Copies header name of m (at most cap-1 bytes, printable ASCII only) into out, else "". */
static void header(const rd_kafka_message_t *m, const char *name, char *out, size_t cap)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (ws__rk.rd_kafka_message_headers(m, &h) || ws__rk.rd_kafka_header_get_last(h, name, &v, &len) || !v ||
        len >= cap)
        return;
    for (size_t i = 0; i < len; i++)
        if (((const unsigned char *)v)[i] < 0x21 || ((const unsigned char *)v)[i] > 0x7e)
            return;
    memcpy(out, v, len);
    out[len] = '\0';
}

static int k_poll(ws_bus *b, int timeout_ms, ws_bus_msg *out, ws_error *err)
{
    kbus *k = b->impl;
    if (!k->consumer)
        return ws_error_set(err, WS_EINVAL, "kafka: poll before subscribe");
    drop_current(k);
    rd_kafka_message_t *m = ws__rk.rd_kafka_consumer_poll(k->consumer, timeout_ms);
    if (!m)
        return WS_EAGAIN;
    if (m->err) {
        int rc = ws_error_set(err, m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? WS_EAGAIN : WS_EIO,
                              "kafka: %s", ws__rk.rd_kafka_err2str(m->err));
        ws__rk.rd_kafka_message_destroy(m);
        return rc;
    }
    const char *topic = ws__rk.rd_kafka_topic_name(m->rkt);
    if (m->len > WS_BUS_PAYLOAD_MAX || m->key_len > WS_BUS_KEY_MAX) {
        WS_LOG(WS_LOG_WARN, "bus.message_too_big", "a message above the size cap was skipped",
               WS_LF_S("messaging.destination", topic), WS_LF_I("messaging.kafka.offset", m->offset));
        ws__rk.rd_kafka_message_destroy(m);
        return WS_EAGAIN;
    }
    k->cur = m;
    k->cur_payload = ws_xstrndup(m->payload ? m->payload : "", m->payload ? m->len : 0);
    k->cur_key = m->key ? ws_xstrndup(m->key, m->key_len) : NULL;
    memset(out, 0, sizeof *out);
    out->topic = topic;
    out->key = k->cur_key;
    out->payload = k->cur_payload;
    out->len = m->payload ? m->len : 0;
    out->partition = m->partition;
    out->offset = m->offset;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = ws__rk.rd_kafka_message_timestamp(m, &tt);
    out->timestamp_ms = ts > 0 ? ts : 0;
    header(m, "ws-event-id", out->event_id, sizeof out->event_id);
    header(m, "traceparent", out->traceparent, sizeof out->traceparent);
    return 0;
}

static int k_commit(ws_bus *b, const ws_bus_msg *msg, ws_error *err)
{
    kbus *k = b->impl;
    if (!k->consumer || !msg || !msg->topic)
        return ws_error_set(err, WS_EINVAL, "kafka: commit without a message");
    rd_kafka_topic_partition_list_t *l = ws__rk.rd_kafka_topic_partition_list_new(1);
    ws__rk.rd_kafka_topic_partition_list_add(l, msg->topic, msg->partition)->offset = msg->offset + 1;
    rd_kafka_resp_err_t e = ws__rk.rd_kafka_commit(k->consumer, l, 0);
    ws__rk.rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return ws_error_set(err, WS_EIO, "kafka: commit: %s", ws__rk.rd_kafka_err2str(e));
    return 0;
}

static void k_destroy(ws_bus *b)
{
    kbus *k = b->impl;
    drop_current(k);
    if (k->consumer) {
        ws__rk.rd_kafka_consumer_close(k->consumer);
        ws__rk.rd_kafka_destroy(k->consumer);
    }
    if (k->producer) {
        ws__rk.rd_kafka_flush(k->producer, 5000);
        ws__rk.rd_kafka_destroy(k->producer);
    }
    pthread_mutex_destroy(&k->pub_mu);
    free(k->brokers);
    free(k->client_id);
    free(k);
    free(b);
}

static const ws_bus_ops kafka_ops = {k_publish, k_subscribe, k_poll, k_commit, k_destroy};

int ws_bus_kafka_new(const ws_bus_kafka_config *cfg, ws_bus **out, ws_error *err)
{
    *out = NULL;
    int rc;
    if (!cfg || !cfg->brokers || !*cfg->brokers)
        return ws_error_set(err, WS_EINVAL, "kafka: no brokers given");
    if ((rc = ws__rk_load(err)))
        return rc;
    kbus *k = ws_xcalloc(1, sizeof *k);
    ws_bus *b = ws_xcalloc(1, sizeof *b);
    b->ops = &kafka_ops;
    b->impl = k;
    pthread_mutex_init(&k->pub_mu, NULL);
    k->cfg = *cfg;
    k->cfg.partitions = cfg->partitions > 0 ? cfg->partitions : 3;
    k->cfg.session_timeout_ms = cfg->session_timeout_ms > 0 ? cfg->session_timeout_ms : 10000;
    k->cfg.max_poll_interval_ms = cfg->max_poll_interval_ms > 0 ? cfg->max_poll_interval_ms : 1800000;
    k->brokers = ws_xstrdup(cfg->brokers);
    k->client_id = ws_xstrdup(cfg->client_id ? cfg->client_id : "whatstyle");
    k->cfg.brokers = k->brokers;
    k->cfg.client_id = k->client_id;
    char es[256], mt[16];
    snprintf(mt, sizeof mt, "%d", DELIVERY_TIMEOUT_MS);
    rd_kafka_conf_t *c = base_conf(k, err);
    if (!c) {
        rc = WS_EINVAL;
        goto fail;
    }
    if ((rc = conf_set(c, "enable.idempotence", "true", err)) || (rc = conf_set(c, "acks", "all", err)) ||
        (rc = conf_set(c, "linger.ms", "2", err)) || (rc = conf_set(c, "message.timeout.ms", mt, err))) {
        ws__rk.rd_kafka_conf_destroy(c);
        goto fail;
    }
    ws__rk.rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    if (!(k->producer = ws__rk.rd_kafka_new(RD_KAFKA_PRODUCER, c, es, sizeof es))) {
        ws__rk.rd_kafka_conf_destroy(c);
        rc = ws_error_set(err, WS_EIO, "kafka: producer: %s", es);
        goto fail;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = ws__rk.rd_kafka_metadata(k->producer, 0, NULL, &md, CONNECT_TIMEOUT_MS);
    if (e) {
        rc = ws_error_set(err, WS_EIO, "kafka: no broker of %s answered: %s", k->brokers,
                          ws__rk.rd_kafka_err2str(e));
        goto fail;
    }
    ws__rk.rd_kafka_metadata_destroy(md);
    if ((rc = create_topics(k, err)))
        goto fail;
    *out = b;
    return 0;
fail:
    k_destroy(b);
    return rc;
}
