/* WhatsApp Business Cloud API, the receiving side: the webhook's signature check
 * (X-Hub-Signature-256, HMAC-SHA256 of the raw body bytes under the app secret) and the
 * parser of its notification bodies (entry[] x changes[] x messages[] / statuses[]) into
 * flat lists of messages and statuses. Neither touches the network, the store or the
 * environment; the HTTP handler and the processor (src/server/wa_*.c) sit on top.
 *
 * Ownership: ws_wa_parse copies every string it returns into the caller's arena; they live
 * until that arena is freed. Inputs are borrowed. Thread-safety: no shared state. */
#ifndef WS_WHATSAPP_WHATSAPP_H
#define WS_WHATSAPP_WHATSAPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"

/* Caps on what one notification may hold (Meta batches at most 1000 updates per POST). */
#define WS_WA_MAX_EVENTS 1000      /* messages + statuses of one body */
#define WS_WA_ID_MAX 256           /* wamid, phone number id, user ids: longer is refused */
#define WS_WA_TEXT_MAX (64 * 1024) /* text kept from one message (longer is cut at UTF-8) */

/* 0 when header is "sha256=<64 hex digits>" (either case) and equals the HMAC-SHA256 of
 * body[0..len) under secret; compared in constant time. WS_EPERM when it does not match,
 * WS_EINVAL when the header is missing (NULL) or malformed. */
int ws_wa_signature_check(const void *secret, size_t secret_len, const void *body, size_t len,
                          const char *header);
/* The header value for body (tests, the benchmark): "sha256=" + 64 lowercase hex + NUL
 * into out (72 bytes). */
void ws_wa_signature_make(const void *secret, size_t secret_len, const void *body, size_t len, char out[72]);

typedef enum {
    WS_WA_MSG_TEXT,
    WS_WA_MSG_REACTION,
    WS_WA_MSG_INTERACTIVE, /* button_reply / list_reply / nfm_reply */
    WS_WA_MSG_BUTTON,      /* a quick-reply button of a template */
    WS_WA_MSG_IMAGE,
    WS_WA_MSG_AUDIO,
    WS_WA_MSG_VIDEO,
    WS_WA_MSG_DOCUMENT,
    WS_WA_MSG_STICKER,
    WS_WA_MSG_LOCATION,
    WS_WA_MSG_CONTACTS,
    WS_WA_MSG_SYSTEM,
    WS_WA_MSG_UNSUPPORTED, /* "unsupported" or a type this parser does not know */
} ws_wa_msg_type;

/* The type's name as Meta spells it ("text", "image", ...). */
const char *ws_wa_msg_type_name(ws_wa_msg_type t);
/* True for the media types (image, audio, video, document, sticker). */
bool ws_wa_msg_is_media(ws_wa_msg_type t);

/* One incoming message. Either from or from_user_id is set (both when Meta sends both). */
typedef struct ws_wa_message {
    const char *phone_number_id; /* the business number it was sent to (metadata) */
    const char *wamid;           /* the message id */
    const char *from;            /* sender's phone (wa_id), NULL when not shared */
    const char *from_user_id;    /* business-scoped user id, NULL when absent */
    const char *profile_name;    /* contacts[].profile.name of the sender, NULL if none */
    int64_t timestamp;           /* Unix seconds, 0 when absent */
    ws_wa_msg_type type;
    const char *type_name; /* the type as sent (also for unknown types) */
    /* What the message says, as text: the body (text), the emoji (reaction), the chosen
     * title (interactive, button), the caption (media), "name, address (lat, lon)"
     * (location), the names (contacts), the body (system). NULL when nothing. */
    const char *text;
    const char *media_id;  /* media types: the media id */
    const char *mime_type; /* media types, NULL if absent */
    /* reaction: the wamid reacted to; interactive: the reply id; button: the payload */
    const char *ref_id;
    const char *context_id; /* the wamid this message replies to, NULL if none */
    int error_code;         /* unsupported: errors[0].code, else 0 */
} ws_wa_message;

typedef enum {
    WS_WA_STATUS_SENT = 1,
    WS_WA_STATUS_DELIVERED = 2,
    WS_WA_STATUS_READ = 3,
    WS_WA_STATUS_FAILED = 4,
} ws_wa_status_kind;

/* The rank that orders statuses: a status applies only over a lower rank (a late
 * "delivered" never overwrites "read"; nothing overwrites "failed"). */
const char *ws_wa_status_name(ws_wa_status_kind k);
int ws_wa_status_parse(const char *name, ws_wa_status_kind *out); /* WS_EINVAL if unknown */

/* One status update of a message the business sent. */
typedef struct ws_wa_status {
    const char *phone_number_id;
    const char *wamid;
    const char *recipient_id;      /* phone, NULL when not shared */
    const char *recipient_user_id; /* business-scoped user id, NULL when absent */
    ws_wa_status_kind status;
    int64_t timestamp;
    int error_code;          /* failed: errors[0].code */
    const char *error_title; /* failed: errors[0].title (or message) */
} ws_wa_status;

typedef struct ws_wa_batch {
    ws_wa_message *messages;
    size_t n_messages;
    ws_wa_status *statuses;
    size_t n_statuses;
    size_t n_skipped; /* entries without the required fields, ignored (not an error) */
} ws_wa_batch;

/* Parses a webhook body. Changes whose field is not "messages" and items missing an id or
 * a sender are skipped (counted in n_skipped). Errors: WS_EFORMAT (not JSON, or not an
 * object whose "object" is "whatsapp_business_account" with an "entry" array), WS_ETOOBIG
 * (more than WS_WA_MAX_EVENTS updates or an id over WS_WA_ID_MAX bytes). On error *out is
 * empty. */
int ws_wa_parse(const char *body, size_t len, ws_arena *a, ws_wa_batch *out, ws_error *err);

#endif
