/* The store's rows as JSON (field tables, one object per row) and the export of everything a
 * user owns (see store.h). */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/base64.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/trace.h"
#include "store/store_int.h"

typedef ws__store_field field;

static void put_cell(ws_buf *b, const char *c, char type)
{
    if (!c) {
        ws_buf_puts(b, "null");
        return;
    }
    switch (type) {
    case 'i': ws_buf_printf(b, "%lld", strtoll(c, NULL, 10)); break;
    case 'd': ws_json_put_num(b, strtod(c, NULL)); break;
    case 'b': ws_buf_puts(b, (c[0] == 't' || c[0] == '1') ? "true" : "false"); break;
    case 'j': ws_buf_puts(b, c); break;
    default: ws_json_put_cstr(b, c); break;
    }
}

/* Appends row `row` of r as a JSON object named by fields (one per column, in order). */
void ws__store_put_row(ws_buf *b, const ws_dbres *r, int row, const field *f, int nf)
{
    ws_buf_putc(b, '{');
    for (int c = 0; c < nf && c < r->ncols; c++) {
        if (c)
            ws_buf_putc(b, ',');
        ws_json_put_cstr(b, f[c].name);
        ws_buf_putc(b, ':');
        put_cell(b, ws__store_cell(r, row, c), f[c].type);
    }
    ws_buf_putc(b, '}');
}

static void put_rows(ws_buf *b, const ws_dbres *r, const field *f, int nf)
{
    ws_buf_putc(b, '[');
    for (int i = 0; i < r->nrows; i++) {
        if (i)
            ws_buf_putc(b, ',');
        ws__store_put_row(b, r, i, f, nf);
    }
    ws_buf_putc(b, ']');
}

static const field user_fields[] = {
    {"user_id", 's'},           {"name", 's'},       {"phone_number", 's'}, {"model_version", 's'},
    {"subscription_tier", 's'}, {"created_at", 'i'}, {"last_active", 'i'},  {"is_active", 'b'},
};
static const field key_fields[] = {
    {"key_id", 's'},    {"user_id", 's'},    {"client_name", 's'}, {"role", 's'},         {"rate_limit", 'i'},
    {"is_active", 'b'}, {"created_at", 'i'}, {"expires_at", 'i'},  {"last_used_at", 'i'},
};
const field ws__store_job_fields[] = {
    {"job_id", 's'},       {"user_id", 's'},           {"status", 's'},
    {"progress", 'd'},     {"samples_processed", 'i'}, {"params", 'j'},
    {"metrics", 'j'},      {"error_message", 's'},     {"data_path", 's'},
    {"worker_id", 's'},    {"created_at", 'i'},        {"started_at", 'i'},
    {"completed_at", 'i'}, {"updated_at", 'i'},
};
static const field conv_fields[] = {
    {"conversation_id", 'i'}, {"user_id", 's'},    {"message", 's'},
    {"response", 's'},        {"confidence", 'd'}, {"processing_time_ms", 'i'},
    {"model_version", 's'},   {"created_at", 'i'},
};
static const field event_fields[] = {
    {"event_id", 'i'},
    {"event_type", 's'},
    {"event_data", 'j'},
    {"created_at", 'i'},
};
static const field audit_fields[] = {
    {"id", 'i'},       {"actor", 's'},  {"user_id", 's'},    {"action", 's'},
    {"resource", 's'}, {"detail", 's'}, {"created_at", 'i'},
};
static const field model_fields[] = {
    {"user_id", 's'}, {"version", 's'}, {"artifact_path", 's'}, {"job_id", 's'}, {"created_at", 'i'},
};

/* the WhatsApp channel's rows (migration 0002_whatsapp, store_whatsapp.c) */
static const field wa_link_fields[] = {
    {"phone_number_id", 's'},
    {"mode", 's'},
    {"created_at", 'i'},
    {"updated_at", 'i'},
};
static const field wa_contact_fields[] = {
    {"phone_number_id", 's'},
    {"contact", 's'},
    {"mode", 's'},
    {"updated_at", 'i'},
};
static const field wa_message_fields[] = {
    {"wamid", 's'},         {"phone_number_id", 's'}, {"direction", 's'},
    {"contact_phone", 's'}, {"contact_user_id", 's'}, {"type", 's'},
    {"text", 's'},          {"media_id", 's'},        {"sent_at", 'i'},
    {"status", 's'},        {"error_code", 'i'},      {"created_at", 'i'},
};
static const field wa_draft_fields[] = {
    {"draft_id", 's'},        {"phone_number_id", 's'}, {"contact_phone", 's'},
    {"contact_user_id", 's'}, {"message_id", 's'},      {"mode", 's'},
    {"status", 's'},          {"reply", 's'},           {"confidence", 'd'},
    {"reason", 's'},          {"error_code", 'i'},      {"error_message", 's'},
    {"sent_message_id", 's'}, {"created_at", 'i'},      {"updated_at", 'i'},
};

