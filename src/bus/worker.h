/* The training worker of `whatstyle worker`: a member of the consumer group on training-jobs.
 * For each job message it takes the job (compare-and-set, store_bus.h), fetches the export
 * from the blobs, trains it with the in-process engine (the code of `whatstyle train`), which
 * writes the model to the blobs, finishes the job (completed/failed, once) with its outbox
 * event, and only then commits the message's offset. While it trains it keeps the job's lease
 * fresh, publishes progress on training-events and copies each checkpoint to the blobs
 * (checkpoints/<job id>/), so that when it dies the worker that gets the partition after the
 * rebalance takes the job over once the lease lapsed and resumes from the last checkpoint.
 *
 * Ownership: the worker borrows the bus, blobs and AI engine (they outlive it); it opens its
 * own store handles from store_url. One thread runs ws_worker_run. */
#ifndef WS_BUS_WORKER_H
#define WS_BUS_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "ai/ai.h"
#include "blobs/blobs.h"
#include "bus/bus.h"
#include "core/error.h"

#define WS_WORKER_GROUP "whatstyle-workers"

typedef struct ws_worker_config {
    const char *store_url;
    ws_bus *bus; /* subscribed by ws_worker_run */
    ws_blobs *blobs;
    ws_ai *ai;                  /* in-process engine (ai_local) with the same blobs */
    const char *work_dir;       /* private scratch (0700): exports and training dirs */
    const char *worker_id;      /* unique per process, e.g. "host-pid" */
    const char *group;          /* NULL = WS_WORKER_GROUP */
    int lease_ms;               /* a silent holder is presumed dead after this (0 = 15000) */
    double checkpoint_every_s;  /* training checkpoints (0 = 10) */
    size_t max_export_bytes;    /* 0 = 64 MiB */
    const char *health_file;    /* rewritten each loop with the state, NULL = none */
    struct ws_metrics *metrics; /* optional: the worker registers its training metrics here
                                   (ws_training_jobs_{completed,failed,resumed}_total,
                                   ws_training_job_duration_seconds) before it consumes */
    bool drain;                 /* exit once no message came for 10 s (a batch run) */
} ws_worker_config;

/* Runs until *stop turns true (a job in progress is interrupted at its next step; its
 * checkpoint stays, its message uncommitted). 0, or an error that stopped it (bus subscribe). */
int ws_worker_run(const ws_worker_config *cfg, atomic_bool *stop, ws_error *err);

#endif
