/* The AI interface of DESIGN.md §1: what the API server and the worker need from the style
 * clone. Two implementations plug in behind it: in-process (the engine linked into this
 * binary; the embedded default) and gRPC to `whatstyle ai` (cluster).
 *
 * Ownership: a ws_ai is created by an implementation's constructor and released with
 * ws_ai_free. Strings in results are malloc'd and belong to the caller (ws_ai_reply_clear,
 * ws_ai_train_result_clear). Implementations must be thread-safe: the server calls them from
 * several worker threads at once. */
#ifndef WS_AI_AI_H
#define WS_AI_AI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct ws_ai_turn {
    const char *author; /* may be NULL: "someone else" */
    const char *text;
} ws_ai_turn;

typedef struct ws_ai_reply {
    char *reply;
    double confidence; /* in [0,1] */
    bool fallback;     /* confidence was below the person's threshold */
    char *model_version;
    double processing_ms;
} ws_ai_reply;

typedef struct ws_ai_train_request {
    const char *user_id;
    const char *export_path;   /* .txt or .zip on local disk */
    const char *persona;       /* the person to learn, as printed in the export */
    double budget_s;           /* 0 = default */
    const char *base_model;    /* NULL = small model from scratch */
    const char *work_dir;      /* in-process engine: where training runs and checkpoints (a rerun
                                  with the same dir resumes); NULL = its own per-user dir */
    double checkpoint_every_s; /* 0 = the trainer's default (15 s) */
} ws_ai_train_request;

typedef struct ws_ai_train_result {
    char *model_version;
    uint64_t samples_processed;
    char *metrics_json; /* the fidelity report, JSON */
} ws_ai_train_result;

/* Progress of a training run: fraction in [0,1], a short phase name, samples so far.
 * Called from the training thread; return non-zero to cancel. */
typedef int (*ws_ai_progress_fn)(void *arg, double fraction, const char *phase, uint64_t samples);

/* What an implementation holds in memory (ModelStatus of the AI service). */
typedef struct ws_ai_resident {
    char *user_id;
    uint64_t bytes; /* memory the user's opened model adds (the shared base not counted) */
    double idle_s;  /* since its last use */
} ws_ai_resident;

typedef struct ws_ai_status {
    uint64_t memory_budget; /* bytes; 0 = unbounded */
    uint64_t resident_bytes;
    ws_ai_resident *resident; /* most recently used first */
    size_t n_resident;
    char *base_model; /* the shared base, NULL when none */
    uint64_t loads, evictions;
} ws_ai_status;

typedef struct ws_ai ws_ai;

/* One piece of a streamed reply: len bytes of whole UTF-8 characters (not NUL-terminated,
 * borrowed for the call). Return non-zero to stop the reply (the caller went away). */
typedef int (*ws_ai_piece_fn)(void *arg, const char *piece, size_t len);

typedef struct ws_ai_ops {
    /* Replies as user_id's persona. WS_ENOENT when the user has no trained model. */
    int (*generate)(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                    size_t n_context, ws_ai_reply *out, ws_error *err);
    /* Trains (blocking) and installs the new model for the user. WS_EINVAL with the list of
     * participants when the persona is not in the export. */
    int (*train)(ws_ai *ai, const ws_ai_train_request *req, ws_ai_progress_fn progress, void *progress_arg,
                 ws_ai_train_result *out, ws_error *err);
    /* Drops any cached model of the user so the next call loads the current one. */
    int (*reload)(ws_ai *ai, const char *user_id, ws_error *err);
    /* The persona's style profile as JSON (*json_out malloc'd). WS_ENOENT without a model. */
    int (*style_profile)(ws_ai *ai, const char *user_id, char **json_out, ws_error *err);
    /* Removes every model and artifact of the user (right to erasure). */
    int (*forget)(ws_ai *ai, const char *user_id, ws_error *err);
    void (*destroy)(ws_ai *ai);
    /* Optional (NULL when not offered): generate() that stops early with WS_EAGAIN once *cancel
     * turns non-zero (the caller went away or its deadline passed). */
    int (*generate_cancellable)(ws_ai *ai, const char *user_id, const char *message,
                                const ws_ai_turn *context, size_t n_context, const volatile int *cancel,
                                ws_ai_reply *out, ws_error *err);
    /* Optional: the models held in memory (ws_ai_status_clear). */
    int (*status)(ws_ai *ai, ws_ai_status *out, ws_error *err);
    /* Optional: one reply generated and handed to on_piece as it is decoded (docs/clone.md,
     * "Streaming"), then *out: out->reply is what the pieces spell, except with out->fallback,
     * where it is the fallback reply that replaces them. Stops with WS_EAGAIN once on_piece
     * returns non-zero or *cancel (may be NULL) turns non-zero. */
    int (*generate_stream)(ws_ai *ai, const char *user_id, const char *message, const ws_ai_turn *context,
                           size_t n_context, const volatile int *cancel, ws_ai_piece_fn on_piece, void *arg,
                           ws_ai_reply *out, ws_error *err);
} ws_ai_ops;

struct ws_ai {
    const ws_ai_ops *ops;
    void *impl;
};

static inline void ws_ai_free(ws_ai *ai)
{
    if (ai)
        ai->ops->destroy(ai);
}

void ws_ai_reply_clear(ws_ai_reply *r);
void ws_ai_train_result_clear(ws_ai_train_result *r);
void ws_ai_status_clear(ws_ai_status *s);

#endif
