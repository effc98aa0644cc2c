/* The store's WhatsApp tables (migration 0002_whatsapp): the webhook inbox, linked business
 * numbers, per-contact modes, the message log (dedupe by wamid, statuses by rank) and the
 * clone's drafts. Same conventions as store.h: a ws_store handle is one connection (not
 * thread-safe), results live in the caller's arena, errors are WS_E* codes with details in
 * err (WS_ENOENT no such row, WS_ECONFLICT unique violation or a state that forbids the
 * change, WS_EINVAL bad argument, WS_EIO the database). Every row that names a user goes
 * with the user (ON DELETE CASCADE in the schema), so ws_store_user_delete erases them. */
#ifndef WS_STORE_STORE_WHATSAPP_H
#define WS_STORE_STORE_WHATSAPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "store/store.h"

#define WS_WA_INBOX_BODY_MAX (4u << 20) /* largest webhook body the inbox takes */

/* ---- the inbox: raw signed bodies, durable before the webhook answers 200 ---- */

typedef struct ws_wa_inbox_item {
    int64_t id;
    const char *body; /* len bytes, NUL-terminated */
    size_t len;
    int attempts;
} ws_wa_inbox_item;

/* Stores one body (len bytes, at most WS_WA_INBOX_BODY_MAX; WS_ETOOBIG above, WS_EINVAL
 * when it holds a NUL byte). *id (may be NULL) gets its id. */
int ws_store_wa_inbox_put(ws_store *s, const char *body, size_t len, int64_t *id, ws_error *err);
/* Stores n bodies in ONE transaction (all or none); the same checks as inbox_put, an
 * invalid body fails the call before anything is written. */
int ws_store_wa_inbox_put_many(ws_store *s, const char *const *bodies, const size_t *lens, size_t n,
                               ws_error *err);
/* Up to limit of the oldest bodies, oldest first, with attempts incremented. */
int ws_store_wa_inbox_take(ws_store *s, ws_arena *a, int limit, ws_wa_inbox_item **items, size_t *n,
                           ws_error *err);
/* Processes up to limit of the oldest bodies in ONE write transaction: fn(arg, s, item, err)
 * runs for each, oldest first, with the same handle (its statements join the transaction;
 * it must not begin one); when every call returned 0 the bodies are deleted and everything
 * commits, else everything rolls back and the batch's attempts are incremented (fn sees
 * them: a body that keeps failing can be given up). *n (may be NULL) gets how many bodies
 * were processed. Returns fn's error or the store's. */
typedef int (*ws_wa_inbox_fn)(void *arg, ws_store *s, const ws_wa_inbox_item *item, ws_error *err);
int ws_store_wa_inbox_process(ws_store *s, ws_arena *a, int limit, ws_wa_inbox_fn fn, void *arg, size_t *n,
                              ws_error *err);
/* SQLite: this handle no longer checkpoints the WAL when it commits (wal_autocheckpoint
 * = 0), so its commits never wait for a checkpoint's fsync; its owner checkpoints with
 * ws_store_wa_checkpoint where latency does not matter. PostgreSQL: nothing to do. */
int ws_store_wa_defer_checkpoints(ws_store *s, ws_error *err);
/* SQLite: a PASSIVE checkpoint of the WAL (never blocks writers or readers). PostgreSQL:
 * nothing to do. */
int ws_store_wa_checkpoint(ws_store *s, ws_error *err);
/* Deletes a processed body (absent is fine). */
int ws_store_wa_inbox_done(ws_store *s, int64_t id, ws_error *err);
int ws_store_wa_inbox_count(ws_store *s, int64_t *n, ws_error *err);

/* ---- links ---- */

typedef enum { WS_WA_MODE_OFF, WS_WA_MODE_DRAFT, WS_WA_MODE_AUTO } ws_wa_mode;
const char *ws_wa_mode_name(ws_wa_mode m);               /* "off", "draft", "auto" */
int ws_wa_mode_parse(const char *name, ws_wa_mode *out); /* WS_EINVAL if unknown */

typedef struct ws_wa_link {
    const char *phone_number_id;
    const char *user_id;
    const char *token_blob; /* blob key of the access token (sealed by the blobs layer) */
    ws_wa_mode default_mode;
    int64_t created_at, updated_at;
} ws_wa_link;

/* Links (or relinks: token and mode replaced) a number to a user. WS_ECONFLICT when another
 * user has linked that number; WS_ENOENT when the user does not exist. */
int ws_store_wa_link_put(ws_store *s, const ws_wa_link *l, ws_error *err);
int ws_store_wa_link_get(ws_store *s, ws_arena *a, const char *phone_number_id, ws_wa_link *out,
                         ws_error *err);
int ws_store_wa_link_list(ws_store *s, ws_arena *a, const char *user_id, ws_wa_link **items, size_t *n,
                          ws_error *err);
