/* The outbox relay: publishes the store's outbox rows (written in the same transaction as the
 * data they describe) on the bus, and marks a row published only once the broker acknowledged
 * it. Nothing is produced on a request's path. A crash between the acknowledgement and the
 * mark re-sends the row: delivery is at least once, and every message carries its row id as
 * its event id (header ws-event-id) so consumers drop what they have seen.
 *
 * A training job's message continues the upload's trace: the traceparent the job's params
 * keep becomes the message's traceparent header.
 *
 * Ownership: the relay borrows the bus (which outlives it) and owns its store handle. */
#ifndef WS_BUS_RELAY_H
#define WS_BUS_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "store/store.h"

#define WS_RELAY_BATCH_MAX WS_STORE_PAGE_MAX

/* Called for each acknowledged row: its id, its commit time and the acknowledgement time (ms). */
typedef void (*ws_relay_observe_fn)(void *arg, int64_t id, int64_t created_ms, int64_t acked_ms);

/* One pass: fetches up to batch (1..WS_RELAY_BATCH_MAX) unpublished rows, publishes them,
 * marks the acknowledged ones. *published gets how many were marked. 0, or the bus's or the
 * store's error (rows not acknowledged stay for the next pass). */
int ws_relay_step(ws_store *st, ws_bus *bus, int batch, size_t *published, ws_relay_observe_fn observe,
                  void *observe_arg, ws_error *err);

/* The traceparent a row's payload carries ({"job":{"params":{"traceparent":...}}}, the upload
 * that queued a job; {"data":{"traceparent":...}}, the request that made an analytics event),
 * copied into out (WS_TRACEPARENT_LEN + 1 bytes): true when there is a valid one. */
bool ws_relay_payload_traceparent(const char *payload, size_t len, char *out);

/* ---- a relay thread ---- */
typedef struct ws_relay ws_relay;

typedef struct ws_relay_config {
    const char *store_url; /* the primary (the relay's own connection) */
    ws_bus *bus;           /* borrowed */
    int batch;             /* rows per pass (0 = 100) */
    int idle_ms;           /* pause after a pass that found nothing (0 = 50) */
} ws_relay_config;

/* Starts the thread: it takes the relay lock (ws_store_outbox_try_lead; a standby retries
 * every 2 s) and publishes until stopped. */
int ws_relay_start(const ws_relay_config *cfg, ws_relay **out, ws_error *err);
/* Stops after the pass in progress and frees the relay. NULL is a no-op. */
void ws_relay_stop(ws_relay *r);
/* Rows published so far by this relay. */
uint64_t ws_relay_published(ws_relay *r);

#endif
