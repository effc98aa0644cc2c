/* libFuzzer target: the WhatsApp webhook body parser (and the signature check over the same
 * bytes). Bodies are untrusted until signed, and a signed body is still only Meta's word:
 * the parser must never crash or read out of bounds, and what it returns keeps its caps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "whatsapp/whatsapp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *s)
{
    if (s && strlen(s) > WS_WA_ID_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_arena *a = ws_arena_new(4096);
    ws_wa_batch b;
    int rc = ws_wa_parse((const char *)data, size, a, &b, NULL);
    if (rc == 0) {
        if (b.n_messages + b.n_statuses > WS_WA_MAX_EVENTS)
            abort();
        for (size_t i = 0; i < b.n_messages; i++) {
            const ws_wa_message *m = &b.messages[i];
            if (!m->wamid || (!m->from && !m->from_user_id) || !m->phone_number_id || !m->type_name)
                abort();
            check_id(m->wamid);
            check_id(m->from);
            check_id(m->media_id);
            if (m->text && strlen(m->text) > WS_WA_TEXT_MAX)
                abort();
        }
        for (size_t i = 0; i < b.n_statuses; i++)
            if (!b.statuses[i].wamid || b.statuses[i].status < WS_WA_STATUS_SENT ||
                b.statuses[i].status > WS_WA_STATUS_FAILED)
                abort();
    } else if (b.n_messages || b.n_statuses) {
        abort();
    }
    char sig[72];
    ws_wa_signature_make("k", 1, data, size, sig);
    if (ws_wa_signature_check("k", 1, data, size, sig) != 0)
        abort();
    /* the body's own first bytes as a (mostly malformed) header */
    char hdr[80];
    size_t n = size < sizeof hdr - 1 ? size : sizeof hdr - 1;
    memcpy(hdr, data, n);
    hdr[n] = '\0';
    (void)ws_wa_signature_check("k", 1, data, size, hdr);
    ws_arena_free(a);
    return 0;
}