/* ------------------------------------------------------------------ export */

int ws_store_user_export(ws_store *s, const char *user_id, ws_buf *out, ws_error *err)
{
    static const struct {
        const char *name, *sql;
        const field *fields;
        int nfields;
    } parts[] = {
        {"api_keys", "SELECT " KEY_COLS " FROM api_keys WHERE user_id = $1 ORDER BY created_at", key_fields,
         NP(key_fields)},
        {"training_jobs",
         "SELECT " JOB_COLS " FROM training_jobs WHERE user_id = $1"
         " ORDER BY created_at",
         ws__store_job_fields, NP(ws__store_job_fields)},
        {"conversations",
         "SELECT " CONV_COLS " FROM conversations WHERE user_id = $1"
         " ORDER BY created_at, conversation_id",
         conv_fields, NP(conv_fields)},
        {"analytics_events",
         "SELECT event_id, event_type, event_data, created_at"
         " FROM analytics_events WHERE user_id = $1 ORDER BY event_id",
         event_fields, NP(event_fields)},
        {"audit_log", "SELECT " AUDIT_COLS " FROM audit_log WHERE user_id = $1 ORDER BY id", audit_fields,
         NP(audit_fields)},
        {"models", "SELECT " MODEL_COLS " FROM models WHERE user_id = $1 ORDER BY created_at", model_fields,
         NP(model_fields)},
        {"whatsapp_links",
         "SELECT phone_number_id, default_mode, created_at, updated_at FROM wa_links"
         " WHERE user_id = $1 ORDER BY created_at",
         wa_link_fields, NP(wa_link_fields)},
        {"whatsapp_contacts",
         "SELECT phone_number_id, contact, mode, updated_at FROM wa_contacts"
         " WHERE user_id = $1 ORDER BY phone_number_id, contact",
         wa_contact_fields, NP(wa_contact_fields)},
        {"whatsapp_messages",
         "SELECT wamid, phone_number_id, direction, contact_phone, contact_user_id,"
         " msg_type, body, media_id, sent_at, status, error_code, created_at FROM wa_messages"
         " WHERE user_id = $1 ORDER BY created_at, wamid",
         wa_message_fields, NP(wa_message_fields)},
        {"whatsapp_drafts",
         "SELECT draft_id, phone_number_id, contact_phone, contact_user_id, in_wamid, mode,"
         " status, reply, confidence, reason, error_code, error_message, out_wamid, created_at, updated_at"
         " FROM wa_drafts WHERE user_id = $1 ORDER BY created_at, draft_id",
         wa_draft_fields, NP(wa_draft_fields)},
    };
    if (!user_id)
        return ws_error_set(err, WS_EINVAL, "no user given");
    ws_arena *a = ws_arena_new(16384);
    ws_dbp p[] = {DBP_S(user_id)};
    ws_dbres r = {0};
    ws_buf b = WS_BUF_INIT;
    int rc = s->drv->begin(s->db, false, err);
    if (rc < 0)
        goto out;
    if (s->drv->is_pg) /* one snapshot for every table */
        rc = s->drv->exec_script(s->db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", err);
    if (rc == 0)
        rc = ws__store_query(s, s->db, a, "SELECT " USER_COLS " FROM users WHERE user_id = $1", p, NP(p), &r,
                             err);
    if (rc == 0 && r.nrows == 0)
        rc = ws_error_set(err, WS_ENOENT, "no such user");
    if (rc == 0) {
        ws_buf_puts(&b, "{\"user\":");
        ws__store_put_row(&b, &r, 0, user_fields, NP(user_fields));
    }
    for (size_t i = 0; rc == 0 && i < sizeof parts / sizeof parts[0]; i++) {
        rc = ws__store_query(s, s->db, a, parts[i].sql, p, NP(p), &r, err);
        if (rc == 0) {
            ws_buf_printf(&b, ",\"%s\":", parts[i].name);
            put_rows(&b, &r, parts[i].fields, parts[i].nfields);
        }
    }
    if (rc == 0)
        ws_buf_printf(&b, ",\"exported_at\":%" PRId64 "}", ws_store_now_ms());
    rc = ws__store_tx_end(s, rc, err);
    if (rc == 0)
        rc = ws_buf_append(out, b.data, b.len);
out:
    ws_buf_free(&b);
    ws_arena_free(a);
    return rc;
}
