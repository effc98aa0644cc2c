/* The store's calls for the bus (src/bus): the outbox relay's leadership, and the training
 * job state machine as the Kafka workers drive it — compare-and-set transitions owned by one
 * worker at a time, so a job is never completed twice even when two workers saw its message.
 *
 *   queued --take--> running(worker W) --finish_as(W)--> completed | failed
 *   running(W, silent for lease_ms) --take by V--> running(V)   (W died: V resumes)
 *
 * Same conventions as store.h (errors, arenas, times in ms). */
#ifndef WS_STORE_STORE_BUS_H
#define WS_STORE_STORE_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* PostgreSQL: tries to take the session-level advisory lock of the outbox relay on this
 * handle (held until the handle closes): *leader = true when this handle holds it, so one
 * relay publishes at a time across gateways. SQLite: always the leader. */
int ws_store_outbox_try_lead(ws_store *s, bool *leader, ws_error *err);

/* Marks n outbox rows published in one statement per 100 ids (one transaction): what the
 * relay calls after the broker acknowledged them. */
int ws_store_outbox_mark_many(ws_store *s, const int64_t *ids, size_t n, ws_error *err);

/* Takes job_id for worker_id: queued -> running, or running -> running when it already is
 * worker_id's or its worker was silent (no update) for lease_ms (it died). 0 and *out (the
 * job after the change) on success; WS_EAGAIN while another live worker holds it;
 * WS_ECONFLICT when the job is already final (out gets it: the caller acknowledges the
 * message without training); WS_ENOENT when there is no such job (deleted). */
int ws_store_job_take(ws_store *s, ws_arena *a, const char *job_id, const char *worker_id, int64_t lease_ms,
                      ws_job *out, ws_error *err);

/* Records progress (and keeps the lease fresh) while worker_id holds the running job:
 * WS_ECONFLICT when it does not (another worker took it over, or it is final). */
int ws_store_job_progress_as(ws_store *s, const char *job_id, const char *worker_id, double progress,
                             int64_t samples, ws_error *err);

/* Moves the running job held by worker_id to completed or failed and, in the same transaction,
 * queues its outbox message on "training-events" (type "training.completed" / ".failed", the
 * job's fields). WS_ECONFLICT when worker_id does not hold it running (a job is never
 * completed twice). metrics_json / error_message may be NULL. */
int ws_store_job_finish_as(ws_store *s, const char *job_id, const char *worker_id, ws_job_status status,
                           int64_t samples, const char *metrics_json, const char *error_message,
                           ws_error *err);

#endif