/* Unlinks a number of user_id's (its contact modes go with it). WS_ENOENT if not theirs. */
int ws_store_wa_link_delete(ws_store *s, const char *user_id, const char *phone_number_id, ws_error *err);
/* Sets the mode for all contacts (contact NULL: the link's default) or one contact (a phone
 * number or a business-scoped user id). WS_ENOENT when the number is not user_id's. */
int ws_store_wa_mode_set(ws_store *s, const char *user_id, const char *phone_number_id, const char *contact,
                         ws_wa_mode mode, ws_error *err);
/* The mode for a sender (phone and/or user id, either may be NULL): the contact's own row
 * if there is one, else the link's default. */
int ws_store_wa_mode_for(ws_store *s, const ws_wa_link *l, const char *phone, const char *bsuid,
                         ws_wa_mode *out, ws_error *err);

/* ---- the message log ---- */

typedef struct ws_wa_msg_row {
    const char *wamid;
    const char *phone_number_id;
    const char *user_id; /* the number's owner, NULL when not linked */
    bool outgoing;
    const char *contact_phone; /* NULL when not linked or not shared */
    const char *contact_user_id;
    const char *msg_type;
    const char *body; /* NULL when not linked */
    const char *media_id;
    int64_t sent_at;    /* ms */
    const char *status; /* outgoing: "accepted" / "sent" / ...; NULL for incoming */
    int status_rank;
} ws_wa_msg_row;

/* Records a message once: *inserted is false (and nothing changes) when its wamid is known,
 * except that a sent message fills in the bare row a status update made before it. */
int ws_store_wa_msg_insert(ws_store *s, const ws_wa_msg_row *m, bool *inserted, ws_error *err);
/* Applies a status by rank: the row's status changes only when rank is higher than the
 * stored one (unknown wamids get a bare row, so a later lower status is still ignored).
 * *applied (may be NULL) says whether it changed anything. */
int ws_store_wa_status_apply(ws_store *s, const char *wamid, const char *phone_number_id, const char *status,
                             int rank, int error_code, const char *error_title, bool *applied, ws_error *err);
/* A message's status and error code (tests, the dashboard). */
int ws_store_wa_msg_status(ws_store *s, ws_arena *a, const char *wamid, const char **status, int *error_code,
                           ws_error *err);
/* The time (ms) of the contact's last incoming message on that number; 0 if none. */
int ws_store_wa_last_incoming(ws_store *s, const char *phone_number_id, const char *phone, const char *bsuid,
                              int64_t *at_ms, ws_error *err);
/* Number of log rows of a user (tests, the dashboard). */
int ws_store_wa_msg_count(ws_store *s, const char *user_id, int64_t *n, ws_error *err);

/* ---- drafts ---- */

typedef struct ws_wa_draft {
    const char *draft_id; /* "wad_" + 24 hex */
    const char *user_id;
    const char *phone_number_id;
    const char *contact_phone, *contact_user_id;
    const char *in_wamid; /* the message it answers */
    const char *in_text;  /* read-only: that message's text (joined from the log) */
    ws_wa_mode mode;      /* the mode when it was made */
    const char *status;   /* generating, pending, queued, sent, failed, discarded */
    const char *reply;    /* NULL while generating */
    double confidence;
    const char *reason; /* why it waits for the owner (draft mode, low confidence, window) */
    int error_code;     /* Graph API error code of a failed send */
    const char *error_message;
    const char *out_wamid; /* the sent message's id */
    int attempts;
    int64_t next_attempt_at, created_at, updated_at;
} ws_wa_draft;

/* Creates a draft in status "generating" for an incoming message; *draft_id (41 bytes)
 * gets its id. WS_ECONFLICT when that message already has one. */
int ws_store_wa_draft_create(ws_store *s, const ws_wa_draft *d, char draft_id[48], ws_error *err);
int ws_store_wa_draft_get(ws_store *s, ws_arena *a, const char *draft_id, ws_wa_draft *out, ws_error *err);
/* A user's drafts, newest first; status NULL = every status. */
int ws_store_wa_draft_list(ws_store *s, ws_arena *a, const char *user_id, const char *status, int limit,
                           ws_wa_draft **items, size_t *n, ws_error *err);
/* The oldest drafts in status whose next_attempt_at <= now_ms, at most limit. */
int ws_store_wa_draft_due(ws_store *s, ws_arena *a, const char *status, int64_t now_ms, int limit,
                          ws_wa_draft **items, size_t *n, ws_error *err);
/* Moves a draft from status `from` (NULL = any but sent/discarded) to d->status, writing
 * reply, confidence, reason, error_code, error_message, out_wamid, attempts and
 * next_attempt_at from d. WS_ECONFLICT when it is not in `from` (a concurrent change). */
int ws_store_wa_draft_update(ws_store *s, const ws_wa_draft *d, const char *from, ws_error *err);
/* A sent draft whose message Meta reports failed: status "failed" with the error.
 * Nothing happens when no sent draft has that message id. */
int ws_store_wa_draft_fail_sent(ws_store *s, const char *out_wamid, int error_code, const char *error_message,
                                ws_error *err);

#endif
