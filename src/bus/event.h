/* What the consumers read from a bus message (untrusted input: a message may come from any
 * client of the broker): the training messages' fields, checked and copied into fixed
 * buffers, and a bounded memory of the event ids already handled (consumers are idempotent
 * by event id). */
#ifndef WS_BUS_EVENT_H
#define WS_BUS_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/strset.h"
#include "store/store.h"

#define WS_BUS_TYPE_MAX 48

/* {"type":"training.requested|progress|completed|failed|cancelled","job":{"job_id":..,
 *  "user_id":.., "progress":.., "samples_processed":..}} */
typedef struct ws_bus_job_event {
    char type[WS_BUS_TYPE_MAX + 1];   /* e.g. "training.completed" */
    char job_id[WS_STORE_ID_MAX + 1]; /* [A-Za-z0-9_-] only */
    char user_id[WS_STORE_ID_MAX + 1];
    double progress; /* 0..1; 0 when absent */
    int64_t samples; /* >= 0; 0 when absent */
} ws_bus_job_event;

/* Parses a training-jobs / training-events payload (len bytes, at most WS_BUS_PAYLOAD_MAX).
 * 0, or WS_EFORMAT with a message when it is not such an event (the caller logs and skips). */
int ws_bus_job_event_parse(const char *payload, size_t len, ws_bus_job_event *out, ws_error *err);

/* The event ids a consumer has handled lately: at most 2 * cap remembered (two generations;
 * the older goes when the newer fills). Not thread-safe. */
typedef struct ws_bus_seen {
    ws_strset gen[2];
    size_t cap;
} ws_bus_seen;

void ws_bus_seen_init(ws_bus_seen *s, size_t cap);
/* True when id was seen (a duplicate), else remembers it and returns false. "" is never a
 * duplicate. */
bool ws_bus_seen_check(ws_bus_seen *s, const char *id);
void ws_bus_seen_free(ws_bus_seen *s);

#endif
