/* The message bus (DESIGN.md §1): the topics between the gateways and the training workers,
 * behind one small interface with two implementations — in-process (bus_memory.c: one log
 * per topic in memory, for the embedded mode and tests) and Apache Kafka (bus_kafka.c, on
 * librdkafka loaded on first use).
 *
 * Topics: WS_TOPIC_TRAINING_JOBS (a job to train, key = user id), WS_TOPIC_TRAINING_EVENTS
 * (progress and outcome of jobs), WS_TOPIC_ANALYTICS (analytics events), WS_TOPIC_USERS
 * (user.deleted). Every message carries an event id (the outbox row id, or for progress a
 * worker-made id) in the header "ws-event-id"; consumers are idempotent by it (delivery is at
 * least once). A W3C "traceparent" header continues the producer's trace.
 *
 * Ownership: a ws_bus is made by a constructor and released with ws_bus_free. Messages given
 * to publish are borrowed for the call. A polled message (ws_bus_msg) belongs to the bus and
 * stays valid until the next poll, commit or free on that bus. Thread-safety: publish may be
 * called from several threads; poll/commit from one consumer thread at a time. */
#ifndef WS_BUS_BUS_H
#define WS_BUS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/trace.h"

#define WS_TOPIC_TRAINING_JOBS "training-jobs"
#define WS_TOPIC_TRAINING_EVENTS "training-events"
#define WS_TOPIC_ANALYTICS "analytics-events"
#define WS_TOPIC_USERS "user-events"

#define WS_BUS_PAYLOAD_MAX (256 * 1024) /* a message value above this is refused (both ways) */
#define WS_BUS_KEY_MAX 128
#define WS_BUS_TOPIC_MAX 64
#define WS_BUS_EVENT_ID_MAX 40 /* "123" (outbox) or "p-<job>-<n>" (progress) */

/* A message to publish. */
typedef struct ws_bus_out {
    const char *topic;
    const char *key;     /* partition key, NULL = none */
    const char *payload; /* JSON text */
    size_t len;
    const char *event_id;    /* header ws-event-id (required) */
    const char *traceparent; /* header traceparent, NULL = none */
} ws_bus_out;

/* A consumed message: what a consumer may read (untrusted input: sizes are capped). */
typedef struct ws_bus_msg {
    const char *topic;
    const char *key;     /* NUL-terminated, NULL when none */
    const char *payload; /* NUL-terminated copy, len bytes */
    size_t len;
    char event_id[WS_BUS_EVENT_ID_MAX + 1];   /* "" when the header is missing or bad */
    char traceparent[WS_TRACEPARENT_LEN + 1]; /* "" when none */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* when it was produced (Unix ms), 0 when unknown */
} ws_bus_msg;

typedef struct ws_bus ws_bus;

typedef struct ws_bus_ops {
    /* Publishes n messages and waits (up to timeout_ms) until the broker acknowledged each:
     * status[i] gets 0 (acknowledged, durable) or a negative WS_E* code. Returns 0 when all
     * were acknowledged, else the first failure's code with a message. */
    int (*publish)(ws_bus *b, const ws_bus_out *msgs, size_t n, int *status, int timeout_ms, ws_error *err);
    /* Joins consumer group `group` on the topics (once per bus). Offsets start at the group's
     * committed position, or at the beginning of the topic for a new group. */
    int (*subscribe)(ws_bus *b, const char *group, const char *const *topics, size_t n, ws_error *err);
    /* The next message: 0 and *out, WS_EAGAIN when none came within timeout_ms, other codes on
     * failure. A message above WS_BUS_PAYLOAD_MAX is skipped (logged) and never returned. */
    int (*poll)(ws_bus *b, int timeout_ms, ws_bus_msg *out, ws_error *err);
    /* Commits the group's position past m (synchronously): after a restart or a rebalance the
     * group resumes after it. Messages not committed are delivered again. */
    int (*commit)(ws_bus *b, const ws_bus_msg *m, ws_error *err);
    void (*destroy)(ws_bus *b);
} ws_bus_ops;

struct ws_bus {
    const ws_bus_ops *ops;
    void *impl;
};

static inline void ws_bus_free(ws_bus *b)
{
    if (b)
        b->ops->destroy(b);
}

/* ---- in-process (bus_memory.c) ---- */

/* A bus whose topics are logs in this process's memory. Several ws_bus handles made from one
 * hub share its topics and group positions (a hub per process; several consumers in one
 * group take messages in turn). Hub: ws_bus_hub_new / ws_bus_hub_free (after every bus). */
typedef struct ws_bus_hub ws_bus_hub;
ws_bus_hub *ws_bus_hub_new(void);
void ws_bus_hub_free(ws_bus_hub *h);
int ws_bus_memory_new(ws_bus_hub *h, ws_bus **out, ws_error *err);

/* ---- Apache Kafka (bus_kafka.c) ---- */

typedef struct ws_bus_kafka_config {
    const char *brokers;      /* "host:port[,host:port]" */
    const char *client_id;    /* e.g. "whatstyle-worker-<host>-<pid>" */
    int partitions;           /* topics are created with this many (0 = 3) */
    int session_timeout_ms;   /* consumer group liveness (0 = 10000) */
    int max_poll_interval_ms; /* longest time between polls, e.g. one job (0 = 1800000) */
} ws_bus_kafka_config;

/* Connects (lazily loading librdkafka: WS_EUNSUPPORTED naming the package when it is missing)
 * and creates the four topics when they do not exist. WS_EIO when no broker answers within
 * 15 s. The producer is idempotent (acks=all, no duplicates or reordering on retry). */
int ws_bus_kafka_new(const ws_bus_kafka_config *cfg, ws_bus **out, ws_error *err);

/* ---- helpers ---- */

/* True for the four topics above. */
bool ws_bus_topic_known(const char *topic);

#endif
