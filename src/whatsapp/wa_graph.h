/* The sending side of the WhatsApp Business Cloud API: a small Graph API client (libcurl,
 * blocking) that sends a text reply (POST {base}/{version}/{phone-number-id}/messages, with
 * context.message_id) and marks an incoming message read, and the mapping of Graph errors
 * to what the caller does next (retry with backoff, or record the failure).
 *
 * Ownership: ws_wa_graph borrows its strings. Thread-safety: calls may run on several
 * threads at once (each uses its own curl handle). */
#ifndef WS_WHATSAPP_WA_GRAPH_H
#define WS_WHATSAPP_WA_GRAPH_H

#include <stdbool.h>

#include "core/error.h"

#define WS_WA_GRAPH_DEFAULT_URL "https://graph.facebook.com"
#define WS_WA_GRAPH_DEFAULT_VERSION "v21.0"
#define WS_WA_GRAPH_RESPONSE_MAX (64 * 1024) /* a longer answer is cut (and not parsed) */
#define WS_WA_REPLY_MAX 4096                 /* WhatsApp's limit on a text body (characters) */

typedef struct ws_wa_graph {
    const char *base_url; /* scheme://host[:port][/prefix], no trailing '/' */
    const char *version;  /* "v21.0" */
    int timeout_ms;       /* whole request; 0 = 15000 */
} ws_wa_graph;

typedef struct ws_wa_send_result {
    int http_status;         /* 0 when no answer came (connection, timeout) */
    int error_code;          /* error.code of a Graph error answer, else 0 */
    char error_message[256]; /* error.message (or the transport error), "" on success */
    char wamid[257];         /* send: messages[0].id of an accepted message */
} ws_wa_send_result;

typedef enum {
    WS_WA_SEND_OK,     /* accepted */
    WS_WA_SEND_RETRY,  /* throttled (130429, 131056, 4, 80007, 429) or transient (5xx, network) */
    WS_WA_SEND_FAILED, /* permanent (131047 outside the 24-hour window, bad token, bad number...) */
} ws_wa_send_outcome;

ws_wa_send_outcome ws_wa_graph_classify(const ws_wa_send_result *r);

/* Sends text (at most WS_WA_REPLY_MAX characters) to a recipient (to_phone, else the
 * business-scoped to_user_id) as a reply to reply_to (a wamid, may be NULL). Returns 0
 * when an answer came (res says what it was) or WS_EINVAL (bad arguments) / WS_EIO (no
 * answer; res->http_status 0, error_message says why). */
int ws_wa_graph_send_text(const ws_wa_graph *g, const char *phone_number_id, const char *token,
                          const char *to_phone, const char *to_user_id, const char *text,
                          const char *reply_to, ws_wa_send_result *res, ws_error *err);
/* Marks an incoming message read (the blue ticks). Same returns. */
int ws_wa_graph_mark_read(const ws_wa_graph *g, const char *phone_number_id, const char *token,
                          const char *wamid, ws_wa_send_result *res, ws_error *err);

#endif
